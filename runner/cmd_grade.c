/*
 * cmd_grade.c - grading: check (a student's own folder) and grade (a class, into
 * a gradebook). Each folder is graded by a worker (worker.h).
 */
#include "report.h"
#include "worker.h"
#include "util.h"

#include <libgen.h>
#include <limits.h>
#include <poll.h>
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

/* One submission of a class being graded. */
enum { SLOT_NONE, SLOT_SKIPPED, SLOT_RUNNING, SLOT_DONE };
typedef struct {
    char abs[PATH_MAX];
    char *base;             /* the folder's name: the student id */
    worker_job_t job;
    verdict_t v;
    worker_t *w;
    int state, r;           /* r: grade_outcome's exit code */
} slot_t;

/* One verdict into the gradebook and onto stdout in fmt. */
static void print_and_record(store_t *s, verdict_t *v, const char *who, const char *fmt, int *first, int *exit_code)
{
    char err[KIT_ERRLEN];
    if (v->error) *exit_code = EXIT_FAIL;
    if (store_record(s, v, NULL, err) != KIT_OK) fprintf(stderr, "mqlab grade: %s\n", err);
    if (strcmp(fmt, "json") == 0) {
        if (!*first) fputs(",", stdout);
        report_json(stdout, v);
    } else if (strcmp(fmt, "csv") == 0) {
        if (*first) report_csv_header(stdout, v);
        report_csv_row(stdout, v);
    } else {
        char score[32];
        if (v->incomplete) snprintf(score, sizeof score, "—/%g", v->max_score);
        else snprintf(score, sizeof score, "%g/%g", v->score, v->max_score);
        column(who, 24);
        printf("%9s %7.1fs  ", score, v->duration_s);
        if (v->incomplete) {
            printf("%s\n", v->error);
        } else {
            int any = 0;
            for (int k = 0; k < v->nchecks; k++)
                if (!v->checks[k].passed) { printf("%s%s", any ? ", " : "", v->checks[k].id); any = 1; }
            printf("%s\n", any ? "" : "-");
        }
    }
    fflush(stdout);
    *first = 0;
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
    int jobs = opt.jobs ? opt.jobs : 1;
    if (jobs < 1 || jobs > 64) {
        store_close(s);
        free(dbpath);
        return usage_error("grade", "%s", T("--jobs wants a number from 1 to 64", "--jobs quiere un número de 1 a 64"));
    }
    int n = argc - 1;
    slot_t *slots = kit_xmalloc(sizeof *slots * (size_t)n);
    memset(slots, 0, sizeof *slots * (size_t)n);
    for (int k = 0; k < n; k++) {
        slot_t *sl = &slots[k];
        if (!realpath(argv[k + 1], sl->abs)) { sl->state = SLOT_SKIPPED; continue; }
        sl->base = kit_strdup(basename(sl->abs));
        sl->job = (worker_job_t){ .lab = lab, .dir = sl->abs, .student = sl->base, .lang = opt.lang };
    }

    int exit_code = EXIT_PASS, first = 1, stop = 0, running = 0, started = 0, printed = 0;
    if (strcmp(fmt, "json") == 0) fputs("[", stdout);
    if (strcmp(fmt, "text") == 0) {
        column(T("STUDENT", "ESTUDIANTE"), 24);
        printf("%9s %8s  %s\n", T("SCORE", "NOTA"), T("TIME", "TIEMPO"), T("FAILED CHECKS", "COMPROBACIONES FALLIDAS"));
    }
    struct pollfd *pf = kit_xmalloc(sizeof *pf * (size_t)n);
    while (printed < n) {
        /* Start workers up to the limit, in the folders' order. */
        while (!stop && running < jobs && started < n) {
            slot_t *sl = &slots[started++];
            if (sl->state == SLOT_SKIPPED) continue;
            worker_start(&sl->job, &sl->v, &sl->w);
            sl->state = SLOT_RUNNING;
            running++;
        }
        /* Wait for any of them, then let each act on what it said. */
        int np = 0;
        for (int k = 0; k < n; k++)
            if (slots[k].state == SLOT_RUNNING && worker_fd(slots[k].w) >= 0)
                pf[np++] = (struct pollfd){ worker_fd(slots[k].w), POLLIN, 0 };
        if (np > 0) poll(pf, (nfds_t)np, 100);
        for (int k = 0; k < n; k++) {
            slot_t *sl = &slots[k];
            if (sl->state != SLOT_RUNNING || !worker_step(sl->w, 0)) continue;
            char werr[8192] = "";
            int wrc = worker_finish(sl->w, werr, sizeof werr);
            sl->w = NULL;
            sl->state = SLOT_DONE;
            running--;
            sl->r = grade_outcome(wrc, werr, &sl->v, "grade");
            if (sl->r == 130 || sl->r == EXIT_ENV) {
                if (!stop) exit_code = sl->r;
                stop = 1;
            }
        }
        /* Print and record in the folders' order. After a stop, what
         * never started is left out. */
        while (printed < n) {
            slot_t *sl = &slots[printed];
            if (sl->state == SLOT_RUNNING) break;
            if (sl->state == SLOT_NONE) {
                if (!stop) break;
                printed++;
                continue;
            }
            printed++;
            if (sl->state != SLOT_DONE) continue;
            if (sl->r == 130 || sl->r == EXIT_ENV) continue;
            if (sl->r == EXIT_USAGE) { exit_code = EXIT_FAIL; continue; }
            print_and_record(s, &sl->v, sl->base, fmt, &first, &exit_code);
        }
    }
    free(pf);
    for (int k = 0; k < n; k++) {
        verdict_clear(&slots[k].v);
        free(slots[k].base);
    }
    free(slots);
    if (strcmp(fmt, "json") == 0) fputs("]\n", stdout);
    if (strcmp(fmt, "text") == 0)
        fprintf(stderr, T("gradebook: %s\n", "libro de notas: %s\n"), dbpath);
    store_close(s);
    free(dbpath);
    return exit_code;
}
