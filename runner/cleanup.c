/*
 * cleanup.c - one owner for every process group and temporary folder, and
 * the waits that must notice Ctrl-C. It builds on util.c, never the
 * other way round.
 *
 * The tables are fixed-size arrays so the signal handler can walk them
 * without allocating; a slot holding 0 / "" is free.
 *
 * What no exit path can release (mqlab killed with SIGKILL) is found
 * later by cleanup_sweep(): every folder names its owner in a small file.
 */
#include "cleanup.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A check runs a handful of brokers and programs at a time; these bound
 * what a bench or a lab with many clients could ever hold at once. */
#define MAX_PGIDS 1024
#define MAX_DIRS 128

static volatile pid_t pgids[MAX_PGIDS];
static char dirs[MAX_DIRS][PATH_MAX];
static volatile sig_atomic_t interrupted;
static int initialised;

static void kill_all(void)
{
    for (int i = 0; i < MAX_PGIDS; i++)
        if (pgids[i] > 0) kill(-pgids[i], SIGKILL);
}

static volatile sig_atomic_t nsignals;

/* First signal: a flag that the wait loops and the Lua hook turn into a
 * normal unwind (brokers stopped, folders removed). Second: kill every
 * child group now, so nothing we wait on can hold us. Third: leave at
 * once; only async-signal-safe calls are made here. */
static void on_signal(int sig)
{
    nsignals++;
    if (nsignals == 1) interrupted = sig;
    else if (nsignals == 2) kill_all();
    else _exit(130);
}

void cleanup_init(void)
{
    if (initialised) return;
    initialised = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup_run);
    kit_on_out_of_memory(cleanup_run);
}

int cleanup_interrupted(void) { return interrupted; }
void cleanup_clear_interrupt(void) { interrupted = 0; nsignals = 0; }

int cleanup_track_pgid(pid_t pgid)
{
    /* 0 marks a free slot, and kill(-pgid) of 0 or less would signal our
     * own group or a single process: never tracked. */
    if (pgid <= 0) {
        fprintf(stderr, "mqlab: cannot track process group %d: not a process group\n", (int)pgid);
        return -1;
    }
    for (int i = 0; i < MAX_PGIDS; i++)
        if (pgids[i] == 0) { pgids[i] = pgid; return 0; }
    fprintf(stderr, "mqlab: cannot track process group %d: all %d slots are taken, "
            "so it would survive mqlab\n", (int)pgid, MAX_PGIDS);
    return -1;
}

void cleanup_untrack_pgid(pid_t pgid)
{
    for (int i = 0; i < MAX_PGIDS; i++)
        if (pgids[i] == pgid) pgids[i] = 0;
}

int cleanup_track_dir(const char *path)
{
    /* A truncated path could name a parent folder: refuse it instead. */
    if (!path || !*path || strlen(path) >= sizeof dirs[0]) {
        fprintf(stderr, "mqlab: cannot track folder %.200s: %s\n", path ? path : "(null)",
                path && *path ? "path too long" : "empty path");
        return -1;
    }
    for (int i = 0; i < MAX_DIRS; i++)
        if (!dirs[i][0]) { memcpy(dirs[i], path, strlen(path) + 1); return 0; }
    fprintf(stderr, "mqlab: cannot track folder %s: all %d slots are taken, "
            "so it would survive mqlab\n", path, MAX_DIRS);
    return -1;
}

void cleanup_untrack_dir(const char *path)
{
    for (int i = 0; i < MAX_DIRS; i++)
        if (strcmp(dirs[i], path) == 0) dirs[i][0] = '\0';
}

void cleanup_forget_all(void)
{
    for (int i = 0; i < MAX_PGIDS; i++) pgids[i] = 0;
    for (int i = 0; i < MAX_DIRS; i++) dirs[i][0] = '\0';
}

void cleanup_run(void)
{
    for (int i = 0; i < MAX_PGIDS; i++) {
        pid_t g = pgids[i];
        if (g <= 0) continue;
        kill(-g, SIGKILL);
        /* Reap the leader if it is our child; others are reaped by init. */
        waitpid(g, NULL, 0);
        pgids[i] = 0;
    }
    for (int i = 0; i < MAX_DIRS; i++) {
        if (!dirs[i][0]) continue;
        kit_rm_rf(dirs[i]);
        dirs[i][0] = '\0';
    }
}

/* ---- waiting and temporary folders: what needs the flag and the tables ---- */

/* Sleep in short slices so that Ctrl-C is noticed within ~20 ms. */
int kit_sleep_ms(int ms)
{
    int64_t end = kit_now_ms() + ms;
    for (;;) {
        if (cleanup_interrupted()) return KIT_EINTR;
        int64_t left = end - kit_now_ms();
        if (left <= 0) return KIT_OK;
        if (left > 20) left = 20;
        struct timespec ts = { 0, (long)left * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* $TMPDIR, else /tmp: where kit_mkdtemp makes folders and the sweep looks. */
static const char *tmp_base(void)
{
    const char *base = getenv("TMPDIR");
    return base && *base ? base : "/tmp";
}

/* ---- processes, as /proc tells them ---- */

typedef struct {
    pid_t pid;                  /* as /proc numbers it */
    char state;                 /* R, S, D, Z, T, ... */
    pid_t ppid;
    unsigned long long start;   /* clock ticks after boot */
} proc_info_t;

/* pid 0 is this process. -1 when there is no such process (or /proc
 * cannot tell). */
static int proc_info(pid_t pid, proc_info_t *pi)
{
    unsigned long long f[KIT_STAT_FIELDS];
    if (kit_proc_stat((int)pid, &pi->state, f) != 0) return -1;
    pi->pid = (pid_t)f[1];
    pi->ppid = (pid_t)f[4];
    pi->start = f[22];
    return 0;
}

pid_t cleanup_parent_of(pid_t pid)
{
    proc_info_t pi;
    return proc_info(pid, &pi) == 0 ? pi.ppid : -1;
}

/* ---- the owner file ---- */

typedef struct {
    long long pid;
    unsigned long long start;
    char boot[40];              /* "" when unknown */
    unsigned long long pidns;   /* 0 when unknown */
} owner_t;

/* This process, as its folders record it. -1 without /proc. */
static int owner_self(owner_t *o)
{
    memset(o, 0, sizeof *o);
    proc_info_t pi;
    if (proc_info(0, &pi) != 0) return -1;
    o->pid = pi.pid;
    o->start = pi.start;
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, o->boot, sizeof o->boot - 1);
        close(fd);
        o->boot[n > 0 ? n : 0] = '\0';
        o->boot[strcspn(o->boot, "\n")] = '\0';
    }
    char ns[64];
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    if (n > 0) {
        ns[n] = '\0';
        const char *lb = strchr(ns, '[');
        if (lb) o->pidns = strtoull(lb + 1, NULL, 10);
    }
    return 0;
}

/* 0 when text names at least the pid and its start time. */
static int owner_parse(const char *text, owner_t *o)
{
    memset(o, 0, sizeof *o);
    int have = 0;
    for (const char *line = text; *line; ) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[128];
        if (len < sizeof buf) {
            memcpy(buf, line, len);
            buf[len] = '\0';
            if (sscanf(buf, "pid %lld", &o->pid) == 1) have |= 1;
            else if (sscanf(buf, "start %llu", &o->start) == 1) have |= 2;
            else if (sscanf(buf, "boot %39s", o->boot) == 1) { /* optional */ }
            else if (sscanf(buf, "pidns %llu", &o->pidns) == 1) { /* optional */ }
        }
        line += len + (end ? 1 : 0);
    }
    return have == 3 && o->pid > 0 ? 0 : -1;
}

/* Write dir's owner file through a temporary name and rename(), so that a
 * sweep never reads it half-written. No fsync: what it guards against is
 * a killed process, not a power cut (after one, the boot id differs). */
static int owner_write(const char *dir, char *err)
{
    owner_t o;
    if (owner_self(&o) != 0) return KIT_OK;     /* no /proc: the folder stays unjudged */
    char text[256], tmp[PATH_MAX], path[PATH_MAX];
    int len = snprintf(text, sizeof text, "pid %lld\nstart %llu\nboot %s\npidns %llu\n",
                       o.pid, o.start, o.boot[0] ? o.boot : "-", o.pidns);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, KIT_OWNER_FILE) >= sizeof tmp ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, KIT_OWNER_FILE) >= sizeof path)
        return kit_seterr(err, KIT_EINVAL, "temporary path too long: %s", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return kit_seterr(err, KIT_ERR, "cannot write %s: %s", tmp, strerror(errno));
    ssize_t w;
    do w = write(fd, text, (size_t)len); while (w < 0 && errno == EINTR);
    int e = w == len ? 0 : (w < 0 ? errno : ENOSPC);
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        return kit_seterr(err, KIT_ERR, "cannot write %s: %s", path, strerror(e));
    }
    return KIT_OK;
}

int kit_mkdtemp(char *out, size_t outlen, const char *prefix, char *err)
{
    const char *base = tmp_base();
    if ((size_t)snprintf(out, outlen, "%s/%s-XXXXXX", base, prefix) >= outlen)
        return kit_seterr(err, KIT_EINVAL, "temporary path too long");
    if (!mkdtemp(out))
        return kit_seterr(err, KIT_ERR, "cannot make a temporary folder in %s: %s", base, strerror(errno));
    chmod(out, 0700);
    if (cleanup_track_dir(out) != 0) {
        rmdir(out);
        return kit_seterr(err, KIT_ERR, "too many temporary folders at once: %s is not made", out);
    }
    int rc = owner_write(out, err);
    if (rc != KIT_OK) kit_rmdtemp(out);
    return rc;
}

void kit_rmdtemp(const char *path)
{
    if (!path || !*path) return;
    kit_rm_rf(path);
    cleanup_untrack_dir(path);
}

/* ---- the sweep ---- */

/* One mqlab-* folder whose owner is dead. */
typedef struct {
    char name[NAME_MAX + 1];
    char given[PATH_MAX];       /* tmpdir/name as mqlab wrote it (command lines) */
    char real[PATH_MAX];        /* resolved, as /proc's links show it */
    dev_t dev;
    ino_t ino;
    int held_by_us;             /* our cwd, or an ancestor's, is inside: keep it */
} orphan_t;

/* 1 when the owner described by o can no longer clean up after itself. */
static int owner_dead(const owner_t *o, const owner_t *self)
{
    /* Ticks after boot repeat from one boot to the next. */
    if (o->boot[0] && strcmp(o->boot, "-") != 0 && self->boot[0] && strcmp(o->boot, self->boot) != 0)
        return 1;
    /* Made inside another pid namespace (or outside ours): the pid means
     * nothing here, so nobody here can judge it. */
    if (o->pidns != self->pidns) return 0;
    proc_info_t pi;
    if (proc_info((pid_t)o->pid, &pi) != 0) return 1;
    if (pi.state == 'Z' || pi.state == 'X') return 1;   /* killed, not yet reaped */
    return pi.start != o->start;                        /* the pid was reused */
}

/* A folder of an mqlab from before the owner file: the shape mkdtemp
 * gives (mqlab-NAME-XXXXXX, 0700) and untouched for a day. */
static int legacy_orphan(const char *name, const struct stat *st)
{
    size_t len = strlen(name);
    if (len < strlen("mqlab-") + 7 || name[len - 7] != '-') return 0;
    for (size_t i = len - 6; i < len; i++)
        if (!isalnum((unsigned char)name[i])) return 0;
    if ((st->st_mode & 07777) != 0700) return 0;
    return time(NULL) - st->st_mtime > 24 * 3600;
}

/* The entry name of dfd: 1 when it is a folder of ours whose owner is
 * dead, 0 when it is one to keep, -1 when it is no folder of ours. Ours:
 * the folder is this user's, or its owner file is (a sandbox may hand the
 * folder itself to another uid). */
static int is_orphan(int dfd, const char *name, const owner_t *self, struct stat *st)
{
    if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st->st_mode)) return -1;
    int mine = st->st_uid == geteuid();
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return mine ? 0 : -1;
    char text[512];
    ssize_t n = -1;
    struct stat ost;
    int ofd = openat(fd, KIT_OWNER_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (ofd >= 0) {
        if (fstat(ofd, &ost) == 0 && S_ISREG(ost.st_mode) && ost.st_uid == geteuid()) {
            mine = 1;
            n = read(ofd, text, sizeof text - 1);
        }
        close(ofd);
    }
    close(fd);
    if (!mine) return -1;                       /* another user's: not ours to judge */
    owner_t o;
    if (n > 0) {
        text[n] = '\0';
        if (owner_parse(text, &o) == 0) return owner_dead(&o, self);
    }
    return legacy_orphan(name, st);
}

/* 1 when path is folder itself or lies inside it. */
static int path_inside(const char *path, const char *folder)
{
    size_t n = strlen(folder);
    return strncmp(path, folder, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* 1 when a command-line argument names the folder or something inside,
 * anywhere in it (-c /tmp/x/mosquitto.conf, --config=/tmp/x/...). */
static int arg_names(const char *arg, const char *folder)
{
    size_t n = strlen(folder);
    for (const char *p = strstr(arg, folder); p; p = strstr(p + 1, folder))
        if (p[n] == '\0' || p[n] == '/') return 1;
    return 0;
}

static void mark_link(const char *link, orphan_t *v, size_t n, unsigned char *hit)
{
    char target[PATH_MAX];
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len <= 0) return;
    target[len] = '\0';
    for (size_t i = 0; i < n; i++)
        if (path_inside(target, v[i].real) || path_inside(target, v[i].given)) hit[i] = 1;
}

/* Which orphans the process holds: hit[i] = 1 for each. What cannot be
 * read (another user's process, one that just ended) holds nothing. */
static void proc_holds(pid_t pid, orphan_t *v, size_t n, unsigned char *hit)
{
    static const char *const links[] = { "cwd", "root", "exe" };
    char path[64 + NAME_MAX];
    memset(hit, 0, n);
    for (size_t k = 0; k < sizeof links / sizeof *links; k++) {
        snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, links[k]);
        mark_link(path, v, n, hit);
    }
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *fds = opendir(path);
    if (fds) {
        struct dirent *e;
        while ((e = readdir(fds)) != NULL) {
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "/proc/%d/fd/%s", (int)pid, e->d_name);
            mark_link(path, v, n, hit);
        }
        closedir(fds);
    }
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    size_t len = 0;
    char *cmd = kit_read_file(path, &len, NULL);
    if (!cmd) return;
    /* NUL-separated arguments; kit_read_file adds a final NUL. */
    for (size_t off = 0; off < len; off += strlen(cmd + off) + 1)
        for (size_t i = 0; i < n; i++)
            if (arg_names(cmd + off, v[i].real) || arg_names(cmd + off, v[i].given)) hit[i] = 1;
    free(cmd);
}

/* This process (self, as /proc numbers it) and its ancestors: never
 * signalled by the sweep. */
static size_t ancestors(pid_t self, pid_t *out, size_t cap)
{
    size_t n = 0;
    pid_t p = self;
    while (p > 1 && n < cap) {
        out[n++] = p;
        proc_info_t pi;
        if (proc_info(p, &pi) != 0) break;
        p = pi.ppid;
    }
    return n;
}

/* Wait (up to 2 s) until a SIGKILLed process is gone: reaped when it is
 * our child, otherwise ended (a zombie holds no files). */
static int await_end(pid_t pid, int ours)
{
    int64_t end = kit_now_ms() + 2000;
    for (;;) {
        proc_info_t pi;
        if (ours) {
            pid_t r = waitpid(pid, NULL, WNOHANG);
            if (r == pid || (r < 0 && errno == ECHILD)) return KIT_OK;
        } else if (proc_info(pid, &pi) != 0 || pi.state == 'Z' || pi.state == 'X') {
            return KIT_OK;
        }
        if (kit_now_ms() >= end) return KIT_ETIMEOUT;
        if (kit_sleep_ms(5) == KIT_EINTR) return KIT_EINTR;
    }
}

/* SIGKILL every process that holds an orphan, and wait for them to end.
 * A few rounds: a holder may have forked between the scan and the kill. */
static int end_holders(orphan_t *v, size_t n, pid_t self, sweep_report_t *rep)
{
    pid_t mine[64];
    size_t nmine = ancestors(self, mine, sizeof mine / sizeof *mine);
    unsigned char *hit = kit_xmalloc(n);
    pid_t *killed = NULL;
    size_t nkilled = 0, cap = 0;
    int rc = KIT_OK;
    for (int round = 0; round < 5; round++) {
        DIR *proc = opendir("/proc");
        if (!proc) break;
        size_t first = nkilled;
        struct dirent *e;
        while ((e = readdir(proc)) != NULL) {
            if (!isdigit((unsigned char)e->d_name[0])) continue;
            pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
            if (pid <= 1) continue;         /* init ignores SIGKILL anyway */
            proc_holds(pid, v, n, hit);
            int ancestor = 0;
            for (size_t k = 0; k < nmine; k++) ancestor |= mine[k] == pid;
            int doomed = 0;
            for (size_t i = 0; i < n; i++) {
                if (!hit[i]) continue;
                if (ancestor) v[i].held_by_us = 1;
                else if (!v[i].held_by_us) doomed = 1;
            }
            if (!doomed || ancestor) continue;
            proc_info_t pi;
            int ours = proc_info(pid, &pi) == 0 && pi.ppid == self;
            if (kill(pid, SIGKILL) != 0) continue;
            rep->processes_ended++;
            if (nkilled == cap) killed = kit_xrealloc(killed, (cap = cap ? cap * 2 : 16) * sizeof *killed);
            /* The sign remembers whether it is ours to reap. */
            killed[nkilled++] = ours ? -pid : pid;
        }
        closedir(proc);
        if (nkilled == first) break;
        for (size_t k = first; k < nkilled && rc != KIT_EINTR; k++) {
            int r = await_end(killed[k] < 0 ? -killed[k] : killed[k], killed[k] < 0);
            if (r == KIT_EINTR) rc = r;
        }
        if (rc == KIT_EINTR) break;
    }
    free(killed);
    free(hit);
    return rc;
}

/* Remove name (inside the folder dfd) and everything below it, never
 * following a symlink nor entering another file system (a mount point
 * inside is not ours to empty). 0, or an errno value. */
static int rm_at(int dfd, const char *name, dev_t dev, int depth)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : errno;
    if (!S_ISDIR(st.st_mode)) return unlinkat(dfd, name, 0) == 0 || errno == ENOENT ? 0 : errno;
    if (st.st_dev != dev) return EXDEV;
    if (depth > 64) return ELOOP;
    /* A program may have taken away its own rights on a subfolder. */
    if ((st.st_mode & S_IRWXU) != S_IRWXU &&
        fchmodat(dfd, name, (st.st_mode | S_IRWXU) & 07777, AT_SYMLINK_NOFOLLOW) != 0) {
        /* Not fatal here: the openat or the unlinkat below says why. */
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : errno;
    DIR *d = fdopendir(fd);
    if (!d) { int e = errno; close(fd); return e; }
    int first = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        int r = rm_at(fd, e->d_name, dev, depth + 1);
        if (r && !first) first = r;
    }
    closedir(d);
    if (!first && unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) first = errno;
    return first;
}

int cleanup_sweep(const char *tmpdir, sweep_report_t *out, char *err)
{
    sweep_report_t rep = { 0 };
    const char *base = tmpdir && *tmpdir ? tmpdir : tmp_base();
    char real_base[PATH_MAX];
    int dfd = -1, lfd = -1, rc = KIT_OK, failed_at = -1;
    DIR *d = NULL;
    struct dirent *e;
    orphan_t *v = NULL;
    size_t n = 0, cap = 0;
    owner_t self;

    if (owner_self(&self) != 0) {
        /* Without /proc every owner would look dead. */
        rc = kit_seterr(err, KIT_ERR, "cannot sweep %s: /proc cannot tell which processes live", base);
        goto cleanup;
    }
    if (!realpath(base, real_base)) {
        if (errno != ENOENT)    /* ENOENT: nothing was ever made there */
            rc = kit_seterr(err, KIT_ERR, "cannot sweep %s: %s", base, strerror(errno));
        goto cleanup;
    }
    if ((dfd = open(real_base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || (lfd = dup(dfd)) < 0 ||
        !(d = fdopendir(lfd))) {
        rc = kit_seterr(err, KIT_ERR, "cannot sweep %s: %s", base, strerror(errno));
        if (lfd >= 0) close(lfd);
        goto cleanup;
    }
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "mqlab-", 6) != 0) continue;
        struct stat st;
        int judged = is_orphan(dfd, e->d_name, &self, &st);
        if (judged == 0) rep.folders_kept++;
        if (judged != 1) continue;
        if (n == cap) v = kit_xrealloc(v, (cap = cap ? cap * 2 : 8) * sizeof *v);
        orphan_t *o = &v[n];
        memset(o, 0, sizeof *o);
        if ((size_t)snprintf(o->name, sizeof o->name, "%s", e->d_name) >= sizeof o->name ||
            (size_t)snprintf(o->given, sizeof o->given, "%s/%s", base, e->d_name) >= sizeof o->given ||
            (size_t)snprintf(o->real, sizeof o->real, "%s/%s", real_base, e->d_name) >= sizeof o->real)
            continue;
        o->dev = st.st_dev;
        o->ino = st.st_ino;
        n++;
    }
    if (n == 0) goto cleanup;

    if ((rc = end_holders(v, n, (pid_t)self.pid, &rep)) == KIT_EINTR) {
        kit_seterr(err, rc, "the sweep of %s was interrupted", base);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (v[i].held_by_us) { rep.folders_kept++; continue; }
        /* Still the folder judged above, not one made since under its name. */
        if (fstatat(dfd, v[i].name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_dev != v[i].dev ||
            st.st_ino != v[i].ino)
            continue;
        int r = rm_at(dfd, v[i].name, v[i].dev, 0);
        if (r == 0) { rep.folders_removed++; continue; }
        if (rep.folders_failed++ == 0) {
            failed_at = (int)i;
            rc = kit_seterr(err, KIT_ERR, "cannot remove %s, left by a killed mqlab: %s", v[i].given, strerror(r));
        }
    }
    if (rep.folders_failed > 1)
        kit_seterr(err, KIT_ERR, "cannot remove %d folders left by a killed mqlab in %s (the first: %s)",
                   rep.folders_failed, base, v[failed_at].name);

cleanup:
    if (d) closedir(d);
    if (dfd >= 0) close(dfd);
    free(v);
    if (out) *out = rep;
    return rc;
}

int kit_wait_port(int port, int timeout_ms)
{
    int64_t end = kit_now_ms() + timeout_ms;
    do {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return KIT_ERR;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) return KIT_OK;
        if (kit_sleep_ms(10) == KIT_EINTR) return KIT_EINTR;
    } while (kit_now_ms() < end);
    return KIT_ETIMEOUT;
}
