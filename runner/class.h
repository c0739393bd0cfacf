/*
 * class.h - grading a class: which folders hold whose submissions, and the
 * queue that grades them, a worker per submission (worker.h), several at
 * a time, into the gradebook.
 *
 * The layout rule, applied to every folder given and, for a class, to
 * each of its children:
 *   1. a folder holding .mqlab/, or folders named after labs
 *      ("03-qos-loss/"), is one student's workspace; the student is the
 *      id in .mqlab/student, else the folder's name, and lab NN is
 *      graded from its NN-name/ folder;
 *   2. a folder holding a lab's files (a program in any form the kit
 *      runs: sensor.py, sensor.c, sensor.lua, sensor.sh, sensor; or a
 *      data file: topics.txt) is one lab folder; the student is the
 *      folder's name (or the workspace's, when it sits in one);
 *   3. any other folder holding folders is a class, and its children
 *      go through the same rule (below the folders given, only a folder
 *      with a submission somewhere inside is a class);
 *   4. anything else is a student who handed in nothing.
 * A lab that a student's folder does not hold is a missing submission,
 * its own outcome (not a 0), saying what was found instead. So is a lab
 * folder holding only the lab's starter files, unchanged.
 */
#ifndef MQLAB_CLASS_H
#define MQLAB_CLASS_H

#include <stddef.h>
#include "store.h"
#include "verdict.h"

typedef struct class class_t;

/* One (student, lab) to grade. */
typedef struct {
    char *student;
    char *lab;          /* lab id */
    char *dir;          /* the lab folder, absolute; NULL when missing */
    char *where;        /* the student's folder, as given (for messages) */
    verdict_t v;        /* filled once done */
    int state;          /* CLASS_* */
    int outcome;        /* when done: 0 graded, 130 interrupted, 2 the lab
                           failed, 3 the machine lacks something */
    int resumed;        /* taken from the gradebook (--resume) */
    char hash[65];      /* what was graded (class_hash), hex */
} class_sub_t;

enum { CLASS_WAITING, CLASS_RUNNING, CLASS_DONE, CLASS_DROPPED };

/* Find the submissions of labs (resolved ids) in dirs. student (--student)
 * names the student of a single submission folder. NULL with err set on
 * bad input (a folder that cannot be read, two folders claiming one
 * student, --student with a class). Warnings go to stderr. */
class_t *class_find(const char *const *labs, int nlabs, const char *const *dirs, int ndirs,
                    const char *student, const char *lang, char *err, size_t errlen);
void class_free(class_t *c);
int class_count(const class_t *c);
class_sub_t *class_at(class_t *c, int i);

/* Sharding: a class graded in N parts (N machines, or N Kubernetes pods),
 * each part a stable 1/N of the students, whatever the order of the
 * folders. A student's shard is the FNV-1a 64-bit hash of the student id,
 * mod count; index is 0-based (as Kubernetes' JOB_COMPLETION_INDEX).
 * class_parse_shard reads "I/N" (digits only, 0 <= I < N <= 10000):
 * KIT_OK, or KIT_EINVAL. class_keep_shard drops every submission of a
 * student of another shard (they are neither graded nor missing) and
 * answers in *kept and *total the students kept and in the class. */
int class_shard_of(const char *student, int count);
int class_parse_shard(const char *arg, int *index, int *count);
void class_keep_shard(class_t *c, int index, int count, int *kept, int *total);

typedef struct {
    int jobs;           /* workers at a time */
    int resume;         /* skip what the gradebook already has, unchanged */
    int progress;       /* a live progress line on stderr */
    const char *lang;
    /* Called once per submission, in the class's order, when it is done
     * (also when it was dropped after an interruption). */
    void (*emit)(void *ud, class_sub_t *sub);
    void *ud;
} class_run_t;

/* Grade every submission: missing ones at once, the rest in workers,
 * each recorded in s as soon as it finishes (so a Ctrl-C keeps what was
 * graded). Returns 0, 130 after Ctrl-C, 3 when the machine lacks
 * something, 1 when some submission could not be graded or recorded. */
int class_run(class_t *c, store_t *s, const class_run_t *o);

/* How many workers keep this machine busy: eight per core (a grading
 * mostly waits), bounded by the memory available and the descriptors
 * this process may open. */
int class_default_jobs(void);

/* The SHA-256, in hex, of the files under dir (names, kinds, contents),
 * in a stable order. 0, or -1 when dir cannot be read. */
int class_hash(const char *dir, char hex[65]);

#endif
