/*
 * cmd_workspace.c - the student's commands on a workspace: init, list, show, hint,
 * progress, reset.
 */
#include "report.h"
#include "util.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------ init */

typedef struct {
    const char *dir;
    int written, kept;
} init_ctx_t;

static int write_new(init_ctx_t *c, const char *path, const char *data, size_t len, int mode)
{
    char err[KIT_ERRLEN];
    if (kit_file_exists(path)) { c->kept++; return KIT_OK; }
    if (kit_write_file_atomic(path, data, len, mode, err) != KIT_OK) {
        fprintf(stderr, "mqlab init: %s\n", err);
        return KIT_ERR;
    }
    c->written++;
    return KIT_OK;
}

static int starter_cb(void *ud, const char *name, const char *data, size_t len)
{
    init_ctx_t *c = ud;
    char *path = kit_strdup_printf("%s/%s", c->dir, name);
    int exec = strstr(name, ".sh") != NULL;
    int rc = write_new(c, path, data, len, exec ? 0755 : 0644);
    free(path);
    return rc;
}

int make_workspace(const char *dir, const char *student, int quiet)
{
    char err[KIT_ERRLEN];
    char *meta = kit_strdup_printf("%s/.mqlab", dir);
    int rc = kit_mkdir_p(meta, 0755, err);
    free(meta);
    if (rc != KIT_OK) { fprintf(stderr, "mqlab init: %s\n", err); return EXIT_USAGE; }

    init_ctx_t c = { .dir = NULL };
    char *sfile = kit_strdup_printf("%s/.mqlab/student", dir);
    char *sline = kit_strdup_printf("%s\n", student);
    if (kit_file_exists(sfile) && opt.student) {
        /* An explicit --student replaces the recorded one. */
        kit_write_file_atomic(sfile, sline, strlen(sline), 0644, err);
    } else {
        write_new(&c, sfile, sline, strlen(sline), 0644);
    }
    free(sfile);
    free(sline);

    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    char **ids;
    int n;
    lab_ids(&ids, &n);
    int exit_code = EXIT_PASS;
    const char *who = student_id(dir);
    for (int i = 0; i < n && exit_code == EXIT_PASS; i++) {
        lab_t *lab;
        char e[4096];
        if (lab_load(h, ids[i], &lab, e, sizeof e) != KIT_OK) {
            fprintf(stderr, "mqlab init: %s\n", e);
            exit_code = EXIT_USAGE;
            break;
        }
        char *ldir = kit_strdup_printf("%s/%s", dir, ids[i]);
        kit_mkdir_p(ldir, 0755, e);
        c.dir = ldir;
        char *text = lab_instructions(lab, who, opt.lang, e, sizeof e);
        if (text) {
            char *readme = kit_strdup_printf("%s/README.md", ldir);
            write_new(&c, readme, text, strlen(text), 0644);
            free(readme);
            free(text);
        } else {
            fprintf(stderr, "mqlab init: %s\n", e);
        }
        if (lab_starter_files(ids[i], starter_cb, &c) != KIT_OK) exit_code = EXIT_USAGE;
        free(ldir);
        lab_free(lab);
    }
    lab_free_ids(ids, n);
    host_free(h);
    if (!quiet && exit_code == EXIT_PASS) {
        printf(T("Workspace %s for student '%s': %d files written, %d already there (kept).\n",
                 "Espacio de trabajo %s para '%s': %d ficheros escritos, %d ya existían (se conservan).\n"),
               dir, who, c.written, c.kept);
        printf(T("Next: cd %s && mqlab show 01\n", "Siguiente: cd %s && mqlab show 01\n"), dir);
    }
    return exit_code;
}

int cmd_init(int argc, char **argv)
{
    if (argc > 1) return usage_error("init", "%s", T("too many arguments", "demasiados argumentos"));
    const char *dir = argc == 1 ? argv[0] : "mqlab-work";
    const char *who = opt.student;
    if (!who) {
        const char *u = getenv("MQLAB_STUDENT");
        if (!u || !*u) u = getenv("USER");
        who = u && *u ? u : "student";
    }
    for (const char *p = who; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
            return usage_error("init", T("the student id may only have letters, digits, '-', '_' and '.': %s",
                                         "el id de estudiante solo admite letras, dígitos, '-', '_' y '.': %s"), who);
    return make_workspace(dir, who, 0);
}

/* ------------------------------------------------------------ list, show */

int cmd_list(int argc, char **argv)
{
    (void)argv;
    if (argc > 0) return usage_error("list", "%s", T("takes no arguments", "no admite argumentos"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    store_t *s = open_store(have_ws ? ws : NULL);
    char **ids;
    int n;
    lab_ids(&ids, &n);
    int color = report_color(stdout);
    column("LAB", 16);
    column(T("TITLE", "TÍTULO"), 50);
    column(T("STATUS", "ESTADO"), 14);
    column(T("BEST", "MEJOR"), 10);
    printf("%s\n", T("SOURCE", "ORIGEN"));
    for (int i = 0; i < n; i++) {
        lab_t *lab;
        char err[4096];
        if (lab_load(h, ids[i], &lab, err, sizeof err) != KIT_OK) {
            printf("%-16s %s\n", ids[i], err);
            continue;
        }
        lab_info_t info;
        lab_describe(lab, opt.lang, &info);
        store_summary_t sum = { 0 };
        if (s) store_summary(s, who, ids[i], &sum, err);
        const char *status = sum.passed ? T("passed", "superado")
                           : sum.attempts ? T("in progress", "en curso") : T("not started", "sin empezar");
        const char *col = !color ? "" : sum.passed ? "\033[32m" : sum.attempts ? "\033[33m" : "";
        char best[32] = "-";
        if (sum.attempts) snprintf(best, sizeof best, "%g/%g", sum.best_score, sum.max_score);
        column(ids[i], 16);
        column(info.title, 50);
        fputs(col, stdout);
        column(status, 14);
        printf("%s", color ? "\033[0m" : "");
        column(best, 10);
        const char *src = lab_source(ids[i]);
        if (!src) printf("%s\n", T("built in", "incluido"));
        else if (lab_replaced(ids[i])) printf("%s %s\n", src, T("(replaces the built-in lab)", "(sustituye al incluido)"));
        else printf("%s\n", src);
        lab_info_clear(&info);
        lab_free(lab);
    }
    lab_free_ids(ids, n);
    store_close(s);
    host_free(h);
    return EXIT_PASS;
}

int cmd_show(int argc, char **argv)
{
    if (argc != 1) return usage_error("show", "%s", T("expects one lab, e.g. mqlab show 01", "espera un laboratorio, p. ej. mqlab show 01"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    lab_t *lab;
    int rc = load_lab(h, "show", argv[0], &lab);
    if (rc == EXIT_PASS) {
        char err[4096];
        char *text = lab_instructions(lab, student_id(have_ws ? ws : NULL), opt.lang, err, sizeof err);
        if (text) { fputs(text, stdout); if (text[0] && text[strlen(text) - 1] != '\n') putchar('\n'); }
        else { fprintf(stderr, "mqlab show: %s\n", err); rc = EXIT_USAGE; }
        free(text);
        lab_free(lab);
    }
    host_free(h);
    return rc;
}

/* ------------------------------------------------------------ hint, progress, reset */

int cmd_hint(int argc, char **argv)
{
    if (argc != 1) return usage_error("hint", "%s", T("expects one lab, e.g. mqlab hint 01", "espera un laboratorio, p. ej. mqlab hint 01"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    lab_t *lab;
    int rc = load_lab(h, "hint", argv[0], &lab);
    if (rc != EXIT_PASS) { host_free(h); return rc; }
    store_t *s = open_store(have_ws ? ws : NULL);
    int n = lab_nhints(lab), idx = 0;
    char err[4096];
    if (!s || store_use_hint(s, who, lab_id(lab), n, &idx, err) != KIT_OK) {
        if (s) fprintf(stderr, "mqlab hint: %s\n", err);
        rc = EXIT_USAGE;
    } else {
        int past = idx >= n;
        if (past) {
            if (n == 1)
                printf("%s\n", T("There are no more hints: you have already seen the only one. Here it is again (not recorded):",
                                 "No quedan más pistas: ya viste la única que hay. Aquí la tienes otra vez (no cuenta de nuevo):"));
            else
                printf(T("There are no more hints: you have already seen all %d. The last one again (not recorded):\n",
                         "No quedan más pistas: ya viste las %d. Aquí tienes otra vez la última (no cuenta de nuevo):\n"), n);
            idx = n - 1;
        }
        char *text = lab_hint(lab, idx, who, opt.lang, err, sizeof err);
        if (text) printf("%s %d/%d: %s\n", T("Hint", "Pista"), idx + 1, n, text);
        else { fprintf(stderr, "mqlab hint: %s\n", err); rc = EXIT_USAGE; }
        free(text);
    }
    store_close(s);
    lab_free(lab);
    host_free(h);
    return rc;
}

int cmd_progress(int argc, char **argv)
{
    (void)argv;
    if (argc > 0) return usage_error("progress", "%s", T("takes no arguments", "no admite argumentos"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    store_t *s = open_store(have_ws ? ws : NULL);
    if (!s) return EXIT_USAGE;
    char **ids;
    int n, passed = 0;
    lab_ids(&ids, &n);
    double total = 0;
    /* The labs themselves, for how many steps their guided mode has. */
    host_t *h = new_host();
    if (opt.json) { printf("{\"student\":"); report_json_string(stdout, who); printf(",\"labs\":["); }
    else printf("%s: %s\n", T("Student", "Estudiante"), who);
    for (int i = 0; i < n; i++) {
        store_summary_t sum = { 0 };
        char err[KIT_ERRLEN];
        store_summary(s, who, ids[i], &sum, err);
        int gsteps = 0, gdone = 0;
        lab_t *lab = NULL;
        if (h && lab_load(h, ids[i], &lab, err, sizeof err) == KIT_OK) gsteps = lab_guide_steps(lab);
        lab_free(lab);
        if (gsteps) store_guide_done(s, who, ids[i], &gdone, err);
        passed += sum.passed;
        total += sum.best_score;
        if (opt.json) {
            printf("%s{\"lab\":", i ? "," : "");
            report_json_string(stdout, ids[i]);
            printf(",\"attempts\":%d,\"best_score\":%g,\"max_score\":%g,\"passed\":%s,\"hints_used\":%d,"
                   "\"guide_steps\":%d,\"guide_done\":%d}",
                   sum.attempts, sum.best_score, sum.max_score, sum.passed ? "true" : "false", sum.hints_used,
                   gsteps, gdone);
        } else {
            char best[48] = "-";
            if (sum.attempts) snprintf(best, sizeof best, "%g/%g", sum.best_score, sum.max_score);
            char guided[48] = "";
            if (gsteps) snprintf(guided, sizeof guided, "  %s %d/%d", T("guided", "guiado"), gdone, gsteps);
            printf("  %-16s %2d %-8s  %s %-7s  %d %s%s%s\n", ids[i], sum.attempts,
                   sum.attempts == 1 ? T("attempt", "intento") : T("attempts", "intentos"),
                   T("best", "mejor"), best, sum.hints_used,
                   sum.hints_used == 1 ? T("hint", "pista") : T("hints", "pistas"), guided,
                   sum.passed ? T("  passed", "  superado") : "");
        }
    }
    if (opt.json) printf("],\"passed\":%d,\"labs_total\":%d}\n", passed, n);
    else printf(T("%d of %d labs passed.\n", "%d de %d laboratorios superados.\n"), passed, n);
    lab_free_ids(ids, n);
    store_close(s);
    if (h) host_free(h);
    return EXIT_PASS;
}

int cmd_reset(int argc, char **argv)
{
    if ((argc != 1 && !opt.all) || (argc != 0 && opt.all))
        return usage_error("reset", "%s", T("expects one lab or --all", "espera un laboratorio o --all"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    char id[128] = "", err[KIT_ERRLEN];
    if (!opt.all && lab_resolve(argv[0], id, sizeof id, err) != KIT_OK) {
        fprintf(stderr, "mqlab reset: %s\n", err);
        return EXIT_USAGE;
    }
    store_t *s = open_store(have_ws ? ws : NULL);
    if (!s) return EXIT_USAGE;
    int removed = 0;
    int rc = store_reset(s, who, opt.all ? NULL : id, &removed, err);
    store_close(s);
    if (rc != KIT_OK) { fprintf(stderr, "mqlab reset: %s\n", err); return EXIT_USAGE; }
    printf(T("Removed %d attempts of '%s' (%s), and the hints used.\n", "Borrados %d intentos de '%s' (%s) y las pistas usadas.\n"),
           removed, who, opt.all ? T("all labs", "todos los laboratorios") : id);
    return EXIT_PASS;
}
