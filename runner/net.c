/*
 * net.c - the event loop, socket helpers, and the TCP and TLS variants of
 * net_conn. The WebSocket variant lives in ws.c beside its codec.
 */
#include "net.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_READY 256

struct net_loop {
    int ep;
    struct epoll_event ready[MAX_READY];
    int nready, next;           /* ready[next .. nready) still to dispatch */
    net_io **again, **run;      /* next turn's; this turn's (being dispatched) */
    int nagain, nrun, capagain, caprun;
    net_timer *timers;          /* sorted by at_us */
    int wakefd;
    net_io wakeio;
    void (*wakefn)(void *);
    void *wakeud;
};

int64_t net_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

net_loop *net_loop_new(char *err)
{
    net_loop *l = calloc(1, sizeof *l);
    if (!l) {
        kit_seterr(err, KIT_ERR, "out of memory");
        return NULL;
    }
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->ep < 0) {
        kit_seterr(err, KIT_ERR, "epoll_create1: %s", strerror(errno));
        free(l);
        return NULL;
    }
    l->wakefd = -1;
    l->wakeio.fd = -1;
    return l;
}

void net_loop_free(net_loop *l)
{
    if (!l) return;
    if (l->wakefd >= 0) close(l->wakefd);
    close(l->ep);
    free(l->again);
    free(l->run);
    free(l);
}

static uint32_t epoll_mask(unsigned mask)
{
    return (mask & NET_IN ? EPOLLIN : 0) | (mask & NET_OUT ? EPOLLOUT : 0);
}

int net_add(net_loop *l, net_io *io, int fd, unsigned mask, net_io_fn *fn, void *ud)
{
    struct epoll_event ev = { .events = epoll_mask(mask), .data.ptr = io };
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) return errno;
    io->fd = fd;
    io->mask = mask & (NET_IN | NET_OUT);
    io->fn = fn;
    io->ud = ud;
    io->loop = l;
    io->again = 0;
    return 0;
}

int net_set(net_io *io, unsigned mask)
{
    mask &= NET_IN | NET_OUT;
    if (!io->loop || io->fd < 0 || mask == io->mask) return 0;
    struct epoll_event ev = { .events = epoll_mask(mask), .data.ptr = io };
    if (epoll_ctl(io->loop->ep, EPOLL_CTL_MOD, io->fd, &ev) != 0) return errno;
    io->mask = mask;
    return 0;
}

void net_del(net_io *io)
{
    net_loop *l = io->loop;
    if (!l) return;
    if (io->fd >= 0) epoll_ctl(l->ep, EPOLL_CTL_DEL, io->fd, NULL);
    for (int i = l->next; i < l->nready; i++)
        if (l->ready[i].data.ptr == io) l->ready[i].data.ptr = NULL;
    if (io->again > 0) l->again[io->again - 1] = NULL;
    else if (io->again < 0) l->run[-io->again - 1] = NULL;
    io->again = 0;
    io->loop = NULL;
    io->fd = -1;
    io->mask = 0;
}

static void grow(net_io ***arr, int *cap, int need)
{
    if (need <= *cap) return;
    int n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    net_io **p = realloc(*arr, (size_t)n * sizeof *p);
    if (!p) abort();            /* the kit's policy on out-of-memory */
    *arr = p;
    *cap = n;
}

void net_again(net_io *io)
{
    net_loop *l = io->loop;
    if (!l || io->again) return;    /* already due this turn or the next */
    grow(&l->again, &l->capagain, l->nagain + 1);
    l->again[l->nagain++] = io;
    io->again = l->nagain;
}

static int next_timer_ms(net_loop *l, int timeout_ms)
{
    if (l->nagain) return 0;
    if (!l->timers) return timeout_ms;
    int64_t left = (l->timers->at_us - net_now_us() + 999) / 1000;
    if (left < 0) left = 0;
    if (left > INT_MAX) left = INT_MAX;
    if (timeout_ms < 0 || left < timeout_ms) return (int)left;
    return timeout_ms;
}

int net_wait(net_loop *l, int timeout_ms)
{
    l->nready = l->next = 0;
    int n = epoll_wait(l->ep, l->ready, MAX_READY, next_timer_ms(l, timeout_ms));
    if (n < 0) return -errno;
    l->nready = n;
    return n;
}

static unsigned net_events(uint32_t e)
{
    return (e & EPOLLIN ? NET_IN : 0) | (e & EPOLLOUT ? NET_OUT : 0) | (e & EPOLLHUP ? NET_HUP : 0) |
           (e & EPOLLERR ? NET_ERR : 0);
}

void net_dispatch(net_loop *l)
{
    while (l->next < l->nready) {
        struct epoll_event *e = &l->ready[l->next++];
        net_io *io = e->data.ptr;
        if (io) io->fn(io, net_events(e->events));
    }
    l->nready = l->next = 0;

    /* This turn's again list becomes the run list; what handlers add
     * meanwhile waits for the next turn. */
    net_io **t = l->run;
    int tc = l->caprun;
    l->run = l->again;
    l->caprun = l->capagain;
    l->nrun = l->nagain;
    l->again = t;
    l->capagain = tc;
    l->nagain = 0;
    for (int i = 0; i < l->nrun; i++)
        if (l->run[i]) l->run[i]->again = -(i + 1);
    for (int i = 0; i < l->nrun; i++) {
        net_io *io = l->run[i];
        if (!io) continue;
        l->run[i] = NULL;
        io->again = 0;
        io->fn(io, NET_IN);
    }
    l->nrun = 0;

    int64_t now = net_now_us();
    while (l->timers && l->timers->at_us <= now) {
        net_timer *tm = l->timers;
        l->timers = tm->next;
        tm->next = NULL;
        tm->armed = 0;
        tm->fn(tm);
    }
}

int net_turn(net_loop *l, int timeout_ms)
{
    int n = net_wait(l, timeout_ms);
    if (n >= 0) net_dispatch(l);
    return n;
}

void net_timer_cancel(net_loop *l, net_timer *t)
{
    if (!t->armed) return;
    for (net_timer **pp = &l->timers; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    t->next = NULL;
    t->armed = 0;
}

void net_timer_at(net_loop *l, net_timer *t, int64_t at_us, net_timer_fn *fn, void *ud)
{
    net_timer_cancel(l, t);
    t->at_us = at_us;
    t->fn = fn;
    t->ud = ud;
    net_timer **pp = &l->timers;
    while (*pp && (*pp)->at_us <= at_us) pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    t->armed = 1;
}

static void on_wake(net_io *io, unsigned ev)
{
    (void)ev;
    net_loop *l = io->ud;
    uint64_t v;
    while (read(l->wakefd, &v, sizeof v) > 0) {}
    if (l->wakefn) l->wakefn(l->wakeud);
}

int net_wake_init(net_loop *l, void (*fn)(void *), void *ud)
{
    l->wakefn = fn;
    l->wakeud = ud;
    if (l->wakefd >= 0) return 0;
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wakefd < 0) return errno;
    int e = net_add(l, &l->wakeio, l->wakefd, NET_IN, on_wake, l);
    if (e) {
        close(l->wakefd);
        l->wakefd = -1;
    }
    return e;
}

void net_wake(net_loop *l)
{
    uint64_t one = 1;
    if (l->wakefd < 0) return;
    ssize_t w = write(l->wakefd, &one, sizeof one);
    (void)w;    /* a full counter already means "wake up" */
}

/* ---- sockets ------------------------------------------------------- */

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int net_listen_local(int port, int backlog, int *port_out, char *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        kit_seterr(err, KIT_ERR, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, backlog) != 0) {
        kit_seterr(err, KIT_ERR, "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    if (port_out) *port_out = net_local_port(fd);
    return fd;
}

int net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *plen)
{
    struct sockaddr_storage dummy;
    socklen_t dl = sizeof dummy;
    if (!peer) {
        peer = &dummy;
        plen = &dl;
    }
    for (;;) {
        *plen = sizeof *peer;
        int fd = accept4(lfd, (struct sockaddr *)peer, plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR) continue;
        if (fd >= 0 && peer->ss_family != AF_UNIX) nodelay(fd);
        return fd;
    }
}

int net_connect(const struct sockaddr *sa, socklen_t len, int *in_progress)
{
    *in_progress = 0;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    /* Latency matters: a QoS 1 exchange would wait tens of ms on Nagle. */
    if (sa->sa_family != AF_UNIX) nodelay(fd);
    if (connect(fd, sa, len) != 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        *in_progress = 1;
    }
    return fd;
}

int net_connect_result(int fd)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) return errno;
    if (soerr) return soerr;
    /* SO_ERROR is 0 both when connected and while still connecting. */
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    if (getpeername(fd, (struct sockaddr *)&a, &al) != 0) return errno == ENOTCONN ? EINPROGRESS : errno;
    return 0;
}

static int port_of(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return 0;
}

int net_local_port(int fd)
{
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    return getsockname(fd, (struct sockaddr *)&a, &al) == 0 ? port_of(&a) : 0;
}

int net_peer_port(int fd)
{
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    return getpeername(fd, (struct sockaddr *)&a, &al) == 0 ? port_of(&a) : 0;
}

/* ---- connections: common ------------------------------------------- */

int net_fail(net_conn *c, int e, const char *fmt, ...)
{
    c->err = e;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(c->why);
    c->why = kit_strdup(buf);
    return NET_FAIL;
}

net_conn *net_conn_new(const net_conn_ops *ops, int fd)
{
    net_conn *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->ops = ops;
    c->fd = fd;
    return c;
}

void net_conn_free(net_conn *c)
{
    if (c) free(c->why);
    free(c);
}

/* ---- TCP ----------------------------------------------------------- */

static int tcp_handshake(net_conn *c)
{
    (void)c;
    return 0;
}

static ssize_t tcp_read(net_conn *c, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->want = NET_IN;
            return NET_AGAIN;
        }
        return net_fail(c, errno, "%s", strerror(errno));
    }
}

static ssize_t tcp_write(net_conn *c, const void *buf, size_t n)
{
    for (;;) {
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w > 0) return w;
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->want = NET_OUT;
            return NET_AGAIN;
        }
        return net_fail(c, w < 0 ? errno : EPIPE, "%s", strerror(w < 0 ? errno : EPIPE));
    }
}

static int tcp_flush(net_conn *c)
{
    (void)c;
    return 0;
}

static size_t tcp_pending(net_conn *c)
{
    (void)c;
    return 0;
}

static int tcp_shutdown(net_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    return 0;
}

static void tcp_close(net_conn *c, int reset)
{
    if (c->fd >= 0) {
        if (reset) {
            struct linger lg = { .l_onoff = 1, .l_linger = 0 };
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(c->fd);
    }
    net_conn_free(c);
}

const net_conn_ops net_tcp_ops = {
    "tcp", tcp_handshake, tcp_read, tcp_write, tcp_flush, tcp_pending, tcp_shutdown, tcp_close
};

net_conn *net_tcp(int fd)
{
    return net_conn_new(&net_tcp_ops, fd);
}

/* ---- TLS ----------------------------------------------------------- */

typedef struct {
    SSL *ssl;
    int server;
    int shut;                   /* close_notify sent */
} tls_impl;

/* Why an OpenSSL call failed, in words, into c. */
static int tls_failed(net_conn *c, SSL *ssl, int ret, int e, int errno_at)
{
    long vr = SSL_get_verify_result(ssl);
    unsigned long oe = ERR_peek_last_error();
    if (vr != X509_V_OK && !SSL_is_init_finished(ssl))
        return net_fail(c, 0, "certificate rejected: %s", X509_verify_cert_error_string(vr));
    if (oe) {
        char buf[160];
        ERR_error_string_n(oe, buf, sizeof buf);
        const char *reason = ERR_reason_error_string(oe);
        ERR_clear_error();
        return net_fail(c, 0, "TLS: %s", reason ? reason : buf);
    }
    if (e == SSL_ERROR_SYSCALL && ret < 0 && errno_at)
        return net_fail(c, errno_at, "%s", strerror(errno_at));
    return net_fail(c, ECONNRESET, "the peer closed the connection during TLS");
}

static int tls_want(net_conn *c, int e)
{
    c->want = e == SSL_ERROR_WANT_WRITE ? NET_OUT : NET_IN;
    return NET_AGAIN;
}

static int tls_handshake(net_conn *c)
{
    tls_impl *t = c->impl;
    if (SSL_is_init_finished(t->ssl)) return 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) return 0;
    int errno_at = errno;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return tls_want(c, e);
    return tls_failed(c, t->ssl, r, e, errno_at);
}

static ssize_t tls_read(net_conn *c, void *buf, size_t n)
{
    tls_impl *t = c->impl;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0) return r;
    int errno_at = errno;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return tls_want(c, e);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_SYSCALL && r == 0 && errno_at == 0 && !ERR_peek_error()) return 0;
    return tls_failed(c, t->ssl, r, e, errno_at);
}

static ssize_t tls_write(net_conn *c, const void *buf, size_t n)
{
    tls_impl *t = c->impl;
    if (n == 0) return 0;
    ERR_clear_error();
    errno = 0;
    int w = SSL_write(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    if (w > 0) return w;
    int errno_at = errno;
    int e = SSL_get_error(t->ssl, w);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return tls_want(c, e);
    return tls_failed(c, t->ssl, w, e, errno_at);
}

static size_t tls_pending(net_conn *c)
{
    tls_impl *t = c->impl;
    if (!SSL_has_pending(t->ssl)) return 0;
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 1;
}

static int tls_shutdown(net_conn *c)
{
    tls_impl *t = c->impl;
    if (!t->shut && SSL_is_init_finished(t->ssl)) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);       /* close_notify; the peer's is not awaited */
        t->shut = 1;
    }
    shutdown(c->fd, SHUT_WR);
    return 0;
}

static void tls_close(net_conn *c, int reset)
{
    tls_impl *t = c->impl;
    if (t) {
        SSL_free(t->ssl);
        free(t);
    }
    c->impl = NULL;
    tcp_close(c, reset);
}

static const net_conn_ops tls_ops = {
    "tls", tls_handshake, tls_read, tls_write, tcp_flush, tls_pending, tls_shutdown, tls_close
};

int net_tls_expect_peer(SSL *ssl, const char *host)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    SSL_set_tlsext_host_name(ssl, host);
    return SSL_set1_host(ssl, host) == 1;
}

net_conn *net_tls(int fd, SSL_CTX *ctx, int server, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A peer that closes without close_notify has ended the stream, as
     * far as MQTT is concerned: EOF, not an error. */
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        if (host && *host) net_tls_expect_peer(ssl, host);
        SSL_set_connect_state(ssl);
    }
    tls_impl *t = calloc(1, sizeof *t);
    if (!t) abort();
    t->ssl = ssl;
    t->server = server;
    net_conn *c = net_conn_new(&tls_ops, fd);
    c->impl = t;
    return c;
}

SSL_CTX *net_tls_server_ctx(const char *certfile, const char *keyfile, char *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        kit_seterr(err, KIT_ERR, "TLS: no context: %s", ERR_reason_error_string(ERR_get_error()));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        const char *why = ERR_reason_error_string(ERR_get_error());
        ERR_clear_error();
        kit_seterr(err, KIT_ERR, "TLS: cannot use %s and %s: %s", certfile, keyfile, why ? why : "unknown error");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL *net_tls_ssl(net_conn *c)
{
    return c && c->ops == &tls_ops ? ((tls_impl *)c->impl)->ssl : NULL;
}
