/*
 * cmd_grade.c - grading: check (a student's own folder), grade (a class, into
 * a gradebook; the class itself is class.h) and gradebook export. Each
 * submission is graded by a worker (worker.h).
 */
#include "class.h"
#include "report.h"
#include "worker.h"
#include "util.h"

#include <dirent.h>
#include <limits.h>
#include <strings.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------ check */

/* lab_starter_files callback: ud is { dir, found }; stops at the first
 * starter file that dir holds. */
static int starter_here(void *ud, const char *name, const char *data, size_t len)
{
    (void)data;
    (void)len;
    const char **dir = ud;
    char *p = kit_strdup_printf("%s/%s", dir[0], name);
    if (kit_file_exists(p)) dir[1] = name;
    free(p);
    return dir[1] ? KIT_ERR : KIT_OK;   /* stop at the first */
}

/* A file whose name holds the program's, in any case (Hello.py,
 * hello_final.py): a misnamed program, which check names in its verdict. */
static int has_near_name(const char *dir, const char *prog)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int yes = 0;
    size_t n = strlen(prog);
    while (d && !yes && (e = readdir(d))) {
        for (const char *p = e->d_name; *p && !yes; p++)
            yes = strncasecmp(p, prog, n) == 0;
    }
    if (d) closedir(d);
    return yes;
}

/* Does dir hold any of the lab's files: a form of one of its programs (or
 * a misnamed one), one of its files, or a starter file? A lab that names
 * none takes any folder. names gets what the lab expects, for the message. */
static int holds_lab_files(const char *lab_id, const char *dir, char *names, size_t len)
{
    static const char *const forms[] = { ".py", ".lua", ".c", ".sh", "" };
    host_t *h = new_host();
    lab_t *lab = NULL;
    char err[4096];
    if (!h || lab_load(h, lab_id, &lab, err, sizeof err) != KIT_OK) {
        host_free(h);
        return 1;   /* cannot tell: let the grading say what is wrong */
    }
    lab_info_t info;
    lab_describe(lab, opt.lang, &info);
    int found = !*info.programs && !*info.files;
    size_t used = 0;
    names[0] = '\0';
    char *lists[2] = { info.programs, info.files };
    for (int l = 0; l < 2; l++) {
        char *copy = kit_strdup(lists[l]), *save = NULL;
        for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
            for (size_t f = 0; f < (l == 0 ? sizeof forms / sizeof *forms : 1); f++) {
                char *p = kit_strdup_printf("%s/%s%s", dir, tok, l == 0 ? forms[f] : "");
                found |= kit_file_exists(p);
                free(p);
            }
            if (l == 0 && !found) found = has_near_name(dir, tok);
            int w = snprintf(names + used, len - used, "%s%s%s", used ? ", " : "", tok, l == 0 ? ".py" : "");
            if (w > 0 && (size_t)w < len - used) used += (size_t)w;
        }
        free(copy);
    }
    if (!found) {
        const char *ud[2] = { dir, NULL };
        lab_starter_files(lab_id, starter_here, ud);
        found = ud[1] != NULL;
    }
    lab_info_clear(&info);
    lab_free(lab);
    host_free(h);
    return found;
}

/* A workspace the student may have meant: ./mqlab-work (what init and
 * tour make by default), else ~/mqlab-work. */
static int guess_workspace(char *ws, size_t len)
{
    char probe[PATH_MAX];
    const char *home = getenv("HOME");
    if (find_workspace("mqlab-work", ws, len)) return 1;
    if (home && *home) {
        snprintf(probe, sizeof probe, "%s/mqlab-work", home);
        if (find_workspace(probe, ws, len)) return 1;
    }
    return 0;
}

/* dir is in no workspace and holds nothing of the lab: most likely the
 * student is in the wrong folder. Say where the work is; grade nothing. */
static int not_a_submission(const char *lab, const char *dir, const char *names)
{
    char abs[PATH_MAX], ws[PATH_MAX];
    if (!realpath(dir, abs)) snprintf(abs, sizeof abs, "%s", dir);
    fprintf(stderr, T("mqlab check: %s is not inside an mqlab workspace and holds none of the files of %s (%s): nothing was graded or recorded.\n",
                      "mqlab check: %s no está dentro de un espacio de trabajo de mqlab ni tiene ninguno de los ficheros de %s (%s): no se evaluó ni se registró nada.\n"),
            abs, lab, names);
    if (guess_workspace(ws, sizeof ws))
        fprintf(stderr, T("Your workspace is %s: cd %s && mqlab check %.2s\n",
                          "Tu espacio de trabajo es %s: cd %s && mqlab check %.2s\n"), ws, ws, lab);
    else
        fprintf(stderr, "%s\n", T("Make a workspace with mqlab init (or mqlab tour), or name the folder with your work: mqlab check NN DIR",
                                  "Crea un espacio de trabajo con mqlab init (o mqlab tour), o indica la carpeta con tu trabajo: mqlab check NN DIR"));
    return EXIT_USAGE;
}

int cmd_check(int argc, char **argv)
{
    if (argc < 1 || argc > 2)
        return usage_error("check", "%s", T("expects a lab and optionally a folder: mqlab check 01 [DIR]",
                                             "espera un laboratorio y, si quieres, una carpeta: mqlab check 01 [DIR]"));
    const char *fmt = opt.format ? opt.format : "text";
    if (strcmp(fmt, "text") && strcmp(fmt, "json"))
        return usage_error("check", T("unknown format '%s' (text or json)", "formato desconocido '%s' (text o json)"), fmt);
    char lab[128];
    int rc = resolve_lab("check", argv[0], lab, sizeof lab);
    if (rc != EXIT_PASS) return rc;
    if ((rc = choose_sandbox("check", 0)) != EXIT_PASS) return rc;

    char ws[PATH_MAX];
    int have_ws = 0;
    char *dir = check_folder(argc == 2 ? argv[1] : NULL, lab, ws, sizeof ws, &have_ws);
    if (!have_ws && kit_is_dir(dir)) {
        char names[512];
        if (!holds_lab_files(lab, dir, names, sizeof names)) {
            rc = not_a_submission(lab, dir, names);
            free(dir);
            return rc;
        }
    }
    const char *who = student_id(have_ws ? ws : NULL);
    verdict_t v = { 0 };
    live_t *live = live_new(fmt);
    rc = grade_one(lab, dir, who, &v, "check", live);
    live_free(live);
    if (rc == EXIT_PASS || rc == EXIT_FAIL) rc = check_report(&v, rc, fmt, have_ws ? ws : NULL, "check");
    verdict_clear(&v);
    free(dir);
    return rc;
}

char *check_folder(const char *given, const char *lab, char *ws, size_t wslen, int *have_ws)
{
    *have_ws = find_workspace(given ? given : ".", ws, wslen);
    if (given) return kit_strdup(given);
    char *cand = *have_ws ? kit_strdup_printf("%s/%s", ws, lab) : NULL;
    return cand && kit_is_dir(cand) ? cand : (free(cand), kit_strdup("."));
}

int check_report(verdict_t *v, int rc, const char *fmt, const char *ws, const char *cmd)
{
    if (strcmp(fmt, "json") == 0) report_json(stdout, v);
    else report_text(stdout, v, opt.lang, report_color(stdout));
    fflush(stdout);
    if (!opt.no_record) {
        store_t *s = open_store(ws);
        char err[KIT_ERRLEN];
        if (s && store_record(s, v, NULL, err) != KIT_OK) fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        store_close(s);
    }
    if (v->error) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, v->error);
        if (rc == EXIT_PASS) rc = EXIT_FAIL;
    }
    return rc;
}

/* ------------------------------------------------------------ LABS */

/* "03", "01,03,05" or "all" into resolved ids, sorted, each once. */
static int parse_labs(const char *cmd, const char *arg, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    if (strcmp(arg, "all") == 0) {
        if (lab_ids(out, n) != KIT_OK || *n == 0)
            return usage_error(cmd, "%s", T("no labs found", "no hay laboratorios"));
        return EXIT_PASS;
    }
    char *copy = kit_strdup(arg), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        char id[128];
        int rc = resolve_lab(cmd, tok, id, sizeof id);
        if (rc != EXIT_PASS) {
            lab_free_ids(*out, *n);
            *out = NULL;
            *n = 0;
            free(copy);
            return rc;
        }
        int seen = 0;
        for (int i = 0; i < *n; i++) seen |= strcmp((*out)[i], id) == 0;
        if (seen) continue;
        *out = kit_xrealloc(*out, sizeof **out * (size_t)(*n + 1));
        (*out)[(*n)++] = kit_strdup(id);
    }
    free(copy);
    if (*n == 0) return usage_error(cmd, T("no lab in '%s'", "no hay ningún laboratorio en '%s'"), arg);
    qsort(*out, (size_t)*n, sizeof **out, kit_cmp_strp);
    return EXIT_PASS;
}

/* ------------------------------------------------------------ output */

static const char *const formats[] = { "text", "json", "csv", "csv-checks", "junit", "gradescope" };

static int known_format(const char *f)
{
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
        if (strcmp(formats[i], f) == 0) return 1;
    return 0;
}

typedef struct {
    const char *fmt;
    int many_labs;
    int first;
    const verdict_t **vs;   /* what was graded, in order */
    int n, cap;
} out_t;

static void table_header(const out_t *o)
{
    column(T("STUDENT", "ESTUDIANTE"), 20);
    if (o->many_labs) column(T("LAB", "LABORATORIO"), 18);
    printf("%11s %8s  %s\n", T("SCORE", "NOTA"), T("TIME", "TIEMPO"), T("FAILED CHECKS", "COMPROBACIONES FALLIDAS"));
}

static void table_row(const out_t *o, const verdict_t *v, int resumed)
{
    char score[48];
    if (v->missing) snprintf(score, sizeof score, "%s", T("missing", "sin entrega"));
    else if (v->incomplete) snprintf(score, sizeof score, "—/%g", v->max_score);
    else snprintf(score, sizeof score, "%g/%g", v->score, v->max_score);
    column(v->student, 20);
    if (o->many_labs) column(v->lab, 18);
    /* printf pads by bytes: pad the score by characters. */
    int chars = 0;
    for (const unsigned char *p = (const unsigned char *)score; *p; p++) chars += (*p & 0xC0) != 0x80;
    printf("%*s%s ", chars < 11 ? 11 - chars : 0, "", score);
    if (resumed) printf("%8s  ", T("kept", "guardada"));
    else printf("%7.1fs  ", v->duration_s);
    if (v->missing) {
        printf("%s\n", v->missing);
    } else if (verdict_unfinished(v)) {
        printf("%s\n", v->error ? v->error : "");
    } else {
        int any = 0;
        for (int k = 0; k < v->nchecks; k++)
            if (!v->checks[k].passed) { printf("%s%s", any ? ", " : "", v->checks[k].id); any = 1; }
        printf("%s\n", any ? "" : "-");
    }
}

static void keep(out_t *o, const verdict_t *v)
{
    if (o->n == o->cap) o->vs = kit_xrealloc(o->vs, sizeof *o->vs * (size_t)(o->cap = o->cap ? o->cap * 2 : 64));
    o->vs[o->n++] = v;
}

/* As each submission is done: the streamed formats print at once. */
static void emit(void *ud, class_sub_t *sub)
{
    out_t *o = ud;
    if (sub->state != CLASS_DONE || sub->outcome != 0) return;
    keep(o, &sub->v);
    if (strcmp(o->fmt, "text") == 0) {
        table_row(o, &sub->v, sub->resumed);
    } else if (strcmp(o->fmt, "json") == 0) {
        fputs(o->first ? "\n" : ",\n", stdout);
        report_json(stdout, &sub->v);
    }
    o->first = 0;
    fflush(stdout);
}

/* Write what `write` prints into path, whole or not at all. */
static int write_file(const char *path, void (*write)(FILE *f, void *ud), void *ud)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return -1;
    write(f, ud);
    fclose(f);
    char err[KIT_ERRLEN];
    int rc = kit_write_file_atomic(path, buf, len, 0644, err);
    if (rc != KIT_OK) fprintf(stderr, "mqlab: %s\n", err);
    free(buf);
    return rc == KIT_OK ? 0 : -1;
}

typedef struct {
    const verdict_t *const *vs;
    int n;
} slice_t;

static void w_gradescope(FILE *f, void *ud) { slice_t *s = ud; report_gradescope(f, s->vs, s->n); }
static void w_csv_checks(FILE *f, void *ud) { slice_t *s = ud; report_csv_checks(f, s->vs, s->n); }

static int count_students(const verdict_t *const *vs, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(vs[i]->student, vs[i - 1]->student) != 0) k++;
    return k;
}

/* The formats written once everything is graded (or exported). Returns
 * an exit code. */
static int write_whole(const char *cmd, const char *fmt, const verdict_t *const *vs, int n,
                       char *const *labs, int nlabs)
{
    if (strcmp(fmt, "csv") == 0) {
        report_csv_students(stdout, vs, n, (const char *const *)labs, nlabs);
    } else if (strcmp(fmt, "junit") == 0) {
        report_junit(stdout, vs, n);
    } else if (strcmp(fmt, "csv-checks") == 0) {
        for (int l = 0; l < nlabs; l++) {
            int a = 0, k = 0;
            const verdict_t **one = kit_xmalloc(sizeof *one * (size_t)(n ? n : 1));
            for (int i = 0; i < n; i++)
                if (strcmp(vs[i]->lab, labs[l]) == 0) one[k++] = vs[i];
            slice_t sl = { one, k };
            if (!opt.out) {
                report_csv_checks(stdout, one, k);
            } else {
                char *path = kit_strdup_printf("%s/%s.csv", opt.out, labs[l]);
                a = write_file(path, w_csv_checks, &sl);
                if (a == 0) fprintf(stderr, "%s\n", path);
                free(path);
            }
            free(one);
            if (a != 0) return EXIT_FAIL;
        }
    } else if (strcmp(fmt, "gradescope") == 0) {
        if (!opt.out) {
            report_gradescope(stdout, vs, n);
            return EXIT_PASS;
        }
        for (int i = 0; i < n;) {
            int k = i;
            while (k < n && strcmp(vs[k]->student, vs[i]->student) == 0) k++;
            char *dir = kit_strdup_printf("%s/%s", opt.out, vs[i]->student);
            char err[KIT_ERRLEN];
            int bad = kit_mkdir_p(dir, 0755, err) != KIT_OK;
            if (bad) fprintf(stderr, "mqlab %s: %s\n", cmd, err);
            char *path = kit_strdup_printf("%s/results.json", dir);
            slice_t sl = { vs + i, k - i };
            if (!bad) bad = write_file(path, w_gradescope, &sl) != 0;
            free(path);
            free(dir);
            if (bad) return EXIT_FAIL;
            i = k;
        }
        fprintf(stderr, T("%d results.json in %s\n", "%d results.json en %s\n"), count_students(vs, n), opt.out);
    }
    return EXIT_PASS;
}

/* --out is wanted by some formats and meaningless to others. */
static int check_out(const char *cmd, const char *fmt, int nlabs)
{
    if (opt.out && strcmp(fmt, "gradescope") && strcmp(fmt, "csv-checks"))
        return usage_error(cmd, T("--out is for --format gradescope and csv-checks, not %s",
                                  "--out es para --format gradescope y csv-checks, no para %s"), fmt);
    if (!opt.out && strcmp(fmt, "csv-checks") == 0 && nlabs > 1)
        return usage_error(cmd, "%s", T("--format csv-checks with several labs writes one file per lab: give --out DIR",
                                        "--format csv-checks con varios laboratorios escribe un fichero por laboratorio: da --out DIR"));
    if (opt.out) {
        char err[KIT_ERRLEN];
        if (kit_mkdir_p(opt.out, 0755, err) != KIT_OK) {
            fprintf(stderr, "mqlab %s: %s\n", cmd, err);
            return EXIT_USAGE;
        }
    }
    return EXIT_PASS;
}

/* ------------------------------------------------------------ grade */

int cmd_grade(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("grade", "%s", T("expects the labs (03, 01,03 or all) and at least one folder",
                                             "espera los laboratorios (03, 01,03 o all) y al menos una carpeta"));
    const char *fmt = opt.format ? opt.format : "text";
    if (!known_format(fmt))
        return usage_error("grade", T("unknown format '%s' (text, json, csv, csv-checks, junit or gradescope)",
                                      "formato desconocido '%s' (text, json, csv, csv-checks, junit o gradescope)"), fmt);
    if (opt.jobs < 0)
        return usage_error("grade", "%s", T("--jobs wants a number from 1 to 64", "--jobs quiere un número de 1 a 64"));
    int shard = 0, shards = 0;
    if (opt.shard && class_parse_shard(opt.shard, &shard, &shards) != KIT_OK)
        return usage_error("grade", T("--shard wants I/N, a part I from 0 to N-1 of N parts (0/3, 1/3, 2/3), digits only, N up to 10000; not '%s'",
                                      "--shard quiere I/N, la parte I, de 0 a N-1, de N partes (0/3, 1/3, 2/3), solo dígitos, N hasta 10000; no «%s»"),
                           opt.shard);
    for (int i = 1; i < argc; i++)
        if (!kit_is_dir(argv[i]))
            return usage_error("grade", T("%s is not a folder", "%s no es una carpeta"), argv[i]);
    char **labs = NULL;
    int nlabs = 0;
    int rc = parse_labs("grade", argv[0], &labs, &nlabs);
    if (rc != EXIT_PASS) return rc;
    if ((rc = check_out("grade", fmt, nlabs)) != EXIT_PASS) {
        lab_free_ids(labs, nlabs);
        return rc;
    }
    char err[4096];
    class_t *c = class_find((const char *const *)labs, nlabs, (const char *const *)(argv + 1), argc - 1,
                            opt.student, opt.lang, err, sizeof err);
    if (!c) {
        fprintf(stderr, "mqlab grade: %s\n", err);
        lab_free_ids(labs, nlabs);
        return EXIT_USAGE;
    }
    if (shards > 0 && class_count(c) > 0) {
        /* An empty shard is no error: with few students and many pods,
         * some pods have nobody, and their (empty) gradebooks merge. */
        int kept = 0, total = 0;
        class_keep_shard(c, shard, shards, &kept, &total);
        fprintf(stderr, T("mqlab grade: shard %d/%d: %d of the %d students\n",
                          "mqlab grade: parte %d/%d: %d de los %d estudiantes\n"), shard, shards, kept, total);
    } else if (class_count(c) == 0) {
        fprintf(stderr, "mqlab grade: %s\n", T("nothing to grade there", "ahí no hay nada que evaluar"));
        class_free(c);
        lab_free_ids(labs, nlabs);
        return EXIT_USAGE;
    }
    if ((rc = choose_sandbox("grade", 1)) != EXIT_PASS) {
        class_free(c);
        lab_free_ids(labs, nlabs);
        return rc;
    }
    if (strcmp(fmt, "gradescope") == 0 && !opt.out) {
        int students = 1;
        for (int i = 1; i < class_count(c); i++)
            students += strcmp(class_at(c, i)->student, class_at(c, i - 1)->student) != 0;
        if (students > 1) {
            class_free(c);
            lab_free_ids(labs, nlabs);
            return usage_error("grade", "%s", T("--format gradescope with several students writes one results.json each: give --out DIR",
                                                 "--format gradescope con varios estudiantes escribe un results.json por estudiante: da --out DIR"));
        }
    }
    const char *dbpath = opt.db ? opt.db : "gradebook.db";
    store_t *s = NULL;
    if (store_open(&s, dbpath, err) != KIT_OK) {
        fprintf(stderr, "mqlab grade: %s\n", err);
        class_free(c);
        lab_free_ids(labs, nlabs);
        return EXIT_USAGE;
    }

    out_t o = { .fmt = fmt, .many_labs = nlabs > 1, .first = 1 };
    if (strcmp(fmt, "text") == 0) table_header(&o);
    if (strcmp(fmt, "json") == 0) fputs("{\"verdicts\":[", stdout);
    fflush(stdout);
    const char *nc = getenv("NO_COLOR");
    class_run_t run = {
        .jobs = opt.jobs > 0 ? opt.jobs : class_default_jobs(),
        .resume = opt.resume,
        .progress = isatty(STDERR_FILENO) && !(nc && *nc) && strcmp(fmt, "json") != 0,
        .lang = opt.lang, .emit = emit, .ud = &o,
    };
    rc = class_run(c, s, &run);
    if (strcmp(fmt, "json") == 0) {
        fputs("\n],\"summary\":", stdout);
        report_summary_json(stdout, o.vs, o.n);
        fputs("}\n", stdout);
    } else if (strcmp(fmt, "text") == 0) {
        report_summary_text(stdout, o.vs, o.n, opt.lang);
        fprintf(stderr, T("gradebook: %s\n", "libro de notas: %s\n"), dbpath);
    } else {
        int w = write_whole("grade", fmt, o.vs, o.n, labs, nlabs);
        if (w != EXIT_PASS && rc == EXIT_PASS) rc = w;
    }
    fflush(stdout);
    free(o.vs);
    store_close(s);
    class_free(c);
    lab_free_ids(labs, nlabs);
    return rc;
}

/* ------------------------------------------------------------ gradebook */

typedef struct {
    verdict_t *v;
    int n, cap;
} pile_t;

static int take(void *ud, verdict_t *v)
{
    pile_t *p = ud;
    if (p->n == p->cap) p->v = kit_xrealloc(p->v, sizeof *p->v * (size_t)(p->cap = p->cap ? p->cap * 2 : 64));
    p->v[p->n++] = *v;
    *v = (verdict_t){ 0 };
    return KIT_OK;
}

/* mqlab gradebook merge A.db B.db ... --db OUT.db */
static int gradebook_merge(int argc, char **argv)
{
    if (argc < 1)
        return usage_error("gradebook", "%s", T("merge expects the gradebooks to merge and --db OUT: mqlab gradebook merge A.db B.db --db OUT.db",
                                                 "merge espera los libros de notas que unir y --db SALIDA: mqlab gradebook merge A.db B.db --db SALIDA.db"));
    if (!opt.db)
        return usage_error("gradebook", "%s", T("merge writes a new gradebook: give it with --db OUT.db",
                                                 "merge escribe un libro de notas nuevo: indícalo con --db SALIDA.db"));
    char err[KIT_ERRLEN];
    store_merge_stats_t st;
    int rc = store_merge(opt.db, (const char *const *)argv, argc, &st, err);
    if (rc != KIT_OK) {
        fprintf(stderr, "mqlab gradebook merge: %s\n", err);
        return rc == KIT_EINVAL ? EXIT_USAGE : EXIT_FAIL;
    }
    fprintf(stderr, T("mqlab gradebook merge: %d gradebooks into %s: %d students, %d attempts (%d already there, kept once)\n",
                      "mqlab gradebook merge: %d libros de notas en %s: %d estudiantes, %d intentos (%d repetidos, guardados una vez)\n"),
            argc, opt.db, st.students, st.attempts, st.duplicates);
    return EXIT_PASS;
}

int cmd_gradebook(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "merge") == 0) return gradebook_merge(argc - 1, argv + 1);
    if (argc < 1 || strcmp(argv[0], "export") != 0 || argc > 2)
        return usage_error("gradebook", "%s", T("expects: mqlab gradebook export [LABS], or mqlab gradebook merge A.db B.db... --db OUT.db",
                                                 "espera: mqlab gradebook export [LABS], o mqlab gradebook merge A.db B.db... --db SALIDA.db"));
    const char *fmt = opt.format ? opt.format : "csv";
    if (!known_format(fmt))
        return usage_error("gradebook", T("unknown format '%s' (csv, csv-checks, json, junit, gradescope or text)",
                                          "formato desconocido '%s' (csv, csv-checks, json, junit, gradescope o text)"), fmt);
    const char *which = opt.attempt ? opt.attempt : "latest";
    if (strcmp(which, "latest") && strcmp(which, "best"))
        return usage_error("gradebook", T("--attempt is latest or best, not '%s'", "--attempt es latest o best, no '%s'"), which);
    const char *dbpath = opt.db ? opt.db : "gradebook.db";
    if (!kit_file_exists(dbpath))
        return usage_error("gradebook", T("no gradebook at %s (give --db FILE)", "no hay libro de notas en %s (da --db FICHERO)"), dbpath);
    char **labs = NULL;
    int nlabs = 0, rc = parse_labs("gradebook", argc == 2 ? argv[1] : "all", &labs, &nlabs);
    if (rc != EXIT_PASS) return rc;
    store_t *s = NULL;
    char err[KIT_ERRLEN];
    pile_t p = { 0 };
    if (store_open(&s, dbpath, err) != KIT_OK ||
        store_each(s, (const char *const *)labs, nlabs, strcmp(which, "best") == 0, take, &p, err) != KIT_OK) {
        fprintf(stderr, "mqlab gradebook: %s\n", err);
        store_close(s);
        lab_free_ids(labs, nlabs);
        free(p.v);
        return EXIT_USAGE;
    }
    store_close(s);
    /* Only the labs that have results get columns. */
    int used = 0;
    for (int l = 0; l < nlabs; l++) {
        int any = 0;
        for (int i = 0; i < p.n && !any; i++) any = strcmp(p.v[i].lab, labs[l]) == 0;
        if (any) labs[used++] = labs[l];
        else free(labs[l]);
    }
    nlabs = used;
    const verdict_t **vs = kit_xmalloc(sizeof *vs * (size_t)(p.n ? p.n : 1));
    for (int i = 0; i < p.n; i++) vs[i] = &p.v[i];
    if ((rc = check_out("gradebook", fmt, nlabs)) == EXIT_PASS) {
        if (strcmp(fmt, "gradescope") == 0 && !opt.out && count_students(vs, p.n) > 1) {
            rc = usage_error("gradebook", "%s", T("--format gradescope with several students writes one results.json each: give --out DIR",
                                                   "--format gradescope con varios estudiantes escribe un results.json por estudiante: da --out DIR"));
        } else if (strcmp(fmt, "json") == 0) {
            fputs("{\"verdicts\":[", stdout);
            for (int i = 0; i < p.n; i++) {
                fputs(i ? ",\n" : "\n", stdout);
                report_json(stdout, vs[i]);
            }
            fputs("\n],\"summary\":", stdout);
            report_summary_json(stdout, vs, p.n);
            fputs("}\n", stdout);
        } else if (strcmp(fmt, "text") == 0) {
            out_t o = { .fmt = fmt, .many_labs = nlabs > 1 };
            table_header(&o);
            for (int i = 0; i < p.n; i++) table_row(&o, vs[i], 0);
            report_summary_text(stdout, vs, p.n, opt.lang);
        } else {
            rc = write_whole("gradebook", fmt, vs, p.n, labs, nlabs);
        }
    }
    for (int i = 0; i < p.n; i++) verdict_clear(&p.v[i]);
    free(p.v);
    free(vs);
    lab_free_ids(labs, nlabs);
    return rc;
}
