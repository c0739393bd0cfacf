/*
 * store.h - progress in SQLite: students, attempts, check results and
 * hints used. WAL journal, schema migrations by PRAGMA user_version, and
 * one transaction per attempt (an attempt is stored whole or not at all).
 *
 * The same schema serves a student's progress file and an instructor's
 * gradebook.
 */
#ifndef MQLAB_STORE_H
#define MQLAB_STORE_H

#include <stdint.h>
#include "verdict.h"

typedef struct store store_t;

/* Open (creating the file, its parent folder and the schema if needed)
 * and migrate to the current schema version. */
int store_open(store_t **out, const char *path, char *err);
void store_close(store_t *s);

/* The schema version this build writes (and that store_open migrates to). */
int store_schema_version(void);
/* The version found in an open database. */
int store_db_version(store_t *s);

/* Record a verdict (student created if new) in one transaction. */
int store_record(store_t *s, const verdict_t *v, int64_t *attempt_id, char *err);

typedef struct {
    int attempts;
    double best_score, max_score;   /* best attempt (max_score of that attempt) */
    double last_score;
    int64_t last_ms;                /* when the last attempt started, 0: never */
    int hints_used;
    int passed;                     /* some attempt had score == max_score > 0 */
} store_summary_t;

/* Summary of one student's work on one lab (zeros when none). */
int store_summary(store_t *s, const char *student, const char *lab,
                  store_summary_t *out, char *err);

/* Record that the student asked for a hint. Returns in *index the 0-based
 * index of the hint to show: the count used before this call. Once every
 * hint was shown, *index is nhints and nothing more is recorded. */
int store_use_hint(store_t *s, const char *student, const char *lab,
                   int nhints, int *index, char *err);

/* Delete attempts, check results and hints of a student for one lab, or
 * for all labs when lab is NULL. *removed gets the attempts removed. */
int store_reset(store_t *s, const char *student, const char *lab,
                int *removed, char *err);

/* Check results of the student's best attempt on a lab, in check order;
 * calls fn once per check. Returns KIT_ENOENT when there is no attempt. */
int store_best_checks(store_t *s, const char *student, const char *lab,
                      void (*fn)(void *ud, const check_result_t *c), void *ud,
                      char *err);

/* The latest attempt of a student on a lab, whole (v is cleared first and
 * must be verdict_clear'ed). KIT_ENOENT when there is none. */
int store_latest(store_t *s, const char *student, const char *lab, verdict_t *v, char *err);

/* One attempt per (student, lab): the latest, or with best the highest
 * score (a finished grading first, then the latest). Ordered by student,
 * then lab; only the labs listed when nlabs > 0. fn gets each attempt
 * whole (it may not keep v); a non-KIT_OK answer stops the walk and is
 * returned. */
int store_each(store_t *s, const char *const *labs, int nlabs, int best,
               int (*fn)(void *ud, verdict_t *v), void *ud, char *err);

/* Guided mode: record that student met step of lab (once; a step met
 * again keeps its first time), and count the steps met. */
int store_guide_step(store_t *s, const char *student, const char *lab, const char *step, char *err);
int store_guide_done(store_t *s, const char *student, const char *lab, int *n, char *err);

/* Merge the gradebooks ins[0..n) (the shards of one class, graded apart)
 * into a new gradebook at out, whole or not at all: it is built in a
 * temporary file beside out and renamed over it. Every table a result
 * depends on is merged: students, attempts with their check results,
 * hints and guided steps. An attempt that two inputs both hold (the same
 * student, lab, start, score and everything else) is kept once, as are a
 * hint (student, lab, index) and a guided step. An input that is not an
 * SQLite file, not a gradebook, of another schema version, or out itself,
 * is refused with its name and nothing is written. */
typedef struct {
    int attempts;       /* attempts in out */
    int duplicates;     /* attempts skipped as already merged */
    int students;       /* students in out */
} store_merge_stats_t;
int store_merge(const char *out, const char *const *ins, int n,
                store_merge_stats_t *stats, char *err);

#endif
