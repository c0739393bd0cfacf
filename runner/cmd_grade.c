/*
 * cmd_grade.c - grading: check (a student's own folder) and grade (a class, into
 * a gradebook). Each folder is graded by a worker (worker.h).
 */
#include "report.h"
#include "util.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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

    /* The folder: given, else the lab's folder in the workspace, else here. */
    char ws[PATH_MAX];
    int have_ws = find_workspace(argc == 2 ? argv[1] : ".", ws, sizeof ws);
    char *dir;
    if (argc == 2) dir = kit_strdup(argv[1]);
    else {
        char *cand = have_ws ? kit_strdup_printf("%s/%s", ws, lab) : NULL;
        dir = cand && kit_is_dir(cand) ? cand : (free(cand), kit_strdup("."));
    }
    const char *who = student_id(have_ws ? ws : NULL);
    verdict_t v = { 0 };
    rc = grade_one(lab, dir, who, &v, "check");
    if (rc == EXIT_PASS || rc == EXIT_FAIL) {
        if (strcmp(fmt, "json") == 0) report_json(stdout, &v);
        else report_text(stdout, &v, opt.lang, report_color(stdout));
        fflush(stdout);
        if (!opt.no_record) {
            store_t *s = open_store(have_ws ? ws : NULL);
            char err[KIT_ERRLEN];
            if (s && store_record(s, &v, NULL, err) != KIT_OK) fprintf(stderr, "mqlab check: %s\n", err);
            store_close(s);
        }
        if (v.error) {
            fprintf(stderr, "mqlab check: %s\n", v.error);
            if (rc == EXIT_PASS) rc = EXIT_FAIL;
        }
    }
    verdict_clear(&v);
    free(dir);
    return rc;
}

int cmd_grade(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("grade", "%s", T("expects a lab and at least one submission folder",
                                             "espera un laboratorio y al menos una carpeta de entrega"));
    const char *fmt = opt.format ? opt.format : "text";
    if (strcmp(fmt, "text") && strcmp(fmt, "json") && strcmp(fmt, "csv"))
        return usage_error("grade", T("unknown format '%s' (text, json or csv)", "formato desconocido '%s' (text, json o csv)"), fmt);
    for (int i = 1; i < argc; i++)
        if (!kit_is_dir(argv[i]))
            return usage_error("grade", T("%s is not a folder", "%s no es una carpeta"), argv[i]);
    char lab[128];
    int rc = resolve_lab("grade", argv[0], lab, sizeof lab);
    if (rc != EXIT_PASS) return rc;
    if ((rc = choose_sandbox("grade", 1)) != EXIT_PASS) return rc;
    char *dbpath = kit_strdup(opt.db ? opt.db : "gradebook.db");
    store_t *s = NULL;
    char err[KIT_ERRLEN];
    if (store_open(&s, dbpath, err) != KIT_OK) {
        fprintf(stderr, "mqlab grade: %s\n", err);
        free(dbpath);
        return EXIT_USAGE;
    }
    int exit_code = EXIT_PASS, first = 1;
    if (strcmp(fmt, "json") == 0) fputs("[", stdout);
    if (strcmp(fmt, "text") == 0) {
        column(T("STUDENT", "ESTUDIANTE"), 24);
        printf("%9s %8s  %s\n", T("SCORE", "NOTA"), T("TIME", "TIEMPO"), T("FAILED CHECKS", "COMPROBACIONES FALLIDAS"));
    }
    for (int i = 1; i < argc; i++) {
        char abs[PATH_MAX];
        if (!realpath(argv[i], abs)) continue;
        char *base = kit_strdup(basename(abs));
        verdict_t v = { 0 };
        int r = grade_one(lab, argv[i], base, &v, "grade");
        if (r == 130 || r == EXIT_ENV) { exit_code = r; verdict_clear(&v); free(base); break; }
        if (r == EXIT_USAGE) { exit_code = EXIT_FAIL; verdict_clear(&v); free(base); continue; }
        if (v.error) exit_code = EXIT_FAIL;
        if (store_record(s, &v, NULL, err) != KIT_OK) fprintf(stderr, "mqlab grade: %s\n", err);
        if (strcmp(fmt, "json") == 0) {
            if (!first) fputs(",", stdout);
            report_json(stdout, &v);
        } else if (strcmp(fmt, "csv") == 0) {
            if (first) report_csv_header(stdout, &v);
            report_csv_row(stdout, &v);
        } else {
            char score[32];
            if (v.incomplete) snprintf(score, sizeof score, "—/%g", v.max_score);
            else snprintf(score, sizeof score, "%g/%g", v.score, v.max_score);
            column(base, 24);
            printf("%9s %7.1fs  ", score, v.duration_s);
            if (v.incomplete) {
                printf("%s\n", v.error);
            } else {
                int any = 0;
                for (int k = 0; k < v.nchecks; k++)
                    if (!v.checks[k].passed) { printf("%s%s", any ? ", " : "", v.checks[k].id); any = 1; }
                printf("%s\n", any ? "" : "-");
            }
        }
        fflush(stdout);
        first = 0;
        verdict_clear(&v);
        free(base);
    }
    if (strcmp(fmt, "json") == 0) fputs("]\n", stdout);
    if (strcmp(fmt, "text") == 0)
        fprintf(stderr, T("gradebook: %s\n", "libro de notas: %s\n"), dbpath);
    store_close(s);
    free(dbpath);
    return exit_code;
}
