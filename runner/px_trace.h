/*
 * px_trace.h - the fault proxy's trace: an append-only table of events
 * (proxy.h's px_event) that never moves once written, so that readers
 * use an event without a lock once the writer has published the count.
 * The proxy owns the locking; this file only appends and reads.
 */
#ifndef MQLAB_PX_TRACE_H
#define MQLAB_PX_TRACE_H

#include "packet.h"
#include "proxy.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    px_event **chunks;
    size_t n;                   /* events written */
    size_t lost;                /* not written: the table was full */
    int64_t t0_us;              /* net_now_us() at the start */
} px_trace;

/* 0, or -1 when out of memory. */
int px_trace_init(px_trace *t, int64_t t0_us);
void px_trace_free(px_trace *t);

/* A new zeroed event of connection conn (0: none) with its time set;
 * NULL when the table is full (counted in lost). transport is the
 * connection's (PX_TR_*). */
px_event *px_trace_new(px_trace *t, unsigned conn, int transport, int kind, int dir);
/* An event whose text is printf-formatted. */
void px_trace_text(px_trace *t, unsigned conn, int transport, int kind, int dir, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void px_trace_vtext(px_trace *t, unsigned conn, int transport, int kind, int dir, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
/* A packet event: from the bytes, and from *k when it decoded. */
void px_trace_packet(px_trace *t, unsigned conn, int transport, int dir, const uint8_t *buf, size_t size,
                     const pkt *k, int decoded, const char *why, int fate);
/* Event i (i < t->n). */
px_event *px_trace_at(const px_trace *t, size_t i);

#endif
