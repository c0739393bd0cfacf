/*
 * worker.h - one grading in its own process.
 *
 * The command line never runs a lab in its own process. It forks a
 * worker per grading: the worker loads the lab, starts the brokers, the
 * proxy and the student's programs, grades, and reports over a pipe, line
 * by line, what it is doing (phase, check under way, each result) and
 * finally the verdict. The parent alone writes the progress database and
 * the gradebook, and it enforces a hard wall-clock limit derived from the
 * lab (its setup, the sum of its check timeouts, finish, and a margin),
 * plus a tighter one per phase: a lab whose Lua swallows its own timeout,
 * or sticks inside a long C call, is killed with everything the worker
 * started, and the verdict says "grading did not finish in N s" instead
 * of a score.
 *
 * Where the platform allows it (root, or any process allowed to unshare
 * a network namespace), the worker gets its own network namespace with
 * its own loopback: a graded program cannot reach or squat another
 * grading's brokers and proxies, and ports never collide between
 * parallel gradings. Elsewhere the shared loopback is the fallback.
 *
 * Every folder a worker makes lives under one root folder the parent
 * made (TMPDIR is pointed there), so the parent removes all of it even
 * after killing the worker. Ctrl-C: the parent passes the first signal on
 * to the worker, which unwinds (stops brokers and programs); a second one
 * kills the worker outright; a third leaves at once.
 */
#ifndef MQLAB_WORKER_H
#define MQLAB_WORKER_H

#include <stddef.h>
#include "verdict.h"

/* What a worker tells its parent, as it happens. */
typedef struct {
    enum { WEV_BEGIN, WEV_PHASE, WEV_RESULT, WEV_STATUS, WEV_DONE } kind;
    /* WEV_BEGIN: the lab's title, check count and total budget */
    const char *title;
    int nchecks, total_ms;
    /* WEV_PHASE: "setup", "check" or "finish"; the check (0-based) */
    const char *phase;
    int index, budget_ms;
    const char *id;          /* also the check's title in `title` */
    /* WEV_RESULT */
    const check_result_t *result;
    /* WEV_STATUS: what the lab says it is doing (ctx:status), in the
     * student's language. WEV_DONE: the verdict is complete (the worker
     * still has to exit). */
    const char *text;
} worker_event_t;

typedef struct {
    const char *lab;         /* lab id, resolved ("01-hello") */
    const char *dir;         /* the submission, absolute */
    const char *student;
    const char *lang;
    /* Called in the parent for each event (may be NULL). */
    void (*on_event)(void *ud, const worker_event_t *ev);
    void *ud;
} worker_job_t;

/* Grade one submission in a worker. KIT_OK with v filled (v->error set
 * when the grading could not finish: killed at its limit, or the worker
 * died); KIT_EINTR on Ctrl-C; KIT_EMISSING when the machine lacks
 * something; KIT_ERR when the lab itself is broken (err says where). */
int worker_grade(const worker_job_t *job, verdict_t *v, char *err, size_t errlen);

/* The same in three steps, so that one parent can serve several workers
 * (grade --jobs). worker_start forks (job and v must live until
 * worker_finish); always call worker_finish, even after a failed start.
 * worker_step waits at most timeout_ms for the worker's next lines, acts
 * on them and on the limits, and returns 1 once the worker is done.
 * worker_fd is what to poll (-1 once done). worker_finish reaps it,
 * frees w and answers as worker_grade does. */
typedef struct worker worker_t;
int worker_start(const worker_job_t *job, verdict_t *v, worker_t **w);
int worker_fd(const worker_t *w);
int worker_step(worker_t *w, int timeout_ms);
int worker_finish(worker_t *w, char *err, size_t errlen);
/* Stop a running grading that is no longer wanted (mqlab watch: the
 * files changed). The worker is asked to unwind as on Ctrl-C (SIGTERM:
 * it stops its brokers and programs); if it has not left after 2 s it is
 * told again (it then kills everything it started), and after 4 s its
 * group is killed (its children follow by PDEATHSIG). Returns once the
 * worker is gone; worker_finish then answers KIT_EINTR ("cancelled") and
 * removes the worker's folder. Harmless on a finished or failed start. */
void worker_cancel(worker_t *w);

/* Whether workers get their own network namespace here, and why not
 * (probed once: a short-lived child tries). */
int worker_netns_available(char *why, size_t len);

#endif
