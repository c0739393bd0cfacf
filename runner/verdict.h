/*
 * verdict.h - the result record of one grading: a lab, a student, and one
 * entry per check. The lab engine fills it, report prints it, store keeps
 * it. Plain data: no Lua, no SQLite.
 */
#ifndef MQLAB_VERDICT_H
#define MQLAB_VERDICT_H

#include <stdint.h>

typedef struct {
    char *id;          /* check id, e.g. "connects" */
    char *title;       /* in the chosen language */
    int passed;
    int skipped;       /* not run: a dependency failed (message says which) */
    double points;     /* earned */
    double max_points;
    char *message;     /* feedback: what was seen, what to change */
} check_result_t;

typedef struct {
    char *lab;         /* lab id, e.g. "01-hello" */
    char *title;       /* lab title in the chosen language */
    char *student;
    char *submission;  /* folder graded */
    char *error;       /* set when grading itself could not run (score 0) */
    int incomplete;    /* the grading did not finish (killed at its limit,
                          or the worker died): no score, whatever ran */
    char *missing;     /* nothing was handed in: what was found instead
                          (no checks ran, score 0); NULL otherwise */
    char *hash;        /* the submission's content (class_hash), hex */
    double score, max_score;
    double duration_s;
    int64_t started_ms; /* wall clock, ms since epoch */
    int nchecks;
    check_result_t *checks;
} verdict_t;

/* Append a check (strings are copied). */
check_result_t *verdict_add(verdict_t *v, const char *id, const char *title,
                            int passed, int skipped, double points,
                            double max_points, const char *message);
/* Recompute score and max_score from the checks (score 0 when the
 * verdict is incomplete). */
void verdict_total(verdict_t *v);
/* Every point of a lab that had points, in a grading that ran to the end
 * on something handed in. */
int verdict_full_marks(const verdict_t *v);
/* The grading gave no finished list of checks: it did not finish, or it
 * could not run at all (v->error says why). */
int verdict_unfinished(const verdict_t *v);
/* Free what the record owns (not v itself). */
void verdict_clear(verdict_t *v);

#endif
