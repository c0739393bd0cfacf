/*
 * http.c - the kit's HTTP server: static files, fixed routes and
 * WebSocket push, on one net_loop in its own thread.
 *
 * The loop thread takes s->mu around each batch, as the proxy does, so
 * API calls see whole batches. Requests are answered in order on each
 * connection (keep-alive, pipelined heads are parsed one after another).
 */
#include "http.h"
#include "net.h"
#include "util.h"
#include "ws.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_FILE ((size_t)16 << 20)
#define MAX_CONNS 256
#define WS_BACKLOG_LIMIT ((size_t)8 << 20)
#define READ_CHUNK 16384
#define LINGER_US 2000000           /* how long a closing connection is drained */
#define LINGER_MAX ((size_t)1 << 20)    /* and how much of it */

enum { R_FILE = 1, R_BYTES, R_WS };

typedef struct route {
    struct route *next;
    char *path;
    int kind;
    char *fs;                   /* R_FILE */
    char *ctype;                /* R_BYTES (NULL: by extension) */
    uint8_t *body;              /* R_BYTES */
    size_t len;
} route;

typedef struct hconn {
    struct hconn *next, *prev;
    struct http_server *s;
    net_io io;
    net_conn *nc;
    int ws;                     /* upgraded: nc is a WebSocket */
    int handshaking;            /* ... whose opening handshake runs */
    char *ws_path;
    uint8_t in[WS_MAX_HEADER];
    size_t inlen;
    uint8_t *out;               /* out[off..len) waits for the socket */
    size_t off, len, cap;
    unsigned rd_need, wr_need;
    int close_after;            /* close once out is written */
    int eof;
    int upgrade_wait;           /* an upgrade waits for out to be written */
    int lingering;              /* answered, FIN sent: draining, then close */
    size_t drained;
    net_timer linger;
} hconn;

typedef struct bmsg {
    struct bmsg *next;
    char *path;
    size_t len;
    uint8_t data[];
} bmsg;

typedef struct {
    char method[8];
    char *path;
    int status;
} reqlog;

struct http_server {
    pthread_mutex_t mu;
    pthread_t thread;
    int started;
    int stopping;
    net_loop *loop;
    int lfd;
    net_io lio;
    int port;
    char *root;                 /* realpath of the folder, or NULL */
    size_t max_file;
    route *routes;
    hconn *conns;
    int nconns;
    bmsg *bq, *bq_tail;         /* broadcasts waiting for the loop */
    reqlog *log;
    size_t nlog, caplog;
};

const char *http_content_type(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".htm", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" }, { ".mjs", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" }, { ".json", "application/json" },
        { ".map", "application/json" }, { ".svg", "image/svg+xml" }, { ".png", "image/png" },
        { ".jpg", "image/jpeg" }, { ".jpeg", "image/jpeg" }, { ".gif", "image/gif" },
        { ".ico", "image/x-icon" }, { ".txt", "text/plain; charset=utf-8" },
        { ".md", "text/plain; charset=utf-8" }, { ".wasm", "application/wasm" },
    };
    const char *dot = strrchr(name, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

/* ---- connections --------------------------------------------------- */

static void out_add(hconn *c, const void *b, size_t n)
{
    if (c->off == c->len) c->off = c->len = 0;
    if (c->len + n > c->cap) {
        if (c->off) {
            memmove(c->out, c->out + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        size_t ncap = c->cap ? c->cap : 4096;
        while (ncap < c->len + n) ncap *= 2;
        c->out = kit_xrealloc(c->out, ncap);
        c->cap = ncap;
    }
    memcpy(c->out + c->len, b, n);
    c->len += n;
}

static void conn_free(http_server *s, hconn *c)
{
    net_timer_cancel(s->loop, &c->linger);
    net_del(&c->io);
    net_close(c->nc, 0);
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    free(c->ws_path);
    free(c->out);
    free(c);
}

/* Write what waits: 0, 1 when all is written and the connection is to
 * close, or -1 when it failed. */
static int pump_out(hconn *c)
{
    c->wr_need = 0;
    while (c->off < c->len) {
        ssize_t w = net_write(c->nc, c->out + c->off, c->len - c->off);
        if (w > 0) {
            c->off += (size_t)w;
            continue;
        }
        if (w == NET_AGAIN || w == 0) {
            c->wr_need = w == 0 ? NET_OUT : c->nc->want;
            return 0;
        }
        return -1;
    }
    c->off = c->len = 0;
    int r = net_flush(c->nc);
    if (r == NET_AGAIN) {
        c->wr_need = c->nc->want;
        return 0;
    }
    if (r == NET_FAIL) return -1;
    return c->close_after ? 1 : 0;
}

static void set_interest(hconn *c)
{
    unsigned want = 0;
    if (c->handshaking) {
        want = c->rd_need ? c->rd_need : NET_IN;
    } else {
        if (!c->eof && !c->close_after) want |= c->rd_need ? c->rd_need : NET_IN;
        if (c->off < c->len || c->wr_need) want |= c->wr_need ? c->wr_need : NET_OUT;
    }
    net_set(&c->io, want);
}

static void log_request(http_server *s, const char *method, size_t mlen, const char *path, int status)
{
    if (s->nlog == s->caplog) {
        size_t ncap = s->caplog ? s->caplog * 2 : 64;
        s->log = kit_xrealloc(s->log, ncap * sizeof *s->log);
        s->caplog = ncap;
    }
    reqlog *r = &s->log[s->nlog++];
    snprintf(r->method, sizeof r->method, "%.*s", (int)(mlen < 7 ? mlen : 7), method);
    r->path = kit_strdup(path);
    r->status = status;
}

static void respond(hconn *c, int status, const char *ctype, const void *body, size_t len, int head_only,
                    int keep)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: %s\r\n\r\n",
                     status, ws_status_text(status), ctype, len, keep ? "keep-alive" : "close");
    out_add(c, head, (size_t)n);
    if (!head_only && len) out_add(c, body, len);
    if (!keep) c->close_after = 1;
}

static void respond_text(hconn *c, int status, const char *text, int head_only, int keep)
{
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text), head_only, keep);
}

/* Decode %XX in a request path into out (a NUL-terminated copy). -1
 * when it holds a NUL, a bad escape, or a ".." segment. */
static int decode_path(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (n == 0 || p[0] != '/') return -1;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)p[i];
        if (ch == '%') {
            /* Two hex digits, nothing else: strtol alone would take
             * "%+1" or "% 1". */
            if (i + 2 >= n || !isxdigit((unsigned char)p[i + 1]) || !isxdigit((unsigned char)p[i + 2]))
                return -1;
            char hex[3] = { p[i + 1], p[i + 2], 0 };
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end || v <= 0) return -1;
            ch = (int)v;
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    /* No segment may be "..": the path must stay under the root. */
    for (const char *q = out; (q = strstr(q, "..")) != NULL; q += 2)
        if (q[-1] == '/' && (q[2] == '/' || q[2] == '\0')) return -1;
    return 0;
}

static route *find_route(http_server *s, const char *path)
{
    for (route *r = s->routes; r; r = r->next)
        if (strcmp(r->path, path) == 0) return r;
    return NULL;
}

/* A file under the root (or a route's file): its bytes, or a status. */
static uint8_t *load_file(http_server *s, const char *fs, int check_root, size_t *len, int *status)
{
    char real[PATH_MAX];
    *status = 404;
    if (!realpath(fs, real)) return NULL;
    if (check_root && (!s->root || !kit_path_under(real, s->root))) return NULL;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *status = errno == EACCES ? 403 : 404;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return NULL;
    }
    if ((size_t)st.st_size > s->max_file) {
        close(fd);
        *status = 413;
        return NULL;
    }
    uint8_t *b = kit_xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    *status = 200;
    return b;
}

/* One parsed request. Returns 1 when the connection became a WebSocket,
 * 2 when an upgrade must wait for out to be written (the request is left
 * unread). */
static int serve(http_server *s, hconn *c, const ws_http *h)
{
    int head_only = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
    int get = h->method_len == 3 && memcmp(h->method, "GET", 3) == 0;
    int keep = h->minor >= 1 && !ws_http_has_token(h, "Connection", "close");
    char path[1024];
    if (!get && !head_only) {
        log_request(s, h->method, h->method_len, "-", 405);
        respond_text(c, 405, "only GET and HEAD\n", 0, 0);
        return 0;
    }
    if (decode_path(h->path, h->path_len, path, sizeof path) != 0) {
        log_request(s, h->method, h->method_len, "-", 400);
        respond_text(c, 400, "bad path\n", head_only, 0);
        return 0;
    }
    route *r = find_route(s, path);
    if (r && r->kind == R_WS) {
        if (!ws_http_has_token(h, "Upgrade", "websocket")) {
            log_request(s, h->method, h->method_len, path, 426);
            respond_text(c, 426, "a WebSocket endpoint\n", head_only, keep);
            return 0;
        }
        /* A bad upgrade is answered here, so the log has its status,
         * not a 101 the variant would then take back. */
        ws_upgrade u;
        if (ws_upgrade_check(h, 0, &u) != WS_OK) {
            char buf[512];
            log_request(s, h->method, h->method_len, path, u.status);
            out_add(c, buf, ws_response_error(buf, sizeof buf, u.status, u.why));
            c->close_after = 1;
            return 0;
        }
        /* Answers to requests pipelined before the upgrade go out first,
         * as HTTP: written after it they would be framed as a message. */
        if (c->off < c->len) {
            c->upgrade_wait = 1;
            return 2;
        }
        log_request(s, h->method, h->method_len, path, 101);
        ws_opts wo = { 0 };
        wo.text_ok = 1;
        net_conn *ws = ws_server_accepted(c->nc, c->in, c->inlen, &wo);
        if (!ws) {
            c->close_after = 1;
            return 0;
        }
        c->nc = ws;
        c->ws = 1;
        c->handshaking = 1;
        c->ws_path = kit_strdup(path);
        c->inlen = 0;
        return 1;
    }
    int status = 404;
    size_t len = 0;
    uint8_t *body = NULL;
    const char *ctype = http_content_type(path);
    if (r && r->kind == R_BYTES) {
        status = 200;
        if (r->ctype) ctype = r->ctype;
        respond(c, 200, ctype, r->body, r->len, head_only, keep);
    } else {
        if (r && r->kind == R_FILE) {
            body = load_file(s, r->fs, 0, &len, &status);
        } else if (s->root && strcmp(path, "/") != 0) {
            char fs[PATH_MAX];
            if ((size_t)snprintf(fs, sizeof fs, "%s%s", s->root, path) < sizeof fs)
                body = load_file(s, fs, 1, &len, &status);
        }
        if (body) respond(c, 200, ctype, body, len, head_only, keep);
        else respond_text(c, status, status == 413 ? "too large\n" : "not found\n", head_only, keep);
        free(body);
    }
    log_request(s, h->method, h->method_len, path, status);
    return 0;
}

/* Parse and answer the requests read so far. */
static void take_requests(http_server *s, hconn *c)
{
    while (!c->ws && !c->close_after && c->inlen > 0) {
        ws_http h;
        int rc = ws_http_parse(c->in, c->inlen, sizeof c->in, 0, &h);
        if (rc == WS_NEED_MORE) return;
        if (rc == WS_BAD) {
            char buf[512];
            size_t n = ws_response_error(buf, sizeof buf, h.status, h.why);
            out_add(c, buf, n);
            c->close_after = 1;
            log_request(s, "?", 1, "-", h.status);
            return;
        }
        size_t used = h.len;
        if (serve(s, c, &h)) return;    /* a WebSocket now (its bytes went with it), or soon */
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
    }
}

static void ws_step(http_server *s, hconn *c)
{
    (void)s;
    if (c->handshaking) {
        int r = net_handshake(c->nc);
        if (r == NET_AGAIN) {
            c->rd_need = c->nc->want;
            return;
        }
        c->handshaking = 0;
        c->rd_need = 0;
        if (r == NET_FAIL) {
            c->close_after = 1;
            return;
        }
    }
    /* What a client of the push sends is read and dropped. */
    uint8_t buf[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = net_read(c->nc, buf, sizeof buf);
        if (n > 0) continue;
        if (n == NET_AGAIN) {
            c->rd_need = c->nc->want;
            return;
        }
        c->eof = 1;
        c->close_after = 1;
        return;
    }
    net_again(&c->io);
}

static void linger_end(net_timer *t)
{
    hconn *c = t->ud;
    conn_free(c->s, c);
}

/* Close gently once the last answer is written: FIN now, then read and
 * drop what the client still sends until it closes, for LINGER_US at
 * most. Closing a socket with unread bytes sends a reset, which may
 * destroy the answer before the client reads it: a 431 for a head that
 * went on, a 400 for garbage (RFC 9112 9.6). */
static void start_linger(http_server *s, hconn *c)
{
    net_shutdown(c->nc);
    c->lingering = 1;
    net_timer_at(s->loop, &c->linger, net_now_us() + LINGER_US, linger_end, c);
    net_set(&c->io, NET_IN);
}

/* Read request bytes while there is room for them. */
static void read_heads(hconn *c)
{
    while (c->inlen < sizeof c->in) {
        c->rd_need = 0;
        ssize_t n = net_read(c->nc, c->in + c->inlen, sizeof c->in - c->inlen);
        if (n > 0) {
            c->inlen += (size_t)n;
            continue;
        }
        if (n == NET_AGAIN) c->rd_need = c->nc->want;
        else c->eof = 1;
        return;
    }
}

static void on_conn(net_io *io, unsigned ev)
{
    hconn *c = io->ud;
    http_server *s = c->s;
    if (c->lingering) {
        uint8_t buf[4096];
        for (int i = 0; i < 16; i++) {
            ssize_t n = net_read(c->nc, buf, sizeof buf);
            if (n == NET_AGAIN) return;
            if (n <= 0 || (c->drained += (size_t)n) > LINGER_MAX) {
                conn_free(s, c);
                return;
            }
        }
        return;                 /* level-triggered: the rest next turn */
    }
    if (c->ws) {
        ws_step(s, c);
    } else {
        if (ev & (NET_IN | NET_HUP | NET_ERR)) read_heads(c);
        take_requests(s, c);
        if (c->ws) ws_step(s, c);
        else if (c->eof && c->off == c->len) c->close_after = 1;
    }
    int r = pump_out(c);
    if (r < 0 || (c->eof && c->off == c->len && !c->ws)) {
        conn_free(s, c);
        return;
    }
    if (r > 0) {
        if (c->ws) conn_free(s, c);    /* the variant sent its close */
        else start_linger(s, c);
        return;
    }
    if (c->upgrade_wait && c->off == c->len) {
        c->upgrade_wait = 0;
        net_again(&c->io);      /* the upgrade left in c->in, now */
    }
    set_interest(c);
}

static void on_listen(net_io *io, unsigned ev)
{
    (void)ev;
    http_server *s = io->ud;
    for (;;) {
        int fd = net_accept(s->lfd, NULL, NULL);
        if (fd < 0) return;
        if (s->nconns >= MAX_CONNS) {
            close(fd);
            continue;
        }
        hconn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->s = s;
        c->nc = net_tcp(fd);
        if (net_add(s->loop, &c->io, fd, NET_IN, on_conn, c) != 0) {
            net_close(c->nc, 0);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->nconns++;
    }
}

/* The loop's side of http_broadcast (mu held). */
static void deliver(http_server *s)
{
    while (s->bq) {
        bmsg *m = s->bq;
        s->bq = m->next;
        hconn *next;
        for (hconn *c = s->conns; c; c = next) {
            next = c->next;
            /* A client whose 101 is not yet written is not yet counted
             * (http_ws_clients) and gets nothing. */
            if (!c->ws || c->handshaking || c->close_after || strcmp(c->ws_path, m->path) != 0) continue;
            if (ws_unsent(c->nc) > WS_BACKLOG_LIMIT) {
                conn_free(s, c);            /* it cannot keep up */
                continue;
            }
            /* Each message whole, as one frame: write() would cut a
             * large one into several at the variant's high mark. */
            if (ws_send_message(c->nc, WS_BINARY, m->data, m->len) != 0 || pump_out(c) != 0) {
                conn_free(s, c);
                continue;
            }
            set_interest(c);
        }
        free(m->path);
        free(m);
    }
    s->bq_tail = NULL;
}

static void *http_main(void *arg)
{
    http_server *s = arg;
    for (;;) {
        int n = net_wait(s->loop, -1);
        pthread_mutex_lock(&s->mu);
        if (s->stopping || (n < 0 && n != -EINTR)) break;
        net_dispatch(s->loop);
        deliver(s);
        pthread_mutex_unlock(&s->mu);
    }
    while (s->conns) conn_free(s, s->conns);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- API ----------------------------------------------------------- */

int http_start(const http_opts *o, http_server **out, char *err)
{
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s) return kit_seterr(err, KIT_ERR, "http: out of memory");
    s->lfd = -1;
    s->lio.fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    s->max_file = o && o->max_file ? o->max_file : DEFAULT_MAX_FILE;
    int rc = KIT_ERR;
    char why[KIT_ERRLEN];
    if (o && o->root) {
        char real[PATH_MAX];
        if (!realpath(o->root, real) || !kit_is_dir(real)) {
            rc = kit_seterr(err, KIT_ENOENT, "http: no folder %s to serve", o->root);
            goto fail;
        }
        s->root = kit_strdup(real);
    }
    s->lfd = net_listen_local(o ? o->port : 0, 64, &s->port, why);
    if (s->lfd < 0) {
        rc = kit_seterr(err, KIT_ERR, "http: %s", why);
        goto fail;
    }
    s->loop = net_loop_new(why);
    if (!s->loop) {
        rc = kit_seterr(err, KIT_ERR, "http: %s", why);
        goto fail;
    }
    int e = net_wake_init(s->loop, NULL, NULL);
    if (!e) e = net_add(s->loop, &s->lio, s->lfd, NET_IN, on_listen, s);
    if (e) {
        rc = kit_seterr(err, KIT_ERR, "http: %s", strerror(e));
        goto fail;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int trc = pthread_create(&s->thread, NULL, http_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (trc) {
        rc = kit_seterr(err, KIT_ERR, "http: cannot start its thread: %s", strerror(trc));
        goto fail;
    }
    s->started = 1;
    *out = s;
    return KIT_OK;
fail:
    http_free(s);
    return rc;
}

int http_port(const http_server *s)
{
    return s ? s->port : 0;
}

static int add_route(http_server *s, route *r, char *err)
{
    if (!r->path[0] || r->path[0] != '/') {
        free(r->path);
        free(r->fs);
        free(r->ctype);
        free(r->body);
        free(r);
        return kit_seterr(err, KIT_EINVAL, "http: a route's path must start with '/'");
    }
    pthread_mutex_lock(&s->mu);
    r->next = s->routes;
    s->routes = r;
    pthread_mutex_unlock(&s->mu);
    return KIT_OK;
}

int http_route_file(http_server *s, const char *url_path, const char *fs_path, char *err)
{
    route *r = kit_xmalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->kind = R_FILE;
    r->path = kit_strdup(url_path);
    r->fs = kit_strdup(fs_path);
    return add_route(s, r, err);
}

int http_route_bytes(http_server *s, const char *url_path, const char *ctype, const void *body, size_t len,
                     char *err)
{
    route *r = kit_xmalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->kind = R_BYTES;
    r->path = kit_strdup(url_path);
    r->ctype = ctype ? kit_strdup(ctype) : NULL;
    r->body = kit_xmalloc(len + 1);
    memcpy(r->body, body, len);
    r->len = len;
    return add_route(s, r, err);
}

int http_route_ws(http_server *s, const char *url_path, char *err)
{
    route *r = kit_xmalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->kind = R_WS;
    r->path = kit_strdup(url_path);
    return add_route(s, r, err);
}

void http_broadcast(http_server *s, const char *url_path, const void *msg, size_t len)
{
    if (!s) return;
    bmsg *m = kit_xmalloc(sizeof *m + len);
    m->next = NULL;
    m->path = kit_strdup(url_path);
    m->len = len;
    memcpy(m->data, msg, len);
    pthread_mutex_lock(&s->mu);
    if (s->bq_tail) s->bq_tail->next = m;
    else s->bq = m;
    s->bq_tail = m;
    pthread_mutex_unlock(&s->mu);
    net_wake(s->loop);
}

int http_ws_clients(http_server *s, const char *url_path)
{
    if (!s) return 0;
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (hconn *c = s->conns; c; c = c->next)
        if (c->ws && !c->handshaking && !c->close_after && strcmp(c->ws_path, url_path) == 0) n++;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t http_requests(http_server *s, size_t from, http_req_fn *fn, void *ud)
{
    if (!s) return 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = from; i < s->nlog && fn; i++) fn(ud, s->log[i].method, s->log[i].path, s->log[i].status);
    size_t n = s->nlog;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void http_free(http_server *s)
{
    if (!s) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_mutex_unlock(&s->mu);
        net_wake(s->loop);
        pthread_join(s->thread, NULL);
    }
    if (s->lio.loop) net_del(&s->lio);
    if (s->lfd >= 0) close(s->lfd);
    net_loop_free(s->loop);
    while (s->routes) {
        route *r = s->routes;
        s->routes = r->next;
        free(r->path);
        free(r->fs);
        free(r->ctype);
        free(r->body);
        free(r);
    }
    while (s->bq) {
        bmsg *m = s->bq;
        s->bq = m->next;
        free(m->path);
        free(m);
    }
    for (size_t i = 0; i < s->nlog; i++) free(s->log[i].path);
    free(s->log);
    free(s->root);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
