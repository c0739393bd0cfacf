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

#include <stddef.h>
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

/* Sleep up to ms; returns KIT_EINTR early if the user interrupted. */
int kit_sleep_ms(int ms);

/* Make a private (0700) temporary folder under $TMPDIR (or /tmp) named
 * PREFIX-XXXXXX, and register it with cleanup so it is removed on every
 * exit path. out receives the path. */
int kit_mkdtemp(char *out, size_t outlen, const char *prefix, char *err);
/* Remove a folder made by kit_mkdtemp and forget it. */
void kit_rmdtemp(const char *path);

/* Try to connect to 127.0.0.1:port until it accepts or timeout_ms passes
 * (KIT_OK, KIT_ETIMEOUT, or KIT_EINTR on Ctrl-C). */
int kit_wait_port(int port, int timeout_ms);

#endif
