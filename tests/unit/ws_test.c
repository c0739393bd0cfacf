/*
 * ws_test.c - CUnit tests for runner/ws.c: RFC 6455's own examples (the
 * accept key of section 1.3, the frames of section 5.7), frames fed a
 * byte at a time, a named corpus of malformed frames and handshakes with
 * the close code or HTTP status each must get, the client's side of the
 * handshake, and the net_conn variant end to end on a net_loop over a
 * socketpair: client and server variants talking to each other, and a
 * raw peer that pings, sends text or garbage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <CUnit/CUnit.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net.h"
#include "ws.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ handshake */

static const char rfc_request[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

static void TEST_accept_key(void)
{
    char acc[29];
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
    CU_ASSERT_STRING_EQUAL(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* The request mqtt.js sends (ws's headers), in pieces. */
static const char mqttjs_request[] =
    "GET /mqtt?client=web HTTP/1.1\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Upgrade: WebSocket\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "\r\n"
    "\x82\x80";

static void TEST_http_parse(void)
{
    ws_http h;
    size_t full = strlen(mqttjs_request);
    /* Every prefix of the head needs more; the whole head is complete. */
    for (size_t n = 0; n < full - 2; n++)
        CU_ASSERT_EQUAL_FATAL(ws_http_parse(mqttjs_request, n, 0, 0, &h), WS_NEED_MORE);
    CU_ASSERT_EQUAL_FATAL(ws_http_parse(mqttjs_request, full, 0, 0, &h), WS_OK);
    CU_ASSERT_EQUAL(h.len, full - 2);
    CU_ASSERT(h.method_len == 3 && memcmp(h.method, "GET", 3) == 0);
    CU_ASSERT(h.path_len == 5 && memcmp(h.path, "/mqtt", 5) == 0);
    CU_ASSERT(h.query_len == 10 && memcmp(h.query, "client=web", 10) == 0);
    CU_ASSERT_EQUAL(h.minor, 1);
    CU_ASSERT_EQUAL(h.nheaders, 7);
    size_t l;
    const char *v = ws_http_get(&h, "host", &l);
    CU_ASSERT(v && l == 14 && memcmp(v, "127.0.0.1:8080", 14) == 0);
    CU_ASSERT(ws_http_has_token(&h, "connection", "upgrade"));
    CU_ASSERT(ws_http_has_token(&h, "Connection", "keep-alive"));
    CU_ASSERT(!ws_http_has_token(&h, "Connection", "close"));
    CU_ASSERT(!ws_http_get(&h, "Origin", NULL));

    ws_upgrade u;
    CU_ASSERT_EQUAL_FATAL(ws_upgrade_check(&h, 1, &u), WS_OK);
    CU_ASSERT_STRING_EQUAL(u.protocol, "mqtt");
    char resp[512];
    size_t n = ws_response_101(resp, sizeof resp, &u);
    CU_ASSERT(n > 0);
    CU_ASSERT(strstr(resp, "HTTP/1.1 101 Switching Protocols\r\n") == resp);
    CU_ASSERT(strstr(resp, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    CU_ASSERT(strstr(resp, "Sec-WebSocket-Protocol: mqtt\r\n") != NULL);
    CU_ASSERT(strstr(resp, "Extensions") == NULL);   /* no deflate */
    CU_ASSERT(memcmp(resp + n - 4, "\r\n\r\n", 4) == 0);
    CU_ASSERT_EQUAL(ws_response_101(resp, 20, &u), 0);

    /* A plain GET (the HTTP server's case), with bare LF line ends. */
    const char *plain = "GET /index.html HTTP/1.1\nHost: x\n\n";
    CU_ASSERT_EQUAL_FATAL(ws_http_parse(plain, strlen(plain), 0, 0, &h), WS_OK);
    CU_ASSERT(h.path_len == 11 && h.query == NULL && h.nheaders == 1);
    CU_ASSERT_EQUAL(ws_upgrade_check(&h, 0, &u), WS_BAD);
    CU_ASSERT_EQUAL(u.status, 400);
}

static void TEST_rfc_request(void)
{
    /* RFC 1.2's request offers chat and superchat: not MQTT. */
    ws_http h;
    ws_upgrade u;
    CU_ASSERT_EQUAL_FATAL(ws_http_parse(rfc_request, strlen(rfc_request), 0, 0, &h), WS_OK);
    CU_ASSERT_EQUAL(ws_upgrade_check(&h, 0, &u), WS_BAD);
    CU_ASSERT_EQUAL(u.status, 400);
    CU_ASSERT(strstr(u.why, "subprotocol") != NULL);
}

/* A request from pieces, for the malformed corpus. */
#define REQ(first, extra)                                                                          \
    first "\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"                           \
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" extra "\r\n"

static const struct {
    const char *name, *req;
    int require;                /* require_protocol */
    int parse;                  /* ws_http_parse's result */
    int status;                 /* the status (0: accepted) */
    const char *protocol;       /* when accepted */
} handshakes[] = {
    { "good", REQ("GET / HTTP/1.1", ""), 0, WS_OK, 0, NULL },
    { "good, mqtt", REQ("GET /mqtt HTTP/1.1", "Sec-WebSocket-Protocol: mqtt\r\n"), 1, WS_OK, 0, "mqtt" },
    { "mqttv3.1", REQ("GET / HTTP/1.1", "Sec-WebSocket-Protocol: mqttv3.1\r\n"), 1, WS_OK, 0, "mqttv3.1" },
    { "mqtt among others", REQ("GET / HTTP/1.1", "Sec-WebSocket-Protocol: foo, mqttv3.1\r\nSec-WebSocket-Protocol: mqtt\r\n"),
      1, WS_OK, 0, "mqtt" },
    { "no protocol, required", REQ("GET / HTTP/1.1", ""), 1, WS_OK, 400, NULL },
    { "only others offered", REQ("GET / HTTP/1.1", "Sec-WebSocket-Protocol: chat\r\n"), 0, WS_OK, 400, NULL },
    { "protocol names are case-sensitive", REQ("GET / HTTP/1.1", "Sec-WebSocket-Protocol: MQTT\r\n"), 0, WS_OK, 400, NULL },
    { "POST", REQ("POST / HTTP/1.1", ""), 0, WS_OK, 405, NULL },
    { "get", REQ("get / HTTP/1.1", ""), 0, WS_OK, 405, NULL },
    { "HTTP/1.0", REQ("GET / HTTP/1.0", ""), 0, WS_OK, 400, NULL },
    { "HTTP/2.0", REQ("GET / HTTP/2.0", ""), 0, WS_BAD, 505, NULL },
    { "not HTTP", REQ("GET / FTP/1.1", ""), 0, WS_BAD, 400, NULL },
    { "absolute target", REQ("GET http://h/ HTTP/1.1", ""), 0, WS_BAD, 400, NULL },
    { "two spaces", REQ("GET  / HTTP/1.1", ""), 0, WS_BAD, 400, NULL },
    { "no Host",
      "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0, WS_OK, 400, NULL },
    { "no Upgrade",
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0, WS_OK, 400, NULL },
    { "Upgrade: h2c",
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0, WS_OK, 400, NULL },
    { "Connection: keep-alive",
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0, WS_OK, 400, NULL },
    { "no key",
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n",
      0, WS_OK, 400, NULL },
    { "key too short",
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0, WS_OK, 400, NULL },
    { "key not base64",
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ*==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      0, WS_OK, 400, NULL },
    { "two keys", REQ("GET / HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), 0, WS_OK, 400, NULL },
    { "version 8",
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
      0, WS_OK, 426, NULL },
    { "no version",
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      0, WS_OK, 426, NULL },
    { "folded header", REQ("GET / HTTP/1.1", "X-A: 1\r\n  2\r\n"), 0, WS_BAD, 400, NULL },
    { "space before colon", REQ("GET / HTTP/1.1", "X-A : 1\r\n"), 0, WS_BAD, 400, NULL },
    { "no colon", REQ("GET / HTTP/1.1", "X-A\r\n"), 0, WS_BAD, 400, NULL },
    { "NUL in a header", REQ("GET / HTTP/1.1", "X-A: \001\r\n"), 0, WS_BAD, 400, NULL },
    { "lone CR", REQ("GET / HTTP/1.1", "X-A: a\rb\r\n"), 0, WS_BAD, 400, NULL },
    { "empty first line", "\r\nGET / HTTP/1.1\r\n\r\n", 0, WS_BAD, 400, NULL },
    /* MQTT's CONNECT sent to the WebSocket port: refused at once. */
    { "MQTT CONNECT", "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c", 0, WS_BAD, 400, NULL },
};

static void TEST_handshake_corpus(void)
{
    for (size_t i = 0; i < N(handshakes); i++) {
        ws_http h;
        ws_upgrade u;
        const char *req = handshakes[i].req;
        int r = ws_http_parse(req, strlen(req), 0, 0, &h);
        int status = 0;
        const char *proto = NULL;
        if (r == WS_BAD) status = h.status;
        else if (r == WS_OK && ws_upgrade_check(&h, handshakes[i].require, &u) != WS_OK) status = u.status;
        else if (r == WS_OK) proto = u.protocol;
        if (r != handshakes[i].parse || status != handshakes[i].status ||
            (proto == NULL) != (handshakes[i].protocol == NULL) ||
            (proto && strcmp(proto, handshakes[i].protocol) != 0))
            printf("\nhandshake \"%s\": parse %d status %d protocol %s (%s)\n", handshakes[i].name, r, status,
                   proto ? proto : "-", r == WS_BAD ? h.why : u.why);
        CU_ASSERT_EQUAL(r, handshakes[i].parse);
        CU_ASSERT_EQUAL(status, handshakes[i].status);
    }

    /* Headers that never end: 431 once the limit is reached, not before. */
    size_t big = 9000;
    char *p = malloc(big);
    memcpy(p, "GET / HTTP/1.1\r\n", 16);
    for (size_t i = 16; i < big; i += 10) memcpy(p + i, "X-A: 123\r\n", i + 10 <= big ? 10 : big - i);
    ws_http h;
    CU_ASSERT_EQUAL(ws_http_parse(p, 8000, 0, 0, &h), WS_NEED_MORE);
    CU_ASSERT_EQUAL(ws_http_parse(p, big, 0, 0, &h), WS_BAD);
    CU_ASSERT_EQUAL(h.status, 431);
    CU_ASSERT_EQUAL(ws_http_parse(p, 1000, 500, 0, &h), WS_BAD);
    CU_ASSERT_EQUAL(h.status, 431);
    free(p);

    /* Too many header lines: 431 too. */
    char many[2048] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < WS_MAX_HEADERS + 1; i++) strcat(many, "X: 1\r\n");
    strcat(many, "\r\n");
    CU_ASSERT_EQUAL(ws_http_parse(many, strlen(many), 0, 0, &h), WS_BAD);
    CU_ASSERT_EQUAL(h.status, 431);

    /* The error responses. */
    char resp[512];
    size_t n = ws_response_error(resp, sizeof resp, 426, "WebSocket version 13 only");
    CU_ASSERT(n > 0);
    CU_ASSERT(strstr(resp, "HTTP/1.1 426 Upgrade Required\r\n") == resp);
    CU_ASSERT(strstr(resp, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    CU_ASSERT(strstr(resp, "\r\nConnection: close\r\n") != NULL);
    n = ws_response_error(resp, sizeof resp, 400, "no Sec-WebSocket-Key");
    CU_ASSERT(strstr(resp, "Content-Length: 21\r\n\r\nno Sec-WebSocket-Key\n") != NULL);
    CU_ASSERT(strstr(resp, "Sec-WebSocket-Version") == NULL);
    CU_ASSERT_EQUAL(ws_response_error(resp, 30, 400, "x"), 0);
}

static void TEST_client_handshake(void)
{
    char req[512], key[25], key2[25];
    size_t n = ws_client_request(req, sizeof req, "127.0.0.1:9001", "/mqtt", "mqtt", key);
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_EQUAL(strlen(key), 24);
    ws_client_request(req, sizeof req, "127.0.0.1:9001", "/mqtt", "mqtt", key2);
    CU_ASSERT(strcmp(key, key2) != 0);      /* random */
    ws_client_request(req, sizeof req, "127.0.0.1:9001", "/mqtt", "mqtt", key);

    /* Our own server side accepts our client's request. */
    ws_http h;
    ws_upgrade u;
    CU_ASSERT_EQUAL_FATAL(ws_http_parse(req, n, 0, 0, &h), WS_OK);
    CU_ASSERT_EQUAL_FATAL(ws_upgrade_check(&h, 1, &u), WS_OK);
    CU_ASSERT_STRING_EQUAL(u.key, key);
    char resp[512];
    size_t rn = ws_response_101(resp, sizeof resp, &u);
    memcpy(resp + rn, "\x82\x00", 2);       /* a frame right behind */
    size_t used = 0;
    char why[160];
    for (size_t k = 0; k < rn; k++)
        CU_ASSERT_EQUAL(ws_client_check(resp, k, key, "mqtt", &used, why, sizeof why), WS_NEED_MORE);
    CU_ASSERT_EQUAL(ws_client_check(resp, rn + 2, key, "mqtt", &used, why, sizeof why), WS_OK);
    CU_ASSERT_EQUAL(used, rn);

    /* Wrong key, no protocol, another status. */
    CU_ASSERT_EQUAL(ws_client_check(resp, rn, key2, "mqtt", &used, why, sizeof why), WS_BAD);
    CU_ASSERT(strstr(why, "Accept") != NULL);
    u.protocol = NULL;
    rn = ws_response_101(resp, sizeof resp, &u);
    CU_ASSERT_EQUAL(ws_client_check(resp, rn, key, "mqtt", &used, why, sizeof why), WS_BAD);
    CU_ASSERT_EQUAL(ws_client_check(resp, rn, key, NULL, &used, why, sizeof why), WS_OK);
    rn = ws_response_error(resp, sizeof resp, 400, "no");
    CU_ASSERT_EQUAL(ws_client_check(resp, rn, key, "mqtt", &used, why, sizeof why), WS_BAD);
    CU_ASSERT(strstr(why, "400") != NULL);
    const char *junk = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
    CU_ASSERT_EQUAL(ws_client_check(junk, strlen(junk), key, "mqtt", &used, why, sizeof why), WS_BAD);
}

/* -------------------------------------------------------------- frames */

/* Decode all of buf (fed in pieces of step bytes, 0: whole), collecting
 * data into out; the number of events of each type in ev[]. Returns the
 * close code of a failure, or 0. */
typedef struct {
    uint8_t data[70000];
    size_t len;
    int nev[5], fins;
    unsigned close_code;
    uint8_t ctl[126];
    size_t ctl_len;
} collected;

static int decode_all(ws_decoder *d, const uint8_t *src, size_t len, size_t step, size_t max_data, collected *o)
{
    uint8_t *buf = malloc(len + 1);
    memcpy(buf, src, len);
    memset(o, 0, sizeof *o);
    size_t pos = 0, have = step ? 0 : len;
    for (;;) {
        ws_event ev;
        ssize_t u = ws_decode(d, buf + pos, have - pos, max_data, &ev);
        if (u < 0) {
            free(buf);
            return d->code;
        }
        pos += (size_t)u;
        if (ev.type != WS_EV_NONE) o->nev[ev.type]++;
        if (ev.type == WS_EV_DATA) {
            CU_ASSERT(max_data == 0 || ev.len <= max_data);
            memcpy(o->data + o->len, ev.data, ev.len);
            o->len += ev.len;
            o->fins += ev.fin;
        } else if (ev.type == WS_EV_PING || ev.type == WS_EV_PONG) {
            memcpy(o->ctl, ev.data, ev.len);
            o->ctl_len = ev.len;
        } else if (ev.type == WS_EV_CLOSE) {
            o->close_code = ev.close_code;
        }
        if (ev.type == WS_EV_NONE && u == 0) {
            if (have == len) break;
            have += step;
            if (have > len) have = len;
        }
    }
    free(buf);
    return 0;
}

static void check_frames(const uint8_t *f, size_t len, int server, const char *want, size_t want_len, int events,
                         int type)
{
    size_t steps[] = { 0, 1, 2, 3, 7, 1000 };
    for (size_t s = 0; s < N(steps); s++) {
        for (size_t md = 0; md < 3; md++) {
            ws_decoder d;
            ws_decoder_init(&d, server, 0, 1);
            static collected o;
            CU_ASSERT_EQUAL_FATAL(decode_all(&d, f, len, steps[s], md == 0 ? 0 : md == 1 ? 1 : 100, &o), 0);
            if (type != WS_EV_DATA) CU_ASSERT_EQUAL(o.nev[type], events);
            if (type == WS_EV_DATA) {
                CU_ASSERT_EQUAL(o.len, want_len);
                CU_ASSERT(memcmp(o.data, want, want_len) == 0);
                CU_ASSERT_EQUAL(o.fins, 1);
            } else {
                CU_ASSERT_EQUAL(o.ctl_len, want_len);
                CU_ASSERT(memcmp(o.ctl, want, want_len) == 0);
            }
            CU_ASSERT_FALSE(d.in_frame);
            CU_ASSERT_EQUAL(d.msg_op, 0);
        }
    }
}

static void TEST_rfc_frames(void)
{
    /* RFC 6455 5.7. */
    static const uint8_t hello[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    static const uint8_t hello_masked[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    static const uint8_t frag[] = { 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f };
    static const uint8_t ping[] = { 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    static const uint8_t pong_masked[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    check_frames(hello, sizeof hello, 0, "Hello", 5, 1, WS_EV_DATA);
    check_frames(hello_masked, sizeof hello_masked, 1, "Hello", 5, 1, WS_EV_DATA);
    check_frames(ping, sizeof ping, 0, "Hello", 5, 1, WS_EV_PING);
    check_frames(pong_masked, sizeof pong_masked, 1, "Hello", 5, 1, WS_EV_PONG);
    {
        ws_decoder d;
        ws_decoder_init(&d, 0, 0, 1);
        static collected o;
        CU_ASSERT_EQUAL(decode_all(&d, frag, sizeof frag, 0, 0, &o), 0);
        CU_ASSERT(o.len == 5 && memcmp(o.data, "Hello", 5) == 0 && o.fins == 1 && o.nev[WS_EV_DATA] == 2);
    }

    /* 256 bytes and 64 KiB of binary: 16- and 64-bit lengths. */
    static uint8_t big[10 + 65536];
    uint8_t *payload = malloc(65536);
    for (size_t i = 0; i < 65536; i++) payload[i] = (uint8_t)(i * 7 + 3);
    uint8_t h[14];
    CU_ASSERT_EQUAL(ws_frame_header(h, 1, WS_BINARY, 256, NULL), 4);
    CU_ASSERT(h[0] == 0x82 && h[1] == 0x7e && h[2] == 0x01 && h[3] == 0x00);
    memcpy(big, h, 4);
    memcpy(big + 4, payload, 256);
    check_frames(big, 4 + 256, 0, (const char *)payload, 256, 1, WS_EV_DATA);
    CU_ASSERT_EQUAL(ws_frame_header(h, 1, WS_BINARY, 65536, NULL), 10);
    static const uint8_t h64[] = { 0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00 };
    CU_ASSERT(memcmp(h, h64, 10) == 0);
    memcpy(big, h, 10);
    memcpy(big + 10, payload, 65536);
    check_frames(big, sizeof big, 0, (const char *)payload, 65536, 1, WS_EV_DATA);

    /* The same, masked as a client sends it. */
    static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    CU_ASSERT_EQUAL(ws_frame_header(h, 1, WS_BINARY, 65536, key), 14);
    static uint8_t bigm[14 + 65536];
    memcpy(bigm, h, 14);
    memcpy(bigm + 14, payload, 65536);
    ws_unmask(bigm + 14, 65536, key, 0);
    check_frames(bigm, sizeof bigm, 1, (const char *)payload, 65536, 1, WS_EV_DATA);

    /* Masking in pieces at odd offsets is masking the whole. */
    uint8_t a[37], b[37];
    for (int i = 0; i < 37; i++) a[i] = b[i] = (uint8_t)i;
    ws_unmask(a, 37, key, 0);
    ws_unmask(b, 5, key, 0);
    ws_unmask(b + 5, 13, key, 5);
    ws_unmask(b + 18, 19, key, 18);
    CU_ASSERT(memcmp(a, b, 37) == 0);
    for (int i = 0; i < 37; i++) CU_ASSERT_EQUAL(a[i], (uint8_t)(i ^ key[i & 3]));

    /* Header round trips at the length boundaries. */
    uint64_t lens[] = { 0, 125, 126, 65535, 65536, ((uint64_t)1 << 63) - 1 };
    for (size_t i = 0; i < N(lens); i++)
        for (int m = 0; m < 2; m++) {
            size_t hl = ws_frame_header(h, 0, WS_CONT, lens[i], m ? key : NULL);
            ws_frame f;
            int code;
            const char *why;
            CU_ASSERT_EQUAL(ws_frame_parse(h, hl - 1, m, &f, &code, &why), WS_NEED_MORE);
            CU_ASSERT_EQUAL_FATAL(ws_frame_parse(h, hl, m, &f, &code, &why), WS_OK);
            CU_ASSERT(f.len == lens[i] && f.hlen == hl && f.fin == 0 && f.opcode == WS_CONT && f.masked == m);
        }
    free(payload);
}

static void TEST_control_between_fragments(void)
{
    /* "Hel", a ping, "lo", a close 1000 "bye": as a server sees it
     * (mask 0, so the payload reads as it is). */
    static const uint8_t s[] = {
        0x01, 0x83, 0, 0, 0, 0, 'H', 'e', 'l',
        0x89, 0x82, 0, 0, 0, 0, 'h', 'i',
        0x80, 0x82, 0, 0, 0, 0, 'l', 'o',
        0x88, 0x85, 0, 0, 0, 0, 0x03, 0xe8, 'b', 'y', 'e',
        0x82, 0x80, 0, 0, 0, 0,                        /* after the close: ignored */
    };
    for (size_t step = 0; step < 5; step++) {
        ws_decoder d;
        ws_decoder_init(&d, 1, 0, 1);
        static collected o;
        CU_ASSERT_EQUAL(decode_all(&d, s, sizeof s, step, 0, &o), 0);
        CU_ASSERT(o.len == 5 && memcmp(o.data, "Hello", 5) == 0);
        CU_ASSERT_EQUAL(o.nev[WS_EV_PING], 1);
        CU_ASSERT_EQUAL(o.nev[WS_EV_CLOSE], 1);
        CU_ASSERT_EQUAL(o.close_code, 1000);
        CU_ASSERT(d.closed);
    }
    /* Empty frames, a UTF-8 character split across fragments, an empty close. */
    static const uint8_t t[] = {
        0x01, 0x81, 0, 0, 0, 0, 0xe2,
        0x00, 0x80, 0, 0, 0, 0,
        0x80, 0x82, 0, 0, 0, 0, 0x82, 0xac,
        0x82, 0x80, 0, 0, 0, 0,
        0x88, 0x80, 0, 0, 0, 0,
    };
    ws_decoder d;
    ws_decoder_init(&d, 1, 0, 1);
    static collected o;
    CU_ASSERT_EQUAL(decode_all(&d, t, sizeof t, 1, 0, &o), 0);
    CU_ASSERT(o.len == 3 && memcmp(o.data, "\xe2\x82\xac", 3) == 0);
    CU_ASSERT_EQUAL(o.fins, 2);
    CU_ASSERT_EQUAL(o.close_code, WS_CLOSE_NO_STATUS);
}

/* Frames as a server receives them, with mask 0 unless said. */
#define M 0, 0, 0, 0
static const struct {
    const char *name;
    uint8_t b[40];
    size_t len;
    int server, text_ok;
    uint64_t max;
    int code;
} bad_frames[] = {
    { "RSV1", { 0xc2, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "RSV3", { 0x92, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "opcode 3", { 0x83, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "opcode 7", { 0x87, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "opcode 0xb", { 0x8b, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "opcode 0xf", { 0x8f, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "unmasked from a client", { 0x82, 0x00 }, 2, 1, 0, 0, 1002 },
    { "masked from a server", { 0x82, 0x80, M }, 6, 0, 0, 0, 1002 },
    { "64-bit length, top bit", { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, M }, 14, 1, 0, 0, 1002 },
    { "ping of 126 bytes", { 0x89, 0xfe, 0x00, 0x7e, M }, 8, 1, 0, 0, 1002 },
    { "close of 65536 bytes", { 0x88, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, M }, 14, 1, 0, 0, 1002 },
    { "fragmented ping", { 0x09, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "fragmented close", { 0x08, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "continuation first", { 0x80, 0x80, M }, 6, 1, 0, 0, 1002 },
    { "continuation after a whole message", { 0x82, 0x80, M, 0x80, 0x80, M }, 12, 1, 0, 0, 1002 },
    { "new message inside a fragmented one", { 0x02, 0x80, M, 0x82, 0x80, M }, 12, 1, 0, 0, 1002 },
    { "close with 1 byte", { 0x88, 0x81, M, 0x03 }, 7, 1, 0, 0, 1002 },
    { "close 999", { 0x88, 0x82, M, 0x03, 0xe7 }, 8, 1, 0, 0, 1002 },
    { "close 1004", { 0x88, 0x82, M, 0x03, 0xec }, 8, 1, 0, 0, 1002 },
    { "close 1005", { 0x88, 0x82, M, 0x03, 0xed }, 8, 1, 0, 0, 1002 },
    { "close 1006", { 0x88, 0x82, M, 0x03, 0xee }, 8, 1, 0, 0, 1002 },
    { "close 1012", { 0x88, 0x82, M, 0x03, 0xf4 }, 8, 1, 0, 0, 1002 },
    { "close 1015", { 0x88, 0x82, M, 0x03, 0xf7 }, 8, 1, 0, 0, 1002 },
    { "close 2999", { 0x88, 0x82, M, 0x0b, 0xb7 }, 8, 1, 0, 0, 1002 },
    { "close 5000", { 0x88, 0x82, M, 0x13, 0x88 }, 8, 1, 0, 0, 1002 },
    { "close 0", { 0x88, 0x82, M, 0x00, 0x00 }, 8, 1, 0, 0, 1002 },
    { "close reason not UTF-8", { 0x88, 0x84, M, 0x03, 0xe8, 0xff, 0xfe }, 10, 1, 0, 0, 1007 },
    { "close reason, a surrogate", { 0x88, 0x85, M, 0x03, 0xe8, 0xed, 0xa0, 0x80 }, 11, 1, 0, 0, 1007 },
    { "text, not for MQTT", { 0x81, 0x82, M, 'h', 'i' }, 8, 1, 0, 0, 1003 },
    { "text, overlong", { 0x81, 0x82, M, 0xc0, 0xaf }, 8, 1, 1, 0, 1007 },
    { "text, above U+10FFFF", { 0x81, 0x84, M, 0xf4, 0x90, 0x80, 0x80 }, 10, 1, 1, 0, 1007 },
    { "text, cut inside a character", { 0x81, 0x81, M, 0xe2 }, 7, 1, 1, 0, 1007 },
    { "text, bad continuation across fragments", { 0x01, 0x81, M, 0xe2, 0x80, 0x81, M, 0x41 }, 14, 1, 1, 0, 1007 },
    { "too big", { 0x82, 0x8b, M }, 6, 1, 0, 10, 1009 },
    { "too big in fragments", { 0x02, 0x86, M, 1, 2, 3, 4, 5, 6, 0x80, 0x85, M }, 18, 1, 0, 10, 1009 },
    { "too big, 64-bit", { 0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, M }, 14, 1, 0, 0, 1009 },
};

static const struct {
    const char *name;
    uint8_t b[16];
    size_t len;
    unsigned close;             /* the close code seen (0: no close) */
} good_frames[] = {
    { "close 1000", { 0x88, 0x82, M, 0x03, 0xe8 }, 8, 1000 },
    { "close 1003", { 0x88, 0x82, M, 0x03, 0xeb }, 8, 1003 },
    { "close 1007", { 0x88, 0x82, M, 0x03, 0xef }, 8, 1007 },
    { "close 1011", { 0x88, 0x82, M, 0x03, 0xf3 }, 8, 1011 },
    { "close 3000", { 0x88, 0x82, M, 0x0b, 0xb8 }, 8, 3000 },
    { "close 4999", { 0x88, 0x82, M, 0x13, 0x87 }, 8, 4999 },
    { "close, no code", { 0x88, 0x80, M }, 6, 1005 },
    { "non-minimal 16-bit length", { 0x82, 0xfe, 0x00, 0x01, M, 'x' }, 9, 0 },
    { "non-minimal 64-bit length", { 0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, M, 'x' }, 15, 0 },
    { "ping of 125 bytes, header only", { 0x89, 0xfd, M }, 6, 0 },
};

static void TEST_bad_frames(void)
{
    for (size_t i = 0; i < N(bad_frames); i++) {
        for (size_t step = 0; step < 3; step++) {
            ws_decoder d;
            ws_decoder_init(&d, bad_frames[i].server, bad_frames[i].max, bad_frames[i].text_ok);
            static collected o;
            int code = decode_all(&d, bad_frames[i].b, bad_frames[i].len, step, 0, &o);
            if (code != bad_frames[i].code)
                printf("\nframe \"%s\" (step %zu): close %d, not %d\n", bad_frames[i].name, step, code,
                       bad_frames[i].code);
            CU_ASSERT_EQUAL(code, bad_frames[i].code);
            CU_ASSERT(d.why != NULL);
            /* The failure sticks. */
            ws_event ev;
            uint8_t x[2] = { 0x82, 0x80 };
            CU_ASSERT_EQUAL(ws_decode(&d, x, 2, 0, &ev), -1);
        }
    }
    for (size_t i = 0; i < N(good_frames); i++) {
        ws_decoder d;
        ws_decoder_init(&d, 1, 0, 0);
        static collected o;
        int code = decode_all(&d, good_frames[i].b, good_frames[i].len, 1, 0, &o);
        if (code) printf("\nframe \"%s\": close %d (%s)\n", good_frames[i].name, code, d.why);
        CU_ASSERT_EQUAL(code, 0);
        CU_ASSERT_EQUAL(o.close_code, good_frames[i].close);
    }
    for (unsigned c = 0; c < 6000; c++) {
        int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
        CU_ASSERT_EQUAL(ws_close_code_valid(c), want);
    }
    CU_ASSERT(ws_utf8_valid((const uint8_t *)"caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    CU_ASSERT(!ws_utf8_valid((const uint8_t *)"\xf8\x88\x80\x80\x80", 5));
    CU_ASSERT(!ws_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));
}

static void TEST_decode_ready(void)
{
    ws_decoder d;
    ws_decoder_init(&d, 1, 0, 0);
    uint8_t f[] = { 0x82, 0x85, M, 'a', 'b', 'c', 'd', 'e' };
    CU_ASSERT_EQUAL(ws_decode_ready(&d, f, 1), 0);
    CU_ASSERT_EQUAL(ws_decode_ready(&d, f, 6), 0);
    CU_ASSERT_EQUAL(ws_decode_ready(&d, f, 8), 2);
    ws_event ev;
    CU_ASSERT_EQUAL(ws_decode(&d, f, 8, 1, &ev), 7);
    CU_ASSERT(ev.type == WS_EV_DATA && ev.len == 1 && !ev.fin);
    CU_ASSERT_EQUAL(ws_decode_ready(&d, f + 7, 4), 4);
    CU_ASSERT_EQUAL(ws_decode_ready(&d, f + 7, 0), 0);
    CU_ASSERT_EQUAL(ws_decode(&d, f + 7, 4, 0, &ev), 4);
    CU_ASSERT(ev.type == WS_EV_DATA && ev.len == 4 && ev.fin);
    uint8_t p[] = { 0x89, 0x82, M, 'h', 'i' };
    CU_ASSERT_EQUAL(ws_decode_ready(&d, p, 7), 0);
    CU_ASSERT_EQUAL(ws_decode_ready(&d, p, 8), 1);
    uint8_t bad[] = { 0x82, 0x00 };
    CU_ASSERT_EQUAL(ws_decode_ready(&d, bad, 2), 1);
}

/* ------------------------------------------------- the variant, end to end */

typedef struct {
    net_conn *c;
    net_io io;
    int ready, failed, eof;
    uint8_t *rx;
    size_t rxlen, rxcap;
    const uint8_t *tx;
    size_t txlen, txpos;
    int flush_again;
} peer;

static void peer_step(peer *p)
{
    unsigned want = 0;
    if (p->failed || p->eof) goto out;
    if (!p->ready) {
        int r = net_handshake(p->c);
        if (r == NET_FAIL) {
            p->failed = 1;
            goto out;
        }
        if (r == NET_AGAIN) {
            want |= p->c->want;
            goto out;
        }
        p->ready = 1;
    }
    for (;;) {
        if (p->rxcap - p->rxlen < 4096) {
            p->rxcap = p->rxcap ? p->rxcap * 2 : 65536;
            p->rx = realloc(p->rx, p->rxcap);
        }
        ssize_t r = net_read(p->c, p->rx + p->rxlen, p->rxcap - p->rxlen);
        if (r > 0) {
            p->rxlen += (size_t)r;
            continue;
        }
        if (r == 0) p->eof = 1;
        else if (r == NET_FAIL) p->failed = 1;
        else want |= p->c->want;
        break;
    }
    while (!p->failed && p->txpos < p->txlen) {
        ssize_t w = net_write(p->c, p->tx + p->txpos, p->txlen - p->txpos);
        if (w > 0) {
            p->txpos += (size_t)w;
            continue;
        }
        if (w == NET_FAIL) p->failed = 1;
        else want |= p->c->want;
        break;
    }
    int r = net_flush(p->c);
    p->flush_again = r == NET_AGAIN;
    if (r == NET_AGAIN) want |= p->c->want;
out:
    if (p->failed || p->eof) {
        /* Still drain what was queued (a close frame), then stop. */
        if (net_flush(p->c) == NET_AGAIN) want = NET_OUT;
        else want = 0;
    } else {
        want |= NET_IN;
    }
    net_set(&p->io, want);
    if (!p->failed && !p->eof && net_pending(p->c)) net_again(&p->io);
}

static void on_peer(net_io *io, unsigned ev)
{
    (void)ev;
    peer_step(io->ud);
}

static void peer_add(net_loop *l, peer *p, net_conn *c)
{
    memset(p, 0, sizeof *p);
    p->c = c;
    CU_ASSERT_EQUAL(net_add(l, &p->io, c->fd, NET_IN, on_peer, p), 0);
}

static void peer_end(peer *p)
{
    net_del(&p->io);
    net_close(p->c, 0);
    free(p->rx);
}

typedef int cond_fn(void *);

static int run_until(net_loop *l, cond_fn *fn, void *ud, int ms)
{
    int64_t end = net_now_us() + (int64_t)ms * 1000;
    while (!fn(ud)) {
        if (net_now_us() > end) return 0;
        net_turn(l, 20);
    }
    return 1;
}

typedef struct {
    peer *a, *b;
    size_t want;
} pair;

static int both_ready(void *ud)
{
    pair *p = ud;
    return (p->a->ready || p->a->failed) && (p->b->ready || p->b->failed);
}

static int b_has(void *ud)
{
    pair *p = ud;
    return p->b->rxlen >= p->want || p->b->failed || p->b->eof;
}

static int a_has(void *ud)
{
    pair *p = ud;
    return p->a->rxlen >= p->want || p->a->failed || p->a->eof;
}

static int both_eof(void *ud)
{
    pair *p = ud;
    return (p->a->eof || p->a->failed) && (p->b->eof || p->b->failed);
}

/* A self-signed P-256 certificate made here, for wss:// (the client
 * checks nothing: the TLS variant's checks have tests of their own). */
static SSL_CTX *server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!key || !x) return NULL;
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"ws-test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int ok = ctx && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    X509_free(x);
    EVP_PKEY_free(key);
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void variant_pair(int tls)
{
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    net_loop *l = net_loop_new(NULL);
    CU_ASSERT_FATAL(l != NULL);
    SSL_CTX *sctx = NULL, *cctx = NULL;
    net_conn *si, *ci;
    if (tls) {
        sctx = server_ctx();
        cctx = SSL_CTX_new(TLS_client_method());
        CU_ASSERT_FATAL(sctx && cctx);
        si = net_tls(sv[0], sctx, 1, NULL);
        ci = net_tls(sv[1], cctx, 0, NULL);
    } else {
        si = net_tcp(sv[0]);
        ci = net_tcp(sv[1]);
    }
    ws_opts so = { .require_protocol = 1 };
    net_conn *server = ws_server(si, &so);
    net_conn *client = ws_client(ci, "127.0.0.1:9001", "/mqtt", NULL);
    CU_ASSERT(ws_is(server) && ws_is(client));
    CU_ASSERT_STRING_EQUAL(server->ops->name, tls ? "wss" : "ws");
    CU_ASSERT_STRING_EQUAL(client->ops->name, tls ? "wss" : "ws");
    CU_ASSERT(!ws_is(server->inner));
    peer a, b;                  /* a: the client, b: the server */
    peer_add(l, &a, client);
    peer_add(l, &b, server);
    pair pr = { &a, &b, 0 };
    peer_step(&a);
    peer_step(&b);
    CU_ASSERT_FATAL(run_until(l, both_ready, &pr, 3000));
    CU_ASSERT_FATAL(a.ready && b.ready);
    CU_ASSERT_STRING_EQUAL(ws_path(server), "/mqtt");
    CU_ASSERT_STRING_EQUAL(ws_protocol(server), "mqtt");
    CU_ASSERT_STRING_EQUAL(ws_protocol(client), "mqtt");

    /* 3 bytes, each way. */
    a.tx = (const uint8_t *)"\xc0\x00\x01";
    a.txlen = 3;
    peer_step(&a);
    pr.want = 3;
    CU_ASSERT(run_until(l, b_has, &pr, 3000));
    CU_ASSERT(b.rxlen == 3 && memcmp(b.rx, "\xc0\x00\x01", 3) == 0);
    b.tx = (const uint8_t *)"\xd0\x00";
    b.txlen = 2;
    peer_step(&b);
    pr.want = 2;
    CU_ASSERT(run_until(l, a_has, &pr, 3000));
    CU_ASSERT(a.rxlen == 2 && memcmp(a.rx, "\xd0\x00", 2) == 0);

    /* 200 KiB each way at once, arriving intact. */
    size_t big = 200 * 1024;
    uint8_t *src = malloc(big), *src2 = malloc(big);
    for (size_t i = 0; i < big; i++) {
        src[i] = (uint8_t)(i * 31 + (i >> 8));
        src2[i] = (uint8_t)(i * 17 + 5);
    }
    a.rxlen = b.rxlen = 0;
    a.tx = src;
    a.txlen = big;
    a.txpos = 0;
    b.tx = src2;
    b.txlen = big;
    b.txpos = 0;
    peer_step(&a);
    peer_step(&b);
    pr.want = big;
    CU_ASSERT(run_until(l, b_has, &pr, 5000));
    CU_ASSERT(run_until(l, a_has, &pr, 5000));
    CU_ASSERT_EQUAL(b.rxlen, big);
    CU_ASSERT(b.rxlen == big && memcmp(b.rx, src, big) == 0);
    CU_ASSERT(a.rxlen == big && memcmp(a.rx, src2, big) == 0);
    CU_ASSERT(!a.failed && !b.failed);

    /* A ping from the client is answered; nothing reaches the stream. */
    a.rxlen = b.rxlen = 0;
    CU_ASSERT_EQUAL(ws_ping(client, "hi", 2), 0);
    CU_ASSERT_EQUAL(ws_unsent(client), 2 + 4 + 2);
    peer_step(&a);
    CU_ASSERT_EQUAL(ws_unsent(client), 0);
    for (int i = 0; i < 10; i++) net_turn(l, 10);
    CU_ASSERT_EQUAL(a.rxlen, 0);
    CU_ASSERT_EQUAL(b.rxlen, 0);
    CU_ASSERT(!a.failed && !b.failed);

    /* The client closes: the server reads the end and answers; the
     * client reads the end of the answer. */
    CU_ASSERT_EQUAL(net_shutdown(client), 0);
    CU_ASSERT(run_until(l, both_eof, &pr, 3000));
    CU_ASSERT(a.eof && b.eof);
    CU_ASSERT_EQUAL(ws_peer_close_code(server), 1000);
    CU_ASSERT_EQUAL(ws_peer_close_code(client), 1000);
    CU_ASSERT_EQUAL(net_write(client, "x", 1), NET_FAIL);

    peer_end(&a);
    peer_end(&b);
    net_loop_free(l);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    free(src);
    free(src2);
}

static void TEST_variant_pair(void)
{
    variant_pair(0);
}

static void TEST_variant_pair_tls(void)
{
    variant_pair(1);
}

/* Raw bytes from the other end of a socketpair, waited for. */
static size_t raw_read(int fd, uint8_t *buf, size_t cap, net_loop *l, size_t want)
{
    size_t got = 0;
    int64_t end = net_now_us() + 3000000;
    while (got < want && net_now_us() < end) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r > 0) got += (size_t)r;
        else if (r == 0) break;
        else net_turn(l, 10);
    }
    return got;
}

/* A server variant and a raw client speaking bytes written here. */
typedef struct {
    net_loop *l;
    peer s;
    int fd;
} rawpair;

static int s_done(void *ud)
{
    peer *p = ud;
    return p->ready || p->failed;
}

static int s_end(void *ud)
{
    peer *p = ud;
    return p->failed || p->eof;
}

static void raw_open(rawpair *r, int handshake)
{
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    r->l = net_loop_new(NULL);
    peer_add(r->l, &r->s, ws_server(net_tcp(sv[0]), NULL));
    r->fd = sv[1];
    if (!handshake) return;
    char req[512], key[25];
    size_t n = ws_client_request(req, sizeof req, "h", "/", "mqtt", key);
    CU_ASSERT(write(r->fd, req, n) == (ssize_t)n);
    peer_step(&r->s);
    CU_ASSERT_FATAL(run_until(r->l, s_done, &r->s, 3000) && r->s.ready);
    uint8_t resp[512];
    size_t got = raw_read(r->fd, resp, sizeof resp, r->l, 4);
    size_t used = 0;
    char why[160];
    while (ws_client_check(resp, got, key, "mqtt", &used, why, sizeof why) == WS_NEED_MORE)
        got += raw_read(r->fd, resp + got, sizeof resp - got, r->l, 1);
    CU_ASSERT_EQUAL(ws_client_check(resp, got, key, "mqtt", &used, why, sizeof why), WS_OK);
}

static void raw_close(rawpair *r)
{
    peer_end(&r->s);
    close(r->fd);
    net_loop_free(r->l);
}

static void TEST_variant_raw(void)
{
    rawpair r;
    uint8_t buf[256];

    /* A ping is answered with a pong of the same payload. */
    raw_open(&r, 1);
    static const uint8_t ping[] = { 0x89, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2 };
    CU_ASSERT(write(r.fd, ping, sizeof ping) == (ssize_t)sizeof ping);
    CU_ASSERT_EQUAL(raw_read(r.fd, buf, sizeof buf, r.l, 4), 4);
    CU_ASSERT(memcmp(buf, "\x8a\x02hi", 4) == 0);
    /* Data in two frames, one write: one stream. */
    static const uint8_t two[] = { 0x02, 0x81, M, 0x10, 0x80, 0x82, M, 0x02, 0x03 };
    CU_ASSERT(write(r.fd, two, sizeof two) == (ssize_t)sizeof two);
    pair pr = { &r.s, &r.s, 3 };
    CU_ASSERT(run_until(r.l, b_has, &pr, 3000));
    CU_ASSERT(r.s.rxlen == 3 && memcmp(r.s.rx, "\x10\x02\x03", 3) == 0);
    /* The server's writes are unmasked binary frames. */
    r.s.tx = (const uint8_t *)"\x20\x02\x00\x00";
    r.s.txlen = 4;
    peer_step(&r.s);
    CU_ASSERT_EQUAL(raw_read(r.fd, buf, sizeof buf, r.l, 6), 6);
    CU_ASSERT(memcmp(buf, "\x82\x04\x20\x02\x00\x00", 6) == 0);
    /* A close 1001 "bye": answered with 1001, then the end. */
    static const uint8_t cl[] = { 0x88, 0x85, M, 0x03, 0xe9, 'b', 'y', 'e' };
    CU_ASSERT(write(r.fd, cl, sizeof cl) == (ssize_t)sizeof cl);
    CU_ASSERT(run_until(r.l, s_end, &r.s, 3000));
    CU_ASSERT(r.s.eof && !r.s.failed);
    CU_ASSERT_EQUAL(raw_read(r.fd, buf, sizeof buf, r.l, 4), 4);
    CU_ASSERT(memcmp(buf, "\x88\x02\x03\xe9", 4) == 0);
    CU_ASSERT_EQUAL(ws_peer_close_code(r.s.c), 1001);
    raw_close(&r);

    /* Garbage after the handshake: close 1002, a failure; the good
     * frame before it still reaches the stream. */
    raw_open(&r, 1);
    CU_ASSERT(write(r.fd, "\x82\x83\0\0\0\0" "abc" "\x82\x03" "xyz", 14) == 14);
    CU_ASSERT(run_until(r.l, s_end, &r.s, 3000));
    CU_ASSERT(r.s.failed);
    CU_ASSERT(r.s.rxlen == 3 && memcmp(r.s.rx, "abc", 3) == 0);
    CU_ASSERT(strstr(net_why(r.s.c), "unmasked") != NULL);
    CU_ASSERT(raw_read(r.fd, buf, sizeof buf, r.l, 4) >= 4);
    CU_ASSERT(buf[0] == 0x88 && buf[2] == 0x03 && buf[3] == 0xea);
    raw_close(&r);

    /* A text message: close 1003. */
    raw_open(&r, 1);
    CU_ASSERT(write(r.fd, "\x81\x82\0\0\0\0hi", 8) == 8);
    CU_ASSERT(run_until(r.l, s_end, &r.s, 3000));
    CU_ASSERT(r.s.failed);
    CU_ASSERT(raw_read(r.fd, buf, sizeof buf, r.l, 4) >= 4);
    CU_ASSERT(buf[0] == 0x88 && buf[2] == 0x03 && buf[3] == 0xeb);
    raw_close(&r);

    /* MQTT spoken to the WebSocket port: HTTP 400, a failure. */
    raw_open(&r, 0);
    CU_ASSERT(write(r.fd, "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c", 12) == 12);
    peer_step(&r.s);
    CU_ASSERT(run_until(r.l, s_done, &r.s, 3000));
    CU_ASSERT(r.s.failed && !r.s.ready);
    CU_ASSERT(strstr(net_why(r.s.c), "HTTP 400") != NULL);
    size_t n = raw_read(r.fd, buf, sizeof buf - 1, r.l, 12);
    buf[n] = 0;
    CU_ASSERT(strncmp((char *)buf, "HTTP/1.1 400 ", 13) == 0);
    raw_close(&r);

    /* A version 8 client: 426 with the version we speak. */
    raw_open(&r, 0);
    const char *v8 = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    CU_ASSERT(write(r.fd, v8, strlen(v8)) == (ssize_t)strlen(v8));
    peer_step(&r.s);
    CU_ASSERT(run_until(r.l, s_done, &r.s, 3000) && r.s.failed);
    n = raw_read(r.fd, buf, sizeof buf - 1, r.l, 40);
    buf[n] = 0;
    CU_ASSERT(strstr((char *)buf, "426") != NULL);
    raw_close(&r);

    /* The peer hangs up mid-request: a failure, no answer. */
    raw_open(&r, 0);
    CU_ASSERT(write(r.fd, "GET / HT", 8) == 8);
    shutdown(r.fd, SHUT_WR);
    peer_step(&r.s);
    CU_ASSERT(run_until(r.l, s_done, &r.s, 3000) && r.s.failed);
    raw_close(&r);
}

static void TEST_variant_accepted(void)
{
    /* An HTTP server read the head and a frame came with it. */
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    net_loop *l = net_loop_new(NULL);
    char req[600], key[25];
    size_t n = ws_client_request(req, sizeof req, "h", "/mqtt", "mqtt", key);
    memcpy(req + n, "\x82\x83\0\0\0\0\xc0\x00\x01", 9);
    peer s;
    peer_add(l, &s, ws_server_accepted(net_tcp(sv[0]), req, n + 9, NULL));
    peer_step(&s);
    CU_ASSERT(s.ready);
    CU_ASSERT(s.rxlen == 3 && memcmp(s.rx, "\xc0\x00\x01", 3) == 0);
    CU_ASSERT_STRING_EQUAL(ws_path(s.c), "/mqtt");
    uint8_t buf[512];
    size_t got = raw_read(sv[1], buf, sizeof buf, l, 20);
    size_t used;
    CU_ASSERT_EQUAL(ws_client_check(buf, got, key, "mqtt", &used, NULL, 0), WS_OK);
    peer_end(&s);
    close(sv[1]);
    net_loop_free(l);
}

int init_ws_tests(void)
{
    CU_pSuite suite = CU_add_suite("ws", NULL, NULL);
    if (!suite) {
        printf("Error adding CUnit ws test suite.\n");
        return 1;
    }
    if (0
        || !CU_add_test(suite, "RFC 6455 accept key", TEST_accept_key)
        || !CU_add_test(suite, "HTTP request parse", TEST_http_parse)
        || !CU_add_test(suite, "RFC 6455 request", TEST_rfc_request)
        || !CU_add_test(suite, "Handshake corpus", TEST_handshake_corpus)
        || !CU_add_test(suite, "Client handshake", TEST_client_handshake)
        || !CU_add_test(suite, "RFC 6455 frames", TEST_rfc_frames)
        || !CU_add_test(suite, "Control frames between fragments", TEST_control_between_fragments)
        || !CU_add_test(suite, "Malformed frames", TEST_bad_frames)
        || !CU_add_test(suite, "Decode ready", TEST_decode_ready)
        || !CU_add_test(suite, "Variant: client and server", TEST_variant_pair)
        || !CU_add_test(suite, "Variant: client and server over TLS", TEST_variant_pair_tls)
        || !CU_add_test(suite, "Variant: raw peer", TEST_variant_raw)
        || !CU_add_test(suite, "Variant: accepted request", TEST_variant_accepted)
        ) {
        printf("Error adding CUnit ws tests.\n");
        return 1;
    }
    return 0;
}
