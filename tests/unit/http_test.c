/*
 * http_test.c - the kit's HTTP server (http.c) seen from raw sockets:
 * files and their headers, the refusals (methods, paths that lead out of
 * the root, heads too large, garbage), keep-alive and pipelining, the
 * request log, and WebSocket push read frame by frame with the codec of
 * ws.h, so message boundaries are checked too.
 *
 * Every read has a generous deadline; "received nothing" is shown by
 * ordering (a sentinel sent afterwards is the first thing that arrives),
 * never by a short sleep.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <CUnit/CUnit.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "net.h"
#include "util.h"
#include "ws.h"

#define WAIT_MS 10000

static char base[128];          /* base/root is served; base/secret.txt is not */
static char root[160];

static const char INDEX[] = "<!doctype html><title>dash</title>\n";
static const char SECRET[] = "the secret outside the root\n";

static int put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int suite_init(void)
{
    snprintf(base, sizeof base, "/tmp/mqlab-httptest-XXXXXX");
    if (!mkdtemp(base)) return 1;
    snprintf(root, sizeof root, "%s/root", base);
    char sub[200], link[220];
    snprintf(sub, sizeof sub, "%s/sub", root);
    if (mkdir(root, 0700) != 0 || mkdir(sub, 0700) != 0) return 1;
    if (put(root, "index.html", INDEX) || put(root, "a.txt", "AAA\n") || put(root, "b.txt", "BB\n") ||
        put(root, "app.js", "console.log(1);\n") || put(sub, "c.css", "p{}\n") || put(base, "secret.txt", SECRET) ||
        put(base, "lib.js", "var lib = 1;\n"))
        return 1;
    /* A link inside that leads out, and one that stays in. */
    snprintf(link, sizeof link, "%s/out.txt", root);
    if (symlink("../secret.txt", link) != 0) return 1;
    snprintf(link, sizeof link, "%s/in.html", root);
    if (symlink("index.html", link) != 0) return 1;
    return 0;
}

static int suite_clean(void)
{
    kit_rm_rf(base);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Raw sockets                                                        */

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = { 0 };
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Read what comes within timeout_ms into buf (appending at *len):
 * 1 at the end of the stream, 0 at the deadline, -1 on an error (a
 * reset). Stops early once stop(buf, *len) says so. */
typedef int stop_fn(const char *buf, size_t len);

static int read_some(int fd, char *buf, size_t cap, size_t *len, int timeout_ms, stop_fn *stop)
{
    int64_t end = net_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        if (stop && stop(buf, *len)) return 0;
        int64_t left = (end - net_now_us()) / 1000;
        if (left <= 0) return 0;
        struct pollfd p = { fd, POLLIN, 0 };
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        if (*len == cap) return 0;
        ssize_t n = recv(fd, buf + *len, cap - *len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) return 1;
        *len += (size_t)n;
    }
}

typedef struct {
    int status;
    char ctype[128];
    long clen;                  /* -1: no Content-Length */
    int close;                  /* Connection: close */
    const char *body;           /* into the read buffer */
    size_t body_len;            /* bytes after the head (to the end read) */
    size_t head_len;
} resp;

/* Parse one response at buf; its whole length (head + Content-Length),
 * or 0 when it is not all there. */
static size_t parse_resp(const char *buf, size_t len, resp *r)
{
    ws_http h;
    memset(r, 0, sizeof *r);
    r->clen = -1;
    if (ws_http_parse(buf, len, 0, 1, &h) != WS_OK) return 0;
    r->status = h.code;
    size_t n;
    const char *v = ws_http_get(&h, "Content-Type", &n);
    if (v) snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)n, v);
    v = ws_http_get(&h, "Content-Length", &n);
    if (v) r->clen = strtol(v, NULL, 10);
    r->close = ws_http_has_token(&h, "Connection", "close");
    r->head_len = h.len;
    r->body = buf + h.len;
    r->body_len = len - h.len;
    if (r->clen >= 0 && r->body_len >= (size_t)r->clen) r->body_len = (size_t)r->clen;
    return r->clen >= 0 && len - h.len >= (size_t)r->clen ? h.len + (size_t)r->clen : 0;
}

/* Send req on a new connection and read to the end of the stream. The
 * bytes read (NUL-terminated, caller frees), *len; *eof 1 when the
 * server closed. */
static char *exchange(int port, const char *req, size_t reqlen, size_t *len, int *eof)
{
    int fd = tcp_connect(port);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(send_all(fd, req, reqlen) == 0);
    size_t cap = 1 << 20;
    char *buf = kit_xmalloc(cap + 1);
    *len = 0;
    int r = read_some(fd, buf, cap, len, WAIT_MS, NULL);
    if (eof) *eof = r == 1;
    buf[*len] = '\0';
    close(fd);
    return buf;
}

/* One request with Connection: close; the response parsed into *r (its
 * body points into the returned buffer, which the caller frees). */
static char *get(int port, const char *method, const char *path, resp *r)
{
    char req[1024];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", method, path);
    size_t len;
    int eof;
    char *buf = exchange(port, req, (size_t)n, &len, &eof);
    CU_ASSERT(eof);
    ws_http h;
    if (ws_http_parse(buf, len, 0, 1, &h) == WS_OK) {
        parse_resp(buf, len, r);
        /* Everything read is the answer: nothing after its body. */
        r->body_len = len - r->head_len;
    } else {
        memset(r, 0, sizeof *r);
    }
    return buf;
}

static int get_status(int port, const char *method, const char *path)
{
    resp r;
    free(get(port, method, path, &r));
    return r.status;
}

static http_server *start(void)
{
    char err[KIT_ERRLEN] = "";
    http_opts o = { .root = root };
    http_server *s = NULL;
    CU_ASSERT_EQUAL(http_start(&o, &s, err), KIT_OK);
    if (!s) fprintf(stderr, "http_start: %s\n", err);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT(http_port(s) > 0);
    return s;
}

/* ------------------------------------------------------------------ */
/* Files                                                              */

static void TEST_content_types(void)
{
    CU_ASSERT_STRING_EQUAL(http_content_type("index.html"), "text/html; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(http_content_type("/x/app.JS"), "text/javascript; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(http_content_type("a.css"), "text/css; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(http_content_type("a.json"), "application/json");
    CU_ASSERT_STRING_EQUAL(http_content_type("noext"), "application/octet-stream");
    CU_ASSERT_STRING_EQUAL(http_content_type("/a.d/noext"), "application/octet-stream");
}

static void TEST_file_and_head(void)
{
    http_server *s = start();
    int port = http_port(s);
    resp r;
    char *buf = get(port, "GET", "/index.html", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "text/html; charset=utf-8");
    CU_ASSERT_EQUAL(r.clen, (long)strlen(INDEX));
    CU_ASSERT(r.body_len == strlen(INDEX) && memcmp(r.body, INDEX, r.body_len) == 0);
    CU_ASSERT(r.close);
    free(buf);

    buf = get(port, "GET", "/sub/c.css", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "text/css; charset=utf-8");
    CU_ASSERT(r.body_len == 4 && memcmp(r.body, "p{}\n", 4) == 0);
    free(buf);

    buf = get(port, "GET", "/app.js?v=3", &r);    /* a query is not part of the file's name */
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "text/javascript; charset=utf-8");
    free(buf);

    /* HEAD: the same head, no body. */
    buf = get(port, "HEAD", "/index.html", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "text/html; charset=utf-8");
    CU_ASSERT_EQUAL(r.clen, (long)strlen(INDEX));
    CU_ASSERT_EQUAL(r.body_len, 0);
    free(buf);
    http_free(s);
}

static void TEST_refusals(void)
{
    http_server *s = start();
    int port = http_port(s);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/missing.html"), 404);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/"), 404);
    CU_ASSERT_EQUAL(get_status(port, "HEAD", "/missing.html"), 404);
    CU_ASSERT_EQUAL(get_status(port, "POST", "/index.html"), 405);
    CU_ASSERT_EQUAL(get_status(port, "DELETE", "/index.html"), 405);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/%zz"), 400);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/a%00b"), 400);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/a%2"), 400);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/%+1"), 400);
    /* Directories are not listed, with or without their slash. */
    CU_ASSERT_EQUAL(get_status(port, "GET", "/sub"), 404);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/sub/"), 404);
    /* A path that is not a path at all. */
    resp r;
    size_t len;
    int eof;
    char *buf = exchange(port, "GET x HTTP/1.1\r\n\r\n", 18, &len, &eof);
    parse_resp(buf, len, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT(eof);
    free(buf);
    http_free(s);
}

/* Nothing that leads out of the root is served. */
static void TEST_traversal(void)
{
    http_server *s = start();
    int port = http_port(s);
    static const char *const out[] = {
        "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/a/../../secret.txt",
        "/sub/../../secret.txt", "/..%2fsecret.txt", "/out.txt", "/sub/..", "/..",
    };
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        resp r;
        char *buf = get(port, "GET", out[i], &r);
        if (r.status != 400 && r.status != 404) fprintf(stderr, "\n%s: %d\n", out[i], r.status);
        CU_ASSERT(r.status == 400 || r.status == 404);
        CU_ASSERT(strstr(buf, "secret") == NULL);
        free(buf);
    }
    /* The link that leads out: 404, as if it were not there. */
    CU_ASSERT_EQUAL(get_status(port, "GET", "/out.txt"), 404);
    /* A link that stays inside is served. */
    resp r;
    char *buf = get(port, "GET", "/in.html", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT(r.body_len == strlen(INDEX) && memcmp(r.body, INDEX, r.body_len) == 0);
    free(buf);
    http_free(s);
}

static void TEST_no_root(void)
{
    char err[KIT_ERRLEN];
    http_server *s = NULL;
    http_opts o = { .root = "/nonexistent/mqlab-http" };
    CU_ASSERT_EQUAL(http_start(&o, &s, err), KIT_ENOENT);
    CU_ASSERT_PTR_NULL(s);
    /* No root: routes only; a path is a 404. */
    o.root = NULL;
    CU_ASSERT_EQUAL_FATAL(http_start(&o, &s, err), KIT_OK);
    CU_ASSERT_EQUAL(get_status(http_port(s), "GET", "/index.html"), 404);
    CU_ASSERT_EQUAL(http_route_bytes(s, "no-slash", NULL, "x", 1, err), KIT_EINVAL);
    http_free(s);
}

static void TEST_routes(void)
{
    http_server *s = start();
    int port = http_port(s);
    char err[KIT_ERRLEN], lib[200];
    snprintf(lib, sizeof lib, "%s/lib.js", base);
    /* A route's file may live anywhere: the kit names it. */
    CU_ASSERT_EQUAL(http_route_file(s, "/vendor/mqtt.min.js", lib, err), KIT_OK);
    static const char page[] = "<html>trace</html>";
    CU_ASSERT_EQUAL(http_route_bytes(s, "/trace", "text/html; charset=utf-8", page, sizeof page - 1, err), KIT_OK);
    CU_ASSERT_EQUAL(http_route_bytes(s, "/data.json", NULL, "{}", 2, err), KIT_OK);
    char missing[200];
    snprintf(missing, sizeof missing, "%s/nope.js", base);
    CU_ASSERT_EQUAL(http_route_file(s, "/gone.js", missing, err), KIT_OK);

    resp r;
    char *buf = get(port, "GET", "/vendor/mqtt.min.js", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "text/javascript; charset=utf-8");
    CU_ASSERT(r.body_len == 13 && memcmp(r.body, "var lib = 1;\n", 13) == 0);
    free(buf);
    buf = get(port, "GET", "/trace", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "text/html; charset=utf-8");
    CU_ASSERT(r.body_len == sizeof page - 1 && memcmp(r.body, page, r.body_len) == 0);
    free(buf);
    buf = get(port, "HEAD", "/trace", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(r.clen, (long)sizeof page - 1);
    CU_ASSERT_EQUAL(r.body_len, 0);
    free(buf);
    buf = get(port, "GET", "/data.json", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "application/json");
    free(buf);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/gone.js"), 404);
    /* The route's file is read on each request. */
    CU_ASSERT_EQUAL(put(base, "lib.js", "var lib = 2;\n"), 0);
    buf = get(port, "GET", "/vendor/mqtt.min.js", &r);
    CU_ASSERT(r.body_len == 13 && memcmp(r.body, "var lib = 2;\n", 13) == 0);
    free(buf);
    CU_ASSERT_EQUAL(put(base, "lib.js", "var lib = 1;\n"), 0);
    http_free(s);
}

/* ------------------------------------------------------------------ */
/* Connections                                                        */

static void TEST_keepalive_pipelined(void)
{
    http_server *s = start();
    int port = http_port(s);
    /* Two requests in one write: both answered, in order, on one
     * connection that stays open; a third, later, with close. */
    static const char two[] = "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = tcp_connect(port);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(send_all(fd, two, sizeof two - 1) == 0);
    char buf[8192];
    size_t len = 0;
    resp r1, r2;
    /* Read until both are in (the second has no body: HEAD). */
    int64_t end = net_now_us() + WAIT_MS * 1000LL;
    size_t n1 = 0;
    while (net_now_us() < end) {
        n1 = parse_resp(buf, len, &r1);
        if (n1 && len > n1) {
            ws_http h;
            if (ws_http_parse(buf + n1, len - n1, 0, 1, &h) == WS_OK) break;
        }
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    CU_ASSERT_FATAL(n1 > 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT(r1.body_len == 4 && memcmp(r1.body, "AAA\n", 4) == 0);
    CU_ASSERT(!r1.close);
    parse_resp(buf + n1, len - n1, &r2);
    CU_ASSERT_EQUAL(r2.status, 200);
    CU_ASSERT_EQUAL(r2.clen, 3);
    CU_ASSERT_EQUAL(len - n1, r2.head_len);     /* HEAD: no body */
    CU_ASSERT(!r2.close);

    /* Still open: a third request, with close, is answered and ends it. */
    static const char third[] = "GET /b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CU_ASSERT(send_all(fd, third, sizeof third - 1) == 0);
    len = 0;
    CU_ASSERT_EQUAL(read_some(fd, buf, sizeof buf, &len, WAIT_MS, NULL), 1);
    resp r3;
    CU_ASSERT(parse_resp(buf, len, &r3) == len);
    CU_ASSERT_EQUAL(r3.status, 200);
    CU_ASSERT(r3.body_len == 3 && memcmp(r3.body, "BB\n", 3) == 0);
    CU_ASSERT(r3.close);
    close(fd);

    /* HTTP/1.0 without keep-alive: closed after the answer. */
    size_t blen;
    int eof;
    char *b = exchange(port, "GET /a.txt HTTP/1.0\r\n\r\n", 23, &blen, &eof);
    CU_ASSERT(eof);
    CU_ASSERT(parse_resp(b, blen, &r1) == blen && r1.status == 200);
    free(b);
    http_free(s);
}

static void TEST_big_head_and_garbage(void)
{
    http_server *s = start();
    int port = http_port(s);
    /* A head that never ends within 8 KiB: 431, then the end. */
    size_t big = 9000;
    char *req = kit_xmalloc(big + 64);
    int n = snprintf(req, big + 64, "GET /index.html HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', big - (size_t)n);
    size_t len;
    int eof;
    char *buf = exchange(port, req, big, &len, &eof);
    resp r;
    parse_resp(buf, len, &r);
    CU_ASSERT_EQUAL(r.status, 431);
    CU_ASSERT(eof);
    free(buf);
    free(req);

    /* Garbage: 400 and the end. */
    static const char junk[] = "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c";
    buf = exchange(port, junk, sizeof junk - 1, &len, &eof);
    parse_resp(buf, len, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT(eof);
    free(buf);
    buf = exchange(port, "HELLO\r\n\r\n", 9, &len, &eof);
    parse_resp(buf, len, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT(eof);
    free(buf);
    /* A client that sends half a head and goes: nothing breaks. */
    int fd = tcp_connect(port);
    CU_ASSERT(send_all(fd, "GET /a.t", 8) == 0);
    close(fd);
    /* Still serving. */
    CU_ASSERT_EQUAL(get_status(port, "GET", "/a.txt"), 200);
    http_free(s);
}

typedef struct {
    char line[32][160];
    int n;
} logged;

static void on_req(void *ud, const char *method, const char *path, int status)
{
    logged *l = ud;
    if (l->n < 32) snprintf(l->line[l->n++], sizeof l->line[0], "%s %s %d", method, path, status);
}

static void TEST_request_log(void)
{
    http_server *s = start();
    int port = http_port(s);
    CU_ASSERT_EQUAL(http_requests(s, 0, NULL, NULL), 0);
    get_status(port, "GET", "/index.html");
    get_status(port, "HEAD", "/a.txt");
    get_status(port, "GET", "/nope");
    get_status(port, "POST", "/a.txt");
    logged l = { .n = 0 };
    CU_ASSERT_EQUAL(http_requests(s, 0, on_req, &l), 4);
    CU_ASSERT_EQUAL_FATAL(l.n, 4);
    CU_ASSERT_STRING_EQUAL(l.line[0], "GET /index.html 200");
    CU_ASSERT_STRING_EQUAL(l.line[1], "HEAD /a.txt 200");
    CU_ASSERT_STRING_EQUAL(l.line[2], "GET /nope 404");
    CU_ASSERT_EQUAL(strncmp(l.line[3], "POST ", 5), 0);
    CU_ASSERT(strstr(l.line[3], " 405") != NULL);
    /* From an index: only the later ones. */
    l.n = 0;
    CU_ASSERT_EQUAL(http_requests(s, 2, on_req, &l), 4);
    CU_ASSERT_EQUAL(l.n, 2);
    CU_ASSERT_STRING_EQUAL(l.line[0], "GET /nope 404");
    http_free(s);
}

/* ------------------------------------------------------------------ */
/* WebSocket push                                                     */

typedef struct {
    int fd;
    ws_decoder dec;
    uint8_t buf[1 << 16];
    size_t len;
    uint8_t *msg;               /* the message being put together */
    size_t msg_len, msg_cap;
} wsc;

/* Open a WebSocket on path, or -1 (status: the HTTP status when the
 * server refused). */
static int wsc_open(wsc *c, int port, const char *path, int *status)
{
    memset(c, 0, sizeof *c);
    c->fd = tcp_connect(port);
    if (c->fd < 0) return -1;
    char req[1024], key[25];
    size_t n = ws_client_request(req, sizeof req, "127.0.0.1", path, NULL, key);
    if (send_all(c->fd, req, n) != 0) return -1;
    size_t used = 0;
    char why[160];
    int64_t end = net_now_us() + WAIT_MS * 1000LL;
    for (;;) {
        int r = ws_client_check(c->buf, c->len, key, NULL, &used, why, sizeof why);
        if (r == WS_OK) break;
        if (r == WS_BAD) {
            ws_http h;
            if (status && ws_http_parse(c->buf, c->len, 0, 1, &h) == WS_OK) *status = h.code;
            return -1;
        }
        if (read_some(c->fd, (char *)c->buf, sizeof c->buf, &c->len, 100, NULL) != 0 || net_now_us() > end) {
            ws_http h;
            if (status && ws_http_parse(c->buf, c->len, 0, 1, &h) == WS_OK) *status = h.code;
            return -1;
        }
    }
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    ws_decoder_init(&c->dec, 0, 0, 1);
    if (status) *status = 101;
    return 0;
}

/* The next whole message (its bytes in c->msg, c->msg_len): 1, or 0 at
 * the deadline, -1 at the end of the stream or on an error. */
static int wsc_next(wsc *c, int timeout_ms)
{
    int64_t end = net_now_us() + (int64_t)timeout_ms * 1000;
    c->msg_len = 0;
    for (;;) {
        ws_event ev;
        ssize_t u = ws_decode(&c->dec, c->buf, c->len, 0, &ev);
        if (u < 0) return -1;
        int fin = 0;
        if (ev.type == WS_EV_DATA) {
            /* ev.data points into buf: copy it before buf moves. */
            if (c->msg_len + ev.len > c->msg_cap) {
                c->msg_cap = (c->msg_len + ev.len) * 2;
                c->msg = kit_xrealloc(c->msg, c->msg_cap);
            }
            memcpy(c->msg + c->msg_len, ev.data, ev.len);
            c->msg_len += ev.len;
            fin = ev.fin;
        }
        memmove(c->buf, c->buf + u, c->len - (size_t)u);
        c->len -= (size_t)u;
        if (ev.type == WS_EV_DATA) {
            if (fin) return 1;
            continue;
        }
        if (ev.type == WS_EV_CLOSE) return -1;
        if (ev.type != WS_EV_NONE) continue;
        int64_t left = (end - net_now_us()) / 1000;
        if (left <= 0) return 0;
        int r = read_some(c->fd, (char *)c->buf, sizeof c->buf, &c->len, (int)(left < 50 ? left : 50), NULL);
        if (r != 0) return -1;
    }
}

static int wsc_is(wsc *c, const char *text)
{
    return wsc_next(c, WAIT_MS) == 1 && c->msg_len == strlen(text) && memcmp(c->msg, text, c->msg_len) == 0;
}

/* Send a masked frame, as a browser would (a message the server drops). */
static int wsc_send(wsc *c, int opcode, const void *p, size_t n)
{
    uint8_t hdr[14], mask[4] = { 1, 2, 3, 4 };
    uint8_t *frame = kit_xmalloc(14 + n);
    size_t h = ws_frame_header(hdr, 1, opcode, n, mask);
    memcpy(frame, hdr, h);
    memcpy(frame + h, p, n);
    ws_unmask(frame + h, n, mask, 0);
    int r = send_all(c->fd, frame, h + n);
    free(frame);
    return r;
}

static void wsc_close(wsc *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->msg);
    c->msg = NULL;
}

static int wait_clients(http_server *s, const char *path, int n)
{
    int64_t end = net_now_us() + WAIT_MS * 1000LL;
    while (http_ws_clients(s, path) != n) {
        if (net_now_us() > end) return 0;
        usleep(5000);
    }
    return 1;
}

static void TEST_ws_push(void)
{
    http_server *s = start();
    int port = http_port(s);
    char err[KIT_ERRLEN];
    CU_ASSERT_EQUAL(http_route_ws(s, "/live", err), KIT_OK);
    CU_ASSERT_EQUAL(http_route_ws(s, "/other", err), KIT_OK);
    CU_ASSERT_EQUAL(http_ws_clients(s, "/live"), 0);
    wsc a, b, o;
    int st = 0;
    CU_ASSERT_EQUAL_FATAL(wsc_open(&a, port, "/live", &st), 0);
    CU_ASSERT_EQUAL(st, 101);
    CU_ASSERT_EQUAL_FATAL(wsc_open(&b, port, "/live", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(wsc_open(&o, port, "/other", NULL), 0);
    CU_ASSERT(wait_clients(s, "/live", 2));
    CU_ASSERT(wait_clients(s, "/other", 1));
    CU_ASSERT_EQUAL(http_ws_clients(s, "/nowhere"), 0);

    http_broadcast(s, "/live", "first", 5);
    http_broadcast(s, "/live", "second", 6);
    /* What a client sends is read and dropped; it changes nothing. */
    CU_ASSERT(wsc_send(&a, WS_BINARY, "ignored", 7) == 0);
    CU_ASSERT(wsc_send(&b, WS_TEXT, "ignored too", 11) == 0);
    CU_ASSERT(wsc_is(&a, "first"));
    CU_ASSERT(wsc_is(&a, "second"));
    CU_ASSERT(wsc_is(&b, "first"));
    CU_ASSERT(wsc_is(&b, "second"));
    /* The other path got neither: its first message is its sentinel. */
    http_broadcast(s, "/other", "sentinel", 8);
    CU_ASSERT(wsc_is(&o, "sentinel"));

    /* Large messages stay whole and in order, one message each. */
    size_t big = 1 << 20;
    uint8_t *src = kit_xmalloc(big);
    for (size_t i = 0; i < big; i++) src[i] = (uint8_t)(i * 7 + (i >> 10));
    http_broadcast(s, "/live", src, big);
    http_broadcast(s, "/live", "after", 5);
    CU_ASSERT_EQUAL(wsc_next(&a, WAIT_MS), 1);
    CU_ASSERT(a.msg_len == big && memcmp(a.msg, src, big) == 0);
    CU_ASSERT(wsc_is(&a, "after"));
    CU_ASSERT_EQUAL(wsc_next(&b, WAIT_MS), 1);
    CU_ASSERT(b.msg_len == big && memcmp(b.msg, src, big) == 0);
    CU_ASSERT(wsc_is(&b, "after"));
    free(src);

    /* One leaves: counted out; the other still gets what follows. */
    wsc_close(&b);
    CU_ASSERT(wait_clients(s, "/live", 1));
    http_broadcast(s, "/live", "third", 5);
    CU_ASSERT(wsc_is(&a, "third"));

    /* An upgrade elsewhere, or a plain GET on the push path, is refused. */
    wsc x;
    st = 0;
    CU_ASSERT(wsc_open(&x, port, "/index.html", &st) != 0);
    CU_ASSERT(st != 101);
    wsc_close(&x);
    CU_ASSERT_EQUAL(get_status(port, "GET", "/live"), 426);
    /* An upgrade without its key or version: refused, and logged so. */
    static const char nokey[] = "GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    size_t len;
    int eof;
    resp r;
    char *buf = exchange(port, nokey, sizeof nokey - 1, &len, &eof);
    parse_resp(buf, len, &r);
    CU_ASSERT(r.status == 400 || r.status == 426);
    CU_ASSERT(eof);
    free(buf);
    logged l = { .n = 0 };
    size_t nreq = http_requests(s, 0, NULL, NULL);
    CU_ASSERT_FATAL(nreq >= 1);
    http_requests(s, nreq - 1, on_req, &l);
    CU_ASSERT(l.n == 1 && strncmp(l.line[0], "GET /live 4", 11) == 0);
    CU_ASSERT_EQUAL(http_ws_clients(s, "/live"), 1);

    /* Stopping with clients connected: they see the end. */
    http_free(s);
    CU_ASSERT(wsc_next(&a, WAIT_MS) == -1);
    CU_ASSERT(wsc_next(&o, WAIT_MS) == -1);
    wsc_close(&a);
    wsc_close(&o);
}

/* A GET and an upgrade in one write: the GET's answer goes out as HTTP
 * before the 101, not as a WebSocket message after it. */
static void TEST_get_then_upgrade(void)
{
    http_server *s = start();
    int port = http_port(s);
    char err[KIT_ERRLEN];
    CU_ASSERT_EQUAL(http_route_ws(s, "/live", err), KIT_OK);
    char req[2048], key[25];
    int n = snprintf(req, sizeof req, "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    n += (int)ws_client_request(req + n, sizeof req - (size_t)n, "127.0.0.1", "/live", NULL, key);
    wsc c;
    memset(&c, 0, sizeof c);
    c.fd = tcp_connect(port);
    CU_ASSERT_FATAL(c.fd >= 0);
    CU_ASSERT(send_all(c.fd, req, (size_t)n) == 0);
    resp r;
    size_t used = 0, first = 0;
    char why[160];
    int64_t end = net_now_us() + WAIT_MS * 1000LL;
    int ok = 0;
    while (net_now_us() < end) {
        first = parse_resp((char *)c.buf, c.len, &r);
        if (first && ws_client_check(c.buf + first, c.len - first, key, NULL, &used, why, sizeof why) != WS_NEED_MORE)
            break;
        if (read_some(c.fd, (char *)c.buf, sizeof c.buf, &c.len, 100, NULL) != 0) break;
    }
    CU_ASSERT_FATAL(first > 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT(r.body_len == 4 && memcmp(r.body, "AAA\n", 4) == 0);
    ok = ws_client_check(c.buf + first, c.len - first, key, NULL, &used, why, sizeof why) == WS_OK;
    CU_ASSERT_FATAL(ok);
    memmove(c.buf, c.buf + first + used, c.len - first - used);
    c.len -= first + used;
    ws_decoder_init(&c.dec, 0, 0, 1);
    CU_ASSERT(wait_clients(s, "/live", 1));
    http_broadcast(s, "/live", "pushed", 6);
    CU_ASSERT(wsc_is(&c, "pushed"));
    wsc_close(&c);
    http_free(s);
}

/* http_free with clients of every kind connected, mid-request too. */
static void TEST_free_with_clients(void)
{
    http_server *s = start();
    int port = http_port(s);
    char err[KIT_ERRLEN];
    CU_ASSERT_EQUAL(http_route_ws(s, "/live", err), KIT_OK);
    wsc a, b;
    CU_ASSERT_EQUAL_FATAL(wsc_open(&a, port, "/live", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(wsc_open(&b, port, "/live", NULL), 0);
    CU_ASSERT(wait_clients(s, "/live", 2));
    int idle = tcp_connect(port), half = tcp_connect(port);
    CU_ASSERT(send_all(half, "GET /index", 10) == 0);
    /* Broadcasts still queued when it stops are freed with it. */
    for (int i = 0; i < 50; i++) http_broadcast(s, "/live", "x", 1);
    http_free(s);
    /* b gets what was delivered before the stop, then the end. */
    int got = 0, r;
    while ((r = wsc_next(&b, WAIT_MS)) == 1) got++;
    CU_ASSERT_EQUAL(r, -1);
    CU_ASSERT(got <= 50);
    wsc_close(&a);
    wsc_close(&b);
    close(idle);
    close(half);
    http_free(NULL);
}

int init_http_tests(void)
{
    CU_pSuite s = CU_add_suite("http", suite_init, suite_clean);
    if (!s) return -1;
    if (!CU_add_test(s, "content types", TEST_content_types) ||
        !CU_add_test(s, "a file and HEAD", TEST_file_and_head) ||
        !CU_add_test(s, "404, 405, 400", TEST_refusals) ||
        !CU_add_test(s, "no way out of the root", TEST_traversal) ||
        !CU_add_test(s, "no root", TEST_no_root) ||
        !CU_add_test(s, "routes", TEST_routes) ||
        !CU_add_test(s, "keep-alive, pipelined", TEST_keepalive_pipelined) ||
        !CU_add_test(s, "a big head, garbage", TEST_big_head_and_garbage) ||
        !CU_add_test(s, "request log", TEST_request_log) ||
        !CU_add_test(s, "WebSocket push", TEST_ws_push) ||
        !CU_add_test(s, "a GET, then an upgrade, in one write", TEST_get_then_upgrade) ||
        !CU_add_test(s, "free with clients", TEST_free_with_clients))
        return -1;
    return 0;
}
