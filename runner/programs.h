/*
 * programs.h - runs a student's submission as LABS.md's contract says.
 *
 * For a program called E in folder DIR it looks, in this order, for
 * E.py (run by a Python that can import paho.mqtt.client; MQLAB_PYTHON
 * overrides), E.lua (run by `mqlab run`), E.c (compiled with
 * `cc -O2 -Wall E.c -lmosquitto [-lsqlite3]`), E.sh (run by sh) and an
 * executable E.
 *
 * The program gets its own process group, resource limits, a clean
 * environment (PATH, HOME, LANG, PYTHONUNBUFFERED=1, plus the lab's
 * variables), its working directory set to DIR, stdin from /dev/null,
 * and stdout/stderr captured to files in a private folder (capped by
 * RLIMIT_FSIZE). A wall timeout stops it with SIGTERM, then SIGKILL.
 * Every group is registered with cleanup, so nothing survives mqlab.
 *
 * While the sandbox is on (prog_set_sandbox; the default where
 * sbx_available() says yes), every program and every C compiler run
 * happens inside a bubblewrap sandbox (sandbox.h): it sees the system
 * read-only, its own folder (writable), a private /tmp and HOME, the
 * extra paths the caller binds, and nothing else; as root it runs as
 * sbx_uid(), so its folder and writable binds must belong to that uid
 * (sbx_copy_tree, sbx_chown_tree). Signals, exit codes, limits and the
 * captured output mean the same with and without it.
 */
#ifndef MQLAB_PROGRAMS_H
#define MQLAB_PROGRAMS_H

#include <stddef.h>
#include <sys/types.h>

#include "sandbox.h"

enum prog_kind { PROG_NONE = 0, PROG_PY, PROG_LUA, PROG_C, PROG_SH, PROG_EXE };

/* Find E in dir. Fills path (the file found) and kind. KIT_ENOENT if none;
 * err then lists the names that were tried. */
int prog_find(const char *dir, const char *name, char *path, size_t pathlen,
              enum prog_kind *kind, char *err);
/* The same, but the files named in avoid (base names, NULL-terminated,
 * e.g. the lab's unchanged starter "hello.py") are taken only when no
 * other form of E is there. avoid may be NULL. */
int prog_find_avoiding(const char *dir, const char *name, const char *const *avoid,
                       char *path, size_t pathlen, enum prog_kind *kind, char *err);

const char *prog_kind_name(enum prog_kind k);   /* "python", "lua", "c", ... */

/* The Python to use: $MQLAB_PYTHON if set (it must import paho), else the
 * first of /usr/bin/python3, python3 on PATH, /usr/local/bin/python3 that
 * can import paho.mqtt.client. Cached. NULL with err (KIT_EMISSING text
 * naming the Debian package python3-paho-mqtt) when none can. */
const char *prog_python(char *err);

/* For mqlab doctor: every Python prog_python would consider, in its
 * order, and what became of it. path is NULL when not found. Probes
 * each one (a second or so in all). */
enum py_status {
    PY_CHOSEN,      /* the one used */
    PY_NOT_FOUND,   /* no such executable */
    PY_SAME,        /* the same file as one listed before */
    PY_NO_PAHO,     /* cannot import paho.mqtt.client */
    PY_LATER,       /* would do, but an earlier one was chosen */
    PY_OVERRIDDEN,  /* would do, but MQLAB_PYTHON names another */
};
void prog_python_candidates(void (*fn)(void *ud, const char *name, const char *path, enum py_status st), void *ud);

typedef struct {
    const char *dir;        /* submission folder (the program's cwd) */
    const char *name;       /* program name E from the lab */
    const char *workdir;    /* private folder for the build and the output files */
    const char *const *env; /* extra "K=V" entries, NULL-terminated (may be NULL) */
    int wall_ms;            /* wall timeout; 0: none (runs until stopped) */
    int term_grace_ms;      /* after SIGTERM, how long before SIGKILL (0: 2000) */
    long mem_mb;            /* RLIMIT_AS, 0: 1024 */
    long cpu_s;             /* RLIMIT_CPU, 0: 60 */
    long fsize_mb;          /* RLIMIT_FSIZE (caps output files too), 0: 16 */
    long nofile;            /* RLIMIT_NOFILE, 0: 256 */
    int link_sqlite;        /* add -lsqlite3 when compiling C */
    long nproc;             /* RLIMIT_NPROC in the sandbox as root, 0: 64 */
    const char *const *ro;  /* sandbox: host paths bound read-only at the same
                               path (NULL-terminated, may be NULL) */
    const char *const *rw;  /* ... and writable (give them to sbx_uid() first) */
    int no_sandbox;         /* run outside the sandbox even when it is on */
    const char *const *avoid; /* forms of E used only when nothing else is
                                 there (prog_find_avoiding); may be NULL */
} prog_opts_t;

/* The process-wide switch. Until set, it is on when sbx_available().
 * Set on where sandboxes cannot run, prog_start fails (KIT_EMISSING, with
 * sbx_available's reason). Off: programs run as the kit, in their own
 * process group with their limits, and ro/rw mean nothing. */
void prog_set_sandbox(int on);
int prog_sandbox(void);
/* On, without probing first (mqlab check: the probe is a whole sandbox
 * start): where bwrap then cannot make a sandbox, notice(why) is called
 * once, the switch turns off, and that program and all later ones run
 * unconfined. */
void prog_set_sandbox_lenient(void (*notice)(const char *why));

typedef struct prog prog_t;

/* Build if needed (C), then start. A compile error is KIT_EINVAL with the
 * first compiler lines in err. */
int prog_start(prog_t **out, const prog_opts_t *o, char *err);

/* Start it again with the same options and environment (after it exited
 * or was stopped), in a new sandbox on the same folder, whose files stay.
 * The captured output of earlier runs is kept and the new run's output
 * is appended after it. */
int prog_restart(prog_t *p, char *err);

/* Enforce the wall timeout, reap if exited. Returns 1 while running. */
int prog_poll(prog_t *p);

/* Wait until it exits or timeout_ms passes (enforcing the wall timeout).
 * KIT_OK when it exited, KIT_ETIMEOUT, or KIT_EINTR on Ctrl-C. */
int prog_wait(prog_t *p, int timeout_ms);

/* To the program's whole process group (in a sandbox too: the program
 * itself, never the sandbox around it, so its own handlers run). */
int prog_signal(prog_t *p, int sig);
/* SIGTERM, wait up to grace, then SIGKILL; reaps. */
int prog_stop(prog_t *p);

pid_t prog_pid(const prog_t *p);          /* host pid, also its group id */
enum prog_kind prog_get_kind(const prog_t *p);
const char *prog_path(const prog_t *p);
/* After exit: exit code (0..255) or -1 if killed by a signal. */
int prog_exit_code(const prog_t *p);
int prog_term_signal(const prog_t *p);    /* the signal that killed it, or 0 */
int prog_timed_out(const prog_t *p);      /* the kit stopped it at wall_ms */
double prog_runtime_s(const prog_t *p);   /* wall time of the last run */

/* Captured output so far (re-read from the files each call; valid until
 * the next call on p). Never NULL. */
const char *prog_stdout(prog_t *p, size_t *len);
const char *prog_stderr(prog_t *p, size_t *len);

/* Stop if running, reap, free. The workdir is the caller's. */
void prog_free(prog_t *p);

#endif
