/*
 * packet.c - MQTT 3.1, 3.1.1 and 5.0 packet framing and decoding for the
 * proxy and the trace, and 3.1.1 encoding for the load generator.
 *
 * Every byte comes from an untrusted peer (a student's program), so all
 * reads go through a small cursor (struct rd) that checks each length
 * against the bytes left before touching them. Nothing is allocated while
 * decoding: strings in struct pkt point into the caller's buffer. v5
 * properties are skipped, bounds-checked, not interpreted: the trace only
 * shows the fields every lab cares about.
 */
#include "packet.h"
#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const type_names[16] = {
    "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
    "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
    "PINGRESP", "DISCONNECT", "AUTH"
};

const char *pkt_type_name(int type)
{
    if (type < 0 || type > 15) return "UNKNOWN";
    return type_names[type];
}

int pkt_type_from_name(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < 16; i++)
        if (strcasecmp(name, type_names[i]) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------------
 * Framing
 */

/*
 * The fixed header: PKT_COMPLETE with *hlen and *rem, PKT_NEED_MORE, or
 * PKT_EMALFORMED. A 4th length byte with its continuation bit set is
 * already malformed, so we never wait for a 5th.
 */
static int read_fixed(const uint8_t *buf, size_t len, size_t *hlen, size_t *rem, char *err)
{
    if (len < 1) return PKT_NEED_MORE;
    if ((buf[0] >> 4) == PKT_RESERVED)
        return kit_seterr(err, PKT_EMALFORMED, "packet type 0 is reserved (first byte 0x%02x)", buf[0]);
    size_t value = 0;
    for (size_t i = 0; i < 4; i++) {
        if (1 + i >= len) return PKT_NEED_MORE;
        uint8_t b = buf[1 + i];
        value |= (size_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *hlen = 2 + i;
            *rem = value;
            return PKT_COMPLETE;
        }
    }
    return kit_seterr(err, PKT_EMALFORMED, "%s: the remaining length uses more than 4 bytes",
                      type_names[buf[0] >> 4]);
}

int pkt_frame(const uint8_t *buf, size_t len, size_t max, size_t *size, char *err)
{
    if (size) *size = 0;
    if (!buf || len == 0) return PKT_NEED_MORE;
    size_t hlen = 0, rem = 0;
    int rc = read_fixed(buf, len, &hlen, &rem, err);
    if (rc != PKT_COMPLETE) return rc;
    size_t total = hlen + rem;
    /* Decided on the header alone: the body of a huge packet may never
     * fit in the buffer, so waiting for it would be a memory leak. */
    if (max && total > max)
        return kit_seterr(err, PKT_ETOOBIG, "%s of %zu bytes is larger than the limit (%zu bytes)",
                          type_names[buf[0] >> 4], total, max);
    if (len < total) return PKT_NEED_MORE;
    if (size) *size = total;
    return PKT_COMPLETE;
}

/* ---------------------------------------------------------------------
 * Decoding
 */

/* A bounds-checked cursor over one packet. Each reader returns 0, or -1
 * with err set (naming the packet and the field). */
typedef struct {
    const uint8_t *buf;
    size_t pos, end;
    int type;
    char *err;
} rd;

static int bad(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(rd *r, const char *fmt, ...)
{
    if (r->err) {
        char msg[KIT_ERRLEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        kit_seterr(r->err, KIT_EINVAL, "%s: %s", pkt_type_name(r->type), msg);
    }
    return -1;
}

static size_t left(const rd *r) { return r->end - r->pos; }

static int rd_u8(rd *r, uint8_t *v, const char *what)
{
    *v = 0;
    if (left(r) < 1) return bad(r, "the packet ends before the %s", what);
    *v = r->buf[r->pos++];
    return 0;
}

static int rd_u16(rd *r, unsigned *v, const char *what)
{
    *v = 0;
    if (left(r) < 2) return bad(r, "the packet ends before the %s (%zu byte(s) left, 2 needed)", what, left(r));
    *v = (unsigned)r->buf[r->pos] << 8 | r->buf[r->pos + 1];
    r->pos += 2;
    return 0;
}

/* A 2-byte length and that many bytes (UTF-8 string or binary data). */
static int rd_bin(rd *r, pkt_bytes *out, const char *what)
{
    unsigned n;
    if (rd_u16(r, &n, what) < 0) return -1;
    if (n > left(r))
        return bad(r, "the %s is %u bytes long but only %zu byte(s) are left", what, n, left(r));
    if (out) {
        out->p = r->buf + r->pos;
        out->len = n;
    }
    r->pos += n;
    return 0;
}

/* v5 properties: a variable byte integer and that many bytes, skipped. */
static int rd_props(rd *r, const char *what)
{
    size_t n = 0;
    for (int i = 0;; i++) {
        if (i == 4) return bad(r, "the length of the %s uses more than 4 bytes", what);
        uint8_t b;
        if (rd_u8(r, &b, what) < 0) return -1;
        n |= (size_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) break;
    }
    if (n > left(r))
        return bad(r, "the %s are %zu bytes long but only %zu byte(s) are left", what, n, left(r));
    r->pos += n;
    return 0;
}

static int rd_done(rd *r)
{
    if (left(r)) return bad(r, "%zu unexpected byte(s) after the end of the packet", left(r));
    return 0;
}

static int rd_packet_id(rd *r, pkt *p)
{
    unsigned id;
    if (rd_u16(r, &id, "packet id") < 0) return -1;
    if (id == 0) return bad(r, "packet id 0 is not allowed");
    p->packet_id = (int)id;
    return 0;
}

static int bytes_is(pkt_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && memcmp(b.p, s, n) == 0;
}

/* A topic name (PUBLISH, will): wildcards belong to filters only. */
static int check_topic(rd *r, pkt_bytes t, const char *what, int allow_empty)
{
    if (t.len == 0 && !allow_empty) return bad(r, "the %s is empty", what);
    if (t.len && (memchr(t.p, '+', t.len) || memchr(t.p, '#', t.len)))
        return bad(r, "the %s contains a wildcard (+ or #)", what);
    return 0;
}

static int dec_connect(rd *r, pkt *p)
{
    uint8_t level, cf;
    unsigned ka;
    if (rd_bin(r, &p->proto_name, "protocol name") < 0) return -1;
    if (rd_u8(r, &level, "protocol level") < 0) return -1;
    p->level = level;
    int mqtt = bytes_is(p->proto_name, "MQTT"), isdp = bytes_is(p->proto_name, "MQIsdp");
    if (!mqtt && !isdp)
        return bad(r, "unknown protocol name (%zu bytes; expected MQTT or MQIsdp)", p->proto_name.len);
    if (isdp && level != PKT_V31)
        return bad(r, "protocol name MQIsdp with level %d (MQTT 3.1 is level 3)", level);
    if (mqtt && level != PKT_V311 && level != PKT_V5)
        return bad(r, "protocol name MQTT with level %d (3.1.1 is 4, 5.0 is 5)", level);
    if (rd_u8(r, &cf, "connect flags") < 0) return -1;
    if (rd_u16(r, &ka, "keep alive") < 0) return -1;
    p->keepalive = (int)ka;
    p->clean = (cf >> 1) & 1;
    p->will = (cf >> 2) & 1;
    p->will_qos = (cf >> 3) & 3;
    p->will_retain = (cf >> 5) & 1;
    p->has_password = (cf >> 6) & 1;
    p->has_username = (cf >> 7) & 1;
    if (cf & 1) return bad(r, "the reserved connect flag (bit 0) is set");
    if (p->will_qos == 3) return bad(r, "will QoS 3 does not exist");
    if (!p->will && (p->will_qos || p->will_retain))
        return bad(r, "will QoS or will retain set without the will flag");
    /* 3.1.1 forbids a password without a user name; 5.0 allows it (an
     * authentication token, say). */
    if (level != PKT_V5 && p->has_password && !p->has_username)
        return bad(r, "password flag set without the user name flag");
    if (level == PKT_V5 && rd_props(r, "CONNECT properties") < 0) return -1;
    if (rd_bin(r, &p->client_id, "client id") < 0) return -1;
    if (p->will) {
        if (level == PKT_V5 && rd_props(r, "will properties") < 0) return -1;
        if (rd_bin(r, &p->will_topic, "will topic") < 0) return -1;
        if (check_topic(r, p->will_topic, "will topic", 0) < 0) return -1;
        if (rd_bin(r, &p->will_payload, "will payload") < 0) return -1;
    }
    if (p->has_username && rd_bin(r, &p->username, "user name") < 0) return -1;
    if (p->has_password && rd_bin(r, NULL, "password") < 0) return -1;
    return rd_done(r);
}

static int dec_connack(rd *r, pkt *p)
{
    uint8_t af, rc;
    if (rd_u8(r, &af, "acknowledge flags") < 0) return -1;
    p->session_present = af & 1;
    /* In 3.1 the whole byte was "reserved, unused": do not judge it. */
    if (p->level != PKT_V31 && (af & 0xfe))
        return bad(r, "reserved acknowledge flags are set (0x%02x)", af);
    if (rd_u8(r, &rc, "return code") < 0) return -1;
    p->reason = rc;
    if (p->level == PKT_V5 && rd_props(r, "CONNACK properties") < 0) return -1;
    return rd_done(r);
}

static int dec_publish(rd *r, pkt *p)
{
    p->qos = (p->flags >> 1) & 3;
    p->dup = (p->flags >> 3) & 1;
    p->retain = p->flags & 1;
    if (p->qos == 3) return bad(r, "QoS 3 does not exist (flags 0x%x)", p->flags);
    if (p->qos == 0 && p->dup) return bad(r, "DUP set on a QoS 0 message");
    if (rd_bin(r, &p->topic, "topic") < 0) return -1;
    /* v5: an empty topic goes with a topic alias property. */
    if (check_topic(r, p->topic, "topic", p->level == PKT_V5) < 0) return -1;
    if (p->qos > 0 && rd_packet_id(r, p) < 0) return -1;
    if (p->level == PKT_V5 && rd_props(r, "PUBLISH properties") < 0) return -1;
    p->payload.p = r->buf + r->pos;
    p->payload.len = left(r);
    r->pos = r->end;
    return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. In v5 the reason code and the
 * properties may be left out (remaining length 2 or 3). */
static int dec_ack(rd *r, pkt *p)
{
    if (rd_packet_id(r, p) < 0) return -1;
    if (p->level == PKT_V5 && left(r)) {
        uint8_t rc;
        if (rd_u8(r, &rc, "reason code") < 0) return -1;
        p->reason = rc;
        if (left(r) && rd_props(r, "properties") < 0) return -1;
    }
    return rd_done(r);
}

static int dec_subscribe(rd *r, pkt *p)
{
    int v5 = p->level == PKT_V5;
    if (rd_packet_id(r, p) < 0) return -1;
    if (v5 && rd_props(r, "SUBSCRIBE properties") < 0) return -1;
    if (!left(r)) return bad(r, "no topic filter");
    while (left(r)) {
        pkt_bytes f;
        uint8_t opt;
        if (rd_bin(r, &f, "topic filter") < 0) return -1;
        if (f.len == 0) return bad(r, "topic filter %d is empty", p->nfilters + 1);
        if (rd_u8(r, &opt, "subscription options") < 0) return -1;
        if ((opt & 3) == 3) return bad(r, "QoS 3 requested for filter %d", p->nfilters + 1);
        if (v5 && (opt & 0xc0))
            return bad(r, "reserved subscription option bits set (0x%02x)", opt);
        if (v5 && ((opt >> 4) & 3) == 3)
            return bad(r, "retain handling 3 does not exist (options 0x%02x)", opt);
        if (!v5 && (opt & 0xfc))
            return bad(r, "reserved bits set in the requested QoS byte (0x%02x)", opt);
        if (p->nfilters < PKT_MAX_FILTERS) {
            p->filters[p->nfilters].filter = f;
            p->filters[p->nfilters].qos = opt & 3;
        }
        p->nfilters++;
    }
    return 0;
}

static int dec_unsubscribe(rd *r, pkt *p)
{
    if (rd_packet_id(r, p) < 0) return -1;
    if (p->level == PKT_V5 && rd_props(r, "UNSUBSCRIBE properties") < 0) return -1;
    if (!left(r)) return bad(r, "no topic filter");
    while (left(r)) {
        pkt_bytes f;
        if (rd_bin(r, &f, "topic filter") < 0) return -1;
        if (f.len == 0) return bad(r, "topic filter %d is empty", p->nfilters + 1);
        if (p->nfilters < PKT_MAX_FILTERS) {
            p->filters[p->nfilters].filter = f;
            p->filters[p->nfilters].qos = -1;
        }
        p->nfilters++;
    }
    return 0;
}

/* SUBACK, and v5 UNSUBACK: one code per filter. A 3.1.1 UNSUBACK is the
 * packet id alone. */
static int dec_suback(rd *r, pkt *p)
{
    if (rd_packet_id(r, p) < 0) return -1;
    if (p->type == PKT_UNSUBACK && p->level != PKT_V5) return rd_done(r);
    if (p->level == PKT_V5 && rd_props(r, "properties") < 0) return -1;
    if (!left(r)) return bad(r, "no return code");
    while (left(r)) {
        uint8_t c = r->buf[r->pos++];
        if (p->ncodes < PKT_MAX_FILTERS) p->codes[p->ncodes] = c;
        p->ncodes++;
    }
    return 0;
}

/* v5 DISCONNECT and AUTH: reason code and properties are both optional. */
static int dec_reason_props(rd *r, pkt *p)
{
    if (left(r)) {
        uint8_t rc;
        if (rd_u8(r, &rc, "reason code") < 0) return -1;
        p->reason = rc;
        if (left(r) && rd_props(r, "properties") < 0) return -1;
    }
    return rd_done(r);
}

static int dec_empty(rd *r)
{
    if (left(r)) return bad(r, "the remaining length must be 0, not %zu", left(r));
    return 0;
}

int pkt_decode(const uint8_t *buf, size_t len, int level, pkt *p, char *err)
{
    if (!p) return kit_seterr(err, KIT_EINVAL, "no packet to decode into");
    memset(p, 0, sizeof *p);
    p->packet_id = -1;
    p->reason = -1;
    if (!buf || len == 0) return kit_seterr(err, KIT_EINVAL, "empty packet");
    p->type = buf[0] >> 4;
    p->flags = buf[0] & 0x0f;

    size_t hlen = 0, rem = 0;
    int frc = read_fixed(buf, len, &hlen, &rem, err);
    if (frc == PKT_EMALFORMED) return KIT_EINVAL;
    if (frc == PKT_NEED_MORE)
        return kit_seterr(err, KIT_EINVAL, "%s: the remaining length is cut short (%zu byte(s))",
                          type_names[p->type], len);
    p->header_len = hlen;
    p->remaining = rem;
    p->size = hlen + rem;
    if (p->size != len)
        return kit_seterr(err, KIT_EINVAL, "%s: the header announces %zu bytes but %zu were given",
                          type_names[p->type], p->size, len);

    /* A connection's level only matters for non-CONNECT packets; 0 (not
     * known yet) and anything odd read as 3.1.1. Kept in p->level so that
     * pkt_summary() knows how to print reason codes. */
    if (level != PKT_V31 && level != PKT_V5) level = PKT_V311;
    p->level = p->type == PKT_CONNECT ? 0 : level;

    rd r = { buf, hlen, len, p->type, err };
    if (p->type == PKT_PUBLISH) {
        if (dec_publish(&r, p) < 0) return KIT_EINVAL;
        return KIT_OK;
    }
    int want = (p->type == PKT_PUBREL || p->type == PKT_SUBSCRIBE || p->type == PKT_UNSUBSCRIBE) ? 2 : 0;
    if (p->flags != want)
        return kit_seterr(err, KIT_EINVAL, "%s: fixed header flags must be 0x%x, not 0x%x",
                          type_names[p->type], want, p->flags);

    int rc;
    switch (p->type) {
    case PKT_CONNECT: rc = dec_connect(&r, p); break;
    case PKT_CONNACK: rc = dec_connack(&r, p); break;
    case PKT_PUBACK: case PKT_PUBREC: case PKT_PUBREL: case PKT_PUBCOMP:
        rc = dec_ack(&r, p); break;
    case PKT_SUBSCRIBE: rc = dec_subscribe(&r, p); break;
    case PKT_UNSUBSCRIBE: rc = dec_unsubscribe(&r, p); break;
    case PKT_SUBACK: case PKT_UNSUBACK: rc = dec_suback(&r, p); break;
    case PKT_PINGREQ: case PKT_PINGRESP: rc = dec_empty(&r); break;
    case PKT_DISCONNECT:
        rc = level == PKT_V5 ? dec_reason_props(&r, p) : dec_empty(&r);
        break;
    case PKT_AUTH:
        rc = level == PKT_V5 ? dec_reason_props(&r, p)
                             : bad(&r, "AUTH exists only in MQTT 5.0");
        break;
    default: rc = bad(&r, "unknown packet type"); break;   /* unreachable: type 0 fails framing */
    }
    return rc < 0 ? KIT_EINVAL : KIT_OK;
}

/* ---------------------------------------------------------------------
 * Summary
 */

/* An output buffer that takes whole pieces or nothing, so a truncated
 * summary never ends in half an escape or half a UTF-8 character. */
typedef struct {
    char *out;
    size_t cap, len;
    int full;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->full) return;
    if (n >= b->cap - b->len) { b->full = 1; return; }
    memcpy(b->out + b->len, s, n);
    b->len += n;
    b->out[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the well-formed, printable UTF-8 character at p (2..4
 * bytes), or 0. C1 controls (U+0080..U+009F) count as non-printable. */
static size_t utf8_char(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t k;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) k = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;       /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (n < k || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    if (c == 0xc2 && p[1] < 0xa0) return 0;
    return k;
}

static int printable(pkt_bytes s)
{
    for (size_t i = 0; i < s.len;) {
        uint8_t c = s.p[i];
        if (c >= 0x20 && c < 0x7f) { i++; continue; }
        size_t k = c >= 0x80 ? utf8_char(s.p + i, s.len - i) : 0;
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Printable ASCII and well-formed UTF-8 as they are; '\' doubled (and '"'
 * escaped inside quotes) so that \xNN stays unambiguous; anything else
 * as \xNN. */
static void sb_esc(sbuf *b, const uint8_t *p, size_t n, int quoted)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t k;
        if (c == '\\') { sb_put(b, "\\\\", 2); i++; }
        else if (c == '"' && quoted) { sb_put(b, "\\\"", 2); i++; }
        else if (c >= 0x20 && c < 0x7f) { sb_put(b, (const char *)p + i, 1); i++; }
        else if (c >= 0x80 && (k = utf8_char(p + i, n - i)) > 0) { sb_put(b, (const char *)p + i, k); i += k; }
        else { sb_printf(b, "\\x%02x", c); i++; }
    }
}

#define SUM_STR_MAX 48      /* longer strings are shortened */
#define SUM_PAYLOAD_MAX 40  /* longer payloads are only counted */
#define ELLIPSIS "\xe2\x80\xa6"

/*
 * A string shortened to about SUM_STR_MAX bytes. Topics keep their end
 * (".../norte/estado" says more than "acme/v1/planta-1/..."); client ids
 * keep their start. Cuts move to a UTF-8 character boundary.
 */
static void sb_name(sbuf *b, pkt_bytes s, int keep_end)
{
    if (s.len == 0) { sb_str(b, "\"\""); return; }
    if (s.len <= SUM_STR_MAX) { sb_esc(b, s.p, s.len, 0); return; }
    size_t keep = SUM_STR_MAX - 1;
    if (keep_end) {
        size_t start = s.len - keep;
        for (int i = 0; i < 3 && start < s.len && (s.p[start] & 0xc0) == 0x80; i++) start++;
        sb_str(b, ELLIPSIS);
        sb_esc(b, s.p + start, s.len - start, 0);
    } else {
        size_t end = keep;
        for (int i = 0; i < 3 && end > 0 && (s.p[end] & 0xc0) == 0x80; i++) end--;
        sb_esc(b, s.p, end, 0);
        sb_str(b, ELLIPSIS);
    }
}

static void sb_quoted(sbuf *b, pkt_bytes s)
{
    sb_str(b, "\"");
    sb_esc(b, s.p, s.len, 1);
    sb_str(b, "\"");
}

static void sb_codes(sbuf *b, const pkt *p)
{
    if (p->ncodes <= 0) return;
    int kept = p->ncodes < PKT_MAX_FILTERS ? p->ncodes : PKT_MAX_FILTERS;
    sb_str(b, " [");
    for (int i = 0; i < kept; i++) {
        if (p->level == PKT_V5) sb_printf(b, i ? " 0x%02x" : "0x%02x", p->codes[i]);
        else sb_printf(b, i ? " %u" : "%u", p->codes[i]);
    }
    sb_str(b, "]");
    if (p->ncodes > kept) sb_printf(b, " +%d more", p->ncodes - kept);
}

/*
 * The shapes (fields the packet lacks are left out):
 *   CONNECT id=<client id> v<level> clean=<0|1> ka=<s>[ will=<topic> <wp> r<0|1> q<n>][ user][ pass]
 *       <wp> is the will payload quoted ("offline") when it is at most 40
 *       bytes of printable text (empty: ""), else its size ("300 B").
 *   CONNACK rc=<n> sp=<0|1>                    v5: rc=0x<hh>
 *   PUBLISH q<n>[ dup=1] r<0|1> id=<n|-> <topic> <N> B[ "<payload>"]
 *       the payload is quoted only when it is 1..40 bytes of printable text.
 *   PUBACK id=<n>[ rc=0x<hh>]                  same for PUBREC, PUBREL, PUBCOMP
 *   SUBSCRIBE id=<n> <filter>:q<n> ...[ +N more]
 *   UNSUBSCRIBE id=<n> <filter> ...[ +N more]
 *   SUBACK id=<n> [<code> ...]                 v5: codes as 0x<hh>
 *   UNSUBACK id=<n>                            v5: plus [0x<hh> ...]
 *   PINGREQ, PINGRESP, DISCONNECT[ rc=0x<hh>], AUTH[ rc=0x<hh>]
 * Printable means printable ASCII or well-formed UTF-8; other bytes show
 * as \xNN, and '\' as "\\" ('"' as \" inside quotes). Names longer than
 * 48 bytes are shortened with "…": topics and filters keep their end,
 * client ids their start. An empty topic (v5 alias) shows as "". A
 * summary that does not fit in out is cut between two pieces, always
 * NUL-terminated.
 */
char *pkt_summary(const pkt *p, char *out, size_t outlen)
{
    if (!out || outlen == 0) return out;
    out[0] = '\0';
    if (!p) return out;
    sbuf b = { out, outlen, 0, 0 };
    int v5 = p->level == PKT_V5;
    sb_str(&b, pkt_type_name(p->type));
    switch (p->type) {
    case PKT_CONNECT:
        sb_str(&b, " id=");
        sb_name(&b, p->client_id, 0);
        sb_printf(&b, " v%d clean=%d ka=%d", p->level, p->clean, p->keepalive);
        if (p->will) {
            sb_str(&b, " will=");
            sb_name(&b, p->will_topic, 1);
            sb_str(&b, " ");
            if (p->will_payload.len <= SUM_PAYLOAD_MAX && printable(p->will_payload))
                sb_quoted(&b, p->will_payload);
            else
                sb_printf(&b, "%zu B", p->will_payload.len);
            sb_printf(&b, " r%d q%d", p->will_retain, p->will_qos);
        }
        if (p->has_username) sb_str(&b, " user");
        if (p->has_password) sb_str(&b, " pass");
        break;
    case PKT_CONNACK:
        if (p->reason >= 0) sb_printf(&b, v5 ? " rc=0x%02x" : " rc=%d", p->reason);
        sb_printf(&b, " sp=%d", p->session_present);
        break;
    case PKT_PUBLISH:
        sb_printf(&b, " q%d", p->qos);
        if (p->dup) sb_str(&b, " dup=1");
        sb_printf(&b, " r%d", p->retain);
        if (p->packet_id >= 0) sb_printf(&b, " id=%d ", p->packet_id);
        else sb_str(&b, " id=- ");
        sb_name(&b, p->topic, 1);
        sb_printf(&b, " %zu B", p->payload.len);
        if (p->payload.len > 0 && p->payload.len <= SUM_PAYLOAD_MAX && printable(p->payload)) {
            sb_str(&b, " ");
            sb_quoted(&b, p->payload);
        }
        break;
    case PKT_PUBACK: case PKT_PUBREC: case PKT_PUBREL: case PKT_PUBCOMP:
        if (p->packet_id >= 0) sb_printf(&b, " id=%d", p->packet_id);
        if (p->reason >= 0) sb_printf(&b, " rc=0x%02x", p->reason);
        break;
    case PKT_SUBSCRIBE: case PKT_UNSUBSCRIBE: {
        if (p->packet_id >= 0) sb_printf(&b, " id=%d", p->packet_id);
        int kept = p->nfilters < PKT_MAX_FILTERS ? p->nfilters : PKT_MAX_FILTERS;
        for (int i = 0; i < kept; i++) {
            sb_str(&b, " ");
            sb_name(&b, p->filters[i].filter, 1);
            if (p->type == PKT_SUBSCRIBE) sb_printf(&b, ":q%d", p->filters[i].qos);
        }
        if (p->nfilters > kept) sb_printf(&b, " +%d more", p->nfilters - kept);
        break;
    }
    case PKT_SUBACK: case PKT_UNSUBACK:
        if (p->packet_id >= 0) sb_printf(&b, " id=%d", p->packet_id);
        sb_codes(&b, p);
        break;
    case PKT_DISCONNECT: case PKT_AUTH:
        if (p->reason >= 0) sb_printf(&b, " rc=0x%02x", p->reason);
        break;
    default:
        break;
    }
    return out;
}

/* ---------------------------------------------------------------------
 * Stream
 *
 * Consumed bytes are skipped by moving buf forward (off grows), not by
 * memmove: a read that brings 1000 small packets would otherwise move
 * the rest of the buffer 1000 times. The unconsumed bytes are moved back
 * to the start only when off passes half the allocation (each move is
 * then paid for by at least as many consumed bytes) or when feed needs
 * the room.
 */

void pkt_stream_init(pkt_stream *s, size_t max)
{
    if (!s) return;
    memset(s, 0, sizeof *s);
    s->max = max;
}

void pkt_stream_free(pkt_stream *s)
{
    if (!s) return;
    if (s->buf) free(s->buf - s->off);
    size_t max = s->max;
    memset(s, 0, sizeof *s);
    s->max = max;
}

static void stream_compact(pkt_stream *s)
{
    if (!s->off) return;
    uint8_t *base = s->buf - s->off;
    memmove(base, s->buf, s->len);
    s->buf = base;
    s->off = 0;
}

int pkt_stream_feed(pkt_stream *s, const uint8_t *data, size_t len)
{
    if (!s) return KIT_ERR;
    if (len == 0) return KIT_OK;
    if (!data) return KIT_ERR;
    if (len > SIZE_MAX - s->len) return KIT_ERR;
    size_t need = s->len + len;
    if (need > s->cap - s->off) {
        stream_compact(s);
        if (need > s->cap) {
            size_t ncap = s->cap ? s->cap : 4096;
            while (ncap < need) {
                if (ncap > SIZE_MAX / 2) { ncap = need; break; }
                ncap *= 2;
            }
            uint8_t *nb = realloc(s->buf, ncap);
            if (!nb) return KIT_ERR;
            s->buf = nb;
            s->cap = ncap;
        }
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return KIT_OK;
}

int pkt_stream_next(pkt_stream *s, size_t *size, char *err)
{
    if (size) *size = 0;
    if (!s) return PKT_NEED_MORE;
    return pkt_frame(s->buf, s->len, s->max, size, err);
}

void pkt_stream_consume(pkt_stream *s, size_t n)
{
    if (!s || !s->buf) return;
    if (n > s->len) n = s->len;
    s->buf += n;
    s->off += n;
    s->len -= n;
    if (s->len == 0) {
        s->buf -= s->off;
        s->off = 0;
    } else if (s->off > s->cap / 2) {
        stream_compact(s);
    }
}

/* ---------------------------------------------------------------------
 * Encoding
 *
 * Each encoder first adds up the remaining length, checks it against
 * MQTT's limit and the caller's cap, and only then writes: a packet is
 * either whole or reported as not fitting. The bytes are ours (not a
 * peer's), so the writers below need no bounds checks of their own.
 */

static size_t varint_len(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static uint8_t *put_fixed(uint8_t *p, uint8_t first, size_t rem)
{
    *p++ = first;
    do {
        uint8_t b = rem & 0x7f;
        rem >>= 7;
        *p++ = rem ? (uint8_t)(b | 0x80) : b;
    } while (rem);
    return p;
}

static uint8_t *put_u16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)(v & 0xff);
    return p + 2;
}

static uint8_t *put_bin(uint8_t *p, const void *s, size_t n)
{
    p = put_u16(p, n);
    if (n) memcpy(p, s, n);
    return p + n;
}

/* The whole size for a remaining length, or 0 past MQTT's limit. */
static size_t enc_total(size_t rem)
{
    return rem > PKT_MAX_REMAINING ? 0 : 1 + varint_len(rem) + rem;
}

/* A topic name as 3.1.1 wants it: 1..65535 bytes, no wildcard. */
static int topic_ok(const char *t, size_t *len)
{
    if (!t) return 0;
    *len = strlen(t);
    return *len > 0 && *len <= 65535 && !strpbrk(t, "+#");
}

int pkt_enc_connect(uint8_t *out, size_t cap, const pkt_connect_opts *c)
{
    if (!c || (!out && cap)) return PKT_EBADARG;
    const char *id = c->client_id ? c->client_id : "";
    size_t idl = strlen(id), ul = 0, pl = 0, wtl = 0;
    int will = c->will_topic != NULL;
    if (idl > 65535 || c->keepalive < 0 || c->keepalive > 65535) return PKT_EBADARG;
    if (c->password && !c->username) return PKT_EBADARG;
    if (c->username && (ul = strlen(c->username)) > 65535) return PKT_EBADARG;
    if (c->password && (pl = strlen(c->password)) > 65535) return PKT_EBADARG;
    if (will) {
        if (!topic_ok(c->will_topic, &wtl) || c->will_len > 65535 || (c->will_len && !c->will_payload) ||
            c->will_qos < 0 || c->will_qos > 2)
            return PKT_EBADARG;
    } else if (c->will_qos || c->will_retain) {
        return PKT_EBADARG;
    }
    /* protocol name, level, flags, keep alive; then the payload */
    size_t rem = 6 + 1 + 1 + 2 + 2 + idl;
    if (will) rem += 2 + wtl + 2 + c->will_len;
    if (c->username) rem += 2 + ul;
    if (c->password) rem += 2 + pl;
    size_t total = enc_total(rem);
    if (total > cap) return PKT_ENOSPACE;
    uint8_t flags = (uint8_t)((c->username ? 0x80 : 0) | (c->password ? 0x40 : 0) |
                              (will && c->will_retain ? 0x20 : 0) | (will ? (c->will_qos << 3) | 0x04 : 0) |
                              (c->clean ? 0x02 : 0));
    uint8_t *p = put_fixed(out, PKT_CONNECT << 4, rem);
    p = put_bin(p, "MQTT", 4);
    *p++ = PKT_V311;
    *p++ = flags;
    p = put_u16(p, (size_t)c->keepalive);
    p = put_bin(p, id, idl);
    if (will) {
        p = put_bin(p, c->will_topic, wtl);
        p = put_bin(p, c->will_payload, c->will_len);
    }
    if (c->username) p = put_bin(p, c->username, ul);
    if (c->password) p = put_bin(p, c->password, pl);
    return (int)(p - out);
}

size_t pkt_publish_size(size_t topic_len, int qos, size_t payload_len)
{
    if (qos < 0 || qos > 2 || topic_len > 65535) return 0;
    size_t head = 2 + topic_len + (qos ? 2 : 0);
    if (payload_len > PKT_MAX_REMAINING - head) return 0;
    return enc_total(head + payload_len);
}

int pkt_enc_publish(uint8_t *out, size_t cap, int qos, int retain, int dup, int packet_id,
                    const char *topic, const void *payload, size_t len)
{
    size_t tl;
    if ((!out && cap) || !topic_ok(topic, &tl) || qos < 0 || qos > 2) return PKT_EBADARG;
    if (qos > 0 && (packet_id < 1 || packet_id > 65535)) return PKT_EBADARG;
    if ((qos == 0 && dup) || (len && !payload)) return PKT_EBADARG;
    size_t total = pkt_publish_size(tl, qos, len);
    if (!total) return PKT_EBADARG;
    if (total > cap) return PKT_ENOSPACE;
    size_t rem = 2 + tl + (qos ? 2 : 0) + len;
    uint8_t first = (uint8_t)(PKT_PUBLISH << 4 | (dup ? 0x08 : 0) | qos << 1 | (retain ? 1 : 0));
    uint8_t *p = put_fixed(out, first, rem);
    p = put_bin(p, topic, tl);
    if (qos) p = put_u16(p, (size_t)packet_id);
    if (len) memcpy(p, payload, len);
    return (int)(p + len - out);
}

int pkt_enc_ack(uint8_t *out, size_t cap, int type, int packet_id)
{
    if ((!out && cap) || type < PKT_PUBACK || type > PKT_PUBCOMP) return PKT_EBADARG;
    if (packet_id < 1 || packet_id > 65535) return PKT_EBADARG;
    if (cap < 4) return PKT_ENOSPACE;
    out[0] = (uint8_t)(type << 4 | (type == PKT_PUBREL ? 0x02 : 0));
    out[1] = 2;
    put_u16(out + 2, (size_t)packet_id);
    return 4;
}

int pkt_enc_subscribe(uint8_t *out, size_t cap, int packet_id, const char *filter, int qos)
{
    if ((!out && cap) || !filter || qos < 0 || qos > 2) return PKT_EBADARG;
    if (packet_id < 1 || packet_id > 65535) return PKT_EBADARG;
    size_t fl = strlen(filter);
    if (fl == 0 || fl > 65535) return PKT_EBADARG;
    size_t rem = 2 + 2 + fl + 1;
    size_t total = enc_total(rem);
    if (total > cap) return PKT_ENOSPACE;
    uint8_t *p = put_fixed(out, PKT_SUBSCRIBE << 4 | 0x02, rem);
    p = put_u16(p, (size_t)packet_id);
    p = put_bin(p, filter, fl);
    *p++ = (uint8_t)qos;
    return (int)(p - out);
}

static int enc_empty(uint8_t *out, size_t cap, int type)
{
    if (!out && cap) return PKT_EBADARG;
    if (cap < 2) return PKT_ENOSPACE;
    out[0] = (uint8_t)(type << 4);
    out[1] = 0;
    return 2;
}

int pkt_enc_pingreq(uint8_t *out, size_t cap) { return enc_empty(out, cap, PKT_PINGREQ); }
int pkt_enc_disconnect(uint8_t *out, size_t cap) { return enc_empty(out, cap, PKT_DISCONNECT); }
