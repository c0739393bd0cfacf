/*
 * programs_test.c - the programs module against real child processes:
 * the small submissions in tests/unit/fixtures/programs/ are found, built,
 * run, limited, timed out and killed, and nothing may outlive a test.
 *
 * Every test runs twice: with the sandbox off, and (where bubblewrap can
 * run) on, where the outcomes must be the same. What only the sandbox
 * does is in sandbox_test.c.
 */
#include <CUnit/Basic.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "programs.h"
#include "cleanup.h"
#include "util.h"
#include "testutil.h"

static int saved_sandbox;

/* A folder the program runs in or writes must be the sandbox uid's. */
static void give_to_sandbox(const char *dir)
{
    char err[KIT_ERRLEN];
    if (prog_sandbox()) CU_ASSERT(sbx_chown_tree(dir, err) == KIT_OK);
}

/* The pid namespace of pid (its inode), or 0 when it is gone. */
static ino_t pidns_of(pid_t pid)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)pid);
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* How many processes (zombies aside) live in the pid namespace ns. */
static int procs_in_pidns(ino_t ns)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (pid > 0 && !*end && pid != getpid() && pidns_of((pid_t)pid) == ns) n++;
    }
    if (d) closedir(d);
    return n;
}

/* The host pid of the process a sandboxed program calls nspid (the
 * last field of NSpid in /proc/PID/status), found among those in the
 * namespace of ref. 0 when there is none. */
static pid_t host_pid(pid_t ref, pid_t nspid)
{
    ino_t ns = pidns_of(ref);
    DIR *d = opendir("/proc");
    pid_t found = 0;
    struct dirent *e;
    while (ns && d && !found && (e = readdir(d))) {
        char *end, path[64], buf[2048];
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end || pidns_of((pid_t)pid) != ns) continue;
        snprintf(path, sizeof path, "/proc/%ld/status", pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(buf, sizeof buf, f)) {
            if (strncmp(buf, "NSpid:", 6) != 0) continue;
            char *last = strrchr(buf, '\t');
            if (last && strtol(last + 1, NULL, 10) == nspid) found = (pid_t)pid;
        }
        fclose(f);
    }
    if (d) closedir(d);
    return found;
}

static int pid_gone_within(pid_t pid, int ms)
{
    for (int waited = 0; waited <= ms; waited += 20) {
        if (!tu_pid_alive(pid)) return 1;
        kit_sleep_ms(20);
    }
    return 0;
}

static pid_t read_pid(const char *path, int ms)
{
    int64_t end = kit_now_ms() + ms;
    do {
        char *s = kit_read_file(path, NULL, NULL);
        long v = s ? strtol(s, NULL, 10) : 0;
        free(s);
        if (v > 0) return (pid_t)v;
        kit_sleep_ms(20);
    } while (kit_now_ms() < end);
    return 0;
}

static prog_opts_t fixture_opts(const char *name, const char *workdir)
{
    prog_opts_t o;
    memset(&o, 0, sizeof o);
    o.dir = tu_programs_dir();
    o.name = name;
    o.workdir = workdir;
    return o;
}

static void TEST_find_order(void)
{
    char dir[PATH_MAX], wd[PATH_MAX], path[PATH_MAX + 16], err[KIT_ERRLEN];
    enum prog_kind kind;
    CU_ASSERT_FATAL(kit_mkdtemp(dir, sizeof dir, "mqlab-progfind", err) == KIT_OK);
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    give_to_sandbox(dir);

    /* A non-executable E is not a program, and the message says why. */
    CU_ASSERT(tu_write_file(dir, "x", "#!/bin/sh\necho exe ran\n", 0644) == 0);
    CU_ASSERT(prog_find(dir, "x", path, sizeof path, &kind, err) == KIT_ENOENT);
    CU_ASSERT(strstr(err, "not executable") != NULL);

    CU_ASSERT(tu_write_file(dir, "x", "#!/bin/sh\necho exe ran\n", 0755) == 0);
    CU_ASSERT(tu_write_file(dir, "x.sh", "echo sh\n", 0644) == 0);
    CU_ASSERT(tu_write_file(dir, "x.c", "int main(void){return 0;}\n", 0644) == 0);
    CU_ASSERT(tu_write_file(dir, "x.lua", "print('lua')\n", 0644) == 0);
    CU_ASSERT(tu_write_file(dir, "x.py", "print('py')\n", 0644) == 0);

    static const struct { const char *file; enum prog_kind kind; } order[] = {
        { "x.py", PROG_PY }, { "x.lua", PROG_LUA }, { "x.c", PROG_C },
        { "x.sh", PROG_SH }, { "x", PROG_EXE },
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        char want[PATH_MAX * 2];
        snprintf(want, sizeof want, "%s/%s", dir, order[i].file);
        kind = PROG_NONE;
        CU_ASSERT(prog_find(dir, "x", path, sizeof path, &kind, err) == KIT_OK);
        CU_ASSERT_EQUAL(kind, order[i].kind);
        CU_ASSERT_STRING_EQUAL(path, want);
        if (order[i].kind != PROG_EXE) unlink(want);
    }

    /* The executable kind runs as it is. */
    prog_opts_t o = fixture_opts("x", wd);
    o.dir = dir;
    prog_t *p = NULL;
    int rc = prog_start(&p, &o, err);
    if (rc != KIT_OK) fprintf(stderr, "\n  prog_start: %s\n", err);
    CU_ASSERT_FATAL(rc == KIT_OK);
    CU_ASSERT_EQUAL(prog_get_kind(p), PROG_EXE);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_exit_code(p), 0);
    CU_ASSERT_STRING_EQUAL(prog_stdout(p, NULL), "exe ran\n");
    prog_free(p);

    /* An exec failure is exit code 127 with the reason on its stderr. */
    CU_ASSERT(tu_write_file(dir, "y", "#!/nonexistent/interpreter\n", 0755) == 0);
    o.name = "y";
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_exit_code(p), 127);
    CU_ASSERT(strstr(prog_stderr(p, NULL), "mqlab: cannot run") != NULL);
    prog_free(p);
    o.name = "x";

    snprintf(path, sizeof path, "%s/x", dir);
    unlink(path);
    CU_ASSERT(prog_find(dir, "x", path, sizeof path, &kind, err) == KIT_ENOENT);
    CU_ASSERT_EQUAL(kind, PROG_NONE);
    CU_ASSERT(strstr(err, "x.py") && strstr(err, "x.lua") && strstr(err, "x.c") && strstr(err, "x.sh"));

    p = (prog_t *)1;
    CU_ASSERT(prog_start(&p, &o, err) == KIT_ENOENT);
    CU_ASSERT(p == NULL);
    CU_ASSERT(prog_find(dir, "../x", path, sizeof path, &kind, err) == KIT_EINVAL);

    kit_rmdtemp(dir);
    kit_rmdtemp(wd);
}

static void TEST_python(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX], py[PATH_MAX], fake[PATH_MAX + 16];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    unsetenv("MQLAB_PYTHON");
    const char *found = prog_python(err);
    CU_ASSERT_FATAL(found != NULL);
    snprintf(py, sizeof py, "%s", found);
    CU_ASSERT(access(py, X_OK) == 0);

    prog_t *p = NULL;
    prog_opts_t o = fixture_opts("usespaho", wd);
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT_EQUAL(prog_get_kind(p), PROG_PY);
    CU_ASSERT(prog_wait(p, 30000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_exit_code(p), 0);
    CU_ASSERT_STRING_EQUAL(prog_stdout(p, NULL), "paho ok\n");
    prog_free(p);

    /* A real interpreter without site-packages cannot import paho. */
    snprintf(fake, sizeof fake, "%s/python-nopaho", wd);
    char *script = kit_strdup_printf("#!/bin/sh\nexec '%s' -S \"$@\"\n", py);
    CU_ASSERT(tu_write_file(wd, "python-nopaho", script, 0755) == 0);
    free(script);
    setenv("MQLAB_PYTHON", fake, 1);
    err[0] = '\0';
    CU_ASSERT(prog_python(err) == NULL);
    CU_ASSERT(strstr(err, "MQLAB_PYTHON") != NULL);
    CU_ASSERT(strstr(err, "paho") != NULL);
    p = (prog_t *)1;
    CU_ASSERT(prog_start(&p, &o, err) == KIT_EMISSING);
    CU_ASSERT(p == NULL);

    /* An interpreter that can is taken as given. */
    setenv("MQLAB_PYTHON", py, 1);
    found = prog_python(err);
    CU_ASSERT(found && strcmp(found, py) == 0);

    unsetenv("MQLAB_PYTHON");
    found = prog_python(err);
    CU_ASSERT(found && strcmp(found, py) == 0);
    kit_rmdtemp(wd);
}

static void TEST_sh_capture(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    prog_opts_t o = fixture_opts("basic", wd);
    prog_t *p = NULL;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT_EQUAL(prog_get_kind(p), PROG_SH);
    CU_ASSERT(prog_pid(p) > 0);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_poll(p), 0);
    CU_ASSERT_EQUAL(prog_pid(p), 0);
    CU_ASSERT_EQUAL(prog_exit_code(p), 3);
    CU_ASSERT_EQUAL(prog_term_signal(p), 0);
    CU_ASSERT_EQUAL(prog_timed_out(p), 0);
    size_t len = 0;
    CU_ASSERT_STRING_EQUAL(prog_stdout(p, &len), "to stdout\n");
    CU_ASSERT_EQUAL(len, strlen("to stdout\n"));
    CU_ASSERT_STRING_EQUAL(prog_stderr(p, NULL), "to stderr\n");
    CU_ASSERT(prog_runtime_s(p) >= 0.0);
    prog_free(p);
    kit_rmdtemp(wd);
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *s = text; (s = strstr(s, line)); s += n)
        if ((s == text || s[-1] == '\n') && (s[n] == '\n' || s[n] == '\0')) return 1;
    return 0;
}

static void TEST_c_env_cwd(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    setenv("MQLAB_SECRET_TEST", "leak", 1);
    const char *env[] = { "MQTT_HOST=127.0.0.1", "MQTT_PORT=18830", "LAB_COUNT=3",
                          "HOME=/lab-home", NULL };
    prog_opts_t o = fixture_opts("envdump", wd);
    o.env = env;
    prog_t *p = NULL;
    int rc = prog_start(&p, &o, err);
    unsetenv("MQLAB_SECRET_TEST");
    CU_ASSERT_EQUAL_FATAL(rc, KIT_OK);
    CU_ASSERT_EQUAL(prog_get_kind(p), PROG_C);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_exit_code(p), 0);
    const char *out = prog_stdout(p, NULL);

    CU_ASSERT(has_line(out, "mosquitto:2"));
    char cwd[PATH_MAX + 8];
    snprintf(cwd, sizeof cwd, "cwd:%s", tu_programs_dir());
    CU_ASSERT(has_line(out, cwd));

    /* Exactly: the base variables (those the kit has), then the lab's,
     * which win over the base (HOME). */
    const char *keys[16];
    int nkeys = 0;
    keys[nkeys++] = "PATH";
    keys[nkeys++] = "PYTHONUNBUFFERED";
    keys[nkeys++] = "PYTHONDONTWRITEBYTECODE";
    keys[nkeys++] = "HOME";
    keys[nkeys++] = "MQTT_HOST";
    keys[nkeys++] = "MQTT_PORT";
    keys[nkeys++] = "LAB_COUNT";
    if (getenv("LANG") && *getenv("LANG")) keys[nkeys++] = "LANG";
    if (getenv("LC_ALL") && *getenv("LC_ALL")) keys[nkeys++] = "LC_ALL";
    /* In the sandbox TMPDIR is always its private /tmp. */
    if (prog_sandbox() || (getenv("TMPDIR") && *getenv("TMPDIR"))) keys[nkeys++] = "TMPDIR";
    int nenv = 0, unexpected = 0;
    for (const char *s = out; (s = strstr(s, "env:")); s += 4) {
        if (s != out && s[-1] != '\n') continue;
        nenv++;
        size_t klen = strcspn(s + 4, "=\n");
        int known = 0;
        for (int i = 0; i < nkeys; i++)
            known |= strlen(keys[i]) == klen && strncmp(keys[i], s + 4, klen) == 0;
        if (!known) { unexpected++; fprintf(stderr, "unexpected: %.*s\n", (int)klen, s + 4); }
    }
    CU_ASSERT_EQUAL(unexpected, 0);
    CU_ASSERT_EQUAL(nenv, nkeys);
    CU_ASSERT(has_line(out, "env:MQTT_HOST=127.0.0.1"));
    CU_ASSERT(has_line(out, "env:MQTT_PORT=18830"));
    CU_ASSERT(has_line(out, "env:LAB_COUNT=3"));
    CU_ASSERT(has_line(out, "env:HOME=/lab-home"));
    CU_ASSERT(has_line(out, "env:PYTHONUNBUFFERED=1"));
    if (prog_sandbox()) CU_ASSERT(has_line(out, "env:TMPDIR=/tmp"));
    CU_ASSERT(strstr(out, "MQLAB_SECRET_TEST") == NULL);
    prog_free(p);
    kit_rmdtemp(wd);
}

static void TEST_c_compile_error(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    prog_opts_t o = fixture_opts("broken", wd);
    prog_t *p = (prog_t *)1;
    err[0] = '\0';
    CU_ASSERT(prog_start(&p, &o, err) == KIT_EINVAL);
    CU_ASSERT(p == NULL);
    CU_ASSERT(strstr(err, "broken.c") != NULL);
    CU_ASSERT(strstr(err, "error") != NULL);
    CU_ASSERT(strstr(err, "return 0") != NULL || strstr(err, "expected") != NULL);
    kit_rmdtemp(wd);
}

static void TEST_wall_timeout(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    prog_opts_t o = fixture_opts("sleeper", wd);
    o.wall_ms = 300;
    prog_t *p = NULL;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_timed_out(p), 1);
    CU_ASSERT_EQUAL(prog_exit_code(p), -1);
    CU_ASSERT_EQUAL(prog_term_signal(p), SIGTERM);
    CU_ASSERT(strstr(prog_stdout(p, NULL), "never") == NULL);
    CU_ASSERT(prog_runtime_s(p) < 20.0);
    prog_free(p);

    /* Without a wall timeout, prog_wait's own timeout leaves it running. */
    o.wall_ms = 0;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(prog_wait(p, 50) == KIT_ETIMEOUT);
    CU_ASSERT_EQUAL(prog_poll(p), 1);
    CU_ASSERT_EQUAL(prog_timed_out(p), 0);
    prog_free(p);
    kit_rmdtemp(wd);
}

/* A signal sent the moment the program starts must not be lost (between
 * fork and exec the child still has the kit's handlers). */
static void TEST_signal_at_start(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    prog_opts_t o = fixture_opts("sleeper", wd);
    for (int i = 0; i < 5; i++) {
        prog_t *p = NULL;
        CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
        CU_ASSERT(prog_signal(p, SIGTERM) == KIT_OK);
        CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
        CU_ASSERT_EQUAL(prog_term_signal(p), SIGTERM);
        CU_ASSERT(prog_signal(p, SIGTERM) == KIT_ENOENT);
        prog_free(p);
    }
    kit_rmdtemp(wd);
}

static void TEST_term_ignored(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    prog_opts_t o = fixture_opts("stubborn", wd);
    o.term_grace_ms = 200;

    /* prog_stop: TERM is ignored, so it ends with KILL. */
    prog_t *p = NULL;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(tu_stdout_has(p, "ready", 10000));
    pid_t pid = prog_pid(p);
    CU_ASSERT(prog_stop(p) == KIT_OK);
    CU_ASSERT_EQUAL(prog_term_signal(p), SIGKILL);
    CU_ASSERT_EQUAL(prog_timed_out(p), 0);
    CU_ASSERT(pid > 0 && !tu_pid_alive(pid));
    prog_free(p);

    /* The wall timeout escalates the same way. */
    o.wall_ms = 2000;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(tu_stdout_has(p, "ready", 10000));
    CU_ASSERT(prog_wait(p, 30000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_timed_out(p), 1);
    CU_ASSERT_EQUAL(prog_term_signal(p), SIGKILL);
    prog_free(p);
    kit_rmdtemp(wd);
}

static void run_bg(int leader_stays)
{
    char err[KIT_ERRLEN], wd[PATH_MAX], share[PATH_MAX], pidfile[PATH_MAX + 16], pidenv[PATH_MAX + 32];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    /* A folder the program may write, in or out of the sandbox. */
    CU_ASSERT_FATAL(kit_mkdtemp(share, sizeof share, "mqlab-progshare", err) == KIT_OK);
    give_to_sandbox(share);
    snprintf(pidfile, sizeof pidfile, "%s/child.pid", share);
    snprintf(pidenv, sizeof pidenv, "PIDFILE=%s", pidfile);
    const char *env[] = { pidenv, leader_stays ? "LEADER_STAYS=1" : "LEADER_STAYS=0", NULL };
    const char *rw[] = { share, NULL };
    prog_opts_t o = fixture_opts("bg", wd);
    o.env = env;
    o.rw = rw;
    o.term_grace_ms = 500;
    prog_t *p = NULL;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    ino_t ns = prog_sandbox() ? pidns_of(prog_pid(p)) : 0;
    CU_ASSERT(tu_stdout_has(p, "child started", 10000));
    pid_t child = read_pid(pidfile, 10000);
    CU_ASSERT_FATAL(child > 0);
    /* In the sandbox, the file holds the pid inside its namespace. */
    if (prog_sandbox()) child = host_pid(prog_pid(p), child);
    if (leader_stays) {
        CU_ASSERT(child > 0 && tu_pid_alive(child));   /* the check below means something */
    } else {
        CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
        CU_ASSERT_EQUAL(prog_exit_code(p), 0);
    }
    prog_free(p);
    if (child > 0) {
        CU_ASSERT(pid_gone_within(child, 5000));
        if (tu_pid_alive(child)) kill(child, SIGKILL);
    }
    if (ns) CU_ASSERT_EQUAL(procs_in_pidns(ns), 0);   /* nothing of the sandbox is left */
    kit_rmdtemp(wd);
    kit_rmdtemp(share);
}

static void TEST_no_stray_leader_running(void) { run_bg(1); }
static void TEST_no_stray_leader_exited(void) { run_bg(0); }

static void TEST_fsize_limit(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX], out[PATH_MAX + 16];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    prog_opts_t o = fixture_opts("bigout", wd);
    o.fsize_mb = 1;
    prog_t *p = NULL;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_term_signal(p), SIGXFSZ);
    snprintf(out, sizeof out, "%s/bigout.out", wd);
    struct stat st;
    CU_ASSERT_FATAL(stat(out, &st) == 0);
    CU_ASSERT(st.st_size > 0 && st.st_size <= 1024 * 1024);
    size_t len = 0;
    prog_stdout(p, &len);
    CU_ASSERT_EQUAL(len, (size_t)st.st_size);
    prog_free(p);
    kit_rmdtemp(wd);
}

static void TEST_restart_appends(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-progwd", err) == KIT_OK);
    prog_opts_t o = fixture_opts("basic", wd);
    prog_t *p = NULL;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT(prog_restart(p, err) == KIT_OK);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_exit_code(p), 3);
    CU_ASSERT_STRING_EQUAL(prog_stdout(p, NULL), "to stdout\nto stdout\n");
    CU_ASSERT_STRING_EQUAL(prog_stderr(p, NULL), "to stderr\nto stderr\n");
    prog_free(p);

    /* Restarting a running program stops it first. */
    o = fixture_opts("sleeper", wd);
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(tu_stdout_has(p, "started", 10000));
    pid_t first = prog_pid(p);
    CU_ASSERT(prog_restart(p, err) == KIT_OK);
    CU_ASSERT(prog_pid(p) > 0 && prog_pid(p) != first);
    CU_ASSERT(!tu_pid_alive(first));
    CU_ASSERT(tu_stdout_has(p, "started\nstarted\n", 10000));
    prog_free(p);
    kit_rmdtemp(wd);
}

/* The same tests with the sandbox off, then on. */
static int suite_off(void) { saved_sandbox = prog_sandbox(); prog_set_sandbox(0); return 0; }
static int suite_on(void) { saved_sandbox = prog_sandbox(); prog_set_sandbox(1); return 0; }
static int suite_done(void) { prog_set_sandbox(saved_sandbox); return 0; }

static void TEST_sandbox_skipped(void)
{
    char why[KIT_ERRLEN];
    sbx_available(why, sizeof why);
    printf("\n  programs in the sandbox: skipped, no sandbox here: %s\n", why);
}

static int add_tests(CU_pSuite s)
{
    if (!s) return 0;
    return CU_add_test(s, "find order and not found", TEST_find_order)
        && CU_add_test(s, "python detection", TEST_python)
        && CU_add_test(s, "sh output and exit code", TEST_sh_capture)
        && CU_add_test(s, "C build, environment and cwd", TEST_c_env_cwd)
        && CU_add_test(s, "C compile error", TEST_c_compile_error)
        && CU_add_test(s, "wall timeout", TEST_wall_timeout)
        && CU_add_test(s, "signal right after start", TEST_signal_at_start)
        && CU_add_test(s, "TERM ignored gets KILL", TEST_term_ignored)
        && CU_add_test(s, "no stray, leader running", TEST_no_stray_leader_running)
        && CU_add_test(s, "no stray, leader exited", TEST_no_stray_leader_exited)
        && CU_add_test(s, "file size limit", TEST_fsize_limit)
        && CU_add_test(s, "restart appends", TEST_restart_appends);
}

int init_programs_tests(void)
{
    CU_pSuite off = CU_add_suite("programs", suite_off, suite_done);
    int ok = add_tests(off);
    if (ok && sbx_available(NULL, 0)) {
        ok = add_tests(CU_add_suite("programs in the sandbox", suite_on, suite_done));
    } else if (ok) {
        CU_pSuite s = CU_add_suite("programs in the sandbox", NULL, NULL);
        ok = s && CU_add_test(s, "skipped", TEST_sandbox_skipped);
    }
    if (!ok) {
        printf("Error adding CUnit programs tests.\n");
        return 1;
    }
    return 0;
}
