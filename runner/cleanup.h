/*
 * cleanup.h - everything mqlab owns outside its own memory (child process
 * groups, temporary folders) is registered here, so that one place can
 * release it on every exit path: normal exit, error, SIGINT, SIGTERM.
 *
 * The first SIGINT/SIGTERM only raises a flag: every wait loop in the kit
 * polls cleanup_interrupted() and unwinds normally, and the Lua hook turns
 * it into an error. A second signal kills every registered process group
 * at once; a third exits (130) on the spot.
 */
#ifndef MQLAB_CLEANUP_H
#define MQLAB_CLEANUP_H

#include <sys/types.h>

void cleanup_init(void);          /* signal handlers + atexit, call once */
int cleanup_interrupted(void);    /* the signal number, or 0 */
void cleanup_clear_interrupt(void);

void cleanup_track_pgid(pid_t pgid);
void cleanup_untrack_pgid(pid_t pgid);
void cleanup_track_dir(const char *path);
void cleanup_untrack_dir(const char *path);

/* Kill (SIGKILL) every tracked process group, reap, remove tracked dirs. */
void cleanup_run(void);

#endif
