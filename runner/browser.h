/*
 * browser.h - headless Chromium driven over the DevTools protocol (CDP),
 * for labs that grade a web page (a student's dashboard.html that talks
 * MQTT over WebSocket with mqtt.js).
 *
 * The protocol runs over a pipe, never a TCP port: Chromium is started
 * with --remote-debugging-pipe and reads commands on its fd 3, writes
 * replies and events on its fd 4, each message one JSON text ended by a
 * NUL byte. No other process on the machine can drive it.
 *
 * One browser, one page: at start the kit attaches (Target.attachToTarget,
 * flatten) to the page target Chromium opens with about:blank, and every
 * page command carries that sessionId.
 *
 * Where Chromium runs (browser_opts_t.sandbox):
 *   - BROWSER_SANDBOX_AUTO (the default): inside the kit's bubblewrap
 *     sandbox (sandbox.h) when sandboxes can run here, else outside it.
 *   - BROWSER_SANDBOX_REQUIRE: inside, or KIT_EMISSING.
 *   - BROWSER_SANDBOX_NEVER: outside.
 * Inside, Chromium sees the system read-only, its own temporary folder
 * (profile, HOME, the two FIFOs that carry fd 3 and 4 across bwrap)
 * writable, a private /tmp, its own PID namespace, and the caller's
 * network namespace, so pages reach the kit's servers on 127.0.0.1. As
 * root it runs as the sandbox uid, with a process (thread) limit.
 * Outside, it runs as the kit's own user in its own session, with the
 * temporary profile and HOME, and nothing else confines it: a page can
 * then read what that user can read (through file:// URLs it is given)
 * and the page is as trusted as any program the user runs.
 * Either way Chromium's own sandbox is off (--no-sandbox): as root it
 * refuses to start with it, and inside bwrap (no user namespaces left,
 * no setuid helper) it could not set it up.
 *
 * Limits: no RLIMIT_AS (V8 reserves far more address space than it
 * uses, and Chromium aborts under the kit's program memory limit); the
 * JS heap is capped with --js-flags=--max-old-space-size, and every call
 * has a timeout. Pages reach only 127.0.0.1: every other host goes to a
 * proxy address where nothing listens (loopback bypasses proxies).
 *
 * Cleanup: browser_stop (and, on Ctrl-C or any exit, cleanup.h) ends
 * Chromium's whole process tree and removes the temporary folder.
 */
#ifndef MQLAB_BROWSER_H
#define MQLAB_BROWSER_H

#include <stddef.h>
#include <sys/types.h>

#define BROWSER_DEFAULT_CHROMIUM "/usr/bin/chromium"
#define BROWSER_INSTALL_HINT "install it with: sudo apt-get install chromium"
/* The largest message the kit accepts from Chromium (a screenshot of a
 * big page is a few MB of base64). */
#define BROWSER_MAX_MESSAGE (64u * 1024 * 1024)
/* Console messages kept (the oldest are dropped past that). */
#define BROWSER_MAX_CONSOLE 500

enum { BROWSER_SANDBOX_AUTO = 0, BROWSER_SANDBOX_REQUIRE = 1, BROWSER_SANDBOX_NEVER = 2 };

typedef struct {
    const char *chromium;   /* NULL: $MQLAB_CHROMIUM, else BROWSER_DEFAULT_CHROMIUM */
    int timeout_ms;         /* start (until the page answers); 0: 30000 */
    int sandbox;            /* BROWSER_SANDBOX_* */
    int width, height;      /* the window; 0: 1280 x 800 */
    long js_heap_mb;        /* V8's old space; 0: 512 */
    long nproc;             /* in the sandbox as root: RLIMIT_NPROC (threads
                               count); 0: 1024 */
    const char *const *ro;  /* host paths the page may read (bound read-only
                               in the sandbox; NULL-terminated, may be NULL) */
} browser_opts_t;

typedef struct browser browser_t;

typedef struct {
    char *level;            /* "log", "info", "warning", "error", "debug",
                               "exception" (an uncaught error) or what
                               Chromium's log says ("verbose", ...) */
    char *text;             /* the message as one line of text */
    char *source;           /* "console", "exception" or "log" (Log domain:
                               a failed request, a CSP violation ...) */
} browser_msg_t;

/* Start Chromium and attach to its page. KIT_OK with *out; KIT_EMISSING
 * when Chromium is not installed (err says how to install it) or the
 * sandbox was required and cannot run here; KIT_ETIMEOUT; KIT_EINTR on
 * Ctrl-C; KIT_ERR with what Chromium said. */
int browser_start(const browser_opts_t *opts, browser_t **out, char *err);

/* Navigate and wait for the load event. KIT_OK; KIT_ERR when the
 * navigation failed (err has Chromium's errorText, e.g.
 * net::ERR_CONNECTION_REFUSED); KIT_ETIMEOUT; KIT_EINTR; KIT_ENOTCONN
 * when Chromium is gone. */
int browser_goto(browser_t *b, const char *url, int timeout_ms, char *err);

/* Evaluate a JS expression in the page (awaiting a promise it returns)
 * and hand back its value, serialized by Chromium (returnByValue), as
 * JSON text: *json (malloc'd; "null" for undefined). A thrown error is
 * KIT_ERR with its description in err. Synchronous code still running
 * after timeout_ms is terminated. */
int browser_eval(browser_t *b, const char *js, int timeout_ms, char **json, char *err);

/* A PNG of the viewport, written atomically (temporary file + rename). */
int browser_screenshot(browser_t *b, const char *path, int timeout_ms, char *err);

/* Read what Chromium has sent so far without waiting (events: console
 * messages, exceptions), so the console is current. */
int browser_pump(browser_t *b, char *err);

/* The console messages and uncaught exceptions of the page so far, oldest
 * first (*n of them). The array belongs to b and stays valid until the
 * next call on b. browser_console_clear forgets them. */
const browser_msg_t *browser_console(browser_t *b, size_t *n);
void browser_console_clear(browser_t *b);
/* Messages dropped because more than BROWSER_MAX_CONSOLE came. */
size_t browser_console_dropped(const browser_t *b);

/* 1 when Chromium runs inside the kit's sandbox. */
int browser_sandboxed(const browser_t *b);
/* The temporary folder (profile, logs); gone after browser_stop. */
const char *browser_dir(const browser_t *b);
/* Chromium's pid on the host (outside: its process group and session;
 * inside: the sandboxed program's host pid). */
pid_t browser_pid(const browser_t *b);

/* End Chromium's whole process tree, remove the temporary folder, free.
 * NULL is fine. */
void browser_stop(browser_t *b);

/* The Chromium to use: path (if not NULL), else $MQLAB_CHROMIUM, else
 * BROWSER_DEFAULT_CHROMIUM. KIT_OK with out filled when it is an
 * executable file, else KIT_EMISSING with how to install it. */
int browser_find_chromium(const char *path, char *out, size_t len, char *err);

/* mqtt.js's browser bundle (node_modules/mqtt/dist/mqtt.min.js), which
 * `make deps` installs with npm into build/npm: $MQLAB_MQTTJS if set
 * (it must exist), else build/npm/... beside the binary (or beside one
 * of its two parent folders, for builds in build/<name>/), else
 * /usr/share/mqlab/npm/node_modules/mqtt/dist/mqtt.min.js. KIT_OK with
 * out filled, else KIT_EMISSING saying how to install it. */
int browser_find_mqttjs(char *out, size_t len, char *err);
#define BROWSER_MQTTJS_REL "npm/node_modules/mqtt/dist/mqtt.min.js"
#define BROWSER_MQTTJS_SYSTEM "/usr/share/mqlab/" BROWSER_MQTTJS_REL

#endif
