/*
 * ws.c - WebSockets (RFC 6455): the HTTP upgrade, frames and messages as
 * a codec over byte buffers, and the net_conn variant built on it.
 *
 * Everything read comes from an untrusted peer (a browser, a student's
 * program, a fuzzer): the codec checks each length against the bytes it
 * was given before touching them, never allocates, and says what was
 * wrong in words and with the status or close code the RFC asks for. The
 * variant owns two buffers: input (an HTTP head, then frames, handed out
 * as they arrive: a big frame is never buffered whole) and output (101,
 * frames, pongs and closes, drained by flush).
 */
#include "ws.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

/* ---- small helpers -------------------------------------------------- */

static int bad(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return WS_BAD;
}

/* RFC 9110 5.6.2: the characters of a token (methods, header names). */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int eq_nocase(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

/* ---- HTTP heads ----------------------------------------------------- */

static int http_bad(ws_http *h, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int http_bad(ws_http *h, int status, const char *fmt, ...)
{
    h->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->why, sizeof h->why, fmt, ap);
    va_end(ap);
    return WS_BAD;
}

/* "HTTP/1.x" at p (8 bytes known to be there): the minor version, or
 * -1 when it is not HTTP at all, -2 for another major version. */
static int http_version(const char *p, size_t n)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.') return -1;
    if (p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9') return -1;
    if (p[5] != '1') return -2;
    return p[7] - '0';
}

static int parse_request_line(ws_http *h, const char *p, size_t n)
{
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p) return http_bad(h, 400, "malformed request line");
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q)) return http_bad(h, 400, "malformed method in the request line");
    const char *t = sp1 + 1, *end = p + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t) return http_bad(h, 400, "malformed request line");
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f) return http_bad(h, 400, "malformed request target");
    int minor = http_version(sp2 + 1, (size_t)(end - sp2 - 1));
    if (minor == -2) return http_bad(h, 505, "only HTTP/1.x is spoken here");
    if (minor < 0) return http_bad(h, 400, "malformed HTTP version in the request line");
    if (*t != '/') return http_bad(h, 400, "the request target must be a path (\"/mqtt\")");
    h->method = p;
    h->method_len = (size_t)(sp1 - p);
    h->path = t;
    const char *qm = memchr(t, '?', (size_t)(sp2 - t));
    h->path_len = (size_t)((qm ? qm : sp2) - t);
    if (qm) {
        h->query = qm + 1;
        h->query_len = (size_t)(sp2 - qm - 1);
    }
    h->minor = minor;
    return WS_OK;
}

static int parse_status_line(ws_http *h, const char *p, size_t n)
{
    if (n < 12) return http_bad(h, 502, "malformed status line");
    int minor = http_version(p, 8);
    if (minor < 0) return http_bad(h, 502, "not an HTTP/1.x response");
    if (p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        return http_bad(h, 502, "malformed status line");
    if (n > 12 && p[12] != ' ') return http_bad(h, 502, "malformed status line");
    h->code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    h->minor = minor;
    return WS_OK;
}

int ws_http_parse(const void *buf, size_t len, size_t max, int response, ws_http *h)
{
    const char *b = buf;
    memset(h, 0, sizeof *h);
    if (max == 0) max = WS_MAX_HEADER;
    size_t lim = len < max ? len : max;

    /* Find the blank line that ends the head, refusing at once bytes no
     * HTTP head holds: a client that speaks MQTT (or TLS) to the
     * WebSocket port is told so now, not after 8 KiB. */
    size_t end = 0;
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c == '\n') {
            if (i == 0 || (i == 1 && b[0] == '\r'))
                return http_bad(h, response ? 502 : 400, "an empty line where the %s line should be",
                                response ? "status" : "request");
            if (b[i - 1] == '\n' || (b[i - 1] == '\r' && i >= 2 && b[i - 2] == '\n')) {
                end = i + 1;
                break;
            }
        } else if (c == '\r') {
            if (i + 1 < lim && b[i + 1] != '\n')
                return http_bad(h, response ? 502 : 400, "a CR that does not end a line");
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return http_bad(h, response ? 502 : 400, "not an HTTP %s (byte 0x%02x at %zu)",
                            response ? "response" : "request", c, i);
        }
    }
    if (!end) {
        if (len >= max) return http_bad(h, 431, "the request head is larger than %zu bytes", max);
        return WS_NEED_MORE;
    }

    /* Lines: the first, then headers up to the blank one. */
    size_t pos = 0;
    int first = 1;
    while (pos < end) {
        const char *nl = memchr(b + pos, '\n', end - pos);
        size_t eol = (size_t)(nl - b), n = eol - pos;
        if (n && b[eol - 1] == '\r') n--;
        const char *p = b + pos;
        pos = eol + 1;
        if (first) {
            first = 0;
            int r = response ? parse_status_line(h, p, n) : parse_request_line(h, p, n);
            if (r != WS_OK) return r;
            continue;
        }
        if (n == 0) break;              /* the blank line */
        if (ows((unsigned char)p[0]))
            return http_bad(h, response ? 502 : 400, "folded header lines are obsolete (RFC 9112 5.2)");
        const char *colon = memchr(p, ':', n);
        if (!colon || colon == p) return http_bad(h, response ? 502 : 400, "a header line without a name");
        for (const char *q = p; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return http_bad(h, response ? 502 : 400, "a malformed header name");
        if (h->nheaders == WS_MAX_HEADERS)
            return http_bad(h, response ? 502 : 431, "more than %d header lines", WS_MAX_HEADERS);
        const char *v = colon + 1, *ve = p + n;
        while (v < ve && ows((unsigned char)*v)) v++;
        while (ve > v && ows((unsigned char)ve[-1])) ve--;
        ws_header *hd = &h->headers[h->nheaders++];
        hd->name = p;
        hd->name_len = (size_t)(colon - p);
        hd->value = v;
        hd->value_len = (size_t)(ve - v);
    }
    h->len = end;
    return WS_OK;
}

const char *ws_http_get(const ws_http *h, const char *name, size_t *len)
{
    for (int i = 0; i < h->nheaders; i++)
        if (eq_nocase(h->headers[i].name, h->headers[i].name_len, name)) {
            if (len) *len = h->headers[i].value_len;
            return h->headers[i].value;
        }
    return NULL;
}

/* Calls fn for each element of the comma-separated lists in the headers
 * called name, trimmed; stops when fn returns nonzero and returns that. */
static int each_token(const ws_http *h, const char *name, int (*fn)(const char *, size_t, void *), void *ud)
{
    for (int i = 0; i < h->nheaders; i++) {
        const ws_header *hd = &h->headers[i];
        if (!eq_nocase(hd->name, hd->name_len, name)) continue;
        const char *p = hd->value, *e = hd->value + hd->value_len;
        while (p < e) {
            const char *c = memchr(p, ',', (size_t)(e - p));
            const char *te = c ? c : e;
            const char *s = p;
            while (s < te && ows((unsigned char)*s)) s++;
            const char *t = te;
            while (t > s && ows((unsigned char)t[-1])) t--;
            if (t > s) {
                int r = fn(s, (size_t)(t - s), ud);
                if (r) return r;
            }
            p = c ? c + 1 : e;
        }
    }
    return 0;
}

static int token_is(const char *t, size_t n, void *ud)
{
    return eq_nocase(t, n, ud);
}

int ws_http_has_token(const ws_http *h, const char *name, const char *token)
{
    return each_token(h, name, token_is, (void *)token);
}

/* ---- the opening handshake ----------------------------------------- */

static int up_bad(ws_upgrade *u, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int up_bad(ws_upgrade *u, int status, const char *fmt, ...)
{
    u->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->why, sizeof u->why, fmt, ap);
    va_end(ap);
    return WS_BAD;
}

static int is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Subprotocols offered: which of the kit's two names, and how many. */
typedef struct {
    int mqtt, mqtt31, any;
} offer;

static int note_protocol(const char *t, size_t n, void *ud)
{
    offer *o = ud;
    o->any++;
    /* Subprotocol names compare as they are spelled (RFC 6455 4.1). */
    if (n == 4 && memcmp(t, "mqtt", 4) == 0) o->mqtt = 1;
    if (n == 8 && memcmp(t, "mqttv3.1", 8) == 0) o->mqtt31 = 1;
    return 0;
}

int ws_upgrade_check(const ws_http *h, int require_protocol, ws_upgrade *u)
{
    memset(u, 0, sizeof *u);
    /* Methods are case-sensitive (RFC 9110 9.1). */
    if (h->method_len != 3 || memcmp(h->method, "GET", 3) != 0)
        return up_bad(u, 405, "a WebSocket upgrade is a GET, not %.*s", (int)(h->method_len > 20 ? 20 : h->method_len),
                      h->method);
    if (h->minor < 1) return up_bad(u, 400, "a WebSocket upgrade needs HTTP/1.1");
    size_t hl;
    if (!ws_http_get(h, "Host", &hl)) return up_bad(u, 400, "no Host header");
    if (!ws_http_has_token(h, "Upgrade", "websocket"))
        return up_bad(u, 400, "not a WebSocket upgrade (no \"Upgrade: websocket\")");
    if (!ws_http_has_token(h, "Connection", "Upgrade"))
        return up_bad(u, 400, "not a WebSocket upgrade (no \"Connection: Upgrade\")");
    size_t vl;
    const char *v = ws_http_get(h, "Sec-WebSocket-Version", &vl);
    if (!v || vl != 2 || memcmp(v, "13", 2) != 0)
        return up_bad(u, 426, "WebSocket version 13 only (Sec-WebSocket-Version: %.*s)", v ? (int)(vl > 20 ? 20 : vl) : 4,
                      v ? v : "none");
    size_t kl;
    int nkeys = 0;
    for (int i = 0; i < h->nheaders; i++)
        if (eq_nocase(h->headers[i].name, h->headers[i].name_len, "Sec-WebSocket-Key")) nkeys++;
    const char *k = ws_http_get(h, "Sec-WebSocket-Key", &kl);
    if (!k) return up_bad(u, 400, "no Sec-WebSocket-Key");
    if (nkeys > 1) return up_bad(u, 400, "more than one Sec-WebSocket-Key");
    /* base64 of 16 bytes: 22 characters and "==". */
    int ok = kl == 24 && k[22] == '=' && k[23] == '=';
    for (size_t i = 0; ok && i < 22; i++) ok = is_b64((unsigned char)k[i]);
    if (!ok) return up_bad(u, 400, "Sec-WebSocket-Key is not base64 of 16 bytes");
    memcpy(u->key, k, 24);
    u->key[24] = '\0';
    offer o = { 0, 0, 0 };
    each_token(h, "Sec-WebSocket-Protocol", note_protocol, &o);
    if (o.mqtt) u->protocol = "mqtt";
    else if (o.mqtt31) u->protocol = "mqttv3.1";
    else if (o.any) return up_bad(u, 400, "no subprotocol the kit speaks (it speaks \"mqtt\")");
    else if (require_protocol) return up_bad(u, 400, "no Sec-WebSocket-Protocol: mqtt");
    return WS_OK;
}

void ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char md[SHA_DIGEST_LENGTH];
    char buf[128];
    if (key_len > sizeof buf - sizeof WS_GUID) key_len = sizeof buf - sizeof WS_GUID;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, WS_GUID, sizeof WS_GUID - 1);
    SHA1((const unsigned char *)buf, key_len + sizeof WS_GUID - 1, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

const char *ws_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static size_t fit(int n, size_t cap)
{
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

size_t ws_response_101(char *buf, size_t cap, const ws_upgrade *u)
{
    char acc[29];
    ws_accept_key(u->key, strlen(u->key), acc);
    int n = snprintf(buf, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "\r\n",
                     acc, u->protocol ? "Sec-WebSocket-Protocol: " : "", u->protocol ? u->protocol : "",
                     u->protocol ? "\r\n" : "");
    return fit(n, cap);
}

size_t ws_response_error(char *buf, size_t cap, int status, const char *why)
{
    if (!why) why = ws_status_text(status);
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "\r\n"
                     "%s\n",
                     status, ws_status_text(status), status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "",
                     strlen(why) + 1, why);
    return fit(n, cap);
}

size_t ws_client_request(char *buf, size_t cap, const char *host, const char *path, const char *protocol,
                         char key_out[25])
{
    unsigned char nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1) return 0;
    EVP_EncodeBlock((unsigned char *)key_out, nonce, sizeof nonce);
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s%s"
                     "\r\n",
                     path && *path ? path : "/", host, key_out, protocol && *protocol ? "Sec-WebSocket-Protocol: " : "",
                     protocol && *protocol ? protocol : "", protocol && *protocol ? "\r\n" : "");
    return fit(n, cap);
}

int ws_client_check(const void *buf, size_t len, const char *key, const char *protocol, size_t *used, char *why,
                    size_t whylen)
{
    ws_http h;
    int r = ws_http_parse(buf, len, 0, 1, &h);
    if (r == WS_NEED_MORE) return r;
    if (r == WS_BAD) return bad(why, whylen, "bad handshake response: %s", h.why);
    if (h.code != 101) return bad(why, whylen, "the server answered HTTP %d, not 101", h.code);
    if (!ws_http_has_token(&h, "Upgrade", "websocket")) return bad(why, whylen, "the 101 lacks Upgrade: websocket");
    if (!ws_http_has_token(&h, "Connection", "Upgrade")) return bad(why, whylen, "the 101 lacks Connection: Upgrade");
    char want[29];
    ws_accept_key(key, strlen(key), want);
    size_t al;
    const char *acc = ws_http_get(&h, "Sec-WebSocket-Accept", &al);
    if (!acc || al != 28 || memcmp(acc, want, 28) != 0)
        return bad(why, whylen, "wrong Sec-WebSocket-Accept (not the answer to our key)");
    size_t pl;
    const char *p = ws_http_get(&h, "Sec-WebSocket-Protocol", &pl);
    if (protocol && *protocol) {
        if (!p) return bad(why, whylen, "the server chose no subprotocol (we offered %s)", protocol);
        if (pl != strlen(protocol) || memcmp(p, protocol, pl) != 0)
            return bad(why, whylen, "the server chose a subprotocol we did not offer");
    } else if (p) {
        return bad(why, whylen, "the server chose a subprotocol we did not offer");
    }
    if (ws_http_get(&h, "Sec-WebSocket-Extensions", NULL))
        return bad(why, whylen, "the server chose an extension we did not offer");
    *used = h.len;
    return WS_OK;
}

/* ---- frames -------------------------------------------------------- */

int ws_frame_parse(const void *buf, size_t len, int server, ws_frame *f, int *code, const char **why)
{
    const uint8_t *b = buf;
    if (len < 2) return WS_NEED_MORE;
    f->fin = b[0] >> 7;
    f->rsv = (b[0] >> 4) & 7;
    f->opcode = b[0] & 0x0f;
    f->masked = b[1] >> 7;
    *code = WS_CLOSE_PROTOCOL;
    /* What one byte tells is refused before waiting for the rest. */
    if (f->rsv) return *why = "RSV bits set with no extension negotiated", WS_BAD;
    if ((f->opcode > WS_BINARY && f->opcode < WS_CLOSE) || f->opcode > WS_PONG)
        return *why = "a reserved opcode", WS_BAD;
    if (server && !f->masked) return *why = "an unmasked frame from a client", WS_BAD;
    if (!server && f->masked) return *why = "a masked frame from a server", WS_BAD;
    uint64_t n = b[1] & 0x7f;
    int control = f->opcode >= WS_CLOSE;
    if (control && !f->fin) return *why = "a fragmented control frame", WS_BAD;
    if (control && n > 125) return *why = "a control frame longer than 125 bytes", WS_BAD;
    size_t h = 2;
    if (n == 126) {
        if (len < 4) return WS_NEED_MORE;
        n = (uint64_t)b[2] << 8 | b[3];
        h = 4;
    } else if (n == 127) {
        if (len < 10) return WS_NEED_MORE;
        if (b[2] & 0x80) return *why = "a 64-bit length with its top bit set", WS_BAD;
        n = 0;
        for (int i = 0; i < 8; i++) n = n << 8 | b[2 + i];
        h = 10;
    }
    if (f->masked) {
        if (len < h + 4) return WS_NEED_MORE;
        memcpy(f->mask, b + h, 4);
        h += 4;
    } else {
        memset(f->mask, 0, 4);
    }
    f->len = n;
    f->hlen = h;
    *code = 0;
    *why = NULL;
    return WS_OK;
}

size_t ws_frame_header(uint8_t out[14], int fin, int opcode, uint64_t len, const uint8_t *mask)
{
    size_t h = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] = m | (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = m | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        h = 10;
    }
    if (mask) {
        memcpy(out + h, mask, 4);
        h += 4;
    }
    return h;
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off)
{
    uint8_t m[8];
    for (int i = 0; i < 8; i++) m[i] = mask[(off + (uint64_t)i) & 3];
    uint64_t w8;
    memcpy(&w8, m, 8);
    size_t i = 0;
    /* Eight bytes at a time: i stays a multiple of 8, so m[i & 3] lines
     * up again for the tail. memcpy keeps unaligned loads legal. */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= w8;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++) p[i] ^= m[i & 3];
}

int ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

/* One byte of UTF-8 (RFC 3629's table): 0 when it cannot be there. need
 * is how many continuation bytes are still due, lo..hi what the next one
 * may be (narrower after E0, ED, F0, F4: no overlongs, no surrogates,
 * nothing above U+10FFFF). */
static int utf8_step(unsigned char *need, unsigned char *lo, unsigned char *hi, uint8_t c)
{
    if (*need) {
        if (c < *lo || c > *hi) return 0;
        (*need)--;
        *lo = 0x80;
        *hi = 0xbf;
        return 1;
    }
    *lo = 0x80;
    *hi = 0xbf;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) *need = 1;
    else if (c == 0xe0) *need = 2, *lo = 0xa0;
    else if (c == 0xed) *need = 2, *hi = 0x9f;
    else if (c >= 0xe1 && c <= 0xef) *need = 2;
    else if (c == 0xf0) *need = 3, *lo = 0x90;
    else if (c == 0xf4) *need = 3, *hi = 0x8f;
    else if (c >= 0xf1 && c <= 0xf3) *need = 3;
    else return 0;
    return 1;
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
    unsigned char need = 0, lo = 0x80, hi = 0xbf;
    for (size_t i = 0; i < n; i++)
        if (!utf8_step(&need, &lo, &hi, p[i])) return 0;
    return need == 0;
}

/* ---- the decoder ---------------------------------------------------- */

void ws_decoder_init(ws_decoder *d, int server, uint64_t max_message, int text_ok)
{
    memset(d, 0, sizeof *d);
    d->server = server;
    d->text_ok = text_ok;
    d->max_message = max_message ? max_message : WS_MAX_MESSAGE;
}

static ssize_t dec_fail(ws_decoder *d, int code, const char *why)
{
    d->code = code;
    d->why = why;
    return -1;
}

ssize_t ws_decode(ws_decoder *d, uint8_t *buf, size_t len, size_t max_data, ws_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (d->code) return -1;
    if (d->closed) return 0;
    size_t used = 0;
    if (!d->in_frame) {
        ws_frame f;
        int code;
        const char *why;
        int r = ws_frame_parse(buf, len, d->server, &f, &code, &why);
        if (r == WS_NEED_MORE) return 0;
        if (r == WS_BAD) return dec_fail(d, code, why);
        if (f.opcode >= WS_CLOSE) {
            /* Control frames are small (125 bytes): decoded whole. They
             * may come between the fragments of a message. */
            if (len - f.hlen < f.len) return 0;
            uint8_t *p = buf + f.hlen;
            size_t n = (size_t)f.len;
            if (f.masked) ws_unmask(p, n, f.mask, 0);
            ev->data = p;
            ev->len = n;
            if (f.opcode == WS_PING) {
                ev->type = WS_EV_PING;
            } else if (f.opcode == WS_PONG) {
                ev->type = WS_EV_PONG;
            } else {
                ev->type = WS_EV_CLOSE;
                ev->close_code = WS_CLOSE_NO_STATUS;
                if (n == 1) return dec_fail(d, WS_CLOSE_PROTOCOL, "a close frame with a 1-byte payload");
                if (n >= 2) {
                    ev->close_code = (unsigned)p[0] << 8 | p[1];
                    if (!ws_close_code_valid(ev->close_code))
                        return dec_fail(d, WS_CLOSE_PROTOCOL, "a close code that may not be sent");
                    if (!ws_utf8_valid(p + 2, n - 2))
                        return dec_fail(d, WS_CLOSE_BAD_DATA, "a close reason that is not UTF-8");
                    ev->reason = p + 2;
                    ev->reason_len = n - 2;
                }
                d->closed = 1;
            }
            return (ssize_t)(f.hlen + n);
        }
        if (f.opcode == WS_CONT) {
            if (!d->msg_op) return dec_fail(d, WS_CLOSE_PROTOCOL, "a continuation frame with no message to continue");
        } else {
            if (d->msg_op) return dec_fail(d, WS_CLOSE_PROTOCOL, "a new message before the last one ended");
            if (f.opcode == WS_TEXT && !d->text_ok)
                return dec_fail(d, WS_CLOSE_UNSUPPORTED, "a text message (MQTT goes in binary messages)");
            d->msg_op = f.opcode;
            d->msg_len = 0;
            d->u8need = 0;
        }
        if (f.len > d->max_message - d->msg_len)
            return dec_fail(d, WS_CLOSE_TOO_BIG, "a message larger than the limit");
        d->msg_len += f.len;
        d->f = f;
        d->in_frame = 1;
        d->left = f.len;
        d->off = 0;
        used = f.hlen;
    }

    /* Payload: as much as is here, up to max_data. */
    size_t n = len - used;
    if (d->left < n) n = (size_t)d->left;
    if (max_data && n > max_data) n = max_data;
    if (n == 0 && d->left > 0) return (ssize_t)used;
    uint8_t *p = buf + used;
    if (d->f.masked) ws_unmask(p, n, d->f.mask, d->off);
    if (d->msg_op == WS_TEXT)
        for (size_t i = 0; i < n; i++)
            if (!utf8_step(&d->u8need, &d->u8lo, &d->u8hi, p[i]))
                return dec_fail(d, WS_CLOSE_BAD_DATA, "a text message that is not UTF-8");
    d->left -= n;
    d->off += n;
    ev->type = WS_EV_DATA;
    ev->opcode = d->msg_op;
    ev->data = p;
    ev->len = n;
    if (d->left == 0) {
        d->in_frame = 0;
        if (d->f.fin) {
            if (d->msg_op == WS_TEXT && d->u8need)
                return dec_fail(d, WS_CLOSE_BAD_DATA, "a text message that ends inside a UTF-8 character");
            ev->fin = 1;
            d->msg_op = 0;
        }
    }
    return (ssize_t)(used + n);
}

size_t ws_decode_ready(const ws_decoder *d, const uint8_t *buf, size_t len)
{
    if (d->code || d->closed) return 0;
    if (d->in_frame) return d->left < len ? (size_t)d->left : len;
    ws_frame f;
    int code;
    const char *why;
    int r = ws_frame_parse(buf, len, d->server, &f, &code, &why);
    if (r == WS_NEED_MORE) return 0;
    if (r == WS_BAD) return 1;          /* reading it says what is wrong */
    if (f.opcode >= WS_CLOSE) return len - f.hlen >= f.len ? 1 : 0;
    if (f.len == 0) return 1;
    size_t avail = len - f.hlen;
    return avail < f.len ? avail : (size_t)f.len;
}

/* ---- the net_conn variant ------------------------------------------- */

enum { ST_INNER, ST_SEND_REQUEST, ST_READ_HEAD, ST_SEND_101, ST_REFUSE, ST_OPEN, ST_DONE, ST_FAILED };

#define IN_SIZE 16384
#define OUT_HIGH (256 * 1024)   /* write() takes no more while this much waits */

typedef struct {
    int server, state;
    ws_opts o;
    char *host, *path, *protocol;   /* client: ours; server: the request's path */
    const char *chosen;             /* the subprotocol in use */
    char key[25];
    uint8_t *in;
    size_t inpos, inlen, incap;
    uint8_t *out;
    size_t opos, olen, ocap;
    ws_decoder dec;
    int close_sent, inner_shut;
    int eof_told;                   /* read() has returned 0 */
    unsigned peer_code;
    int refuse_status;
    char refuse_why[120];
} ws_impl;

static const net_conn_ops ws_tcp_ops, ws_tls_ops;

int ws_is(const net_conn *c)
{
    return c && (c->ops == &ws_tcp_ops || c->ops == &ws_tls_ops);
}

static char *dup_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) abort();
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Room for n more bytes at the end of the output buffer. */
static uint8_t *out_room(ws_impl *w, size_t n)
{
    if (w->opos == w->olen) w->opos = w->olen = 0;
    if (w->olen + n > w->ocap && w->opos) {
        memmove(w->out, w->out + w->opos, w->olen - w->opos);
        w->olen -= w->opos;
        w->opos = 0;
    }
    if (w->olen + n > w->ocap) {
        size_t cap = w->ocap ? w->ocap : 4096;
        while (cap < w->olen + n) cap *= 2;
        uint8_t *p = realloc(w->out, cap);
        if (!p) abort();
        w->out = p;
        w->ocap = cap;
    }
    return w->out + w->olen;
}

/* One frame into the output buffer, masked when we are the client. */
static void queue_frame(ws_impl *w, int opcode, const void *payload, size_t n)
{
    uint8_t mask[4], *mp = NULL;
    if (!w->server) {
        /* RFC 6455 5.3: unpredictable masks, from a strong source. */
        if (RAND_bytes(mask, 4) != 1) memset(mask, 0x5a, 4);
        mp = mask;
    }
    uint8_t *o = out_room(w, 14 + n);
    size_t h = ws_frame_header(o, 1, opcode, n, mp);
    if (n) memcpy(o + h, payload, n);
    if (mp) ws_unmask(o + h, n, mask, 0);
    w->olen += h + n;
}

static void queue_close(ws_impl *w, unsigned code, const char *reason)
{
    uint8_t p[125];
    size_t n = 0;
    if (w->close_sent) return;
    w->close_sent = 1;
    if (code && code != WS_CLOSE_NO_STATUS) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        n = 2;
        if (reason) {
            size_t rl = strlen(reason);
            if (rl > sizeof p - 2) rl = sizeof p - 2;
            memcpy(p + 2, reason, rl);
            n += rl;
        }
    }
    queue_frame(w, WS_CLOSE, p, n);
}

static int inner_failed(net_conn *c)
{
    net_conn *in = c->inner;
    return net_fail(c, in->err, "%s", net_why(in)[0] ? net_why(in) : "the connection failed");
}

/* Write the output buffer through the inner connection. */
static int drain(net_conn *c)
{
    ws_impl *w = c->impl;
    while (w->opos < w->olen) {
        ssize_t r = net_write(c->inner, w->out + w->opos, w->olen - w->opos);
        if (r > 0) {
            w->opos += (size_t)r;
            continue;
        }
        if (r == NET_AGAIN) {
            c->want = c->inner->want;
            return NET_AGAIN;
        }
        return inner_failed(c);
    }
    w->opos = w->olen = 0;
    int r = net_flush(c->inner);
    if (r == NET_AGAIN) c->want = c->inner->want;
    else if (r == NET_FAIL) return inner_failed(c);
    return r;
}

/* Read more from the inner connection: >0, 0 at its end, NET_AGAIN,
 * NET_FAIL. */
static ssize_t fill(net_conn *c)
{
    ws_impl *w = c->impl;
    if (w->inpos) {
        memmove(w->in, w->in + w->inpos, w->inlen - w->inpos);
        w->inlen -= w->inpos;
        w->inpos = 0;
    }
    if (w->inlen == w->incap) return net_fail(c, ENOBUFS, "WebSocket input buffer full");
    ssize_t r = net_read(c->inner, w->in + w->inlen, w->incap - w->inlen);
    if (r > 0) w->inlen += (size_t)r;
    else if (r == NET_AGAIN) c->want = c->inner->want;
    else if (r == NET_FAIL) return inner_failed(c);
    return r;
}

static void refuse(net_conn *c, int status, const char *why)
{
    ws_impl *w = c->impl;
    char buf[512];
    size_t n = ws_response_error(buf, sizeof buf, status, why);
    memcpy(out_room(w, n), buf, n);
    w->olen += n;
    w->refuse_status = status;
    snprintf(w->refuse_why, sizeof w->refuse_why, "%s", why);
    w->state = ST_REFUSE;
}

static int server_head(net_conn *c)
{
    ws_impl *w = c->impl;
    ws_http h;
    for (;;) {
        int r = ws_http_parse(w->in + w->inpos, w->inlen - w->inpos, w->o.max_header, 0, &h);
        if (r == WS_BAD) {
            refuse(c, h.status, h.why);
            return 0;
        }
        if (r == WS_OK) break;
        ssize_t n = fill(c);
        if (n == 0) {
            w->state = ST_FAILED;
            return net_fail(c, ECONNRESET, "the peer closed before the end of its HTTP request");
        }
        if (n < 0) {
            if (n == NET_FAIL) w->state = ST_FAILED;
            return (int)n;
        }
    }
    ws_upgrade u;
    if (ws_upgrade_check(&h, w->o.require_protocol, &u) != WS_OK) {
        refuse(c, u.status, u.why);
        return 0;
    }
    w->path = dup_str(h.path, h.path_len);
    w->chosen = u.protocol;
    char buf[256];
    size_t n = ws_response_101(buf, sizeof buf, &u);
    memcpy(out_room(w, n), buf, n);
    w->olen += n;
    w->inpos += h.len;          /* frames may follow the head at once */
    w->state = ST_SEND_101;
    return 0;
}

static int client_head(net_conn *c)
{
    ws_impl *w = c->impl;
    for (;;) {
        size_t used = 0;
        char why[160];
        int r = ws_client_check(w->in + w->inpos, w->inlen - w->inpos, w->key, w->protocol, &used, why, sizeof why);
        if (r == WS_BAD) {
            w->state = ST_FAILED;
            return net_fail(c, EPROTO, "%s", why);
        }
        if (r == WS_OK) {
            w->inpos += used;
            w->chosen = w->protocol;
            w->state = ST_OPEN;
            return 0;
        }
        ssize_t n = fill(c);
        if (n == 0) {
            w->state = ST_FAILED;
            return net_fail(c, ECONNRESET, "the server closed before answering the WebSocket upgrade");
        }
        if (n < 0) {
            if (n == NET_FAIL) w->state = ST_FAILED;
            return (int)n;
        }
    }
}

static int ws_handshake(net_conn *c)
{
    ws_impl *w = c->impl;
    int r;
    for (;;) {
        switch (w->state) {
        case ST_INNER:
            r = net_handshake(c->inner);
            if (r == NET_AGAIN) {
                c->want = c->inner->want;
                return r;
            }
            if (r == NET_FAIL) {
                w->state = ST_FAILED;
                return inner_failed(c);
            }
            if (w->server) {
                w->state = ST_READ_HEAD;
            } else {
                char buf[1024];
                size_t n = ws_client_request(buf, sizeof buf, w->host, w->path, w->protocol, w->key);
                if (!n) {
                    w->state = ST_FAILED;
                    return net_fail(c, EINVAL, "WebSocket request too long (host or path)");
                }
                memcpy(out_room(w, n), buf, n);
                w->olen += n;
                w->state = ST_SEND_REQUEST;
            }
            break;
        case ST_SEND_REQUEST:
        case ST_SEND_101:
            r = drain(c);
            if (r == NET_AGAIN) return r;
            if (r == NET_FAIL) {
                w->state = ST_FAILED;
                return r;
            }
            if (w->state == ST_SEND_101) {
                w->state = ST_OPEN;
                return 0;
            }
            w->state = ST_READ_HEAD;
            break;
        case ST_READ_HEAD:
            r = w->server ? server_head(c) : client_head(c);
            if (r == NET_AGAIN || r == NET_FAIL) return r;
            break;
        case ST_REFUSE:
            r = drain(c);
            if (r == NET_AGAIN) return r;
            w->state = ST_FAILED;
            return net_fail(c, EPROTO, "refused the WebSocket upgrade: HTTP %d, %s", w->refuse_status,
                            w->refuse_why);
        case ST_OPEN:
            return 0;
        default:
            if (!net_why(c)[0]) net_fail(c, EPIPE, "the WebSocket is closed");
            return NET_FAIL;
        }
    }
}

/* A protocol error: close with the RFC's code, try to send it, fail. */
static int protocol_error(net_conn *c)
{
    ws_impl *w = c->impl;
    queue_close(w, (unsigned)w->dec.code, w->dec.why);
    drain(c);
    w->state = ST_FAILED;
    return net_fail(c, EPROTO, "WebSocket protocol error: %s (close %d)", w->dec.why, w->dec.code);
}

static ssize_t ws_read(net_conn *c, void *buf, size_t n)
{
    ws_impl *w = c->impl;
    if (w->state == ST_DONE) {
        w->eof_told = 1;
        return 0;
    }
    if (w->state != ST_OPEN) {
        if (!net_why(c)[0]) net_fail(c, ENOTCONN, "WebSocket read before the handshake");
        return NET_FAIL;
    }
    if (n == 0) return 0;
    size_t got = 0;
    for (;;) {
        ws_event ev;
        ssize_t u = ws_decode(&w->dec, w->in + w->inpos, w->inlen - w->inpos, n - got, &ev);
        if (u < 0) {
            /* Hand out the good bytes before the bad frame first (whole
             * MQTT packets, maybe); the failure sticks for the next call,
             * which pending() announces. */
            if (got) return (ssize_t)got;
            return protocol_error(c);
        }
        w->inpos += (size_t)u;
        switch (ev.type) {
        case WS_EV_DATA:
            memcpy((uint8_t *)buf + got, ev.data, ev.len);
            got += ev.len;
            if (got == n) return (ssize_t)got;
            continue;
        case WS_EV_PING:
            if (!w->close_sent) {
                queue_frame(w, WS_PONG, ev.data, ev.len);
                drain(c);
            }
            continue;
        case WS_EV_PONG:
            continue;
        case WS_EV_CLOSE:
            /* Answer with the peer's own code (RFC 6455 5.5.1), then
             * the stream has ended. */
            w->peer_code = ev.close_code;
            queue_close(w, ev.close_code, NULL);
            drain(c);
            w->state = ST_DONE;
            return (ssize_t)got;
        default:
            break;
        }
        if (u > 0) continue;
        if (got) return (ssize_t)got;
        ssize_t r = fill(c);
        if (r > 0) continue;
        if (r == 0) {
            /* The TCP stream ended without a close frame: an end all
             * the same, as MQTT sees it. */
            w->state = ST_DONE;
            w->eof_told = 1;
            return 0;
        }
        if (r == NET_FAIL) w->state = ST_FAILED;
        return r;
    }
}

static ssize_t ws_write(net_conn *c, const void *buf, size_t n)
{
    ws_impl *w = c->impl;
    if (w->state == ST_FAILED) return NET_FAIL;
    if (w->state != ST_OPEN && w->state != ST_DONE)
        return net_fail(c, ENOTCONN, "WebSocket write before the handshake");
    if (w->close_sent) return net_fail(c, EPIPE, "WebSocket write after the close frame");
    if (n == 0) return 0;
    if (w->olen - w->opos >= OUT_HIGH) {
        int r = drain(c);
        if (r == NET_FAIL) return r;
        if (w->olen - w->opos >= OUT_HIGH) {
            c->want = r == NET_AGAIN ? c->inner->want : NET_OUT;
            return NET_AGAIN;
        }
    }
    size_t room = OUT_HIGH - (w->olen - w->opos);
    if (n > room) n = room;
    queue_frame(w, WS_BINARY, buf, n);
    return (ssize_t)n;
}

static int ws_flush(net_conn *c)
{
    ws_impl *w = c->impl;
    if (w->opos == w->olen && w->state == ST_FAILED) return NET_FAIL;
    return drain(c);
}

static size_t ws_pending(net_conn *c)
{
    ws_impl *w = c->impl;
    /* A close decoded behind data: the end is still to be read. */
    if (w->state == ST_DONE) return !w->eof_told;
    if (w->state != ST_OPEN) return 0;
    if (w->dec.code) return 1;          /* a protocol error still to report */
    return ws_decode_ready(&w->dec, w->in + w->inpos, w->inlen - w->inpos) + net_pending(c->inner);
}

static int ws_shutdown(net_conn *c)
{
    ws_impl *w = c->impl;
    if (w->state == ST_OPEN || w->state == ST_DONE) queue_close(w, WS_CLOSE_NORMAL, NULL);
    int r = drain(c);
    if (r != 0) return r;
    if (!w->inner_shut) {
        w->inner_shut = 1;
        r = net_shutdown(c->inner);
        if (r == NET_AGAIN) c->want = c->inner->want;
        else if (r == NET_FAIL) return inner_failed(c);
    }
    return r;
}

static void ws_close(net_conn *c, int reset)
{
    ws_impl *w = c->impl;
    if (w) {
        free(w->in);
        free(w->out);
        free(w->host);
        free(w->path);
        free(w->protocol);
        free(w);
    }
    net_close(c->inner, reset);
    net_conn_free(c);
}

static const net_conn_ops ws_tcp_ops = {
    "ws", ws_handshake, ws_read, ws_write, ws_flush, ws_pending, ws_shutdown, ws_close
};
static const net_conn_ops ws_tls_ops = {
    "wss", ws_handshake, ws_read, ws_write, ws_flush, ws_pending, ws_shutdown, ws_close
};

static net_conn *ws_new(net_conn *inner, int server, const ws_opts *o, size_t incap)
{
    if (!inner) return NULL;
    ws_impl *w = calloc(1, sizeof *w);
    if (!w) abort();
    if (o) w->o = *o;
    if (!w->o.max_header) w->o.max_header = WS_MAX_HEADER;
    w->o.protocol = NULL;
    w->server = server;
    w->incap = incap > IN_SIZE ? incap : IN_SIZE;
    if (w->incap < w->o.max_header + 1024) w->incap = w->o.max_header + 1024;
    w->in = malloc(w->incap);
    if (!w->in) abort();
    ws_decoder_init(&w->dec, server, w->o.max_message, w->o.text_ok);
    net_conn *c = net_conn_new(net_tls_ssl(inner) ? &ws_tls_ops : &ws_tcp_ops, inner->fd);
    c->inner = inner;
    c->impl = w;
    return c;
}

net_conn *ws_server(net_conn *inner, const ws_opts *o)
{
    return ws_new(inner, 1, o, 0);
}

net_conn *ws_server_accepted(net_conn *inner, const void *bytes, size_t len, const ws_opts *o)
{
    net_conn *c = ws_new(inner, 1, o, len + 1024);
    if (!c) return NULL;
    ws_impl *w = c->impl;
    memcpy(w->in, bytes, len);
    w->inlen = len;
    return c;
}

net_conn *ws_client(net_conn *inner, const char *host, const char *path, const ws_opts *o)
{
    net_conn *c = ws_new(inner, 0, o, 0);
    if (!c) return NULL;
    ws_impl *w = c->impl;
    const char *p = o && o->protocol ? o->protocol : "mqtt";
    if (!host || !*host) host = "localhost";
    w->host = dup_str(host, strlen(host));
    w->path = dup_str(path && *path ? path : "/", strlen(path && *path ? path : "/"));
    w->protocol = *p ? dup_str(p, strlen(p)) : NULL;
    return c;
}

const char *ws_path(const net_conn *c)
{
    return ws_is(c) ? ((ws_impl *)c->impl)->path : NULL;
}

const char *ws_protocol(const net_conn *c)
{
    return ws_is(c) ? ((ws_impl *)c->impl)->chosen : NULL;
}

size_t ws_unsent(const net_conn *c)
{
    if (!ws_is(c)) return 0;
    ws_impl *w = c->impl;
    return w->olen - w->opos;
}

unsigned ws_peer_close_code(const net_conn *c)
{
    return ws_is(c) ? ((ws_impl *)c->impl)->peer_code : 0;
}

int ws_ping(net_conn *c, const void *payload, size_t len)
{
    if (!ws_is(c)) return NET_FAIL;
    ws_impl *w = c->impl;
    if (len > 125) return net_fail(c, EINVAL, "a ping payload longer than 125 bytes");
    if (w->state != ST_OPEN || w->close_sent) return net_fail(c, ENOTCONN, "the WebSocket is not open");
    queue_frame(w, WS_PING, payload, len);
    return 0;
}

int ws_send_message(net_conn *c, int opcode, const void *payload, size_t len)
{
    if (!ws_is(c)) return NET_FAIL;
    ws_impl *w = c->impl;
    if (opcode != WS_BINARY && opcode != WS_TEXT) return net_fail(c, EINVAL, "not a data opcode");
    if (w->state != ST_OPEN || w->close_sent) return net_fail(c, ENOTCONN, "the WebSocket is not open");
    /* One frame, whatever its size: write() would cut a large one at
     * OUT_HIGH into several messages. The caller bounds its backlog. */
    queue_frame(w, opcode, payload, len);
    return 0;
}
