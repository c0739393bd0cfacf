/*
 * sandbox.c - bubblewrap sandboxes for students' programs (see sandbox.h
 * for the process tree), the launcher that runs as PID 1 inside them,
 * and the private copy of a submission that programs run in.
 *
 * The kit and the launcher talk over a socket pair: the launcher says
 * "ready" once the program has been exec'd, and "status N" (the raw wait
 * status) once it has exited; the kit says nothing, and closing its end
 * (or dying) tells the launcher to go. The program never holds the
 * socket, and cannot reach the launcher's: the launcher is not dumpable.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sandbox.h"
#include "cleanup.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_MS 30000            /* bwrap's setup on a loaded machine */
#define END_MS 5000               /* the namespace's teardown after SIGKILL */

/* The fds bwrap (and so the launcher) gets from the kit. */
enum { FD_NULL = 0, FD_LOG = 1, FD_LOG2 = 2, FD_STATUS = 3, FD_INFO = 4,
       FD_OUT = 5, FD_ERR = 6, FD_COUNT = 7 };

struct sbx_proc {
    pid_t bwrap;              /* our child, its group tracked; 0 once reaped */
    pid_t init;               /* the launcher's host pid, or 0 */
    int init_fd;              /* a pidfd on the launcher, or -1 */
    pid_t prog;               /* the program's host pid, or 0 */
    int sock;                 /* our end of the status socket, or -1 */
    int log;                  /* read end of bwrap's own stderr, or -1 */
    char buf[256];            /* an unfinished line from the launcher */
    size_t nbuf;
    int ready, done, status;
};

/* ---- small helpers ----------------------------------------------------- */

typedef struct {
    char **v;
    size_t n, cap;
} strv_t;

static void sv_add(strv_t *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = kit_xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = kit_strdup(s);
    a->v[a->n] = NULL;
}

static void sv_addf(strv_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sv_addf(strv_t *a, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sv_add(a, buf);
}

static void sv_free(strv_t *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}



static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int pidfd_kill(int fd, int sig)
{
#ifdef SYS_pidfd_send_signal
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
#else
    (void)fd; (void)sig;
    errno = ENOSYS;
    return -1;
#endif
}

/* Close every fd from 3 up, except those in keep (n of them). */
static void close_all_but(const int *keep, int n)
{
    int low = 3;
    for (;;) {
        int next = INT_MAX;
        for (int i = 0; i < n; i++)
            if (keep[i] >= low && keep[i] < next) next = keep[i];
        if (next == INT_MAX) { kit_close_from(low); return; }
        for (int fd = low; fd < next; fd++) close(fd);
        low = next + 1;
    }
}


/* ---- who and where ----------------------------------------------------- */

static char launcher_path[PATH_MAX];

void sbx_set_launcher(const char *path)
{
    snprintf(launcher_path, sizeof launcher_path, "%s", path ? path : "");
}

const char *sbx_launcher(void)
{
    return launcher_path[0] ? launcher_path : kit_self_exe();
}

int sbx_privileged(void)
{
    return geteuid() == 0;
}

uid_t sbx_uid(void)
{
    return (uid_t)(SBX_UID_BASE + (unsigned)getpid() % SBX_UID_RANGE);
}

/* bwrap on the kit's PATH, else /usr/bin/bwrap; "" when neither. */
static const char *bwrap_path(void)
{
    static char path[PATH_MAX];
    static int done;
    if (done) return path;
    done = 1;
    const char *env = getenv("PATH");
    const char *p = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
    while (*p) {
        size_t n = strcspn(p, ":");
        if (n > 0 && p[0] == '/') {
            int len = snprintf(path, sizeof path, "%.*s/bwrap", (int)n, p);
            struct stat st;
            if (len > 0 && (size_t)len < sizeof path && stat(path, &st) == 0 &&
                S_ISREG(st.st_mode) && access(path, X_OK) == 0)
                return path;
        }
        p += n;
        if (*p == ':') p++;
    }
    if (access("/usr/bin/bwrap", X_OK) == 0) snprintf(path, sizeof path, "/usr/bin/bwrap");
    else path[0] = '\0';
    return path;
}

/* What sbx_available found (or a failed start settled). */
static struct {
    int done, ok;
    char why[KIT_ERRLEN];
} avail;
static void explain_unavailable(int rc, int st, const char *err);

/* ---- the bwrap command line -------------------------------------------- */

typedef struct {
    char path[PATH_MAX];
    int rw;
} bind_t;

/* An absolute path with no ".", "..", "//" or trailing slash. A relative
 * path is taken from the kit's cwd. */
static int norm_path(const char *in, char *out, size_t outlen, char *err)
{
    char tmp[PATH_MAX];
    if (!in || !*in) return kit_seterr(err, KIT_EINVAL, "an empty path cannot be bound");
    if (in[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return kit_seterr(err, KIT_ERR, "cannot read the current folder: %s", strerror(errno));
        if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s", cwd, in) >= sizeof tmp)
            return kit_seterr(err, KIT_EINVAL, "path too long: %s", in);
    } else if ((size_t)snprintf(tmp, sizeof tmp, "%s", in) >= sizeof tmp) {
        return kit_seterr(err, KIT_EINVAL, "path too long: %.200s", in);
    }
    size_t n = 0;
    const char *p = tmp;
    while (*p) {
        while (*p == '/') p++;
        size_t len = strcspn(p, "/");
        if (len == 0) break;
        if (len == 1 && p[0] == '.') { p += len; continue; }
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return kit_seterr(err, KIT_EINVAL, "cannot bind %s: the path has '..'", in);
        if (n + 1 + len + 1 > outlen) return kit_seterr(err, KIT_EINVAL, "path too long: %.200s", in);
        out[n++] = '/';
        memcpy(out + n, p, len);
        n += len;
        p += len;
    }
    if (n == 0) out[n++] = '/';
    out[n] = '\0';
    return KIT_OK;
}

/* Places the sandbox makes for itself, or that must stay as they are. */
static int reserved(const char *path)
{
    static const char *const exact[] = { "/", "/tmp", "/usr", "/etc", "/home" };
    static const char *const tree[] = { "/proc", "/dev", SBX_HOME, "/.mqlab" };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(path, exact[i]) == 0) return 1;
    for (size_t i = 0; i < sizeof tree / sizeof tree[0]; i++)
        if (kit_path_under(path, tree[i])) return 1;
    return 0;
}

static int add_binds(bind_t **list, size_t *n, const char *const *paths, int rw, char *err)
{
    for (const char *const *x = paths; x && *x; x++) {
        char path[PATH_MAX];
        int rc = norm_path(*x, path, sizeof path, err);
        if (rc != KIT_OK) return rc;
        if (reserved(path))
            return kit_seterr(err, KIT_EINVAL, "cannot bind %s into a sandbox: the sandbox "
                              "makes that folder itself", path);
        struct stat st;
        if (stat(path, &st) != 0)
            return kit_seterr(err, KIT_EINVAL, "cannot bind %s into a sandbox: %s", path, strerror(errno));
        *list = kit_xrealloc(*list, (*n + 1) * sizeof **list);
        snprintf((*list)[*n].path, sizeof (*list)[*n].path, "%s", path);
        (*list)[*n].rw = rw;
        (*n)++;
    }
    return KIT_OK;
}

static int bind_cmp(const void *a, const void *b)
{
    return strcmp(((const bind_t *)a)->path, ((const bind_t *)b)->path);
}

/* The system parts outside /usr and /etc: the merged-/usr links, or
 * real folders on an older layout. */
static void add_system(strv_t *a)
{
    static const char *const tops[] = { "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" };
    sv_add(a, "--ro-bind"); sv_add(a, "/usr"); sv_add(a, "/usr");
    sv_add(a, "--ro-bind"); sv_add(a, "/etc"); sv_add(a, "/etc");
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
        struct stat st;
        if (lstat(tops[i], &st) != 0) continue;
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlink(tops[i], target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = '\0';
            sv_add(a, "--symlink"); sv_add(a, target); sv_add(a, tops[i]);
        } else if (S_ISDIR(st.st_mode)) {
            sv_add(a, "--ro-bind"); sv_add(a, tops[i]); sv_add(a, tops[i]);
        }
    }
}

static int is_system(const char *path)
{
    static const char *const sys[] = { "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32",
                                       "/lib64", "/libx32" };
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
        if (kit_path_under(path, sys[i])) return 1;
    return 0;
}

/* Every folder on the way to path that is not there yet, made 0755: the
 * folders bwrap would make by itself are 0700 and root's, which the
 * sandbox uid could not cross. */
static void add_ancestors(strv_t *a, strv_t *made, const bind_t *binds, size_t nbinds,
                          const char *path)
{
    char anc[PATH_MAX];
    for (const char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
        snprintf(anc, sizeof anc, "%.*s", (int)(s - path), path);
        if (is_system(anc) || strcmp(anc, "/tmp") == 0) continue;
        int skip = 0;
        for (size_t i = 0; i < made->n && !skip; i++) skip = strcmp(made->v[i], anc) == 0;
        /* Inside a folder bound earlier, it exists already (on the host). */
        for (size_t i = 0; i < nbinds && !skip; i++)
            skip = strcmp(binds[i].path, path) != 0 && kit_path_under(anc, binds[i].path);
        if (skip) continue;
        sv_add(a, "--perms"); sv_add(a, "0755"); sv_add(a, "--dir"); sv_add(a, anc);
        sv_add(made, anc);
    }
}

static int build_args(strv_t *a, const sbx_spec_t *s, char *err)
{
    bind_t *binds = NULL;
    size_t n = 0;
    strv_t made = { 0 };
    int rc;
    char dir[PATH_MAX] = "/";

    if (s->dir) {
        if ((rc = norm_path(s->dir, dir, sizeof dir, err)) != KIT_OK) goto cleanup;
        const char *d[] = { dir, NULL };
        if ((rc = add_binds(&binds, &n, d, 1, err)) != KIT_OK) goto cleanup;
    }
    if ((rc = add_binds(&binds, &n, s->rw, 1, err)) != KIT_OK) goto cleanup;
    if ((rc = add_binds(&binds, &n, s->ro, 0, err)) != KIT_OK) goto cleanup;
    /* Sorted, a folder comes before what is inside it, so a bind inside
     * another is mounted on top of it; of two equal paths, one stays, and
     * it is read-only unless both were writable. */
    if (n > 1) qsort(binds, n, sizeof *binds, bind_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && strcmp(binds[m - 1].path, binds[i].path) == 0) {
            binds[m - 1].rw &= binds[i].rw;
            continue;
        }
        binds[m++] = binds[i];
    }
    n = m;

    sv_add(a, bwrap_path());
    if (sbx_privileged()) {
        /* No user namespace: the launcher keeps just what it needs to
         * become the sandbox uid, and that uid has no capability at all. */
        sv_add(a, "--cap-drop"); sv_add(a, "ALL");
        sv_add(a, "--cap-add"); sv_add(a, "CAP_SETUID");
        sv_add(a, "--cap-add"); sv_add(a, "CAP_SETGID");
    } else {
        sv_add(a, "--unshare-user");
    }
    sv_add(a, "--unshare-pid");
    sv_add(a, "--unshare-ipc");
    sv_add(a, "--die-with-parent");
    sv_add(a, "--as-pid-1");
    sv_add(a, "--info-fd"); sv_addf(a, "%d", FD_INFO);
    add_system(a);
    sv_add(a, "--proc"); sv_add(a, "/proc");
    sv_add(a, "--dev"); sv_add(a, "/dev");
    sv_add(a, "--perms"); sv_add(a, "1777"); sv_add(a, "--tmpfs"); sv_add(a, "/tmp");
    add_ancestors(a, &made, NULL, 0, SBX_HOME);
    sv_add(a, "--perms"); sv_add(a, "1777"); sv_add(a, "--tmpfs"); sv_add(a, SBX_HOME);
    add_ancestors(a, &made, NULL, 0, SBX_INIT_PATH);
    sv_add(a, "--ro-bind"); sv_add(a, sbx_launcher()); sv_add(a, SBX_INIT_PATH);
    for (size_t i = 0; i < n; i++) {
        add_ancestors(a, &made, binds, i, binds[i].path);
        sv_add(a, binds[i].rw ? "--bind" : "--ro-bind");
        sv_add(a, binds[i].path);
        sv_add(a, binds[i].path);
    }
    sv_add(a, "--");
    sv_add(a, SBX_INIT_PATH);
    sv_add(a, "__box-init");
    /* The launcher enters the folder once it is the sandbox uid: bwrap,
     * root without CAP_DAC_OVERRIDE, could not enter one that is 0700
     * and the sandbox uid's. */
    sv_add(a, "--chdir"); sv_add(a, dir);
    /* bwrap sets PWD; the program gets the one it was given, or none. */
    for (char *const *e = s->envp; *e; e++)
        if (strncmp(*e, "PWD=", 4) == 0) { sv_add(a, "--pwd"); sv_add(a, *e + 4); }
    sv_add(a, "--fd"); sv_addf(a, "%d", FD_STATUS);
    sv_add(a, "--out"); sv_addf(a, "%d", FD_OUT);
    sv_add(a, "--err"); sv_addf(a, "%d", FD_ERR);
    if (sbx_privileged()) {
        long nproc = s->lim && s->lim->nproc > 0 ? s->lim->nproc : SBX_NPROC_DEFAULT;
        sv_add(a, "--uid"); sv_addf(a, "%u", (unsigned)sbx_uid());
        sv_add(a, "--gid"); sv_addf(a, "%u", (unsigned)sbx_uid());
        sv_add(a, "--nproc"); sv_addf(a, "%ld", nproc);
    }
    if (s->lim) {
        if (s->lim->mem_mb > 0) { sv_add(a, "--mem"); sv_addf(a, "%ld", s->lim->mem_mb); }
        if (s->lim->cpu_s > 0) { sv_add(a, "--cpu"); sv_addf(a, "%ld", s->lim->cpu_s); }
        if (s->lim->fsize_mb > 0) { sv_add(a, "--fsize"); sv_addf(a, "%ld", s->lim->fsize_mb); }
        if (s->lim->nofile > 0) { sv_add(a, "--nofile"); sv_addf(a, "%ld", s->lim->nofile); }
    }
    sv_add(a, "--");
    for (char *const *x = s->argv; *x; x++) sv_add(a, *x);
    rc = KIT_OK;
cleanup:
    free(binds);
    sv_free(&made);
    return rc;
}

/* ---- starting ---------------------------------------------------------- */

/* In the child, between fork and exec: system calls only (the kit may
 * have a proxy thread holding a lock). */
static void bwrap_child(const int *fds, char *const *argv, char *const *envp, pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Out of the way first, so no dup2 below overwrites one still to copy. */
    int moved[FD_COUNT];
    for (int i = 0; i < FD_COUNT; i++)
        if ((moved[i] = fcntl(fds[i], F_DUPFD, 10)) < 0) _exit(127);
    for (int i = 0; i < FD_COUNT; i++)
        if (dup2(moved[i], i) < 0) _exit(127);
    kit_close_from(FD_COUNT);
    execve(argv[0], argv, envp);
    char msg[PATH_MAX + 64];
    int n = snprintf(msg, sizeof msg, "mqlab: cannot run %s: %s\n", argv[0], strerror(errno));
    if (n > 0) {
        ssize_t w = write(FD_LOG2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    _exit(127);
}

/* Wait until fd is readable (or hung up). 1 ready, 0 timeout, -1 on
 * Ctrl-C. timeout_ms < 0: no limit. */
static int wait_readable(int fd, int timeout_ms)
{
    int64_t end = timeout_ms < 0 ? INT64_MAX : kit_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - kit_now_ms();
        if (left < 0) left = 0;
        struct pollfd pfd = { fd, POLLIN, 0 };
        int r = poll(&pfd, 1, left > 50 ? 50 : (int)left);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return 1;   /* let the read tell */
        if (cleanup_interrupted()) return -1;
        if (left == 0) return 0;
    }
}

/* Read what the launcher said and act on each whole line. */
static void read_msgs(sbx_proc_t *b)
{
    for (;;) {
        ssize_t r = recv(b->sock, b->buf + b->nbuf, sizeof b->buf - 1 - b->nbuf, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            /* The launcher is gone: if it did not say, nobody knows. */
            if (!b->done) { b->done = 1; b->status = -1; }
            close(b->sock);
            b->sock = -1;
            return;
        }
        b->nbuf += (size_t)r;
        b->buf[b->nbuf] = '\0';
        char *nl;
        while ((nl = strchr(b->buf, '\n'))) {
            *nl = '\0';
            if (strcmp(b->buf, "ready") == 0) {
                b->ready = 1;
            } else if (strncmp(b->buf, "status ", 7) == 0 && !b->done) {
                b->done = 1;
                b->status = (int)strtol(b->buf + 7, NULL, 10);
            }
            size_t used = (size_t)(nl + 1 - b->buf);
            memmove(b->buf, nl + 1, b->nbuf - used + 1);
            b->nbuf -= used;
        }
        if (b->nbuf >= sizeof b->buf - 1) b->nbuf = 0;   /* not ours: drop */
    }
}

/* "child-pid" from bwrap's --info-fd: the launcher's host pid. */
static pid_t read_info(int fd, int64_t end, int *interrupted)
{
    char buf[1024];
    size_t n = 0;
    for (;;) {
        int64_t left = end - kit_now_ms();
        int w = wait_readable(fd, left > 0 ? (int)left : 0);
        if (w < 0) { *interrupted = 1; return 0; }
        if (w == 0) return 0;
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        buf[n] = '\0';
        if (strchr(buf, '}') || n == sizeof buf - 1) break;
    }
    buf[n] = '\0';
    const char *k = strstr(buf, "\"child-pid\"");
    if (!k || !(k = strchr(k, ':'))) return 0;
    long pid = strtol(k + 1, NULL, 10);
    return pid > 0 ? (pid_t)pid : 0;
}

/* The launcher's only child it forked itself: the first one /proc lists
 * (orphans it adopts come after). Then by a scan, where the kernel has
 * no children file. */
static pid_t find_program(pid_t init)
{
    char path[96], buf[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)init, (int)init);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            long pid = strtol(buf, NULL, 10);
            if (pid > 0 && cleanup_parent_of((pid_t)pid) == init) return (pid_t)pid;
        }
    }
    /* The oldest child has the lowest start time; pids may wrap, so
     * compare that, not the numbers. */
    DIR *d = opendir("/proc");
    if (!d) return 0;
    pid_t best = 0;
    unsigned long long best_start = ~0ULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *endp;
        long pid = strtol(e->d_name, &endp, 10);
        if (pid <= 0 || *endp || cleanup_parent_of((pid_t)pid) != init) continue;
        unsigned long long f[KIT_STAT_FIELDS];
        unsigned long long start = kit_proc_stat((int)pid, NULL, f) == 0 ? f[22] : ~0ULL;
        if (start < best_start) { best_start = start; best = (pid_t)pid; }
    }
    closedir(d);
    return best;
}

/* bwrap's own words (its stderr), for an error message. */
static void read_log(sbx_proc_t *b, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    if (b->log < 0 || outlen == 0) return;
    /* bwrap may still be writing: give it a moment to finish and exit. */
    int64_t end = kit_now_ms() + 2000;
    while (b->bwrap > 0 && kit_now_ms() < end) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)b->bwrap, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid) break;
        if (kit_sleep_ms(10) == KIT_EINTR) break;
    }
    for (;;) {
        ssize_t r = read(b->log, out + n, outlen - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n >= outlen - 1) break;
    }
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
}

int sbx_start(sbx_proc_t **out, const sbx_spec_t *s, char *err)
{
    strv_t args = { 0 };
    int sv[2] = { -1, -1 }, info[2] = { -1, -1 }, logp[2] = { -1, -1 }, nul = -1;
    int rc = KIT_OK, interrupted = 0;
    sbx_proc_t *b = NULL;

    if (!out) return kit_seterr(err, KIT_EINVAL, "sbx_start: no result pointer");
    *out = NULL;
    if (!s || !s->argv || !s->argv[0] || !s->envp)
        return kit_seterr(err, KIT_EINVAL, "sbx_start: argv and envp are required");
    if (!bwrap_path()[0])
        return kit_seterr(err, KIT_EMISSING, "bubblewrap (bwrap) is not installed; install it "
                          "with: apt-get install -y bubblewrap");
    if ((rc = build_args(&args, s, err)) != KIT_OK) return rc;

    b = calloc(1, sizeof *b);
    if (!b) { rc = kit_seterr(err, KIT_ERR, "out of memory"); goto cleanup; }
    b->sock = b->log = b->init_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
        pipe2(info, O_CLOEXEC) != 0 || pipe2(logp, O_CLOEXEC) != 0 ||
        (nul = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        rc = kit_seterr(err, KIT_ERR, "cannot set up a sandbox: %s", strerror(errno));
        goto cleanup;
    }
    b->sock = sv[0];
    b->log = logp[0];
    fcntl(b->log, F_SETFL, O_NONBLOCK);

    int fds[FD_COUNT] = { nul, logp[1], logp[1], sv[1], info[1], s->out, s->err };
    /* Signals stay blocked until the child has reset its handlers. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) bwrap_child(fds, args.v, s->envp, parent);
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        rc = kit_seterr(err, KIT_ERR, "cannot start bwrap: %s", strerror(fork_errno));
        goto cleanup;
    }
    setpgid(pid, pid);
    b->bwrap = pid;
    if (cleanup_track_pgid(pid) != 0) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        b->bwrap = 0;
        rc = kit_seterr(err, KIT_ERR, "too many programs at once: the sandbox is not started");
        goto cleanup;
    }
    close(sv[1]); sv[1] = -1;
    close(info[1]); info[1] = -1;
    close(logp[1]); logp[1] = -1;

    int64_t end = kit_now_ms() + START_MS;
    b->init = read_info(info[0], end, &interrupted);
    if (b->init > 0) {
        /* The launcher is bwrap's child until bwrap reaps it, and bwrap is
         * ours, unreaped: checked after the pidfd is taken, the pidfd is
         * known to be the launcher's, not a stranger's with its number. */
        b->init_fd = pidfd_open_(b->init);
        if (cleanup_parent_of(b->init) != b->bwrap) {
            if (b->init_fd >= 0) close(b->init_fd);
            b->init_fd = -1;
            b->init = 0;
        }
    }
    while (b->init > 0 && !b->ready && b->sock >= 0 && !interrupted) {
        int64_t left = end - kit_now_ms();
        int w = wait_readable(b->sock, left > 0 ? (int)left : 0);
        if (w < 0) interrupted = 1;
        else if (w == 0) break;
        else read_msgs(b);
    }
    if (interrupted) {
        rc = kit_seterr(err, KIT_EINTR, "interrupted while starting a sandbox");
        goto cleanup;
    }
    if (!b->ready) {
        char words[KIT_ERRLEN - 64];
        read_log(b, words, sizeof words);
        if (b->init > 0 && b->sock >= 0)
            rc = kit_seterr(err, KIT_ERR, "the sandbox did not start within %d s", START_MS / 1000);
        else {
            rc = kit_seterr(err, KIT_ERR, "cannot start the sandbox: %s",
                            words[0] ? words : "bwrap failed without a message");
            /* bwrap could not make the sandbox: it will not here. The
             * answer the probe would have given, without the probe. */
            if (!avail.done) {
                avail.done = 1;
                avail.ok = 0;
                explain_unavailable(rc, 0, err);
            }
        }
        goto cleanup;
    }
    b->prog = find_program(b->init);
    if (b->prog <= 0) {
        rc = kit_seterr(err, KIT_ERR, "the sandbox started, but its program cannot be found in /proc");
        goto cleanup;
    }
    *out = b;
    b = NULL;
cleanup:
    if (b) sbx_end(b);
    if (sv[1] >= 0) close(sv[1]);
    if (info[0] >= 0) close(info[0]);
    if (info[1] >= 0) close(info[1]);
    if (logp[1] >= 0) close(logp[1]);
    if (nul >= 0) close(nul);
    sv_free(&args);
    return rc;
}

pid_t sbx_pid(const sbx_proc_t *b)
{
    return b ? b->prog : 0;
}

int sbx_poll(sbx_proc_t *b, int timeout_ms, int *status)
{
    if (!b) {
        if (status) *status = -1;
        return 1;
    }
    int64_t end = timeout_ms < 0 ? INT64_MAX : kit_now_ms() + timeout_ms;
    while (!b->done && b->sock >= 0) {
        read_msgs(b);
        if (b->done) break;
        int64_t left = end - kit_now_ms();
        if (left <= 0) break;
        if (wait_readable(b->sock, left > INT32_MAX ? -1 : (int)left) <= 0) break;
    }
    if (b->sock < 0 && !b->done) { b->done = 1; b->status = -1; }
    if (!b->done) return 0;
    if (status) *status = b->status;
    return 1;
}

void sbx_end(sbx_proc_t *b)
{
    if (!b) return;
    if (b->sock >= 0) close(b->sock);
    if (b->init_fd >= 0) {
        /* Once the launcher (PID 1 inside) is gone, so is everything in
         * its namespace: the kernel reaps them all before it lets the
         * pidfd say so. */
        pidfd_kill(b->init_fd, SIGKILL);
        int64_t end = kit_now_ms() + END_MS;
        for (;;) {
            struct pollfd pfd = { b->init_fd, POLLIN, 0 };
            int r = poll(&pfd, 1, 50);
            if (r > 0 || (r < 0 && errno != EINTR) || kit_now_ms() >= end) break;
        }
        close(b->init_fd);
    }
    if (b->bwrap > 0) {
        /* bwrap reaps the launcher and exits by itself. Killed before
         * that, it would leave the launcher's zombie to the host's init,
         * which in some containers never reaps. */
        int64_t end = kit_now_ms() + (b->init_fd >= 0 ? END_MS : 0);
        int st;
        pid_t r;
        while ((r = waitpid(b->bwrap, &st, WNOHANG)) == 0 && kit_now_ms() < end) {
            struct timespec ts = { 0, 2 * 1000000L };
            nanosleep(&ts, NULL);
        }
        if (r == 0) {
            kill(-b->bwrap, SIGKILL);
            while (waitpid(b->bwrap, NULL, 0) < 0 && errno == EINTR) {}
        }
        cleanup_untrack_pgid(b->bwrap);
    }
    if (b->log >= 0) close(b->log);
    free(b);
}

/* ---- the launcher (PID 1 inside) --------------------------------------- */

static int init_fail(const char *what, const char *arg)
{
    fprintf(stderr, "mqlab __box-init: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
    return 127;
}

/* Wait status from waitid's siginfo. */
static int wstatus_of(const siginfo_t *si)
{
    switch (si->si_code) {
    case CLD_EXITED: return (si->si_status & 0xff) << 8;
    case CLD_DUMPED: return (si->si_status & 0x7f) | 0x80;
    default: return si->si_status & 0x7f;
    }
}

/* Reap every exited child but the program; 1 (and its status) once the
 * program has exited, which stays a zombie: its pid, which is also its
 * group id, then names no one else while the kit may still signal it. */
static int reap_others(pid_t prog, int *status)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        if (si.si_pid == 0) return 0;
        if (si.si_pid == prog) {
            *status = wstatus_of(&si);
            return 1;
        }
        pid_t other = si.si_pid;
        memset(&si, 0, sizeof si);
        waitid(P_PID, (id_t)other, &si, WEXITED | WNOHANG);
    }
}

typedef struct {
    long fd, out, err, uid, gid, nproc, mem, cpu, fsize, nofile;
    const char *chdir, *pwd;
} init_opts;

static void program_child(const init_opts *o, char **argv, int sync)
{
    setsid();
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    int out = fcntl((int)o->out, F_DUPFD, 10), errfd = fcntl((int)o->err, F_DUPFD, 10);
    if (out < 0 || errfd < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0) _exit(127);

    if (o->mem > 0) kit_set_limit(RLIMIT_AS, (rlim_t)o->mem << 20, (rlim_t)o->mem << 20);
    /* soft < hard: SIGXCPU first, SIGKILL a second later. */
    if (o->cpu > 0) kit_set_limit(RLIMIT_CPU, (rlim_t)o->cpu, (rlim_t)o->cpu + 1);
    if (o->fsize > 0) kit_set_limit(RLIMIT_FSIZE, (rlim_t)o->fsize << 20, (rlim_t)o->fsize << 20);
    if (o->nofile > 0) kit_set_limit(RLIMIT_NOFILE, (rlim_t)o->nofile, (rlim_t)o->nofile);
    if (o->nproc > 0) kit_set_limit(RLIMIT_NPROC, (rlim_t)o->nproc, (rlim_t)o->nproc);
    kit_set_limit(RLIMIT_CORE, 0, 0);

    /* The status socket and every other fd of the launcher stay behind;
     * only the sync pipe crosses, and exec closes it. */
    int keep[1] = { sync };
    close_all_but(keep, 1);
    execvp(argv[0], argv);
    int e = errno;
    char msg[PATH_MAX + 64];
    int n = snprintf(msg, sizeof msg, "mqlab: cannot run %s: %s\n", argv[0], strerror(e));
    if (n > 0) {
        ssize_t w = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    _exit(127);
}

static void say(int fd, const char *line)
{
    send(fd, line, strlen(line), MSG_NOSIGNAL);
}

int sbx_init_main(int argc, char **argv)
{
    init_opts o = { -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, "/", NULL };
    static const struct { const char *name; size_t off; } names[] = {
        { "--fd", offsetof(init_opts, fd) }, { "--out", offsetof(init_opts, out) },
        { "--err", offsetof(init_opts, err) }, { "--uid", offsetof(init_opts, uid) },
        { "--gid", offsetof(init_opts, gid) }, { "--nproc", offsetof(init_opts, nproc) },
        { "--mem", offsetof(init_opts, mem) }, { "--cpu", offsetof(init_opts, cpu) },
        { "--fsize", offsetof(init_opts, fsize) }, { "--nofile", offsetof(init_opts, nofile) },
    };
    int i = 2;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 < argc && strcmp(argv[i], "--chdir") == 0) { o.chdir = argv[i + 1]; continue; }
        if (i + 1 < argc && strcmp(argv[i], "--pwd") == 0) { o.pwd = argv[i + 1]; continue; }
        size_t k = 0;
        while (k < sizeof names / sizeof names[0] && strcmp(argv[i], names[k].name) != 0) k++;
        if (k == sizeof names / sizeof names[0] || i + 1 >= argc)
            return init_fail("unknown option", argv[i]);
        char *endp;
        long v = strtol(argv[i + 1], &endp, 10);
        if (*endp || v < 0) return init_fail("bad value", argv[i + 1]);
        *(long *)((char *)&o + names[k].off) = v;
    }
    if (i + 1 >= argc || o.fd < 3 || o.out < 0 || o.err < 0)
        return init_fail("usage", "__box-init --fd N --out N --err N [limits] -- program args");
    char **prog_argv = argv + i + 1;
    int fd = (int)o.fd;

    int keep[3] = { fd, (int)o.out, (int)o.err };
    close_all_but(keep, 3);

    if (o.uid >= 0) {
        gid_t gid = (gid_t)(o.gid >= 0 ? o.gid : o.uid);
        if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid((uid_t)o.uid) != 0 ||
            getuid() != (uid_t)o.uid || geteuid() != (uid_t)o.uid || getegid() != gid)
            return init_fail("cannot switch to the sandbox uid", strerror(errno));
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return init_fail("cannot set no_new_privs", strerror(errno));
    if (chdir(o.chdir) != 0) {
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "cannot enter %s", o.chdir);
        return init_fail(what, strerror(errno));
    }
    if (o.pwd) setenv("PWD", o.pwd, 1);
    else unsetenv("PWD");
    /* Not dumpable: the program, with the same uid, cannot open our fds
     * through /proc/1/fd nor ptrace us. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* The uid switch cleared bwrap's --die-with-parent signal. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    int sync[2];
    if (sfd < 0 || pipe2(sync, O_CLOEXEC) != 0) return init_fail("cannot set up", strerror(errno));

    pid_t prog = fork();
    if (prog < 0) return init_fail("cannot fork the program", strerror(errno));
    if (prog == 0) program_child(&o, prog_argv, sync[1]);
    close(sync[1]);
    /* EOF once the program has exec'd (or failed to, and said why on its
     * stderr): from then on a signal reaches the program's own handlers. */
    char sink[16];
    while (read(sync[0], sink, sizeof sink) < 0 && errno == EINTR) {}
    close(sync[0]);
    close((int)o.out);
    close((int)o.err);
    say(fd, "ready\n");

    int status = 0, exited = 0;
    while (!exited) {
        struct pollfd pfd[2] = { { sfd, POLLIN, 0 }, { fd, POLLIN, 0 } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return init_fail("poll", strerror(errno));
        }
        if (pfd[1].revents) {
            ssize_t r = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return 0;   /* the kit is gone */
        }
        if (pfd[0].revents) {
            struct signalfd_siginfo ssi;
            while (read(sfd, &ssi, sizeof ssi) > 0) {}
        }
        exited = reap_others(prog, &status);
    }
    /* The rest of the namespace goes now, before the kit hears: when the
     * kit sees the status, nothing the program left is running. */
    kill(-1, SIGKILL);
    char line[32];
    snprintf(line, sizeof line, "status %d\n", status);
    say(fd, line);
    /* Held until the kit closes its end (or kills us): our zombie child
     * keeps the program's pid and group id from being reused meanwhile. */
    for (;;) {
        ssize_t r = recv(fd, sink, sizeof sink, 0);
        if (r == 0 || (r < 0 && errno != EINTR)) break;
    }
    return 0;
}

/* ---- availability ------------------------------------------------------ */


/* Why sandboxes cannot run here, and the fix, into avail.why: rc and err
 * from the sbx_start that failed (KIT_OK: it started, but `true` inside
 * ended with status st). */
static void explain_unavailable(int rc, int st, const char *err)
{
    if (rc == KIT_EMISSING) {
        snprintf(avail.why, sizeof avail.why, "%s", err);
    } else if (rc == KIT_OK) {
        snprintf(avail.why, sizeof avail.why, "a sandbox started but `true` inside it did not "
                 "succeed (status %d): does %.300s run sbx_init_main for __box-init?", st, sbx_launcher());
    } else if (sbx_privileged()) {
        snprintf(avail.why, sizeof avail.why, "%.200s. As root, bwrap needs to mount and to make "
                 "namespaces: in a container, run it with --privileged (or CAP_SYS_ADMIN and no "
                 "seccomp/AppArmor confinement)", err);
    } else {
        snprintf(avail.why, sizeof avail.why, "%.200s. Without root, bwrap needs unprivileged user "
                 "namespaces: sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces>0 "
                 "(on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0), or run mqlab as root", err);
    }
}

int sbx_installed(char *why, size_t len)
{
    if (bwrap_path()[0]) return 1;
    if (why && len) snprintf(why, len, "bubblewrap (bwrap) is not installed; install it with: "
                             "apt-get install -y bubblewrap");
    return 0;
}

int sbx_known_unavailable(void)
{
    return avail.done && !avail.ok;
}

int sbx_available(char *why, size_t len)
{
    if (!avail.done) {
        avail.done = 1;
        char err[KIT_ERRLEN] = "";
        char *argv[] = { (char *)"true", NULL };
        char *envp[] = { (char *)"PATH=/usr/bin:/bin", NULL };
        int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
        sbx_spec_t s = { NULL, NULL, NULL, argv, envp, nul, nul, NULL };
        sbx_proc_t *b = NULL;
        int rc = nul < 0 ? KIT_ERR : sbx_start(&b, &s, err);
        int st = -1;
        if (rc == KIT_OK && sbx_poll(b, START_MS, &st) == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            avail.ok = 1;
        sbx_end(b);
        if (nul >= 0) close(nul);
        if (rc == KIT_EINTR) {
            /* Asked while the user interrupts: no answer, ask again later. */
            avail.done = 0;
            snprintf(avail.why, sizeof avail.why, "%s", err);
        } else if (avail.ok) {
            avail.why[0] = '\0';
        } else {
            explain_unavailable(rc, st, err);
        }
    }
    if (why && len) snprintf(why, len, "%s", avail.why);
    return avail.ok;
}

void sbx_describe(char *buf, size_t len)
{
    char why[KIT_ERRLEN];
    if (!buf || !len) return;
    if (!sbx_available(why, sizeof why)) {
        snprintf(buf, len, "no sandbox: %s", why);
    } else if (sbx_privileged()) {
        snprintf(buf, len, "bubblewrap (%s), privileged: programs run as uid %u in their own pid, "
                 "ipc and mount namespaces (network shared); RLIMIT_NPROC (%d by default) "
                 "contains fork bombs", bwrap_path(), (unsigned)sbx_uid(), SBX_NPROC_DEFAULT);
    } else {
        snprintf(buf, len, "bubblewrap (%s) in a user namespace: programs run as uid %u in their "
                 "own pid, ipc and mount namespaces (network shared); nothing contains fork bombs "
                 "(RLIMIT_NPROC needs mqlab to run as root), only the CPU and wall time limits end them",
                 bwrap_path(), (unsigned)getuid());
    }
}

/* ---- folders for the sandbox uid --------------------------------------- */

static int chown_at(int at, const char *name, int depth, char *err)
{
    uid_t u = sbx_uid();
    struct stat st;
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return kit_seterr(err, KIT_ERR, "cannot read %s: %s", name, strerror(errno));
    if (fchownat(at, name, u, u, AT_SYMLINK_NOFOLLOW) != 0)
        return kit_seterr(err, KIT_ERR, "cannot give %s to the sandbox uid: %s", name, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return KIT_OK;
    if (depth > 64) return kit_seterr(err, KIT_EINVAL, "folders nested too deep under %s", name);
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return kit_seterr(err, KIT_ERR, "cannot open %s: %s", name, strerror(errno));
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return kit_seterr(err, KIT_ERR, "cannot list %s: %s", name, strerror(errno));
    }
    int rc = KIT_OK;
    struct dirent *e;
    while (rc == KIT_OK && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        rc = chown_at(dirfd(d), e->d_name, depth + 1, err);
    }
    closedir(d);
    return rc;
}

int sbx_chown_tree(const char *path, char *err)
{
    if (!path || !*path) return kit_seterr(err, KIT_EINVAL, "sbx_chown_tree: no path");
    if (!sbx_privileged()) return KIT_OK;
    return chown_at(AT_FDCWD, path, 0, err);
}

typedef struct {
    int entries, skipped;
    long long bytes;
    int own;                  /* chown to the sandbox uid */
    char *err;
} copy_state;

static int copy_file(int sdir, int ddir, const char *name, const struct stat *st, copy_state *c)
{
    char buf[65536];
    int in = -1, out = -1, rc = KIT_OK;
    /* O_NONBLOCK: if the entry was swapped for a FIFO since fstatat, the
     * open must not hang; fstat then tells, and it is skipped. */
    in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat now;
    if (in < 0 || fstat(in, &now) != 0 || !S_ISREG(now.st_mode)) {
        c->skipped++;
        goto cleanup;
    }
    out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = kit_seterr(c->err, KIT_ERR, "cannot create %s in the copy: %s", name, strerror(errno));
        goto cleanup;
    }
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r < 0) { rc = kit_seterr(c->err, KIT_ERR, "cannot read %s: %s", name, strerror(errno)); goto cleanup; }
        if (r == 0) break;
        /* Counted as read: a file growing under us is caught too. */
        c->bytes += r;
        if (c->bytes > SBX_COPY_MAX_BYTES) {
            rc = kit_seterr(c->err, KIT_EINVAL, "the submission holds more than %ld MB; "
                            "nothing is copied", SBX_COPY_MAX_BYTES >> 20);
            goto cleanup;
        }
        for (ssize_t w = 0; w < r;) {
            ssize_t k = write(out, buf + w, (size_t)(r - w));
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) { rc = kit_seterr(c->err, KIT_ERR, "cannot write %s: %s", name, strerror(errno)); goto cleanup; }
            w += k;
        }
    }
    if (c->own && fchown(out, sbx_uid(), sbx_uid()) != 0) {
        rc = kit_seterr(c->err, KIT_ERR, "cannot give %s to the sandbox uid: %s", name, strerror(errno));
        goto cleanup;
    }
    fchmod(out, st->st_mode & 0777);
cleanup:
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return rc;
}

static int copy_dir(int sdir, int ddir, int depth, copy_state *c)
{
    int dup_fd = dup(sdir);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0) close(dup_fd);
        return kit_seterr(c->err, KIT_ERR, "cannot list a folder of the submission: %s", strerror(errno));
    }
    int rc = KIT_OK;
    struct dirent *e;
    while (rc == KIT_OK && (e = readdir(d))) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        if (++c->entries > SBX_COPY_MAX_ENTRIES) {
            rc = kit_seterr(c->err, KIT_EINVAL, "the submission holds more than %d files and "
                            "folders; nothing is copied", SBX_COPY_MAX_ENTRIES);
            break;
        }
        struct stat st;
        if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) { c->skipped++; continue; }
        if (S_ISREG(st.st_mode)) {
            rc = copy_file(sdir, ddir, name, &st, c);
        } else if (S_ISDIR(st.st_mode)) {
            if (depth + 1 > SBX_COPY_MAX_DEPTH) {
                rc = kit_seterr(c->err, KIT_EINVAL, "the submission has folders nested deeper "
                                "than %d; nothing is copied", SBX_COPY_MAX_DEPTH);
                break;
            }
            int s2 = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (s2 < 0) { c->skipped++; continue; }
            int d2 = -1;
            if (mkdirat(ddir, name, 0700) != 0 ||
                (d2 = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                rc = kit_seterr(c->err, KIT_ERR, "cannot make %s in the copy: %s", name, strerror(errno));
            } else {
                rc = copy_dir(s2, d2, depth + 1, c);
                /* The mode last: a read-only folder could not be filled. */
                if (rc == KIT_OK && c->own && fchown(d2, sbx_uid(), sbx_uid()) != 0)
                    rc = kit_seterr(c->err, KIT_ERR, "cannot give %s to the sandbox uid: %s", name,
                                    strerror(errno));
                if (rc == KIT_OK) fchmod(d2, st.st_mode & 0777);
            }
            close(s2);
            if (d2 >= 0) close(d2);
        } else {
            c->skipped++;   /* a symbolic link, device, socket or FIFO */
        }
    }
    closedir(d);
    return rc;
}

int sbx_copy_tree(const char *src, const char *dst, char *err)
{
    int sfd = -1, dfd = -1, rc, made = 0;
    struct stat st;
    copy_state c = { 0, 0, 0, sbx_privileged(), err };
    if (!src || !dst || !*src || !*dst) return kit_seterr(err, KIT_EINVAL, "sbx_copy_tree: missing path");

    sfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0) {
        struct stat lst;
        if (lstat(src, &lst) == 0 && S_ISLNK(lst.st_mode))
            return kit_seterr(err, KIT_EINVAL, "%s is a symbolic link: give the folder itself", src);
        return kit_seterr(err, KIT_ENOENT, "cannot open the folder %s: %s", src, strerror(errno));
    }
    if (fstat(sfd, &st) != 0) {
        rc = kit_seterr(err, KIT_ERR, "cannot read %s: %s", src, strerror(errno));
        goto cleanup;
    }
    if (mkdir(dst, 0700) != 0) {
        rc = kit_seterr(err, KIT_ERR, "cannot make %s: %s", dst, strerror(errno));
        goto cleanup;
    }
    made = 1;
    dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        rc = kit_seterr(err, KIT_ERR, "cannot open %s: %s", dst, strerror(errno));
        goto cleanup;
    }
    rc = copy_dir(sfd, dfd, 0, &c);
    if (rc == KIT_OK && c.own && fchown(dfd, sbx_uid(), sbx_uid()) != 0)
        rc = kit_seterr(err, KIT_ERR, "cannot give %s to the sandbox uid: %s", dst, strerror(errno));
    if (rc == KIT_OK) fchmod(dfd, (st.st_mode & 0777) | 0700);
cleanup:
    if (sfd >= 0) close(sfd);
    if (dfd >= 0) close(dfd);
    if (rc != KIT_OK && made) kit_rm_rf(dst);
    return rc;
}
