/*
 * sandbox_test.c - what the sandbox promises, asserted on real outcomes:
 * a program sees only the system, its folder, its binds and a private
 * /tmp and HOME; nothing it starts outlives it; its own TERM handler
 * runs; fork bombs and floods of output are capped; a C file cannot
 * include a neighbour's; it cannot forge its exit status; and the copy
 * of a submission leaves out links and keeps to its limits. Also the
 * cost of a start, with the sandbox and without.
 *
 * Skipped, with the reason, where sbx_available() says no.
 */
#include <CUnit/Basic.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "programs.h"
#include "sandbox.h"
#include "util.h"
#include "testutil.h"

static int saved_sandbox;

/* A kit temporary folder the sandbox uid may use (0700, its own). */
static void sandbox_dir(char *dir, size_t len, const char *prefix)
{
    char err[KIT_ERRLEN];
    CU_ASSERT_FATAL(kit_mkdtemp(dir, len, prefix, err) == KIT_OK);
    CU_ASSERT_FATAL(sbx_chown_tree(dir, err) == KIT_OK);
}

static prog_opts_t opts_for(const char *dir, const char *name, const char *workdir)
{
    prog_opts_t o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.name = name;
    o.workdir = workdir;
    o.wall_ms = 30000;
    return o;
}

/* Start, wait for the end, and keep the program for the asserts. */
static prog_t *run(const prog_opts_t *o)
{
    char err[KIT_ERRLEN] = "";
    prog_t *p = NULL;
    int rc = prog_start(&p, o, err);
    if (rc != KIT_OK) fprintf(stderr, "\n  prog_start: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, KIT_OK);
    CU_ASSERT(prog_wait(p, 60000) == KIT_OK);
    return p;
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *s = text; (s = strstr(s, line)); s += n)
        if ((s == text || s[-1] == '\n') && (s[n] == '\n' || s[n] == '\0')) return 1;
    return 0;
}

/* Host processes whose command line is exactly argv (NUL-separated). */
static int count_cmdline(const char *const *argv)
{
    char want[256];
    size_t wn = 0;
    for (const char *const *a = argv; *a; a++) {
        size_t l = strlen(*a) + 1;
        memcpy(want + wn, *a, l);
        wn += l;
    }
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end, path[64], buf[256];
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end) continue;
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t r = read(fd, buf, sizeof buf);
        close(fd);
        if (r == (ssize_t)wn && memcmp(buf, want, wn) == 0) n++;
    }
    if (d) closedir(d);
    return n;
}

/* Host processes (zombies aside) whose real uid is uid. */
static int count_uid(uid_t uid)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end, path[64], line[256];
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end) continue;
        snprintf(path, sizeof path, "/proc/%ld/status", pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int zombie = 0;
        long u = -1;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "State:", 6) == 0) zombie = strchr(line, 'Z') != NULL;
            if (strncmp(line, "Uid:", 4) == 0) u = strtol(line + 4, NULL, 10);
        }
        fclose(f);
        if (u == (long)uid && !zombie) n++;
    }
    if (d) closedir(d);
    return n;
}

/* ---- what a program sees --------------------------------------------- */

static void TEST_sees_only_its_own(void)
{
    char err[KIT_ERRLEN], home[PATH_MAX], sub[PATH_MAX + 8], sibling[PATH_MAX + 16],
         other[PATH_MAX], wd[PATH_MAX], env_paths[PATH_MAX * 6];
    const char *old_home = getenv("HOME");
    char saved_home[PATH_MAX];
    snprintf(saved_home, sizeof saved_home, "%s", old_home ? old_home : "");

    /* The kit's HOME for this test: a temporary folder with a secret. */
    CU_ASSERT_FATAL(kit_mkdtemp(home, sizeof home, "mqlab-sbxhome", err) == KIT_OK);
    CU_ASSERT(tu_write_file(home, "secret", "home secret\n", 0644) == 0);
    setenv("HOME", home, 1);

    /* Its own folder, a sibling with a classmate's work, another kit
     * folder, and a file of the repository. */
    char class_dir[PATH_MAX];
    sandbox_dir(class_dir, sizeof class_dir, "mqlab-sbxclass");
    snprintf(sub, sizeof sub, "%s/me", class_dir);
    snprintf(sibling, sizeof sibling, "%s/alice", class_dir);
    CU_ASSERT(mkdir(sub, 0755) == 0 && mkdir(sibling, 0755) == 0);
    CU_ASSERT(tu_write_file(sibling, "hello.py", "print('alice')\n", 0644) == 0);
    CU_ASSERT(sbx_chown_tree(class_dir, err) == KIT_OK);
    CU_ASSERT_FATAL(kit_mkdtemp(other, sizeof other, "mqlab-sbxother", err) == KIT_OK);
    CU_ASSERT(tu_write_file(other, "grades.db", "kit data\n", 0644) == 0);
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    char repo_file[PATH_MAX + 16];
    snprintf(repo_file, sizeof repo_file, "%s/basic.sh", tu_programs_dir());

    snprintf(env_paths, sizeof env_paths, "LOOK=%s/secret %s/hello.py %s/grades.db %s %s/../alice",
             home, sibling, other, repo_file, sub);
    CU_ASSERT(tu_write_file(sub, "look.sh",
                         "for f in $LOOK; do\n"
                         "  if [ -e \"$f\" ]; then echo \"seen $f\"; else echo hidden; fi\n"
                         "done\n"
                         "echo \"home $HOME\"\n"
                         "echo pwned > \"$HOME/pwned\" && echo \"wrote home\"\n"
                         "ls /proc/$PPID/cwd/ >/dev/null 2>&1 && echo \"parent cwd seen\"\n"
                         "exit 0\n", 0644) == 0);
    const char *env[] = { env_paths, NULL };
    prog_opts_t o = opts_for(sub, "look", wd);
    o.env = env;
    prog_t *p = run(&o);
    const char *out = prog_stdout(p, NULL);
    CU_ASSERT_EQUAL(prog_exit_code(p), 0);
    CU_ASSERT(strstr(out, "seen") == NULL);
    if (strstr(out, "seen")) fprintf(stderr, "\n%s", out);
    CU_ASSERT(has_line(out, "home " SBX_HOME));
    CU_ASSERT(has_line(out, "wrote home"));
    prog_free(p);

    /* What it wrote in its HOME went with the sandbox. */
    char pwned[PATH_MAX + 16];
    snprintf(pwned, sizeof pwned, "%s/pwned", home);
    CU_ASSERT(!kit_file_exists(pwned));
    CU_ASSERT(!kit_file_exists(SBX_HOME "/pwned"));

    if (saved_home[0]) setenv("HOME", saved_home, 1);
    else unsetenv("HOME");
    kit_rmdtemp(home);
    kit_rmdtemp(class_dir);
    kit_rmdtemp(other);
    kit_rmdtemp(wd);
}

static void TEST_private_tmp(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX], marker[64], env_marker[96], host_path[128];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    snprintf(marker, sizeof marker, "mqlab-sbx-private-%d", (int)getpid());
    snprintf(env_marker, sizeof env_marker, "MARKER=%s", marker);
    snprintf(host_path, sizeof host_path, "/tmp/%s", marker);
    const char *env[] = { env_marker, NULL };
    /* The fixtures are outside /tmp, so nothing needs to be made there. */
    prog_opts_t o = opts_for(tu_programs_dir(), "tmpcheck", wd);
    o.env = env;
    prog_t *p = run(&o);
    const char *out = prog_stdout(p, NULL);
    /* Nothing of the host's /tmp shows, except the folders bound into
     * the sandbox on the way to the fixtures and the workdir (when the
     * checkout or TMPDIR lies under /tmp). */
    CU_ASSERT(has_line(out, "-- end of /tmp"));
    for (const char *line = out; *line && strncmp(line, "-- end", 6) != 0;) {
        const char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);
        char top[NAME_MAX + 8];
        snprintf(top, sizeof top, "/tmp/%.*s/", n, line);
        int bound = strncmp(tu_programs_dir(), top, strlen(top)) == 0 || strncmp(wd, top, strlen(top)) == 0;
        if (!bound) fprintf(stderr, "\n    private /tmp shows %.*s\n", n, line);
        CU_ASSERT(bound);
        line += n + (nl ? 1 : 0);
    }
    CU_ASSERT(has_line(out, "wrote"));
    CU_ASSERT(!kit_file_exists(host_path));
    prog_free(p);
    unlink(host_path);
    kit_rmdtemp(wd);
}

static void TEST_binds(void)
{
    char err[KIT_ERRLEN], dir[PATH_MAX], ro_dir[PATH_MAX], rw_dir[PATH_MAX], wd[PATH_MAX];
    char ro_file[PATH_MAX + 16], rw_file[PATH_MAX + 16], env_ro[PATH_MAX + 32], env_rw[PATH_MAX + 32];
    sandbox_dir(dir, sizeof dir, "mqlab-sbxdir");
    CU_ASSERT_FATAL(kit_mkdtemp(ro_dir, sizeof ro_dir, "mqlab-sbxro", err) == KIT_OK);
    sandbox_dir(rw_dir, sizeof rw_dir, "mqlab-sbxrw");
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    /* World-writable, so only the read-only bind can stop a write. */
    CU_ASSERT(tu_write_file(ro_dir, "ca.crt", "the CA\n", 0666) == 0);
    snprintf(ro_file, sizeof ro_file, "%s/ca.crt", ro_dir);
    snprintf(rw_file, sizeof rw_file, "%s/lab.db", rw_dir);
    snprintf(env_ro, sizeof env_ro, "MQTT_CAFILE=%s", ro_file);
    snprintf(env_rw, sizeof env_rw, "LAB_DB=%s", rw_file);
    CU_ASSERT(tu_write_file(dir, "binds.sh",
                         "cat \"$MQTT_CAFILE\"\n"
                         "echo tampered >> \"$MQTT_CAFILE\" 2>/dev/null && echo \"ro written\"\n"
                         "echo row > \"$LAB_DB\" && echo \"rw written\"\n"
                         "exit 0\n", 0644) == 0);
    const char *env[] = { env_ro, env_rw, NULL };
    const char *ro[] = { ro_file, NULL };
    const char *rw[] = { rw_dir, NULL };
    prog_opts_t o = opts_for(dir, "binds", wd);
    o.env = env;
    o.ro = ro;
    o.rw = rw;
    prog_t *p = run(&o);
    const char *out = prog_stdout(p, NULL);
    CU_ASSERT(has_line(out, "the CA"));
    CU_ASSERT(!has_line(out, "ro written"));
    CU_ASSERT(has_line(out, "rw written"));
    prog_free(p);
    char *ca = kit_read_file(ro_file, NULL, NULL);
    CU_ASSERT(ca && strcmp(ca, "the CA\n") == 0);
    free(ca);
    char *db = kit_read_file(rw_file, NULL, NULL);
    CU_ASSERT(db && strcmp(db, "row\n") == 0);
    free(db);

    /* A missing bind is the caller's mistake, said before anything runs. */
    const char *missing[] = { "/nonexistent/mqlab/ca.crt", NULL };
    o.ro = missing;
    p = (prog_t *)1;
    CU_ASSERT(prog_start(&p, &o, err) == KIT_ERR);
    CU_ASSERT(p == NULL);
    CU_ASSERT(strstr(err, "/nonexistent/mqlab/ca.crt") != NULL);
    kit_rmdtemp(dir);
    kit_rmdtemp(ro_dir);
    kit_rmdtemp(rw_dir);
    kit_rmdtemp(wd);
}

/* ---- processes ---------------------------------------------------------- */

static void TEST_nothing_escapes(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX], mark[32], mark1[32], env_mark[48];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    /* A marker of this run only: other test runs may share the machine. */
    int m = 40000 + (int)(getpid() % 20000) * 2;
    snprintf(mark, sizeof mark, "%d", m);
    snprintf(mark1, sizeof mark1, "%d", m + 1);
    snprintf(env_mark, sizeof env_mark, "MARK=%d", m);
    const char *env[] = { env_mark, NULL };
    const char *sleep0[] = { "sleep", mark, NULL }, *sleep1[] = { "sleep", mark1, NULL };

    prog_opts_t o = opts_for(tu_programs_dir(), "escape", wd);
    o.env = env;
    prog_t *p = run(&o);
    CU_ASSERT_EQUAL(prog_exit_code(p), 0);
    CU_ASSERT(has_line(prog_stdout(p, NULL), "escaped"));
    /* Reported as exited: by then nothing it started is left. */
    CU_ASSERT_EQUAL(count_cmdline(sleep0), 0);
    CU_ASSERT_EQUAL(count_cmdline(sleep1), 0);
    prog_free(p);

    /* Stopped while they run: the same. */
    char err2[KIT_ERRLEN];
    o.name = "escape";
    CU_ASSERT_FATAL(prog_start(&p, &o, err2) == KIT_OK);
    CU_ASSERT(tu_stdout_has(p, "escaped", 30000) || prog_exit_code(p) == 0);
    prog_free(p);
    CU_ASSERT_EQUAL(count_cmdline(sleep0), 0);
    CU_ASSERT_EQUAL(count_cmdline(sleep1), 0);
    kit_rmdtemp(wd);
}

static void TEST_term_handler(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    prog_opts_t o = opts_for(tu_programs_dir(), "termtrap", wd);
    prog_t *p = NULL;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(tu_stdout_has(p, "ready", 20000));
    CU_ASSERT(prog_signal(p, SIGTERM) == KIT_OK);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT(has_line(prog_stdout(p, NULL), "got TERM"));
    CU_ASSERT_EQUAL(prog_exit_code(p), 143);
    CU_ASSERT_EQUAL(prog_term_signal(p), 0);
    prog_free(p);

    /* Without a handler, TERM kills: a death by signal, not code 143. */
    o.name = "sleeper";
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(tu_stdout_has(p, "started", 20000));
    CU_ASSERT(prog_signal(p, SIGTERM) == KIT_OK);
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    CU_ASSERT_EQUAL(prog_exit_code(p), -1);
    CU_ASSERT_EQUAL(prog_term_signal(p), SIGTERM);
    prog_free(p);
    kit_rmdtemp(wd);
}

static void TEST_stop_cont(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    prog_opts_t o = opts_for(tu_programs_dir(), "ticker", wd);
    prog_t *p = NULL;
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    CU_ASSERT(tu_stdout_has(p, "tick", 20000));
    CU_ASSERT(prog_signal(p, SIGSTOP) == KIT_OK);
    kit_sleep_ms(200);   /* a tick already under way may still land */
    size_t frozen = 0, later = 0;
    prog_stdout(p, &frozen);
    kit_sleep_ms(400);
    prog_stdout(p, &later);
    CU_ASSERT_EQUAL(later, frozen);
    CU_ASSERT(prog_signal(p, SIGCONT) == KIT_OK);
    int64_t end = kit_now_ms() + 20000;
    while (later == frozen && kit_now_ms() < end) {
        kit_sleep_ms(20);
        prog_stdout(p, &later);
    }
    CU_ASSERT(later > frozen);
    prog_free(p);
    kit_rmdtemp(wd);
}

static void TEST_fork_bomb(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    if (!sbx_privileged()) {
        printf("\n  fork bomb: skipped, not root (RLIMIT_NPROC is enforced only as root)\n");
        return;
    }
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    uid_t uid = sbx_uid();
    CU_ASSERT_EQUAL(count_uid(uid), 0);
    prog_opts_t o = opts_for(tu_programs_dir(), "forkbomb", wd);
    o.wall_ms = 3000;
    o.term_grace_ms = 500;
    o.nproc = 32;
    prog_t *p = NULL;
    int64_t t0 = kit_now_ms();
    CU_ASSERT_FATAL(prog_start(&p, &o, err) == KIT_OK);
    int most = 0;
    while (prog_poll(p)) {
        int n = count_uid(uid);
        if (n > most) most = n;
        kit_sleep_ms(50);
        if (kit_now_ms() - t0 > 60000) break;
    }
    CU_ASSERT(prog_wait(p, 20000) == KIT_OK);
    /* The launcher counts too: it runs as the same uid. */
    CU_ASSERT(most <= 32);
    CU_ASSERT(most >= 2);
    CU_ASSERT(kit_now_ms() - t0 < 30000);
    prog_free(p);
    CU_ASSERT_EQUAL(count_uid(uid), 0);
    kit_rmdtemp(wd);
}

static void TEST_huge_output(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX], out[PATH_MAX + 16];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    prog_opts_t o = opts_for(tu_programs_dir(), "hugeout", wd);
    o.fsize_mb = 1;
    prog_t *p = run(&o);
    CU_ASSERT_EQUAL(prog_term_signal(p), SIGXFSZ);
    snprintf(out, sizeof out, "%s/hugeout.out", wd);
    struct stat st;
    CU_ASSERT(stat(out, &st) == 0 && st.st_size <= 1024 * 1024);
    prog_free(p);
    kit_rmdtemp(wd);
}

static void TEST_status_out_of_reach(void)
{
    char err[KIT_ERRLEN], wd[PATH_MAX];
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    prog_opts_t o = opts_for(tu_programs_dir(), "fdcheck", wd);
    prog_t *p = run(&o);
    const char *out = prog_stdout(p, NULL);
    CU_ASSERT(strstr(out, "socket:") == NULL);
    CU_ASSERT(strstr(out, "pipe:") == NULL);
    CU_ASSERT(strstr(out, "wrote") == NULL);
    if (strstr(out, "socket:") || strstr(out, "pipe:") || strstr(out, "wrote")) fprintf(stderr, "\n%s", out);
    /* Whatever it tried, the kit heard the truth. */
    CU_ASSERT_EQUAL(prog_exit_code(p), 7);
    prog_free(p);
    kit_rmdtemp(wd);
}

static void TEST_restart_keeps_files(void)
{
    char err[KIT_ERRLEN], dir[PATH_MAX], wd[PATH_MAX];
    sandbox_dir(dir, sizeof dir, "mqlab-sbxdir");
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    CU_ASSERT(tu_write_file(dir, "count.sh", "echo run >> runs.txt\nwc -l < runs.txt\n", 0644) == 0);
    prog_opts_t o = opts_for(dir, "count", wd);
    prog_t *p = run(&o);
    CU_ASSERT(prog_restart(p, err) == KIT_OK);
    CU_ASSERT(prog_wait(p, 30000) == KIT_OK);
    CU_ASSERT_STRING_EQUAL(prog_stdout(p, NULL), "1\n2\n");
    prog_free(p);
    kit_rmdtemp(dir);
    kit_rmdtemp(wd);
}

static void TEST_no_sandbox_option(void)
{
    char err[KIT_ERRLEN], dir[PATH_MAX], wd[PATH_MAX], env_path[PATH_MAX + 16];
    sandbox_dir(dir, sizeof dir, "mqlab-sbxdir");
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    CU_ASSERT(tu_write_file(wd, "kit-file", "x\n", 0644) == 0);
    CU_ASSERT(tu_write_file(dir, "peek.sh", "if [ -e \"$F\" ]; then echo seen; else echo hidden; fi\n", 0644) == 0);
    snprintf(env_path, sizeof env_path, "F=%s/kit-file", wd);
    const char *env[] = { env_path, NULL };
    prog_opts_t o = opts_for(dir, "peek", wd);
    o.env = env;
    prog_t *p = run(&o);
    CU_ASSERT_STRING_EQUAL(prog_stdout(p, NULL), "hidden\n");
    prog_free(p);
    o.no_sandbox = 1;
    p = run(&o);
    CU_ASSERT_STRING_EQUAL(prog_stdout(p, NULL), "seen\n");
    prog_free(p);
    kit_rmdtemp(dir);
    kit_rmdtemp(wd);
}

/* ---- C and Python -------------------------------------------------------- */

static void TEST_c_include_outside(void)
{
    char err[KIT_ERRLEN], top[PATH_MAX], sub[PATH_MAX + 8], wd[PATH_MAX];
    sandbox_dir(top, sizeof top, "mqlab-sbxc");
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    snprintf(sub, sizeof sub, "%s/me", top);
    CU_ASSERT(mkdir(sub, 0755) == 0);
    CU_ASSERT(tu_write_file(top, "x.c", "#include <stdio.h>\nint main(void) { puts(\"x\"); return 0; }\n", 0644) == 0);
    CU_ASSERT(tu_write_file(sub, "inc.c", "#include \"../x.c\"\n", 0644) == 0);
    CU_ASSERT(sbx_chown_tree(top, err) == KIT_OK);
    prog_opts_t o = opts_for(sub, "inc", wd);
    prog_t *p = (prog_t *)1;
    err[0] = '\0';
    CU_ASSERT(prog_start(&p, &o, err) == KIT_EINVAL);
    CU_ASSERT(p == NULL);
    CU_ASSERT(strstr(err, "x.c") != NULL);

    /* The same file, unconfined, compiles: the sandbox made the difference. */
    o.no_sandbox = 1;
    CU_ASSERT(prog_start(&p, &o, err) == KIT_OK);
    if (p != (prog_t *)1) prog_free(p);
    kit_rmdtemp(top);
    kit_rmdtemp(wd);
}

/* A Python outside /usr (a venv of the system's one): its folders are
 * bound, and paho is found inside. */
static void TEST_python_outside_usr(void)
{
    char err[KIT_ERRLEN], venv[PATH_MAX], wd[PATH_MAX], cmd[PATH_MAX * 2], py[PATH_MAX + 32];
    unsetenv("MQLAB_PYTHON");
    const char *sys_py = prog_python(err);
    if (!sys_py) {
        printf("\n  python outside /usr: skipped, %s\n", err);
        return;
    }
    CU_ASSERT_FATAL(kit_mkdtemp(venv, sizeof venv, "mqlab-sbxvenv", err) == KIT_OK);
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    snprintf(cmd, sizeof cmd, "'%s' -m venv --without-pip --system-site-packages '%s/v' >/dev/null 2>&1",
             sys_py, venv);
    if (system(cmd) != 0) {
        printf("\n  python outside /usr: skipped, `python3 -m venv` does not work here\n");
        kit_rmdtemp(venv);
        kit_rmdtemp(wd);
        return;
    }
    /* The venv's folder is 0700 and root's: make the way in readable. */
    chmod(venv, 0755);
    snprintf(py, sizeof py, "%s/v/bin/python3", venv);
    setenv("MQLAB_PYTHON", py, 1);
    prog_opts_t o = opts_for(tu_programs_dir(), "usespaho", wd);
    prog_t *p = run(&o);
    CU_ASSERT_EQUAL(prog_exit_code(p), 0);
    CU_ASSERT_STRING_EQUAL(prog_stdout(p, NULL), "paho ok\n");
    if (prog_exit_code(p) != 0) fprintf(stderr, "\n%s", prog_stderr(p, NULL));
    prog_free(p);
    unsetenv("MQLAB_PYTHON");
    kit_rmdtemp(venv);
    kit_rmdtemp(wd);
}

/* ---- the copy of a submission ------------------------------------------ */

static void TEST_copy_tree(void)
{
    char err[KIT_ERRLEN], src[PATH_MAX], secret[PATH_MAX], base[PATH_MAX], dst[PATH_MAX + 8];
    char path[PATH_MAX * 2];
    CU_ASSERT_FATAL(kit_mkdtemp(src, sizeof src, "mqlab-sbxsrc", err) == KIT_OK);
    CU_ASSERT_FATAL(kit_mkdtemp(secret, sizeof secret, "mqlab-sbxsecret", err) == KIT_OK);
    CU_ASSERT_FATAL(kit_mkdtemp(base, sizeof base, "mqlab-sbxcopy", err) == KIT_OK);
    CU_ASSERT(tu_write_file(secret, "gradebook.db", "grades\n", 0644) == 0);
    CU_ASSERT(tu_write_file(src, "hello.py", "print('hi')\n", 0644) == 0);
    CU_ASSERT(tu_write_file(src, "run", "#!/bin/sh\necho run\n", 0755) == 0);
    snprintf(path, sizeof path, "%s/lib", src);
    CU_ASSERT(mkdir(path, 0750) == 0);
    CU_ASSERT(tu_write_file(path, "util.py", "x = 1\n", 0600) == 0);
    snprintf(path, sizeof path, "%s/gradebook.db", secret);
    char link[PATH_MAX * 2];
    snprintf(link, sizeof link, "%s/grades", src);
    CU_ASSERT(symlink(path, link) == 0);
    snprintf(link, sizeof link, "%s/other", src);
    CU_ASSERT(symlink(secret, link) == 0);
    snprintf(link, sizeof link, "%s/fifo", src);
    CU_ASSERT(mkfifo(link, 0644) == 0);

    snprintf(dst, sizeof dst, "%s/sub", base);
    CU_ASSERT_FATAL(sbx_copy_tree(src, dst, err) == KIT_OK);
    struct stat st;
    snprintf(path, sizeof path, "%s/run", dst);
    CU_ASSERT(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0755);
    if (sbx_privileged()) CU_ASSERT(st.st_uid == sbx_uid() && st.st_gid == sbx_uid());
    snprintf(path, sizeof path, "%s/lib", dst);
    CU_ASSERT(lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0750);
    snprintf(path, sizeof path, "%s/lib/util.py", dst);
    CU_ASSERT(lstat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    char *text = kit_read_file(path, NULL, NULL);
    CU_ASSERT(text && strcmp(text, "x = 1\n") == 0);
    free(text);
    static const char *const gone[] = { "grades", "other", "fifo" };
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dst, gone[i]);
        CU_ASSERT(lstat(path, &st) != 0 && errno == ENOENT);
    }
    /* dst must not exist yet; a link as the folder itself is refused. */
    CU_ASSERT(sbx_copy_tree(src, dst, err) != KIT_OK);
    snprintf(link, sizeof link, "%s/grades", src);
    snprintf(path, sizeof path, "%s/sub2", base);
    CU_ASSERT(sbx_copy_tree(link, path, err) == KIT_EINVAL);
    CU_ASSERT(!kit_file_exists(path));
    kit_rmdtemp(src);
    kit_rmdtemp(secret);
    kit_rmdtemp(base);
}

static void TEST_copy_limits(void)
{
    char err[KIT_ERRLEN], src[PATH_MAX], base[PATH_MAX], dst[PATH_MAX + 16], path[PATH_MAX * 2];
    CU_ASSERT_FATAL(kit_mkdtemp(base, sizeof base, "mqlab-sbxcopy", err) == KIT_OK);

    /* Too many entries. */
    CU_ASSERT_FATAL(kit_mkdtemp(src, sizeof src, "mqlab-sbxmany", err) == KIT_OK);
    for (int i = 0; i <= SBX_COPY_MAX_ENTRIES; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d", i);
        tu_write_file(src, name, "", 0644);
    }
    snprintf(dst, sizeof dst, "%s/many", base);
    CU_ASSERT(sbx_copy_tree(src, dst, err) == KIT_EINVAL);
    CU_ASSERT(strstr(err, "2000") != NULL);
    CU_ASSERT(!kit_file_exists(dst));
    kit_rmdtemp(src);

    /* Too deep. */
    CU_ASSERT_FATAL(kit_mkdtemp(src, sizeof src, "mqlab-sbxdeep", err) == KIT_OK);
    snprintf(path, sizeof path, "%s", src);
    for (int i = 0; i <= SBX_COPY_MAX_DEPTH; i++) {
        strcat(path, "/d");
        CU_ASSERT(mkdir(path, 0755) == 0);
    }
    snprintf(dst, sizeof dst, "%s/deep", base);
    CU_ASSERT(sbx_copy_tree(src, dst, err) == KIT_EINVAL);
    CU_ASSERT(strstr(err, "deeper") != NULL);
    CU_ASSERT(!kit_file_exists(dst));
    kit_rmdtemp(src);

    /* Too big (a sparse file: no disk is spent on it). */
    CU_ASSERT_FATAL(kit_mkdtemp(src, sizeof src, "mqlab-sbxbig", err) == KIT_OK);
    snprintf(path, sizeof path, "%s/big.bin", src);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    CU_ASSERT(fd >= 0 && ftruncate(fd, SBX_COPY_MAX_BYTES + 1) == 0);
    if (fd >= 0) close(fd);
    snprintf(dst, sizeof dst, "%s/big", base);
    CU_ASSERT(sbx_copy_tree(src, dst, err) == KIT_EINVAL);
    CU_ASSERT(strstr(err, "MB") != NULL);
    CU_ASSERT(!kit_file_exists(dst));
    kit_rmdtemp(src);
    kit_rmdtemp(base);
}

/* ---- cost -------------------------------------------------------------- */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median and 95th percentile (ms) of n samples, sorted in place. */
static void stats(double *v, int n, double *median, double *p95)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *median = v[n / 2] / 1000.0;
    *p95 = v[(n * 95 + 99) / 100 - 1] / 1000.0;
}

/* n starts of /bin/true as an executable E, each way, interleaved so a
 * change of load hits both alike: the time prog_start takes, and a whole
 * start-to-reaped cycle. Printed; also run alone by make bench
 * (`unit-tests --start-cost N`). */
#define COST_MAX 1000
static void sandbox_start_cost(int n)
{
    char err[KIT_ERRLEN], dir[PATH_MAX], wd[PATH_MAX];
    static double start[2][COST_MAX], cycle[2][COST_MAX];
    const int N = n < 2 ? 2 : n > COST_MAX ? COST_MAX : n;
    sandbox_dir(dir, sizeof dir, "mqlab-sbxcost");
    CU_ASSERT_FATAL(kit_mkdtemp(wd, sizeof wd, "mqlab-sbxwd", err) == KIT_OK);
    size_t len = 0;
    char *bin = kit_read_file("/bin/true", &len, NULL);
    CU_ASSERT_FATAL(bin != NULL);
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/E", dir);
    CU_ASSERT(kit_write_file_atomic(path, bin, len, 0755, err) == KIT_OK);
    free(bin);
    CU_ASSERT(sbx_chown_tree(dir, err) == KIT_OK);
    for (int i = 0; i < N; i++) {
        for (int box = 1; box >= 0; box--) {
            prog_opts_t o = opts_for(dir, "E", wd);
            o.no_sandbox = !box;
            prog_t *p = NULL;
            double t0 = now_us();
            int rc = prog_start(&p, &o, err);
            double t1 = now_us();
            CU_ASSERT_EQUAL_FATAL(rc, KIT_OK);
            CU_ASSERT(prog_wait(p, 30000) == KIT_OK);
            CU_ASSERT_EQUAL(prog_exit_code(p), 0);
            prog_free(p);
            double t2 = now_us();
            start[box][i] = t1 - t0;
            cycle[box][i] = t2 - t0;
        }
    }
    double m[4], q[4];
    stats(start[1], N, &m[0], &q[0]);
    stats(cycle[1], N, &m[1], &q[1]);
    stats(start[0], N, &m[2], &q[2]);
    stats(cycle[0], N, &m[3], &q[3]);
    printf("\n  start cost over %d starts of /bin/true (ms, median / p95):\n"
           "    sandbox on:  prog_start %.2f / %.2f, start to reaped %.2f / %.2f\n"
           "    sandbox off: prog_start %.2f / %.2f, start to reaped %.2f / %.2f\n",
           N, m[0], q[0], m[1], q[1], m[2], q[2], m[3], q[3]);
    kit_rmdtemp(dir);
    kit_rmdtemp(wd);
}

/* ---- registration ------------------------------------------------------ */

static int suite_init(void) { saved_sandbox = prog_sandbox(); prog_set_sandbox(1); return 0; }
static int suite_done(void) { prog_set_sandbox(saved_sandbox); return 0; }

static void TEST_skipped(void)
{
    char why[KIT_ERRLEN];
    sbx_available(why, sizeof why);
    printf("\n  sandbox tests skipped, no sandbox here: %s\n", why);
}

static int cost_runs = 50;
static void TEST_start_cost(void) { sandbox_start_cost(cost_runs); }

/* make bench (`unit-tests --start-cost N`): a registry of this one test. */
int init_start_cost_suite(int n)
{
    cost_runs = n;
    CU_pSuite s = CU_add_suite("sandbox start cost", suite_init, suite_done);
    return !(s && CU_add_test(s, "start cost", TEST_start_cost));
}

int init_sandbox_tests(void)
{
    if (!sbx_available(NULL, 0)) {
        CU_pSuite s = CU_add_suite("sandbox", NULL, NULL);
        return !(s && CU_add_test(s, "skipped", TEST_skipped));
    }
    CU_pSuite s = CU_add_suite("sandbox", suite_init, suite_done);
    if (!s) {
        printf("Error adding CUnit sandbox test suite.\n");
        return 1;
    }
    if (!CU_add_test(s, "sees only its own folder", TEST_sees_only_its_own)
        || !CU_add_test(s, "private /tmp", TEST_private_tmp)
        || !CU_add_test(s, "read-only and writable binds", TEST_binds)
        || !CU_add_test(s, "setsid and double fork leave nothing", TEST_nothing_escapes)
        || !CU_add_test(s, "TERM handler vs death by TERM", TEST_term_handler)
        || !CU_add_test(s, "STOP and CONT", TEST_stop_cont)
        || !CU_add_test(s, "fork bomb capped", TEST_fork_bomb)
        || !CU_add_test(s, "1 GB of output capped", TEST_huge_output)
        || !CU_add_test(s, "status out of the program's reach", TEST_status_out_of_reach)
        || !CU_add_test(s, "restart keeps the folder's files", TEST_restart_keeps_files)
        || !CU_add_test(s, "sandbox = false runs outside", TEST_no_sandbox_option)
        || !CU_add_test(s, "C cannot include ../x.c", TEST_c_include_outside)
        || !CU_add_test(s, "Python outside /usr", TEST_python_outside_usr)
        || !CU_add_test(s, "copy skips links and keeps modes", TEST_copy_tree)
        || !CU_add_test(s, "copy limits", TEST_copy_limits)
        || !CU_add_test(s, "start cost", TEST_start_cost)) {
        printf("Error adding CUnit sandbox tests.\n");
        return 1;
    }
    return 0;
}
