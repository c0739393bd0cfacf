/*
 * browser_test.c - headless Chromium over the DevTools pipe: start, load
 * a page, evaluate, screenshot, console, and a stop that leaves no
 * process and no folder behind; outside the sandbox and, where it can
 * run, inside. mqtt.js's browser bundle loads in a file:// page.
 *
 * Skipped, with the reason, when Chromium (or, for its test, mqtt.js)
 * is not installed.
 */
#include <CUnit/Basic.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "browser.h"
#include "cleanup.h"
#include "sandbox.h"
#include "util.h"
#include "testutil.h"

static int have_chromium(void)
{
    char path[PATH_MAX], err[KIT_ERRLEN];
    if (browser_find_chromium(NULL, path, sizeof path, err) == KIT_OK) return 1;
    printf("\n  skipped: %s\n", err);
    return 0;
}

/* Every process in the session of pid (Chromium's tree: outside, the
 * reaper's session; inside, the sandboxed program's). */
static size_t session_pids(pid_t pid, pid_t *out, size_t max)
{
    unsigned long long f[KIT_STAT_FIELDS];
    char state;
    if (kit_proc_stat(pid, &state, f) != 0) return 0;
    pid_t sid = (pid_t)f[6];
    size_t n = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        char *end;
        long p = strtol(de->d_name, &end, 10);
        if (*end || p <= 0) continue;
        if (kit_proc_stat((int)p, &state, f) == 0 && (pid_t)f[6] == sid && state != 'Z') out[n++] = (pid_t)p;
    }
    closedir(d);
    return n;
}

static int start(int mode, browser_t **b)
{
    browser_opts_t o = { 0 };
    o.sandbox = mode;
    o.timeout_ms = 60000;
    char err[KIT_ERRLEN];
    int rc = browser_start(&o, b, err);
    if (rc != KIT_OK) fprintf(stderr, "\n  browser_start: %s\n", err);
    return rc;
}

static void run_basic(int mode)
{
    browser_t *b = NULL;
    char err[KIT_ERRLEN], dir[PATH_MAX];
    CU_ASSERT_EQUAL_FATAL(start(mode, &b), KIT_OK);
    CU_ASSERT_EQUAL(browser_sandboxed(b), mode == BROWSER_SANDBOX_REQUIRE);
    snprintf(dir, sizeof dir, "%s", browser_dir(b));
    CU_ASSERT(kit_is_dir(dir));

    int rc = browser_goto(b, "data:text/html,<title>Hello mqlab</title><p>hi</p>"
                             "<script>console.log('ready', 42); console.error('oops');"
                             "setTimeout(function () { throw new Error('late boom'); }, 0);</script>", 20000, err);
    if (rc != KIT_OK) fprintf(stderr, "\n  goto: %s\n", err);
    CU_ASSERT_EQUAL(rc, KIT_OK);

    char *json = NULL;
    CU_ASSERT_EQUAL(browser_eval(b, "document.title", 10000, &json, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(json ? json : "", "\"Hello mqlab\"");
    free(json);
    CU_ASSERT_EQUAL(browser_eval(b, "({n: 1, s: 'x\"y', a: [true, null], o: {k: 2.5}})", 10000, &json, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(json ? json : "", "{\"n\":1,\"s\":\"x\\\"y\",\"a\":[true,null],\"o\":{\"k\":2.5}}");
    free(json);
    CU_ASSERT_EQUAL(browser_eval(b, "new Promise(r => setTimeout(() => r('later'), 50))", 10000, &json, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(json ? json : "", "\"later\"");
    free(json);
    CU_ASSERT_EQUAL(browser_eval(b, "undefined", 10000, &json, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(json ? json : "", "null");
    free(json);
    json = NULL;
    CU_ASSERT_EQUAL(browser_eval(b, "throw new Error('nope')", 10000, &json, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(json);
    CU_ASSERT(strstr(err, "nope") != NULL);
    /* A page stuck in a loop is stopped, and the browser still answers. */
    CU_ASSERT_EQUAL(browser_eval(b, "for (;;) {}", 500, &json, err), KIT_ETIMEOUT);
    CU_ASSERT_EQUAL(browser_eval(b, "6 * 7", 10000, &json, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(json ? json : "", "42");
    free(json);

    /* The screenshot: a PNG, by its signature. */
    char real[PATH_MAX];
    snprintf(real, sizeof real, "/tmp/mqlab-browser-test-%d-%d.png", (int)getpid(), mode);
    rc = browser_screenshot(b, real, 20000, err);
    if (rc != KIT_OK) fprintf(stderr, "\n  screenshot: %s\n", err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    size_t len = 0;
    char *data = kit_read_file(real, &len, NULL);
    CU_ASSERT_PTR_NOT_NULL(data);
    CU_ASSERT(len > 100 && data && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0);
    free(data);
    unlink(real);

    /* The console: the log, the error and the uncaught exception. */
    browser_pump(b, err);
    size_t n;
    const browser_msg_t *m = browser_console(b, &n);
    int saw_log = 0, saw_err = 0, saw_exc = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].level, "log") == 0 && strcmp(m[i].text, "ready 42") == 0) saw_log = 1;
        if (strcmp(m[i].level, "error") == 0 && strcmp(m[i].text, "oops") == 0) saw_err = 1;
        if (strcmp(m[i].source, "exception") == 0 && strstr(m[i].text, "late boom")) saw_exc = 1;
    }
    CU_ASSERT(saw_log && saw_err && saw_exc);
    browser_console_clear(b);
    browser_console(b, &n);
    CU_ASSERT_EQUAL(n, 0);

    /* A host other than 127.0.0.1 is unreachable. */
    CU_ASSERT_EQUAL(browser_goto(b, "http://example.com/", 20000, err), KIT_ERR);

    /* Stop: nothing of the tree left, the folder gone. */
    pid_t t[512];
    size_t np = session_pids(browser_pid(b), t, 512);
    CU_ASSERT(np >= 2);   /* Chromium runs several processes */
    browser_stop(b);
    for (size_t i = 0; i < np; i++) {
        if (tu_pid_alive(t[i])) fprintf(stderr, "\n  pid %d is still alive\n", (int)t[i]);
        CU_ASSERT(!tu_pid_alive(t[i]));
    }
    CU_ASSERT(!kit_file_exists(dir));
}

static void TEST_outside(void)
{
    if (!have_chromium()) return;
    run_basic(BROWSER_SANDBOX_NEVER);
}

static void TEST_inside(void)
{
    if (!have_chromium()) return;
    char why[KIT_ERRLEN];
    if (!sbx_available(why, sizeof why)) {
        printf("\n  skipped, no sandbox here: %s\n", why);
        return;
    }
    run_basic(BROWSER_SANDBOX_REQUIRE);
}

static void TEST_missing_chromium(void)
{
    browser_opts_t o = { 0 };
    o.chromium = "/nonexistent/chromium";
    browser_t *b = NULL;
    char err[KIT_ERRLEN];
    CU_ASSERT_EQUAL(browser_start(&o, &b, err), KIT_EMISSING);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT(strstr(err, "apt-get install chromium") != NULL);
}

/* mqtt.js's browser bundle, from a file:// page beside it, defines
 * mqtt.connect. In the sandbox the folder is bound read-only. */
static void TEST_mqttjs_bundle(void)
{
    if (!have_chromium()) return;
    char js[PATH_MAX], err[KIT_ERRLEN];
    if (browser_find_mqttjs(js, sizeof js, err) != KIT_OK) {
        printf("\n  skipped: %s\n", err);
        return;
    }
    char dir[PATH_MAX];
    CU_ASSERT_EQUAL_FATAL(kit_mkdtemp(dir, sizeof dir, "browser-page", err), KIT_OK);
    chmod(dir, 0755);   /* the sandbox uid reads it */
    size_t len;
    char *bundle = kit_read_file(js, &len, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bundle);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/mqtt.min.js", dir);
    CU_ASSERT_EQUAL(kit_write_file_atomic(path, bundle, len, 0644, err), KIT_OK);
    free(bundle);
    snprintf(path, sizeof path, "%s/page.html", dir);
    const char *html = "<!doctype html><title>mqtt.js</title><script src=\"mqtt.min.js\"></script>";
    CU_ASSERT_EQUAL(kit_write_file_atomic(path, html, strlen(html), 0644, err), KIT_OK);

    const char *ro[] = { dir, NULL };
    browser_opts_t o = { 0 };
    o.timeout_ms = 60000;
    o.ro = ro;
    browser_t *b = NULL;
    int rc = browser_start(&o, &b, err);
    if (rc != KIT_OK) fprintf(stderr, "\n  browser_start: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, KIT_OK);
    char url[PATH_MAX + 64];
    snprintf(url, sizeof url, "file://%s", path);
    rc = browser_goto(b, url, 20000, err);
    if (rc != KIT_OK) fprintf(stderr, "\n  goto: %s\n", err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    char *json = NULL;
    rc = browser_eval(b, "typeof mqtt !== 'undefined' && typeof mqtt.connect === 'function'", 10000, &json, err);
    if (rc != KIT_OK) fprintf(stderr, "\n  eval: %s\n", err);
    CU_ASSERT_STRING_EQUAL(json ? json : "", "true");
    if (!json || strcmp(json, "true") != 0) {
        size_t n;
        const browser_msg_t *m = browser_console(b, &n);
        for (size_t i = 0; i < n; i++) fprintf(stderr, "\n  console %s: %s", m[i].level, m[i].text);
    }
    free(json);
    browser_stop(b);
    kit_rmdtemp(dir);
}

int init_browser_tests(void)
{
    CU_pSuite s = CU_add_suite("browser", NULL, NULL);
    if (!s) return -1;
    if (!CU_add_test(s, "Chromium missing is KIT_EMISSING with the fix", TEST_missing_chromium)
        || !CU_add_test(s, "outside the sandbox: page, eval, screenshot, console, stop", TEST_outside)
        || !CU_add_test(s, "inside the sandbox: the same", TEST_inside)
        || !CU_add_test(s, "mqtt.js's browser bundle defines mqtt.connect", TEST_mqttjs_bundle))
        return -1;
    return 0;
}
