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

/* Register a child's process group (by its leader's pid) or a folder, so
 * that cleanup_run() ends or removes it on every exit path. The tables
 * are fixed arrays, walked by the signal handler without allocating.
 * Returns 0, or -1 with a message on stderr when the table is full or the
 * entry cannot be kept (pgid <= 0, a path of PATH_MAX bytes or more): the
 * caller should then stop what it started, as nothing would end it. */
int cleanup_track_pgid(pid_t pgid);
void cleanup_untrack_pgid(pid_t pgid);
int cleanup_track_dir(const char *path);
void cleanup_untrack_dir(const char *path);

/* Kill (SIGKILL) every tracked process group, reap, remove tracked dirs. */
void cleanup_run(void);
/* In a forked child that goes on running kit code (a worker): what the
 * parent tracks is not the child's to end or remove (other workers'
 * groups and folders), so the child starts with empty tables. */
void cleanup_forget_all(void);

/* Sleep up to ms; returns KIT_EINTR early if the user interrupted. */
int kit_sleep_ms(int ms);

/* Make a private (0700) temporary folder under $TMPDIR (or /tmp) named
 * PREFIX-XXXXXX, and register it with cleanup so it is removed on every
 * exit path. out receives the path. The folder holds KIT_OWNER_FILE, so
 * that cleanup_sweep() can tell when its owner is gone. */
int kit_mkdtemp(char *out, size_t outlen, const char *prefix, char *err);
/* Remove a folder made by kit_mkdtemp and forget it. */
void kit_rmdtemp(const char *path);

/* The owner of a folder made by kit_mkdtemp: a text file, written with a
 * rename so it is never seen half-written, of four lines:
 *   pid 12345          the process that made the folder
 *   start 8812345      field 22 of /proc/PID/stat (clock ticks after boot),
 *                      which tells a reused pid from the owner
 *   boot 0e3c...       /proc/sys/kernel/random/boot_id
 *   pidns 4026531836   inode of /proc/self/ns/pid: its pids mean nothing
 *                      to a process in another pid namespace (a sandbox)
 * The leading dot keeps it out of listings of the folder. */
#define KIT_OWNER_FILE ".mqlab-owner"

/* What cleanup_sweep() did, for `mqlab doctor` to print. */
typedef struct {
    int folders_removed;    /* folders of a dead mqlab, removed */
    int processes_ended;    /* processes that still held one (SIGKILL) */
    int folders_kept;       /* mqlab-* folders left alone: a live owner,
                               too recent to judge, or held by us */
    int folders_failed;     /* of a dead mqlab, but not removed entirely */
} sweep_report_t;

/* Sweep what a killed mqlab (kill -9, a crash, a power cut) left behind.
 * Looks at every mqlab-* folder directly in tmpdir (NULL: $TMPDIR, else
 * /tmp, as kit_mkdtemp) that is this user's (the folder or its owner
 * file). When its owner is dead (no such pid, a zombie, a pid reused by a
 * later process, an earlier boot): SIGKILL every process that still holds
 * it (its cwd, root, executable, an open file or a command-line argument
 * inside), reap those that are our children, then remove the folder
 * without following symlinks or leaving tmpdir. A folder without an owner
 * file (an older mqlab) is swept only when it has the shape kit_mkdtemp
 * gives (mqlab-NAME-XXXXXX, mode 0700) and was last modified more than a
 * day ago. A folder held by this process or an ancestor of it is kept.
 * out: the counts (may be NULL; filled on every return).
 * Returns KIT_OK; KIT_ERR when tmpdir cannot be read, /proc cannot be
 * (nothing is judged then) or a folder could not be removed entirely
 * (see err; the others are still swept); KIT_EINTR on Ctrl-C. */
int cleanup_sweep(const char *tmpdir, sweep_report_t *out, char *err);

/* Try to connect to 127.0.0.1:port until it accepts or timeout_ms passes
 * (KIT_OK, KIT_ETIMEOUT, or KIT_EINTR on Ctrl-C). */
int kit_wait_port(int port, int timeout_ms);

/* The parent of pid as /proc tells it, or -1. */
pid_t cleanup_parent_of(pid_t pid);

#endif
