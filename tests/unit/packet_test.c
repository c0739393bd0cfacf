/*
 * packet_test.c - CUnit tests for runner/packet.c: every packet type in
 * MQTT 3.1.1 and 5.0 from hand-written bytes, the trace summaries, the
 * stream buffer under any read split, a named corpus of malformed packets,
 * a deterministic fuzz loop, and the bytes libmosquitto itself sends;
 * then the 3.1.1 encoder: the same packets byte for byte, round trips
 * through the decoder, every too-small buffer and every forbidden
 * argument, and the very bytes libmosquitto writes for the same packets.
 *
 * The fuzz loop is only useful under a sanitizer: build this suite once
 * with -fsanitize=address,undefined (every fuzz buffer is malloc'd to its
 * exact size, so an over-read is caught at the first byte).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <CUnit/CUnit.h>

#include <arpa/inet.h>
#include <errno.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "packet.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* -------------------------------------------------------------- packets */

/* 3.1.1 CONNECT: id gw-1, clean 0, keepalive 10, will acme/v1/p/estado
 * "offline" retained at QoS 1, user ana, password pw. */
static const uint8_t v4_connect[] = {
    0x10, 52,
    0, 4, 'M', 'Q', 'T', 'T', 4, 0xec, 0, 10,
    0, 4, 'g', 'w', '-', '1',
    0, 16, 'a', 'c', 'm', 'e', '/', 'v', '1', '/', 'p', '/', 'e', 's', 't', 'a', 'd', 'o',
    0, 7, 'o', 'f', 'f', 'l', 'i', 'n', 'e',
    0, 3, 'a', 'n', 'a',
    0, 2, 'p', 'w',
};
/* The same in 5.0, with a session expiry property and a will property. */
static const uint8_t v5_connect[] = {
    0x10, 61,
    0, 4, 'M', 'Q', 'T', 'T', 5, 0xec, 0, 10,
    5, 0x11, 0, 0, 0, 60,
    0, 4, 'g', 'w', '-', '1',
    2, 0x01, 1,
    0, 16, 'a', 'c', 'm', 'e', '/', 'v', '1', '/', 'p', '/', 'e', 's', 't', 'a', 'd', 'o',
    0, 7, 'o', 'f', 'f', 'l', 'i', 'n', 'e',
    0, 3, 'a', 'n', 'a',
    0, 2, 'p', 'w',
};
/* 5.0 allows a password without a user name. */
static const uint8_t v5_connect_token[] = {
    0x10, 19,
    0, 4, 'M', 'Q', 'T', 'T', 5, 0x42, 0, 60,
    0,
    0, 1, 'c',
    0, 3, 't', 'o', 'k',
};
/* MQTT 3.1 ("MQIsdp", level 3), clean session, no will. */
static const uint8_t v31_connect[] = {
    0x10, 16,
    0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 60,
    0, 2, 'c', '1',
};

static const uint8_t v4_connack[] = { 0x20, 2, 0, 0 };
static const uint8_t v4_connack_refused[] = { 0x20, 2, 0, 5 };
static const uint8_t v5_connack[] = { 0x20, 3, 1, 0, 0 };
static const uint8_t v5_connack_props[] = { 0x20, 6, 0, 0x87, 3, 0x22, 0, 10 };

static const uint8_t v4_publish_q0[] = {
    0x31, 11, 0, 3, 'a', '/', 'b', 'o', 'n', 'l', 'i', 'n', 'e',
};
static const uint8_t v4_publish_q1[] = {
    0x3a, 59,
    0, 27, 'a', 'c', 'm', 'e', '/', 'v', '1', '/', 'p', 'l', 'a', 'n', 't', 'a', '-', '1', '/',
    'n', 'o', 'r', 't', 'e', '/', 't', 'e', 'm', 'p',
    0, 7,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
    24, 25, 26, 27,
};
static const uint8_t v4_publish_q2[] = { 0x35, 7, 0, 1, 'x', 0x12, 0x34, 'h', 'i' };
static const uint8_t v5_publish_q1[] = {
    0x32, 13, 0, 3, 'a', '/', 'b', 0, 1, 3, 0x23, 0, 5, 'h', 'i',
};
static const uint8_t v5_publish_alias[] = { 0x30, 8, 0, 0, 3, 0x23, 0, 5, 'h', 'i' };
static const uint8_t v5_publish_q2[] = { 0x3d, 8, 0, 1, 't', 0, 9, 0, 'o', 'k' };

static const uint8_t v4_puback[] = { 0x40, 2, 0, 7 };
static const uint8_t v4_pubrec[] = { 0x50, 2, 0, 7 };
static const uint8_t v4_pubrel[] = { 0x62, 2, 0, 7 };
static const uint8_t v4_pubcomp[] = { 0x70, 2, 0, 7 };
static const uint8_t v5_puback[] = { 0x40, 3, 0, 7, 0x10 };
static const uint8_t v5_pubrec[] = { 0x50, 4, 0, 7, 0, 0 };
static const uint8_t v5_pubrel[] = { 0x62, 2, 0, 7 };
static const uint8_t v5_pubcomp[] = { 0x70, 7, 0, 7, 0x92, 3, 0x1f, 0, 0 };

static const uint8_t v4_subscribe[] = {
    0x82, 28, 0, 1,
    0, 9, 'a', 'c', 'm', 'e', '/', 'v', '1', '/', '#', 1,
    0, 3, 'a', '/', 'b', 0,
    0, 5, 'c', '/', '+', '/', 'd', 2,
};
static const uint8_t v5_subscribe[] = {
    0x82, 31, 0, 2,
    2, 0x0b, 7,
    0, 9, 'a', 'c', 'm', 'e', '/', 'v', '1', '/', '#', 0x2d,
    0, 3, 'a', '/', 'b', 0x04,
    0, 5, 'c', '/', '+', '/', 'd', 0x1a,
};
static const uint8_t v4_suback[] = { 0x90, 4, 0, 1, 1, 0x80 };
static const uint8_t v5_suback[] = { 0x90, 5, 0, 1, 0, 1, 0x87 };
static const uint8_t v4_unsubscribe[] = { 0xa2, 7, 0, 2, 0, 3, 'a', '/', 'b' };
static const uint8_t v5_unsubscribe[] = { 0xa2, 8, 0, 2, 0, 0, 3, 'a', '/', 'b' };
static const uint8_t v4_unsuback[] = { 0xb0, 2, 0, 2 };
static const uint8_t v5_unsuback[] = { 0xb0, 4, 0, 2, 0, 0 };
static const uint8_t pingreq[] = { 0xc0, 0 };
static const uint8_t pingresp[] = { 0xd0, 0 };
static const uint8_t disconnect[] = { 0xe0, 0 };
static const uint8_t v5_disconnect_rc[] = { 0xe0, 1, 4 };
static const uint8_t v5_disconnect_props[] = { 0xe0, 2, 0x8e, 0 };
static const uint8_t v5_auth[] = { 0xf0, 0 };
static const uint8_t v5_auth_rc[] = { 0xf0, 2, 0x18, 0 };

/* Every valid packet above with its level: the fuzz loop's seeds. */
static const struct { const uint8_t *b; size_t n; int level; } seeds[] = {
#define S(a, l) { a, sizeof a, l }
    S(v4_connect, 0), S(v5_connect, 0), S(v5_connect_token, 0), S(v31_connect, 0),
    S(v4_connack, 4), S(v4_connack_refused, 4), S(v5_connack, 5), S(v5_connack_props, 5),
    S(v4_publish_q0, 4), S(v4_publish_q1, 4), S(v4_publish_q2, 4),
    S(v5_publish_q1, 5), S(v5_publish_alias, 5), S(v5_publish_q2, 5),
    S(v4_puback, 4), S(v4_pubrec, 4), S(v4_pubrel, 4), S(v4_pubcomp, 4),
    S(v5_puback, 5), S(v5_pubrec, 5), S(v5_pubrel, 5), S(v5_pubcomp, 5),
    S(v4_subscribe, 4), S(v5_subscribe, 5), S(v4_suback, 4), S(v5_suback, 5),
    S(v4_unsubscribe, 4), S(v5_unsubscribe, 5), S(v4_unsuback, 4), S(v5_unsuback, 5),
    S(pingreq, 4), S(pingresp, 4), S(disconnect, 4), S(v5_disconnect_rc, 5),
    S(v5_disconnect_props, 5), S(v5_auth, 5), S(v5_auth_rc, 5),
#undef S
};

/* ------------------------------------------------------------- helpers */

static int beq(pkt_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.p, s, n) == 0);
}

/* Frame and decode one whole packet; both must succeed. */
static int decode_ok(const uint8_t *b, size_t n, int level, pkt *p)
{
    char err[KIT_ERRLEN] = "";
    size_t size = 0;
    int frc = pkt_frame(b, n, 0, &size, err);
    int drc = pkt_decode(b, n, level, p, err);
    int ok = frc == PKT_COMPLETE && size == n && drc == KIT_OK;
    if (!ok)
        fprintf(stderr, "\n  %s (%zu bytes, level %d): frame %d, decode %d: %s\n",
                pkt_type_name(b[0] >> 4), n, level, frc, drc, err);
    CU_ASSERT(ok);
    return ok;
}

static void summary_is(const uint8_t *b, size_t n, int level, const char *want)
{
    pkt p;
    char out[512];
    if (!decode_ok(b, n, level, &p)) return;
    pkt_summary(&p, out, sizeof out);
    if (strcmp(out, want) != 0) fprintf(stderr, "\n  summary \"%s\"\n     want \"%s\"\n", out, want);
    CU_ASSERT_STRING_EQUAL(out, want);
}

/* ------------------------------------------------------------- decoding */

static void TEST_connect(void)
{
    pkt p;
    const uint8_t *both[] = { v4_connect, v5_connect };
    size_t sizes[] = { sizeof v4_connect, sizeof v5_connect };
    for (int i = 0; i < 2; i++) {
        /* The connection's level is ignored: CONNECT carries its own. */
        if (!decode_ok(both[i], sizes[i], i ? 4 : 5, &p)) continue;
        CU_ASSERT_EQUAL(p.type, PKT_CONNECT);
        CU_ASSERT_EQUAL(p.flags, 0);
        CU_ASSERT_EQUAL(p.header_len, 2);
        CU_ASSERT_EQUAL(p.size, sizes[i]);
        CU_ASSERT_EQUAL(p.remaining, sizes[i] - 2);
        CU_ASSERT(beq(p.proto_name, "MQTT"));
        CU_ASSERT_EQUAL(p.level, i ? 5 : 4);
        CU_ASSERT_EQUAL(p.clean, 0);
        CU_ASSERT_EQUAL(p.keepalive, 10);
        CU_ASSERT(beq(p.client_id, "gw-1"));
        CU_ASSERT_EQUAL(p.will, 1);
        CU_ASSERT_EQUAL(p.will_qos, 1);
        CU_ASSERT_EQUAL(p.will_retain, 1);
        CU_ASSERT(beq(p.will_topic, "acme/v1/p/estado"));
        CU_ASSERT(beq(p.will_payload, "offline"));
        CU_ASSERT_EQUAL(p.has_username, 1);
        CU_ASSERT_EQUAL(p.has_password, 1);
        CU_ASSERT(beq(p.username, "ana"));
        CU_ASSERT_EQUAL(p.packet_id, -1);
        CU_ASSERT_EQUAL(p.reason, -1);
    }

    if (decode_ok(v5_connect_token, sizeof v5_connect_token, 0, &p)) {
        CU_ASSERT_EQUAL(p.has_password, 1);
        CU_ASSERT_EQUAL(p.has_username, 0);
        CU_ASSERT_EQUAL(p.clean, 1);
        CU_ASSERT_EQUAL(p.will, 0);
        CU_ASSERT(beq(p.client_id, "c"));
    }
    if (decode_ok(v31_connect, sizeof v31_connect, 0, &p)) {
        CU_ASSERT(beq(p.proto_name, "MQIsdp"));
        CU_ASSERT_EQUAL(p.level, 3);
        CU_ASSERT_EQUAL(p.clean, 1);
        CU_ASSERT_EQUAL(p.keepalive, 60);
        CU_ASSERT(beq(p.client_id, "c1"));
    }
}

static void TEST_connack(void)
{
    pkt p;
    if (decode_ok(v4_connack_refused, sizeof v4_connack_refused, 4, &p)) {
        CU_ASSERT_EQUAL(p.type, PKT_CONNACK);
        CU_ASSERT_EQUAL(p.reason, 5);
        CU_ASSERT_EQUAL(p.session_present, 0);
        CU_ASSERT_EQUAL(p.packet_id, -1);
    }
    if (decode_ok(v5_connack, sizeof v5_connack, 5, &p)) {
        CU_ASSERT_EQUAL(p.reason, 0);
        CU_ASSERT_EQUAL(p.session_present, 1);
    }
    if (decode_ok(v5_connack_props, sizeof v5_connack_props, 5, &p)) {
        CU_ASSERT_EQUAL(p.reason, 0x87);
    }
}

static void TEST_publish(void)
{
    pkt p;
    if (decode_ok(v4_publish_q0, sizeof v4_publish_q0, 4, &p)) {
        CU_ASSERT_EQUAL(p.type, PKT_PUBLISH);
        CU_ASSERT_EQUAL(p.qos, 0);
        CU_ASSERT_EQUAL(p.retain, 1);
        CU_ASSERT_EQUAL(p.dup, 0);
        CU_ASSERT_EQUAL(p.packet_id, -1);
        CU_ASSERT(beq(p.topic, "a/b"));
        CU_ASSERT(beq(p.payload, "online"));
    }
    if (decode_ok(v4_publish_q1, sizeof v4_publish_q1, 4, &p)) {
        CU_ASSERT_EQUAL(p.flags, 0xa);
        CU_ASSERT_EQUAL(p.qos, 1);
        CU_ASSERT_EQUAL(p.dup, 1);
        CU_ASSERT_EQUAL(p.retain, 0);
        CU_ASSERT_EQUAL(p.packet_id, 7);
        CU_ASSERT(beq(p.topic, "acme/v1/planta-1/norte/temp"));
        CU_ASSERT_EQUAL(p.payload.len, 28);
        CU_ASSERT_PTR_EQUAL(p.payload.p, v4_publish_q1 + 33);
    }
    if (decode_ok(v4_publish_q2, sizeof v4_publish_q2, 4, &p)) {
        CU_ASSERT_EQUAL(p.qos, 2);
        CU_ASSERT_EQUAL(p.retain, 1);
        CU_ASSERT_EQUAL(p.packet_id, 0x1234);
        CU_ASSERT(beq(p.payload, "hi"));
    }
    /* Level 0 (not known yet) reads as 3.1.1. */
    if (decode_ok(v4_publish_q2, sizeof v4_publish_q2, 0, &p))
        CU_ASSERT(beq(p.payload, "hi"));
    if (decode_ok(v5_publish_q1, sizeof v5_publish_q1, 5, &p)) {
        CU_ASSERT_EQUAL(p.qos, 1);
        CU_ASSERT_EQUAL(p.packet_id, 1);
        CU_ASSERT(beq(p.topic, "a/b"));
        CU_ASSERT(beq(p.payload, "hi"));   /* the properties were skipped */
    }
    if (decode_ok(v5_publish_alias, sizeof v5_publish_alias, 5, &p)) {
        CU_ASSERT_EQUAL(p.topic.len, 0);
        CU_ASSERT(beq(p.payload, "hi"));
    }
    if (decode_ok(v5_publish_q2, sizeof v5_publish_q2, 5, &p)) {
        CU_ASSERT_EQUAL(p.qos, 2);
        CU_ASSERT_EQUAL(p.dup, 1);
        CU_ASSERT_EQUAL(p.retain, 1);
        CU_ASSERT_EQUAL(p.packet_id, 9);
        CU_ASSERT(beq(p.payload, "ok"));
    }
    /* Read as 3.1.1, the v5 PUBLISH's property length would be payload. */
    if (decode_ok(v5_publish_q1, sizeof v5_publish_q1, 4, &p))
        CU_ASSERT_EQUAL(p.payload.len, 6);
}

static void TEST_acks(void)
{
    static const struct { const uint8_t *b; size_t n; int level, type, reason; } t[] = {
        { v4_puback, sizeof v4_puback, 4, PKT_PUBACK, -1 },
        { v4_pubrec, sizeof v4_pubrec, 4, PKT_PUBREC, -1 },
        { v4_pubrel, sizeof v4_pubrel, 4, PKT_PUBREL, -1 },
        { v4_pubcomp, sizeof v4_pubcomp, 4, PKT_PUBCOMP, -1 },
        { v5_puback, sizeof v5_puback, 5, PKT_PUBACK, 0x10 },
        { v5_pubrec, sizeof v5_pubrec, 5, PKT_PUBREC, 0 },
        { v5_pubrel, sizeof v5_pubrel, 5, PKT_PUBREL, -1 },
        { v5_pubcomp, sizeof v5_pubcomp, 5, PKT_PUBCOMP, 0x92 },
    };
    for (size_t i = 0; i < N(t); i++) {
        pkt p;
        if (!decode_ok(t[i].b, t[i].n, t[i].level, &p)) continue;
        CU_ASSERT_EQUAL(p.type, t[i].type);
        CU_ASSERT_EQUAL(p.packet_id, 7);
        CU_ASSERT_EQUAL(p.reason, t[i].reason);
    }
}

static void TEST_subscribe(void)
{
    pkt p;
    const uint8_t *both[] = { v4_subscribe, v5_subscribe };
    size_t sizes[] = { sizeof v4_subscribe, sizeof v5_subscribe };
    for (int i = 0; i < 2; i++) {
        if (!decode_ok(both[i], sizes[i], i ? 5 : 4, &p)) continue;
        CU_ASSERT_EQUAL(p.type, PKT_SUBSCRIBE);
        CU_ASSERT_EQUAL(p.flags, 2);
        CU_ASSERT_EQUAL(p.packet_id, i + 1);
        CU_ASSERT_EQUAL(p.nfilters, 3);
        CU_ASSERT(beq(p.filters[0].filter, "acme/v1/#"));
        CU_ASSERT_EQUAL(p.filters[0].qos, 1);
        CU_ASSERT(beq(p.filters[1].filter, "a/b"));
        CU_ASSERT_EQUAL(p.filters[1].qos, 0);
        CU_ASSERT(beq(p.filters[2].filter, "c/+/d"));
        CU_ASSERT_EQUAL(p.filters[2].qos, 2);
    }
    if (decode_ok(v4_suback, sizeof v4_suback, 4, &p)) {
        CU_ASSERT_EQUAL(p.type, PKT_SUBACK);
        CU_ASSERT_EQUAL(p.packet_id, 1);
        CU_ASSERT_EQUAL(p.ncodes, 2);
        CU_ASSERT_EQUAL(p.codes[0], 1);
        CU_ASSERT_EQUAL(p.codes[1], 0x80);
    }
    if (decode_ok(v5_suback, sizeof v5_suback, 5, &p)) {
        CU_ASSERT_EQUAL(p.ncodes, 2);
        CU_ASSERT_EQUAL(p.codes[1], 0x87);
    }
    const uint8_t *unsubs[] = { v4_unsubscribe, v5_unsubscribe };
    size_t usizes[] = { sizeof v4_unsubscribe, sizeof v5_unsubscribe };
    for (int i = 0; i < 2; i++) {
        if (!decode_ok(unsubs[i], usizes[i], i ? 5 : 4, &p)) continue;
        CU_ASSERT_EQUAL(p.type, PKT_UNSUBSCRIBE);
        CU_ASSERT_EQUAL(p.packet_id, 2);
        CU_ASSERT_EQUAL(p.nfilters, 1);
        CU_ASSERT(beq(p.filters[0].filter, "a/b"));
        CU_ASSERT_EQUAL(p.filters[0].qos, -1);
    }
    if (decode_ok(v4_unsuback, sizeof v4_unsuback, 4, &p)) {
        CU_ASSERT_EQUAL(p.packet_id, 2);
        CU_ASSERT_EQUAL(p.ncodes, 0);
    }
    if (decode_ok(v5_unsuback, sizeof v5_unsuback, 5, &p)) {
        CU_ASSERT_EQUAL(p.ncodes, 1);
        CU_ASSERT_EQUAL(p.codes[0], 0);
    }
}

/* More filters than PKT_MAX_FILTERS: all counted, the first ones kept. */
static void TEST_many_filters(void)
{
    uint8_t b[2 + 2 + 20 * 4];
    size_t n = 0;
    b[n++] = 0x82;
    b[n++] = sizeof b - 2;
    b[n++] = 0;
    b[n++] = 5;
    for (int i = 0; i < 20; i++) {
        b[n++] = 0;
        b[n++] = 1;
        b[n++] = (uint8_t)('a' + i);
        b[n++] = (uint8_t)(i % 3);
    }
    pkt p;
    if (!decode_ok(b, n, 4, &p)) return;
    CU_ASSERT_EQUAL(p.nfilters, 20);
    CU_ASSERT(beq(p.filters[15].filter, "p"));
    CU_ASSERT_EQUAL(p.filters[15].qos, 0);
    char out[512];
    pkt_summary(&p, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " p:q0 +4 more"));
}

static void TEST_control(void)
{
    pkt p;
    if (decode_ok(pingreq, sizeof pingreq, 4, &p)) {
        CU_ASSERT_EQUAL(p.type, PKT_PINGREQ);
        CU_ASSERT_EQUAL(p.size, 2);
        CU_ASSERT_EQUAL(p.remaining, 0);
    }
    if (decode_ok(pingresp, sizeof pingresp, 5, &p)) CU_ASSERT_EQUAL(p.type, PKT_PINGRESP);
    if (decode_ok(disconnect, sizeof disconnect, 4, &p)) {
        CU_ASSERT_EQUAL(p.type, PKT_DISCONNECT);
        CU_ASSERT_EQUAL(p.reason, -1);
    }
    if (decode_ok(disconnect, sizeof disconnect, 5, &p)) CU_ASSERT_EQUAL(p.reason, -1);
    if (decode_ok(v5_disconnect_rc, sizeof v5_disconnect_rc, 5, &p)) CU_ASSERT_EQUAL(p.reason, 4);
    if (decode_ok(v5_disconnect_props, sizeof v5_disconnect_props, 5, &p)) CU_ASSERT_EQUAL(p.reason, 0x8e);
    if (decode_ok(v5_auth, sizeof v5_auth, 5, &p)) {
        CU_ASSERT_EQUAL(p.type, PKT_AUTH);
        CU_ASSERT_EQUAL(p.reason, -1);
    }
    if (decode_ok(v5_auth_rc, sizeof v5_auth_rc, 5, &p)) CU_ASSERT_EQUAL(p.reason, 0x18);
}

/* A remaining length of 200 takes two bytes; framing must say so. */
static void TEST_frame_lengths(void)
{
    uint8_t b[3 + 200];
    memset(b, 'x', sizeof b);
    b[0] = 0x30;
    b[1] = 0xc8;     /* 200 = 0x48 | 1 << 7 */
    b[2] = 0x01;
    b[3] = 0;
    b[4] = 3;        /* topic "xxx", then 195 bytes of payload */
    size_t size = 1234;
    CU_ASSERT_EQUAL(pkt_frame(b, sizeof b, 0, &size, NULL), PKT_COMPLETE);
    CU_ASSERT_EQUAL(size, sizeof b);
    for (size_t len = 0; len < sizeof b; len++) {
        if (pkt_frame(b, len, 0, &size, NULL) != PKT_NEED_MORE) {
            fprintf(stderr, "\n  frame of %zu bytes is not NEED_MORE\n", len);
            CU_FAIL("a prefix framed as complete");
            break;
        }
    }
    /* max counts the whole packet, header included. */
    CU_ASSERT_EQUAL(pkt_frame(b, sizeof b, sizeof b, &size, NULL), PKT_COMPLETE);
    char err[KIT_ERRLEN] = "";
    CU_ASSERT_EQUAL(pkt_frame(b, sizeof b, sizeof b - 1, &size, err), PKT_ETOOBIG);
    CU_ASSERT(err[0] != '\0');
    pkt p;
    if (decode_ok(b, sizeof b, 4, &p)) {
        CU_ASSERT_EQUAL(p.header_len, 3);
        CU_ASSERT_EQUAL(p.remaining, 200);
        CU_ASSERT_EQUAL(p.payload.len, 195);
    }
    /* The largest remaining length, and the 4-byte limit. */
    const uint8_t big[] = { 0x30, 0xff, 0xff, 0xff, 0x7f };
    CU_ASSERT_EQUAL(pkt_frame(big, sizeof big, 0, &size, NULL), PKT_NEED_MORE);
    CU_ASSERT_EQUAL(pkt_frame(big, sizeof big, 1u << 20, &size, NULL), PKT_ETOOBIG);
    const uint8_t toolong[] = { 0x30, 0xff, 0xff, 0xff, 0x80 };
    CU_ASSERT_EQUAL(pkt_frame(toolong, sizeof toolong, 0, &size, NULL), PKT_EMALFORMED);
    CU_ASSERT_EQUAL(pkt_frame(NULL, 0, 0, &size, NULL), PKT_NEED_MORE);
}

static void TEST_type_names(void)
{
    static const char *const names[16] = {
        "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
        "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"
    };
    for (int i = 0; i < 16; i++) {
        CU_ASSERT_STRING_EQUAL(pkt_type_name(i), names[i]);
        CU_ASSERT_EQUAL(pkt_type_from_name(names[i]), i);
    }
    CU_ASSERT_EQUAL(pkt_type_from_name("puback"), PKT_PUBACK);
    CU_ASSERT_EQUAL(pkt_type_from_name("PubRel"), PKT_PUBREL);
    CU_ASSERT_EQUAL(pkt_type_from_name("unsubscribe"), PKT_UNSUBSCRIBE);
    CU_ASSERT_EQUAL(pkt_type_from_name("pub"), -1);
    CU_ASSERT_EQUAL(pkt_type_from_name("publishx"), -1);
    CU_ASSERT_EQUAL(pkt_type_from_name(""), -1);
    CU_ASSERT_EQUAL(pkt_type_from_name(NULL), -1);
    CU_ASSERT_STRING_EQUAL(pkt_type_name(16), "UNKNOWN");
    CU_ASSERT_STRING_EQUAL(pkt_type_name(-1), "UNKNOWN");
}

/* -------------------------------------------------------------- summary */

static void TEST_summary(void)
{
    summary_is(v4_connect, sizeof v4_connect, 0,
               "CONNECT id=gw-1 v4 clean=0 ka=10 will=acme/v1/p/estado \"offline\" r1 q1 user pass");
    summary_is(v5_connect, sizeof v5_connect, 0,
               "CONNECT id=gw-1 v5 clean=0 ka=10 will=acme/v1/p/estado \"offline\" r1 q1 user pass");
    summary_is(v5_connect_token, sizeof v5_connect_token, 0, "CONNECT id=c v5 clean=1 ka=60 pass");
    summary_is(v31_connect, sizeof v31_connect, 0, "CONNECT id=c1 v3 clean=1 ka=60");
    summary_is(v4_connack, sizeof v4_connack, 4, "CONNACK rc=0 sp=0");
    summary_is(v4_connack_refused, sizeof v4_connack_refused, 4, "CONNACK rc=5 sp=0");
    summary_is(v5_connack, sizeof v5_connack, 5, "CONNACK rc=0x00 sp=1");
    summary_is(v5_connack_props, sizeof v5_connack_props, 5, "CONNACK rc=0x87 sp=0");
    summary_is(v4_publish_q1, sizeof v4_publish_q1, 4,
               "PUBLISH q1 dup=1 r0 id=7 acme/v1/planta-1/norte/temp 28 B");
    summary_is(v4_publish_q0, sizeof v4_publish_q0, 4, "PUBLISH q0 r1 id=- a/b 6 B \"online\"");
    summary_is(v4_publish_q2, sizeof v4_publish_q2, 4, "PUBLISH q2 r1 id=4660 x 2 B \"hi\"");
    summary_is(v5_publish_alias, sizeof v5_publish_alias, 5, "PUBLISH q0 r0 id=- \"\" 2 B \"hi\"");
    summary_is(v5_publish_q2, sizeof v5_publish_q2, 5, "PUBLISH q2 dup=1 r1 id=9 t 2 B \"ok\"");
    summary_is(v4_puback, sizeof v4_puback, 4, "PUBACK id=7");
    summary_is(v5_puback, sizeof v5_puback, 5, "PUBACK id=7 rc=0x10");
    summary_is(v5_pubrel, sizeof v5_pubrel, 5, "PUBREL id=7");
    summary_is(v5_pubcomp, sizeof v5_pubcomp, 5, "PUBCOMP id=7 rc=0x92");
    summary_is(v4_subscribe, sizeof v4_subscribe, 4, "SUBSCRIBE id=1 acme/v1/#:q1 a/b:q0 c/+/d:q2");
    summary_is(v4_suback, sizeof v4_suback, 4, "SUBACK id=1 [1 128]");
    summary_is(v5_suback, sizeof v5_suback, 5, "SUBACK id=1 [0x01 0x87]");
    summary_is(v4_unsubscribe, sizeof v4_unsubscribe, 4, "UNSUBSCRIBE id=2 a/b");
    summary_is(v4_unsuback, sizeof v4_unsuback, 4, "UNSUBACK id=2");
    summary_is(v5_unsuback, sizeof v5_unsuback, 5, "UNSUBACK id=2 [0x00]");
    summary_is(pingreq, sizeof pingreq, 4, "PINGREQ");
    summary_is(pingresp, sizeof pingresp, 4, "PINGRESP");
    summary_is(disconnect, sizeof disconnect, 4, "DISCONNECT");
    summary_is(disconnect, sizeof disconnect, 5, "DISCONNECT");
    summary_is(v5_disconnect_rc, sizeof v5_disconnect_rc, 5, "DISCONNECT rc=0x04");
    summary_is(v5_auth_rc, sizeof v5_auth_rc, 5, "AUTH rc=0x18");
}

/* Build a 3.1.1 PUBLISH (QoS 0) of topic and payload into b. */
static size_t make_publish(uint8_t *b, size_t cap, const char *topic, size_t tlen,
                           const char *payload, size_t plen)
{
    size_t rem = 2 + tlen + plen;
    if (rem > 127 || rem + 2 > cap) return 0;
    b[0] = 0x30;
    b[1] = (uint8_t)rem;
    b[2] = 0;
    b[3] = (uint8_t)tlen;
    memcpy(b + 4, topic, tlen);
    memcpy(b + 4 + tlen, payload, plen);
    return rem + 2;
}

static void TEST_summary_escapes(void)
{
    uint8_t b[160];
    size_t n;

    /* Non-printable bytes in a topic; '\' doubled; UTF-8 kept. */
    n = make_publish(b, sizeof b, "a\x01/b\\c/ni\xc3\xb1o", 12, "x", 1);
    summary_is(b, n, 4, "PUBLISH q0 r0 id=- a\\x01/b\\\\c/ni\xc3\xb1o 1 B \"x\"");
    /* Invalid UTF-8 (a lone continuation byte, a cut sequence) is escaped. */
    n = make_publish(b, sizeof b, "t\x80/\xc3", 4, "", 0);
    summary_is(b, n, 4, "PUBLISH q0 r0 id=- t\\x80/\\xc3 0 B");
    /* A payload with a quote is printable and escaped inside quotes. */
    n = make_publish(b, sizeof b, "t", 1, "say \"hi\"", 8);
    summary_is(b, n, 4, "PUBLISH q0 r0 id=- t 8 B \"say \\\"hi\\\"\"");
    /* A payload with a newline, or over 40 bytes, is only counted. */
    n = make_publish(b, sizeof b, "t", 1, "line\n", 5);
    summary_is(b, n, 4, "PUBLISH q0 r0 id=- t 5 B");
    n = make_publish(b, sizeof b, "t", 1, "0123456789012345678901234567890123456789", 40);
    summary_is(b, n, 4, "PUBLISH q0 r0 id=- t 40 B \"0123456789012345678901234567890123456789\"");
    n = make_publish(b, sizeof b, "t", 1, "0123456789012345678901234567890123456789X", 41);
    summary_is(b, n, 4, "PUBLISH q0 r0 id=- t 41 B");
    /* Accented text is printable. */
    n = make_publish(b, sizeof b, "t", 1, "est\xc3\xa1 encendido", 15);
    summary_is(b, n, 4, "PUBLISH q0 r0 id=- t 15 B \"est\xc3\xa1 encendido\"");

    /* A long topic keeps its end. */
    const char *lt = "acme/v1/planta-1/zona-industrial-sur/edificio-3/norte/estado";
    n = make_publish(b, sizeof b, lt, strlen(lt), "on", 2);
    summary_is(b, n, 4,
               "PUBLISH q0 r0 id=- \xe2\x80\xa6" "a-1/zona-industrial-sur/edificio-3/norte/estado 2 B \"on\"");
    /* A topic of exactly 48 bytes is not shortened. */
    const char *t48 = "acme/v1/planta-1/zona-industrial-sur/edific/x/yz";
    n = make_publish(b, sizeof b, t48, 48, "", 0);
    summary_is(b, n, 4, "PUBLISH q0 r0 id=- acme/v1/planta-1/zona-industrial-sur/edific/x/yz 0 B");
    /* The cut never splits a UTF-8 character: here byte 47 from the end
     * is the second byte of "ñ", so the ñ goes entirely. */
    char ut[64];
    memset(ut, 'x', sizeof ut);
    memcpy(ut + 60 - 48, "\xc3\xb1", 2);
    n = make_publish(b, sizeof b, ut, 60, "", 0);
    pkt p;
    char out[256];
    if (decode_ok(b, n, 4, &p)) {
        pkt_summary(&p, out, sizeof out);
        CU_ASSERT(strncmp(out, "PUBLISH q0 r0 id=- \xe2\x80\xa6xxx", 25) == 0);
        CU_ASSERT_PTR_NULL(strstr(out, "\\x"));
    }

    /* A long client id keeps its start. */
    static const uint8_t longid[] = {
        0x10, 71, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 59,
        'c', 'l', 'i', 'e', 'n', 't', 'e', '-', 'c', 'o', 'n', '-', 'u', 'n', '-', 'i', 'd', 'e',
        'n', 't', 'i', 'f', 'i', 'c', 'a', 'd', 'o', 'r', '-', 'm', 'u', 'y', '-', 'l', 'a', 'r',
        'g', 'o', '-', 'p', 'a', 'r', 'a', '-', 'p', 'r', 'o', 'b', 'a', 'r', '-', 'e', 'l', '-',
        'c', 'o', 'r', 't', 'e',
    };
    summary_is(longid, sizeof longid, 0,
               "CONNECT id=cliente-con-un-identificador-muy-largo-para-pro\xe2\x80\xa6 v4 clean=1 ka=0");

    /* A binary will payload is counted, an empty one shows as "". */
    static const uint8_t binwill[] = {
        0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 5, 0, 1, 'c',
        0, 1, 'w', 0, 2, 0xff, 0x00,
    };
    summary_is(binwill, sizeof binwill, 0, "CONNECT id=c v4 clean=1 ka=5 will=w 2 B r0 q0");
    static const uint8_t emptywill[] = {
        0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x16, 0, 5, 0, 1, 'c',
        0, 1, 'w', 0, 0,
    };
    summary_is(emptywill, sizeof emptywill, 0, "CONNECT id=c v4 clean=1 ka=5 will=w \"\" r0 q2");
}

/* A small buffer gets a NUL-terminated prefix cut between pieces, and
 * nothing is written past outlen. */
static void TEST_summary_truncates(void)
{
    pkt p;
    if (!decode_ok(v4_connect, sizeof v4_connect, 0, &p)) return;
    char full[256];
    pkt_summary(&p, full, sizeof full);
    for (size_t outlen = 1; outlen < strlen(full) + 2; outlen++) {
        char out[300];
        memset(out, 0x5a, sizeof out);
        CU_ASSERT_PTR_EQUAL(pkt_summary(&p, out, outlen), out);
        size_t n = strnlen(out, outlen);
        int ok = n < outlen && strncmp(out, full, n) == 0 && out[outlen] == 0x5a;
        if (!ok) { fprintf(stderr, "\n  outlen %zu: \"%s\"\n", outlen, out); CU_FAIL("truncation"); break; }
    }
    char one[1] = { 'x' };
    pkt_summary(&p, one, 1);
    CU_ASSERT_EQUAL(one[0], '\0');
    CU_ASSERT_PTR_NULL(pkt_summary(&p, NULL, 10));
    char out[32] = "junk";
    pkt_summary(NULL, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "");
}

/* ------------------------------------------------------------ malformed */

enum {
    X_FRAME = 1,    /* pkt_frame: PKT_EMALFORMED (and decode fails too) */
    X_TOOBIG,       /* pkt_frame with max: PKT_ETOOBIG, body not needed */
    X_DECODE,       /* frames as one whole packet, decode says EINVAL */
    X_SIZE          /* decode given a buffer that is not one whole packet */
};

typedef struct {
    const char *name;
    int expect, level;
    size_t max;
    const uint8_t *b;
    size_t n;
} bad_case;

#define BAD(name, expect, level, max, ...) \
    { name, expect, level, max, (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }) }
#define MQTT4 0, 4, 'M', 'Q', 'T', 'T', 4
#define MQTT5 0, 4, 'M', 'Q', 'T', 'T', 5

static void TEST_malformed(void)
{
    const bad_case cases[] = {
        BAD("remaining length in 5 bytes", X_FRAME, 4, 0, 0x30, 0xff, 0xff, 0xff, 0xff, 0x01),
        BAD("remaining length: 4th byte continues", X_FRAME, 4, 0, 0x30, 0x80, 0x80, 0x80, 0x80),
        BAD("packet type 0", X_FRAME, 4, 0, 0x00, 0x00),
        BAD("packet type 0 with flags", X_FRAME, 4, 0, 0x0f, 0x02, 0, 1),
        BAD("larger than max, known from the header", X_TOOBIG, 4, 1000, 0x30, 0xff, 0x7f),
        BAD("larger than max by the header's 2 bytes", X_TOOBIG, 4, 10, 0x30, 10),
        BAD("CONNECT protocol name length cut", X_DECODE, 4, 0, 0x10, 1, 0),
        BAD("CONNECT protocol name past the end", X_DECODE, 4, 0, 0x10, 4, 0, 6, 'M', 'Q'),
        BAD("CONNECT unknown protocol name", X_DECODE, 0, 0,
            0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 0),
        BAD("CONNECT MQTT with level 3", X_DECODE, 0, 0,
            0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 60, 0, 0),
        BAD("CONNECT MQIsdp with level 4", X_DECODE, 0, 0,
            0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 60, 0, 0),
        BAD("CONNECT reserved flag bit 0", X_DECODE, 0, 0, 0x10, 12, MQTT4, 0x03, 0, 60, 0, 0),
        BAD("CONNECT will QoS 3", X_DECODE, 0, 0, 0x10, 12, MQTT4, 0x1e, 0, 60, 0, 0),
        BAD("CONNECT will retain without will", X_DECODE, 0, 0, 0x10, 12, MQTT4, 0x22, 0, 60, 0, 0),
        BAD("CONNECT will QoS without will", X_DECODE, 0, 0, 0x10, 12, MQTT4, 0x0a, 0, 60, 0, 0),
        BAD("CONNECT password without user name (3.1.1)", X_DECODE, 0, 0,
            0x10, 18, MQTT4, 0x42, 0, 60, 0, 1, 'c', 0, 3, 't', 'o', 'k'),
        BAD("CONNECT client id past the end", X_DECODE, 0, 0, 0x10, 12, MQTT4, 2, 0, 60, 0, 5),
        BAD("CONNECT keepalive cut (remaining length too short)", X_DECODE, 0, 0,
            0x10, 8, MQTT4, 2),
        BAD("CONNECT v5 property length past the end", X_DECODE, 0, 0,
            0x10, 13, MQTT5, 2, 0, 60, 9, 0, 0),
        BAD("CONNECT v5 will property length past the end", X_DECODE, 0, 0,
            0x10, 16, MQTT5, 0x06, 0, 60, 0, 0, 1, 'c', 7, 0),
        BAD("CONNECT empty will topic", X_DECODE, 0, 0,
            0x10, 16, MQTT4, 0x06, 0, 60, 0, 0, 0, 0, 0, 0),
        BAD("CONNECT will topic with a wildcard", X_DECODE, 0, 0,
            0x10, 17, MQTT4, 0x06, 0, 60, 0, 0, 0, 1, '#', 0, 0),
        BAD("CONNECT will payload missing", X_DECODE, 0, 0,
            0x10, 15, MQTT4, 0x06, 0, 60, 0, 0, 0, 1, 'w'),
        BAD("CONNECT user name missing", X_DECODE, 0, 0, 0x10, 12, MQTT4, 0x82, 0, 60, 0, 0),
        BAD("CONNECT bytes after the password", X_DECODE, 0, 0,
            0x10, 17, MQTT4, 0xc2, 0, 60, 0, 0, 0, 0, 0, 0, 0xff),
        BAD("CONNACK 3 bytes in 3.1.1", X_DECODE, 4, 0, 0x20, 3, 0, 0, 0),
        BAD("CONNACK reserved acknowledge flags", X_DECODE, 4, 0, 0x20, 2, 2, 0),
        BAD("CONNACK v5 without properties", X_DECODE, 5, 0, 0x20, 2, 0, 0),
        BAD("CONNACK flags 1", X_DECODE, 4, 0, 0x21, 2, 0, 0),
        BAD("PUBLISH QoS 3", X_DECODE, 4, 0, 0x36, 5, 0, 1, 'a', 0, 1),
        BAD("PUBLISH QoS 0 with DUP", X_DECODE, 4, 0, 0x38, 3, 0, 1, 'a'),
        BAD("PUBLISH empty topic (3.1.1)", X_DECODE, 4, 0, 0x30, 4, 0, 0, 'h', 'i'),
        BAD("PUBLISH empty topic (3.1)", X_DECODE, 3, 0, 0x30, 4, 0, 0, 'h', 'i'),
        BAD("PUBLISH packet id 0", X_DECODE, 4, 0, 0x32, 5, 0, 1, 'a', 0, 0),
        BAD("PUBLISH topic past the end", X_DECODE, 4, 0, 0x30, 4, 0, 9, 'a', 'b'),
        BAD("PUBLISH topic length cut", X_DECODE, 4, 0, 0x30, 1, 0),
        BAD("PUBLISH no topic at all", X_DECODE, 4, 0, 0x30, 0),
        BAD("PUBLISH QoS 1 packet id cut", X_DECODE, 4, 0, 0x32, 4, 0, 1, 'a', 0),
        BAD("PUBLISH wildcard in topic", X_DECODE, 4, 0, 0x30, 5, 0, 3, 'a', '/', '#'),
        BAD("PUBLISH v5 property length past the end", X_DECODE, 5, 0, 0x30, 6, 0, 1, 'a', 5, 'x', 'y'),
        BAD("PUBLISH v5 property length over 4 bytes", X_DECODE, 5, 0,
            0x30, 8, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0x01),
        BAD("PUBLISH v5 property length missing", X_DECODE, 5, 0, 0x32, 5, 0, 1, 'a', 0, 1),
        BAD("PUBACK flags 1", X_DECODE, 4, 0, 0x41, 2, 0, 1),
        BAD("PUBREL flags 0", X_DECODE, 4, 0, 0x60, 2, 0, 1),
        BAD("PUBCOMP flags 2", X_DECODE, 4, 0, 0x72, 2, 0, 1),
        BAD("PUBACK packet id 0", X_DECODE, 4, 0, 0x40, 2, 0, 0),
        BAD("PUBREC packet id cut", X_DECODE, 4, 0, 0x50, 1, 0),
        BAD("PUBACK 3.1.1 with a reason code", X_DECODE, 4, 0, 0x40, 3, 0, 1, 0),
        BAD("PUBCOMP v5 property length past the end", X_DECODE, 5, 0, 0x70, 4, 0, 1, 0, 5),
        BAD("SUBSCRIBE flags 0", X_DECODE, 4, 0, 0x80, 6, 0, 1, 0, 1, 'a', 0),
        BAD("SUBSCRIBE no filters", X_DECODE, 4, 0, 0x82, 2, 0, 1),
        BAD("SUBSCRIBE v5 no filters", X_DECODE, 5, 0, 0x82, 3, 0, 1, 0),
        BAD("SUBSCRIBE packet id 0", X_DECODE, 4, 0, 0x82, 6, 0, 0, 0, 1, 'a', 0),
        BAD("SUBSCRIBE QoS 3", X_DECODE, 4, 0, 0x82, 6, 0, 1, 0, 1, 'a', 3),
        BAD("SUBSCRIBE reserved QoS bits (3.1.1)", X_DECODE, 4, 0, 0x82, 6, 0, 1, 0, 1, 'a', 0x04),
        BAD("SUBSCRIBE v5 retain handling 3", X_DECODE, 5, 0, 0x82, 7, 0, 1, 0, 0, 1, 'a', 0x30),
        BAD("SUBSCRIBE v5 reserved option bits", X_DECODE, 5, 0, 0x82, 7, 0, 1, 0, 0, 1, 'a', 0x40),
        BAD("SUBSCRIBE v5 property length past the end", X_DECODE, 5, 0, 0x82, 7, 0, 1, 9, 0, 1, 'a', 0),
        BAD("SUBSCRIBE filter without options", X_DECODE, 4, 0, 0x82, 5, 0, 1, 0, 1, 'a'),
        BAD("SUBSCRIBE empty filter", X_DECODE, 4, 0, 0x82, 5, 0, 1, 0, 0, 0),
        BAD("SUBSCRIBE second filter past the end", X_DECODE, 4, 0,
            0x82, 9, 0, 1, 0, 1, 'a', 0, 0, 7, 'b'),
        BAD("UNSUBSCRIBE no filters", X_DECODE, 4, 0, 0xa2, 2, 0, 1),
        BAD("UNSUBSCRIBE flags 0", X_DECODE, 4, 0, 0xa0, 5, 0, 1, 0, 1, 'a'),
        BAD("UNSUBSCRIBE filter past the end", X_DECODE, 4, 0, 0xa2, 5, 0, 1, 0, 2, 'a'),
        BAD("SUBACK no return codes", X_DECODE, 4, 0, 0x90, 2, 0, 1),
        BAD("SUBACK packet id 0", X_DECODE, 4, 0, 0x90, 3, 0, 0, 0),
        BAD("SUBACK v5 property length past the end", X_DECODE, 5, 0, 0x90, 4, 0, 1, 4, 0),
        BAD("UNSUBACK 3.1.1 with a byte more", X_DECODE, 4, 0, 0xb0, 3, 0, 1, 0),
        BAD("PINGREQ with a body", X_DECODE, 4, 0, 0xc0, 1, 0),
        BAD("PINGRESP flags 1", X_DECODE, 4, 0, 0xd1, 0),
        BAD("DISCONNECT 3.1.1 with a body", X_DECODE, 4, 0, 0xe0, 1, 0),
        BAD("DISCONNECT v5 property length past the end", X_DECODE, 5, 0, 0xe0, 3, 0, 5, 0),
        BAD("AUTH in 3.1.1", X_DECODE, 4, 0, 0xf0, 0),
        BAD("AUTH flags 1", X_DECODE, 5, 0, 0xf1, 0),
        BAD("header claims more bytes than given", X_SIZE, 4, 0, 0x30, 5, 0, 1, 'a'),
        BAD("bytes after the framed packet", X_SIZE, 4, 0, 0x30, 3, 0, 1, 'a', 0xee),
        BAD("remaining length cut", X_SIZE, 4, 0, 0x30, 0x80),
        BAD("only the first byte", X_SIZE, 4, 0, 0x30),
    };
    CU_ASSERT(N(cases) >= 25);

    for (size_t i = 0; i < N(cases); i++) {
        const bad_case *c = &cases[i];
        /* A private copy of exactly n bytes, so that ASan sees an over-read. */
        uint8_t *b = kit_xmalloc(c->n);
        memcpy(b, c->b, c->n);
        char ferr[KIT_ERRLEN] = "", derr[KIT_ERRLEN] = "", out[256];
        size_t size = 0;
        int frc = pkt_frame(b, c->n, c->max, &size, ferr);
        pkt p;
        memset(&p, 0xab, sizeof p);
        int drc = pkt_decode(b, c->n, c->level, &p, derr);
        pkt_summary(&p, out, sizeof out);

        int ok = drc == KIT_EINVAL && derr[0] != '\0' && p.type == (b[0] >> 4) && p.flags == (b[0] & 15);
        switch (c->expect) {
        case X_FRAME: ok = ok && frc == PKT_EMALFORMED && ferr[0]; break;
        case X_TOOBIG: ok = frc == PKT_ETOOBIG && ferr[0]; break;
        case X_DECODE: ok = ok && frc == PKT_COMPLETE && size == c->n && p.size == c->n; break;
        case X_SIZE: ok = ok && (frc == PKT_NEED_MORE || (frc == PKT_COMPLETE && size < c->n)); break;
        }
        if (!ok)
            fprintf(stderr, "\n  malformed case \"%s\": frame %d (%s), decode %d (%s)\n",
                    c->name, frc, ferr, drc, derr);
        CU_ASSERT(ok);
        free(b);
    }
}

/* The same CONNECT: password without user name is fine in 5.0 only;
 * and the v5 empty-topic PUBLISH is malformed when read as 3.1.1. */
static void TEST_version_rules(void)
{
    pkt p;
    char err[KIT_ERRLEN] = "";
    CU_ASSERT_EQUAL(pkt_decode(v5_connect_token, sizeof v5_connect_token, 0, &p, err), KIT_OK);
    uint8_t v4[sizeof v5_connect_token - 1];
    /* Level 4 and no property length byte. */
    memcpy(v4, v5_connect_token, 12);
    memcpy(v4 + 12, v5_connect_token + 13, sizeof v5_connect_token - 13);
    v4[1] = sizeof v4 - 2;
    v4[8] = 4;
    CU_ASSERT_EQUAL(pkt_decode(v4, sizeof v4, 0, &p, err), KIT_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "password"));

    CU_ASSERT_EQUAL(pkt_decode(v5_publish_alias, sizeof v5_publish_alias, 5, &p, err), KIT_OK);
    CU_ASSERT_EQUAL(pkt_decode(v5_publish_alias, sizeof v5_publish_alias, 4, &p, err), KIT_EINVAL);
    /* 3.1.1 PUBACK with a reason code is fine in 5.0. */
    const uint8_t ack3[] = { 0x40, 3, 0, 1, 0x10 };
    CU_ASSERT_EQUAL(pkt_decode(ack3, sizeof ack3, 5, &p, err), KIT_OK);
    CU_ASSERT_EQUAL(pkt_decode(ack3, sizeof ack3, 4, &p, err), KIT_EINVAL);
    /* The error names the packet. */
    CU_ASSERT(strncmp(err, "PUBACK", 6) == 0);
}

/* --------------------------------------------------------------- stream */

/* Six packets back to back; the PUBLISH has a 2-byte remaining length. */
static uint8_t stream_bytes[512];
static size_t stream_len, stream_off[7];

static void build_stream(void)
{
    uint8_t pub[3 + 150];
    memset(pub, 'p', sizeof pub);
    pub[0] = 0x32;
    pub[1] = 150 | 0x80;
    pub[2] = 1;
    pub[3] = 0; pub[4] = 3; pub[5] = 'a'; pub[6] = '/'; pub[7] = 'b';
    pub[8] = 0; pub[9] = 42;
    const struct { const uint8_t *b; size_t n; } six[] = {
        { v4_connect, sizeof v4_connect }, { pub, sizeof pub },
        { v4_subscribe, sizeof v4_subscribe }, { v4_puback, sizeof v4_puback },
        { pingreq, sizeof pingreq }, { disconnect, sizeof disconnect },
    };
    stream_len = 0;
    for (size_t i = 0; i < 6; i++) {
        stream_off[i] = stream_len;
        memcpy(stream_bytes + stream_len, six[i].b, six[i].n);
        stream_len += six[i].n;
    }
    stream_off[6] = stream_len;
}

static uint64_t rng_state;
static uint64_t rng(void)
{
    /* xorshift64*: deterministic across machines. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static size_t rng_below(size_t n) { return n ? (size_t)(rng() % n) : 0; }

/* Feed the stream in chunks (chunk 0 = random 1..40) and check that the
 * six packets come out whole, in order, and that buf always points at the
 * first unconsumed byte. Returns how many came out right. */
static int run_stream(size_t chunk)
{
    pkt_stream s;
    pkt_stream_init(&s, 0);
    size_t fed = 0, consumed = 0;
    int got = 0, bad = 0;
    while (fed < stream_len && !bad) {
        size_t n = chunk ? chunk : 1 + rng_below(40);
        if (n > stream_len - fed) n = stream_len - fed;
        if (pkt_stream_feed(&s, stream_bytes + fed, n) != KIT_OK) { bad = 1; break; }
        fed += n;
        for (;;) {
            size_t size = 0;
            char err[KIT_ERRLEN];
            int rc = pkt_stream_next(&s, &size, err);
            if (rc == PKT_NEED_MORE) break;
            if (rc != PKT_COMPLETE || got >= 6 || size != stream_off[got + 1] - stream_off[got] ||
                memcmp(s.buf, stream_bytes + consumed, size) != 0) { bad = 1; break; }
            pkt p;
            if (pkt_decode(s.buf, size, 4, &p, err) != KIT_OK) { bad = 1; break; }
            pkt_stream_consume(&s, size);
            consumed += size;
            got++;
            if (s.len != fed - consumed || (s.len && s.buf[0] != stream_bytes[consumed])) { bad = 1; break; }
        }
    }
    if (s.len != 0) bad = 1;
    pkt_stream_free(&s);
    CU_ASSERT_PTR_NULL(s.buf);
    return bad ? -got - 1 : got;
}

static void TEST_stream(void)
{
    build_stream();
    CU_ASSERT_EQUAL(run_stream(1), 6);
    CU_ASSERT_EQUAL(run_stream(stream_len), 6);
    CU_ASSERT_EQUAL(run_stream(7), 6);
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 200; i++) {
        int got = run_stream(0);
        if (got != 6) { fprintf(stderr, "\n  random chunks, round %d: %d\n", i, got); CU_FAIL("stream"); break; }
    }
}

/* Many small packets per read, each read consumed only half-way before
 * the next one arrives: this goes through both compaction paths (in
 * feed, and in consume once the consumed bytes pass half the buffer).
 * PUBACK ids number the packets, so order is checked too. */
static void TEST_stream_many(void)
{
    enum { PER_READ = 2500, READS = 4 };
    pkt_stream s;
    pkt_stream_init(&s, 0);
    uint8_t burst[4 * PER_READ];
    int next_id = 1, sent = 0, bad = 0;
    size_t most = 0;

    for (int round = 0; round <= READS && !bad; round++) {
        if (round < READS) {
            for (int i = 0; i < PER_READ; i++) {
                int id = ++sent;
                burst[4 * i] = 0x40;
                burst[4 * i + 1] = 2;
                burst[4 * i + 2] = (uint8_t)(id >> 8);
                burst[4 * i + 3] = (uint8_t)id;
            }
            if (pkt_stream_feed(&s, burst, sizeof burst) != KIT_OK) { bad = 1; break; }
        }
        if (s.len > most) most = s.len;
        /* Half of what is there, or everything after the last read. */
        int take = round < READS ? PER_READ / 2 : 1 << 30;
        size_t size;
        while (take-- > 0 && pkt_stream_next(&s, &size, NULL) == PKT_COMPLETE) {
            pkt p;
            if (size != 4 || pkt_decode(s.buf, size, 4, &p, NULL) != KIT_OK || p.packet_id != next_id) {
                bad = 1;
                break;
            }
            next_id++;
            pkt_stream_consume(&s, size);
            /* Consumed bytes never hold more than half the buffer. */
            if (s.off > s.cap / 2) bad = 1;
        }
    }
    CU_ASSERT_FALSE(bad);
    CU_ASSERT_EQUAL(next_id - 1, READS * PER_READ);
    CU_ASSERT_EQUAL(s.len, 0);
    /* Consumed room is reused: the buffer stays within a small factor of
     * the most bytes ever waiting. */
    CU_ASSERT(s.cap <= 4 * most);
    pkt_stream_free(&s);
}

static void TEST_stream_errors(void)
{
    pkt_stream s;
    pkt_stream_init(&s, 100);
    size_t size = 99;
    char err[KIT_ERRLEN] = "";
    CU_ASSERT_EQUAL(pkt_stream_next(&s, &size, err), PKT_NEED_MORE);
    CU_ASSERT_EQUAL(pkt_stream_feed(&s, NULL, 0), KIT_OK);
    const uint8_t big[] = { 0x30, 99 };          /* 101 bytes in all */
    CU_ASSERT_EQUAL(pkt_stream_feed(&s, big, sizeof big), KIT_OK);
    CU_ASSERT_EQUAL(pkt_stream_next(&s, &size, err), PKT_ETOOBIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "101"));
    pkt_stream_consume(&s, 1000);      /* more than there is: all of it */
    CU_ASSERT_EQUAL(s.len, 0);
    const uint8_t garbage[] = { 0x00, 0x00 };
    CU_ASSERT_EQUAL(pkt_stream_feed(&s, garbage, sizeof garbage), KIT_OK);
    CU_ASSERT_EQUAL(pkt_stream_next(&s, &size, err), PKT_EMALFORMED);
    pkt_stream_free(&s);
    pkt_stream_free(&s);               /* twice is fine */
    CU_ASSERT_EQUAL(s.max, 100);
}

/* ----------------------------------------------------------------- fuzz */

static int inside(pkt_bytes b, const uint8_t *buf, size_t len)
{
    if (b.len == 0) return 1;
    return b.p >= buf && b.len <= len && b.p <= buf + len - b.len;
}

/* Rewrite the fixed header of b (n bytes) so that it announces n minus
 * the header: mutated bodies then reach the deep parts of the decoder. */
static size_t fix_length(uint8_t *b, size_t n, size_t cap)
{
    if (n < 1) return n;
    uint8_t body[256];
    size_t hl = 2;
    while (hl < n && hl < 5 && (b[hl - 1] & 0x80)) hl++;
    if (hl > n) hl = n;
    size_t blen = n - hl;
    if (blen > sizeof body || blen > 127 * 128) return n;
    memcpy(body, b + hl, blen);
    size_t o = 1;
    size_t v = blen;
    do {
        uint8_t d = v & 0x7f;
        v >>= 7;
        b[o++] = d | (v ? 0x80 : 0);
    } while (v);
    if (o + blen > cap) return n;
    memcpy(b + o, body, blen);
    return o + blen;
}

static void TEST_fuzz(void)
{
    rng_state = 0x2545f4914f6cdd1dull;
    long failures = 0, decoded = 0, rejected = 0;
    for (long it = 0; it < 200000; it++) {
        uint8_t tmp[300];
        size_t n;
        int level;
        if (it % 4 == 0) {
            n = rng_below(48);
            for (size_t i = 0; i < n; i++) tmp[i] = (uint8_t)rng();
            if (n > 1 && rng_below(2)) n = fix_length(tmp, n, sizeof tmp);
            level = (int)rng_below(6);
        } else {
            size_t k = rng_below(N(seeds));
            n = seeds[k].n;
            memcpy(tmp, seeds[k].b, n);
            level = rng_below(8) ? seeds[k].level : (int)rng_below(6);
            int muts = 1 + (int)rng_below(4);
            for (int m = 0; m < muts; m++) {
                switch (rng_below(6)) {
                case 0: if (n) tmp[rng_below(n)] ^= (uint8_t)(1u << rng_below(8)); break;
                case 1: if (n) tmp[rng_below(n)] = (uint8_t)rng(); break;
                case 2: if (n) n = rng_below(n); break;
                case 3: { size_t add = 1 + rng_below(8);
                          if (n + add <= 250) { for (size_t i = 0; i < add; i++) tmp[n + i] = (uint8_t)rng(); n += add; }
                          break; }
                case 4: if (n > 2) tmp[2 + rng_below(n - 2)] = (uint8_t)(rng_below(2) ? 0 : 0xff); break;
                case 5: if (n) tmp[0] = (uint8_t)((tmp[0] & 0xf0) | rng_below(16)); break;
                }
            }
            if (n > 1 && rng_below(4)) n = fix_length(tmp, n, sizeof tmp);
        }
        /* Exactly n bytes on the heap: one byte more read is an ASan error. */
        uint8_t *b = malloc(n ? n : 1);
        if (!b) { failures++; break; }
        memcpy(b, tmp, n);

        char err[KIT_ERRLEN];
        err[0] = '\0';
        size_t size = 0, max = rng_below(3) ? 0 : rng_below(64);
        int frc = pkt_frame(b, n, max, &size, err);
        if (frc < PKT_ETOOBIG || frc > PKT_COMPLETE) failures++;
        if (frc == PKT_COMPLETE && (size < 2 || size > n || (max && size > max))) failures++;
        if ((frc == PKT_EMALFORMED || frc == PKT_ETOOBIG) && !err[0]) failures++;

        /* Decode what framing found, else the whole buffer. */
        size_t dlen = frc == PKT_COMPLETE ? size : n;
        pkt p;
        err[0] = '\0';
        int drc = pkt_decode(b, dlen, level, &p, err);
        if (drc == KIT_OK) {
            decoded++;
            if (p.size != dlen || p.header_len + p.remaining != dlen) failures++;
            int okp = inside(p.proto_name, b, dlen) && inside(p.client_id, b, dlen) &&
                      inside(p.will_topic, b, dlen) && inside(p.will_payload, b, dlen) &&
                      inside(p.username, b, dlen) && inside(p.topic, b, dlen) &&
                      inside(p.payload, b, dlen);
            for (int i = 0; i < p.nfilters && i < PKT_MAX_FILTERS; i++)
                okp = okp && inside(p.filters[i].filter, b, dlen);
            if (!okp) failures++;
            if ((p.type == PKT_SUBSCRIBE || p.type == PKT_UNSUBSCRIBE) && p.nfilters < 1) failures++;
        } else if (drc == KIT_EINVAL) {
            rejected++;
            if (!err[0] || (dlen && p.type != (b[0] >> 4))) failures++;
        } else {
            failures++;
        }

        /* The summary always ends in a NUL inside its buffer, and writes
         * nothing past it. */
        char out[260];
        size_t outlen = 1 + rng_below(200);
        memset(out, 0x5a, sizeof out);
        pkt_summary(&p, out, outlen);
        if (!memchr(out, '\0', outlen) || out[outlen] != 0x5a) failures++;
        free(b);
    }
    if (failures) fprintf(stderr, "\n  fuzz: %ld failures\n", failures);
    CU_ASSERT_EQUAL(failures, 0);
    /* The loop must reach both outcomes often, or it tests nothing. */
    CU_ASSERT(decoded > 10000);
    CU_ASSERT(rejected > 10000);
}

/* ------------------------------------------------------- libmosquitto */

static int on_connect_seen;
static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m; (void)obj; (void)rc;
    on_connect_seen = 1;
}

/* Read one whole packet from fd into p (its bytes kept in raw). */
static int read_packet(int fd, pkt_stream *s, int level, pkt *p, uint8_t *raw, size_t rawcap)
{
    int64_t deadline = kit_now_ms() + 10000;
    for (;;) {
        size_t size;
        char err[KIT_ERRLEN];
        int rc = pkt_stream_next(s, &size, err);
        if (rc == PKT_COMPLETE) {
            if (size > rawcap) return -1;
            memcpy(raw, s->buf, size);
            pkt_stream_consume(s, size);
            if (pkt_decode(raw, size, level, p, err) != KIT_OK) {
                fprintf(stderr, "\n  libmosquitto sent a packet we reject: %s\n", err);
                return -1;
            }
            return 0;
        }
        if (rc != PKT_NEED_MORE) return -1;
        int64_t left = deadline - kit_now_ms();
        if (left <= 0) return -1;
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll(&pfd, 1, (int)left) <= 0) return -1;
        uint8_t buf[512];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return -1;
        if (pkt_stream_feed(s, buf, (size_t)n) != KIT_OK) return -1;
    }
}

/* libmosquitto talks to a fake broker (a plain socket): what it writes
 * must decode, with the values it was given. */
static void xcheck(int lfd, int port, int version)
{
    int v5 = version == MQTT_PROTOCOL_V5;
    int level = v5 ? 5 : 4;
    struct mosquitto *m = mosquitto_new("xcheck-1", true, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int cfd = -1, mid = 0;
    pkt_stream s;
    pkt_stream_init(&s, 0);
    pkt p;
    uint8_t raw[512];

    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, version);
    mosquitto_connect_callback_set(m, on_connect);
    on_connect_seen = 0;
    CU_ASSERT_EQUAL(mosquitto_will_set(m, "acme/v1/x/estado", 7, "offline", 1, true), MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(mosquitto_username_pw_set(m, "ana", "pw"), MOSQ_ERR_SUCCESS);
    if (mosquitto_connect(m, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS) { CU_FAIL("connect"); goto cleanup; }
    cfd = accept(lfd, NULL, NULL);
    if (cfd < 0) { CU_FAIL("accept"); goto cleanup; }

    if (read_packet(cfd, &s, 0, &p, raw, sizeof raw) != 0) { CU_FAIL("CONNECT"); goto cleanup; }
    CU_ASSERT_EQUAL(p.type, PKT_CONNECT);
    CU_ASSERT_EQUAL(p.level, level);
    CU_ASSERT(beq(p.client_id, "xcheck-1"));
    CU_ASSERT_EQUAL(p.clean, 1);
    CU_ASSERT_EQUAL(p.keepalive, 30);
    CU_ASSERT_EQUAL(p.will, 1);
    CU_ASSERT_EQUAL(p.will_qos, 1);
    CU_ASSERT_EQUAL(p.will_retain, 1);
    CU_ASSERT(beq(p.will_topic, "acme/v1/x/estado"));
    CU_ASSERT(beq(p.will_payload, "offline"));
    CU_ASSERT(p.has_username && p.has_password);
    CU_ASSERT(beq(p.username, "ana"));
    if (!v5) {
        /* Our encoder writes the very same bytes. */
        uint8_t ours[512];
        pkt_connect_opts co = { .client_id = "xcheck-1", .clean = 1, .keepalive = 30, .username = "ana",
                                .password = "pw", .will_topic = "acme/v1/x/estado", .will_payload = "offline",
                                .will_len = 7, .will_qos = 1, .will_retain = 1 };
        int n = pkt_enc_connect(ours, sizeof ours, &co);
        CU_ASSERT(n > 0 && (size_t)n == p.size && memcmp(ours, raw, p.size) == 0);
    }

    /* Let it see a CONNACK, as from a broker, before it publishes. */
    const uint8_t ack4[] = { 0x20, 2, 0, 0 }, ack5[] = { 0x20, 3, 0, 0, 0 };
    if (send(cfd, v5 ? ack5 : ack4, v5 ? sizeof ack5 : sizeof ack4, MSG_NOSIGNAL) < 0) { CU_FAIL("send"); goto cleanup; }
    for (int i = 0; i < 100 && !on_connect_seen; i++) mosquitto_loop(m, 100, 1);
    CU_ASSERT_TRUE(on_connect_seen);

    CU_ASSERT_EQUAL(mosquitto_publish(m, &mid, "acme/v1/x/temp", 4, "21.5", 1, false), MOSQ_ERR_SUCCESS);
    if (read_packet(cfd, &s, level, &p, raw, sizeof raw) != 0) { CU_FAIL("PUBLISH"); goto cleanup; }
    CU_ASSERT_EQUAL(p.type, PKT_PUBLISH);
    CU_ASSERT_EQUAL(p.qos, 1);
    CU_ASSERT_EQUAL(p.packet_id, mid);
    CU_ASSERT(beq(p.topic, "acme/v1/x/temp"));
    CU_ASSERT(beq(p.payload, "21.5"));
    if (!v5) {
        uint8_t ours[128];
        int n = pkt_enc_publish(ours, sizeof ours, 1, 0, 0, mid, "acme/v1/x/temp", "21.5", 4);
        CU_ASSERT(n > 0 && (size_t)n == p.size && memcmp(ours, raw, p.size) == 0);
    }

    CU_ASSERT_EQUAL(mosquitto_subscribe(m, &mid, "acme/v1/#", 2), MOSQ_ERR_SUCCESS);
    if (read_packet(cfd, &s, level, &p, raw, sizeof raw) != 0) { CU_FAIL("SUBSCRIBE"); goto cleanup; }
    CU_ASSERT_EQUAL(p.type, PKT_SUBSCRIBE);
    CU_ASSERT_EQUAL(p.packet_id, mid);
    CU_ASSERT_EQUAL(p.nfilters, 1);
    CU_ASSERT(beq(p.filters[0].filter, "acme/v1/#"));
    CU_ASSERT_EQUAL(p.filters[0].qos, 2);
    if (!v5) {
        uint8_t ours[64];
        int n = pkt_enc_subscribe(ours, sizeof ours, mid, "acme/v1/#", 2);
        CU_ASSERT(n > 0 && (size_t)n == p.size && memcmp(ours, raw, p.size) == 0);
    }

    CU_ASSERT_EQUAL(mosquitto_unsubscribe(m, &mid, "acme/v1/#"), MOSQ_ERR_SUCCESS);
    if (read_packet(cfd, &s, level, &p, raw, sizeof raw) != 0) { CU_FAIL("UNSUBSCRIBE"); goto cleanup; }
    CU_ASSERT_EQUAL(p.type, PKT_UNSUBSCRIBE);
    CU_ASSERT_EQUAL(p.packet_id, mid);
    CU_ASSERT(beq(p.filters[0].filter, "acme/v1/#"));

    CU_ASSERT_EQUAL(mosquitto_disconnect(m), MOSQ_ERR_SUCCESS);
    if (read_packet(cfd, &s, level, &p, raw, sizeof raw) != 0) { CU_FAIL("DISCONNECT"); goto cleanup; }
    CU_ASSERT_EQUAL(p.type, PKT_DISCONNECT);

cleanup:
    pkt_stream_free(&s);
    if (cfd >= 0) close(cfd);
    mosquitto_destroy(m);
}

static void TEST_libmosquitto(void)
{
    /* test.c's main already did (mq_init) and owns mosquitto_lib_cleanup():
     * calling it here could undo the library set-up other suites rely on. */
    CU_ASSERT_EQUAL_FATAL(mosquitto_lib_init(), MOSQ_ERR_SUCCESS);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        CU_FAIL("cannot listen on 127.0.0.1");
    } else {
        xcheck(lfd, ntohs(sa.sin_port), MQTT_PROTOCOL_V311);
        xcheck(lfd, ntohs(sa.sin_port), MQTT_PROTOCOL_V5);
    }
    if (lfd >= 0) close(lfd);
}

/* ------------------------------------------------------------- encoding */

/* ours[0..n) is exactly want[0..wn). */
static void bytes_are(const uint8_t *ours, int n, const uint8_t *want, size_t wn, const char *what)
{
    int ok = n >= 0 && (size_t)n == wn && memcmp(ours, want, wn) == 0;
    if (!ok) {
        fprintf(stderr, "\n  %s: encoded %d byte(s), want %zu:", what, n, wn);
        for (int i = 0; i < n && i < 64; i++) fprintf(stderr, " %02x", ours[i]);
        fprintf(stderr, "\n");
    }
    CU_ASSERT(ok);
}

static void TEST_encode_connect(void)
{
    uint8_t out[256];
    pkt p;
    /* The same CONNECT as v4_connect, byte for byte. */
    pkt_connect_opts c = { .client_id = "gw-1", .clean = 0, .keepalive = 10, .username = "ana", .password = "pw",
                           .will_topic = "acme/v1/p/estado", .will_payload = "offline", .will_len = 7,
                           .will_qos = 1, .will_retain = 1 };
    int n = pkt_enc_connect(out, sizeof out, &c);
    bytes_are(out, n, v4_connect, sizeof v4_connect, "CONNECT with will and credentials");
    if (n > 0 && decode_ok(out, (size_t)n, 0, &p)) {
        CU_ASSERT_EQUAL(p.level, 4);
        CU_ASSERT(beq(p.client_id, "gw-1"));
        CU_ASSERT(beq(p.will_topic, "acme/v1/p/estado"));
        CU_ASSERT(beq(p.username, "ana"));
    }
    /* Every buffer one byte short or more: no room, nothing pretended. */
    for (size_t cap = 0; cap < sizeof v4_connect; cap++)
        CU_ASSERT_EQUAL(pkt_enc_connect(out, cap, &c), PKT_ENOSPACE);

    /* The smallest: empty client id, clean, no will, no credentials. */
    static const uint8_t bare[] = { 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 0 };
    pkt_connect_opts c2 = { .clean = 1, .keepalive = 60 };
    bytes_are(out, pkt_enc_connect(out, sizeof out, &c2), bare, sizeof bare, "bare CONNECT");

    /* User name alone; a will at QoS 2 without retain. */
    pkt_connect_opts c3 = { .client_id = "x", .clean = 1, .keepalive = 65535, .username = "u",
                            .will_topic = "w", .will_qos = 2 };
    n = pkt_enc_connect(out, sizeof out, &c3);
    if (n > 0 && decode_ok(out, (size_t)n, 0, &p)) {
        CU_ASSERT_EQUAL(p.keepalive, 65535);
        CU_ASSERT(p.has_username && !p.has_password);
        CU_ASSERT(p.will && p.will_qos == 2 && !p.will_retain);
        CU_ASSERT_EQUAL(p.will_payload.len, 0);
    }

    /* What 3.1.1 forbids is refused, not written. */
    pkt_connect_opts bad[] = {
        { .client_id = "x", .password = "pw" },                       /* password without user name */
        { .client_id = "x", .will_qos = 1 },                          /* will QoS without a will */
        { .client_id = "x", .will_retain = 1 },
        { .client_id = "x", .will_topic = "w", .will_qos = 3 },
        { .client_id = "x", .will_topic = "a/+" },                    /* wildcard in the will topic */
        { .client_id = "x", .will_topic = "" },
        { .client_id = "x", .will_topic = "w", .will_len = 3 },      /* will bytes missing */
        { .client_id = "x", .keepalive = 65536 },
        { .client_id = "x", .keepalive = -1 },
    };
    for (size_t i = 0; i < N(bad); i++) CU_ASSERT_EQUAL(pkt_enc_connect(out, sizeof out, &bad[i]), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_connect(out, sizeof out, NULL), PKT_EBADARG);
    char *longid = malloc(70000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longid);
    memset(longid, 'a', 69999);
    longid[69999] = '\0';
    pkt_connect_opts c4 = { .client_id = longid };
    CU_ASSERT_EQUAL(pkt_enc_connect(out, sizeof out, &c4), PKT_EBADARG);
    free(longid);
}

static void TEST_encode_publish(void)
{
    uint8_t out[256];
    pkt p;
    static const uint8_t q1_payload[28] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
                                            19, 20, 21, 22, 23, 24, 25, 26, 27 };
    /* The decoding tests' packets, byte for byte. */
    bytes_are(out, pkt_enc_publish(out, sizeof out, 0, 1, 0, 0, "a/b", "online", 6), v4_publish_q0,
              sizeof v4_publish_q0, "PUBLISH q0 retained");
    bytes_are(out, pkt_enc_publish(out, sizeof out, 1, 0, 1, 7, "acme/v1/planta-1/norte/temp", q1_payload, 28),
              v4_publish_q1, sizeof v4_publish_q1, "PUBLISH q1 dup");
    bytes_are(out, pkt_enc_publish(out, sizeof out, 2, 1, 0, 0x1234, "x", "hi", 2), v4_publish_q2,
              sizeof v4_publish_q2, "PUBLISH q2 retained");
    CU_ASSERT_EQUAL(pkt_publish_size(27, 1, 28), sizeof v4_publish_q1);
    CU_ASSERT_EQUAL(pkt_publish_size(3, 0, 6), sizeof v4_publish_q0);
    /* QoS 0 ignores the packet id; an empty payload is fine. */
    static const uint8_t empty[] = { 0x30, 5, 0, 3, 'a', '/', 'b' };
    bytes_are(out, pkt_enc_publish(out, sizeof out, 0, 0, 0, 99, "a/b", NULL, 0), empty, sizeof empty,
              "PUBLISH q0 empty");
    for (size_t cap = 0; cap < sizeof v4_publish_q1; cap++)
        CU_ASSERT_EQUAL(pkt_enc_publish(out, cap, 1, 0, 0, 7, "acme/v1/planta-1/norte/temp", q1_payload, 28),
                        PKT_ENOSPACE);

    /* Remaining lengths of 2, 3 and 4 bytes, read back whole. */
    size_t lens[] = { 120, 121, 16000, 16377, 2097000, 2097145 };
    for (size_t i = 0; i < N(lens); i++) {
        size_t total = pkt_publish_size(3, 1, lens[i]);
        uint8_t *pl = malloc(lens[i]), *buf = malloc(total);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        for (size_t k = 0; k < lens[i]; k++) pl[k] = (uint8_t)(k * 7);
        int n = pkt_enc_publish(buf, total, 1, 0, 0, 65535, "a/b", pl, lens[i]);
        CU_ASSERT_EQUAL(n, (int)total);
        size_t rem = 2 + 3 + 2 + lens[i];
        CU_ASSERT_EQUAL(total, 1 + (rem < 128 ? 1 : rem < 16384 ? 2 : rem < 2097152 ? 3 : 4) + rem);
        if (n > 0 && decode_ok(buf, (size_t)n, 4, &p)) {
            CU_ASSERT_EQUAL(p.packet_id, 65535);
            CU_ASSERT_EQUAL(p.payload.len, lens[i]);
            CU_ASSERT(p.payload.len == lens[i] && memcmp(p.payload.p, pl, lens[i]) == 0);
        }
        CU_ASSERT_EQUAL(pkt_enc_publish(buf, total - 1, 1, 0, 0, 1, "a/b", pl, lens[i]), PKT_ENOSPACE);
        free(pl);
        free(buf);
    }
    CU_ASSERT_EQUAL(pkt_publish_size(3, 1, PKT_MAX_REMAINING), 0);
    CU_ASSERT_EQUAL(pkt_publish_size(3, 3, 1), 0);
    CU_ASSERT_EQUAL(pkt_publish_size(65536, 0, 1), 0);

    /* What 3.1.1 forbids. */
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 3, 0, 0, 1, "a", "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, -1, 0, 0, 1, "a", "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 1, 0, 0, 0, "a", "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 2, 0, 0, 65536, "a", "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 0, 0, 1, 0, "a", "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 0, 0, 0, 0, "", "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 0, 0, 0, 0, NULL, "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 0, 0, 0, 0, "a/+", "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 0, 0, 0, 0, "a/#", "x", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_publish(out, sizeof out, 0, 0, 0, 0, "a", NULL, 1), PKT_EBADARG);
}

static void TEST_encode_others(void)
{
    uint8_t out[64];
    pkt p;
    const uint8_t *acks[] = { v4_puback, v4_pubrec, v4_pubrel, v4_pubcomp };
    for (int t = PKT_PUBACK; t <= PKT_PUBCOMP; t++) {
        bytes_are(out, pkt_enc_ack(out, sizeof out, t, 7), acks[t - PKT_PUBACK], 4, pkt_type_name(t));
        int n = pkt_enc_ack(out, sizeof out, t, 65535);
        if (n == 4 && decode_ok(out, 4, 4, &p)) {
            CU_ASSERT_EQUAL(p.type, t);
            CU_ASSERT_EQUAL(p.packet_id, 65535);
        }
        CU_ASSERT_EQUAL(pkt_enc_ack(out, 3, t, 7), PKT_ENOSPACE);
        CU_ASSERT_EQUAL(pkt_enc_ack(out, sizeof out, t, 0), PKT_EBADARG);
        CU_ASSERT_EQUAL(pkt_enc_ack(out, sizeof out, t, 65536), PKT_EBADARG);
    }
    CU_ASSERT_EQUAL(pkt_enc_ack(out, sizeof out, PKT_PUBLISH, 7), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_ack(out, sizeof out, PKT_SUBSCRIBE, 7), PKT_EBADARG);

    static const uint8_t sub[] = { 0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1 };
    bytes_are(out, pkt_enc_subscribe(out, sizeof out, 1, "a/#", 1), sub, sizeof sub, "SUBSCRIBE");
    int n = pkt_enc_subscribe(out, sizeof out, 300, "acme/+/planta-1/#", 2);
    if (n > 0 && decode_ok(out, (size_t)n, 4, &p)) {
        CU_ASSERT_EQUAL(p.packet_id, 300);
        CU_ASSERT_EQUAL(p.nfilters, 1);
        CU_ASSERT(beq(p.filters[0].filter, "acme/+/planta-1/#"));
        CU_ASSERT_EQUAL(p.filters[0].qos, 2);
    }
    for (size_t cap = 0; cap < sizeof sub; cap++) CU_ASSERT_EQUAL(pkt_enc_subscribe(out, cap, 1, "a/#", 1), PKT_ENOSPACE);
    CU_ASSERT_EQUAL(pkt_enc_subscribe(out, sizeof out, 1, "", 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_subscribe(out, sizeof out, 1, NULL, 1), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_subscribe(out, sizeof out, 1, "a", 3), PKT_EBADARG);
    CU_ASSERT_EQUAL(pkt_enc_subscribe(out, sizeof out, 0, "a", 0), PKT_EBADARG);

    bytes_are(out, pkt_enc_pingreq(out, sizeof out), pingreq, sizeof pingreq, "PINGREQ");
    bytes_are(out, pkt_enc_disconnect(out, sizeof out), disconnect, sizeof disconnect, "DISCONNECT");
    if (pkt_enc_pingreq(out, 2) == 2) decode_ok(out, 2, 4, &p);
    if (pkt_enc_disconnect(out, 2) == 2) decode_ok(out, 2, 4, &p);
    CU_ASSERT_EQUAL(pkt_enc_pingreq(out, 1), PKT_ENOSPACE);
    CU_ASSERT_EQUAL(pkt_enc_disconnect(out, 0), PKT_ENOSPACE);
    CU_ASSERT_EQUAL(pkt_enc_disconnect(NULL, 2), PKT_EBADARG);
}

/* Packets written back to back come out of a stream one by one. */
static void TEST_encode_stream(void)
{
    uint8_t buf[1024];
    size_t len = 0;
    pkt_connect_opts c = { .client_id = "s", .clean = 1, .keepalive = 5 };
    len += (size_t)pkt_enc_connect(buf + len, sizeof buf - len, &c);
    for (int i = 1; i <= 10; i++) len += (size_t)pkt_enc_publish(buf + len, sizeof buf - len, 1, 0, 0, i, "t", "pay", 3);
    len += (size_t)pkt_enc_ack(buf + len, sizeof buf - len, PKT_PUBREL, 3);
    len += (size_t)pkt_enc_pingreq(buf + len, sizeof buf - len);
    len += (size_t)pkt_enc_disconnect(buf + len, sizeof buf - len);
    pkt_stream s;
    pkt_stream_init(&s, 0);
    /* fed in 7-byte reads */
    int types[16], n = 0;
    char err[KIT_ERRLEN];
    for (size_t off = 0; off < len; off += 7) {
        CU_ASSERT_EQUAL(pkt_stream_feed(&s, buf + off, len - off < 7 ? len - off : 7), KIT_OK);
        size_t size;
        while (pkt_stream_next(&s, &size, err) == PKT_COMPLETE && n < 16) {
            pkt p;
            if (decode_ok(s.buf, size, 4, &p)) types[n++] = p.type;
            pkt_stream_consume(&s, size);
        }
    }
    CU_ASSERT_EQUAL(n, 14);
    CU_ASSERT_EQUAL(types[0], PKT_CONNECT);
    CU_ASSERT_EQUAL(types[10], PKT_PUBLISH);
    CU_ASSERT_EQUAL(types[11], PKT_PUBREL);
    CU_ASSERT_EQUAL(types[13], PKT_DISCONNECT);
    CU_ASSERT_EQUAL(s.len, 0);
    pkt_stream_free(&s);
}

int init_packet_tests(void)
{
    CU_pSuite suite = CU_add_suite("packet", NULL, NULL);
    if (!suite) {
        printf("Error adding CUnit packet test suite.\n");
        return 1;
    }
    if (0
        || !CU_add_test(suite, "CONNECT", TEST_connect)
        || !CU_add_test(suite, "CONNACK", TEST_connack)
        || !CU_add_test(suite, "PUBLISH", TEST_publish)
        || !CU_add_test(suite, "PUBACK..PUBCOMP", TEST_acks)
        || !CU_add_test(suite, "(UN)SUBSCRIBE and acks", TEST_subscribe)
        || !CU_add_test(suite, "More filters than kept", TEST_many_filters)
        || !CU_add_test(suite, "PING, DISCONNECT, AUTH", TEST_control)
        || !CU_add_test(suite, "Frame lengths", TEST_frame_lengths)
        || !CU_add_test(suite, "Type names", TEST_type_names)
        || !CU_add_test(suite, "Summary", TEST_summary)
        || !CU_add_test(suite, "Summary escapes and shortening", TEST_summary_escapes)
        || !CU_add_test(suite, "Summary truncation", TEST_summary_truncates)
        || !CU_add_test(suite, "Malformed corpus", TEST_malformed)
        || !CU_add_test(suite, "Version rules", TEST_version_rules)
        || !CU_add_test(suite, "Stream splits", TEST_stream)
        || !CU_add_test(suite, "Stream many packets", TEST_stream_many)
        || !CU_add_test(suite, "Stream errors", TEST_stream_errors)
        || !CU_add_test(suite, "Fuzz", TEST_fuzz)
        || !CU_add_test(suite, "libmosquitto's bytes", TEST_libmosquitto)
        || !CU_add_test(suite, "Encode CONNECT", TEST_encode_connect)
        || !CU_add_test(suite, "Encode PUBLISH", TEST_encode_publish)
        || !CU_add_test(suite, "Encode acks, SUBSCRIBE, PINGREQ, DISCONNECT", TEST_encode_others)
        || !CU_add_test(suite, "Encoded packets through a stream", TEST_encode_stream)
        ) {
        printf("Error adding CUnit packet tests.\n");
        return 1;
    }
    return 0;
}
