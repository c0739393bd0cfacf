/*
 * cleanup_test.c - the cleanup tables say when they are full, and the
 * sweep removes what a killed mqlab left (its folders, the processes that
 * still hold them) and nothing else.
 *
 * Every test points TMPDIR at a folder of its own under one private base
 * folder, so a sweep never sees the machine's real temporary folder; the
 * owners are real processes (children that make a folder and end).
 */
#include <CUnit/Basic.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"
#include "testutil.h"

static char base[PATH_MAX / 2];     /* private, removed by the suite */
static char *old_tmpdir;
static int ntmp;

/* Never a pid (pid_max is at most 2^22): safe to track, kill() fails. */
#define FAKE_PGID 0x40000000

static int suite_init(void)
{
    const char *t = getenv("TMPDIR");
    old_tmpdir = t ? kit_strdup(t) : NULL;
    snprintf(base, sizeof base, "%s/cleanup-test-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(base) ? 0 : -1;
}

static int suite_clean(void)
{
    if (old_tmpdir) setenv("TMPDIR", old_tmpdir, 1);
    else unsetenv("TMPDIR");
    free(old_tmpdir);
    old_tmpdir = NULL;
    kit_rm_rf(base);
    return 0;
}

/* A fresh folder under base, and TMPDIR pointing at it. */
static void fresh_tmpdir(char *out, size_t len)
{
    snprintf(out, len, "%s/t%d", base, ++ntmp);
    CU_ASSERT_FATAL(mkdir(out, 0700) == 0);
    setenv("TMPDIR", out, 1);
}

static void touch(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + NAME_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static int exists(const char *dir, const char *name)
{
    char path[PATH_MAX + NAME_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &st) == 0;
}

enum { OWNER_REAPED, OWNER_ZOMBIE, OWNER_LIVE };

/* A folder made by kit_mkdtemp in a child process, which then ends and is
 * reaped, ends and stays a zombie, or lives on (until the test kills it).
 * tmpdir NULL: the current TMPDIR. Returns the child's pid. */
static pid_t folder_of_child(const char *tmpdir, const char *prefix, int fate, char *out, size_t len)
{
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        /* _exit, never exit: the parent's tables came along with fork(). */
        char path[PATH_MAX];
        close(p[0]);
        if (tmpdir) setenv("TMPDIR", tmpdir, 1);
        if (kit_mkdtemp(path, sizeof path, prefix, NULL) != KIT_OK) _exit(1);
        ssize_t w = write(p[1], path, strlen(path) + 1);
        close(p[1]);
        if (w <= 0) _exit(1);
        if (fate == OWNER_LIVE) {
            alarm(120);     /* a failed test must not leave it behind */
            for (;;) pause();
        }
        _exit(0);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t r;
    while (got < len - 1 && (r = read(p[0], out + got, len - 1 - got)) > 0) {
        got += (size_t)r;
        if (out[got - 1] == '\0') break;
    }
    out[got] = '\0';
    close(p[0]);
    CU_ASSERT_FATAL(got > 0 && out[0] == '/');
    if (fate == OWNER_REAPED) waitpid(pid, NULL, 0);
    if (fate == OWNER_ZOMBIE) {
        int64_t end = kit_now_ms() + 10000;
        while (tu_proc_state(pid) != 'Z' && kit_now_ms() < end) kit_sleep_ms(2);
        CU_ASSERT_FATAL(tu_proc_state(pid) == 'Z');
    }
    return pid;
}

/* A child that sits with its cwd in dir (how_open NULL), or with
 * dir/how_open open and its cwd at /. Returns once it is in place. */
static pid_t holder(const char *dir, const char *how_open)
{
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char path[PATH_MAX + NAME_MAX];
        if (how_open) {
            snprintf(path, sizeof path, "%s/%s", dir, how_open);
            if (open(path, O_RDONLY) < 0 || chdir("/") != 0) _exit(1);
        } else if (chdir(dir) != 0) {
            _exit(1);
        }
        if (write(p[1], "x", 1) != 1) _exit(1);
        close(p[1]);
        alarm(120);
        for (;;) pause();
    }
    close(p[1]);
    char c;
    CU_ASSERT_FATAL(read(p[0], &c, 1) == 1);
    close(p[0]);
    return pid;
}

/* A shell whose command line names arg and nothing else ties it to the
 * folder: `sh -c 'read x' sh ARG`, blocked on a pipe (*wfd, to close). */
static pid_t cmdline_holder(const char *arg, int *wfd)
{
    int in[2], ready[2];
    CU_ASSERT_FATAL(pipe(in) == 0 && pipe2(ready, O_CLOEXEC) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        close(in[0]);
        close(in[1]);
        close(ready[0]);
        if (chdir("/") != 0) _exit(1);
        execl("/bin/sh", "sh", "-c", "read x", "sh", arg, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(ready[1]);
    /* EOF once exec has closed the close-on-exec end: the new command
     * line is in place. */
    char c;
    CU_ASSERT(read(ready[0], &c, 1) == 0);
    close(ready[0]);
    *wfd = in[1];
    return pid;
}

/* 1 when pid was reaped already (by the sweep). */
static int reaped(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static void end_child(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Run f with stderr sent to a file; what it printed goes to out. */
static int with_stderr(int (*f)(void), char *out, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/stderr.txt", base);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = f();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = kit_read_file(path, NULL, NULL);
    snprintf(out, len, "%s", text ? text : "");
    free(text);
    unlink(path);
    return rc;
}

/* ---- the tables ---- */

static int nfake;

/* Track fake groups until the table refuses one; -1 then. */
static int fill_pgids(void)
{
    for (nfake = 0; nfake < 1 << 20; nfake++)
        if (cleanup_track_pgid(FAKE_PGID + nfake) != 0) return -1;
    return 0;
}

static void TEST_track_pgid_full(void)
{
    char msg[1024];
    CU_ASSERT_EQUAL(with_stderr(fill_pgids, msg, sizeof msg), -1);
    CU_ASSERT(nfake >= 256);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cannot track process group"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "slots are taken"));
    for (int i = 0; i < nfake; i++) cleanup_untrack_pgid(FAKE_PGID + i);
    /* A freed slot takes a group again. */
    CU_ASSERT_EQUAL(cleanup_track_pgid(FAKE_PGID), 0);
    cleanup_untrack_pgid(FAKE_PGID);
}

static int track_bad_pgids(void)
{
    return cleanup_track_pgid(0) == -1 && cleanup_track_pgid(-5) == -1 ? -1 : 0;
}

static void TEST_track_pgid_refuses_non_groups(void)
{
    char msg[1024];
    /* kill(-0) would hit our own group: neither is ever kept. */
    CU_ASSERT_EQUAL(with_stderr(track_bad_pgids, msg, sizeof msg), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "not a process group"));
}

static int nfakedirs;

static int fill_dirs(void)
{
    char path[64];
    for (nfakedirs = 0; nfakedirs < 1 << 16; nfakedirs++) {
        snprintf(path, sizeof path, "/nonexistent-mqlab-test/%d", nfakedirs);
        if (cleanup_track_dir(path) != 0) return -1;
    }
    return 0;
}

static void TEST_track_dir_full(void)
{
    char msg[1024], path[64];
    CU_ASSERT_EQUAL(with_stderr(fill_dirs, msg, sizeof msg), -1);
    CU_ASSERT(nfakedirs >= 64);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cannot track folder /nonexistent-mqlab-test/"));
    /* And kit_mkdtemp says so instead of making a folder nobody removes. */
    char tmp[PATH_MAX], made[PATH_MAX], err[KIT_ERRLEN] = "";
    fresh_tmpdir(tmp, sizeof tmp);
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    int rc = kit_mkdtemp(made, sizeof made, "mqlab-full", err);
    dup2(saved, 2);
    close(saved);
    close(null);
    CU_ASSERT_EQUAL(rc, KIT_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "too many temporary folders"));
    CU_ASSERT_FALSE(exists(made, ""));
    for (int i = 0; i < nfakedirs; i++) {
        snprintf(path, sizeof path, "/nonexistent-mqlab-test/%d", i);
        cleanup_untrack_dir(path);
    }
    CU_ASSERT_EQUAL(cleanup_track_dir("/nonexistent-mqlab-test/again"), 0);
    cleanup_untrack_dir("/nonexistent-mqlab-test/again");
}

static int track_long_dir(void)
{
    /* Kept cut short, it could name a parent folder. */
    static char path[PATH_MAX + 16];
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    return cleanup_track_dir(path) == -1 && cleanup_track_dir("") == -1 ? -1 : 0;
}

static void TEST_track_dir_refuses_long_path(void)
{
    char msg[1024];
    CU_ASSERT_EQUAL(with_stderr(track_long_dir, msg, sizeof msg), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "path too long"));
}

/* ---- the owner file ---- */

static unsigned long long my_start(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')') + 2;
    for (int field = 3; field < 22; field++) p = strchr(p, ' ') + 1;
    return strtoull(p, NULL, 10);
}

static void TEST_mkdtemp_records_owner(void)
{
    char tmp[PATH_MAX], dir[PATH_MAX], err[KIT_ERRLEN], path[PATH_MAX + 32], want[64];
    fresh_tmpdir(tmp, sizeof tmp);
    CU_ASSERT_FATAL(kit_mkdtemp(dir, sizeof dir, "mqlab-owner", err) == KIT_OK);
    snprintf(path, sizeof path, "%s/%s", dir, KIT_OWNER_FILE);
    struct stat st;
    CU_ASSERT_FATAL(stat(path, &st) == 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    char *text = kit_read_file(path, NULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    snprintf(want, sizeof want, "pid %d\n", (int)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    snprintf(want, sizeof want, "start %llu\n", my_start());
    CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "boot "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "pidns "));
    free(text);
    /* Only the owner file: its temporary name was renamed away. */
    CU_ASSERT_FALSE(exists(dir, KIT_OWNER_FILE ".tmp"));
    kit_rmdtemp(dir);
    CU_ASSERT_FALSE(exists(dir, ""));
}

/* ---- the sweep ---- */

static void TEST_sweep_dead_owner_and_holders(void)
{
    char tmp[PATH_MAX], dir[PATH_MAX], arg[PATH_MAX + 32], err[KIT_ERRLEN] = "";
    fresh_tmpdir(tmp, sizeof tmp);
    folder_of_child(NULL, "mqlab-broker", OWNER_REAPED, dir, sizeof dir);
    touch(dir, "mosquitto.conf", "listener 1883\n");
    CU_ASSERT_FATAL(mkdir(strcat(strcpy(arg, dir), "/sub"), 0700) == 0);
    touch(arg, "deep.txt", "x");
    /* What still holds the folder: a cwd, an open file, a command line. */
    pid_t in_cwd = holder(dir, NULL);
    pid_t with_fd = holder(dir, "mosquitto.conf");
    int wfd = -1;
    snprintf(arg, sizeof arg, "%s/mosquitto.conf", dir);
    pid_t by_arg = cmdline_holder(arg, &wfd);

    sweep_report_t rep;
    CU_ASSERT_EQUAL(cleanup_sweep(NULL, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed, 1);
    CU_ASSERT_EQUAL(rep.processes_ended, 3);
    CU_ASSERT_EQUAL(rep.folders_failed, 0);
    CU_ASSERT_FALSE(exists(dir, ""));
    /* Our own children: the sweep reaped them. */
    CU_ASSERT(reaped(in_cwd));
    CU_ASSERT(reaped(with_fd));
    CU_ASSERT(reaped(by_arg));
    close(wfd);
    /* Nothing else was there to sweep. */
    CU_ASSERT_EQUAL(cleanup_sweep(tmp, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed + rep.processes_ended + rep.folders_kept, 0);
}

static void TEST_sweep_zombie_owner(void)
{
    char tmp[PATH_MAX], dir[PATH_MAX], err[KIT_ERRLEN] = "";
    fresh_tmpdir(tmp, sizeof tmp);
    /* Killed, and its parent has not reaped it yet: it cleans up nothing. */
    pid_t owner = folder_of_child(NULL, "mqlab-run", OWNER_ZOMBIE, dir, sizeof dir);
    sweep_report_t rep;
    CU_ASSERT_EQUAL(cleanup_sweep(NULL, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed, 1);
    CU_ASSERT_FALSE(exists(dir, ""));
    waitpid(owner, NULL, 0);
}

static void TEST_sweep_keeps_live_owner(void)
{
    char tmp[PATH_MAX], mine[PATH_MAX], theirs[PATH_MAX], err[KIT_ERRLEN] = "";
    fresh_tmpdir(tmp, sizeof tmp);
    CU_ASSERT_FATAL(kit_mkdtemp(mine, sizeof mine, "mqlab-prog", err) == KIT_OK);
    pid_t owner = folder_of_child(NULL, "mqlab-broker", OWNER_LIVE, theirs, sizeof theirs);
    pid_t in_mine = holder(mine, NULL), in_theirs = holder(theirs, NULL);

    sweep_report_t rep;
    CU_ASSERT_EQUAL(cleanup_sweep(NULL, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed, 0);
    CU_ASSERT_EQUAL(rep.processes_ended, 0);
    CU_ASSERT_EQUAL(rep.folders_kept, 2);
    CU_ASSERT(exists(mine, "") && exists(theirs, ""));
    CU_ASSERT_EQUAL(waitpid(in_mine, NULL, WNOHANG), 0);
    CU_ASSERT_EQUAL(waitpid(in_theirs, NULL, WNOHANG), 0);

    /* Once its owner is killed, the same folder goes, with its holder. */
    end_child(owner);
    CU_ASSERT_EQUAL(cleanup_sweep(NULL, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed, 1);
    CU_ASSERT_EQUAL(rep.processes_ended, 1);
    CU_ASSERT_FALSE(exists(theirs, ""));
    CU_ASSERT(exists(mine, ""));
    CU_ASSERT(reaped(in_theirs));
    end_child(in_mine);
    kit_rmdtemp(mine);
}

static void TEST_sweep_detects_reused_pid(void)
{
    char tmp[PATH_MAX], dir[PATH_MAX], path[PATH_MAX + 32], err[KIT_ERRLEN] = "";
    fresh_tmpdir(tmp, sizeof tmp);
    CU_ASSERT_FATAL(kit_mkdtemp(dir, sizeof dir, "mqlab-broker", err) == KIT_OK);
    /* Our pid, but an earlier start: the process that made the folder
     * ended and its pid went to us. */
    char text[256];
    snprintf(path, sizeof path, "%s/%s", dir, KIT_OWNER_FILE);
    char *old = kit_read_file(path, NULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    char *tail = strstr(old, "boot ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(tail);
    snprintf(text, sizeof text, "pid %d\nstart %llu\n%s", (int)getpid(), my_start() - 1, tail);
    free(old);
    CU_ASSERT_FATAL(kit_write_file_atomic(path, text, strlen(text), 0600, err) == KIT_OK);

    sweep_report_t rep;
    CU_ASSERT_EQUAL(cleanup_sweep(NULL, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed, 1);
    CU_ASSERT_FALSE(exists(dir, ""));
    kit_rmdtemp(dir);
}

static void TEST_sweep_only_the_pattern(void)
{
    char tmp[PATH_MAX], outside[PATH_MAX], other[PATH_MAX], victim[PATH_MAX], link[PATH_MAX + 32];
    char err[KIT_ERRLEN] = "";
    fresh_tmpdir(outside, sizeof outside);
    fresh_tmpdir(tmp, sizeof tmp);
    /* Dead owners, but not named mqlab-*. */
    folder_of_child(NULL, "other", OWNER_REAPED, other, sizeof other);
    touch(tmp, "mqlab-file", "not a folder");
    /* A symlink named like ours, to a dead folder outside: neither goes. */
    folder_of_child(outside, "mqlab-victim", OWNER_REAPED, victim, sizeof victim);
    snprintf(link, sizeof link, "%s/mqlab-link", tmp);
    CU_ASSERT_FATAL(symlink(victim, link) == 0);
    /* Without an owner file (an older mqlab): only an old folder in
     * mkdtemp's shape, mode 0700. */
    static const struct { const char *name; int mode, old, gone; } legacy[] = {
        { "mqlab-old-a1B2c3", 0700, 1, 1 },
        { "mqlab-new-a1B2c3", 0700, 0, 0 },
        { "mqlab-open-a1B2c3", 0755, 1, 0 },
        { "mqlab-checkout", 0700, 1, 0 },
    };
    for (size_t i = 0; i < sizeof legacy / sizeof *legacy; i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", tmp, legacy[i].name);
        CU_ASSERT_FATAL(mkdir(path, 0700) == 0 && chmod(path, (mode_t)legacy[i].mode) == 0);
        touch(path, "kept.txt", "x");
        if (legacy[i].old) {
            struct timespec two_days[2] = { { time(NULL) - 2 * 86400, 0 }, { time(NULL) - 2 * 86400, 0 } };
            CU_ASSERT_FATAL(utimensat(AT_FDCWD, path, two_days, 0) == 0);
        }
    }

    sweep_report_t rep;
    CU_ASSERT_EQUAL(cleanup_sweep(NULL, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed, 1);
    CU_ASSERT_EQUAL(rep.folders_kept, 3);
    CU_ASSERT(exists(other, ""));
    CU_ASSERT(exists(tmp, "mqlab-file"));
    CU_ASSERT(exists(tmp, "mqlab-link"));
    CU_ASSERT(exists(victim, KIT_OWNER_FILE));
    for (size_t i = 0; i < sizeof legacy / sizeof *legacy; i++)
        CU_ASSERT_EQUAL(exists(tmp, legacy[i].name), !legacy[i].gone);
}

static void TEST_sweep_stays_inside_tmpdir(void)
{
    char tmp[PATH_MAX], outside[PATH_MAX], dir[PATH_MAX], theirs[PATH_MAX], path[PATH_MAX + 32];
    char err[KIT_ERRLEN] = "";
    fresh_tmpdir(outside, sizeof outside);
    touch(outside, "precious.txt", "keep me");
    snprintf(path, sizeof path, "%s/keep", outside);
    CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
    touch(path, "also.txt", "keep me too");
    /* A dead mqlab's folder next to TMPDIR, not in it. */
    folder_of_child(outside, "mqlab-broker", OWNER_REAPED, theirs, sizeof theirs);

    fresh_tmpdir(tmp, sizeof tmp);
    folder_of_child(NULL, "mqlab-prog", OWNER_REAPED, dir, sizeof dir);
    /* Symlinks inside the dead folder lead out: they go, not their targets. */
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char target[PATH_MAX + 32];
    snprintf(target, sizeof target, "%s/precious.txt", outside);
    CU_ASSERT_FATAL(symlink(target, path) == 0);
    snprintf(path, sizeof path, "%s/outdir", dir);
    snprintf(target, sizeof target, "%s/keep", outside);
    CU_ASSERT_FATAL(symlink(target, path) == 0);
    snprintf(path, sizeof path, "%s/up", dir);
    CU_ASSERT_FATAL(symlink("..", path) == 0);

    sweep_report_t rep;
    CU_ASSERT_EQUAL(cleanup_sweep(NULL, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed, 1);
    CU_ASSERT_FALSE(exists(dir, ""));
    CU_ASSERT(exists(outside, "precious.txt"));
    CU_ASSERT(exists(outside, "keep/also.txt"));
    CU_ASSERT(exists(theirs, KIT_OWNER_FILE));
    CU_ASSERT(exists(tmp, ""));

    /* A tmpdir that does not exist has nothing to sweep. */
    snprintf(path, sizeof path, "%s/none", base);
    CU_ASSERT_EQUAL(cleanup_sweep(path, &rep, err), KIT_OK);
    CU_ASSERT_EQUAL(rep.folders_removed + rep.folders_kept, 0);
}

int init_cleanup_tests(void)
{
    CU_pSuite s = CU_add_suite("cleanup", suite_init, suite_clean);
    if (!s) return 1;
    if (!CU_add_test(s, "pgid table full says so", TEST_track_pgid_full)
        || !CU_add_test(s, "pgid 0 and below are refused", TEST_track_pgid_refuses_non_groups)
        || !CU_add_test(s, "dir table full says so", TEST_track_dir_full)
        || !CU_add_test(s, "a path too long is refused", TEST_track_dir_refuses_long_path)
        || !CU_add_test(s, "kit_mkdtemp records its owner", TEST_mkdtemp_records_owner)
        || !CU_add_test(s, "sweep: dead owner, its holders ended", TEST_sweep_dead_owner_and_holders)
        || !CU_add_test(s, "sweep: a zombie owner is dead", TEST_sweep_zombie_owner)
        || !CU_add_test(s, "sweep: a live owner's folder is kept", TEST_sweep_keeps_live_owner)
        || !CU_add_test(s, "sweep: a reused pid, told by start time", TEST_sweep_detects_reused_pid)
        || !CU_add_test(s, "sweep: only mqlab-* folders", TEST_sweep_only_the_pattern)
        || !CU_add_test(s, "sweep: nothing outside TMPDIR", TEST_sweep_stays_inside_tmpdir))
        return 1;
    return 0;
}
