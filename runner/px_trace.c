/*
 * px_trace.c - the proxy's trace table.
 */
#include "px_trace.h"
#include "net.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EV_PER_CHUNK 1024
#define EV_CHUNKS 1024                  /* 1M events, then lost */

int px_trace_init(px_trace *t, int64_t t0_us)
{
    memset(t, 0, sizeof *t);
    t->t0_us = t0_us;
    t->chunks = calloc(EV_CHUNKS, sizeof *t->chunks);
    return t->chunks ? 0 : -1;
}

static void free_strings(px_event *e)
{
    free(e->client_id);
    free(e->topic);
    free(e->payload);
    for (int i = 0; i < e->nfilters; i++) free(e->filters[i]);
    free(e->filters);
    free(e->filter_qos);
    free(e->text);
}

void px_trace_free(px_trace *t)
{
    if (!t->chunks) return;
    for (size_t i = 0; i < t->n; i++) free_strings(px_trace_at(t, i));
    for (size_t k = 0; k < EV_CHUNKS; k++) free(t->chunks[k]);
    free(t->chunks);
    t->chunks = NULL;
    t->n = 0;
}

px_event *px_trace_at(const px_trace *t, size_t i)
{
    return &t->chunks[i / EV_PER_CHUNK][i % EV_PER_CHUNK];
}

px_event *px_trace_new(px_trace *t, unsigned conn, int transport, int kind, int dir)
{
    if (t->n >= (size_t)EV_CHUNKS * EV_PER_CHUNK) {
        t->lost++;
        return NULL;
    }
    size_t k = t->n / EV_PER_CHUNK;
    if (!t->chunks[k]) {
        t->chunks[k] = calloc(EV_PER_CHUNK, sizeof(px_event));
        if (!t->chunks[k]) {
            t->lost++;
            return NULL;
        }
    }
    px_event *e = &t->chunks[k][t->n % EV_PER_CHUNK];
    memset(e, 0, sizeof *e);
    e->t_us = net_now_us() - t->t0_us;
    e->conn = conn;
    e->transport = (uint8_t)transport;
    e->kind = (uint8_t)kind;
    e->dir = (uint8_t)dir;
    e->packet_id = -1;
    e->reason = -1;
    t->n++;
    return e;
}

void px_trace_vtext(px_trace *t, unsigned conn, int transport, int kind, int dir, const char *fmt, va_list ap)
{
    px_event *e = px_trace_new(t, conn, transport, kind, dir);
    if (!e) return;
    char buf[KIT_ERRLEN];
    vsnprintf(buf, sizeof buf, fmt, ap);
    e->text = kit_strdup(buf);
}

void px_trace_text(px_trace *t, unsigned conn, int transport, int kind, int dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    px_trace_vtext(t, conn, transport, kind, dir, fmt, ap);
    va_end(ap);
}

static char *dup_bytes(const uint8_t *b, size_t n)
{
    char *s = kit_xmalloc(n + 1);
    if (n) memcpy(s, b, n);
    s[n] = '\0';
    return s;
}

void px_trace_packet(px_trace *t, unsigned conn, int transport, int dir, const uint8_t *buf, size_t size,
                     const pkt *k, int decoded, const char *why, int fate)
{
    px_event *e = px_trace_new(t, conn, transport, PX_EV_PACKET, dir);
    if (!e) return;
    /* From the bytes, not from *k: they are known even when decoding failed. */
    int type = buf[0] >> 4, flags = buf[0] & 0x0f;
    e->type = (uint8_t)type;
    e->flags = (uint8_t)flags;
    e->fate = (uint8_t)fate;
    e->size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    e->decoded = (int8_t)(decoded ? 1 : 0);
    if (type == PKT_PUBLISH) {
        e->qos = (int8_t)((flags >> 1) & 3);
        e->dup = (int8_t)((flags >> 3) & 1);
        e->retain = (int8_t)(flags & 1);
    }
    if (!decoded) {
        e->text = kit_strdup_printf("malformed %s: %s", pkt_type_name(type), why);
        return;
    }
    e->packet_id = k->packet_id;
    e->reason = k->reason;
    const pkt_bytes *pl = NULL;
    switch (type) {
    case PKT_CONNECT:
        e->level = (int8_t)k->level;
        e->clean = (int8_t)k->clean;
        e->will = (int8_t)k->will;
        e->will_qos = (int8_t)k->will_qos;
        e->will_retain = (int8_t)k->will_retain;
        e->has_username = (int8_t)k->has_username;
        e->has_password = (int8_t)k->has_password;
        e->keepalive = (uint16_t)k->keepalive;
        e->client_id = dup_bytes(k->client_id.p, k->client_id.len);
        if (k->will) {
            e->topic = dup_bytes(k->will_topic.p, k->will_topic.len);
            pl = &k->will_payload;
        }
        break;
    case PKT_CONNACK:
        e->session_present = (int8_t)k->session_present;
        break;
    case PKT_PUBLISH:
        e->topic = dup_bytes(k->topic.p, k->topic.len);
        pl = &k->payload;
        break;
    case PKT_SUBSCRIBE:
    case PKT_UNSUBSCRIBE: {
        int n = k->nfilters < PKT_MAX_FILTERS ? k->nfilters : PKT_MAX_FILTERS;
        if (n > 0) {
            e->filters = kit_xmalloc((size_t)n * sizeof *e->filters);
            e->filter_qos = kit_xmalloc((size_t)n);
            for (int i = 0; i < n; i++) {
                e->filters[i] = dup_bytes(k->filters[i].filter.p, k->filters[i].filter.len);
                e->filter_qos[i] = (int8_t)k->filters[i].qos;
            }
            e->nfilters = n;
        }
        break;
    }
    case PKT_SUBACK:
    case PKT_UNSUBACK: {
        int n = k->ncodes < PKT_MAX_FILTERS ? k->ncodes : PKT_MAX_FILTERS;
        if (n > 0) {
            memcpy(e->codes, k->codes, (size_t)n);
            e->ncodes = n;
        }
        break;
    }
    default:
        break;
    }
    if (pl) {
        size_t kept = pl->len < PX_PAYLOAD_KEEP ? pl->len : PX_PAYLOAD_KEEP;
        e->payload = dup_bytes(pl->p, kept);
        e->payload_len = pl->len > UINT32_MAX ? UINT32_MAX : (uint32_t)pl->len;
        e->payload_kept = (uint32_t)kept;
    }
    char sum[1024];
    e->text = kit_strdup(pkt_summary(k, sum, sizeof sum));
}
