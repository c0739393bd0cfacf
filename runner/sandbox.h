/*
 * sandbox.h - runs one program inside a bubblewrap (bwrap) sandbox: the
 * system read-only, its own folder writable, a private /tmp and HOME, a
 * fresh /proc in its own PID namespace, and nothing else of the host
 * unless the caller binds it. The network namespace is the caller's.
 *
 * Process tree, host side:
 *
 *   mqlab ── bwrap (own process group, tracked by cleanup)
 *              └── launcher: `<mqlab> __box-init ...`, PID 1 inside
 *                     └── the program (leader of its own session)
 *
 * The launcher (sbx_init_main) switches to the sandbox uid when the kit
 * is root, forks the program with its resource limits, reaps whatever is
 * orphaned inside, and reports the program's true wait status to the kit
 * over a socket the program cannot reach. When the launcher exits, the
 * kernel kills everything left in the namespace.
 *
 * The kit signals the program directly (its process group, by host pid),
 * so a TERM runs the program's own handler; sbx_end() ends the launcher
 * and bwrap's group with SIGKILL, which ends the namespace.
 */
#ifndef MQLAB_SANDBOX_H
#define MQLAB_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/* Where the sandbox keeps what it makes for itself. */
#define SBX_HOME "/home/sandbox"      /* HOME inside: a private tmpfs */
#define SBX_INIT_PATH "/.mqlab/init"  /* the launcher, bound read-only */

/* The sandbox uid (root mode): SBX_UID_BASE + getpid() % SBX_UID_RANGE.
 * The base sits above the ranges Debian and systemd hand out to users,
 * system services and containers. */
#define SBX_UID_BASE 1879048192u
#define SBX_UID_RANGE 65536u
#define SBX_NPROC_DEFAULT 64

/* Limits of sbx_copy_tree. */
#define SBX_COPY_MAX_ENTRIES 2000
#define SBX_COPY_MAX_BYTES (64L * 1024 * 1024)
#define SBX_COPY_MAX_DEPTH 16

/* The hook at the very top of main(): `mqlab __box-init [options] --
 * argv...` is the launcher, PID 1 inside a sandbox. Returns the exit
 * code of the launcher (it never returns to the kit's own main). */
int sbx_init_main(int argc, char **argv);

/* The binary that acts as launcher (it must run sbx_init_main for
 * "__box-init"): kit_self_exe() unless set. The unit tests set it. The
 * string is copied. */
void sbx_set_launcher(const char *path);
const char *sbx_launcher(void);

/* 1 when sandboxes can run here. Probed once per process by running a
 * sandbox of the exact kind the kit uses, with `true` inside; a forked
 * worker inherits the answer. When 0, why (len bytes, may be NULL) says
 * what failed and what would fix it. */
int sbx_available(char *why, size_t len);

/* Without the probe (it costs a whole sandbox start): 1 when bwrap is
 * installed, else 0 with why. A start that then fails because bwrap
 * cannot make its sandbox here settles sbx_available's answer (0, with
 * the same reason and fix the probe would give); sbx_known_unavailable()
 * says so. */
int sbx_installed(char *why, size_t len);
int sbx_known_unavailable(void);

/* One line for `mqlab doctor`: the mode (privileged as root, or a user
 * namespace), the uid programs run as, and what contains a fork bomb
 * (or that nothing does). */
void sbx_describe(char *buf, size_t len);

/* 1 when the kit is root: bwrap runs privileged and programs run as
 * sbx_uid(), with RLIMIT_NPROC. 0: a user namespace, the kit's uid. */
int sbx_privileged(void);

/* The uid (and gid) programs of this kit process run as in root mode. A
 * forked worker gets its own, so parallel gradings do not share a
 * process count. */
uid_t sbx_uid(void);

/* Resource limits for the program; 0 leaves one unset. nproc applies in
 * root mode only (RLIMIT_NPROC means nothing to root, nor sanely in a
 * user namespace). */
typedef struct {
    long mem_mb;              /* RLIMIT_AS */
    long cpu_s;               /* RLIMIT_CPU (SIGXCPU, then SIGKILL a second later) */
    long fsize_mb;            /* RLIMIT_FSIZE */
    long nofile;              /* RLIMIT_NOFILE */
    long nproc;               /* RLIMIT_NPROC; 0: SBX_NPROC_DEFAULT */
} sbx_limits_t;

typedef struct {
    const char *dir;          /* bound writable at the same path and the
                                 program's cwd; NULL: none, cwd / */
    const char *const *ro;    /* host paths bound read-only at the same path
                                 (NULL-terminated, may be NULL) */
    const char *const *rw;    /* ... and writable. A path in both is read-only. */
    char *const *argv;        /* argv[0]: a path inside, or a name on PATH */
    char *const *envp;        /* the program's whole environment */
    int out, err;             /* become its fds 1 and 2; stdin is /dev/null */
    const sbx_limits_t *lim;  /* NULL: no limits (nproc still applies) */
} sbx_spec_t;

typedef struct sbx_proc sbx_proc_t;

/* Start a sandbox and wait until the program runs (exec'd or failed to:
 * an exec failure is exit code 127 with "mqlab: cannot run" on its
 * stderr). Ancestors of every bind are made traversable (0755) inside.
 * Returns KIT_OK; KIT_EINVAL for a bad path (relative with "..", /proc,
 * "/", a missing bind source); KIT_EMISSING when sandboxes cannot run
 * here; KIT_EINTR on Ctrl-C; KIT_ERR with bwrap's own words. */
int sbx_start(sbx_proc_t **out, const sbx_spec_t *s, char *err);

/* The program's host pid, also its process group (it is a session
 * leader): kill(-sbx_pid(b), sig) reaches it and what it forked. Its
 * number stays reserved (the launcher does not reap it) until sbx_end. */
pid_t sbx_pid(const sbx_proc_t *b);

/* Wait up to timeout_ms (0: just look, -1: no limit) for the program's
 * exit. Returns 1 when it exited, with *status its wait status, or -1
 * when the sandbox died without telling; 0 while it runs. Once it has
 * exited, the rest of its namespace is already killed. */
int sbx_poll(sbx_proc_t *b, int timeout_ms, int *status);

/* SIGKILL the launcher and bwrap's process group (which ends the
 * namespace), reap bwrap, free. NULL is fine. */
void sbx_end(sbx_proc_t *b);

/* Give a folder (and everything in it, symlinks not followed) to
 * sbx_uid(), so a sandboxed program can write it. Nothing to do when the
 * kit is not root. */
int sbx_chown_tree(const char *path, char *err);

/* The private copy of a submission: dst (which must not exist) gets the
 * regular files and folders of src, with their modes (setuid, setgid and
 * sticky bits dropped), owned by sbx_uid() when root. Symbolic links,
 * devices, sockets and FIFOs are skipped, never followed. More than
 * SBX_COPY_MAX_ENTRIES entries, SBX_COPY_MAX_BYTES bytes or folders
 * deeper than SBX_COPY_MAX_DEPTH is KIT_EINVAL, and nothing is left at
 * dst. */
int sbx_copy_tree(const char *src, const char *dst, char *err);

#endif
