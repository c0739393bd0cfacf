/*
 * cmd_author.c - the instructor's tools for writing labs: verify (is a
 * lab fit for a class?) and new-lab (a lab folder that verify passes, to
 * start from).
 *
 * verify grades real submissions with real brokers, in workers, as
 * `check` does: the reference solutions must score full marks three
 * times with the same verdict, the starter files must not, and every
 * known-bad submission must lose exactly the checks its EXPECT names.
 * Built-in labs find theirs in the repository (solutions/<id>/ and
 * tests/bad/<id>/, beside mqlab or under the current folder); a lab on
 * disk keeps them in its own folder (solution/ and bad/).
 */
#include "cleanup.h"
#include "embedded.h"
#include "report.h"
#include "util.h"
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------ verify */

#define VERIFY_RUNS 3

/* Student ids the placeholders are tried with: plain, odd and long. */
static const char *const sample_students[] = {
    "reference", "ana", "bea-2026", "student-007", "x", "garcia perez", "a.b@example.org", "zz-top-42",
};

typedef struct {
    int ok, bad;          /* rows that hold, rows that do not */
} tally_t;

static void row(tally_t *t, int ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void row(tally_t *t, int ok, const char *what, const char *fmt, ...)
{
    int color = report_color(stdout);
    const char *mark = ok ? "ok" : T("FAIL", "FALLA");
    printf("  %s%-5s%s ", color ? (ok ? "\033[32m" : "\033[31m") : "", mark, color ? "\033[0m" : "");
    column(what, 13);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (ok) t->ok++;
    else t->bad++;
}

/* p relative to the current folder when it is under it. */
static const char *shown(const char *p)
{
    static char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return p;
    size_t l = strlen(cwd);
    if (strncmp(p, cwd, l) == 0 && p[l] == '/') return p + l + 1;
    return p;
}

/* The repository folder holding solutions/<id> for a built-in lab: the
 * current folder, else the one mqlab sits in. */
static int find_repo(const char *id, char *out, size_t len)
{
    char exe[PATH_MAX], cwd[PATH_MAX];
    const char *roots[2] = { NULL, NULL };
    if (getcwd(cwd, sizeof cwd)) roots[0] = cwd;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) { *slash = '\0'; roots[1] = exe; }
    }
    for (int i = 0; i < 2; i++) {
        if (!roots[i]) continue;
        char *p = kit_strdup_printf("%s/solutions/%s", roots[i], id);
        int ok = kit_is_dir(p);
        free(p);
        if (ok) { snprintf(out, len, "%s", roots[i]); return 1; }
    }
    return 0;
}

/* Every folder under root (root included) that holds a file other than
 * README.md: each is one reference solution. */
static void find_solutions(const char *root, char ***out, int *n)
{
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *e;
    int has_file = 0;
    char **subs = NULL;
    int nsubs = 0;
    while ((e = readdir(d))) {
        if (kit_not_work(e->d_name)) continue;
        char *p = kit_strdup_printf("%s/%s", root, e->d_name);
        if (kit_is_dir(p)) {
            subs = kit_xrealloc(subs, sizeof *subs * (size_t)(nsubs + 1));
            subs[nsubs++] = p;
            continue;
        }
        if (strcmp(e->d_name, "README.md") != 0) has_file = 1;
        free(p);
    }
    closedir(d);
    if (has_file) {
        *out = kit_xrealloc(*out, sizeof **out * (size_t)(*n + 1));
        (*out)[(*n)++] = kit_strdup(root);
    }
    if (nsubs) qsort(subs, (size_t)nsubs, sizeof *subs, kit_cmp_strp);
    for (int i = 0; i < nsubs; i++) {
        find_solutions(subs[i], out, n);
        free(subs[i]);
    }
    free(subs);
}

/* The ids in an EXPECT file: one per line, # comments. */
static int read_expect(const char *path, char ***ids, int *n)
{
    size_t len;
    char *text = kit_read_file(path, &len, NULL);
    if (!text) return -1;
    *ids = NULL;
    *n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t') line++;
        char *end = line + strlen(line);
        while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) *--end = '\0';
        if (!*line || *line == '#') continue;
        *ids = kit_xrealloc(*ids, sizeof **ids * (size_t)(*n + 1));
        (*ids)[(*n)++] = kit_strdup(line);
    }
    free(text);
    return 0;
}

static void free_list(char **l, int n)
{
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

static int in_list(char **l, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(l[i], s) == 0) return 1;
    return 0;
}

/* Grade dir as the student "reference". KIT_OK with v filled, else err. */
static int grade(const char *id, const char *dir, verdict_t *v, char *err, size_t errlen)
{
    worker_job_t job = { .lab = id, .dir = dir, .student = "reference", .lang = opt.lang };
    memset(v, 0, sizeof *v);
    int rc = worker_grade(&job, v, err, errlen);
    if (rc == KIT_OK && v->error) snprintf(err, errlen, "%s", v->error);
    return rc;
}

/* What must not change between runs: the score and each check's fate. */
static char *shape(const verdict_t *v)
{
    char *s = kit_strdup_printf("%g/%g", v->score, v->max_score);
    for (int i = 0; i < v->nchecks; i++) {
        const check_result_t *c = &v->checks[i];
        char *next = kit_strdup_printf("%s %s:%c", s, c->id, c->passed ? 'P' : c->skipped ? 'S' : 'F');
        free(s);
        s = next;
    }
    return s;
}

/* The ids of the checks that did not pass, "a, b" (malloc'd). */
static char *lost_list(const verdict_t *v)
{
    char *s = kit_strdup("");
    for (int i = 0; i < v->nchecks; i++) {
        if (v->checks[i].passed) continue;
        char *next = kit_strdup_printf("%s%s%s", s, *s ? ", " : "", v->checks[i].id);
        free(s);
        s = next;
    }
    return s;
}

/* The first check that failed, and the first line of why. */
static char *first_failure(const verdict_t *v)
{
    if (v->missing) return kit_strdup(v->missing);
    for (int i = 0; i < v->nchecks; i++) {
        const check_result_t *c = &v->checks[i];
        if (c->passed) continue;
        const char *m = c->message ? c->message : "";
        const char *nl = strchr(m, '\n');
        return kit_strdup_printf("%s: %.*s", c->id, nl ? (int)(nl - m) : (int)strlen(m), m);
    }
    return kit_strdup("");
}

static int interrupted(int rc) { return rc == KIT_EINTR || cleanup_interrupted(); }

static int verify_reference(tally_t *t, const char *id, const char *dir)
{
    char *first = NULL;
    int same = 1, full = 1;
    char err[KIT_ERRLEN];
    char *why = NULL;
    double score = 0, max = 0;
    for (int r = 0; r < VERIFY_RUNS; r++) {
        verdict_t v;
        int rc = grade(id, dir, &v, err, sizeof err);
        if (interrupted(rc)) { verdict_clear(&v); free(first); free(why); return KIT_EINTR; }
        if (rc != KIT_OK || v.error) {
            row(t, 0, T("reference", "referencia"), "%s: %s", shown(dir), err);
            verdict_clear(&v);
            free(first);
            free(why);
            return KIT_OK;
        }
        char *s = shape(&v);
        if (!first) first = s;
        else { if (strcmp(first, s) != 0) same = 0; free(s); }
        if (!verdict_full_marks(&v)) {
            full = 0;
            if (!why) why = first_failure(&v);
            score = v.score;
        } else if (full) {
            score = v.score;
        }
        max = v.max_score;
        verdict_clear(&v);
    }
    if (full && same)
        row(t, 1, T("reference", "referencia"), T("%s: %g/%g, %d times, the same verdict", "%s: %g/%g, %d veces, el mismo veredicto"),
            shown(dir), score, max, VERIFY_RUNS);
    else if (!full)
        row(t, 0, T("reference", "referencia"), T("%s: %g/%g, not full marks (%s)", "%s: %g/%g, sin la nota máxima (%s)"),
            shown(dir), score, max, why ? why : "");
    else
        row(t, 0, T("reference", "referencia"), T("%s: full marks, but the verdicts differ between runs",
                                                 "%s: nota máxima, pero los veredictos cambian de una vez a otra"), shown(dir));
    free(first);
    free(why);
    return KIT_OK;
}

static int verify_bad(tally_t *t, const char *id, const char *dir, char **known, int nknown)
{
    char *expect_path = kit_strdup_printf("%s/EXPECT", dir);
    char **want = NULL;
    int nwant = 0;
    if (read_expect(expect_path, &want, &nwant) != 0) {
        row(t, 0, T("known-bad", "mal a propósito"), T("%s: cannot read EXPECT", "%s: no se puede leer EXPECT"), shown(dir));
        free(expect_path);
        return KIT_OK;
    }
    free(expect_path);
    for (int i = 0; i < nwant; i++) {
        if (!in_list(known, nknown, want[i])) {
            row(t, 0, T("known-bad", "mal a propósito"), T("%s: EXPECT names '%s', which is no check of the lab",
                                                           "%s: EXPECT nombra «%s», que no es una comprobación del laboratorio"),
                shown(dir), want[i]);
            free_list(want, nwant);
            return KIT_OK;
        }
    }
    verdict_t v;
    char err[KIT_ERRLEN];
    int rc = grade(id, dir, &v, err, sizeof err);
    if (interrupted(rc)) { verdict_clear(&v); free_list(want, nwant); return KIT_EINTR; }
    if (rc != KIT_OK || v.error) {
        row(t, 0, T("known-bad", "mal a propósito"), "%s: %s", shown(dir), err);
    } else {
        int exact = !v.missing;
        for (int i = 0; i < v.nchecks && exact; i++)
            if ((!v.checks[i].passed) != in_list(want, nwant, v.checks[i].id)) exact = 0;
        char *lost = lost_list(&v);
        if (exact)
            row(t, 1, T("known-bad", "mal a propósito"), T("%s: loses %s, as EXPECT says", "%s: pierde %s, como dice EXPECT"),
                shown(dir), *lost ? lost : "-");
        else {
            char *exp = kit_strdup("");
            for (int i = 0; i < nwant; i++) {
                char *next = kit_strdup_printf("%s%s%s", exp, i ? ", " : "", want[i]);
                free(exp);
                exp = next;
            }
            row(t, 0, T("known-bad", "mal a propósito"), T("%s: loses %s; EXPECT says %s", "%s: pierde %s; EXPECT dice %s"),
                shown(dir), v.missing ? T("everything (nothing handed in)", "todo (sin entrega)") : *lost ? lost : "-",
                *exp ? exp : "-");
            free(exp);
        }
        free(lost);
    }
    verdict_clear(&v);
    free_list(want, nwant);
    return KIT_OK;
}

static int write_starter(void *ud, const char *name, const char *data, size_t len)
{
    const char *dir = ud;
    char *p = kit_strdup_printf("%s/%s", dir, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    kit_mkdir_p(p, 0755, NULL);
    *slash = '/';
    char err[KIT_ERRLEN];
    int rc = kit_write_file_atomic(p, data, len, 0644, err);
    /* Starter programs keep the executable bit a student would give them. */
    if (rc == KIT_OK && len > 2 && data[0] == '#' && data[1] == '!') chmod(p, 0755);
    free(p);
    return rc;
}

static int verify_starter(tally_t *t, const char *id, double max)
{
    char dir[PATH_MAX], err[KIT_ERRLEN];
    if (kit_mkdtemp(dir, sizeof dir, "mqlab-verify", err) != KIT_OK) {
        row(t, 0, T("starter", "de partida"), "%s", err);
        return KIT_OK;
    }
    lab_starter_files(id, write_starter, dir);
    verdict_t v;
    int rc = grade(id, dir, &v, err, sizeof err);
    kit_rmdtemp(dir);
    if (interrupted(rc)) { verdict_clear(&v); return KIT_EINTR; }
    if (rc != KIT_OK || v.error)
        row(t, 0, T("starter", "de partida"), "%s", err);
    else if (v.missing)
        row(t, 1, T("starter", "de partida"), T("counts as nothing handed in (%g/%g)", "cuenta como sin entrega (%g/%g)"),
            v.score, max);
    else if (v.score < v.max_score)
        row(t, 1, T("starter", "de partida"), T("%g/%g, less than full marks", "%g/%g, menos que la nota máxima"), v.score, v.max_score);
    else
        row(t, 0, T("starter", "de partida"), T("the starter files score full marks (%g/%g): they solve the lab",
                                               "los ficheros de partida sacan la nota máxima (%g/%g): resuelven el laboratorio"),
            v.score, v.max_score);
    verdict_clear(&v);
    return KIT_OK;
}

/* Every placeholder of the instructions and hints resolves, in both
 * languages, for every sample student. */
static void verify_placeholders(tally_t *t, lab_t *lab)
{
    int nh = lab_nhints(lab), nstud = (int)(sizeof sample_students / sizeof *sample_students);
    const char *langs[2] = { "es", "en" };
    for (int s = 0; s < nstud; s++) {
        for (int l = 0; l < 2; l++) {
            for (int i = -1; i < nh; i++) {
                char err[KIT_ERRLEN] = "";
                char *text = i < 0 ? lab_instructions(lab, sample_students[s], langs[l], err, sizeof err)
                                   : lab_hint(lab, i, sample_students[s], langs[l], err, sizeof err);
                const char *left = text ? strstr(text, "{{") : NULL;
                if (!text || left) {
                    char what[64];
                    if (i < 0) snprintf(what, sizeof what, "%s (%s)", T("the instructions", "las instrucciones"), langs[l]);
                    else snprintf(what, sizeof what, T("hint %d (%s)", "la pista %d (%s)"), i + 1, langs[l]);
                    if (!text)
                        row(t, 0, T("placeholders", "marcadores"), T("%s for student '%s': %s", "%s para el estudiante «%s»: %s"),
                            what, sample_students[s], err);
                    else
                        row(t, 0, T("placeholders", "marcadores"), T("%s keep an unfilled '%.30s'", "%s dejan sin rellenar «%.30s»"),
                            what, left);
                    free(text);
                    return;
                }
                free(text);
            }
        }
    }
    row(t, 1, T("placeholders", "marcadores"), T("the instructions and the hints (%d), es and en, for %d students",
                                                 "las instrucciones y las pistas (%d), es y en, para %d estudiantes"), nh, nstud);
}

static void verify_texts(tally_t *t, lab_t *lab)
{
    char **probs;
    int n;
    lab_text_problems(lab, &probs, &n);
    if (n == 0)
        row(t, 1, T("texts", "textos"), "%s", T("titles, hints and inline feedback in es and en",
                                               "títulos, pistas y mensajes en es y en"));
    for (int i = 0; i < n && i < 10; i++) row(t, 0, T("texts", "textos"), "%s", probs[i]);
    if (n > 10) row(t, 0, T("texts", "textos"), T("... and %d more", "... y %d más"), n - 10);
    free_list(probs, n);
}

/* Verify one lab. KIT_EINTR on Ctrl-C. */
static int verify_lab(host_t *h, const char *id, tally_t *all)
{
    tally_t t = { 0, 0 };
    const char *src = lab_source(id);
    char sol_root[PATH_MAX + 160], bad_root[PATH_MAX + 160], repo[PATH_MAX];
    if (src) {
        snprintf(sol_root, sizeof sol_root, "%s/solution", src);
        snprintf(bad_root, sizeof bad_root, "%s/bad", src);
    } else if (find_repo(id, repo, sizeof repo)) {
        snprintf(sol_root, sizeof sol_root, "%s/solutions/%s", repo, id);
        snprintf(bad_root, sizeof bad_root, "%s/tests/bad/%s", repo, id);
    } else {
        snprintf(sol_root, sizeof sol_root, "solutions/%s", id);
        snprintf(bad_root, sizeof bad_root, "tests/bad/%s", id);
    }
    printf("%s %s (%s)\n", T("verify", "verificar"), id, src ? shown(src) : T("built in", "incluido"));
    lab_t *lab;
    char err[KIT_ERRLEN];
    if (lab_load(h, id, &lab, err, sizeof err) != KIT_OK) {
        row(&t, 0, T("lab file", "fichero"), "%s", err);
        all->ok += t.ok;
        all->bad += t.bad;
        return KIT_OK;
    }
    lab_info_t info;
    lab_describe(lab, opt.lang, &info);
    double max = info.max_points;
    row(&t, 1, T("lab file", "fichero"), T("loads (checks: %d, points: %g)", "carga (comprobaciones: %d, puntos: %g)"),
        info.nchecks, info.max_points);
    lab_info_clear(&info);
    verify_placeholders(&t, lab);
    verify_texts(&t, lab);
    int nchecks = 0;
    lab_budget_t b;
    if (lab_budget(lab, &b) == KIT_OK) nchecks = b.nchecks;
    char **known = nchecks ? kit_xmalloc(sizeof *known * (size_t)nchecks) : NULL;
    for (int i = 0; i < nchecks; i++) {
        char *cid, *title;
        double pts;
        lab_check_info(lab, i, opt.lang, &cid, &title, &pts);
        known[i] = cid;
        free(title);
    }
    lab_free(lab);

    int rc = KIT_OK;
    char **sols = NULL;
    int nsols = 0;
    find_solutions(sol_root, &sols, &nsols);
    if (nsols == 0)
        row(&t, 0, T("reference", "referencia"), T("no reference solution in %s", "no hay solución de referencia en %s"),
            shown(sol_root));
    for (int i = 0; i < nsols && rc == KIT_OK; i++) rc = verify_reference(&t, id, sols[i]);
    free_list(sols, nsols);
    if (rc == KIT_OK) rc = verify_starter(&t, id, max);

    DIR *d = rc == KIT_OK ? opendir(bad_root) : NULL;
    char **bads = NULL;
    int nbads = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (kit_not_work(e->d_name)) continue;
        char *p = kit_strdup_printf("%s/%s", bad_root, e->d_name);
        char *ex = kit_strdup_printf("%s/EXPECT", p);
        if (kit_file_exists(ex)) {
            bads = kit_xrealloc(bads, sizeof *bads * (size_t)(nbads + 1));
            bads[nbads++] = p;
        } else {
            free(p);
        }
        free(ex);
    }
    if (d) closedir(d);
    if (nbads) qsort(bads, (size_t)nbads, sizeof *bads, kit_cmp_strp);
    if (rc == KIT_OK && nbads == 0)
        row(&t, 0, T("known-bad", "mal a propósito"), T("none in %s: each check should have one that loses it",
                                                        "ninguna en %s: cada comprobación debería tener una que la pierda"),
            shown(bad_root));
    for (int i = 0; i < nbads && rc == KIT_OK; i++) rc = verify_bad(&t, id, bads[i], known, nchecks);
    free_list(bads, nbads);
    free_list(known, nchecks);
    if (rc == KIT_OK) {
        if (t.bad == 0) printf(T("%s: all %d hold\n\n", "%s: se cumplen las %d\n\n"), id, t.ok);
        else printf(T("%s: %d of %d do not hold\n\n", "%s: %d de %d no se cumplen\n\n"), id, t.bad, t.ok + t.bad);
    }
    all->ok += t.ok;
    all->bad += t.bad;
    return rc;
}

int cmd_verify(int argc, char **argv)
{
    char **ids = NULL;
    int n = 0;
    if (argc == 0) {
        lab_ids(&ids, &n);
    } else {
        ids = kit_xmalloc(sizeof *ids * (size_t)argc);
        for (int i = 0; i < argc; i++) {
            char id[128];
            if (resolve_lab("verify", argv[i], id, sizeof id) != EXIT_PASS) {
                free_list(ids, n);
                return EXIT_USAGE;
            }
            ids[n++] = kit_strdup(id);
        }
    }
    int rc = choose_sandbox("verify", 0);
    if (rc != EXIT_PASS) { free_list(ids, n); return rc; }
    host_t *h = new_host();
    if (!h) { free_list(ids, n); return EXIT_ENV; }
    tally_t all = { 0, 0 };
    int krc = KIT_OK;
    for (int i = 0; i < n && krc == KIT_OK; i++) krc = verify_lab(h, ids[i], &all);
    host_free(h);
    free_list(ids, n);
    if (krc == KIT_EINTR) return grade_outcome(KIT_EINTR, "", NULL, "verify");
    if (n > 1) {
        if (all.bad == 0) printf(T("all %d hold\n", "se cumplen las %d\n"), all.ok);
        else printf(T("%d of %d do not hold\n", "%d de %d no se cumplen\n"), all.bad, all.ok + all.bad);
    }
    return all.bad ? EXIT_FAIL : EXIT_PASS;
}

/* ------------------------------------------------------------ new-lab */

/* The scaffold's files are runner/newlab/... in the binary; @ID@, @NN@
 * and @NAME@ in them become the new lab's. */
static char *fill_template(const char *data, size_t len, const char *id)
{
    char nn[3] = { id[0], id[1], '\0' };
    const char *name = id + 3;
    char *out = kit_xmalloc(len * 2 + 256);
    size_t o = 0, cap = len * 2 + 256;
    for (size_t i = 0; i < len;) {
        const char *rep = NULL;
        size_t skip = 0;
        if (data[i] == '@') {
            if (i + 4 <= len && memcmp(data + i, "@ID@", 4) == 0) { rep = id; skip = 4; }
            else if (i + 4 <= len && memcmp(data + i, "@NN@", 4) == 0) { rep = nn; skip = 4; }
            else if (i + 6 <= len && memcmp(data + i, "@NAME@", 6) == 0) { rep = name; skip = 6; }
        }
        size_t add = rep ? strlen(rep) : 1;
        if (o + add + 1 > cap) { cap = cap * 2 + add; out = kit_xrealloc(out, cap); }
        if (rep) { memcpy(out + o, rep, add); o += add; i += skip; }
        else out[o++] = data[i++];
    }
    out[o] = '\0';
    return out;
}

int cmd_new_lab(int argc, char **argv)
{
    if (argc < 1 || argc > 2)
        return usage_error("new-lab", "%s", T("expects NN-name [DIR], e.g. mqlab new-lab 90-retained-config mylabs",
                                              "espera NN-nombre [DIR], p. ej. mqlab new-lab 90-retained-config mislabs"));
    const char *id = argv[0];
    int valid = strlen(id) > 3 && id[0] >= '0' && id[0] <= '9' && id[1] >= '0' && id[1] <= '9' && id[2] == '-';
    for (const char *p = id + 3; valid && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) valid = 0;
    if (!valid)
        return usage_error("new-lab", T("'%s' is not a lab id: two digits, a dash and a name in a-z, 0-9 and '-' (90-retained-config)",
                                        "«%s» no es un id de laboratorio: dos cifras, un guion y un nombre con a-z, 0-9 y '-' (90-retained-config)"),
                           id);
    const char *parent = argc > 1 ? argv[1] : ".";
    char *dir = kit_strdup_printf("%s/%s", parent, id);
    struct stat st;
    if (lstat(dir, &st) == 0) {
        fprintf(stderr, "mqlab new-lab: %s %s\n", dir, T("already exists; nothing was written", "ya existe; no se escribió nada"));
        free(dir);
        return EXIT_USAGE;
    }
    /* Write into a temporary folder beside it, then rename: never half a
     * lab on disk. */
    char err[KIT_ERRLEN];
    if (kit_mkdir_p(parent, 0755, err) != KIT_OK) {
        fprintf(stderr, "mqlab new-lab: %s\n", err);
        free(dir);
        return EXIT_USAGE;
    }
    char *tmp = kit_strdup_printf("%s/.%s.new-XXXXXX", parent, id);
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "mqlab new-lab: %s: %s\n", parent, strerror(errno));
        free(tmp);
        free(dir);
        return EXIT_USAGE;
    }
    cleanup_track_dir(tmp);
    const char *prefix = "runner/newlab/";
    size_t pl = strlen(prefix);
    int rc = KIT_OK, files = 0;
    for (size_t i = 0; rc == KIT_OK && i < embedded_count; i++) {
        const embedded_file_t *f = &embedded_files[i];
        if (strncmp(f->name, prefix, pl) != 0) continue;
        char *rel = fill_template(f->name + pl, strlen(f->name + pl), id);
        char *body = fill_template((const char *)f->data, f->len, id);
        char *path = kit_strdup_printf("%s/%s", tmp, rel);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        rc = kit_mkdir_p(path, 0755, err);
        *slash = '/';
        if (rc == KIT_OK) rc = kit_write_file_atomic(path, body, strlen(body), 0644, err);
        files++;
        free(rel);
        free(body);
        free(path);
    }
    if (rc == KIT_OK && rename(tmp, dir) != 0) {
        snprintf(err, sizeof err, "%s: %s", dir, strerror(errno));
        rc = KIT_ERR;
    }
    if (rc != KIT_OK) {
        kit_rm_rf(tmp);
        cleanup_untrack_dir(tmp);
        fprintf(stderr, "mqlab new-lab: %s\n", err);
        free(tmp);
        free(dir);
        return EXIT_USAGE;
    }
    cleanup_untrack_dir(tmp);
    free(tmp);
    printf(T("Made %s (%d files):\n"
             "  lab.lua                the lab: parameters, one check, setup (commented)\n"
             "  instructions.es.md/en  what the student reads\n"
             "  starter/               what the student starts from\n"
             "  solution/              the reference solution (full marks)\n"
             "  bad/qos0/              a known-bad submission and the checks it loses (EXPECT)\n"
             "  slides.es.md/en        slide stubs\n"
             "Next:\n"
             "  mqlab verify %s\n"
             "  MQLAB_LABS=%s mqlab list\n",
             "Creado %s (%d ficheros):\n"
             "  lab.lua                el laboratorio: parámetros, una comprobación, setup (comentado)\n"
             "  instructions.es.md/en  lo que lee el estudiante\n"
             "  starter/               de donde parte el estudiante\n"
             "  solution/              la solución de referencia (nota máxima)\n"
             "  bad/qos0/              una entrega mal a propósito y las comprobaciones que pierde (EXPECT)\n"
             "  slides.es.md/en        esbozos de diapositivas\n"
             "Siguiente:\n"
             "  mqlab verify %s\n"
             "  MQLAB_LABS=%s mqlab list\n"),
           dir, files, dir, parent);
    free(dir);
    return EXIT_PASS;
}
