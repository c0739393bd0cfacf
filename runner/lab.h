/*
 * lab.h - the lab engine: finds, loads and validates lab files, renders
 * their texts with a student's parameters, and grades a submission into
 * a verdict. The Lua half is runner/lua/engine.lua; callers of this
 * header never see Lua.
 *
 * Labs come from the binary (labs/<id>/lab.lua, embedded at build time),
 * and from the folders MQLAB_LABS lists (':'-separated; each holds lab
 * folders <id>/lab.lua, or is one). A lab folder on disk is named after
 * its lab's id; one with a built-in's id replaces it (with a notice).
 */
#ifndef MQLAB_LAB_H
#define MQLAB_LAB_H

#include <stddef.h>
#include "host.h"
#include "verdict.h"

typedef struct lab lab_t;

/* The ids of every lab, sorted ("01-hello", ...). Free with lab_free_ids. */
int lab_ids(char ***ids, int *n);
void lab_free_ids(char **ids, int n);

/* "1", "01", "01-hello" (or a unique prefix) -> "01-hello". A path to a
 * lab folder ("./05-x", "mylabs/05-x") adds that lab for this process
 * and resolves to its id. KIT_ENOENT with the known ids in err otherwise
 * (the candidates, when a number fits more than one lab). */
int lab_resolve(const char *arg, char *id, size_t idlen, char *err);

/* The folder a lab comes from, or NULL when it is built in. */
const char *lab_source(const char *id);
/* Whether a lab on disk stands for a built-in lab of the same id. */
int lab_replaced(const char *id);

/* Load and validate a lab by id, or any lab file by path. A malformed
 * lab is KIT_EINVAL with "file:line: what is wrong" in err. */
int lab_load(host_t *h, const char *id, lab_t **out, char *err, size_t errlen);
int lab_load_file(host_t *h, const char *path, lab_t **out, char *err, size_t errlen);
void lab_free(lab_t *lab);

const char *lab_id(const lab_t *lab);

typedef struct {
    char *title;
    char *programs;    /* "hello" or "" ("a, b" when several) */
    char *files;       /* "filters.txt" or "" */
    int nchecks;
    double max_points;
} lab_info_t;
int lab_describe(lab_t *lab, const char *lang, lab_info_t *info);
void lab_info_clear(lab_info_t *info);

/* Texts with the student's own parameters (malloc'd; NULL + err on a
 * lab error). Hints are 0-based. */
char *lab_instructions(lab_t *lab, const char *student, const char *lang,
                       char *err, size_t errlen);
int lab_nhints(lab_t *lab);
char *lab_hint(lab_t *lab, int i, const char *student, const char *lang,
               char *err, size_t errlen);

/* Starter files of a lab (labs/<id>/starter/...): fn is called with the
 * relative name and the content of each. */
int lab_starter_files(const char *id,
                      int (*fn)(void *ud, const char *name, const char *data, size_t len),
                      void *ud);

/* How long a grading of this lab may take: its setup (the lab's
 * setup_timeout, default 30 s, plus the kit's own share), every check's
 * timeout (default 10 s), and finish. A worker is killed past total_ms. */
typedef struct {
    int setup_ms, finish_ms, total_ms;
    int nchecks;
} lab_budget_t;
int lab_budget(lab_t *lab, lab_budget_t *b);

/* Check i (0-based): id, title in lang (malloc'd) and points. */
int lab_check_info(lab_t *lab, int i, const char *lang, char **id, char **title, double *points);

/* Progress of a grading, as it happens (for the worker's pipe). phase is
 * "setup", "check" (i is the check, 0-based) or "finish". status (may be
 * NULL) gets what the lab says it is doing, ctx:status(...), already in
 * the student's language. */
typedef struct {
    void (*phase)(void *ud, const char *phase, int i, const char *id, const char *title, int budget_ms);
    void (*result)(void *ud, int i, const check_result_t *r);
    void *ud;
    void (*status)(void *ud, const char *text);
} lab_progress_t;

/* Grade the submission in dir (an absolute path). KIT_OK when grading
 * ran (whatever the score), KIT_EINTR on Ctrl-C, KIT_EMISSING when the
 * machine lacks something (err says what), KIT_ERR when the lab itself
 * failed. v is filled in every case that returns KIT_OK.
 *
 * The grading gets a private folder: work/ for the lab, scratch/ that
 * every program may write (ctx.scratch), and, when the lab runs
 * programs, a private copy of the submission they run in (ctx.copy).
 * Lab code reaches only the paths policy.h lists. */
int lab_grade(lab_t *lab, const char *dir, const char *student, const char *lang,
              verdict_t *v, char *err, size_t errlen);
/* The same, telling pr (may be NULL) what happens. */
int lab_grade_with(lab_t *lab, const char *dir, const char *student, const char *lang,
                   const lab_progress_t *pr, verdict_t *v, char *err, size_t errlen);

/* For `mqlab verify`: where the lab's student-facing texts lack es or
 * en ("file:line: what"). Free each and the list. */
int lab_text_problems(lab_t *lab, char ***out, int *n);

/* Guided mode (mqlab start): how many steps the lab's guide has (0: no
 * guided mode), and running them: the lab's broker behind a proxy on
 * want_port (when free; else a free port), the student's parameters,
 * then each step until the wire shows it met (step_met is called for
 * it). KIT_OK when every step was met, KIT_EINTR on Ctrl-C, KIT_EMISSING
 * or KIT_ERR (err says why). Nothing is left running in any case. dir:
 * the student's folder for the lab, readable while the guide runs, which
 * its steps may use (lab 11 serves it to a browser); NULL for none. */
int lab_guide_steps(lab_t *lab);
int lab_guide(lab_t *lab, const char *student, const char *lang, const char *dir, int want_port,
              void (*step_met)(void *ud, int i, const char *step), void *ud, char *err, size_t errlen);

#endif
