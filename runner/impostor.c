/*
 * impostor.c - the TLS impostor broker (see impostor.h).
 *
 * A net_loop (net.h) in a thread of its own: the listener and every
 * client are ios in it, each client a server-side net_tls connection.
 * The thread sleeps in net_turn() until a socket has something, or until
 * net_wake() from tls_impostor_report() (take in what has arrived, then
 * say so) or tls_impostor_stop().
 *
 * What it records comes from OpenSSL through net.c: the alert a client
 * aborted with (an info callback on the SSL_CTX), the reason a handshake
 * failed, the CONNECT that followed a handshake.
 */
#include "impostor.h"
#include "cleanup.h"
#include "net.h"
#include "packet.h"
#include "pki.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define IMP_MAX_CONNS 64
#define IMP_MAX_LIST 64
#define IMP_MAX_CONNECT (64 * 1024)   /* bytes kept while looking for the CONNECT */

typedef struct {
    net_io io;
    net_conn *nc;               /* server-side TLS */
    tls_impostor_t *imp;
    int open;                   /* handshake done */
    int dead;
    int alert_read;             /* the client sent an alert (info callback) */
    char alert[64];             /* its description, in case no reason is queued */
    int scan;                   /* 0: looking for a CONNECT, 1: done */
    unsigned char *in;
    size_t inlen;
    unsigned char out[8];       /* a pending CONNACK */
    size_t outlen;
} imp_conn;

struct tls_impostor {
    SSL_CTX *ctx;
    net_loop *loop;
    net_io lio;                 /* the listener */
    int lfd, port;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* Under mu: */
    int stop;
    unsigned long long sync_want, sync_done;
    tls_impostor_report_t rep;
    /* The thread's own, in accept order (alerts and client ids are
     * recorded in that order when a report takes in several at once): */
    imp_conn *conns[IMP_MAX_CONNS];
    int nconns;
};

static void list_add(char ***list, size_t *n, const char *s)
{
    if (*n >= IMP_MAX_LIST) return;
    *list = kit_xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = kit_strdup(s);
}

static void list_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

/* The test below also matches the alerts the impostor itself writes
 * (SSL_CB_WRITE_ALERT shares SSL_CB_ALERT), so a client that hangs up
 * mid-handshake is listed under alerts ("unexpected eof while
 * reading"). The labs' reports and tests were written against that. */
static void info_cb(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_READ_ALERT)) return;
    imp_conn *c = SSL_get_app_data(ssl);
    if (!c) return;
    c->alert_read = 1;
    snprintf(c->alert, sizeof c->alert, "%s", SSL_alert_desc_string_long(ret));
}

/* Is the packet at the start of b a CONNECT? Framed and decoded by the
 * kit's codec (packet.c). 1: yes (id, *v5 set), 0: need more bytes,
 * -1: something else, or more than IMP_MAX_CONNECT bytes. */
static int parse_connect(const unsigned char *b, size_t n, char *id, size_t idlen, int *v5)
{
    size_t size = 0;
    int f = pkt_frame(b, n, IMP_MAX_CONNECT, &size, NULL);
    if (f == PKT_NEED_MORE) return 0;
    if (f != PKT_COMPLETE) return -1;
    pkt p;
    if (pkt_decode(b, size, 0, &p, NULL) != KIT_OK || p.type != PKT_CONNECT) return -1;
    snprintf(id, idlen, "%.*s", (int)p.client_id.len, (const char *)p.client_id.p);
    *v5 = p.level == PKT_V5;
    return 1;
}

static void conn_flush(imp_conn *c)
{
    if (!c->outlen || c->dead) return;
    ssize_t w = net_write(c->nc, c->out, c->outlen);
    if (w > 0) {
        c->outlen -= (size_t)w;
        memmove(c->out, c->out + w, c->outlen);
        return;
    }
    if (w != NET_AGAIN) c->dead = 1;
}

/* Application bytes: look for the CONNECT at the start and answer it. */
static void conn_feed(tls_impostor_t *imp, imp_conn *c, const unsigned char *buf, size_t n)
{
    if (c->scan) return;
    size_t keep = n;
    if (c->inlen + keep > IMP_MAX_CONNECT) keep = IMP_MAX_CONNECT - c->inlen;
    c->in = kit_xrealloc(c->in, c->inlen + keep);
    memcpy(c->in + c->inlen, buf, keep);
    c->inlen += keep;
    char id[256];
    int v5 = 0;
    int p = parse_connect(c->in, c->inlen, id, sizeof id, &v5);
    if (p == 0 && c->inlen < IMP_MAX_CONNECT) return;
    c->scan = 1;
    free(c->in);
    c->in = NULL;
    c->inlen = 0;
    if (p != 1) return;
    pthread_mutex_lock(&imp->mu);
    imp->rep.connect_seen = 1;
    list_add(&imp->rep.client_ids, &imp->rep.nclient_ids, id);
    pthread_mutex_unlock(&imp->mu);
    /* CONNACK "accepted", session not present (v5: no properties). */
    static const unsigned char ack4[] = { 0x20, 0x02, 0x00, 0x00 };
    static const unsigned char ack5[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    c->outlen = v5 ? sizeof ack5 : sizeof ack4;
    memcpy(c->out, v5 ? ack5 : ack4, c->outlen);
    conn_flush(c);
}

/* A handshake that failed: the client's alert, or what else went wrong.
 * net.c has put it in words already ("TLS: " and OpenSSL's reason when
 * OpenSSL queued one); the report keeps OpenSSL's own words, as the labs
 * match them ("tlsv1 alert unknown ca", "wrong version number"). */
static void conn_failed(tls_impostor_t *imp, imp_conn *c)
{
    const char *why = net_why(c->nc);
    char buf[256];
    int reason = strncmp(why, "TLS: ", 5) == 0;
    if (reason) why += 5;
    if (!reason && c->alert_read) {
        snprintf(buf, sizeof buf, "alert %s", c->alert);
        why = buf;
    } else if (!reason && strcmp(why, "the peer closed the connection during TLS") == 0) {
        why = "the client closed the connection";
    }
    pthread_mutex_lock(&imp->mu);
    if (c->alert_read) list_add(&imp->rep.alerts, &imp->rep.nalerts, why);
    else list_add(&imp->rep.errors, &imp->rep.nerrors, why);
    pthread_mutex_unlock(&imp->mu);
}

/* Move a connection on as far as it goes without blocking. */
static void conn_progress(tls_impostor_t *imp, imp_conn *c)
{
    if (c->dead) return;
    if (!c->open) {
        int r = net_handshake(c->nc);
        if (r == NET_AGAIN) return;
        if (r != 0) {
            conn_failed(imp, c);
            c->dead = 1;
            return;
        }
        c->open = 1;
        pthread_mutex_lock(&imp->mu);
        imp->rep.handshakes++;
        pthread_mutex_unlock(&imp->mu);
    }
    conn_flush(c);
    while (!c->dead) {
        unsigned char buf[4096];
        ssize_t r = net_read(c->nc, buf, sizeof buf);
        if (r > 0) {
            pthread_mutex_lock(&imp->mu);
            imp->rep.bytes_after += r;
            pthread_mutex_unlock(&imp->mu);
            conn_feed(imp, c, buf, (size_t)r);
            continue;
        }
        if (r == NET_AGAIN) break;
        c->dead = 1;    /* closed by the client, or broken: either way, done */
    }
}

/* Out of the loop and freed: no close_notify, as a broker that drops a
 * client would. */
static void conn_drop(tls_impostor_t *imp, imp_conn *c)
{
    for (int i = 0; i < imp->nconns; i++)
        if (imp->conns[i] == c) {
            memmove(&imp->conns[i], &imp->conns[i + 1], (size_t)(imp->nconns - i - 1) * sizeof c);
            imp->nconns--;
            break;
        }
    net_del(&c->io);
    net_close(c->nc, 0);
    free(c->in);
    free(c);
}

/* Progress c, then wait for what it needs next: what the TLS layer
 * asked for, and writable while a CONNACK is pending. Returns 1 when c
 * is done and was dropped. The read loop ends on NET_AGAIN, so OpenSSL
 * holds nothing readable: no net_again() is needed. */
static int conn_step(tls_impostor_t *imp, imp_conn *c)
{
    conn_progress(imp, c);
    if (c->dead) {
        conn_drop(imp, c);
        return 1;
    }
    unsigned mask = c->nc->want ? c->nc->want : NET_IN;
    if (c->outlen) mask |= NET_OUT;
    if (net_set(&c->io, mask) != 0) {
        conn_drop(imp, c);
        return 1;
    }
    return 0;
}

static void on_conn(net_io *io, unsigned events)
{
    (void)events;   /* a hang-up or an error shows in the next read */
    imp_conn *c = io->ud;
    conn_step(c->imp, c);
}

static void refused(tls_impostor_t *imp, const char *why)
{
    pthread_mutex_lock(&imp->mu);
    list_add(&imp->rep.errors, &imp->rep.nerrors, why);
    pthread_mutex_unlock(&imp->mu);
}

static void accept_all(tls_impostor_t *imp)
{
    for (;;) {
        int fd = net_accept(imp->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == ECONNABORTED) continue;
            return;
        }
        pthread_mutex_lock(&imp->mu);
        imp->rep.connections++;
        pthread_mutex_unlock(&imp->mu);
        if (imp->nconns >= IMP_MAX_CONNS) {
            refused(imp, "too many connections at once");
            close(fd);
            continue;
        }
        net_conn *nc = net_tls(fd, imp->ctx, 1, NULL);
        if (!nc) {
            refused(imp, "cannot make a TLS session");
            close(fd);
            continue;
        }
        SSL *ssl = net_tls_ssl(nc);
        /* net_tls takes an EOF without close_notify as the end of the
         * stream; here a client that hangs up mid-handshake is reported
         * as OpenSSL words it ("unexpected eof while reading"). */
        SSL_clear_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
        imp_conn *c = kit_xmalloc(sizeof *c);
        memset(c, 0, sizeof *c);
        c->nc = nc;
        c->imp = imp;
        SSL_set_app_data(ssl, c);
        if (net_add(imp->loop, &c->io, fd, NET_IN, on_conn, c) != 0) {
            refused(imp, "cannot watch the connection");
            net_close(nc, 0);
            free(c);
            continue;
        }
        imp->conns[imp->nconns++] = c;
        conn_step(imp, c);
    }
}

static void on_listener(net_io *io, unsigned events)
{
    (void)events;
    accept_all(io->ud);
}

static void *imp_main(void *arg)
{
    tls_impostor_t *imp = arg;
    unsigned long long done = 0;
    for (;;) {
        /* No timeout: every reason to act is a descriptor, the wake-ups
         * from report and stop included. */
        int n = net_turn(imp->loop, -1);
        if (n < 0 && n != -EINTR) {
            struct timespec ts = { 0, 10 * 1000000L };
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&imp->mu);
        int stop = imp->stop;
        unsigned long long want = imp->sync_want;
        pthread_mutex_unlock(&imp->mu);
        if (stop) break;
        if (want == done) continue;

        /* A report asked for: take in everything that has arrived. */
        for (int i = 0; i < imp->nconns;)
            if (!conn_step(imp, imp->conns[i])) i++;
        accept_all(imp);
        done = want;
        pthread_mutex_lock(&imp->mu);
        imp->sync_done = want;
        pthread_cond_broadcast(&imp->cond);
        pthread_mutex_unlock(&imp->mu);
    }
    while (imp->nconns) conn_drop(imp, imp->conns[0]);
    return NULL;
}

void tls_impostor_stop(tls_impostor_t *imp)
{
    if (!imp) return;
    if (imp->thread_started) {
        pthread_mutex_lock(&imp->mu);
        imp->stop = 1;
        pthread_mutex_unlock(&imp->mu);
        net_wake(imp->loop);
        pthread_join(imp->thread, NULL);
    }
    if (imp->loop && imp->lfd >= 0) net_del(&imp->lio);
    if (imp->lfd >= 0) close(imp->lfd);
    net_loop_free(imp->loop);
    SSL_CTX_free(imp->ctx);
    tls_impostor_report_free(&imp->rep);
    pthread_cond_destroy(&imp->cond);
    pthread_mutex_destroy(&imp->mu);
    free(imp);
}

int tls_impostor_start(tls_impostor_t **out, const char *cert, const char *key, char *err)
{
    if (!out) return kit_seterr(err, KIT_EINVAL, "tls_impostor_start: no result");
    *out = NULL;
    if (!cert || !*cert || !key || !*key)
        return kit_seterr(err, KIT_EINVAL, "the impostor needs a certificate and a key");
    if (!kit_file_exists(cert)) return kit_seterr(err, KIT_ENOENT, "no certificate file %s", cert);
    if (!kit_file_exists(key)) return kit_seterr(err, KIT_ENOENT, "no key file %s", key);

    int rc = KIT_ERR;
    char why[KIT_ERRLEN];
    tls_impostor_t *imp = calloc(1, sizeof *imp);
    if (!imp) return kit_seterr(err, KIT_ERR, "out of memory");
    imp->lfd = -1;
    pthread_mutex_init(&imp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&imp->cond, &ca);
    pthread_condattr_destroy(&ca);

    ERR_clear_error();
    imp->ctx = SSL_CTX_new(TLS_server_method());
    if (!imp->ctx) {
        rc = kit_seterr(err, KIT_ERR, "cannot make a TLS context: %s", tls_ossl_reason());
        goto cleanup;
    }
    if (SSL_CTX_use_certificate_chain_file(imp->ctx, cert) != 1) {
        rc = kit_seterr(err, KIT_ENOENT, "cannot load the certificate %s: %s", cert, tls_ossl_reason());
        goto cleanup;
    }
    if (SSL_CTX_use_PrivateKey_file(imp->ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(imp->ctx) != 1) {
        rc = kit_seterr(err, KIT_ENOENT, "cannot use the key %s with %s: %s", key, cert, tls_ossl_reason());
        goto cleanup;
    }
    SSL_CTX_set_info_callback(imp->ctx, info_cb);

    imp->loop = net_loop_new(why);
    if (!imp->loop) {
        rc = kit_seterr(err, KIT_ERR, "impostor: %s", why);
        goto cleanup;
    }
    /* Port 0: the kernel picks a free one, no race with kit_free_port. */
    imp->lfd = net_listen_local(0, 128, &imp->port, why);
    if (imp->lfd < 0) {
        rc = kit_seterr(err, KIT_ERR, "impostor: %s", why);
        goto cleanup;
    }
    int e = net_add(imp->loop, &imp->lio, imp->lfd, NET_IN, on_listener, imp);
    if (e == 0) e = net_wake_init(imp->loop, NULL, NULL);
    if (e != 0) {
        rc = kit_seterr(err, KIT_ERR, "impostor: %s", strerror(e));
        goto cleanup;
    }

    /* The thread inherits a full mask: SIGINT/SIGCHLD go to the main
     * thread, whose waits watch for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int trc = pthread_create(&imp->thread, NULL, imp_main, imp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (trc != 0) {
        rc = kit_seterr(err, KIT_ERR, "impostor: cannot start its thread: %s", strerror(trc));
        goto cleanup;
    }
    imp->thread_started = 1;
    *out = imp;
    ERR_clear_error();
    return KIT_OK;

cleanup:
    ERR_clear_error();
    tls_impostor_stop(imp);
    return rc;
}

int tls_impostor_port(const tls_impostor_t *imp)
{
    return imp ? imp->port : 0;
}

static char **list_copy(char **list, size_t n)
{
    char **c = kit_xmalloc((n ? n : 1) * sizeof *c);
    for (size_t i = 0; i < n; i++) c[i] = kit_strdup(list[i]);
    return c;
}

int tls_impostor_report(tls_impostor_t *imp, tls_impostor_report_t *out)
{
    if (!out) return KIT_EINVAL;
    memset(out, 0, sizeof *out);
    if (!imp) return KIT_EINVAL;
    int rc = KIT_OK;
    pthread_mutex_lock(&imp->mu);
    unsigned long long want = ++imp->sync_want;
    pthread_mutex_unlock(&imp->mu);
    net_wake(imp->loop);

    /* The thread answers within a pass of its loop; the bound is only
     * there so a wedged peer can never hold the caller. */
    int64_t end = kit_now_ms() + 2000;
    pthread_mutex_lock(&imp->mu);
    while (imp->sync_done < want && kit_now_ms() < end) {
        if (cleanup_interrupted()) { rc = KIT_EINTR; break; }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&imp->cond, &imp->mu, &ts);
    }
    const tls_impostor_report_t *r = &imp->rep;
    out->connections = r->connections;
    out->handshakes = r->handshakes;
    out->bytes_after = r->bytes_after;
    out->connect_seen = r->connect_seen;
    out->client_ids = list_copy(r->client_ids, r->nclient_ids);
    out->nclient_ids = r->nclient_ids;
    out->alerts = list_copy(r->alerts, r->nalerts);
    out->nalerts = r->nalerts;
    out->errors = list_copy(r->errors, r->nerrors);
    out->nerrors = r->nerrors;
    pthread_mutex_unlock(&imp->mu);
    return rc;
}

void tls_impostor_report_free(tls_impostor_report_t *r)
{
    if (!r) return;
    list_free(r->client_ids, r->nclient_ids);
    list_free(r->alerts, r->nalerts);
    list_free(r->errors, r->nerrors);
    memset(r, 0, sizeof *r);
}
