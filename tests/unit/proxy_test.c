/*
 * proxy_test.c - the fault proxy against a real mosquitto.
 *
 * The client side is a raw TCP socket writing hand-built MQTT 3.1.1
 * bytes, so what crosses the proxy is exactly known; an observer (the
 * kit's own client, runner/mqtt.h) subscribes directly on the broker to
 * see what the broker made of it. No test relies on timing luck: "did
 * not happen" is shown by ordering (a later packet arrives first, or a
 * sentinel published afterwards is the next message), and every wait has
 * a generous deadline and no upper bound on time is asserted.
 *
 * Tests run from the repository root (broker-config/plain.conf).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <CUnit/CUnit.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "mqtt.h"
#include "packet.h"
#include "proxy.h"
#include "testutil.h"
#include "cleanup.h"
#include "util.h"

#define WAIT_MS 10000

static broker_t *the_broker;

static int suite_init(void)
{
    char err[KIT_ERRLEN] = "";
    char *tmpl = kit_read_file("broker-config/plain.conf", NULL, err);
    if (!tmpl) {
        fprintf(stderr, "proxy tests: %s\n", err);
        return 1;
    }
    broker_opts_t o = { .name = "plain", .tmpl = tmpl };
    int rc = broker_start(&the_broker, &o, err);
    free(tmpl);
    if (rc != KIT_OK) {
        fprintf(stderr, "proxy tests: %s\n", err);
        the_broker = NULL;
        return 1;
    }
    return 0;
}

static int suite_clean(void)
{
    broker_free(the_broker);
    the_broker = NULL;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Hand-built MQTT 3.1.1                                              */

static const uint8_t PINGREQ[] = { 0xc0, 0x00 };
static const uint8_t DISCONNECT[] = { 0xe0, 0x00 };

/* ------------------------------------------------------------------ */
/* Raw sockets                                                        */

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    while (len) {
        ssize_t w = send(fd, b, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Exactly n bytes within timeout_ms: n on success, 0 on EOF, -1 on
 * timeout, -2 on a reset. */
static long read_n(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    int64_t end = kit_now_ms() + timeout_ms;
    while (got < n) {
        int64_t left = end - kit_now_ms();
        if (left <= 0) return -1;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t k = recv(fd, buf + got, n - got, 0);
        if (k == 0) return 0;
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return -2;
        }
        got += (size_t)k;
    }
    return (long)n;
}

/* One whole packet into buf (cap bytes): its size, 0 on EOF, -1 on
 * timeout, -2 on a reset, -3 when it does not fit. */
static long read_packet(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    long r = read_n(fd, buf, 1, timeout_ms);
    if (r <= 0) return r;
    size_t rem = 0, k = 1;
    for (int mult = 1; ; mult *= 128) {
        r = read_n(fd, buf + k, 1, timeout_ms);
        if (r <= 0) return r;
        rem += (size_t)(buf[k] & 0x7f) * (size_t)mult;
        if (!(buf[k++] & 0x80)) break;
        if (k > 4) return -3;
    }
    if (k + rem > cap) return -3;
    if (rem) {
        r = read_n(fd, buf + k, rem, timeout_ms);
        if (r <= 0) return r;
    }
    return (long)(k + rem);
}

/* Read and throw away packets until EOF: 1 on EOF, 2 on a reset, 0 on
 * timeout. */
static int read_until_eof(int fd)
{
    uint8_t buf[4096];
    for (;;) {
        long r = read_packet(fd, buf, sizeof buf, WAIT_MS);
        if (r == 0) return 1;
        if (r == -2) return 2;
        if (r < 0) return 0;
    }
}

/* Nothing to read and no EOF at this moment. */
static int silent(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, 0) == 0;
}

/* CONNECT through the proxy and expect CONNACK 0. */
static int mqtt_open(int port, const char *id, int keepalive, const char *will_topic, const char *will_payload)
{
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    uint8_t buf[600];
    size_t n = tu_mk_connect(buf, id, keepalive, will_topic, will_payload, 1);
    uint8_t ack[4];
    if (write_all(fd, buf, n) != 0 || read_packet(fd, ack, sizeof ack, WAIT_MS) != 4 ||
        ack[0] != 0x20 || ack[3] != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int publish_raw(int fd, const char *topic, const char *payload, int qos, int id)
{
    uint8_t buf[1024];
    size_t n = tu_mk_publish(buf, topic, payload, strlen(payload), qos, id);
    return write_all(fd, buf, n);
}

/* Expect a PUBACK for id as the next packet. */
static int expect_puback(int fd, int id)
{
    uint8_t buf[16];
    return read_packet(fd, buf, sizeof buf, WAIT_MS) == 4 && buf[0] == 0x40 &&
           buf[2] == (uint8_t)(id >> 8) && buf[3] == (uint8_t)id;
}

/* ------------------------------------------------------------------ */
/* Proxy, trace, observer                                             */

static proxy *start_proxy(int upstream)
{
    char err[KIT_ERRLEN] = "";
    px_opts o = { .upstream_port = upstream ? upstream : broker_port(the_broker) };
    proxy *p = NULL;
    int rc = proxy_start(&o, &p, err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    if (rc != KIT_OK) fprintf(stderr, "proxy_start: %s\n", err);
    return p;
}

static int add_rule(proxy *p, px_action action, int type, int dir, unsigned nth, unsigned times)
{
    char err[KIT_ERRLEN] = "";
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = action;
    r.type = type;
    r.dir = dir;
    r.nth = nth;
    r.times = times;
    int idx = proxy_add_rule(p, &r, err);
    CU_ASSERT(idx >= 0);
    return idx;
}

/* kind, type (-1 any), dir (-1 any), conn (0 any) */
static int ev_match(const px_event *e, int kind, int type, int dir, unsigned conn)
{
    return e->kind == kind && (type < 0 || e->type == type) && (dir < 0 || e->dir == dir) &&
           (!conn || e->conn == conn);
}

/* The nth (1-based) event matching, waiting for it up to WAIT_MS. */
static const px_event *wait_ev(proxy *p, int kind, int type, int dir, unsigned conn, int nth)
{
    int64_t end = kit_now_ms() + WAIT_MS;
    for (;;) {
        size_t n = proxy_count(p);
        int seen = 0;
        for (size_t i = 0; i < n; i++) {
            const px_event *e = proxy_event(p, i);
            if (e && ev_match(e, kind, type, dir, conn) && ++seen == nth) return e;
        }
        int64_t left = end - kit_now_ms();
        if (left <= 0) return NULL;
        if (proxy_wait(p, n, (int)left) == KIT_EINTR) return NULL;
    }
}

static int count_ev(proxy *p, int kind, int type, int dir)
{
    int n = 0;
    size_t count = proxy_count(p);
    for (size_t i = 0; i < count; i++)
        if (ev_match(proxy_event(p, i), kind, type, dir, 0)) n++;
    return n;
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
    CU_ASSERT_EQUAL(granted, 1);
    return c;
}

/* The observer's next message is on topic with payload. */
static int next_msg_is(mq_client_t *obs, const char *topic, const char *payload)
{
    mq_message_t *m = mq_wait_message(obs, NULL, WAIT_MS, NULL);
    if (!m) {
        fprintf(stderr, "no message (wanted %s %s)\n", topic, payload);
        return 0;
    }
    int ok = strcmp(m->topic, topic) == 0 && strcmp(m->payload, payload) == 0;
    if (!ok) fprintf(stderr, "got %s \"%s\", wanted %s \"%s\"\n", m->topic, m->payload, topic, payload);
    mq_message_free(m);
    return ok;
}

/* Publish a sentinel from the observer itself and expect it as the
 * next message: everything the broker had sent before it was seen. */
static int sentinel_next(mq_client_t *obs, const char *topic)
{
    char err[KIT_ERRLEN] = "";
    int mid = 0;
    if (mq_publish(obs, topic, "sentinel", 8, 1, 0, WAIT_MS, &mid, err) != KIT_OK) return 0;
    return next_msg_is(obs, topic, "sentinel");
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */

static void TEST_names(void)
{
    CU_ASSERT_STRING_EQUAL(px_dir_name(PX_UP), "up");
    CU_ASSERT_STRING_EQUAL(px_dir_name(PX_DOWN), "down");
    CU_ASSERT_STRING_EQUAL(px_dir_name(PX_ANY), "any");
    CU_ASSERT_STRING_EQUAL(px_fate_name(PX_SENT), "sent");
    CU_ASSERT_STRING_EQUAL(px_fate_name(PX_CUT_MID), "cut_mid");
    CU_ASSERT_STRING_EQUAL(px_fate_name(PX_BLACKHOLED), "blackholed");
    CU_ASSERT_STRING_EQUAL(px_kind_name(PX_EV_OPEN), "open");
    CU_ASSERT_STRING_EQUAL(px_kind_name(PX_EV_ERROR), "error");
    CU_ASSERT_EQUAL(px_action_from_name("drop"), PX_DROP);
    CU_ASSERT_EQUAL(px_action_from_name("cut-after"), PX_CUT_AFTER);
    CU_ASSERT_EQUAL(px_action_from_name("cut_bytes"), PX_CUT_BYTES);
    CU_ASSERT_EQUAL(px_action_from_name("blackhole"), PX_BLACKHOLE);
    CU_ASSERT_EQUAL(px_action_from_name("explode"), -1);
    CU_ASSERT_EQUAL(px_action_from_name(""), -1);

    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(proxy_port(p) > 0);
    char err[KIT_ERRLEN] = "";
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = (px_action)42;
    CU_ASSERT_EQUAL(proxy_add_rule(p, &r, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "action"));
    r.action = PX_DELAY;
    r.delay_ms = -5;
    CU_ASSERT_EQUAL(proxy_add_rule(p, &r, err), -1);
    r.delay_ms = 5;
    r.dir = 7;
    CU_ASSERT_EQUAL(proxy_add_rule(p, &r, err), -1);
    r.dir = PX_ANY;
    CU_ASSERT_EQUAL(proxy_add_rule(p, &r, err), 0);
    CU_ASSERT_EQUAL(proxy_add_rule(p, &r, err), 1);
    CU_ASSERT_EQUAL(proxy_rule_fired(p, 1), 0);
    CU_ASSERT_EQUAL(proxy_count(p), 0);
    CU_ASSERT_PTR_NULL(proxy_event(p, 0));
    CU_ASSERT_EQUAL(proxy_wait(p, 0, 10), KIT_ETIMEOUT);

    /* The port is taken now: a second proxy on it fails cleanly. */
    px_opts o = { .upstream_port = broker_port(the_broker), .listen_port = proxy_port(p) };
    proxy *q = (proxy *)&q;
    CU_ASSERT_EQUAL(proxy_start(&o, &q, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(q);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Address already in use"));
    o.upstream_host = "localhost";
    CU_ASSERT_EQUAL(proxy_start(&o, &q, err), KIT_EINVAL);
    proxy_stop(p);
    proxy_stop(p);      /* idempotent */
    proxy_free(p);
    proxy_free(NULL);
}

static void TEST_forward_and_trace(void)
{
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int fd = tcp_connect(proxy_port(p));
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t buf[1024];
    size_t n = tu_mk_connect(buf, "pxt-fwd", 60, NULL, NULL, 0);
    CU_ASSERT_EQUAL(write_all(fd, buf, n), 0);
    CU_ASSERT_EQUAL(read_packet(fd, buf, sizeof buf, WAIT_MS), 4);
    CU_ASSERT(buf[0] == 0x20 && buf[3] == 0);

    n = tu_mk_subscribe(buf, 1, "pxt/fwd/#", 1);
    CU_ASSERT_EQUAL(write_all(fd, buf, n), 0);
    CU_ASSERT_EQUAL(read_packet(fd, buf, sizeof buf, WAIT_MS), 5);
    CU_ASSERT(buf[0] == 0x90 && buf[3] == 1 && buf[4] == 1);

    /* A QoS 1 PUBLISH to our own subscription: PUBACK and the PUBLISH
     * come back, in an order that is the broker's business. */
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/fwd/a", "hello", 1, 2), 0);
    int got_puback = 0, got_publish = 0, down_id = -1;
    for (int i = 0; i < 2; i++) {
        long r = read_packet(fd, buf, sizeof buf, WAIT_MS);
        CU_ASSERT_FATAL(r > 0);
        if (buf[0] == 0x40 && buf[3] == 2) got_puback = 1;
        if ((buf[0] & 0xf0) == 0x30) {
            got_publish = 1;
            size_t tl = (size_t)(buf[2] << 8 | buf[3]);
            down_id = buf[4 + tl] << 8 | buf[5 + tl];
        }
    }
    CU_ASSERT(got_puback && got_publish);
    CU_ASSERT(down_id > 0);
    n = tu_mk_puback(buf, down_id);
    CU_ASSERT_EQUAL(write_all(fd, buf, n), 0);

    /* A big payload: many reads and partial writes in the proxy. */
    size_t big = 200000;
    char *payload = kit_xmalloc(big);
    for (size_t i = 0; i < big; i++) payload[i] = (char)('a' + i % 26);
    uint8_t *bigpkt = kit_xmalloc(big + 64);
    n = tu_mk_publish(bigpkt, "pxt/fwd/big", payload, big, 1, 3);
    CU_ASSERT_EQUAL(write_all(fd, bigpkt, n), 0);
    int big_acked = 0;
    for (int i = 0; i < 2; i++) {
        long r = read_packet(fd, bigpkt, big + 64, WAIT_MS);
        CU_ASSERT_FATAL(r > 0);
        if (bigpkt[0] == 0x40 && bigpkt[3] == 3) big_acked = 1;
        if ((bigpkt[0] & 0xf0) == 0x30) {
            CU_ASSERT_EQUAL((size_t)r, n);
            size_t h = 1;
            while (bigpkt[h] & 0x80) h++;
            h++;
            size_t tl = (size_t)(bigpkt[h] << 8 | bigpkt[h + 1]);
            CU_ASSERT(memcmp(bigpkt + (size_t)r - big, payload, big) == 0);
            int id = bigpkt[h + 2 + tl] << 8 | bigpkt[h + 3 + tl];
            uint8_t ack[4];
            CU_ASSERT_EQUAL(write_all(fd, ack, tu_mk_puback(ack, id)), 0);
        }
    }
    CU_ASSERT(big_acked);
    CU_ASSERT_EQUAL(write_all(fd, DISCONNECT, sizeof DISCONNECT), 0);
    CU_ASSERT_EQUAL(read_until_eof(fd), 1);
    close(fd);

    /* The broker closes after a DISCONNECT; the client waited for that. */
    const px_event *e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->text, "broker closed the connection");

    e = wait_ev(p, PX_EV_OPEN, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->conn, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e->text, "connected"));

    e = wait_ev(p, PX_EV_PACKET, PKT_CONNECT, PX_UP, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->decoded, 1);
    CU_ASSERT_EQUAL(e->fate, PX_SENT);
    CU_ASSERT_EQUAL(e->level, 4);
    CU_ASSERT_EQUAL(e->clean, 1);
    CU_ASSERT_EQUAL(e->keepalive, 60);
    CU_ASSERT_EQUAL(e->will, 0);
    CU_ASSERT_STRING_EQUAL(e->client_id, "pxt-fwd");
    CU_ASSERT_PTR_NOT_NULL(e->text);

    e = wait_ev(p, PX_EV_PACKET, PKT_CONNACK, PX_DOWN, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->reason, 0);
    CU_ASSERT_EQUAL(e->session_present, 0);
    CU_ASSERT_EQUAL(e->size, 4);

    e = wait_ev(p, PX_EV_PACKET, PKT_SUBSCRIBE, PX_UP, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->packet_id, 1);
    CU_ASSERT_EQUAL_FATAL(e->nfilters, 1);
    CU_ASSERT_STRING_EQUAL(e->filters[0], "pxt/fwd/#");
    CU_ASSERT_EQUAL(e->filter_qos[0], 1);

    e = wait_ev(p, PX_EV_PACKET, PKT_SUBACK, PX_DOWN, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->packet_id, 1);
    CU_ASSERT_EQUAL(e->ncodes, 1);
    CU_ASSERT_EQUAL(e->codes[0], 1);

    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->qos, 1);
    CU_ASSERT_EQUAL(e->packet_id, 2);
    CU_ASSERT_STRING_EQUAL(e->topic, "pxt/fwd/a");
    CU_ASSERT_EQUAL(e->payload_len, 5);
    CU_ASSERT_EQUAL(e->payload_kept, 5);
    CU_ASSERT_STRING_EQUAL(e->payload, "hello");

    e = wait_ev(p, PX_EV_PACKET, PKT_PUBACK, PX_DOWN, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->packet_id, 2);
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_DOWN, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->topic, "pxt/fwd/a");
    CU_ASSERT_EQUAL(e->packet_id, down_id);
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBACK, PX_UP, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->packet_id, down_id);

    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 1, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->payload_len, big);
    CU_ASSERT_EQUAL(e->payload_kept, PX_PAYLOAD_KEEP);
    CU_ASSERT(memcmp(e->payload, payload, PX_PAYLOAD_KEEP) == 0);
    CU_ASSERT_EQUAL(e->payload[PX_PAYLOAD_KEEP], '\0');
    CU_ASSERT_EQUAL(e->size, n);
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_PACKET, PKT_DISCONNECT, PX_UP, 1, 1));

    /* Every packet was forwarded, time never runs backwards, and the
     * CLOSE comes last. */
    size_t count = proxy_count(p);
    int64_t last = 0;
    for (size_t i = 0; i < count; i++) {
        const px_event *x = proxy_event(p, i);
        CU_ASSERT(x->t_us >= last);
        last = x->t_us;
        if (x->kind == PX_EV_PACKET) {
            CU_ASSERT_EQUAL(x->fate, PX_SENT);
            CU_ASSERT_EQUAL(x->decoded, 1);
        }
        CU_ASSERT(x->kind != PX_EV_ERROR);
    }
    CU_ASSERT_EQUAL(proxy_event(p, count - 1)->kind, PX_EV_CLOSE);
    px_stats st;
    proxy_stats(p, &st);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.packets[PX_UP], 7);     /* CONNECT SUBSCRIBE PUBLISH PUBACK PUBLISH PUBACK DISCONNECT */
    CU_ASSERT_EQUAL(st.packets[PX_DOWN], 6);   /* CONNACK SUBACK PUBACK PUBLISH PUBACK PUBLISH */
    CU_ASSERT(st.bytes[PX_UP] > big);
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    free(payload);
    free(bigpkt);
    proxy_free(p);
}

static void TEST_split_and_batched_writes(void)
{
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int fd = tcp_connect(proxy_port(p));
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t buf[1024];
    size_t n = tu_mk_connect(buf, "pxt-split", 60, "pxt/split/will", "w", 0);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(write_all(fd, buf + i, 1), 0);
        /* Let each byte leave on its own, so the proxy sees a split packet. */
        if (i % 4 == 0) kit_sleep_ms(1);
    }
    CU_ASSERT_EQUAL(read_packet(fd, buf, sizeof buf, WAIT_MS), 4);
    CU_ASSERT(buf[0] == 0x20 && buf[3] == 0);

    /* Four packets in one write. */
    n = tu_mk_publish(buf, "pxt/split/a", "1", 1, 1, 11);
    n += tu_mk_publish(buf + n, "pxt/split/b", "22", 2, 0, 0);
    n += tu_mk_publish(buf + n, "pxt/split/c", "333", 3, 1, 12);
    memcpy(buf + n, PINGREQ, sizeof PINGREQ);
    n += sizeof PINGREQ;
    CU_ASSERT_EQUAL(write_all(fd, buf, n), 0);
    CU_ASSERT(expect_puback(fd, 11));
    CU_ASSERT(expect_puback(fd, 12));
    CU_ASSERT_EQUAL(read_packet(fd, buf, sizeof buf, WAIT_MS), 2);
    CU_ASSERT_EQUAL(buf[0], 0xd0);

    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_CONNECT, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->decoded, 1);
    CU_ASSERT_STRING_EQUAL(e->client_id, "pxt-split");
    CU_ASSERT_EQUAL(e->will, 1);
    CU_ASSERT_STRING_EQUAL(e->topic, "pxt/split/will");
    CU_ASSERT_STRING_EQUAL(e->payload, "w");
    const char *topics[] = { "pxt/split/a", "pxt/split/b", "pxt/split/c" };
    for (int i = 0; i < 3; i++) {
        e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, i + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_STRING_EQUAL(e->topic, topics[i]);
        CU_ASSERT_EQUAL(e->payload_len, (uint32_t)i + 1);
    }
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_PACKET, PKT_PINGREQ, PX_UP, 0, 1));
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_PACKET, PKT_PINGRESP, PX_DOWN, 0, 1));
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_ERROR, -1, -1), 0);
    close(fd);
    proxy_free(p);
}

static void TEST_drop_second_puback(void)
{
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int rule = add_rule(p, PX_DROP, PKT_PUBACK, PX_DOWN, 2, 1);
    int fd = mqtt_open(proxy_port(p), "pxt-drop", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/drop/t", "1", 1, 1), 0);
    CU_ASSERT(expect_puback(fd, 1));
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/drop/t", "2", 1, 2), 0);
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/drop/t", "3", 1, 3), 0);
    /* PUBACK 2 would arrive before PUBACK 3 had it been forwarded. */
    CU_ASSERT(expect_puback(fd, 3));

    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBACK, PX_DOWN, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->packet_id, 2);
    CU_ASSERT_EQUAL(e->fate, PX_DROPPED);
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBACK, PX_DOWN, 0, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_SENT);
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);
    close(fd);
    proxy_free(p);
}

static void TEST_duplicate_publish(void)
{
    mq_client_t *obs = observer("pxt-obs-dup", "pxt/dup/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int rule = add_rule(p, PX_DUPLICATE, PKT_PUBLISH, PX_UP, 1, 1);
    int fd = mqtt_open(proxy_port(p), "pxt-dup", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/dup/t", "twice", 1, 7), 0);
    CU_ASSERT(expect_puback(fd, 7));
    CU_ASSERT(expect_puback(fd, 7));
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/dup/t", "once", 1, 8), 0);
    CU_ASSERT(expect_puback(fd, 8));

    CU_ASSERT(next_msg_is(obs, "pxt/dup/t", "twice"));
    CU_ASSERT(next_msg_is(obs, "pxt/dup/t", "twice"));
    CU_ASSERT(next_msg_is(obs, "pxt/dup/t", "once"));

    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_DUPLICATED);
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_SENT);
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);
    close(fd);
    proxy_free(p);
    mq_free(obs);
}

static void TEST_delay_keeps_order(void)
{
    mq_client_t *obs = observer("pxt-obs-delay", "pxt/delay/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char err[KIT_ERRLEN] = "";
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = PX_DELAY;
    r.type = PKT_PUBLISH;
    r.dir = PX_UP;
    r.delay_ms = 300;
    int rule = proxy_add_rule(p, &r, err);
    CU_ASSERT_FATAL(rule >= 0);
    int fd = mqtt_open(proxy_port(p), "pxt-delay", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/delay/t", "first", 0, 0), 0);
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/delay/t", "second", 0, 0), 0);

    mq_message_t *m1 = mq_wait_message(obs, NULL, WAIT_MS, NULL);
    mq_message_t *m2 = mq_wait_message(obs, NULL, WAIT_MS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m2);
    CU_ASSERT_STRING_EQUAL(m1->payload, "first");
    CU_ASSERT_STRING_EQUAL(m2->payload, "second");   /* not overtaken */
    CU_ASSERT(m1->t_ms - t0 >= 300);
    CU_ASSERT(m2->t_ms - t0 >= 300);
    mq_message_free(m1);
    mq_message_free(m2);

    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_DELAYED);
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_SENT);
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);
    close(fd);
    proxy_free(p);
    mq_free(obs);
}

/* Reorder: the 2nd PUBLISH is overtaken by the two after it; the last
 * one, with nothing behind it, goes out when its hold time is over. */
static void TEST_reorder(void)
{
    mq_client_t *obs = observer("pxt-obs-reord", "pxt/reord/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char err[KIT_ERRLEN] = "";
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = PX_REORDER;
    r.type = PKT_PUBLISH;
    r.dir = PX_UP;
    r.nth = 2;
    r.behind = 2;
    int rule = proxy_add_rule(p, &r, err);
    CU_ASSERT_FATAL(rule >= 0);
    r.nth = 5;
    r.behind = 1;
    r.delay_ms = 200;
    int late = proxy_add_rule(p, &r, err);
    CU_ASSERT_FATAL(late >= 0);
    int fd = mqtt_open(proxy_port(p), "pxt-reord", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    const char *order[] = { "m1", "m2", "m3", "m4", "m5" };
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(publish_raw(fd, "pxt/reord/t", order[i], 0, 0), 0);

    /* m2 waits for m3 and m4; m5 waits alone for 200 ms. */
    int64_t t0 = kit_now_ms();
    CU_ASSERT(next_msg_is(obs, "pxt/reord/t", "m1"));
    CU_ASSERT(next_msg_is(obs, "pxt/reord/t", "m3"));
    CU_ASSERT(next_msg_is(obs, "pxt/reord/t", "m4"));
    CU_ASSERT(next_msg_is(obs, "pxt/reord/t", "m2"));
    mq_message_t *m5 = mq_wait_message(obs, NULL, WAIT_MS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m5);
    CU_ASSERT_STRING_EQUAL(m5->payload, "m5");
    CU_ASSERT(m5->t_ms - t0 >= 150);
    mq_message_free(m5);

    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_REORDERED);
    CU_ASSERT_STRING_EQUAL(px_fate_name(e->fate), "reordered");
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_SENT);
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);
    CU_ASSERT_EQUAL(proxy_rule_fired(p, late), 1);
    CU_ASSERT_EQUAL(px_action_from_name("reorder"), PX_REORDER);

    /* A packet held when its connection ends is lost with it, and nothing
     * is left to free later (valgrind and ASan see to that). */
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/reord/t", "m6", 0, 0), 0);
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/reord/t", "m7", 0, 0), 0);
    CU_ASSERT(next_msg_is(obs, "pxt/reord/t", "m6"));
    CU_ASSERT(next_msg_is(obs, "pxt/reord/t", "m7"));
    close(fd);
    proxy_free(p);
    mq_free(obs);
}

/* A cut rule on the client's first PUBLISH: the client reads EOF and,
 * since the broker saw no DISCONNECT, the will is published. */
static void cut_case(px_action action)
{
    int before = action == PX_CUT_BEFORE;
    const char *will = before ? "pxt/cutb/will" : "pxt/cuta/will";
    const char *data = before ? "pxt/cutb/data" : "pxt/cuta/data";
    mq_client_t *obs = observer(before ? "pxt-obs-cutb" : "pxt-obs-cuta", before ? "pxt/cutb/#" : "pxt/cuta/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int rule = add_rule(p, action, PKT_PUBLISH, PX_UP, 1, 1);
    int fd = mqtt_open(proxy_port(p), before ? "pxt-cutb" : "pxt-cuta", 60, will, "gone");
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(publish_raw(fd, data, "payload", 0, 0), 0);
    CU_ASSERT_EQUAL(read_until_eof(fd), 1);
    close(fd);

    /* With cut_after the data is there before the will; with cut_before
     * the will is the first thing the broker publishes. */
    if (!before) CU_ASSERT(next_msg_is(obs, data, "payload"));
    CU_ASSERT(next_msg_is(obs, will, "gone"));

    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, before ? PX_CUT_BEFORE_F : PX_CUT_AFTER_F);
    e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->text, before ? "cut by rule 1 (cut_before PUBLISH #1)"
                                           : "cut by rule 1 (cut_after PUBLISH #1)");
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    proxy_free(p);
    mq_free(obs);
}

static void TEST_cut_before(void) { cut_case(PX_CUT_BEFORE); }
static void TEST_cut_after(void) { cut_case(PX_CUT_AFTER); }

/* Fidelity: DISCONNECT written just before close() reaches the broker
 * before the broker sees the close, so no will. Several rounds, since a
 * wrong order would only show up some of the time. In the later rounds
 * the DISCONNECT is still held by a delay rule when the client's EOF
 * arrives, so a proxy that closed on EOF would lose it every time. */
static void TEST_disconnect_then_close_no_will(void)
{
    mq_client_t *obs = observer("pxt-obs-clean", "pxt/clean/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int delay_rule = -1;
    for (int round = 1; round <= 6; round++) {
        if (round == 4) {
            char err[KIT_ERRLEN] = "";
            px_rule r;
            memset(&r, 0, sizeof r);
            r.action = PX_DELAY;
            r.type = PKT_DISCONNECT;
            r.dir = PX_UP;
            r.times = 1000;
            r.delay_ms = 2000;
            delay_rule = proxy_add_rule(p, &r, err);
            CU_ASSERT_FATAL(delay_rule >= 0);
        }
        int fd = mqtt_open(proxy_port(p), "pxt-clean", 60, "pxt/clean/will", "gone");
        CU_ASSERT_FATAL(fd >= 0);
        uint8_t buf[256];
        size_t n = tu_mk_publish(buf, "pxt/clean/bye", "bye", 3, 0, 0);
        memcpy(buf + n, DISCONNECT, sizeof DISCONNECT);
        n += sizeof DISCONNECT;
        CU_ASSERT_EQUAL(write_all(fd, buf, n), 0);
        close(fd);
        /* The proxy's CLOSE comes once the broker has closed its side;
         * a will would have been queued to the observer before that. */
        const px_event *e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, round);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        /* Who is seen first depends on scheduling: the client's FIN, or
         * the broker closing once it has read the DISCONNECT. */
        CU_ASSERT(strcmp(e->text, "client closed the connection") == 0 ||
                  strcmp(e->text, "broker closed the connection") == 0);
        CU_ASSERT(next_msg_is(obs, "pxt/clean/bye", "bye"));
        CU_ASSERT(sentinel_next(obs, "pxt/clean/end"));
        e = wait_ev(p, PX_EV_PACKET, PKT_DISCONNECT, PX_UP, 0, round);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_EQUAL(e->fate, round >= 4 ? PX_DELAYED : PX_SENT);
    }
    CU_ASSERT_EQUAL(proxy_rule_fired(p, delay_rule), 3);
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    proxy_free(p);
    mq_free(obs);
}

static void TEST_cut_bytes(void)
{
    mq_client_t *obs = observer("pxt-obs-bytes", "pxt/bytes/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t conn_pkt[256];
    size_t clen = tu_mk_connect(conn_pkt, "pxt-bytes", 60, "pxt/bytes/will", "gone", 1);
    char err[KIT_ERRLEN] = "";
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = PX_CUT_BYTES;
    r.dir = PX_UP;
    r.bytes = clen + 5;
    int rule = proxy_add_rule(p, &r, err);
    CU_ASSERT_FATAL(rule >= 0);

    int fd = mqtt_open(proxy_port(p), "pxt-bytes", 60, "pxt/bytes/will", "gone");
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/bytes/data", "0123456789", 0, 0), 0);
    CU_ASSERT_EQUAL(read_until_eof(fd), 1);
    close(fd);
    /* Half a PUBLISH and then the end: the broker never got the data. */
    CU_ASSERT(next_msg_is(obs, "pxt/bytes/will", "gone"));

    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_CUT_MID);
    e = wait_ev(p, PX_EV_PACKET, PKT_CONNECT, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_SENT);
    e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e->text, "cut by rule 1 (cut_bytes"));
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);

    /* Spent: the next connection is not cut. */
    fd = mqtt_open(proxy_port(p), "pxt-bytes2", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/bytes/data", "whole", 1, 1), 0);
    CU_ASSERT(expect_puback(fd, 1));
    CU_ASSERT(next_msg_is(obs, "pxt/bytes/data", "whole"));
    close(fd);
    proxy_free(p);
    mq_free(obs);
}

static void TEST_blackhole(void)
{
    mq_client_t *obs = observer("pxt-obs-bh", "pxt/bh/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int fd = mqtt_open(proxy_port(p), "pxt-bh", 1, "pxt/bh/will", "lost");
    CU_ASSERT_FATAL(fd >= 0);
    int rule = add_rule(p, PX_BLACKHOLE, PKT_PINGREQ, PX_UP, 1, 1);
    CU_ASSERT_EQUAL(write_all(fd, PINGREQ, sizeof PINGREQ), 0);

    /* The broker hears nothing for 1.5 keepalives, drops the client and
     * publishes its will; the proxy then closes only the broker's side. */
    CU_ASSERT(next_msg_is(obs, "pxt/bh/will", "lost"));
    const px_event *e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->text, "blackholed side closed by the broker");
    e = wait_ev(p, PX_EV_PACKET, PKT_PINGREQ, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_BLACKHOLED);
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_PACKET, PKT_PINGRESP, -1), 0);
    CU_ASSERT(silent(fd));          /* no PINGRESP, and no EOF either */
    CU_ASSERT_EQUAL(proxy_open_conns(p), 1);

    /* Whatever the client says now is swallowed. */
    CU_ASSERT_EQUAL(write_all(fd, PINGREQ, sizeof PINGREQ), 0);
    e = wait_ev(p, PX_EV_PACKET, PKT_PINGREQ, PX_UP, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_BLACKHOLED);
    CU_ASSERT(silent(fd));
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);

    close(fd);
    e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->text, "blackholed side closed by the client");
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    proxy_free(p);
    mq_free(obs);
}

static void TEST_blackhole_all_and_cut_all(void)
{
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int a = mqtt_open(proxy_port(p), "pxt-all-a", 60, NULL, NULL);
    int b = mqtt_open(proxy_port(p), "pxt-all-b", 60, NULL, NULL);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    uint8_t buf[16];

    proxy_blackhole_all(p, 1);
    CU_ASSERT_EQUAL(write_all(a, PINGREQ, sizeof PINGREQ), 0);
    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PINGREQ, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fate, PX_BLACKHOLED);
    proxy_blackhole_all(p, 0);
    CU_ASSERT_EQUAL(write_all(a, PINGREQ, sizeof PINGREQ), 0);
    CU_ASSERT_EQUAL(read_packet(a, buf, sizeof buf, WAIT_MS), 2);   /* only the second is answered */
    CU_ASSERT_EQUAL(buf[0], 0xd0);
    CU_ASSERT(silent(a));
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_PACKET, PKT_PINGRESP, PX_DOWN, 0, 1));
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_PACKET, PKT_PINGRESP, PX_DOWN), 1);

    proxy_cut_all(p, 0);
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    CU_ASSERT_EQUAL(read_until_eof(a), 1);
    CU_ASSERT_EQUAL(read_until_eof(b), 1);
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_CLOSE, -1, -1), 2);
    e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->text, "cut by proxy_cut_all");
    close(a);
    close(b);
    proxy_free(p);
}

static void TEST_refuse(void)
{
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    proxy_refuse(p, 60000);
    int fd = tcp_connect(proxy_port(p));
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t buf[16];
    CU_ASSERT_EQUAL(read_n(fd, buf, 1, WAIT_MS), 0);      /* EOF at once */
    close(fd);
    const px_event *e = wait_ev(p, PX_EV_REFUSED, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    px_stats st;
    proxy_stats(p, &st);
    CU_ASSERT_EQUAL(st.refused, 1);
    CU_ASSERT_EQUAL(st.connections, 0);

    proxy_refuse(p, 0);
    fd = mqtt_open(proxy_port(p), "pxt-refuse", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);

    /* A cut rule with refuse_ms: the reconnection is refused. */
    char err[KIT_ERRLEN] = "";
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = PX_CUT_AFTER;
    r.type = PKT_PINGREQ;
    r.dir = PX_UP;
    r.refuse_ms = 60000;
    CU_ASSERT_FATAL(proxy_add_rule(p, &r, err) >= 0);
    CU_ASSERT_EQUAL(write_all(fd, PINGREQ, sizeof PINGREQ), 0);
    CU_ASSERT_EQUAL(read_until_eof(fd), 1);
    close(fd);
    fd = tcp_connect(proxy_port(p));
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(read_n(fd, buf, 1, WAIT_MS), 0);
    close(fd);
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_REFUSED, -1, -1, 0, 2));
    proxy_stats(p, &st);
    CU_ASSERT_EQUAL(st.refused, 2);
    CU_ASSERT_EQUAL(st.connections, 1);
    proxy_free(p);
}

/* n clients through the proxy, all open at once: CONNECT on every socket
 * before any CONNACK is read. Client ids are prefix-0, prefix-1, ... */
static void connect_many(proxy *p, int *fds, int n, const char *prefix)
{
    uint8_t buf[512];
    char id[64];
    for (int i = 0; i < n; i++) {
        fds[i] = tcp_connect(proxy_port(p));
        CU_ASSERT_FATAL(fds[i] >= 0);
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        size_t len = tu_mk_connect(buf, id, 60, NULL, NULL, 0);
        CU_ASSERT_EQUAL(write_all(fds[i], buf, len), 0);
    }
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(read_packet(fds[i], buf, sizeof buf, WAIT_MS), 4);
        CU_ASSERT_EQUAL(buf[0], 0x20);
    }
}

#define MANY 50

static void TEST_many_clients(void)
{
    mq_client_t *obs = observer("pxt-obs-many", "pxt/many/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int fds[MANY];
    char topic[64];
    connect_many(p, fds, MANY, "pxt-many");
    for (int i = 0; i < MANY; i++) {
        snprintf(topic, sizeof topic, "pxt/many/%d", i);
        CU_ASSERT_EQUAL(publish_raw(fds[i], topic, "m", 1, i + 1), 0);
    }
    for (int i = 0; i < MANY; i++) CU_ASSERT(expect_puback(fds[i], i + 1));
    CU_ASSERT_EQUAL(proxy_open_conns(p), MANY);

    int seen[MANY] = { 0 };
    for (int i = 0; i < MANY; i++) {
        mq_message_t *m = mq_wait_message(obs, NULL, WAIT_MS, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        int k = -1;
        if (sscanf(m->topic, "pxt/many/%d", &k) == 1 && k >= 0 && k < MANY) seen[k]++;
        mq_message_free(m);
    }
    for (int i = 0; i < MANY; i++) CU_ASSERT_EQUAL(seen[i], 1);

    for (int i = 0; i < MANY; i++) {
        CU_ASSERT_EQUAL(write_all(fds[i], DISCONNECT, sizeof DISCONNECT), 0);
        close(fds[i]);
    }
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_CLOSE, -1, -1, 0, MANY));
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    px_stats st;
    proxy_stats(p, &st);
    CU_ASSERT_EQUAL(st.connections, MANY);
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_OPEN, -1, -1), MANY);
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP), MANY);
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_PACKET, PKT_PUBACK, PX_DOWN), MANY);
    proxy_free(p);
    mq_free(obs);
}

static void TEST_garbage(void)
{
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);

    /* A PUBLISH whose topic length runs past its end: framed, not decoded. */
    int fd = mqtt_open(proxy_port(p), "pxt-garbage-1", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    static const uint8_t bad_publish[] = { 0x30, 0x04, 0x00, 0x40, 'a', 'b' };
    CU_ASSERT_EQUAL(write_all(fd, bad_publish, sizeof bad_publish), 0);
    CU_ASSERT(read_until_eof(fd) >= 1);     /* the broker hangs up */
    close(fd);
    const px_event *e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->decoded, 0);
    CU_ASSERT_EQUAL(e->fate, PX_SENT);
    CU_ASSERT_PTR_NOT_NULL(e->text);
    CU_ASSERT(strncmp(e->text, "malformed PUBLISH", 17) == 0);

    /* Random bytes (type 0 first, then anything): an ERROR event, the
     * rest is passed through and the broker decides. */
    fd = mqtt_open(proxy_port(p), "pxt-garbage-2", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t junk[4096];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        seed = seed * 1103515245u + 12345u;
        junk[i] = (uint8_t)(seed >> 16);
    }
    junk[0] = 0x00;
    write_all(fd, junk, sizeof junk);   /* may fail once the broker has hung up */
    CU_ASSERT(read_until_eof(fd) >= 1);
    close(fd);
    e = wait_ev(p, PX_EV_ERROR, -1, PX_UP, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e->text, "passing it through"));
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 2));

    /* Still serving. */
    fd = mqtt_open(proxy_port(p), "pxt-garbage-3", 60, NULL, NULL);
    CU_ASSERT(fd >= 0);
    if (fd >= 0) close(fd);
    proxy_free(p);
}

/* A client of p, whose broker cannot be reached, is hung up on; the
 * proxy says why (want, word for word), closes, and keeps nothing open.
 * Frees p. */
static void expect_unreachable(proxy *p, const char *want)
{
    int fd = tcp_connect(proxy_port(p));
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t buf[16];
    long r = read_n(fd, buf, 1, WAIT_MS);
    CU_ASSERT(r == 0 || r == -2);
    close(fd);
    const px_event *e = wait_ev(p, PX_EV_ERROR, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->text, want);
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 1));
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    proxy_free(p);
}

static void TEST_upstream_down(void)
{
    int dead = kit_free_port(NULL);
    CU_ASSERT_FATAL(dead > 0);
    proxy *p = start_proxy(dead);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char want[128];
    snprintf(want, sizeof want, "cannot reach the broker at 127.0.0.1:%d: Connection refused", dead);
    expect_unreachable(p, want);
}

/* A stand-in broker that answers CONNECT with CONNACK and hangs up at
 * once: the client gets the CONNACK and then EOF, and a client that
 * keeps writing into the void gets a reset, as it would directly. */
static void TEST_broker_hangs_up(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(lfd, 8) == 0);
    CU_ASSERT_FATAL(getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
    proxy *p = start_proxy(ntohs(a.sin_port));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);

    int fd = tcp_connect(proxy_port(p));
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t buf[512];
    size_t n = tu_mk_connect(buf, "pxt-hangup", 60, NULL, NULL, 0);
    CU_ASSERT_EQUAL(write_all(fd, buf, n), 0);
    struct pollfd pfd = { .fd = lfd, .events = POLLIN };
    CU_ASSERT_FATAL(poll(&pfd, 1, WAIT_MS) == 1);
    int up = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(up >= 0);
    CU_ASSERT_EQUAL(read_packet(up, buf, sizeof buf, WAIT_MS), (long)n);
    static const uint8_t connack[] = { 0x20, 0x02, 0x00, 0x00 };
    CU_ASSERT_EQUAL(write_all(up, connack, sizeof connack), 0);
    close(up);

    CU_ASSERT_EQUAL(read_packet(fd, buf, sizeof buf, WAIT_MS), 4);
    CU_ASSERT_EQUAL(buf[0], 0x20);
    CU_ASSERT_EQUAL(read_n(fd, buf, 1, WAIT_MS), 0);
    int failed = 0;
    for (int64_t end = kit_now_ms() + WAIT_MS; !failed && kit_now_ms() < end; kit_sleep_ms(20))
        failed = send(fd, PINGREQ, sizeof PINGREQ, MSG_NOSIGNAL) < 0;
    CU_ASSERT(failed);
    close(fd);

    const px_event *e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT(strncmp(e->text, "broker closed the connection", 28) == 0);
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    proxy_free(p);
    close(lfd);
}

static void TEST_client_id_filter(void)
{
    mq_client_t *obs = observer("pxt-obs-cid", "pxt/cid/#");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char err[KIT_ERRLEN] = "";
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = PX_DROP;
    r.type = PKT_PUBLISH;
    r.dir = PX_UP;
    snprintf(r.client_id, sizeof r.client_id, "pxt-cid-a");
    int rule = proxy_add_rule(p, &r, err);
    CU_ASSERT_FATAL(rule >= 0);

    int a = mqtt_open(proxy_port(p), "pxt-cid-a", 60, NULL, NULL);
    int b = mqtt_open(proxy_port(p), "pxt-cid-b", 60, NULL, NULL);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    /* b goes first: were the filter ignored, b's would be the one dropped. */
    CU_ASSERT_EQUAL(publish_raw(b, "pxt/cid/b", "b-data", 1, 1), 0);
    CU_ASSERT(expect_puback(b, 1));
    CU_ASSERT(next_msg_is(obs, "pxt/cid/b", "b-data"));
    CU_ASSERT_EQUAL(publish_raw(a, "pxt/cid/a", "a-data", 0, 0), 0);
    CU_ASSERT_EQUAL(publish_raw(a, "pxt/cid/a", "a-end", 1, 2), 0);
    CU_ASSERT(expect_puback(a, 2));
    CU_ASSERT(next_msg_is(obs, "pxt/cid/a", "a-end"));
    CU_ASSERT_EQUAL(proxy_rule_fired(p, rule), 1);
    /* Recorded in the batch that forwarded it: wait until it is visible. */
    CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0, 3));

    int dropped = 0, sent = 0;
    size_t n = proxy_count(p);
    for (size_t i = 0; i < n; i++) {
        const px_event *e = proxy_event(p, i);
        if (!ev_match(e, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 0)) continue;
        if (e->fate == PX_DROPPED) {
            dropped++;
            CU_ASSERT_STRING_EQUAL(e->payload, "a-data");
        } else if (e->fate == PX_SENT) {
            sent++;
        }
    }
    CU_ASSERT_EQUAL(dropped, 1);
    CU_ASSERT_EQUAL(sent, 2);
    close(a);
    close(b);
    proxy_free(p);
    mq_free(obs);
}

static int count_dir(const char *path)
{
    int n = 0;
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void TEST_no_leaks(void)
{
    int fds0 = count_dir("/proc/self/fd");
    int tasks0 = count_dir("/proc/self/task");
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(count_dir("/proc/self/task"), tasks0 + 1);
    /* Left open and mid-stream when the proxy goes: proxy_free closes it. */
    int fd = mqtt_open(proxy_port(p), "pxt-leak", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t buf[64];
    size_t n = tu_mk_publish(buf, "pxt/leak/t", "x", 1, 1, 1);
    CU_ASSERT_EQUAL(write_all(fd, buf, n - 1), 0);
    proxy_free(p);
    CU_ASSERT_EQUAL(read_until_eof(fd), 1);
    close(fd);
    CU_ASSERT_EQUAL(count_dir("/proc/self/fd"), fds0);
    CU_ASSERT_EQUAL(count_dir("/proc/self/task"), tasks0);
}

/* ------------------------------------------------------------------ */
/* A broker on a unix socket                                          */

static broker_t *start_unix_broker(void)
{
    char err[KIT_ERRLEN] = "";
    char *tmpl = kit_read_file("broker-config/plain.conf", NULL, err);
    if (!tmpl) return NULL;
    broker_opts_t o = { .name = "plain", .tmpl = tmpl, .unix_socket = 1 };
    broker_t *b = NULL;
    if (broker_start(&b, &o, err) != KIT_OK) {
        fprintf(stderr, "unix broker: %s\n", err);
        b = NULL;
    }
    free(tmpl);
    return b;
}

static proxy *start_unix_proxy(const char *path)
{
    char err[KIT_ERRLEN] = "";
    px_opts o = { .upstream_path = path };
    proxy *p = NULL;
    int rc = proxy_start(&o, &p, err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    if (rc != KIT_OK) fprintf(stderr, "proxy_start: %s\n", err);
    return p;
}

static mq_client_t *unix_observer(const broker_t *b, const char *id, const char *filter)
{
    char err[KIT_ERRLEN] = "";
    mq_opts_t o = { .unix_path = broker_socket(b), .id = id, .clean = 1 };
    mq_client_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(mq_connect(&c, &o, NULL, err), KIT_OK);
    int granted = -1;
    CU_ASSERT_EQUAL(mq_subscribe(c, filter, 1, WAIT_MS, &granted, err), KIT_OK);
    CU_ASSERT_EQUAL(granted, 1);
    return c;
}

/* The proxy in front of a broker that has no TCP port: both ways, traced,
 * and the broker saw the client on its socket. */
static void TEST_unix_upstream(void)
{
    broker_t *b = start_unix_broker();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    mq_client_t *obs = unix_observer(b, "pxt-obs-unix", "pxt/unix/#");
    proxy *p = start_unix_proxy(broker_socket(b));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);

    int fd = mqtt_open(proxy_port(p), "pxt-unix", 60, NULL, NULL);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(publish_raw(fd, "pxt/unix/up", "via-socket", 1, 1), 0);
    CU_ASSERT(expect_puback(fd, 1));
    CU_ASSERT(next_msg_is(obs, "pxt/unix/up", "via-socket"));

    uint8_t buf[512];
    size_t n = tu_mk_subscribe(buf, 2, "pxt/unix/down", 0);
    CU_ASSERT_EQUAL(write_all(fd, buf, n), 0);
    CU_ASSERT_EQUAL(read_packet(fd, buf, sizeof buf, WAIT_MS), 5);
    CU_ASSERT(buf[0] == 0x90);
    char err[KIT_ERRLEN] = "";
    CU_ASSERT_EQUAL(mq_publish(obs, "pxt/unix/down", "to-client", 9, 1, 0, WAIT_MS, NULL, err), KIT_OK);
    long r = read_packet(fd, buf, sizeof buf, WAIT_MS);
    CU_ASSERT(r > 9 && (buf[0] & 0xf0) == 0x30 && memcmp(buf + r - 9, "to-client", 9) == 0);
    CU_ASSERT_EQUAL(write_all(fd, DISCONNECT, sizeof DISCONNECT), 0);
    CU_ASSERT_EQUAL(read_until_eof(fd), 1);
    close(fd);

    const px_event *e = wait_ev(p, PX_EV_CLOSE, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->text, "broker closed the connection");
    e = wait_ev(p, PX_EV_OPEN, -1, -1, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    char *want = kit_strdup_printf("upstream -> unix:%s", broker_socket(b));
    CU_ASSERT_PTR_NOT_NULL(strstr(e->text, want));
    free(want);
    e = wait_ev(p, PX_EV_PACKET, PKT_CONNECT, PX_UP, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->client_id, "pxt-unix");
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_UP, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->topic, "pxt/unix/up");
    CU_ASSERT_EQUAL(e->fate, PX_SENT);
    e = wait_ev(p, PX_EV_PACKET, PKT_PUBLISH, PX_DOWN, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->payload, "to-client");
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_ERROR, -1, -1), 0);
    want = kit_strdup_printf("New client connected from %s:0 as pxt-unix", broker_socket(b));
    char *log = broker_log(b, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, want));
    free(log);
    free(want);

    proxy_free(p);
    mq_free(obs);
    char *dir = kit_strdup(broker_dir(b));
    broker_free(b);
    CU_ASSERT(!kit_is_dir(dir));
    free(dir);
}

/* Many clients at once through a unix upstream: mosquitto's unix backlog
 * is 10, and a full one refuses instead of queueing; none may be lost. */
static void TEST_unix_many_clients(void)
{
    broker_t *b = start_unix_broker();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    proxy *p = start_unix_proxy(broker_socket(b));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int fds[MANY];
    connect_many(p, fds, MANY, "pxt-umany");
    CU_ASSERT_EQUAL(proxy_open_conns(p), MANY);
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_ERROR, -1, -1), 0);
    for (int i = 0; i < MANY; i++) close(fds[i]);
    proxy_free(p);
    broker_free(b);
}

/* A unix listener whose backlog is full: the proxy tries again until
 * there is room, and the client's CONNECT gets through, late. */
static void TEST_unix_backlog_retry(void)
{
    char dir[] = "/tmp/mqlab-pxtest-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s/fake.sock", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(lfd, 0) == 0);    /* room for one waiting connection */
    proxy *p = start_unix_proxy(a.sun_path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);

    uint8_t buf[512];
    int fd[2];
    for (int i = 0; i < 2; i++) {
        fd[i] = tcp_connect(proxy_port(p));
        CU_ASSERT_FATAL(fd[i] >= 0);
        size_t n = tu_mk_connect(buf, i ? "pxt-second" : "pxt-first", 60, NULL, NULL, 0);
        CU_ASSERT_EQUAL(write_all(fd[i], buf, n), 0);
        CU_ASSERT_PTR_NOT_NULL(wait_ev(p, PX_EV_OPEN, -1, -1, (unsigned)i + 1, 1));
    }
    /* Accepting the first makes room for the second's retry. */
    for (int i = 0; i < 2; i++) {
        struct pollfd pfd = { .fd = lfd, .events = POLLIN };
        CU_ASSERT_FATAL(poll(&pfd, 1, WAIT_MS) == 1);
        int up = accept(lfd, NULL, NULL);
        CU_ASSERT_FATAL(up >= 0);
        long r = read_packet(up, buf, sizeof buf, WAIT_MS);
        CU_ASSERT(r > 0 && buf[0] == 0x10);
        close(up);
    }
    const px_event *c1 = wait_ev(p, PX_EV_PACKET, PKT_CONNECT, PX_UP, 1, 1);
    const px_event *c2 = wait_ev(p, PX_EV_PACKET, PKT_CONNECT, PX_UP, 2, 1);
    CU_ASSERT(c1 && strcmp(c1->client_id, "pxt-first") == 0);
    CU_ASSERT(c2 && strcmp(c2->client_id, "pxt-second") == 0);
    CU_ASSERT_EQUAL(count_ev(p, PX_EV_ERROR, -1, -1), 0);
    close(fd[0]);
    close(fd[1]);
    proxy_free(p);
    close(lfd);
    kit_rm_rf(dir);
}

static void TEST_unix_upstream_down(void)
{
    char err[KIT_ERRLEN] = "";
    proxy *q = (proxy *)&q;
    px_opts both = { .upstream_path = "/tmp/x.sock", .upstream_port = 1883 };
    CU_ASSERT_EQUAL(proxy_start(&both, &q, err), KIT_EINVAL);
    CU_ASSERT_PTR_NULL(q);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    px_opts too_long = { .upstream_path = longpath };
    CU_ASSERT_EQUAL(proxy_start(&too_long, &q, err), KIT_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "too long"));
    px_opts neither = { .listen_port = 0 };
    CU_ASSERT_EQUAL(proxy_start(&neither, &q, err), KIT_EINVAL);

    const char *gone = "/nonexistent-mqlab/mosquitto.sock";
    proxy *p = start_unix_proxy(gone);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char *want = kit_strdup_printf("cannot reach the broker at unix:%s: No such file or directory", gone);
    expect_unreachable(p, want);
    free(want);
}

/* The epoll descriptors this process holds, into fds (at most n). */
static int epoll_fds(int *fds, int n)
{
    int k = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        char link[300], target[64];
        snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
        ssize_t r = readlink(link, target, sizeof target - 1);
        if (r <= 0) continue;
        target[r] = '\0';
        if (strcmp(target, "anon_inode:[eventpoll]") == 0 && k < n) fds[k++] = atoi(de->d_name);
    }
    closedir(d);
    return k;
}

/* epoll_wait fails (its descriptor is swapped for /dev/null under the
 * proxy's feet): the loop ends instead of spinning, the owner can read
 * why, the client is closed, and new ones are refused. */
static void TEST_loop_failure(void)
{
    int fds0 = count_dir("/proc/self/fd");
    int before[16], after[16];
    int nb = epoll_fds(before, 16);
    proxy *p = start_proxy(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char err[KIT_ERRLEN] = "";
    CU_ASSERT_EQUAL(proxy_error(p, err), KIT_OK);
    int client = mqtt_open(proxy_port(p), "pxt-loopfail", 60, NULL, NULL);
    CU_ASSERT_FATAL(client >= 0);

    int na = epoll_fds(after, 16);
    CU_ASSERT_FATAL(na == nb + 1);
    int epfd = -1;
    for (int i = 0; i < na; i++) {
        int old = 0;
        for (int j = 0; j < nb; j++) old |= before[j] == after[i];
        if (!old) epfd = after[i];
    }
    CU_ASSERT_FATAL(epfd >= 0);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CU_ASSERT_FATAL(null >= 0);
    CU_ASSERT_FATAL(dup2(null, epfd) == epfd);
    close(null);
    /* The loop sleeps in epoll_wait on the old set until something
     * happens: a new client wakes it, and its next wait fails. */
    int waker = tcp_connect(proxy_port(p));
    CU_ASSERT(waker >= 0);

    int rc = KIT_OK;
    for (int64_t end = kit_now_ms() + WAIT_MS; rc != KIT_ERR && kit_now_ms() < end;)
        rc = proxy_wait(p, proxy_count(p), 100);
    CU_ASSERT_EQUAL(rc, KIT_ERR);
    CU_ASSERT_EQUAL(proxy_error(p, err), KIT_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "epoll_wait"));
    size_t n = proxy_count(p);
    CU_ASSERT_FATAL(n > 0);
    const px_event *last = NULL;
    for (size_t i = 0; i < n; i++)
        if (proxy_event(p, i)->kind == PX_EV_ERROR) last = proxy_event(p, i);
    CU_ASSERT(last && strstr(last->text, "epoll_wait"));
    CU_ASSERT_EQUAL(read_until_eof(client), 1);
    CU_ASSERT_EQUAL(proxy_open_conns(p), 0);
    CU_ASSERT_EQUAL(tcp_connect(proxy_port(p)), -1);
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL(proxy_wait(p, n, 5000), KIT_ERR);
    CU_ASSERT(kit_now_ms() - t0 < 4000);
    if (waker >= 0) close(waker);
    close(client);
    proxy_free(p);
    CU_ASSERT_EQUAL(count_dir("/proc/self/fd"), fds0);
}

int init_proxy_tests(void)
{
    CU_pSuite s = CU_add_suite("proxy", suite_init, suite_clean);
    if (!s) return 1;
    if (!CU_add_test(s, "names and rule checks", TEST_names) ||
        !CU_add_test(s, "forward and trace", TEST_forward_and_trace) ||
        !CU_add_test(s, "split and batched writes", TEST_split_and_batched_writes) ||
        !CU_add_test(s, "drop the 2nd PUBACK", TEST_drop_second_puback) ||
        !CU_add_test(s, "duplicate a PUBLISH", TEST_duplicate_publish) ||
        !CU_add_test(s, "delay keeps order", TEST_delay_keeps_order) ||
        !CU_add_test(s, "reorder", TEST_reorder) ||
        !CU_add_test(s, "cut before: will", TEST_cut_before) ||
        !CU_add_test(s, "cut after: will", TEST_cut_after) ||
        !CU_add_test(s, "DISCONNECT then close: no will", TEST_disconnect_then_close_no_will) ||
        !CU_add_test(s, "cut bytes", TEST_cut_bytes) ||
        !CU_add_test(s, "blackhole", TEST_blackhole) ||
        !CU_add_test(s, "blackhole_all and cut_all", TEST_blackhole_all_and_cut_all) ||
        !CU_add_test(s, "refuse", TEST_refuse) ||
        !CU_add_test(s, "50 concurrent clients", TEST_many_clients) ||
        !CU_add_test(s, "garbage", TEST_garbage) ||
        !CU_add_test(s, "upstream down", TEST_upstream_down) ||
        !CU_add_test(s, "broker hangs up", TEST_broker_hangs_up) ||
        !CU_add_test(s, "client id filter", TEST_client_id_filter) ||
        !CU_add_test(s, "no fd or thread leak", TEST_no_leaks) ||
        !CU_add_test(s, "unix upstream", TEST_unix_upstream) ||
        !CU_add_test(s, "unix upstream, 50 clients", TEST_unix_many_clients) ||
        !CU_add_test(s, "unix upstream, full backlog", TEST_unix_backlog_retry) ||
        !CU_add_test(s, "unix upstream down", TEST_unix_upstream_down) ||
        !CU_add_test(s, "event loop failure", TEST_loop_failure))
        return 1;
    return 0;
}
