/*
 * broker.c - private Mosquitto instances for the labs.
 *
 * Each broker lives in its own temporary folder (config, log, captured
 * stderr, persistence files) and its own process group, registered with
 * cleanup so that no exit path, Ctrl-C included, leaves one running.
 * Readiness means "the port accepts AND the listening socket belongs to
 * our mosquitto": a bare connect could reach whoever grabbed the port in
 * the gap between kit_free_port() and mosquitto's bind().
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
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_READY_MS 5000
#define STOP_GRACE_MS 2000
#define POLL_MS 10

struct broker {
    char *name;         /* profile name, for messages */
    char *exe;          /* resolved mosquitto binary */
    char dir[512];      /* private folder (cleanup's slots hold 512 bytes) */
    char *conf_path;
    char *log_path;
    char *stderr_path;
    char *certs;        /* the folder @CERTS@ became, or NULL */
    int port;
    int ready_ms;
    pid_t pid;          /* leader = pgid; 0 when not running */
};

/* ---------------------------------------------------------------- */
/* Template checks and filling                                       */

/* Mosquitto opens 0.0.0.0 for a listener without an address, and for
 * the legacy `port`/`bind_address` options, which would expose a lab
 * broker with allow_anonymous to the whole network. So every listener
 * must name 127.0.0.1 explicitly, and the legacy options are refused. */
static int check_listeners(const char *text, const char *what, int need_one, char *err)
{
    int listeners = 0, lineno = 0;
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

        char *tok[4] = { 0 }, *save = NULL;
        int ntok = 0;
        for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
            if (ntok < 4) tok[ntok] = t;
            ntok++;
        }
        if (ntok == 0 || tok[0][0] == '#') continue;
        if (strcmp(tok[0], "port") == 0 || strcmp(tok[0], "bind_address") == 0)
            return kit_seterr(err, KIT_EINVAL,
                              "broker %s, line %d: `%s` is not allowed (it can open 0.0.0.0); "
                              "write `listener @PORT@ 127.0.0.1` instead", what, lineno, tok[0]);
        if (strcmp(tok[0], "listener") != 0) continue;
        if (ntok != 3 || strcmp(tok[2], "127.0.0.1") != 0)
            return kit_seterr(err, KIT_EINVAL,
                              "broker %s, line %d: every listener must be bound to 127.0.0.1 "
                              "(`listener %s 127.0.0.1`), or mosquitto opens 0.0.0.0",
                              what, lineno, ntok > 1 ? tok[1] : "@PORT@");
        listeners++;
    }
    if (need_one && listeners == 0)
        return kit_seterr(err, KIT_EINVAL,
                          "broker %s has no `listener @PORT@ 127.0.0.1` line", what);
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

static int write_config(broker_t *b, const char *tmpl, const char *extra, const char *certs, char *err)
{
    char port[16];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    snprintf(port, sizeof port, "%d", b->port);
    const char *user = user_name();
    fill_into(&buf, &len, &cap, tmpl, port, b->dir, user, b->log_path, certs);
    if (len == 0 || buf[len - 1] != '\n') buf_add(&buf, &len, &cap, "\n", 1);
    if (extra && *extra) {
        fill_into(&buf, &len, &cap, extra, port, b->dir, user, b->log_path, certs);
        if (buf[len - 1] != '\n') buf_add(&buf, &len, &cap, "\n", 1);
    }
    int rc = kit_write_file_atomic(b->conf_path, buf, len, 0600, err);
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

static int spawn(broker_t *b, char *err)
{
    char *const argv[] = { b->exe, (char *)"-c", b->conf_path, NULL };
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return kit_seterr(err, KIT_ERR, "cannot start mosquitto: fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls here: the kit may have threads. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int out = open(b->stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (out < 0 || in < 0) _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        close_range(3, ~0U, 0);
        /* The kit ignores SIGPIPE and may block signals; an ignored
         * disposition survives exec, so give mosquitto the defaults. */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++) sigaction(s, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir(b->dir) != 0) _exit(127);
        execv(b->exe, argv);
        static const char msg[] = "Error: cannot execute mosquitto\n";
        if (write(2, msg, sizeof msg - 1) < 0) { /* nothing more to do */ }
        _exit(127);
    }
    /* Both sides set the group so that a signal sent right after fork()
     * already reaches the child's group. */
    setpgid(pid, pid);
    cleanup_track_pgid(pid);
    b->pid = pid;
    return KIT_OK;
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
 * -1 cannot tell (then the connect alone has to do). */
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

/* Start the process and wait until it serves our port. On failure the
 * process is gone (killed and reaped); the folder is left to the caller.
 * *in_use says mosquitto failed because the port was taken. */
static int run_once(broker_t *b, int *in_use, char *err)
{
    char why[KIT_ERRLEN / 2];
    long log_off = file_size(b->log_path), err_off = file_size(b->stderr_path);
    int rc, status = 0;
    *in_use = 0;

    rc = spawn(b, err);
    if (rc != KIT_OK) return rc;

    int64_t deadline = kit_now_ms() + b->ready_ms;
    for (;;) {
        if (cleanup_interrupted()) {
            rc = kit_seterr(err, KIT_EINTR, "interrupted while mosquitto (%s) was starting", b->name);
            goto fail;
        }
        if (reap_if_dead(b, &status)) return died(b, status, log_off, err_off, in_use, err);
        rc = kit_wait_port(b->port, 0);
        if (rc == KIT_EINTR) continue;
        if (rc == KIT_OK) {
            if (owns_listener(b->pid, b->port) != 0) break;
            if (kit_sleep_ms(POLL_MS) == KIT_EINTR) continue;
        }
        if (kit_now_ms() >= deadline) {
            char *said = output_since(b, log_off, err_off);
            explain(said, why, sizeof why);
            free(said);
            rc = kit_seterr(err, KIT_ETIMEOUT,
                            "mosquitto (%s) did not accept connections on 127.0.0.1:%d within %d ms; "
                            "its last line: %s", b->name, b->port, b->ready_ms, why);
            goto fail;
        }
    }

    /* Mosquitto answers on its first listener before it has set up the
     * others (and loaded their keys): with several listeners it can still
     * die now. It logs "running" once all of them are up, so when it logs
     * to our file, wait for that line (or its exit) before calling it ready. */
    for (;;) {
        char *log = read_from(b->log_path, log_off);
        int logs_here = strstr(log, "mosquitto version") != NULL;
        int running = logs_here && strstr(log, " running") != NULL;
        free(log);
        if (!logs_here || running) break;
        if (reap_if_dead(b, &status)) return died(b, status, log_off, err_off, in_use, err);
        if (kit_now_ms() >= deadline || cleanup_interrupted()) break;
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
    free(b);
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
    int rc = check_listeners(o->tmpl, what, 1, err);
    if (rc != KIT_OK) return rc;
    if (o->extra && (rc = check_listeners(o->extra, "extra lines", 0, err)) != KIT_OK) return rc;
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

    /* A port picked by kit_free_port() can be taken by someone else
     * before mosquitto binds it; one retry on a fresh port makes that
     * race practically vanish. A port the caller chose is never changed. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int in_use = 0;
        b->port = o->port;
        if (!b->port && !(b->port = kit_free_port(err))) { rc = KIT_ERR; goto cleanup; }
        rc = write_config(b, o->tmpl, o->extra, o->certs, err);
        if (rc != KIT_OK) goto cleanup;
        rc = run_once(b, &in_use, err);
        if (rc == KIT_OK) break;
        if (!(rc == KIT_ERR && in_use && !o->port && attempt == 0)) goto cleanup;
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
