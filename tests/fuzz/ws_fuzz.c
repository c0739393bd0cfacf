/*
 * ws_fuzz.c - libFuzzer target for the WebSocket codec (runner/ws.c).
 *
 *   make fuzz                  build build/fuzz/ws_fuzz and run it 60 s
 *   make fuzz FUZZ_SECONDS=600
 *
 * The first byte of an input picks the options (server or client side,
 * a small message limit, text allowed, how the bytes are cut into reads,
 * how much each read takes); the rest goes, as it is, to:
 *   - the HTTP parser as a request and as a response, then the upgrade
 *     check, the 101 or the error response, and the client's check;
 *   - the frame decoder, in pieces, as the variant drives it: payload
 *     unmasked in place, fragments reassembled, control frames answered,
 *     and the invariants the variant relies on checked (data stays inside
 *     the buffer, ws_decode_ready agrees with ws_decode, sizes add up);
 *   - a round trip: the bytes cut into masked frames by the encoder, then
 *     decoded back, equal;
 *   - the server variant itself (ws_server) over an inner net_conn that
 *     serves the bytes in random pieces, with NET_AGAIN now and then, and
 *     takes writes likewise: handshake, reads, writes, pings, shutdown;
 *     it must end (EOF or a failure) and never loop.
 * A failed check aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define CHECK(x)                                                                         \
    do {                                                                                 \
        if (!(x)) {                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);        \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static void fuzz_http(const uint8_t *data, size_t size, uint8_t mode)
{
    ws_http h;
    size_t max = (mode & 0x10) ? 16 + (size_t)(mode & 0x0f) * 64 : 0;
    for (int response = 0; response < 2; response++) {
        int r = ws_http_parse(data, size, max, response, &h);
        CHECK(r == WS_OK || r == WS_BAD || r == WS_NEED_MORE);
        if (r == WS_BAD) {
            CHECK(h.status >= 400 && h.status < 600);
            CHECK(memchr(h.why, 0, sizeof h.why) != NULL);
            char resp[512];
            ws_response_error(resp, sizeof resp, h.status, h.why);
            continue;
        }
        if (r != WS_OK) continue;
        const char *b = (const char *)data;
        CHECK(h.len > 0 && h.len <= size);
        CHECK(h.nheaders >= 0 && h.nheaders <= WS_MAX_HEADERS);
        for (int i = 0; i < h.nheaders; i++) {
            CHECK(h.headers[i].name >= b && h.headers[i].name + h.headers[i].name_len <= b + h.len);
            CHECK(h.headers[i].value >= b && h.headers[i].value + h.headers[i].value_len <= b + h.len);
        }
        ws_http_has_token(&h, "Connection", "Upgrade");
        if (response) {
            CHECK(h.code >= 100 && h.code <= 599);
            continue;
        }
        CHECK(h.method >= b && h.method + h.method_len <= b + h.len);
        CHECK(h.path >= b && h.path + h.path_len <= b + h.len && h.path_len >= 1 && h.path[0] == '/');
        if (h.query) CHECK(h.query >= b && h.query + h.query_len <= b + h.len);
        ws_upgrade u;
        char resp[512];
        if (ws_upgrade_check(&h, mode & 1, &u) == WS_OK) {
            CHECK(strlen(u.key) == 24);
            size_t n = ws_response_101(resp, sizeof resp, &u);
            CHECK(n > 0);
            /* Our own answer satisfies a client that sent that key. */
            size_t used = 0;
            char why[160];
            CHECK(ws_client_check(resp, n, u.key, u.protocol, &used, why, sizeof why) == WS_OK);
            CHECK(used == n);
        } else {
            CHECK(u.status == 400 || u.status == 405 || u.status == 426);
            CHECK(ws_response_error(resp, sizeof resp, u.status, u.why) > 0);
        }
    }
    size_t used = 0;
    char why[160];
    int r = ws_client_check(data, size, "dGhlIHNhbXBsZSBub25jZQ==", (mode & 2) ? "mqtt" : NULL, &used, why, sizeof why);
    if (r == WS_OK) CHECK(used > 0 && used <= size);
}

/* A small PRNG for the read sizes, seeded from the input. */
static uint32_t rnd(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void fuzz_frames(const uint8_t *data, size_t size, uint8_t mode)
{
    int server = mode & 1;
    uint64_t max = (mode & 4) ? 64 : 0;
    size_t max_datas[4] = { 0, 1, 7, 4096 };
    size_t max_data = max_datas[(mode >> 6) & 3];
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    uint8_t *msg = malloc(size ? size : 1);     /* the message being reassembled */
    size_t msg_len = 0, total = 0;
    ws_decoder d;
    ws_decoder_init(&d, server, max, (mode & 8) != 0);
    uint32_t seed = (uint32_t)size * 2654435761u ^ mode;
    size_t pos = 0, have = (mode & 0x20) ? size : 0;
    for (;;) {
        size_t ready = ws_decode_ready(&d, buf + pos, have - pos);
        ws_event ev;
        ssize_t u = ws_decode(&d, buf + pos, have - pos, max_data, &ev);
        if (u < 0) {
            /* A failure names a close code a peer may be sent. */
            CHECK(d.code == 1002 || d.code == 1003 || d.code == 1007 || d.code == 1009);
            CHECK(d.why != NULL);
            CHECK(ws_decode(&d, buf + pos, have - pos, max_data, &ev) == -1);
            break;
        }
        CHECK((size_t)u <= have - pos);
        /* What the variant's pending() says is what read() gets. */
        if (ready) CHECK(u > 0 || ev.type != WS_EV_NONE);
        if (u == 0 && ev.type == WS_EV_NONE) CHECK(ready == 0);
        switch (ev.type) {
        case WS_EV_DATA:
            CHECK(ev.data >= buf + pos && ev.data + ev.len <= buf + pos + (size_t)u);
            CHECK(max_data == 0 || ev.len <= max_data);
            CHECK(ev.opcode == WS_BINARY || (ev.opcode == WS_TEXT && (mode & 8)));
            memcpy(msg + msg_len, ev.data, ev.len);
            msg_len += ev.len;
            total += ev.len;
            CHECK(max == 0 || msg_len <= max);
            if (ev.fin) {
                if (ev.opcode == WS_TEXT) CHECK(ws_utf8_valid(msg, msg_len));
                msg_len = 0;
            }
            break;
        case WS_EV_PING:
        case WS_EV_PONG:
            CHECK(ev.len <= 125);
            CHECK(ev.data >= buf + pos && ev.data + ev.len <= buf + pos + (size_t)u);
            break;
        case WS_EV_CLOSE:
            CHECK(ev.close_code == WS_CLOSE_NO_STATUS || ws_close_code_valid(ev.close_code));
            CHECK(ws_utf8_valid(ev.reason ? ev.reason : (const uint8_t *)"", ev.reason_len));
            CHECK(d.closed);
            break;
        default:
            CHECK(ev.type == WS_EV_NONE);
        }
        pos += (size_t)u;
        if (ev.type == WS_EV_CLOSE) {
            CHECK(ws_decode(&d, buf + pos, have - pos, max_data, &ev) == 0 && ev.type == WS_EV_NONE);
            break;
        }
        if (ev.type == WS_EV_NONE && u == 0) {
            if (have == size) break;
            have += 1 + rnd(&seed) % ((mode & 2) ? 3 : 200);
            if (have > size) have = size;
        }
    }
    CHECK(total <= size);
    free(msg);
    free(buf);
}

/* The bytes, cut into frames by the encoder (as a client: masked, or a
 * server), decode back to themselves. */
static void fuzz_roundtrip(const uint8_t *data, size_t size, uint8_t mode)
{
    int client = mode & 1;
    size_t cap = size + 24 * (size + 1);   /* a header and a ping per byte, at worst */
    uint8_t *wire = malloc(cap), *out = malloc(size ? size : 1);
    size_t wl = 0, pos = 0;
    uint32_t seed = mode * 7919u + (uint32_t)size;
    int first = 1;
    while (pos < size || first) {
        size_t n = size - pos;
        size_t cut = 1 + rnd(&seed) % 300;
        if (n > cut) n = cut;
        int fin = pos + n == size;
        uint8_t mask[4] = { (uint8_t)rnd(&seed), (uint8_t)rnd(&seed), (uint8_t)rnd(&seed), (uint8_t)rnd(&seed) };
        size_t h = ws_frame_header(wire + wl, fin, first ? WS_BINARY : WS_CONT, n, client ? mask : NULL);
        memcpy(wire + wl + h, data + pos, n);
        if (client) ws_unmask(wire + wl + h, n, mask, 0);
        wl += h + n;
        pos += n;
        first = 0;
        if (rnd(&seed) % 4 == 0 && !fin) {          /* a ping between fragments */
            h = ws_frame_header(wire + wl, 1, WS_PING, 0, client ? mask : NULL);
            wl += h;
        }
    }
    ws_decoder d;
    ws_decoder_init(&d, client, 0, 0);
    size_t got = 0, at = 0;
    int fins = 0;
    for (;;) {
        ws_event ev;
        ssize_t u = ws_decode(&d, wire + at, wl - at, 0, &ev);
        CHECK(u >= 0);
        at += (size_t)u;
        if (ev.type == WS_EV_DATA) {
            CHECK(got + ev.len <= size);
            memcpy(out + got, ev.data, ev.len);
            got += ev.len;
            fins += ev.fin;
        }
        if (u == 0 && ev.type == WS_EV_NONE) break;
    }
    CHECK(at == wl);
    CHECK(got == size && fins == 1);
    CHECK(size == 0 || memcmp(out, data, size) == 0);
    free(wire);
    free(out);
}

/* ---- an inner net_conn made of the input ---- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    uint32_t seed;
    int stall;                  /* the last call said NET_AGAIN */
    size_t written;
} mem_impl;

static int mem_handshake(net_conn *c)
{
    (void)c;
    return 0;
}

static ssize_t mem_read(net_conn *c, void *buf, size_t n)
{
    mem_impl *m = c->impl;
    if (!m->stall && rnd(&m->seed) % 4 == 0) {
        m->stall = 1;
        c->want = NET_IN;
        return NET_AGAIN;
    }
    m->stall = 0;
    if (m->pos == m->len) return 0;
    size_t k = 1 + rnd(&m->seed) % 97;
    if (k > n) k = n;
    if (k > m->len - m->pos) k = m->len - m->pos;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

static ssize_t mem_write(net_conn *c, const void *buf, size_t n)
{
    mem_impl *m = c->impl;
    (void)buf;
    if (rnd(&m->seed) % 5 == 0) {
        c->want = NET_OUT;
        return NET_AGAIN;
    }
    size_t k = 1 + rnd(&m->seed) % 1000;
    if (k > n) k = n;
    m->written += k;
    return (ssize_t)k;
}

static int mem_flush(net_conn *c)
{
    (void)c;
    return 0;
}

static size_t mem_pending(net_conn *c)
{
    (void)c;
    return 0;
}

static int mem_shutdown(net_conn *c)
{
    (void)c;
    return 0;
}

static void mem_close(net_conn *c, int reset)
{
    (void)reset;
    free(c->impl);
    net_conn_free(c);
}

static const net_conn_ops mem_ops = {
    "mem", mem_handshake, mem_read, mem_write, mem_flush, mem_pending, mem_shutdown, mem_close
};

static void fuzz_variant(const uint8_t *data, size_t size, uint8_t mode)
{
    mem_impl *m = calloc(1, sizeof *m);
    m->p = data;
    m->len = size;
    m->seed = (uint32_t)size * 40503u + mode;
    net_conn *inner = net_conn_new(&mem_ops, -1);
    inner->impl = m;
    ws_opts o = { .max_message = (mode & 4) ? 64 : 0, .require_protocol = mode & 1, .text_ok = (mode & 8) != 0,
                  .max_header = (mode & 0x10) ? 512 : 0 };
    net_conn *c = ws_server(inner, &o);
    CHECK(ws_is(c) && strcmp(c->ops->name, "ws") == 0);
    uint8_t out[300];
    uint32_t seed = mode * 2246822519u + (uint32_t)size;
    int ready = 0, ended = 0;
    size_t got = 0;
    for (size_t i = 0; i < 16 * size + 1000 && !ended; i++) {
        if (!ready) {
            int r = net_handshake(c);
            if (r == 0) ready = 1;
            else if (r == NET_FAIL) ended = 1;
            else CHECK(r == NET_AGAIN && c->want);
            continue;
        }
        size_t n = 1 + rnd(&seed) % sizeof out;
        ssize_t r = net_read(c, out, n);
        if (r > 0) {
            CHECK((size_t)r <= n);
            got += (size_t)r;
        } else if (r == 0 || r == NET_FAIL) {
            ended = 1;
        } else {
            CHECK(r == NET_AGAIN && c->want);
        }
        switch (rnd(&seed) % 8) {
        case 0:
            r = net_write(c, "\x20\x02\x00\x00", 4);
            CHECK(r == 4 || r == NET_FAIL || r == NET_AGAIN);
            break;
        case 1:
            ws_ping(c, "p", 1);
            break;
        case 2:
            net_flush(c);
            break;
        default:
            break;
        }
    }
    /* Each call takes a byte or a stall: it has ended. */
    CHECK(ended);
    CHECK(got <= size);
    if (ready) net_shutdown(c);
    net_flush(c);
    net_close(c, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    fuzz_http(data, size, mode);
    fuzz_frames(data, size, mode);
    if (size <= 4096) fuzz_roundtrip(data, size, mode);
    fuzz_variant(data, size, mode);
    return 0;
}
