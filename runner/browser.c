/*
 * browser.c - headless Chromium over the DevTools protocol on a pipe. See
 * browser.h for what runs where and why.
 *
 * Outside the sandbox the pipe is two plain pipes dup'ed onto Chromium's
 * fd 3 and 4. bwrap's launcher closes every fd it does not know, so
 * inside the sandbox the pipe is two FIFOs in Chromium's temporary
 * folder instead: a shell inside opens them on fd 3 and 4 and execs
 * Chromium. The kit opens both FIFOs read-write before the sandbox
 * starts, so neither side's open ever blocks; Chromium's death is then
 * seen through sbx_poll, not an end of file.
 */
#include "browser.h"
#include "cleanup.h"
#include "json.h"
#include "sandbox.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct browser {
    pid_t reaper;            /* outside: the reaper (its session) */
    pid_t pid;               /* outside: Chromium (its process group) */
    sbx_proc_t *sbx;         /* inside: the sandbox */
    int exited;              /* Chromium is known to be gone */
    int fd_cmd, fd_out;      /* we write commands, read replies and events */
    char dir[PATH_MAX];      /* the temporary folder */
    char *rbuf;              /* what was read and not yet split at a NUL */
    size_t rlen, rcap;
    int next_id;
    char session[128];       /* the page's CDP session */
    int loaded;              /* Page.loadEventFired seen since the last reset */
    browser_msg_t *msgs;
    size_t nmsgs, dropped;
};

/* ---- finding things --------------------------------------------------- */

int browser_find_chromium(const char *path, char *out, size_t len, char *err)
{
    const char *want = path && *path ? path : getenv("MQLAB_CHROMIUM");
    if (!want || !*want) want = BROWSER_DEFAULT_CHROMIUM;
    if (access(want, X_OK) != 0 || kit_is_dir(want))
        return kit_seterr(err, KIT_EMISSING, "Chromium is not installed (no executable at %s); %s",
                          want, BROWSER_INSTALL_HINT);
    snprintf(out, len, "%s", want);
    return KIT_OK;
}

int browser_find_mqttjs(char *out, size_t len, char *err)
{
    const char *env = getenv("MQLAB_MQTTJS");
    if (env && *env) {
        if (access(env, R_OK) == 0) { snprintf(out, len, "%s", env); return KIT_OK; }
        return kit_seterr(err, KIT_EMISSING, "MQLAB_MQTTJS is %s, which cannot be read", env);
    }
    /* Beside the binary: ./mqlab has build/npm next to it; a build in
     * build/<name>/mqlab finds it one or two folders up. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", kit_self_exe() ? kit_self_exe() : "");
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(dir, '/');
        if (!slash) break;
        *slash = '\0';
        char cand[PATH_MAX + 64];
        snprintf(cand, sizeof cand, "%s/build/%s", dir, BROWSER_MQTTJS_REL);
        if (access(cand, R_OK) == 0 && strlen(cand) < len) { snprintf(out, len, "%s", cand); return KIT_OK; }
        snprintf(cand, sizeof cand, "%s/%s", dir, BROWSER_MQTTJS_REL);
        if (access(cand, R_OK) == 0 && strlen(cand) < len) { snprintf(out, len, "%s", cand); return KIT_OK; }
    }
    if (access(BROWSER_MQTTJS_SYSTEM, R_OK) == 0) {
        snprintf(out, len, "%s", BROWSER_MQTTJS_SYSTEM);
        return KIT_OK;
    }
    return kit_seterr(err, KIT_EMISSING,
                      "mqtt.js (the npm package mqtt) is not installed; run `make deps` in mqlab's "
                      "source folder (it needs npm: sudo apt-get install nodejs npm), or set MQLAB_MQTTJS "
                      "to a mqtt.min.js");
}

/* ---- console ---------------------------------------------------------- */

static void msg_free(browser_msg_t *m)
{
    free(m->level);
    free(m->text);
    free(m->source);
}

static void add_msg(browser_t *b, const char *source, const char *level, const char *text)
{
    if (b->nmsgs == BROWSER_MAX_CONSOLE) {
        msg_free(&b->msgs[0]);
        memmove(b->msgs, b->msgs + 1, (b->nmsgs - 1) * sizeof *b->msgs);
        b->nmsgs--;
        b->dropped++;
    }
    if (!b->msgs) b->msgs = kit_xmalloc(BROWSER_MAX_CONSOLE * sizeof *b->msgs);
    browser_msg_t *m = &b->msgs[b->nmsgs++];
    m->source = kit_strdup(source);
    m->level = kit_strdup(level ? level : "log");
    /* A page could log megabytes; one message is kept to 4 KB. */
    size_t n = strlen(text ? text : "");
    if (n > 4096) n = 4096;
    m->text = kit_xmalloc(n + 1);
    memcpy(m->text, text ? text : "", n);
    m->text[n] = '\0';
}

/* A console argument as text: its value for a primitive, else the
 * description Chromium gives ("Object", "Error: boom\n    at ..."). */
static void remote_object_text(json_buf_t *o, const json_t *ro)
{
    const json_t *v = json_get(ro, "value");
    const char *type = json_get_str(ro, "type");
    if (v && v->type == JSON_STRING) json_buf_add(o, v->str, v->len);
    else if (v && (v->type != JSON_OBJECT && v->type != JSON_ARRAY)) json_buf_value(o, v);
    else if (json_get_str(ro, "description")) json_buf_puts(o, json_get_str(ro, "description"));
    else if (json_get_str(ro, "unserializableValue")) json_buf_puts(o, json_get_str(ro, "unserializableValue"));
    else json_buf_puts(o, type ? type : "?");
}

static void on_event(browser_t *b, const char *method, const json_t *params)
{
    if (strcmp(method, "Page.loadEventFired") == 0) {
        b->loaded = 1;
    } else if (strcmp(method, "Runtime.consoleAPICalled") == 0) {
        json_buf_t t = { 0 };
        const json_t *args = json_get(params, "args");
        for (const json_t *a = args && args->type == JSON_ARRAY ? args->child : NULL; a; a = a->next) {
            if (a != args->child) json_buf_add(&t, " ", 1);
            remote_object_text(&t, a);
        }
        const char *type = json_get_str(params, "type");
        /* console.warn is "warning" in CDP; the rest keep their names. */
        add_msg(b, "console", type ? type : "log", t.oom || !t.data ? "" : t.data);
        json_buf_free(&t);
    } else if (strcmp(method, "Runtime.exceptionThrown") == 0) {
        const json_t *d = json_get(params, "exceptionDetails");
        const char *desc = json_get_str(json_get(d, "exception"), "description");
        json_buf_t t = { 0 };
        json_buf_puts(&t, desc ? desc : json_get_str(d, "text") ? json_get_str(d, "text") : "exception");
        const char *url = json_get_str(d, "url");
        if (url && *url)
            json_buf_printf(&t, " (%s:%d)", url, (int)json_get_num(d, "lineNumber", -1) + 1);
        add_msg(b, "exception", "exception", t.oom || !t.data ? "" : t.data);
        json_buf_free(&t);
    } else if (strcmp(method, "Log.entryAdded") == 0) {
        const json_t *e = json_get(params, "entry");
        const char *text = json_get_str(e, "text"), *url = json_get_str(e, "url");
        json_buf_t t = { 0 };
        json_buf_puts(&t, text ? text : "");
        if (url && *url) json_buf_printf(&t, " (%s)", url);
        add_msg(b, "log", json_get_str(e, "level"), t.oom || !t.data ? "" : t.data);
        json_buf_free(&t);
    }
}

/* ---- the pipe --------------------------------------------------------- */

static int chromium_alive(browser_t *b)
{
    if (b->exited) return 0;
    int st;
    if (b->sbx) {
        if (sbx_poll(b->sbx, 0, &st) != 0) b->exited = 1;
    } else if (b->pid > 0) {
        /* Chromium is the reaper's child, not ours: ask whether it is
         * still there (a zombie is gone). */
        char state;
        unsigned long long f[KIT_STAT_FIELDS];
        if (kit_proc_stat(b->pid, &state, f) != 0 || state == 'Z' || (pid_t)f[4] != b->reaper) b->exited = 1;
    }
    return !b->exited;
}

static int send_raw(browser_t *b, const char *msg, size_t len, char *err)
{
    /* The message and its NUL. The pipe may be full while Chromium is
     * busy: poll for room, never block forever. */
    size_t off = 0, total = len + 1;
    int64_t end = kit_now_ms() + 10000;
    while (off < total) {
        const char *p = off < len ? msg + off : "";
        size_t n = off < len ? len - off : 1;
        ssize_t w = write(b->fd_cmd, p, n);
        if (w > 0) { off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN) return kit_seterr(err, KIT_ENOTCONN, "Chromium's pipe: %s", strerror(errno));
        if (!chromium_alive(b)) return kit_seterr(err, KIT_ENOTCONN, "Chromium has exited");
        if (kit_now_ms() > end) return kit_seterr(err, KIT_ETIMEOUT, "Chromium does not read its commands");
        struct pollfd pfd = { b->fd_cmd, POLLOUT, 0 };
        poll(&pfd, 1, 50);
    }
    return KIT_OK;
}

/* Send method(params) on the page's session (or the browser's, when
 * page is 0). Returns the command's id (> 0) or -code. */
static int send_cmd(browser_t *b, int page, const char *method, const char *params, char *err)
{
    json_buf_t m = { 0 };
    int id = ++b->next_id;
    json_buf_printf(&m, "{\"id\":%d,\"method\":", id);
    json_buf_string(&m, method, strlen(method));
    json_buf_puts(&m, ",\"params\":");
    json_buf_puts(&m, params ? params : "{}");
    if (page && b->session[0]) {
        json_buf_puts(&m, ",\"sessionId\":");
        json_buf_string(&m, b->session, strlen(b->session));
    }
    json_buf_puts(&m, "}");
    int rc = m.oom ? kit_seterr(err, KIT_ERR, "out of memory") : send_raw(b, m.data, m.len, err);
    json_buf_free(&m);
    return rc == KIT_OK ? id : -rc;
}

/* Take one whole message out of rbuf, if there is one. */
static json_t *split_message(browser_t *b, int *bad, char *err)
{
    char *nul = b->rlen ? memchr(b->rbuf, '\0', b->rlen) : NULL;
    if (!nul) return NULL;
    size_t n = (size_t)(nul - b->rbuf);
    json_t *v = json_parse(b->rbuf, n, err);
    memmove(b->rbuf, nul + 1, b->rlen - n - 1);
    b->rlen -= n + 1;
    if (!v) *bad = 1;
    return v;
}

/* Read until the reply to id arrives (handling events on the way), or
 * only what is there now when id is 0. *reply gets the reply (the caller
 * frees it). Deadline: end (ms, kit_now_ms). */
static int wait_reply(browser_t *b, int id, int64_t end, json_t **reply, char *err)
{
    for (;;) {
        int bad = 0;
        char perr[KIT_ERRLEN];
        json_t *v;
        while ((v = split_message(b, &bad, perr)) || bad) {
            if (bad) {
                /* Chromium speaks well-formed JSON; a message that is not
                 * is skipped rather than trusted. */
                bad = 0;
                continue;
            }
            const json_t *idv = json_get(v, "id");
            const char *method = json_get_str(v, "method");
            if (id > 0 && idv && idv->type == JSON_NUMBER && (int)idv->num == id) {
                *reply = v;
                return KIT_OK;
            }
            if (method) {
                const char *sid = json_get_str(v, "sessionId");
                if (!sid || strcmp(sid, b->session) == 0) on_event(b, method, json_get(v, "params"));
                if (strcmp(method, "Inspector.detached") == 0 || strcmp(method, "Target.detachedFromTarget") == 0) {
                    json_free(v);
                    return kit_seterr(err, KIT_ENOTCONN, "the page is gone (the kit was detached from it)");
                }
            }
            json_free(v);
        }
        if (cleanup_interrupted()) return kit_seterr(err, KIT_EINTR, "interrupted");
        int64_t left = end - kit_now_ms();
        if (id == 0) left = 0;
        struct pollfd pfd = { b->fd_out, POLLIN, 0 };
        int pr = poll(&pfd, 1, left <= 0 ? 0 : left > 50 ? 50 : (int)left);
        if (pr > 0) {
            if (b->rcap - b->rlen < 65536) {
                if (b->rcap >= BROWSER_MAX_MESSAGE + 65536)
                    return kit_seterr(err, KIT_ERR, "Chromium sent a message of more than %u MB",
                                      BROWSER_MAX_MESSAGE >> 20);
                size_t cap = b->rcap ? b->rcap * 2 : 262144;
                char *nb = realloc(b->rbuf, cap);
                if (!nb) return kit_seterr(err, KIT_ERR, "out of memory reading Chromium's replies");
                b->rbuf = nb;
                b->rcap = cap;
            }
            ssize_t r = read(b->fd_out, b->rbuf + b->rlen, b->rcap - b->rlen);
            if (r > 0) { b->rlen += (size_t)r; continue; }
            if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                b->exited = !b->sbx ? 1 : b->exited;
                return kit_seterr(err, KIT_ENOTCONN, "Chromium has exited");
            }
            continue;
        }
        if (!chromium_alive(b)) return kit_seterr(err, KIT_ENOTCONN, "Chromium has exited");
        if (id == 0) return KIT_OK;
        if (kit_now_ms() >= end) return kit_seterr(err, KIT_ETIMEOUT, "Chromium did not answer in time");
    }
}

/* Send a command and wait for its reply. A reply with an "error" is
 * KIT_ERR with its message; *result (may be NULL) gets the whole reply
 * otherwise, for the caller to free. */
static int call(browser_t *b, int page, const char *method, const char *params, int timeout_ms,
                json_t **result, char *err)
{
    int64_t end = kit_now_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
    int id = send_cmd(b, page, method, params, err);
    if (id < 0) return -id;
    json_t *reply = NULL;
    int rc = wait_reply(b, id, end, &reply, err);
    if (rc != KIT_OK) {
        if (rc == KIT_ETIMEOUT) kit_seterr(err, rc, "Chromium did not answer %s within %d ms", method, timeout_ms);
        return rc;
    }
    const json_t *e = json_get(reply, "error");
    if (e) {
        const char *msg = json_get_str(e, "message");
        kit_seterr(err, KIT_ERR, "%s: %s", method, msg ? msg : "error");
        json_free(reply);
        return KIT_ERR;
    }
    if (result) *result = reply;
    else json_free(reply);
    return KIT_OK;
}

/* ---- starting and stopping --------------------------------------------- */

typedef struct { char **v; size_t n, cap; } args_t;

static void arg_add(args_t *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 32;
        a->v = kit_xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = kit_strdup(s);
    a->v[a->n] = NULL;
}

static void args_free(args_t *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
}

/* Chromium's command line. profile and home are paths as Chromium sees
 * them. */
static void chromium_args(args_t *a, const char *exe, const browser_opts_t *o, const char *profile)
{
    char buf[PATH_MAX + 64];
    arg_add(a, exe);
    arg_add(a, "--headless=new");
    /* The protocol on fd 3 and 4, never a TCP port. */
    arg_add(a, "--remote-debugging-pipe");
    /* Chromium's sandbox cannot run as root nor inside bwrap; see browser.h. */
    arg_add(a, "--no-sandbox");
    snprintf(buf, sizeof buf, "--user-data-dir=%s", profile);
    arg_add(a, buf);
    arg_add(a, "--no-first-run");
    arg_add(a, "--no-default-browser-check");
    arg_add(a, "--disable-gpu");
    /* /dev/shm is small in containers and absent in the sandbox's /dev:
     * shared memory goes to TMPDIR. */
    arg_add(a, "--disable-dev-shm-usage");
    /* Quiet and offline: no update checks, sync, crash uploads, field
     * trials, translation or safe-browsing lookups. */
    arg_add(a, "--disable-background-networking");
    arg_add(a, "--disable-component-update");
    arg_add(a, "--disable-sync");
    arg_add(a, "--disable-extensions");
    arg_add(a, "--disable-default-apps");
    arg_add(a, "--disable-breakpad");
    arg_add(a, "--disable-domain-reliability");
    arg_add(a, "--disable-client-side-phishing-detection");
    arg_add(a, "--disable-features=Translate,MediaRouter,OptimizationHints,InterestFeedContentSuggestions,CertificateTransparencyComponentUpdater");
    arg_add(a, "--metrics-recording-only");
    arg_add(a, "--no-pings");
    arg_add(a, "--no-service-autorun");
    arg_add(a, "--password-store=basic");
    arg_add(a, "--use-mock-keychain");
    arg_add(a, "--mute-audio");
    arg_add(a, "--hide-scrollbars");
    arg_add(a, "--force-color-profile=srgb");
    arg_add(a, "--log-level=3");
    /* Pages reach 127.0.0.1 only: every other host goes through a proxy
     * on a port where nothing listens (loopback is never proxied). */
    arg_add(a, "--proxy-server=http://127.0.0.1:9");
    snprintf(buf, sizeof buf, "--window-size=%d,%d", o->width > 0 ? o->width : 1280,
             o->height > 0 ? o->height : 800);
    arg_add(a, buf);
    snprintf(buf, sizeof buf, "--js-flags=--max-old-space-size=%ld", o->js_heap_mb > 0 ? o->js_heap_mb : 512);
    arg_add(a, buf);
    arg_add(a, "about:blank");
}

static void add_env(args_t *e, const char *name, const char *val)
{
    char buf[PATH_MAX + 128];
    snprintf(buf, sizeof buf, "%s=%s", name, val);
    arg_add(e, buf);
}

/* Chromium's environment: its own HOME, caches and TMPDIR in the
 * temporary folder (fontconfig and Chromium write there), nothing of the
 * kit's. */
static void chromium_env(args_t *e, const char *home, const char *tmp)
{
    char buf[PATH_MAX + 64];
    add_env(e, "PATH", "/usr/local/bin:/usr/bin:/bin");
    add_env(e, "HOME", home);
    snprintf(buf, sizeof buf, "%s/.cache", home);
    add_env(e, "XDG_CACHE_HOME", buf);
    snprintf(buf, sizeof buf, "%s/.config", home);
    add_env(e, "XDG_CONFIG_HOME", buf);
    add_env(e, "TMPDIR", tmp);
    add_env(e, "LANG", "C.UTF-8");
    /* No D-Bus here: say so, instead of Chromium trying and logging. */
    add_env(e, "DBUS_SESSION_BUS_ADDRESS", "disabled:");
    const char *tz = getenv("TZ");
    if (tz) add_env(e, "TZ", tz);
}

/* Every process of the tree rooted at root, or in session sid: pids
 * into out (at most max). Read from /proc. */
static size_t tree_pids(pid_t root, pid_t *out, size_t max)
{
    /* Two passes over /proc: a parent may be listed after its child. */
    pid_t pids[4096], parents[4096];
    size_t n = 0, found = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 4096) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        unsigned long long f[KIT_STAT_FIELDS];
        char state;
        if (kit_proc_stat((int)pid, &state, f) != 0) continue;
        if ((pid_t)pid == root || (pid_t)f[6] == root) {   /* field 6: the session */
            if (found < max) out[found++] = (pid_t)pid;
            continue;
        }
        pids[n] = (pid_t)pid;
        parents[n++] = (pid_t)f[4];
    }
    closedir(d);
    /* Descendants that left the session (setsid): follow parents. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            if (!pids[i]) continue;
            for (size_t j = 0; j < found; j++)
                if (parents[i] == out[j]) {
                    if (found < max) out[found++] = pids[i];
                    pids[i] = 0;
                    changed = 1;
                    break;
                }
        }
    }
    return found;
}

/* Outside the sandbox: SIGKILL Chromium's group, then whatever else of
 * the reaper's session or tree is alive (a child in a group of its own),
 * until none is; the reaper reaps them and exits. */
static void kill_tree(browser_t *b)
{
    pid_t t[1024];
    int64_t end = kit_now_ms() + 5000;
    if (b->pid > 0) kill(-b->pid, SIGKILL);
    for (;;) {
        size_t n = tree_pids(b->reaper, t, 1024);
        size_t live = 0;
        for (size_t i = 0; i < n; i++) {
            char state;
            unsigned long long f[KIT_STAT_FIELDS];
            if (t[i] == b->reaper || kit_proc_stat(t[i], &state, f) != 0 || state == 'Z') continue;
            kill(t[i], SIGKILL);
            live++;
        }
        int st;
        if (waitpid(b->reaper, &st, WNOHANG) == b->reaper) return;
        if (kit_now_ms() > end) break;
        usleep(live ? 10000 : 20000);
    }
    /* The reaper is stuck (it should not be): end it too. */
    kill(b->reaper, SIGKILL);
    waitpid(b->reaper, NULL, 0);
}

void browser_stop(browser_t *b)
{
    if (!b) return;
    if (b->sbx) {
        /* The launcher's death ends the PID namespace: everything in it. */
        sbx_end(b->sbx);
    } else if (b->reaper > 0) {
        kill_tree(b);
        if (b->pid > 0) cleanup_untrack_pgid(b->pid);
    }
    if (b->fd_cmd >= 0) close(b->fd_cmd);
    if (b->fd_out >= 0) close(b->fd_out);
    if (b->dir[0]) kit_rmdtemp(b->dir);
    for (size_t i = 0; i < b->nmsgs; i++) msg_free(&b->msgs[i]);
    free(b->msgs);
    free(b->rbuf);
    free(b);
}

/* Outside the sandbox the kit forks a small reaper (a copy of itself, no
 * exec) in a session of its own; the reaper is a child subreaper and
 * forks Chromium in a process group of its own. Chromium's processes
 * that outlive their parent when it is killed are reparented to the
 * reaper, which reaps them, instead of staying zombies of PID 1 (here,
 * and in containers, PID 1 does not always reap). The reaper exits when
 * it has no child left. If the kit dies without stopping the browser
 * (kill -9), the reaper sees its parent change and kills Chromium's
 * group. System calls only in the reaper: the kit may run threads. */
static void reaper_main(pid_t kit, int report, const int *cmd, const int *out, int logfd,
                        char *const *argv, char *const *envp)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    pid_t c = fork();
    if (c < 0) _exit(127);
    if (c == 0) {
        setpgid(0, 0);
        int nul = open("/dev/null", O_RDONLY);
        /* Out of the low numbers first, so no dup2 below overwrites one
         * still to be copied. */
        int ci = fcntl(cmd[0], F_DUPFD, 10), o = fcntl(out[1], F_DUPFD, 10), l = fcntl(logfd, F_DUPFD, 10);
        if (nul < 0 || ci < 0 || o < 0 || l < 0) _exit(127);
        if (dup2(nul, 0) < 0 || dup2(l, 1) < 0 || dup2(l, 2) < 0 || dup2(ci, 3) < 0 || dup2(o, 4) < 0) _exit(127);
        kit_close_from(5);
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    setpgid(c, c);   /* also here, so the group exists before the kit hears of it */
    ssize_t w = write(report, &c, sizeof c);
    (void)w;
    kit_close_from(0);
    int killed = 0;
    for (;;) {
        int st;
        pid_t r = waitpid(-1, &st, WNOHANG);
        if (r < 0 && errno == ECHILD) _exit(0);
        if (r > 0) continue;
        if (!killed && getppid() != kit) {
            kill(-c, SIGKILL);
            killed = 1;
        }
        struct timespec ts = { 0, 50 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static int spawn_outside(browser_t *b, char *const *argv, char *const *envp, int logfd, char *err)
{
    int cmd[2], out[2], rep[2];
    if (pipe2(cmd, O_CLOEXEC) != 0) return kit_seterr(err, KIT_ERR, "pipe: %s", strerror(errno));
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(cmd[0]); close(cmd[1]);
        return kit_seterr(err, KIT_ERR, "pipe: %s", strerror(errno));
    }
    if (pipe2(rep, O_CLOEXEC) != 0) {
        close(cmd[0]); close(cmd[1]); close(out[0]); close(out[1]);
        return kit_seterr(err, KIT_ERR, "pipe: %s", strerror(errno));
    }
    pid_t kit = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(cmd[0]); close(cmd[1]); close(out[0]); close(out[1]); close(rep[0]); close(rep[1]);
        return kit_seterr(err, KIT_ERR, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        setsid();
        struct rlimit core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &core);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_IGN);    /* Ctrl-C is the kit's to handle */
        signal(SIGTERM, SIG_DFL);
        reaper_main(kit, rep[1], cmd, out, logfd, argv, envp);
        _exit(127);
    }
    close(cmd[0]);
    close(out[1]);
    close(rep[1]);
    b->reaper = pid;
    b->fd_cmd = cmd[1];
    b->fd_out = out[0];
    /* Chromium's pid, from the reaper (it has just forked it). */
    pid_t c = 0;
    struct pollfd pfd = { rep[0], POLLIN, 0 };
    ssize_t r = poll(&pfd, 1, 5000) == 1 ? read(rep[0], &c, sizeof c) : -1;
    close(rep[0]);
    if (r != (ssize_t)sizeof c || c <= 0)
        return kit_seterr(err, KIT_ERR, "cannot start Chromium (its reaper did not say its pid)");
    b->pid = c;
    if (cleanup_track_pgid(c) != 0) return kit_seterr(err, KIT_ERR, "cannot track Chromium's process group");
    return KIT_OK;
}

/* Inside the sandbox: the FIFOs in the folder carry fd 3 and 4. */
static int spawn_inside(browser_t *b, const browser_opts_t *o, char *const *argv, char *const *envp,
                        int logfd, char *err)
{
    char in[PATH_MAX + 8], out[PATH_MAX + 8];
    snprintf(in, sizeof in, "%s/cdp-in", b->dir);
    snprintf(out, sizeof out, "%s/cdp-out", b->dir);
    if (mkfifo(in, 0600) != 0 || mkfifo(out, 0600) != 0)
        return kit_seterr(err, KIT_ERR, "mkfifo in %s: %s", b->dir, strerror(errno));
    /* Read-write: the open does not wait for the other side. */
    b->fd_cmd = open(in, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    b->fd_out = open(out, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (b->fd_cmd < 0 || b->fd_out < 0) return kit_seterr(err, KIT_ERR, "cannot open %s: %s", in, strerror(errno));
    int rc = sbx_chown_tree(b->dir, err);
    if (rc != KIT_OK) return rc;

    /* sh opens the FIFOs as fd 3 and 4, then becomes Chromium. */
    args_t sh = { 0 };
    arg_add(&sh, "/bin/sh");
    arg_add(&sh, "-c");
    arg_add(&sh, "exec \"$0\" \"$@\" 3<cdp-in 4>cdp-out");
    for (char *const *x = argv; *x; x++) arg_add(&sh, *x);
    sbx_limits_t lim = { 0 };
    /* No mem_mb (RLIMIT_AS kills V8). RLIMIT_NPROC counts threads, and
     * Chromium runs a few hundred of them across its processes. */
    lim.nproc = o->nproc > 0 ? o->nproc : 1024;
    lim.nofile = 8192;
    lim.fsize_mb = 1024;
    sbx_spec_t s = { 0 };
    s.dir = b->dir;
    s.ro = o->ro;
    s.argv = sh.v;
    s.envp = envp;
    s.out = logfd;
    s.err = logfd;
    s.lim = &lim;
    rc = sbx_start(&b->sbx, &s, err);
    args_free(&sh);
    return rc;
}

/* The last lines of Chromium's log, for an error message. */
static void log_tail(const char *dir, char *out, size_t len)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/chromium.log", dir);
    size_t n;
    char *t = kit_read_file(path, &n, NULL);
    out[0] = '\0';
    if (!t) return;
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == ' ')) t[--n] = '\0';
    size_t start = n > 300 ? n - 300 : 0;
    snprintf(out, len, "%s", t + start);
    free(t);
}

int browser_start(const browser_opts_t *opts, browser_t **out, char *err)
{
    browser_opts_t o = { 0 };
    if (opts) o = *opts;
    *out = NULL;
    char exe[PATH_MAX];
    int rc = browser_find_chromium(o.chromium, exe, sizeof exe, err);
    if (rc != KIT_OK) return rc;

    int inside = 0;
    if (o.sandbox != BROWSER_SANDBOX_NEVER) {
        char why[KIT_ERRLEN];
        inside = sbx_available(why, sizeof why);
        if (!inside && o.sandbox == BROWSER_SANDBOX_REQUIRE)
            return kit_seterr(err, KIT_EMISSING, "the sandbox cannot run here, so Chromium cannot either: %s", why);
    }

    browser_t *b = calloc(1, sizeof *b);
    if (!b) return kit_seterr(err, KIT_ERR, "out of memory");
    b->fd_cmd = b->fd_out = -1;
    if ((rc = kit_mkdtemp(b->dir, sizeof b->dir, "browser", err)) != KIT_OK) {
        b->dir[0] = '\0';
        browser_stop(b);
        return rc;
    }
    char home[PATH_MAX + 16], tmp[PATH_MAX + 16], profile[PATH_MAX + 16], logp[PATH_MAX + 16];
    snprintf(home, sizeof home, "%s/home", b->dir);
    snprintf(tmp, sizeof tmp, "%s/tmp", b->dir);
    snprintf(profile, sizeof profile, "%s/profile", b->dir);
    snprintf(logp, sizeof logp, "%s/chromium.log", b->dir);
    if (kit_mkdir_p(home, 0700, err) != KIT_OK || kit_mkdir_p(tmp, 0700, err) != KIT_OK ||
        kit_mkdir_p(profile, 0700, err) != KIT_OK) {
        browser_stop(b);
        return KIT_ERR;
    }
    int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        kit_seterr(err, KIT_ERR, "cannot create %s: %s", logp, strerror(errno));
        browser_stop(b);
        return KIT_ERR;
    }
    args_t argv = { 0 }, envp = { 0 };
    chromium_args(&argv, exe, &o, profile);
    /* Inside, the sandbox's own /tmp (a private tmpfs): Chromium puts a
     * unix socket in TMPDIR, and a path under a deep TMPDIR passes the
     * 107 bytes of sun_path ("Socket path too long": the integration
     * tests' TMPDIR did). */
    chromium_env(&envp, home, inside ? "/tmp" : tmp);
    rc = inside ? spawn_inside(b, &o, argv.v, envp.v, logfd, err)
                : spawn_outside(b, argv.v, envp.v, logfd, err);
    close(logfd);
    args_free(&argv);
    args_free(&envp);
    if (rc != KIT_OK) { browser_stop(b); return rc; }

    /* Ready when the browser answers; then the page Chromium opened. */
    int timeout = o.timeout_ms > 0 ? o.timeout_ms : 30000;
    int64_t end = kit_now_ms() + timeout;
    json_t *r = NULL;
    rc = call(b, 0, "Target.getTargets", NULL, timeout, &r, err);
    const char *target = NULL;
    if (rc == KIT_OK) {
        const json_t *infos = json_get(json_get(r, "result"), "targetInfos");
        for (const json_t *t = infos ? infos->child : NULL; t && !target; t = t->next) {
            const char *type = json_get_str(t, "type");
            if (type && strcmp(type, "page") == 0) target = json_get_str(t, "targetId");
        }
        if (!target) rc = kit_seterr(err, KIT_ERR, "Chromium opened no page");
    }
    if (rc == KIT_OK) {
        json_buf_t p = { 0 };
        json_buf_puts(&p, "{\"targetId\":");
        json_buf_string(&p, target, strlen(target));
        json_buf_puts(&p, ",\"flatten\":true}");
        json_t *a = NULL;
        int left = (int)(end - kit_now_ms());
        rc = p.oom ? kit_seterr(err, KIT_ERR, "out of memory")
                   : call(b, 0, "Target.attachToTarget", p.data, left > 1000 ? left : 1000, &a, err);
        json_buf_free(&p);
        const char *sid = rc == KIT_OK ? json_get_str(json_get(a, "result"), "sessionId") : NULL;
        if (rc == KIT_OK && (!sid || strlen(sid) >= sizeof b->session))
            rc = kit_seterr(err, KIT_ERR, "Chromium gave no session for its page");
        else if (rc == KIT_OK)
            snprintf(b->session, sizeof b->session, "%s", sid);
        json_free(a);
    }
    json_free(r);
    static const char *const domains[] = { "Page.enable", "Runtime.enable", "Log.enable" };
    for (size_t i = 0; rc == KIT_OK && i < sizeof domains / sizeof domains[0]; i++) {
        int left = (int)(end - kit_now_ms());
        rc = call(b, 1, domains[i], NULL, left > 1000 ? left : 1000, NULL, err);
    }
    if (rc != KIT_OK) {
        if (rc != KIT_EINTR) {
            char tail[400];
            log_tail(b->dir, tail, sizeof tail);
            char msg[KIT_ERRLEN];
            snprintf(msg, sizeof msg, "%s", err ? err : "");
            kit_seterr(err, rc, "Chromium (%s%s) did not start: %s%s%s", exe,
                       inside ? ", in the sandbox" : "", msg, tail[0] ? "; its log ends with: " : "", tail);
        }
        browser_stop(b);
        return rc;
    }
    *out = b;
    return KIT_OK;
}

/* ---- page commands ----------------------------------------------------- */

int browser_pump(browser_t *b, char *err)
{
    json_t *none = NULL;
    int rc = wait_reply(b, 0, kit_now_ms(), &none, err);
    json_free(none);
    return rc;
}

int browser_goto(browser_t *b, const char *url, int timeout_ms, char *err)
{
    if (timeout_ms <= 0) timeout_ms = 30000;
    int64_t end = kit_now_ms() + timeout_ms;
    json_buf_t p = { 0 };
    json_buf_puts(&p, "{\"url\":");
    json_buf_string(&p, url, strlen(url));
    json_buf_puts(&p, "}");
    if (p.oom) { json_buf_free(&p); return kit_seterr(err, KIT_ERR, "out of memory"); }
    b->loaded = 0;
    json_t *r = NULL;
    int rc = call(b, 1, "Page.navigate", p.data, timeout_ms, &r, err);
    json_buf_free(&p);
    if (rc != KIT_OK) return rc;
    const char *failed = json_get_str(json_get(r, "result"), "errorText");
    if (failed && *failed) {
        kit_seterr(err, KIT_ERR, "cannot load %s: %s", url, failed);
        json_free(r);
        return KIT_ERR;
    }
    json_free(r);
    while (!b->loaded) {
        json_t *none = NULL;
        /* Events only (id 0 reads what is there): wait in small slices. */
        if (kit_now_ms() >= end)
            return kit_seterr(err, KIT_ETIMEOUT, "%s did not finish loading within %d ms", url, timeout_ms);
        struct pollfd pfd = { b->fd_out, POLLIN, 0 };
        poll(&pfd, 1, 50);
        rc = wait_reply(b, 0, kit_now_ms(), &none, err);
        json_free(none);
        if (rc != KIT_OK) return rc;
    }
    return KIT_OK;
}

int browser_eval(browser_t *b, const char *js, int timeout_ms, char **json, char *err)
{
    *json = NULL;
    if (timeout_ms <= 0) timeout_ms = 10000;
    json_buf_t p = { 0 };
    json_buf_puts(&p, "{\"expression\":");
    json_buf_string(&p, js, strlen(js));
    /* timeout: Chromium terminates synchronous code that runs longer. */
    json_buf_printf(&p, ",\"returnByValue\":true,\"awaitPromise\":true,\"timeout\":%d}", timeout_ms);
    if (p.oom) { json_buf_free(&p); return kit_seterr(err, KIT_ERR, "out of memory"); }
    json_t *r = NULL;
    /* A little longer than the script's own timeout, so that Chromium's
     * answer (terminated) arrives rather than ours. */
    int64_t t0 = kit_now_ms();
    int rc = call(b, 1, "Runtime.evaluate", p.data, timeout_ms + 2000, &r, err);
    json_buf_free(&p);
    /* Chromium reports terminated code as an "Internal error". */
    if (rc == KIT_ERR && kit_now_ms() - t0 >= timeout_ms)
        return kit_seterr(err, KIT_ETIMEOUT, "the expression ran longer than %d ms and was stopped", timeout_ms);
    if (rc != KIT_OK) return rc;
    const json_t *res = json_get(r, "result");
    const json_t *exc = json_get(res, "exceptionDetails");
    if (exc) {
        const char *desc = json_get_str(json_get(exc, "exception"), "description");
        const char *text = json_get_str(exc, "text");
        kit_seterr(err, KIT_ERR, "%s", desc ? desc : text ? text : "the expression threw");
        json_free(r);
        return KIT_ERR;
    }
    const json_t *ro = json_get(res, "result");
    const json_t *val = json_get(ro, "value");
    json_buf_t o = { 0 };
    if (val) json_buf_value(&o, val);
    else json_buf_puts(&o, "null");   /* undefined, or a value JSON cannot hold (NaN, a bigint) */
    json_free(r);
    if (o.oom) { json_buf_free(&o); return kit_seterr(err, KIT_ERR, "out of memory"); }
    *json = o.data;
    return KIT_OK;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decode base64 (padding optional, nothing else allowed). out must hold
 * len * 3 / 4 + 3 bytes. Returns the length or -1. */
static long b64decode(const char *in, size_t len, unsigned char *out)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '=') break;
        int v = b64val((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)n;
}

int browser_screenshot(browser_t *b, const char *path, int timeout_ms, char *err)
{
    json_t *r = NULL;
    int rc = call(b, 1, "Page.captureScreenshot", "{\"format\":\"png\"}",
                  timeout_ms > 0 ? timeout_ms : 20000, &r, err);
    if (rc != KIT_OK) return rc;
    const json_t *data = json_get(json_get(r, "result"), "data");
    if (!data || data->type != JSON_STRING) {
        json_free(r);
        return kit_seterr(err, KIT_ERR, "Chromium sent no screenshot");
    }
    unsigned char *png = malloc(data->len / 4 * 3 + 3);
    long n = png ? b64decode(data->str, data->len, png) : -1;
    json_free(r);
    if (n < 8) {
        free(png);
        return kit_seterr(err, KIT_ERR, "Chromium's screenshot is not base64 PNG data");
    }
    rc = kit_write_file_atomic(path, png, (size_t)n, 0644, err);
    free(png);
    return rc;
}

const browser_msg_t *browser_console(browser_t *b, size_t *n)
{
    *n = b->nmsgs;
    return b->msgs;
}

void browser_console_clear(browser_t *b)
{
    for (size_t i = 0; i < b->nmsgs; i++) msg_free(&b->msgs[i]);
    b->nmsgs = 0;
    b->dropped = 0;
}

size_t browser_console_dropped(const browser_t *b) { return b->dropped; }
int browser_sandboxed(const browser_t *b) { return b->sbx != NULL; }
const char *browser_dir(const browser_t *b) { return b->dir; }
pid_t browser_pid(const browser_t *b) { return b->sbx ? sbx_pid(b->sbx) : b->pid; }
