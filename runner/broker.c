/*
 * broker.c - private Mosquitto instances for the labs.
 *
 * Each broker lives in its own temporary folder (config, log, captured
 * stderr, persistence files) and its own process group, registered with
 * cleanup so that no exit path, Ctrl-C included, leaves one running.
 *
 * Readiness on TCP means "the listening socket on the port belongs to our
 * mosquitto, and accepts": a bare connect could reach whoever grabbed the
 * port in the gap between kit_free_port() and mosquitto's bind(). Only
 * the exec'd mosquitto is asked: between fork() and exec() the child
 * still holds copies of the kit's descriptors, a squatter's socket among
 * them when the squatter is in this process. A unix socket lives in the
 * private folder, where nobody else can bind, so there accepting is
 * enough. Either way, a broker that logs to @LOG@ is ready once it has
 * logged "running".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "broker.h"
#include "cleanup.h"
#include "embedded.h"
#include "tls.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_READY_MS 5000
#define STOP_GRACE_MS 2000
#define POLL_MS 10
#define SOCK_NAME "mosquitto.sock"

struct broker {
    char *name;         /* profile name, for messages */
    char *exe;          /* resolved mosquitto binary */
    char dir[512];      /* private folder (cleanup's slots hold 512 bytes) */
    char *conf_path;
    char *log_path;
    char *stderr_path;
    char *certs;        /* the folder @CERTS@ became, or NULL */
    char *sock;         /* DIR/mosquitto.sock for a unix-socket broker, or NULL */
    int port;           /* 0 for a unix-socket broker */
    int ready_ms;
    pid_t pid;          /* leader = pgid; 0 when not running */
};

/* ---------------------------------------------------------------- */
/* Template checks and filling                                       */

/* Split a config line into at most 4 whitespace-separated tokens (in
 * place); returns how many there were, uncapped. */
static int tokens(char *line, char *tok[4])
{
    char *save = NULL;
    int ntok = 0;
    for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (ntok < 4) tok[ntok] = t;
        ntok++;
    }
    return ntok;
}

/* Is the n bytes at line exactly `listener @PORT@ 127.0.0.1`? */
static int is_port_listener(const char *line, size_t n)
{
    char copy[1024], *tok[4] = { 0 };
    if (n >= sizeof copy) return 0;
    memcpy(copy, line, n);
    copy[n] = '\0';
    return tokens(copy, tok) == 3 && strcmp(tok[0], "listener") == 0 &&
           strcmp(tok[1], "@PORT@") == 0 && strcmp(tok[2], "127.0.0.1") == 0;
}

/* Mosquitto opens 0.0.0.0 for a listener without an address, and for
 * the legacy `port`/`bind_address` options, which would expose a lab
 * broker with allow_anonymous to the whole network. So every listener
 * must name 127.0.0.1 explicitly, and the legacy options are refused.
 * The one exception is `listener 0 SOCK` for exactly the socket path
 * sock (NULL: none allowed); mosquitto reads anything after the path as
 * more words, so a path with a space in it is refused too. *count gets
 * the number of listeners. */
static int check_listeners(const char *text, const char *what, const char *sock, int *count, char *err)
{
    int listeners = 0, lineno = 0;
    *count = 0;
    const char *p = text;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024];
        lineno++;
        if (n >= sizeof line) n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = eol ? eol + 1 : NULL;

        char *tok[4] = { 0 };
        int ntok = tokens(line, tok);
        if (ntok == 0 || tok[0][0] == '#') continue;
        if (strcmp(tok[0], "port") == 0 || strcmp(tok[0], "bind_address") == 0)
            return kit_seterr(err, KIT_EINVAL,
                              "broker %s, line %d: `%s` is not allowed (it can open 0.0.0.0); "
                              "write `listener @PORT@ 127.0.0.1` instead", what, lineno, tok[0]);
        if (strcmp(tok[0], "listener") != 0) continue;
        listeners++;
        if (ntok == 3 && strcmp(tok[2], "127.0.0.1") == 0) continue;
        if (sock && ntok == 3 && strcmp(tok[1], "0") == 0 && strcmp(tok[2], sock) == 0) continue;
        if (sock && ntok > 3 && strcmp(tok[1], "0") == 0)
            return kit_seterr(err, KIT_EINVAL,
                              "broker %s, line %d: the unix socket path %s has a space in it, which "
                              "mosquitto would cut there; set TMPDIR to a folder without spaces",
                              what, lineno, sock);
        return kit_seterr(err, KIT_EINVAL,
                          "broker %s, line %d: every listener must be bound to 127.0.0.1 "
                          "(`listener %s 127.0.0.1`), or mosquitto opens 0.0.0.0",
                          what, lineno, ntok > 1 ? tok[1] : "@PORT@");
    }
    *count = listeners;
    return KIT_OK;
}

static void buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        while (*len + n + 1 > *cap) *cap = *cap ? *cap * 2 : 1024;
        *buf = kit_xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void fill_into(char **buf, size_t *len, size_t *cap, const char *text,
                      const char *port, const char *dir, const char *user, const char *log,
                      const char *certs)
{
    static const char *const keys[] = { "@PORT@", "@DIR@", "@USER@", "@LOG@", "@CERTS@" };
    /* A NULL certs never gets here: broker_start refuses @CERTS@ then. */
    const char *vals[] = { port, dir, user, log, certs ? certs : "@CERTS@" };
    const char *p = text;
    while (*p) {
        int hit = -1;
        if (*p == '@')
            for (int i = 0; i < 5; i++)
                if (strncmp(p, keys[i], strlen(keys[i])) == 0) { hit = i; break; }
        if (hit < 0) { buf_add(buf, len, cap, p, 1); p++; continue; }
        buf_add(buf, len, cap, vals[hit], strlen(vals[hit]));
        p += strlen(keys[hit]);
    }
}

static const char *user_name(void)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name && *pw->pw_name) return pw->pw_name;
    /* Mosquitto only uses `user` to drop root; for others any name does. */
    return geteuid() == 0 ? "root" : "nobody";
}

/* @CERTS@ needs a folder to stand for; say which line wants one. */
static int check_certs(const char *text, const char *what, const char *certs, char *err)
{
    const char *hit = text ? strstr(text, "@CERTS@") : NULL;
    if (!hit) return KIT_OK;
    if (certs && *certs) return KIT_OK;
    int lineno = 1;
    for (const char *p = text; p < hit; p++)
        if (*p == '\n') lineno++;
    return kit_seterr(err, KIT_EINVAL, "broker %s, line %d: uses @CERTS@ but no certs folder was given "
                      "(broker.start{certs = tls.certs()})", what, lineno);
}

/* Fill text line by line; for a unix-socket broker its TCP listener
 * line becomes the socket's (one line for one, so mosquitto's "Error
 * found at ...:N" still names the template's line N). */
static void fill_lines(broker_t *b, char **buf, size_t *len, size_t *cap, const char *text,
                       const char *port, const char *user, const char *certs)
{
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char *line = kit_xmalloc(n + 1);
        memcpy(line, p, n);
        line[n] = '\0';
        if (b->sock && is_port_listener(line, n)) {
            buf_add(buf, len, cap, "listener 0 ", 11);
            buf_add(buf, len, cap, b->sock, strlen(b->sock));
        } else {
            fill_into(buf, len, cap, line, port, b->dir, user, b->log_path, certs);
        }
        free(line);
        if (eol) buf_add(buf, len, cap, "\n", 1);
        p = eol ? eol + 1 : p + n;
    }
}

static int write_config(broker_t *b, const char *tmpl, const char *extra, const char *certs, char *err)
{
    char port[16];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    snprintf(port, sizeof port, "%d", b->port);
    const char *user = user_name();
    fill_lines(b, &buf, &len, &cap, tmpl, port, user, certs);
    if (len == 0 || buf[len - 1] != '\n') buf_add(&buf, &len, &cap, "\n", 1);
    if (extra && *extra) {
        fill_lines(b, &buf, &len, &cap, extra, port, user, certs);
        if (buf[len - 1] != '\n') buf_add(&buf, &len, &cap, "\n", 1);
    }
    /* What mosquitto reads, checked again: only 127.0.0.1 or exactly
     * our socket, and for a unix-socket broker no TCP listener at all. */
    int listeners = 0;
    int rc = check_listeners(buf, b->name, b->sock, &listeners, err);
    if (rc == KIT_OK && b->sock && listeners != 1)
        rc = kit_seterr(err, KIT_EINVAL, "broker %s: a unix-socket broker needs exactly one listener "
                        "(the template's `listener @PORT@ 127.0.0.1`), not %d", b->name, listeners);
    if (rc == KIT_OK) rc = kit_write_file_atomic(b->conf_path, buf, len, 0600, err);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- */
/* Finding the binary                                                */

static char *find_mosquitto(const char *want, char *err)
{
    static const char *const hint =
        "mosquitto is not installed; install it with: apt-get install -y mosquitto";
    if (!want || !*want) want = getenv("MQLAB_MOSQUITTO");
    if (want && *want && strchr(want, '/')) {
        if (access(want, X_OK) == 0) return kit_strdup(want);
        kit_seterr(err, KIT_EMISSING, "%s (no executable at %s)", hint, want);
        return NULL;
    }
    const char *name = (want && *want) ? want : "mosquitto";
    /* /usr/sbin is often missing from a user's PATH, and that is where
     * Debian puts mosquitto. */
    const char *path = getenv("PATH");
    char *dirs = kit_strdup_printf("%s:/usr/sbin:/usr/local/sbin", path ? path : "");
    char *save = NULL, *found = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *cand = kit_strdup_printf("%s/%s", *d ? d : ".", name);
        if (access(cand, X_OK) == 0 && !kit_is_dir(cand)) found = cand;
        else free(cand);
    }
    free(dirs);
    if (!found) kit_seterr(err, KIT_EMISSING, "%s", hint);
    return found;
}

/* ---------------------------------------------------------------- */
/* The process                                                       */

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* What the child reports through its pipe when it cannot become
 * mosquitto: the step that failed and errno. */
enum { STEP_OUTPUT = 1, STEP_CHDIR, STEP_EXEC };

static _Noreturn void child_fail(int fd, int step)
{
    int msg[2] = { step, errno };
    if (write(fd, msg, sizeof msg) < 0) { /* the parent sees EOF and the exit */ }
    _exit(127);
}

/* The child side of spawn(). Only async-signal-safe calls here: the kit
 * may have threads. fd is the report pipe; it closes on exec. */
static _Noreturn void child(const broker_t *b, char *const argv[], pid_t parent, int fd)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    /* Out of the way of 0..2, in case the kit runs with one of them closed. */
    if (fd < 3 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) _exit(127);
    int out = open(b->stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int in = open("/dev/null", O_RDONLY);
    if (out < 0 || in < 0) child_fail(fd, STEP_OUTPUT);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (fd > 3) close_range(3, (unsigned)fd - 1, 0);
    close_range((unsigned)fd + 1, ~0U, 0);
    /* The kit ignores SIGPIPE and may block signals; an ignored
     * disposition survives exec, so give mosquitto the defaults. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) sigaction(s, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (chdir(b->dir) != 0) child_fail(fd, STEP_CHDIR);
    execv(b->exe, argv);
    child_fail(fd, STEP_EXEC);
}

static void forget(broker_t *b)
{
    cleanup_untrack_pgid(b->pid);
    b->pid = 0;
}

/* Kill the whole group while the leader is still an unreaped zombie or
 * alive, so its pid (= the pgid) cannot have been reused yet. */
static void kill_and_reap(broker_t *b)
{
    if (b->pid <= 0) return;
    kill(-b->pid, SIGKILL);
    while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR) {}
    forget(b);
}

/* Wait until the child has exec'd mosquitto: EOF on the report pipe (its
 * end closes on exec, or when the child exits, which the caller notices
 * next). Until then the child is a copy of the kit, and looking at its
 * descriptors would find the kit's own. */
static int wait_exec(broker_t *b, int fd, int64_t deadline, char *err)
{
    for (;;) {
        if (cleanup_interrupted())
            return kit_seterr(err, KIT_EINTR, "interrupted while mosquitto (%s) was starting", b->name);
        int64_t left = deadline - kit_now_ms();
        if (left <= 0)
            return kit_seterr(err, KIT_ETIMEOUT, "mosquitto (%s) was not even running within %d ms "
                              "(is the machine overloaded?)", b->name, b->ready_ms);
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int r = poll(&pf, 1, left < 20 ? (int)left : 20);
        if (r < 0 && errno != EINTR)
            return kit_seterr(err, KIT_ERR, "cannot start mosquitto (%s): poll: %s", b->name, strerror(errno));
        if (r <= 0) continue;
        int msg[2] = { 0, 0 };
        ssize_t n = read(fd, msg, sizeof msg);
        if (n == 0) return KIT_OK;
        if (n < 0 && errno == EINTR) continue;
        if (n != (ssize_t)sizeof msg)
            return kit_seterr(err, KIT_ERR, "cannot start mosquitto (%s): its start-up report was cut short",
                              b->name);
        const char *step = msg[0] == STEP_OUTPUT ? "cannot open its output file in"
                         : msg[0] == STEP_CHDIR ? "cannot enter its folder" : "cannot execute";
        return kit_seterr(err, KIT_ERR, "mosquitto (%s) %s %s: %s", b->name, step,
                          msg[0] == STEP_EXEC ? b->exe : b->dir, strerror(msg[1]));
    }
}

/* Fork and exec mosquitto in its own process group, tracked by cleanup;
 * returns once it has exec'd. On failure nothing is left running. */
static int spawn(broker_t *b, int64_t deadline, char *err)
{
    char *const argv[] = { b->exe, (char *)"-c", b->conf_path, NULL };
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return kit_seterr(err, KIT_ERR, "cannot start mosquitto: pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return kit_seterr(err, KIT_ERR, "cannot start mosquitto: fork: %s", strerror(e));
    }
    if (pid == 0) child(b, argv, parent, pfd[1]);
    close(pfd[1]);
    /* Both sides set the group so that a signal sent right after fork()
     * already reaches the child's group. */
    setpgid(pid, pid);
    b->pid = pid;
    int rc = KIT_OK;
    if (cleanup_track_pgid(pid) != 0)
        rc = kit_seterr(err, KIT_ERR, "cannot start mosquitto (%s): the kit cannot keep track of "
                        "one more process", b->name);
    if (rc == KIT_OK) rc = wait_exec(b, pfd[0], deadline, err);
    close(pfd[0]);
    if (rc != KIT_OK) kill_and_reap(b);
    return rc;
}

/* 1: exited (status filled, group killed, reaped, untracked), 0: alive. */
static int reap_if_dead(broker_t *b, int *status)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (b->pid <= 0) return 1;
    if (waitid(P_PID, (id_t)b->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
        if (errno == ECHILD) { forget(b); return 1; }
        return 0;
    }
    if (si.si_pid == 0) return 0;
    kill(-b->pid, SIGKILL);
    int st = 0;
    while (waitpid(b->pid, &st, 0) < 0 && errno == EINTR) {}
    if (status) *status = st;
    forget(b);
    return 1;
}

/* Does pid hold a LISTEN socket on port? Reads /proc: 1 yes, 0 no,
 * -1 cannot tell (it has exited, say): only 1 is proof. */
static int owns_listener(pid_t pid, int port)
{
    char path[64], line[512];
    unsigned long inodes[16];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%d/net/tcp", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned lport = 0, st = 0;
        unsigned long ino = 0;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
                   &lport, &st, &ino) != 3)
            continue;
        if ((int)lport == port && st == 0x0A && n < 16) inodes[n++] = ino;
    }
    fclose(f);
    if (n == 0) return 0;

    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        char link[PATH_MAX], target[128];
        if (de->d_name[0] == '.') continue;
        snprintf(link, sizeof link, "/proc/%d/fd/%s", (int)pid, de->d_name);
        ssize_t r = readlink(link, target, sizeof target - 1);
        if (r <= 0) continue;
        target[r] = '\0';
        unsigned long ino;
        if (sscanf(target, "socket:[%lu]", &ino) != 1) continue;
        for (int i = 0; i < n; i++)
            if (inodes[i] == ino) found = 1;
    }
    closedir(d);
    return found;
}

/* ---------------------------------------------------------------- */
/* Quoting mosquitto                                                 */

static char *read_from(const char *path, long off)
{
    char *all = kit_read_file(path, NULL, NULL);
    if (!all) return kit_strdup("");
    size_t n = strlen(all);
    if (off < 0 || (size_t)off > n) off = 0;
    char *tail = kit_strdup(all + off);
    free(all);
    return tail;
}

/* Skip the "1700000000: " stamp mosquitto puts before each line. */
static const char *unstamp(const char *s)
{
    if (*s >= '0' && *s <= '9') {
        const char *c = strstr(s, ": ");
        if (c && c - s < 48) return c + 2;
    }
    return s;
}

static int is_noise(const char *s)
{
    /* Printed on every start when the kit runs as root: says nothing
     * about why this start failed. */
    return *s == '\0' || strstr(s, "should not be run as root") != NULL;
}

/* The line that explains a failure: the last "Error:" line, plus the
 * "Error found at FILE:LINE" line when mosquitto gave one; otherwise the
 * last line that is not noise. */
static void explain(const char *text, char *out, size_t outlen)
{
    char *copy = kit_strdup(text), *save = NULL;
    const char *error = NULL, *where = NULL, *last = NULL;
    for (char *l = strtok_r(copy, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
        const char *s = unstamp(l);
        if (is_noise(s)) continue;
        last = s;
        if (strncmp(s, "Error found at", 14) == 0) where = s;
        else if (strstr(s, "Error")) error = s;
    }
    /* "Error found at /tmp/.../mosquitto.conf:12." names a file that is
     * about to be removed; the line number is what helps (it is also the
     * template's line, as filling never adds lines). */
    const char *colon = where ? strrchr(where, ':') : NULL;
    if (error && colon) snprintf(out, outlen, "%s (config line %d)", error, atoi(colon + 1));
    else if (error && where) snprintf(out, outlen, "%s (%s)", error, where);
    else if (error) snprintf(out, outlen, "%s", error);
    else if (last) snprintf(out, outlen, "%s", last);
    else snprintf(out, outlen, "mosquitto printed nothing");
    free(copy);
}

/* What mosquitto said since the offsets: its log file first, then its
 * stderr, where config errors go because the log is not open yet. */
static char *output_since(const broker_t *b, long log_off, long err_off)
{
    char *log = read_from(b->log_path, log_off);
    char *se = read_from(b->stderr_path, err_off);
    char *both = kit_strdup_printf("%s\n%s", log, se);
    free(log);
    free(se);
    return both;
}

/* ---------------------------------------------------------------- */
/* Start and wait                                                    */

/* The broker exited while starting: say why, in mosquitto's words. */
static int died(broker_t *b, int status, long log_off, long err_off, int *in_use, char *err)
{
    char why[KIT_ERRLEN / 2];
    char *said = output_since(b, log_off, err_off);
    explain(said, why, sizeof why);
    *in_use = strstr(said, "Address already in use") != NULL;
    free(said);
    if (WIFSIGNALED(status))
        return kit_seterr(err, KIT_ERR, "mosquitto (%s) was killed by signal %d on start: %s",
                          b->name, WTERMSIG(status), why);
    return kit_seterr(err, KIT_ERR, "mosquitto (%s) exited with status %d on start: %s",
                      b->name, WEXITSTATUS(status), why);
}

/* Does the broker's listener take connections? TCP: only a LISTEN
 * socket on the port that the exec'd mosquitto owns counts (a squatter's
 * would accept too). A unix socket in the private folder is ours. */
static int serves(broker_t *b)
{
    if (!b->sock)
        return owns_listener(b->pid, b->port) == 1 && kit_wait_port(b->port, 0) == KIT_OK;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", b->sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return 0;
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Has mosquitto logged "running" since log_off? Mosquitto answers on its
 * first listener before it has set up the others (and loaded their
 * keys): with several listeners it can still die after that. A template
 * that logs elsewhere never says "mosquitto version" in our file; it is
 * taken at its listener's word. The file is line-buffered, and mosquitto
 * logs its version before it opens any listener, so once serves() is
 * true that first line is already there. */
static int logged_running(const broker_t *b, long log_off)
{
    char *log = read_from(b->log_path, log_off);
    int here = strstr(log, "mosquitto version") != NULL;
    int running = here && strstr(log, " running") != NULL;
    free(log);
    return !here || running;
}

static const char *where(const broker_t *b, char *buf, size_t len)
{
    if (b->sock) snprintf(buf, len, "%s", b->sock);
    else snprintf(buf, len, "127.0.0.1:%d", b->port);
    return buf;
}

/* Start the process and wait until it is ready (see the top of the
 * file). On failure the process is gone (killed and reaped); the folder
 * is left to the caller. *in_use says mosquitto failed because the port
 * was taken. */
static int run_once(broker_t *b, int *in_use, char *err)
{
    char why[KIT_ERRLEN / 2], at[sizeof b->dir + 32];
    long log_off = file_size(b->log_path), err_off = file_size(b->stderr_path);
    int64_t deadline = kit_now_ms() + b->ready_ms;
    int rc, status = 0, listening = 0;
    *in_use = 0;

    /* A socket left by a killed run only refuses, but it must not be
     * there to be mistaken for anything. */
    if (b->sock) unlink(b->sock);
    rc = spawn(b, deadline, err);
    if (rc != KIT_OK) return rc;

    for (;;) {
        if (cleanup_interrupted()) {
            rc = kit_seterr(err, KIT_EINTR, "interrupted while mosquitto (%s) was starting", b->name);
            goto fail;
        }
        if (reap_if_dead(b, &status)) return died(b, status, log_off, err_off, in_use, err);
        if (!listening) listening = serves(b);
        if (listening && logged_running(b, log_off)) break;
        if (kit_now_ms() >= deadline) {
            char *said = output_since(b, log_off, err_off);
            explain(said, why, sizeof why);
            free(said);
            if (!listening)
                rc = kit_seterr(err, KIT_ETIMEOUT,
                                "mosquitto (%s) did not accept connections on %s within %d ms; "
                                "its last line: %s", b->name, where(b, at, sizeof at), b->ready_ms, why);
            else
                rc = kit_seterr(err, KIT_ETIMEOUT,
                                "mosquitto (%s) accepted connections on %s but did not log \"running\" "
                                "within %d ms; its last line: %s", b->name, where(b, at, sizeof at),
                                b->ready_ms, why);
            goto fail;
        }
        kit_sleep_ms(POLL_MS);
    }

    /* Mosquitto carries on after some config problems it reports on
     * stderr (a log file it cannot open, for one); such a broker is not
     * the one the lab asked for. */
    {
        char *se = read_from(b->stderr_path, err_off);
        int bad = strstr(se, "Error") != NULL;
        if (bad) explain(se, why, sizeof why);
        free(se);
        if (bad) {
            rc = kit_seterr(err, KIT_ERR, "mosquitto (%s) reported an error on start: %s", b->name, why);
            goto fail;
        }
    }
    return KIT_OK;

fail:
    kill_and_reap(b);
    return rc;
}

static void broker_release(broker_t *b)
{
    if (!b) return;
    free(b->name);
    free(b->exe);
    free(b->conf_path);
    free(b->log_path);
    free(b->stderr_path);
    free(b->certs);
    free(b->sock);
    free(b);
}

/* How many lines of text are exactly `listener @PORT@ 127.0.0.1`. */
static int port_listeners(const char *text)
{
    int n = 0;
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        n += is_port_listener(p, len);
        p = eol ? eol + 1 : NULL;
    }
    return n;
}

/* The listener rule for the template and the extra lines; with
 * unix_socket, the template's one TCP line must be the only listener,
 * as it is the one that becomes the socket. */
static int check_template(const broker_opts_t *o, const char *what, char *err)
{
    int in_tmpl = 0, in_extra = 0;
    int rc = check_listeners(o->tmpl, what, NULL, &in_tmpl, err);
    if (rc != KIT_OK) return rc;
    if (in_tmpl == 0)
        return kit_seterr(err, KIT_EINVAL, "broker %s has no `listener @PORT@ 127.0.0.1` line", what);
    if (o->extra && (rc = check_listeners(o->extra, "extra lines", NULL, &in_extra, err)) != KIT_OK)
        return rc;
    if (!o->unix_socket) return KIT_OK;
    if (o->port)
        return kit_seterr(err, KIT_EINVAL, "broker %s: a unix-socket broker has no TCP port "
                          "(port must be 0, not %d)", what, o->port);
    if (in_tmpl + in_extra != 1)
        return kit_seterr(err, KIT_EINVAL, "broker %s: a unix-socket broker has one listener, the "
                          "template's `listener @PORT@ 127.0.0.1` (the kit turns it into the socket); "
                          "this one has %d", what, in_tmpl + in_extra);
    if (port_listeners(o->tmpl) != 1)
        return kit_seterr(err, KIT_EINVAL, "broker %s: a unix-socket broker needs its listener written "
                          "`listener @PORT@ 127.0.0.1` (the kit turns that line into the socket)", what);
    return KIT_OK;
}

int broker_start(broker_t **out, const broker_opts_t *o, char *err)
{
    if (!out || !o || !o->tmpl)
        return kit_seterr(err, KIT_EINVAL, "broker_start: no template");
    *out = NULL;
    if (o->port < 0 || o->port > 65535 || o->ready_ms < 0)
        return kit_seterr(err, KIT_EINVAL, "broker_start: bad port %d or ready_ms %d", o->port, o->ready_ms);

    const char *name = (o->name && *o->name) ? o->name : "custom";
    char what[128];
    snprintf(what, sizeof what, "template %s", name);
    int rc = check_template(o, what, err);
    if (rc != KIT_OK) return rc;
    if ((rc = check_certs(o->tmpl, what, o->certs, err)) != KIT_OK) return rc;
    if ((rc = check_certs(o->extra, "extra lines", o->certs, err)) != KIT_OK) return rc;
    if (o->certs && *o->certs && !kit_is_dir(o->certs))
        return kit_seterr(err, KIT_ENOENT, "broker %s: the certs folder %s does not exist "
                          "(tls.certs() makes it)", what, o->certs);

    char *exe = find_mosquitto(o->mosquitto, err);
    if (!exe) return KIT_EMISSING;

    broker_t *b = kit_xmalloc(sizeof *b);
    memset(b, 0, sizeof *b);
    b->name = kit_strdup(name);
    b->exe = exe;
    b->ready_ms = o->ready_ms > 0 ? o->ready_ms : DEFAULT_READY_MS;
    rc = kit_mkdtemp(b->dir, sizeof b->dir, "mqlab-broker", err);
    if (rc != KIT_OK) { b->dir[0] = '\0'; goto cleanup; }
    b->conf_path = kit_strdup_printf("%s/mosquitto.conf", b->dir);
    b->log_path = kit_strdup_printf("%s/mosquitto.log", b->dir);
    b->stderr_path = kit_strdup_printf("%s/mosquitto.stderr", b->dir);
    if (o->certs && *o->certs) b->certs = kit_strdup(o->certs);
    if (o->unix_socket) {
        b->sock = kit_strdup_printf("%s/" SOCK_NAME, b->dir);
        if (strlen(b->sock) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
            rc = kit_seterr(err, KIT_EINVAL, "broker %s: the socket path %s is too long for a unix "
                            "socket (at most %zu bytes); set TMPDIR to a shorter folder", name, b->sock,
                            sizeof ((struct sockaddr_un *)0)->sun_path - 1);
            goto cleanup;
        }
    }

    /* A port picked by kit_free_port() can be taken by someone else
     * before mosquitto binds it; one retry on a fresh port makes that
     * race practically vanish. A port the caller chose is never changed,
     * and a unix socket cannot be taken. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int in_use = 0;
        b->port = o->port;
        if (!b->sock && !b->port && !(b->port = kit_free_port(err))) { rc = KIT_ERR; goto cleanup; }
        rc = write_config(b, o->tmpl, o->extra, o->certs, err);
        if (rc != KIT_OK) goto cleanup;
        rc = run_once(b, &in_use, err);
        if (rc == KIT_OK) break;
        if (!(rc == KIT_ERR && in_use && !b->sock && !o->port && attempt == 0)) goto cleanup;
        /* The failed attempt is not part of this broker's story. */
        unlink(b->log_path);
        unlink(b->stderr_path);
    }
    if (err) err[0] = '\0';   /* a retried first attempt is no news */
    *out = b;
    return KIT_OK;

cleanup:
    kill_and_reap(b);
    if (b->dir[0]) kit_rmdtemp(b->dir);
    broker_release(b);
    return rc;
}

int broker_start_profile(broker_t **out, const char *profile, const broker_opts_t *o, char *err)
{
    if (!out || !profile || !*profile)
        return kit_seterr(err, KIT_EINVAL, "broker_start_profile: no profile");
    char name[128], certs[512];
    snprintf(name, sizeof name, "broker-config/%s.conf", profile);
    const embedded_file_t *f = embedded_find(name);
    if (!f) return kit_seterr(err, KIT_ENOENT, "no broker profile '%s'", profile);
    broker_opts_t po = { 0 };
    if (o) po = *o;
    po.tmpl = (const char *)f->data;
    if (!po.name) po.name = profile;
    /* A TLS profile: the kit's PKI, made now if it is missing. */
    if (!po.certs && strstr(po.tmpl, "@CERTS@")) {
        int rc = tls_default_certs_dir(certs, sizeof certs, err);
        if (rc == KIT_OK) rc = tls_pki_ensure(certs, NULL, NULL, err);
        if (rc != KIT_OK) return rc;
        po.certs = certs;
    }
    return broker_start(out, &po, err);
}

/* ---------------------------------------------------------------- */
/* Accessors and lifecycle                                           */

int broker_port(const broker_t *b) { return b ? b->port : 0; }
const char *broker_socket(const broker_t *b) { return b ? b->sock : NULL; }
const char *broker_dir(const broker_t *b) { return b ? b->dir : NULL; }
const char *broker_log_path(const broker_t *b) { return b ? b->log_path : NULL; }
const char *broker_certs(const broker_t *b) { return b ? b->certs : NULL; }
int broker_pid(const broker_t *b) { return b ? (int)b->pid : 0; }

int broker_running(broker_t *b)
{
    if (!b || b->pid <= 0) return 0;
    return !reap_if_dead(b, NULL);
}

int broker_stop(broker_t *b)
{
    if (!b) return KIT_EINVAL;
    if (b->pid <= 0) return KIT_OK;
    kill(-b->pid, SIGTERM);
    int64_t end = kit_now_ms() + STOP_GRACE_MS;
    /* A Ctrl-C cuts the grace period short: SIGKILL at once. */
    while (!reap_if_dead(b, NULL) && kit_now_ms() < end)
        if (kit_sleep_ms(POLL_MS) == KIT_EINTR) break;
    kill_and_reap(b);
    return KIT_OK;
}

int broker_kill(broker_t *b)
{
    if (!b) return KIT_EINVAL;
    kill_and_reap(b);
    return KIT_OK;
}

int broker_restart(broker_t *b, char *err)
{
    if (!b) return kit_seterr(err, KIT_EINVAL, "broker_restart: no broker");
    broker_stop(b);
    int in_use = 0;
    return run_once(b, &in_use, err);
}

char *broker_log(const broker_t *b, size_t *len)
{
    if (!b) return NULL;
    char *s = kit_read_file(b->log_path, len, NULL);
    if (s) return s;
    /* No log yet (or a template that logs elsewhere): an empty story. */
    if (len) *len = 0;
    return kit_strdup("");
}

void broker_free(broker_t *b)
{
    if (!b) return;
    broker_stop(b);
    if (b->dir[0]) kit_rmdtemp(b->dir);
    broker_release(b);
}
