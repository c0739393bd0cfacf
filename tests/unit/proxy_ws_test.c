/*
 * proxy_ws_test.c - the fault proxy's WebSocket port against a real
 * mosquitto: MQTT over ws:// and wss:// (the kit's ws_client, as
 * mqtt.js in a browser would speak it), the trace's transport marks,
 * rules on that port, the refusals (garbage instead of an upgrade, a
 * handshake never finished), and MQTT packets cut across frames or
 * packed several to a frame.
 *
 * As in proxy_test.c, "did not happen" is shown by ordering, and every
 * wait has a generous deadline with no upper bound on time asserted.
 * Tests run from the repository root (broker-config/plain.conf).
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
#include <unistd.h>

#include <openssl/ssl.h>

#include "broker.h"
#include "mqtt.h"
#include "net.h"
#include "packet.h"
#include "pki.h"
#include "proxy.h"
#include "testutil.h"
#include "util.h"
#include "ws.h"

#define WAIT_MS 10000

static broker_t *the_broker;
static char pki[128];           /* the kit's PKI, made for this suite */
static SSL_CTX *server_ctx, *client_ctx;

static int suite_init(void)
{
    char err[KIT_ERRLEN] = "";
    char *tmpl = kit_read_file("broker-config/plain.conf", NULL, err);
    if (!tmpl) {
        fprintf(stderr, "proxy ws tests: %s\n", err);
        return 1;
    }
    broker_opts_t o = { .name = "plain", .tmpl = tmpl };
    int rc = broker_start(&the_broker, &o, err);
    free(tmpl);
    if (rc != KIT_OK) {
        fprintf(stderr, "proxy ws tests: %s\n", err);
        the_broker = NULL;
        return 1;
    }
    snprintf(pki, sizeof pki, "/tmp/mqlab-pxwstest-XXXXXX");
    if (!mkdtemp(pki) || tls_pki_ensure(pki, NULL, NULL, err) != KIT_OK) {
        fprintf(stderr, "proxy ws tests: %s\n", err);
        return 1;
    }
    char crt[256], key[256], ca[256];
    snprintf(crt, sizeof crt, "%s/server.crt", pki);
    snprintf(key, sizeof key, "%s/server.key", pki);
    snprintf(ca, sizeof ca, "%s/ca.crt", pki);
    server_ctx = net_tls_server_ctx(crt, key, err);
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (!server_ctx || !client_ctx || SSL_CTX_load_verify_locations(client_ctx, ca, NULL) != 1) {
        fprintf(stderr, "proxy ws tests: TLS contexts: %s\n", err);
        return 1;
    }
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
    return 0;
}

static int suite_clean(void)
{
    broker_free(the_broker);
    the_broker = NULL;
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    server_ctx = client_ctx = NULL;
    if (pki[0]) kit_rm_rf(pki);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Hand-built MQTT 3.1.1 (as proxy_test.c)                            */

/* The length of the whole packet at b (fixed header included), or 0
 * when it is not all there. */
static size_t packet_len(const uint8_t *b, size_t len)
{
    size_t rem = 0, k = 1;
    for (int shift = 0; shift < 28; shift += 7, k++) {
        if (k >= len) return 0;
        rem |= (size_t)(b[k] & 0x7f) << shift;
        if (!(b[k] & 0x80)) break;
    }
    return len >= k + 1 + rem ? k + 1 + rem : 0;
}

/* ------------------------------------------------------------------ */
/* A client: the kit's ws_client over TCP or TLS, driven with poll    */

typedef struct {
    net_conn *c;
    int fd;
    uint8_t *rx;                /* MQTT bytes read, not yet taken */
    size_t rxlen, rxcap;
    int eof, failed;
} wcli;

static int wait_io(int fd, unsigned want, int64_t end)
{
    int64_t left = (end - net_now_us()) / 1000;
    if (left <= 0) return 0;
    struct pollfd p = { fd, (short)((want & NET_OUT ? POLLOUT : 0) | (want & NET_IN ? POLLIN : 0)), 0 };
    if (!p.events) p.events = POLLIN;
    return poll(&p, 1, (int)(left > 100 ? 100 : left)) >= 0;
}

static int local_connect(int port)
{
    struct sockaddr_in a = { 0 };
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int inprog = 0;
    int fd = net_connect((struct sockaddr *)&a, sizeof a, &inprog);
    if (fd < 0) return -1;
    if (inprog) {
        struct pollfd p = { fd, POLLOUT, 0 };
        if (poll(&p, 1, WAIT_MS) != 1 || net_connect_result(fd) != 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* Open ws:// (tls NULL) or wss:// to the proxy's WebSocket port. */
static int wc_open(wcli *w, int port, SSL_CTX *tls)
{
    memset(w, 0, sizeof *w);
    w->fd = local_connect(port);
    if (w->fd < 0) return -1;
    net_conn *in = tls ? net_tls(w->fd, tls, 0, "127.0.0.1") : net_tcp(w->fd);
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    w->c = ws_client(in, host, "/mqtt", NULL);
    int64_t end = net_now_us() + WAIT_MS * 1000LL;
    for (;;) {
        int r = net_handshake(w->c);
        if (r == 0) return 0;
        if (r == NET_FAIL || !wait_io(w->fd, w->c->want, end)) {
            fprintf(stderr, "ws client handshake: %s\n", net_why(w->c));
            return -1;
        }
    }
}

static void wc_close(wcli *w)
{
    net_close(w->c, 0);
    w->c = NULL;
    free(w->rx);
    w->rx = NULL;
}

static int wc_flush(wcli *w, int64_t end)
{
    for (;;) {
        int r = net_flush(w->c);
        if (r == 0) return 0;
        if (r == NET_FAIL || !wait_io(w->fd, w->c->want, end)) return -1;
    }
}

/* Send bytes as the variant frames them (one binary frame a write). */
static int wc_send(wcli *w, const void *buf, size_t n)
{
    int64_t end = net_now_us() + WAIT_MS * 1000LL;
    const uint8_t *p = buf;
    while (n) {
        ssize_t r = net_write(w->c, p, n);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == NET_FAIL || !wait_io(w->fd, w->c->want, end)) return -1;
    }
    return wc_flush(w, end);
}

/* Read what the socket has into rx; 0 at the deadline or once some
 * bytes came, -1 at the end or on a failure. */
static int wc_fill(wcli *w, int64_t end)
{
    for (;;) {
        if (w->rxcap - w->rxlen < 65536) {
            w->rxcap = w->rxcap ? w->rxcap * 2 : 1 << 17;
            w->rx = kit_xrealloc(w->rx, w->rxcap);
        }
        ssize_t r = net_read(w->c, w->rx + w->rxlen, w->rxcap - w->rxlen);
        if (r > 0) {
            w->rxlen += (size_t)r;
            net_flush(w->c);    /* pongs */
            return 0;
        }
        if (r == 0) {
            w->eof = 1;
            return -1;
        }
        if (r == NET_FAIL) {
            w->failed = 1;
            return -1;
        }
        if (!wait_io(w->fd, w->c->want, end)) return 0;
        if (net_now_us() > end) return 0;
    }
}

/* The next MQTT packet from the proxy into out (its length), 0 when none
 * came in time, -1 at the end of the stream. */
static long wc_packet(wcli *w, uint8_t **out)
{
    int64_t end = net_now_us() + WAIT_MS * 1000LL;
    for (;;) {
        size_t n = packet_len(w->rx, w->rxlen);
        if (n) {
            *out = kit_xmalloc(n);
            memcpy(*out, w->rx, n);
            memmove(w->rx, w->rx + n, w->rxlen - n);
            w->rxlen -= n;
            return (long)n;
        }
        if (net_now_us() > end) return 0;
        if (wc_fill(w, end) < 0) return -1;
    }
}

/* The next packet is of type (PKT_*), and has packet id `id` when id >= 0. */
static int wc_expect(wcli *w, int type, int id)
{
    uint8_t *p = NULL;
    long n = wc_packet(w, &p);
    int ok = n >= 2 && (p[0] >> 4) == type;
    if (ok && id >= 0) {
        size_t k = 1;
        while (p[k] & 0x80) k++;
        k++;
        if (type == PKT_PUBLISH && (long)k + 2 <= n) k += 2 + (size_t)((p[k] << 8) | p[k + 1]);
        ok = (long)k + 2 <= n && ((p[k] << 8) | p[k + 1]) == id;
    }
    if (!ok)
        fprintf(stderr, "wanted packet type %d id %d, got %ld bytes, type %d\n", type, id, n, n > 0 ? p[0] >> 4 : -1);
    free(p);
    return ok;
}

/* CONNECT, and its CONNACK. */
static int wc_mqtt(wcli *w, int port, SSL_CTX *tls, const char *id)
{
    if (wc_open(w, port, tls) != 0) return -1;
    uint8_t b[300];
    size_t n = tu_mk_connect(b, id, 60, NULL, NULL, 0);
    if (wc_send(w, b, n) != 0 || !wc_expect(w, PKT_CONNACK, -1)) return -1;
    return 0;
}

static int wc_publish(wcli *w, const char *topic, const void *payload, size_t len, int qos, int id)
{
    uint8_t *b = kit_xmalloc(len + strlen(topic) + 16);
    size_t n = tu_mk_publish(b, topic, payload, len, qos, id);
    int r = wc_send(w, b, n);
    free(b);
    return r;
}

/* Raw masked frames written straight to the socket, behind the variant
 * (ws:// only, with nothing queued in it): the test decides where
 * frames begin and end. */
static int raw_frame(int fd, int fin, int opcode, const void *p, size_t n)
{
    uint8_t mask[4] = { 0x11, 0x22, 0x33, 0x44 };
    uint8_t *f = kit_xmalloc(14 + n);
    size_t h = ws_frame_header(f, fin, opcode, n, mask);
    memcpy(f + h, p, n);
    ws_unmask(f + h, n, mask, 0);
    size_t off = 0;
    int rc = 0;
    while (off < h + n) {
        ssize_t w = send(fd, f + off, h + n - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            struct pollfd pf = { fd, POLLOUT, 0 };
            poll(&pf, 1, 100);
            continue;
        }
        if (w <= 0) {
            rc = -1;
            break;
        }
        off += (size_t)w;
    }
    free(f);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The proxy and its trace                                            */

static proxy *start_ws_proxy(SSL_CTX *tls, int handshake_ms)
{
    char err[KIT_ERRLEN] = "";
    px_opts o = { .upstream_port = broker_port(the_broker), .websocket = 1, .ws_tls = tls,
                  .handshake_ms = handshake_ms };
    proxy *p = NULL;
    int rc = proxy_start(&o, &p, err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    if (rc != KIT_OK) fprintf(stderr, "proxy_start: %s\n", err);
    if (p) {
        CU_ASSERT(proxy_ws_port(p) > 0);
        CU_ASSERT(proxy_ws_port(p) != proxy_port(p));
    }
    return p;
}

/* The nth (1-based) event of kind (type -1: any; dir -1: any; conn 0:
 * any), waiting for it up to WAIT_MS. */
static const px_event *wait_ev(proxy *p, int kind, int type, int dir, unsigned conn, int nth)
{
    int64_t end = kit_now_ms() + WAIT_MS;
    for (;;) {
        size_t n = proxy_count(p);
        int seen = 0;
        for (size_t i = 0; i < n; i++) {
            const px_event *e = proxy_event(p, i);
            if (e && e->kind == kind && (type < 0 || e->type == type) && (dir < 0 || e->dir == dir) &&
                (!conn || e->conn == conn) && ++seen == nth)
                return e;
        }
        int64_t left = end - kit_now_ms();
        if (left <= 0) return NULL;
        if (proxy_wait(p, n, (int)left) == KIT_EINTR) return NULL;
    }
}

/* Every event of connection conn has this transport. */
static int all_marked(proxy *p, unsigned conn, int transport)
{
    size_t n = proxy_count(p);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        const px_event *e = proxy_event(p, i);
        if (e->conn != conn) continue;
        seen++;
        if (e->transport != transport) return 0;
    }
    return seen > 0;
}

static mq_client_t *observer(const char *id, const char *filter)
{
    char err[KIT_ERRLEN] = "";
    mq_opts_t o = { .port = broker_port(the_broker), .id = id, .clean = 1 };
    mq_client_t *c = NULL;
    int rc = -1;
    CU_ASSERT_EQUAL_FATAL(mq_connect(&c, &o, &rc, err), KIT_OK);
    int granted = -1;
    CU_ASSERT_EQUAL(mq_subscribe(c, filter, 1, WAIT_MS, &granted, err), KIT_OK);
    return c;
}

static int next_msg(mq_client_t *obs, const char *topic, const void *payload, size_t len)
{
    mq_message_t *m = mq_wait_message(obs, NULL, WAIT_MS, NULL);
    if (!m) {
        fprintf(stderr, "no message (wanted %s)\n", topic);
        return 0;
    }
    int ok = strcmp(m->topic, topic) == 0 && (size_t)m->len == len && memcmp(m->payload, payload, len) == 0;
    if (!ok) fprintf(stderr, "got %s (%d bytes), wanted %s (%zu bytes)\n", m->topic, m->len, topic, len);
    mq_message_free(m);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */

static void TEST_pubsub_over_ws(void)
{
    proxy *p = start_ws_proxy(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(px_transport_name(PX_TR_WS), "ws");
    wcli sub, pub;
    CU_ASSERT_EQUAL_FATAL(wc_mqtt(&sub, proxy_ws_port(p), NULL, "pxws-sub"), 0);
    uint8_t b[300];
    CU_ASSERT_EQUAL(wc_send(&sub, b, tu_mk_subscribe(b, 1, "pxws/t", 1)), 0);
    CU_ASSERT(wc_expect(&sub, PKT_SUBACK, 1));
    CU_ASSERT_EQUAL_FATAL(wc_mqtt(&pub, proxy_ws_port(p), NULL, "pxws-pub"), 0);
    CU_ASSERT_EQUAL(wc_publish(&pub, "pxws/t", "hello", 5, 1, 7), 0);
    CU_ASSERT(wc_expect(&pub, PKT_PUBACK, 7));
    uint8_t *m = NULL;
    long n = wc_packet(&sub, &m);
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_EQUAL(m[0] >> 4, PKT_PUBLISH);
    CU_ASSERT(n >= 5 && memcmp(m + n - 5, "hello", 5) == 0);
    free(m);

    /* A plain client on the same proxy is marked tcp. */
    int fd = local_connect(proxy_port(p));
    CU_ASSERT_FATAL(fd >= 0);
    size_t cn = tu_mk_connect(b, "pxws-plain", 60, NULL, NULL, 0);
    CU_ASSERT_EQUAL(send(fd, b, cn, MSG_NOSIGNAL), (ssize_t)cn);

    /* The trace: connections 1 and 2 over ws, 3 over tcp. */
    const px_event *e = wait_ev(p, PX_EV_OPEN, -1, -1, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->transport, PX_TR_WS);
    CU_ASSERT_STRING_EQUAL(px_transport_name(e->transport), "ws");
    CU_ASSERT(strstr(e->text, "over ws") != NULL);
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 2, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->transport, PX_TR_WS);
    CU_ASSERT_EQUAL(e->packet_id, 7);
    CU_ASSERT_STRING_EQUAL(e->topic, "pxws/t");
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_DOWN, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->transport, PX_TR_WS);
    e = wait_ev(p, PX_EV_PACKET, PKT_CONNACK, PX_DOWN, 3, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->transport, PX_TR_TCP);
    CU_ASSERT(all_marked(p, 1, PX_TR_WS));
    CU_ASSERT(all_marked(p, 2, PX_TR_WS));
    CU_ASSERT(all_marked(p, 3, PX_TR_TCP));
    close(fd);
    wc_close(&sub);
    wc_close(&pub);
    proxy_free(p);
}

/* A rule applies on the WebSocket port as on the plain one. */
static void TEST_drop_puback_over_ws(void)
{
    proxy *p = start_ws_proxy(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char err[KIT_ERRLEN];
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = PX_DROP;
    r.type = PKT_PUBACK;
    r.dir = PX_DOWN;
    r.nth = 1;
    int rule = proxy_add_rule(p, &r, err);
    CU_ASSERT_FATAL(rule >= 0);
    wcli w;
    CU_ASSERT_EQUAL_FATAL(wc_mqtt(&w, proxy_ws_port(p), NULL, "pxws-drop"), 0);
    CU_ASSERT_EQUAL(wc_publish(&w, "pxws/drop", "1", 1, 1, 1), 0);
    CU_ASSERT_EQUAL(wc_publish(&w, "pxws/drop", "2", 1, 1, 2), 0);
    /* PUBACK 1 would come before PUBACK 2 had it been forwarded. */
    CU_ASSERT(wc_expect(&w, PKT_PUBACK, 2));
    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBACK, PX_DOWN, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->packet_id, 1);
    CU_ASSERT_EQUAL(e->fate, PX_DROPPED);
    CU_ASSERT_EQUAL(e->transport, PX_TR_WS);
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);
    wc_close(&w);
    proxy_free(p);
}

/* Read to the end of the stream (or WAIT_MS); the bytes, NUL-terminated. */
static char *read_to_end(int fd, size_t *len, int *eof)
{
    size_t cap = 65536;
    char *buf = kit_xmalloc(cap + 1);
    *len = 0;
    *eof = 0;
    int64_t end = net_now_us() + WAIT_MS * 1000LL;
    while (*len < cap && net_now_us() < end) {
        struct pollfd pf = { fd, POLLIN, 0 };
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t n = recv(fd, buf + *len, cap - *len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *eof = 1;
            break;
        }
        *len += (size_t)n;
    }
    buf[*len] = '\0';
    return buf;
}

static int has_error(proxy *p, const char *what)
{
    int64_t end = kit_now_ms() + WAIT_MS;
    for (;;) {
        size_t n = proxy_count(p);
        for (size_t i = 0; i < n; i++) {
            const px_event *e = proxy_event(p, i);
            if (e->kind == PX_EV_ERROR && e->text && strstr(e->text, what)) return 1;
        }
        int64_t left = end - kit_now_ms();
        if (left <= 0 || proxy_wait(p, n, (int)left) != KIT_OK) return 0;
    }
}

/* An MQTT client pointed at the WebSocket port by mistake: an HTTP 400,
 * an error in the trace, and the proxy serves the next one. */
static void TEST_garbage_instead_of_upgrade(void)
{
    proxy *p = start_ws_proxy(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int fd = local_connect(proxy_ws_port(p));
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t b[300];
    size_t n = tu_mk_connect(b, "pxws-lost", 60, NULL, NULL, 0);
    CU_ASSERT_EQUAL(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
    size_t len;
    int eof;
    char *resp = read_to_end(fd, &len, &eof);
    CU_ASSERT(eof);
    CU_ASSERT_EQUAL(strncmp(resp, "HTTP/1.1 400 ", 13), 0);
    free(resp);
    close(fd);
    CU_ASSERT(has_error(p, "handshake failed"));
    const px_event *e = wait_ev(p, PX_EV_ERROR, -1, -1, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->transport, PX_TR_WS);
    /* It never reached the broker: no packet of its in the trace (it
     * is closed: none can come later). */
    int packets = 0;
    for (size_t i = 0; i < proxy_count(p); i++) {
        const px_event *ev = proxy_event(p, i);
        if (ev->conn == 1 && ev->kind == PX_EV_PACKET) packets++;
    }
    CU_ASSERT_EQUAL(packets, 0);

    /* A GET that is not an upgrade: refused too. */
    fd = local_connect(proxy_ws_port(p));
    static const char get[] = "GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n";
    CU_ASSERT_EQUAL(send(fd, get, sizeof get - 1, MSG_NOSIGNAL), (ssize_t)sizeof get - 1);
    resp = read_to_end(fd, &len, &eof);
    CU_ASSERT(eof);
    CU_ASSERT(strncmp(resp, "HTTP/1.1 4", 10) == 0);
    free(resp);
    close(fd);

    wcli w;
    CU_ASSERT_EQUAL(wc_mqtt(&w, proxy_ws_port(p), NULL, "pxws-after"), 0);
    wc_close(&w);
    proxy_free(p);
}

/* A client that never finishes its opening handshake is closed. */
static void TEST_handshake_timeout(void)
{
    proxy *p = start_ws_proxy(NULL, 500);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int silent = local_connect(proxy_ws_port(p));
    int half = local_connect(proxy_ws_port(p));
    CU_ASSERT_FATAL(silent >= 0 && half >= 0);
    static const char part[] = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
    CU_ASSERT_EQUAL(send(half, part, sizeof part - 1, MSG_NOSIGNAL), (ssize_t)sizeof part - 1);
    size_t len;
    int eof;
    char *r = read_to_end(silent, &len, &eof);
    CU_ASSERT(eof);
    CU_ASSERT_EQUAL(len, 0);
    free(r);
    r = read_to_end(half, &len, &eof);
    CU_ASSERT(eof);
    free(r);
    close(silent);
    close(half);
    CU_ASSERT(has_error(p, "did not finish its ws handshake"));
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_ERROR, -1, -1, 2, 1));
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_CLOSE, -1, -1, 2, 1));
    /* The deadline is the handshake's only: a client that finished it
     * may stay silent longer. */
    wcli w;
    CU_ASSERT_EQUAL_FATAL(wc_mqtt(&w, proxy_ws_port(p), NULL, "pxws-slow"), 0);
    usleep(800 * 1000);
    CU_ASSERT_EQUAL(wc_publish(&w, "pxws/slow", "x", 1, 1, 3), 0);
    CU_ASSERT(wc_expect(&w, PKT_PUBACK, 3));
    wc_close(&w);
    proxy_free(p);
}

/* MQTT packets cut across frames (and across the fragments of one
 * message), and several packets in one frame, reach the broker intact. */
static void TEST_packets_and_frames(void)
{
    proxy *p = start_ws_proxy(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    mq_client_t *obs = observer("pxws-obs", "pxws/frames/#");
    wcli w;
    CU_ASSERT_EQUAL_FATAL(wc_open(&w, proxy_ws_port(p), NULL), 0);
    CU_ASSERT_EQUAL(ws_unsent(w.c), 0);

    /* CONNECT, SUBSCRIBE and three PUBLISHes (one of 100 KB) in a
     * single byte stream, then frames cut at awkward places. */
    size_t big = 100 * 1000;
    uint8_t *payload = kit_xmalloc(big);
    for (size_t i = 0; i < big; i++) payload[i] = (uint8_t)('a' + i % 26);
    uint8_t *s = kit_xmalloc(big + 1024);
    size_t n = tu_mk_connect(s, "pxws-frames", 60, NULL, NULL, 0);
    size_t connect_len = n;
    n += tu_mk_subscribe(s + n, 1, "pxws/frames/back", 1);
    size_t p1 = n;
    n += tu_mk_publish(s + n, "pxws/frames/a", "one", 3, 1, 10);
    n += tu_mk_publish(s + n, "pxws/frames/b", "two", 3, 0, 0);
    size_t p3 = n;
    n += tu_mk_publish(s + n, "pxws/frames/big", payload, big, 1, 11);
    size_t p4 = n;
    n += tu_mk_publish(s + n, "pxws/frames/back", "echo", 4, 1, 12);

    /* The CONNECT's first 3 bytes alone; the rest of it with the
     * SUBSCRIBE, the first PUBLISH and half the second in one frame. */
    CU_ASSERT_EQUAL(raw_frame(w.fd, 1, WS_BINARY, s, 3), 0);
    size_t half = p1 + (p3 - p1) / 2 + 4;
    CU_ASSERT_EQUAL(raw_frame(w.fd, 1, WS_BINARY, s + 3, half - 3), 0);
    /* The rest of that PUBLISH and the start of the big one, as one
     * message in three fragments (FIN clear, then continuations). */
    size_t cut1 = p3 + 7, cut2 = p3 + 5000;
    CU_ASSERT_EQUAL(raw_frame(w.fd, 0, WS_BINARY, s + half, cut1 - half), 0);
    CU_ASSERT_EQUAL(raw_frame(w.fd, 0, WS_CONT, s + cut1, cut2 - cut1), 0);
    CU_ASSERT_EQUAL(raw_frame(w.fd, 1, WS_CONT, s + cut2, 1), 0);
    /* A ping between messages changes nothing in the stream. */
    CU_ASSERT_EQUAL(raw_frame(w.fd, 1, WS_PING, "p", 1), 0);
    /* The big one in 1000-byte frames, an empty frame among them, and
     * the last PUBLISH whole behind its end in the same frame. */
    size_t off = cut2 + 1;
    int k = 0;
    while (off < p4) {
        size_t step = p4 - off < 1000 ? p4 - off : 1000;
        if (step == p4 - off) step = n - off;      /* last frame: with the echo */
        CU_ASSERT_EQUAL_FATAL(raw_frame(w.fd, 1, WS_BINARY, s + off, step), 0);
        off += step;
        if (++k == 3) CU_ASSERT_EQUAL(raw_frame(w.fd, 1, WS_BINARY, "", 0), 0);
    }
    (void)connect_len;

    CU_ASSERT(wc_expect(&w, PKT_CONNACK, -1));
    CU_ASSERT(wc_expect(&w, PKT_SUBACK, 1));
    CU_ASSERT(next_msg(obs, "pxws/frames/a", "one", 3));
    CU_ASSERT(next_msg(obs, "pxws/frames/b", "two", 3));
    CU_ASSERT(next_msg(obs, "pxws/frames/big", payload, big));
    CU_ASSERT(next_msg(obs, "pxws/frames/back", "echo", 4));
    /* The PUBACKs, and the echo sent back over the WebSocket. */
    int acks = 0, echo = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t *m = NULL;
        long len = wc_packet(&w, &m);
        if (len <= 0) break;
        if (m[0] >> 4 == PKT_PUBACK) acks++;
        if (m[0] >> 4 == PKT_PUBLISH && len >= 4 && memcmp(m + len - 4, "echo", 4) == 0) echo++;
        free(m);
    }
    CU_ASSERT_EQUAL(acks, 3);
    CU_ASSERT_EQUAL(echo, 1);
    /* The trace saw each packet whole and decoded. */
    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 1, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->decoded, 1);
    CU_ASSERT_EQUAL(e->payload_len, big);
    CU_ASSERT_EQUAL(e->transport, PX_TR_WS);
    free(s);
    free(payload);
    wc_close(&w);
    mq_free(obs);
    proxy_free(p);
}

/* wss:// with a server certificate from the kit's PKI, checked by the
 * client against the kit's CA and 127.0.0.1. */
static void TEST_wss(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(server_ctx);
    proxy *p = start_ws_proxy(server_ctx, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(px_transport_name(PX_TR_WSS), "wss");
    mq_client_t *obs = observer("pxwss-obs", "pxwss/#");
    wcli w;
    CU_ASSERT_EQUAL_FATAL(wc_mqtt(&w, proxy_ws_port(p), client_ctx, "pxwss-client"), 0);
    CU_ASSERT_STRING_EQUAL(w.c->ops->name, "wss");
    uint8_t b[300];
    CU_ASSERT_EQUAL(wc_send(&w, b, tu_mk_subscribe(b, 1, "pxwss/t", 1)), 0);
    CU_ASSERT(wc_expect(&w, PKT_SUBACK, 1));
    size_t big = 300 * 1024;
    uint8_t *payload = kit_xmalloc(big);
    for (size_t i = 0; i < big; i++) payload[i] = (uint8_t)(i * 13);
    CU_ASSERT_EQUAL(wc_publish(&w, "pxwss/t", payload, big, 1, 5), 0);
    CU_ASSERT(next_msg(obs, "pxwss/t", payload, big));
    int ack = 0, back = 0;
    for (int i = 0; i < 2; i++) {
        uint8_t *m = NULL;
        long len = wc_packet(&w, &m);
        if (len <= 0) break;
        if (m[0] >> 4 == PKT_PUBACK) ack++;
        if (m[0] >> 4 == PKT_PUBLISH && (size_t)len > big && memcmp(m + len - big, payload, big) == 0) back++;
        free(m);
    }
    CU_ASSERT_EQUAL(ack, 1);
    CU_ASSERT_EQUAL(back, 1);
    const px_event *e = wait_ev(p, PX_EV_OPEN, -1, -1, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->transport, PX_TR_WSS);
    CU_ASSERT(strstr(e->text, "over wss") != NULL);
    CU_ASSERT(all_marked(p, 1, PX_TR_WSS));

    /* A plain ws:// client on the wss:// port fails its handshake; the
     * proxy goes on. */
    int fd = local_connect(proxy_ws_port(p));
    char req[512], key[25];
    size_t rn = ws_client_request(req, sizeof req, "127.0.0.1", "/mqtt", "mqtt", key);
    CU_ASSERT_EQUAL(send(fd, req, rn, MSG_NOSIGNAL), (ssize_t)rn);
    size_t len;
    int eof;
    free(read_to_end(fd, &len, &eof));
    CU_ASSERT(eof);
    close(fd);
    CU_ASSERT(has_error(p, "wss handshake failed"));
    CU_ASSERT_EQUAL(wc_publish(&w, "pxwss/t", "after", 5, 1, 6), 0);
    CU_ASSERT(next_msg(obs, "pxwss/t", "after", 5));

    free(payload);
    wc_close(&w);
    mq_free(obs);
    proxy_free(p);
}

int init_proxy_ws_tests(void)
{
    CU_pSuite s = CU_add_suite("proxy-ws", suite_init, suite_clean);
    if (!s) return -1;
    if (!CU_add_test(s, "publish and subscribe over ws", TEST_pubsub_over_ws) ||
        !CU_add_test(s, "drop a PUBACK over ws", TEST_drop_puback_over_ws) ||
        !CU_add_test(s, "garbage instead of an upgrade", TEST_garbage_instead_of_upgrade) ||
        !CU_add_test(s, "a handshake never finished", TEST_handshake_timeout) ||
        !CU_add_test(s, "packets across frames, several in one", TEST_packets_and_frames) ||
        !CU_add_test(s, "wss with the kit's PKI", TEST_wss))
        return -1;
    return 0;
}
