/*
 * programs.c - finds, builds and runs a student's submission (LABS.md,
 * "The contract every client lab shares"), and never leaves it behind.
 *
 * Every child (the program, the C compiler, the Python probe) runs as the
 * leader of its own process group, registered with cleanup. When a leader
 * exits, whatever it left in its group is killed before the leader is
 * reaped: the unreaped (zombie) leader still holds the group id, so the
 * kill cannot reach a stranger that reused the number.
 *
 * In the sandbox (sandbox.h) the process the kit forks is bwrap, whose
 * group is tracked the same way; the program is the launcher's child,
 * which the launcher keeps unreaped (its pid, its group id) until the kit
 * ends the sandbox. So p->pid is the program itself there too, and
 * signals, the wall timeout and prog_stop do not change.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "programs.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define OUT_CAP (1024 * 1024)     /* bytes of each capture kept in memory */
#define PROBE_MS 20000            /* `python -c "import paho.mqtt.client"` */
#define BUILD_MS 120000           /* cc on a slow machine */
#define REAP_MS 10000             /* a sandbox's status after SIGKILL */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct prog {
    char *dir;                /* absolute; the program's cwd */
    char *name;
    char *workdir;            /* absolute */
    char **env;               /* the child's whole environment */
    prog_opts_t o;            /* limits, defaults applied; strings point above */
    char **ro, **rw;          /* the caller's extra binds (NULL-terminated) */
    int boxed;                /* runs in a sandbox */
    sbx_proc_t *box;          /* the current sandbox, or NULL */
    char *extra_ro[8];        /* what the kind needs bound: python, mqlab, build */
    enum prog_kind kind;
    char path[PATH_MAX];      /* the file found */
    const char *file;         /* its base name, inside path */
    char exe[PATH_MAX];       /* what execve runs */
    char out_path[PATH_MAX], err_path[PATH_MAX];

    pid_t pid;                /* leader (= group id) while not reaped, else 0;
                                 in a sandbox, the program while it is held */
    int exit_code;            /* 0..255, or -1 */
    int term_sig;
    int timed_out;
    int term_sent, kill_sent; /* wall-timeout escalation steps */
    int64_t t_start, t_end, t_term;

    char *obuf, *ebuf;        /* last prog_stdout / prog_stderr */
};

/* ---- environment ------------------------------------------------------ */

typedef struct {
    char **v;
    size_t n, cap;
} envv_t;

static void env_put(envv_t *e, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], kv, klen) == 0 && e->v[i][klen] == '=') {
            free(e->v[i]);
            e->v[i] = kit_strdup(kv);
            return;
        }
    }
    if (e->n + 2 > e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->v = kit_xrealloc(e->v, e->cap * sizeof *e->v);
    }
    e->v[e->n++] = kit_strdup(kv);
    e->v[e->n] = NULL;
}

static void env_put_from_parent(envv_t *e, const char *key, const char *def)
{
    const char *v = getenv(key);
    if (!v || !*v) v = def;
    if (!v) return;
    char *kv = kit_strdup_printf("%s=%s", key, v);
    env_put(e, kv);
    free(kv);
}

static void env_free(char **v)
{
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

/* Built from scratch, so nothing of the kit's own environment (tokens,
 * proxies, PYTHONPATH) leaks into a submission; the lab's entries win.
 * In a sandbox HOME and TMPDIR are its private ones. */
static char **env_build(const char *const *extra, int boxed)
{
    envv_t e = { 0 };
    env_put_from_parent(&e, "PATH", DEFAULT_PATH);
    if (boxed) {
        env_put(&e, "HOME=" SBX_HOME);
    } else {
        env_put_from_parent(&e, "HOME", "/");
    }
    env_put_from_parent(&e, "LANG", NULL);
    env_put_from_parent(&e, "LC_ALL", NULL);
    if (boxed) env_put(&e, "TMPDIR=/tmp");
    else env_put_from_parent(&e, "TMPDIR", NULL);
    env_put(&e, "PYTHONUNBUFFERED=1");
    env_put(&e, "PYTHONDONTWRITEBYTECODE=1");
    for (const char *const *x = extra; x && *x; x++)
        env_put(&e, *x);
    return e.v;
}

/* A NULL-terminated copy of a NULL-terminated list (NULL for none). */
static char **strv_copy(const char *const *v)
{
    size_t n = 0;
    if (!v) return NULL;
    while (v[n]) n++;
    char **c = kit_xmalloc((n + 1) * sizeof *c);
    for (size_t i = 0; i < n; i++) c[i] = kit_strdup(v[i]);
    c[n] = NULL;
    return c;
}

/* A path a sandbox does not see unless it is bound: not in /usr or /etc. */
static int outside_system(const char *path)
{
    static const char *const sys[] = { "/usr", "/etc" };
    if (!path || path[0] != '/' || strcmp(path, "/") == 0) return 0;
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
        size_t n = strlen(sys[i]);
        if (strncmp(path, sys[i], n) == 0 && (path[n] == '\0' || path[n] == '/')) return 0;
    }
    return 1;
}

/* ---- the sandbox switch ----------------------------------------------- */

static int sandbox_mode = -1;     /* -1: not decided: on where it can run; 2: lenient */
static void (*lenient_notice)(const char *why);

void prog_set_sandbox(int on)
{
    sandbox_mode = on ? 1 : 0;
}

void prog_set_sandbox_lenient(void (*notice)(const char *why))
{
    sandbox_mode = 2;
    lenient_notice = notice;
}

int prog_sandbox(void)
{
    if (sandbox_mode < 0) {
        int ok = sbx_available(NULL, 0);
        /* A probe cut by Ctrl-C decides nothing; the start that asked
         * then fails as interrupted instead of running unconfined. */
        if (!ok && cleanup_interrupted()) return 1;
        sandbox_mode = ok;
    }
    return sandbox_mode != 0;
}

/* ---- spawning --------------------------------------------------------- */

typedef struct {
    const char *file;         /* for execvpe: a path, or a name looked up on PATH */
    char *const *argv;
    char *const *envp;        /* NULL: the kit's own environment */
    const char *cwd;          /* NULL: stay */
    int in, out, err;         /* become 0, 1, 2 */
    const prog_opts_t *lim;   /* NULL: no resource limits */
} spawn_req;

static void child_fail(const char *what, const char *arg)
{
    char msg[PATH_MAX + 128];
    int n = snprintf(msg, sizeof msg, "mqlab: %s %s: %s\n", what, arg, strerror(errno));
    if (n > 0) {
        ssize_t w = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    _exit(127);
}


/* In the child, between fork and exec. The kit may have a proxy thread
 * running, so only calls that take no lock are made here (no malloc, no
 * stdio streams): system calls, and snprintf into a stack buffer on the
 * way out. */
static void child_exec(const spawn_req *s, pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);   /* the kit died before prctl */

    /* Ignored signals (the kit ignores SIGPIPE) survive exec: reset all. */
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Move the three fds out of the way first, so that no dup2 below can
     * overwrite one that is still to be copied. */
    int in = fcntl(s->in, F_DUPFD, 10);
    int out = fcntl(s->out, F_DUPFD, 10);
    int err = fcntl(s->err, F_DUPFD, 10);
    if (in < 0 || out < 0 || err < 0) _exit(127);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);

    if (s->cwd && chdir(s->cwd) != 0) child_fail("cannot enter", s->cwd);

    if (s->lim) {
        const prog_opts_t *o = s->lim;
        rlim_t mem = (rlim_t)o->mem_mb * 1024 * 1024;
        rlim_t fsz = (rlim_t)o->fsize_mb * 1024 * 1024;
        kit_set_limit(RLIMIT_AS, mem, mem);
        /* soft < hard: SIGXCPU first, SIGKILL a second later. */
        kit_set_limit(RLIMIT_CPU, (rlim_t)o->cpu_s, (rlim_t)o->cpu_s + 1);
        kit_set_limit(RLIMIT_FSIZE, fsz, fsz);
        kit_set_limit(RLIMIT_NOFILE, (rlim_t)o->nofile, (rlim_t)o->nofile);
        kit_set_limit(RLIMIT_CORE, 0, 0);
    }

    kit_close_from(3);

    execvpe(s->file, s->argv, s->envp ? s->envp : environ);
    child_fail("cannot run", s->file);
}

static int spawn(const spawn_req *s, pid_t *out, char *err)
{
    /* Signals stay blocked from fork until the child has reset its
     * handlers: a TERM sent right after the start would otherwise run the
     * kit's own handler in the child and be lost. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) child_exec(s, parent);
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0)
        return kit_seterr(err, KIT_ERR, "cannot start %s: %s", s->file, strerror(fork_errno));
    /* Also done by the child: whichever runs first, the group exists
     * before anyone signals it. EACCES once the child has exec'd is fine. */
    setpgid(pid, pid);
    if (cleanup_track_pgid(pid) != 0) {
        /* Nothing would end it on Ctrl-C: it does not run at all. */
        kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        return kit_seterr(err, KIT_ERR, "too many programs at once: %s is not started", s->file);
    }
    *out = pid;
    return KIT_OK;
}

/* Has the leader exited? Leaves it unreaped (WNOWAIT) so that its group
 * id stays ours. -1 if it is not our child any more. */
static int leader_exited(pid_t pid, int block)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int flags = WEXITED | WNOWAIT | (block ? 0 : WNOHANG);
        if (waitid(P_PID, (id_t)pid, &si, flags) == 0) return si.si_pid == pid;
        if (errno == EINTR) continue;
        return -1;
    }
}

/* Kill the rest of the group, reap the leader, forget the group. */
static void finish_group(pid_t pid, int *status)
{
    kill(-pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    cleanup_untrack_pgid(pid);
    if (status) *status = st;
}

/* For the short-lived helpers (compiler, probe): wait up to ms, then the
 * group is gone whatever happened. */
static int wait_helper(pid_t pid, int ms, int *status)
{
    int64_t end = kit_now_ms() + ms;
    int rc = KIT_OK;
    for (;;) {
        int e = leader_exited(pid, 0);
        if (e != 0) break;
        if (cleanup_interrupted()) { rc = KIT_EINTR; break; }
        if (kit_now_ms() >= end) { rc = KIT_ETIMEOUT; break; }
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
    finish_group(pid, status);
    return rc;
}

static int open_devnull(char *err)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) kit_seterr(err, KIT_ERR, "cannot open /dev/null: %s", strerror(errno));
    return fd;
}

static int open_capture(const char *path, int truncate, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0600);
    if (fd < 0) kit_seterr(err, KIT_ERR, "cannot create %s: %s", path, strerror(errno));
    return fd;
}

/* ---- finding ---------------------------------------------------------- */

const char *prog_kind_name(enum prog_kind k)
{
    switch (k) {
    case PROG_PY: return "python";
    case PROG_LUA: return "lua";
    case PROG_C: return "c";
    case PROG_SH: return "sh";
    case PROG_EXE: return "executable";
    default: return "none";
    }
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int avoided(const char *const *avoid, const char *base)
{
    for (const char *const *a = avoid; a && *a; a++)
        if (strcmp(*a, base) == 0) return 1;
    return 0;
}

int prog_find_avoiding(const char *dir, const char *name, const char *const *avoid,
                       char *path, size_t pathlen, enum prog_kind *kind, char *err)
{
    static const struct { const char *ext; enum prog_kind kind; } order[] = {
        { ".py", PROG_PY }, { ".lua", PROG_LUA }, { ".c", PROG_C },
        { ".sh", PROG_SH }, { "", PROG_EXE },
    };
    if (!dir || !name || !path || pathlen == 0)
        return kit_seterr(err, KIT_EINVAL, "prog_find: missing argument");
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return kit_seterr(err, KIT_EINVAL, "bad program name '%s'", name);
    if (!kit_is_dir(dir))
        return kit_seterr(err, KIT_ENOENT, "no folder %s", dir);

    /* Two rounds: first the forms not avoided, then any. */
    int not_exec = 0;
    for (int round = avoid ? 0 : 1; round < 2; round++) {
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            if ((size_t)snprintf(path, pathlen, "%s/%s%s", dir, name, order[i].ext) >= pathlen)
                return kit_seterr(err, KIT_EINVAL, "path too long in %s", dir);
            if (!is_regular(path)) continue;
            if (order[i].kind == PROG_EXE && access(path, X_OK) != 0) { not_exec = 1; continue; }
            if (round == 0 && avoided(avoid, strrchr(path, '/') + 1)) continue;
            if (kind) *kind = order[i].kind;
            return KIT_OK;
        }
    }
    path[0] = '\0';
    if (kind) *kind = PROG_NONE;
    if (not_exec)
        return kit_seterr(err, KIT_ENOENT, "%s/%s is not executable (chmod +x %s), and there is no %s.py, %s.lua, %s.c or %s.sh",
                          dir, name, name, name, name, name, name);
    return kit_seterr(err, KIT_ENOENT, "no %s.py, %s.lua, %s.c, %s.sh or executable %s in %s",
                      name, name, name, name, name, dir);
}

int prog_find(const char *dir, const char *name, char *path, size_t pathlen,
              enum prog_kind *kind, char *err)
{
    return prog_find_avoiding(dir, name, NULL, path, pathlen, kind, err);
}

/* ---- Python ----------------------------------------------------------- */

/* First match of name on the kit's PATH (or name itself if it has a '/'). */
static int which(const char *name, char *out, size_t outlen)
{
    if (strchr(name, '/')) {
        if (!is_regular(name) || access(name, X_OK) != 0) return 0;
        return (size_t)snprintf(out, outlen, "%s", name) < outlen;
    }
    const char *path = getenv("PATH");
    if (!path || !*path) path = DEFAULT_PATH;
    while (*path) {
        size_t n = strcspn(path, ":");
        int len = snprintf(out, outlen, "%.*s/%s", (int)(n ? n : 1), n ? path : ".", name);
        if (len > 0 && (size_t)len < outlen && is_regular(out) && access(out, X_OK) == 0)
            return 1;
        path += n;
        if (*path == ':') path++;
    }
    return 0;
}

/* What a sandbox needs of a Python: the executable as it calls itself
 * (a venv is found from it), and the folders it runs from. */
enum { PY_EXE, PY_PREFIX, PY_BASE, PY_REAL, PY_PAHO, PY_NLINES };

typedef struct {
    char line[PY_NLINES][PATH_MAX];
} py_info_t;

/* 1 when py can import paho.mqtt.client; info then has its paths. */
static int python_probe(const char *py, py_info_t *info)
{
    static const char code[] =
        "import os, sys, paho.mqtt.client as m\n"
        "print(sys.executable)\nprint(sys.prefix)\nprint(sys.base_prefix)\n"
        "print(os.path.realpath(sys.executable))\n"
        "print(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(m.__file__)))))\n";
    char *argv[] = { (char *)py, (char *)"-c", (char *)code, NULL };
    char **env = env_build(NULL, 0);
    char buf[PY_NLINES * PATH_MAX];
    int fd = open_devnull(NULL), pipefd[2] = { -1, -1 }, ok = 0;
    pid_t pid = 0;
    if (fd < 0 || pipe2(pipefd, O_CLOEXEC) != 0) goto cleanup;
    /* Probed outside any sandbox (it is the kit's choice), with the
     * environment a submission gets, from "/" so that a stray paho/
     * folder in the kit's cwd cannot fake it. The answer is a few short
     * lines: the pipe holds them until it exits. */
    spawn_req s = { py, argv, env, "/", fd, pipefd[1], fd, NULL };
    if (spawn(&s, &pid, NULL) != KIT_OK) goto cleanup;
    close(pipefd[1]);
    pipefd[1] = -1;
    int st = 0;
    if (wait_helper(pid, PROBE_MS, &st) != KIT_OK || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        goto cleanup;
    size_t n = 0;
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    for (ssize_t r; n < sizeof buf - 1 && (r = read(pipefd[0], buf + n, sizeof buf - 1 - n)) != 0;) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    memset(info, 0, sizeof *info);
    char *save = NULL, *line = strtok_r(buf, "\n", &save);
    for (int i = 0; i < PY_NLINES && line; i++, line = strtok_r(NULL, "\n", &save))
        snprintf(info->line[i], sizeof info->line[i], "%s", line);
    if (info->line[PY_EXE][0] != '/') snprintf(info->line[PY_EXE], PATH_MAX, "%s", py);
    ok = 1;
cleanup:
    if (fd >= 0) close(fd);
    if (pipefd[0] >= 0) close(pipefd[0]);
    if (pipefd[1] >= 0) close(pipefd[1]);
    env_free(env);
    return ok;
}

static struct {
    int done;
    int had_env;              /* MQLAB_PYTHON was set for this answer */
    char env[PATH_MAX];       /* ... to this */
    char path[PATH_MAX];      /* "" when none */
    py_info_t info;           /* of path */
    char err[KIT_ERRLEN];
} py_cache;

const char *prog_python(char *err)
{
    const char *forced = getenv("MQLAB_PYTHON");
    if (forced && !*forced) forced = NULL;
    /* The cache is keyed on MQLAB_PYTHON, so changing it is noticed. */
    if (py_cache.done && py_cache.had_env == (forced != NULL) &&
        (!forced || strcmp(py_cache.env, forced) == 0)) {
        if (py_cache.path[0]) return py_cache.path;
        kit_seterr(err, KIT_EMISSING, "%s", py_cache.err);
        return NULL;
    }
    memset(&py_cache, 0, sizeof py_cache);
    py_cache.had_env = forced != NULL;
    if (forced) snprintf(py_cache.env, sizeof py_cache.env, "%s", forced);

    char cand[PATH_MAX];
    if (forced) {
        if (!which(forced, cand, sizeof cand))
            snprintf(py_cache.err, sizeof py_cache.err,
                     "MQLAB_PYTHON=%s: no such executable", forced);
        else if (!python_probe(cand, &py_cache.info))
            snprintf(py_cache.err, sizeof py_cache.err,
                     "MQLAB_PYTHON=%s cannot import paho.mqtt.client; install paho-mqtt "
                     "for it, or unset MQLAB_PYTHON", forced);
        else
            snprintf(py_cache.path, sizeof py_cache.path, "%s", cand);
    } else {
        static const char *const tries[] = { "/usr/bin/python3", "python3", "python",
                                             "/usr/local/bin/python3" };
        char seen[4][PATH_MAX];
        int nseen = 0;
        for (size_t i = 0; i < sizeof tries / sizeof tries[0] && !py_cache.path[0]; i++) {
            char real[PATH_MAX];
            if (!which(tries[i], cand, sizeof cand) || !realpath(cand, real)) continue;
            int dup = 0;
            for (int j = 0; j < nseen; j++) dup |= strcmp(seen[j], real) == 0;
            if (dup) continue;
            snprintf(seen[nseen++], PATH_MAX, "%s", real);
            if (python_probe(cand, &py_cache.info))
                snprintf(py_cache.path, sizeof py_cache.path, "%s", cand);
        }
        if (!py_cache.path[0])
            snprintf(py_cache.err, sizeof py_cache.err,
                     "no Python here can import paho.mqtt.client; install it with: "
                     "apt-get install -y python3-paho-mqtt (or set MQLAB_PYTHON)");
    }
    py_cache.done = 1;
    if (py_cache.path[0]) return py_cache.path;
    kit_seterr(err, KIT_EMISSING, "%s", py_cache.err);
    return NULL;
}

void prog_python_candidates(void (*fn)(void *ud, const char *name, const char *path, enum py_status st), void *ud)
{
    static const char *const tries[] = { "/usr/bin/python3", "python3", "python", "/usr/local/bin/python3" };
    const char *forced = getenv("MQLAB_PYTHON");
    char cand[PATH_MAX], real[PATH_MAX], seen[5][PATH_MAX];
    int nseen = 0, chosen = 0;
    py_info_t info;
    if (forced && *forced) {
        if (!which(forced, cand, sizeof cand)) fn(ud, "MQLAB_PYTHON", forced, PY_NOT_FOUND);
        else fn(ud, "MQLAB_PYTHON", cand, python_probe(cand, &info) ? PY_CHOSEN : PY_NO_PAHO);
        chosen = 1;   /* it decides, whatever the others can do */
    }
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        if (!which(tries[i], cand, sizeof cand) || !realpath(cand, real)) {
            fn(ud, tries[i], NULL, PY_NOT_FOUND);
            continue;
        }
        int dup = 0;
        for (int j = 0; j < nseen; j++) dup |= strcmp(seen[j], real) == 0;
        if (dup) { fn(ud, tries[i], cand, PY_SAME); continue; }
        snprintf(seen[nseen++], PATH_MAX, "%s", real);
        int ok = python_probe(cand, &info);
        if (!ok) fn(ud, tries[i], cand, PY_NO_PAHO);
        else if (forced && *forced) fn(ud, tries[i], cand, PY_OVERRIDDEN);
        else if (chosen) fn(ud, tries[i], cand, PY_LATER);
        else { fn(ud, tries[i], cand, PY_CHOSEN); chosen = 1; }
    }
}

/* ---- C ---------------------------------------------------------------- */

static int newer_or_same(const struct stat *a, const struct stat *b)
{
    if (a->st_mtim.tv_sec != b->st_mtim.tv_sec) return a->st_mtim.tv_sec > b->st_mtim.tv_sec;
    return a->st_mtim.tv_nsec >= b->st_mtim.tv_nsec;
}

/* Copy the first max_lines lines of text into out. */
static void first_lines(char *out, size_t outlen, const char *text, int max_lines)
{
    const char *p = text;
    for (int i = 0; i < max_lines && *p; i++) {
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
    }
    size_t n = (size_t)(p - text);
    while (n > 0 && text[n - 1] == '\n') n--;
    snprintf(out, outlen, "%.*s", (int)n, text);
}

/* A NULL-terminated list of base's paths, then extra's (NULL entries of
 * extra skipped). The strings are not copied. */
static const char **path_list(char **base, const char *const *extra, size_t nextra)
{
    size_t n = 0;
    for (char **x = base; x && *x; x++) n++;
    const char **v = kit_xmalloc((n + nextra + 1) * sizeof *v);
    n = 0;
    for (char **x = base; x && *x; x++) v[n++] = *x;
    for (size_t i = 0; i < nextra; i++)
        if (extra[i]) v[n++] = extra[i];
    v[n] = NULL;
    return v;
}

static void box_limits(const prog_t *p, sbx_limits_t *lim, int program)
{
    memset(lim, 0, sizeof *lim);
    lim->nproc = p->o.nproc;
    if (!program) return;   /* the compiler: only the process count */
    lim->mem_mb = p->o.mem_mb;
    lim->cpu_s = p->o.cpu_s;
    lim->fsize_mb = p->o.fsize_mb;
    lim->nofile = p->o.nofile;
}

/* cc in the program's own sandbox (its folder as cwd, so an #include
 * of "../x.c" finds nothing), the build folder writable. */
static int compile_boxed(prog_t *p, char **argv, int logfd, int *st, char *err)
{
    const char *extra[] = { p->extra_ro[0] };   /* the build folder */
    const char **rw = path_list(p->rw, extra, 1);
    const char **ro = path_list(p->ro, NULL, 0);
    sbx_limits_t lim;
    box_limits(p, &lim, 0);
    sbx_spec_t spec = { p->dir, ro, rw, argv, p->env, logfd, logfd, &lim };
    sbx_proc_t *box = NULL;
    int rc = sbx_start(&box, &spec, err);
    free(rw);
    free(ro);
    /* KIT_EINVAL means a compile error to prog_start's callers. */
    if (rc == KIT_EINVAL) rc = KIT_ERR;
    if (rc != KIT_OK) return rc;
    int64_t end = kit_now_ms() + BUILD_MS;
    rc = KIT_OK;
    while (!sbx_poll(box, 20, st)) {
        if (cleanup_interrupted()) { rc = KIT_EINTR; break; }
        if (kit_now_ms() >= end) { rc = KIT_ETIMEOUT; break; }
    }
    sbx_end(box);
    return rc;
}

/* Compiled once per workdir: a binary newer than the source is reused,
 * so restarts and repeated starts do not pay for cc again. */
static int build_c(prog_t *p, char *err)
{
    char log[PATH_MAX], build[PATH_MAX], *text = NULL;
    int nul = -1, logfd = -1, rc;
    struct stat src, bin;
    if ((size_t)snprintf(log, sizeof log, "%s/%s.build.log", p->workdir, p->name) >= sizeof log ||
        (size_t)snprintf(build, sizeof build, "%s/build", p->workdir) >= sizeof build ||
        (size_t)snprintf(p->exe, sizeof p->exe, "%s/%s", build, p->name) >= sizeof p->exe)
        return kit_seterr(err, KIT_ERR, "path too long in %s", p->workdir);
    if ((rc = kit_mkdir_p(build, 0700, err)) != KIT_OK) return rc;
    /* The sandbox uid writes it while compiling, and runs what is in it. */
    if (p->boxed && (rc = sbx_chown_tree(build, err)) != KIT_OK) return rc;
    p->extra_ro[0] = kit_strdup(build);
    if (stat(p->path, &src) != 0)
        return kit_seterr(err, KIT_ENOENT, "cannot read %s: %s", p->path, strerror(errno));
    if (stat(p->exe, &bin) == 0 && S_ISREG(bin.st_mode) && newer_or_same(&bin, &src))
        return KIT_OK;
    unlink(p->exe);   /* a failed build must not leave an old binary to run */

    logfd = open_capture(log, 1, err);
    if (logfd < 0) { rc = KIT_ERR; goto cleanup; }

    char *argv[] = { (char *)"cc", (char *)"-O2", (char *)"-Wall", (char *)p->file,
                     (char *)"-o", p->exe, (char *)"-lmosquitto",
                     p->o.link_sqlite ? (char *)"-lsqlite3" : NULL, NULL };
    int st = 0;
    if (p->boxed) {
        rc = compile_boxed(p, argv, logfd, &st, err);
        if (rc != KIT_OK && rc != KIT_EINTR && rc != KIT_ETIMEOUT) goto cleanup;
    } else {
        nul = open_devnull(err);
        if (nul < 0) { rc = KIT_ERR; goto cleanup; }
        spawn_req s = { "cc", argv, NULL, p->dir, nul, logfd, logfd, NULL };
        pid_t pid = 0;
        rc = spawn(&s, &pid, err);
        if (rc != KIT_OK) goto cleanup;
        rc = wait_helper(pid, BUILD_MS, &st);
    }
    text = kit_read_file(log, NULL, NULL);
    if (!text) text = kit_strdup("");
    if (rc == KIT_EINTR) {
        kit_seterr(err, rc, "interrupted while compiling %s", p->file);
    } else if (rc == KIT_ETIMEOUT) {
        rc = kit_seterr(err, KIT_ERR, "compiling %s took more than %d s", p->file, BUILD_MS / 1000);
    } else if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 127 &&
               strncmp(text, "mqlab: cannot run cc", 20) == 0) {
        rc = kit_seterr(err, KIT_EMISSING, "no C compiler (cc) here; install it with: "
                        "apt-get install -y build-essential libmosquitto-dev");
    } else if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !is_regular(p->exe)) {
        /* Only the compiler's words: callers add "E.c does not compile"
         * in the student's language. */
        char head[KIT_ERRLEN];
        first_lines(head, sizeof head, text, 10);
        if (!head[0]) snprintf(head, sizeof head, "cc failed with no message");
        rc = kit_seterr(err, KIT_EINVAL, "%s", head);
    }
cleanup:
    if (nul >= 0) close(nul);
    if (logfd >= 0) close(logfd);
    free(text);
    return rc;
}

/* ---- running ---------------------------------------------------------- */

static int launch(prog_t *p, int truncate, char *err)
{
    int nul = -1, out = -1, errfd = -1, rc = KIT_OK;
    char *argv[4] = { NULL };
    switch (p->kind) {
    case PROG_PY:
        argv[0] = p->exe; argv[1] = (char *)"-u"; argv[2] = (char *)p->file;
        break;
    case PROG_LUA:
        argv[0] = p->exe; argv[1] = (char *)"run"; argv[2] = (char *)p->file;
        break;
    case PROG_SH:
        argv[0] = (char *)"sh"; argv[1] = (char *)p->file;
        break;
    default:
        argv[0] = p->exe;
        break;
    }

    nul = open_devnull(err);
    if (nul < 0) { rc = KIT_ERR; goto cleanup; }
    out = open_capture(p->out_path, truncate, err);
    if (out < 0) { rc = KIT_ERR; goto cleanup; }
    errfd = open_capture(p->err_path, truncate, err);
    if (errfd < 0) { rc = KIT_ERR; goto cleanup; }

    pid_t pid = 0;
    if (p->boxed) {
        /* The launcher execs argv[0] itself, so it names the file. */
        argv[0] = p->exe;
        const char **ro = path_list(p->ro, (const char *const *)p->extra_ro,
                                    sizeof p->extra_ro / sizeof p->extra_ro[0]);
        sbx_limits_t lim;
        box_limits(p, &lim, 1);
        sbx_spec_t spec = { p->dir, ro, (const char *const *)p->rw, argv, p->env, out, errfd, &lim };
        rc = sbx_start(&p->box, &spec, err);
        free(ro);
        if (rc == KIT_EINVAL) rc = KIT_ERR;   /* a bad bind, not a compile error */
        if (rc != KIT_OK) goto cleanup;
        pid = sbx_pid(p->box);
    } else {
        spawn_req s = { p->exe, argv, p->env, p->dir, nul, out, errfd, &p->o };
        rc = spawn(&s, &pid, err);
        if (rc != KIT_OK) goto cleanup;
    }
    p->pid = pid;
    p->t_start = kit_now_ms();
    p->t_end = 0;
    p->exit_code = -1;
    p->term_sig = 0;
    p->timed_out = p->term_sent = p->kill_sent = 0;
cleanup:
    if (nul >= 0) close(nul);
    if (out >= 0) close(out);
    if (errfd >= 0) close(errfd);
    return rc;
}

/* Reap the leader if it has exited (or, with block, once it exits). */
static int reap(prog_t *p, int block)
{
    if (!p->pid) return 1;
    int st = 0;
    if (p->box) {
        /* Blocking is only asked for after SIGKILL: should the status not
         * come, the kit killed it. The sandbox goes either way. */
        if (!sbx_poll(p->box, block ? REAP_MS : 0, &st)) {
            if (!block) return 0;
            st = SIGKILL;
        }
        sbx_end(p->box);
        p->box = NULL;
        goto done;
    }
    int e = leader_exited(p->pid, block);
    if (e == 0) return 0;
    if (e > 0) {
        finish_group(p->pid, &st);
    } else {
        /* Not our child any more (someone else reaped it): the outcome is
         * unknown, but the group must still go. */
        kill(-p->pid, SIGKILL);
        cleanup_untrack_pgid(p->pid);
        st = -1;
    }
done:
    p->t_end = kit_now_ms();
    p->pid = 0;
    p->exit_code = -1;
    p->term_sig = 0;
    if (st != -1 && WIFEXITED(st)) p->exit_code = WEXITSTATUS(st);
    else if (st != -1 && WIFSIGNALED(st)) p->term_sig = WTERMSIG(st);
    return 1;
}

static void term_group(pid_t pid)
{
    kill(-pid, SIGTERM);
    kill(-pid, SIGCONT);   /* a stopped program could not act on TERM */
}

int prog_start(prog_t **out, const prog_opts_t *o, char *err)
{
    char buf[PATH_MAX];
    int rc;
    if (!out) return kit_seterr(err, KIT_EINVAL, "prog_start: no result pointer");
    *out = NULL;
    if (!o || !o->dir || !o->name || !o->workdir)
        return kit_seterr(err, KIT_EINVAL, "prog_start: dir, name and workdir are required");

    prog_t *p = calloc(1, sizeof *p);
    if (!p) return kit_seterr(err, KIT_ERR, "out of memory");
    p->exit_code = -1;

    if (!realpath(o->dir, buf)) {
        rc = kit_seterr(err, KIT_ENOENT, "no folder %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    p->dir = kit_strdup(buf);
    if ((rc = kit_mkdir_p(o->workdir, 0700, err)) != KIT_OK) goto fail;
    if (!realpath(o->workdir, buf)) {
        rc = kit_seterr(err, KIT_ERR, "no folder %s: %s", o->workdir, strerror(errno));
        goto fail;
    }
    p->workdir = kit_strdup(buf);
    p->name = kit_strdup(o->name);

    rc = prog_find_avoiding(p->dir, p->name, o->avoid, p->path, sizeof p->path, &p->kind, err);
    if (rc != KIT_OK) goto fail;
    p->file = strrchr(p->path, '/') + 1;

    p->o = *o;
    p->o.dir = p->dir;
    p->o.name = p->name;
    p->o.workdir = p->workdir;
    p->o.env = NULL;
    if (p->o.term_grace_ms <= 0) p->o.term_grace_ms = 2000;
    if (p->o.mem_mb <= 0) p->o.mem_mb = 1024;
    if (p->o.cpu_s <= 0) p->o.cpu_s = 60;
    if (p->o.fsize_mb <= 0) p->o.fsize_mb = 16;
    if (p->o.nofile <= 0) p->o.nofile = 256;
    if (p->o.nproc <= 0) p->o.nproc = SBX_NPROC_DEFAULT;
    p->o.ro = p->o.rw = NULL;
    p->o.avoid = NULL;
    p->ro = strv_copy(o->ro);
    p->rw = strv_copy(o->rw);

    p->boxed = !o->no_sandbox && prog_sandbox();
    if (p->boxed && sandbox_mode != 2 && !sbx_available(buf, sizeof buf)) {
        if (cleanup_interrupted())
            rc = kit_seterr(err, KIT_EINTR, "interrupted before %s could start", p->file);
        else
            rc = kit_seterr(err, KIT_EMISSING, "the sandbox is on, but cannot run here: %s", buf);
        goto fail;
    }

    for (const char *const *x = o->env; x && *x; x++) {
        if (!strchr(*x, '=') || **x == '=') {
            rc = kit_seterr(err, KIT_EINVAL, "bad environment entry '%s' (want K=V)", *x);
            goto fail;
        }
    }
    p->env = env_build(o->env, p->boxed);

    if ((size_t)snprintf(p->out_path, sizeof p->out_path, "%s/%s.out", p->workdir, p->name) >= sizeof p->out_path ||
        (size_t)snprintf(p->err_path, sizeof p->err_path, "%s/%s.err", p->workdir, p->name) >= sizeof p->err_path) {
        rc = kit_seterr(err, KIT_ERR, "path too long in %s", p->workdir);
        goto fail;
    }

    switch (p->kind) {
    case PROG_PY: {
        const char *py = prog_python(err);
        if (!py) { rc = KIT_EMISSING; goto fail; }
        snprintf(p->exe, sizeof p->exe, "%s", py);
        if (p->boxed) {
            /* Run as it calls itself (a pyenv shim would not run inside),
             * with the folders it lives in bound when /usr does not hold
             * them. */
            const py_info_t *pi = &py_cache.info;
            snprintf(p->exe, sizeof p->exe, "%s", pi->line[PY_EXE]);
            const int want[] = { PY_PREFIX, PY_BASE, PY_REAL, PY_PAHO };
            for (size_t i = 0, k = 0; i < sizeof want / sizeof want[0]; i++)
                if (outside_system(pi->line[want[i]]))
                    p->extra_ro[k++] = kit_strdup(pi->line[want[i]]);
        }
        break;
    }
    case PROG_LUA:
        snprintf(p->exe, sizeof p->exe, "%s", kit_self_exe());
        if (p->boxed && outside_system(p->exe)) p->extra_ro[0] = kit_strdup(p->exe);
        break;
    case PROG_C:
        if ((rc = build_c(p, err)) != KIT_OK) goto fail;
        break;
    case PROG_SH:
        snprintf(p->exe, sizeof p->exe, "/bin/sh");
        break;
    default:
        snprintf(p->exe, sizeof p->exe, "%s", p->path);
        break;
    }

    if ((rc = launch(p, 1, err)) != KIT_OK) goto fail;
    *out = p;
    return KIT_OK;
fail:;
    int was_boxed = p->boxed;
    prog_free(p);
    if (was_boxed && sandbox_mode == 2 && sbx_known_unavailable()) {
        /* Lenient: bwrap cannot make a sandbox here. Say so once, then
         * this program and the next run unconfined. */
        sbx_available(buf, sizeof buf);
        sandbox_mode = 0;
        if (lenient_notice) lenient_notice(buf);
        return prog_start(out, o, err);
    }
    return rc;
}

int prog_restart(prog_t *p, char *err)
{
    if (!p) return kit_seterr(err, KIT_EINVAL, "prog_restart: no program");
    if (p->pid) prog_stop(p);
    return launch(p, 0, err);
}

int prog_poll(prog_t *p)
{
    if (!p || !p->pid) return 0;
    if (reap(p, 0)) return 0;
    if (p->o.wall_ms > 0) {
        int64_t now = kit_now_ms();
        if (!p->term_sent && now - p->t_start >= p->o.wall_ms) {
            p->timed_out = 1;
            p->term_sent = 1;
            p->t_term = now;
            term_group(p->pid);
        } else if (p->term_sent && !p->kill_sent && now - p->t_term >= p->o.term_grace_ms) {
            p->kill_sent = 1;
            kill(-p->pid, SIGKILL);
        }
    }
    return 1;
}

int prog_wait(prog_t *p, int timeout_ms)
{
    if (!p) return KIT_EINVAL;
    int64_t end = timeout_ms < 0 ? INT64_MAX : kit_now_ms() + timeout_ms;
    for (;;) {
        if (!prog_poll(p)) return KIT_OK;
        if (cleanup_interrupted()) return KIT_EINTR;
        int64_t left = end - kit_now_ms();
        if (left <= 0) return KIT_ETIMEOUT;
        if (kit_sleep_ms(left < 10 ? (int)left : 10) == KIT_EINTR) return KIT_EINTR;
    }
}

int prog_signal(prog_t *p, int sig)
{
    if (!p) return KIT_EINVAL;
    if (!prog_poll(p)) return KIT_ENOENT;
    if (kill(-p->pid, sig) != 0) return KIT_ERR;
    return KIT_OK;
}

int prog_stop(prog_t *p)
{
    if (!p) return KIT_EINVAL;
    if (reap(p, 0)) return KIT_OK;
    term_group(p->pid);
    int64_t end = kit_now_ms() + p->o.term_grace_ms;
    while (kit_now_ms() < end) {
        if (reap(p, 0)) return KIT_OK;
        /* Ctrl-C: no more patience, straight to SIGKILL. */
        if (kit_sleep_ms(5) == KIT_EINTR) break;
    }
    kill(-p->pid, SIGKILL);
    reap(p, 1);
    return KIT_OK;
}

pid_t prog_pid(const prog_t *p) { return p ? p->pid : 0; }
enum prog_kind prog_get_kind(const prog_t *p) { return p ? p->kind : PROG_NONE; }
const char *prog_path(const prog_t *p) { return p ? p->path : ""; }
int prog_exit_code(const prog_t *p) { return p && !p->pid ? p->exit_code : -1; }
int prog_term_signal(const prog_t *p) { return p && !p->pid ? p->term_sig : 0; }
int prog_timed_out(const prog_t *p) { return p ? p->timed_out : 0; }

double prog_runtime_s(const prog_t *p)
{
    if (!p || !p->t_start) return 0.0;
    int64_t end = p->pid ? kit_now_ms() : p->t_end;
    return (double)(end - p->t_start) / 1000.0;
}

/* The first OUT_CAP bytes: a stable prefix, so repeated reads of a
 * growing file only ever gain text at the end. */
static const char *read_capture(const char *path, char **buf, size_t *len)
{
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t want = 0;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0)
        want = (size_t)st.st_size < OUT_CAP ? (size_t)st.st_size : OUT_CAP;
    *buf = kit_xrealloc(*buf, want + 1);
    while (fd >= 0 && n < want) {
        ssize_t r = read(fd, *buf + n, want - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    if (fd >= 0) close(fd);
    (*buf)[n] = '\0';
    if (len) *len = n;
    return *buf;
}

const char *prog_stdout(prog_t *p, size_t *len)
{
    if (!p) { if (len) *len = 0; return ""; }
    return read_capture(p->out_path, &p->obuf, len);
}

const char *prog_stderr(prog_t *p, size_t *len)
{
    if (!p) { if (len) *len = 0; return ""; }
    return read_capture(p->err_path, &p->ebuf, len);
}

void prog_free(prog_t *p)
{
    if (!p) return;
    if (p->pid) prog_stop(p);
    sbx_end(p->box);   /* stopped above; NULL unless something went wrong */
    free(p->dir);
    free(p->name);
    free(p->workdir);
    env_free(p->env);
    env_free(p->ro);
    env_free(p->rw);
    for (size_t i = 0; i < sizeof p->extra_ro / sizeof p->extra_ro[0]; i++) free(p->extra_ro[i]);
    free(p->obuf);
    free(p->ebuf);
    free(p);
}
