/*
 * proxy.c - the fault proxy's transport: one thread running one event
 * loop (net.h), each client connection paired with its own upstream
 * connection to the broker. The rules (px_rules.c) say what becomes of
 * each packet; the trace (px_trace.c) records it.
 *
 * Ownership: the proxy thread owns every socket of every connection. The
 * API side only changes shared state under p->mu and wakes the loop;
 * commands that must have happened when the call returns (cut_all,
 * blackhole_all) wait for the loop's acknowledgement. Everything the loop
 * does after one wait (reads, rules, trace appends, writes) runs under a
 * single lock, so the API never sees half a batch and the lock is taken
 * once per batch, not once per packet.
 *
 * The trace never moves an event once written, so readers use it without
 * the lock once proxy_count() has said it exists.
 */
#include "proxy.h"
#include "cleanup.h"
#include "net.h"
#include "packet.h"
#include "px_rules.h"
#include "px_trace.h"
#include "util.h"
#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE (64 * 1024)
/* A few reads per wake-up per socket: enough for throughput, and one
 * busy connection cannot starve the others (the loop is level-triggered,
 * so what is left is reported again). */
#define READS_PER_WAKE 4
/* Bytes waiting in one direction (unwritten or held) before the proxy
 * stops reading that direction's source: TCP's own back-pressure then
 * reaches the sender instead of the proxy's memory growing. */
#define BACKLOG_LIMIT ((size_t)4 << 20)
#define DEFAULT_MAX_PACKET ((size_t)16 << 20)
/* How long accept() rests after running out of descriptors; a
 * level-triggered listen socket would otherwise spin. */
#define LISTEN_PAUSE_US 100000
/* A unix listener with a full backlog refuses a non-blocking connect
 * (EAGAIN) where TCP would queue the SYN or retry it; the proxy retries
 * every CONNECT_RETRY_US for CONNECT_PATIENCE_US before it gives up. */
#define CONNECT_RETRY_US 10000
#define CONNECT_PATIENCE_US 5000000
/* A client that has not finished its TLS or WebSocket handshake by then
 * is closed (px_opts.handshake_ms changes it). */
#define HANDSHAKE_US 10000000

enum { SIDE_CLIENT = 0, SIDE_BROKER = 1 };

typedef struct px_conn px_conn;

/* One socket of a connection. */
typedef struct {
    net_io io;                  /* in the loop while the socket is open */
    net_conn *nc;               /* NULL once closed (or not yet opened) */
    px_conn *c;
    int s;
    unsigned rd_need;           /* a read would block on this (net.h) */
    unsigned wr_need;           /* a write would block on this */
    unsigned hs_need;           /* the handshake would block on this */
    int unflushed;              /* the variant holds output not yet written */
} px_side;

/* A chunk held back by PX_DELAY (or queued behind one), or a packet
 * held aside by PX_REORDER. */
typedef struct px_held {
    struct px_held *next;
    int64_t release_us;
    int rule;                   /* PX_REORDER: the rule that holds it */
    unsigned left;              /* PX_REORDER: packets still to overtake it */
    size_t len;
    uint8_t data[];
} px_held;

/* One direction of a connection. Its source is side `dir`, its
 * destination side 1 - dir (PX_UP = client -> broker). */
typedef struct {
    pkt_stream in;
    int passthru;               /* framing failed: raw bytes from now on */
    uint8_t *out;               /* out[off..len) is ready to write */
    size_t off, len, cap;
    px_held *hq, *hq_tail;
    size_t held_bytes;
    px_held *rq, *rq_tail;      /* PX_REORDER, in the order they were held */
} px_dir;

struct px_conn {
    px_conn *next, *prev;
    proxy *p;
    unsigned id;
    int transport;              /* PX_TR_* */
    int peer_port;              /* the client's */
    px_side sd[2];              /* SIDE_CLIENT, SIDE_BROKER */
    int handshaking;            /* the client's TLS or WebSocket handshake */
    int64_t handshake_until;
    int connecting;             /* the upstream connect() is in progress */
    int64_t retry_at;           /* unix upstream: connect again then (0: not waiting) */
    int64_t give_up_at;         /* ... until then */
    int rd_eof[2];              /* nothing more is read from side s */
    int wr_done[2];             /* nothing more is written to side s */
    int wr_failed[2];           /* ... because side s failed (reset, hang-up) */
    px_dir d[2];
    int level;                  /* from the client's CONNECT */
    int have_id;
    char client_id[128];
    int blackhole;
    int closer;                 /* the side that ended first, -1 */
    int close_errno;
    int done;
};

typedef struct {
    proxy *p;
    int fd;                     /* -1 once closed */
    net_io io;
    int port;
    int transport;              /* PX_TR_* of its clients */
} px_listener;

struct proxy {
    pthread_mutex_t mu;
    pthread_cond_t cond;        /* trace grew, a command was done, stopped */
    pthread_t thread;
    int thread_started;         /* API side only */
    net_loop *loop;
    px_listener ls[2];          /* plain MQTT; MQTT over WebSockets */
    int nls;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_un un;
    } up;
    socklen_t up_len;
    int up_unix;
    char up_text[sizeof(struct sockaddr_un) + 16];
    size_t max_packet;
    struct ssl_ctx_st *tls;     /* wss:// */
    int64_t handshake_us;       /* HANDSHAKE_US, or px_opts.handshake_ms */

    /* Shared with the API, under mu. */
    int stopping, stopped;
    px_rules rules;
    int64_t refuse_until_us;
    unsigned cmd_seq, done_seq;
    int cut_all_pending;
    int bh_pending, bh_on;
    unsigned open_conns;
    px_stats st;
    size_t published;

    /* The loop's own (also only touched under mu). */
    px_trace tr;
    px_conn *conns, *dead;
    unsigned next_id;
    size_t nheld;
    size_t nreord;              /* packets held by PX_REORDER */
    unsigned nretry;            /* connections waiting to retry their upstream */
    unsigned nhandshaking;
    char failure[KIT_ERRLEN];   /* why the loop ended by itself; "" while it runs */
    int64_t listen_paused_until;
    uint8_t *rbuf;
};

#define now_us net_now_us

static const char *side_name(int s)
{
    return s == SIDE_CLIENT ? "client" : "broker";
}

/* ------------------------------------------------------------------ */
/* Trace                                                              */

static px_event *ev_new(proxy *p, px_conn *c, int kind, int dir)
{
    return px_trace_new(&p->tr, c ? c->id : 0, c ? c->transport : PX_TR_TCP, kind, dir);
}

static void ev_text(proxy *p, px_conn *c, int kind, int dir, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void ev_text(proxy *p, px_conn *c, int kind, int dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    px_trace_vtext(&p->tr, c ? c->id : 0, c ? c->transport : PX_TR_TCP, kind, dir, fmt, ap);
    va_end(ap);
}

/* Make what this batch appended visible to readers (mu held). */
static void publish(proxy *p)
{
    if (p->published == p->tr.n) return;
    p->published = p->tr.n;
    pthread_cond_broadcast(&p->cond);
}

/* ------------------------------------------------------------------ */
/* Buffers                                                            */

static size_t backlog(const px_dir *d)
{
    return d->len - d->off + d->held_bytes;
}

static void out_append(px_dir *d, const uint8_t *b, size_t n)
{
    if (d->off == d->len) d->off = d->len = 0;
    if (d->len + n > d->cap) {
        if (d->off) {
            memmove(d->out, d->out + d->off, d->len - d->off);
            d->len -= d->off;
            d->off = 0;
        }
        if (d->len + n > d->cap) {
            size_t ncap = d->cap ? d->cap : READ_SIZE;
            while (ncap < d->len + n) ncap *= 2;
            d->out = kit_xrealloc(d->out, ncap);
            d->cap = ncap;
        }
    }
    memcpy(d->out + d->len, b, n);
    d->len += n;
}

static void held_pop(proxy *p, px_dir *d, int keep)
{
    px_held *h = d->hq;
    d->hq = h->next;
    if (!d->hq) d->hq_tail = NULL;
    d->held_bytes -= h->len;
    p->nheld--;
    if (keep) out_append(d, h->data, h->len);
    free(h);
}

/* Move held chunks whose time has come (all of them when force) to the
 * output, in order: a chunk never overtakes the one before it. */
static void release_held(proxy *p, px_conn *c, int dir, int force, int64_t now)
{
    px_dir *d = &c->d[dir];
    while (d->hq && (force || d->hq->release_us <= now)) held_pop(p, d, 1);
}

static void discard_dir_output(proxy *p, px_dir *d)
{
    while (d->hq) held_pop(p, d, 0);
    while (d->rq) {
        px_held *h = d->rq;
        d->rq = h->next;
        p->nreord--;
        free(h);
    }
    d->rq_tail = NULL;
    d->off = d->len = 0;
}

static void reset_side(px_conn *c, int s);

/* Forward n bytes in dir: to the output, or held when delayed or when
 * something before them is still held (TCP order). */
static void emit(proxy *p, px_conn *c, int dir, const uint8_t *b, size_t n, int delay_ms)
{
    if (n == 0) return;
    if (c->wr_done[1 - dir]) {
        /* Written straight to a broker that is gone, these bytes would
         * earn the client a reset; so they do here, or a client that
         * never reads would never learn that the broker went away. The
         * broker side is never reset this way: that is for the broker
         * to find out (keepalive, will). */
        if (dir == PX_UP && c->wr_failed[SIDE_BROKER] && !c->blackhole) reset_side(c, SIDE_CLIENT);
        return;
    }
    px_dir *d = &c->d[dir];
    if (delay_ms <= 0 && !d->hq) {
        out_append(d, b, n);
        return;
    }
    px_held *h = kit_xmalloc(sizeof *h + n);
    h->next = NULL;
    h->release_us = now_us() + (int64_t)(delay_ms > 0 ? delay_ms : 0) * 1000;
    h->len = n;
    memcpy(h->data, b, n);
    if (d->hq_tail) d->hq_tail->next = h;
    else d->hq = h;
    d->hq_tail = h;
    d->held_bytes += n;
    p->nheld++;
}

/* ------------------------------------------------------------------ */
/* Sockets                                                            */

static void set_interest(proxy *p, px_conn *c, int s)
{
    (void)p;
    px_side *sd = &c->sd[s];
    if (!sd->nc) return;
    unsigned want = 0;
    if (s == SIDE_BROKER && c->connecting) {
        want = NET_OUT;
    } else if (s == SIDE_CLIENT && c->handshaking) {
        want = sd->hs_need ? sd->hs_need : NET_IN;
    } else {
        if (!c->rd_eof[s] && (c->blackhole || backlog(&c->d[s]) < BACKLOG_LIMIT))
            want |= sd->rd_need ? sd->rd_need : NET_IN;
        const px_dir *o = &c->d[1 - s];
        if (!c->wr_failed[s] && ((!c->wr_done[s] && o->off < o->len) || sd->unflushed))
            want |= sd->wr_need ? sd->wr_need : NET_OUT;
    }
    net_set(&sd->io, want);
}

/* Side s can take nothing more: the peer is gone. What it sent before
 * going is still read and forwarded the other way. */
static void write_failed(proxy *p, px_conn *c, int s, int err)
{
    if (c->closer < 0) {
        c->closer = s;
        c->close_errno = err ? err : EPIPE;
    }
    c->wr_done[s] = c->wr_failed[s] = 1;
    c->sd[s].unflushed = 0;
    discard_dir_output(p, &c->d[1 - s]);
}

/* Let side s's variant write what it holds (a WebSocket frame, a pong). */
static void side_flush(proxy *p, px_conn *c, int s)
{
    px_side *sd = &c->sd[s];
    if (!sd->nc || c->wr_failed[s] || (s == SIDE_BROKER && c->connecting)) return;
    int r = net_flush(sd->nc);
    sd->unflushed = r == NET_AGAIN;
    if (r == NET_AGAIN) sd->wr_need = sd->nc->want;
    else if (r == NET_FAIL) write_failed(p, c, s, sd->nc->err);
}

/* Write what dir has ready to its destination, until the socket is full. */
static void flush_dir(proxy *p, px_conn *c, int dir)
{
    int dst = 1 - dir;
    px_dir *d = &c->d[dir];
    px_side *sd = &c->sd[dst];
    if (!sd->nc || c->wr_done[dst] || (dst == SIDE_BROKER && c->connecting) ||
        (dst == SIDE_CLIENT && c->handshaking))
        return;
    sd->wr_need = 0;
    while (d->off < d->len) {
        ssize_t w = net_write(sd->nc, d->out + d->off, d->len - d->off);
        if (w > 0) {
            d->off += (size_t)w;
            continue;
        }
        if (w == NET_AGAIN || w == 0) {
            sd->wr_need = w == 0 ? NET_OUT : sd->nc->want;
            break;
        }
        write_failed(p, c, dst, sd->nc->err);
        break;
    }
    if (d->off == d->len) d->off = d->len = 0;
    side_flush(p, c, dst);
}

/* Read and throw away what is pending, so that close() sends FIN, not
 * RST (an RST could make the peer lose bytes it has not read yet). */
static void drain(int fd)
{
    uint8_t buf[4096];
    for (int i = 0; i < 256; i++) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) continue;
        if (r < 0 && errno == EINTR) continue;
        break;
    }
}

static void close_side_how(px_conn *c, int s, int reset)
{
    px_side *sd = &c->sd[s];
    if (!sd->nc) return;
    net_del(&sd->io);
    net_close(sd->nc, reset);
    sd->nc = NULL;
    sd->unflushed = 0;
    c->rd_eof[s] = c->wr_done[s] = 1;
}

static void close_side(px_conn *c, int s)
{
    close_side_how(c, s, 0);
}

/* Close with RST instead of FIN. */
static void reset_side(px_conn *c, int s)
{
    close_side_how(c, s, 1);
}

/* The connection is over: unlink it; it is freed after the batch, since
 * a handler of this batch may still hold it. */
static void conn_finish(proxy *p, px_conn *c, const char *why)
{
    if (c->done) return;
    for (int s = 0; s < 2; s++) close_side(c, s);
    if (c->retry_at) {
        c->retry_at = 0;
        p->nretry--;
    }
    if (c->handshaking) {
        c->handshaking = 0;
        p->nhandshaking--;
    }
    if (why) ev_text(p, c, PX_EV_CLOSE, PX_UP, "%s", why);
    for (int dir = 0; dir < 2; dir++) discard_dir_output(p, &c->d[dir]);
    c->done = 1;
    if (c->prev) c->prev->next = c->next;
    else p->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = p->dead;
    p->dead = c;
    p->open_conns--;
}

/* Close both sides now (a cut, an unreachable broker, proxy_stop): one
 * last write of what was already forwarded, then drain and close. */
static void hard_close(proxy *p, px_conn *c, const char *why)
{
    if (c->done) return;
    int64_t now = now_us();
    for (int dir = 0; dir < 2; dir++) {
        release_held(p, c, dir, 1, now);
        flush_dir(p, c, dir);
    }
    for (int s = 0; s < 2; s++) {
        if (!c->sd[s].nc || (s == SIDE_BROKER && c->connecting)) continue;
        drain(c->sd[s].nc->fd);
    }
    conn_finish(p, c, why);
}

static void close_text(const px_conn *c, char *buf, size_t len)
{
    if (c->closer < 0) {
        snprintf(buf, len, "the connection was closed");
    } else if (c->close_errno) {
        snprintf(buf, len, "%s closed the connection (%s)", side_name(c->closer),
                 strerror(c->close_errno));
    } else {
        snprintf(buf, len, "%s closed the connection", side_name(c->closer));
    }
}

/* After anything happened on c: write, pass closes on, close what is
 * finished, and ask the loop for what is still needed. */
static void conn_pump(proxy *p, px_conn *c)
{
    if (c->done) return;
    if (c->connecting || c->handshaking) {
        side_flush(p, c, SIDE_CLIENT);
        set_interest(p, c, SIDE_CLIENT);
        set_interest(p, c, SIDE_BROKER);
        return;
    }
    for (int dir = 0; dir < 2; dir++) flush_dir(p, c, dir);

    if (c->blackhole) {
        /* A partition: the side that closed goes, the other stays open
         * and silent, as it would on a real network. */
        for (int s = 0; s < 2; s++) {
            if (!c->sd[s].nc || !c->rd_eof[s]) continue;
            close_side(c, s);
            discard_dir_output(p, &c->d[1 - s]);
            ev_text(p, c, PX_EV_CLOSE, PX_UP, "blackholed side closed by the %s", side_name(s));
            if (!c->sd[1 - s].nc) {
                conn_finish(p, c, NULL);
                return;
            }
        }
    } else {
        /* A side's EOF is passed on only once everything it sent has been
         * written: a DISCONNECT reaches the broker before its FIN. */
        for (int dir = 0; dir < 2; dir++) {
            int dst = 1 - dir;
            px_dir *d = &c->d[dir];
            if (!c->rd_eof[dir] || c->wr_done[dst] || !c->sd[dst].nc) continue;
            if (d->off < d->len || d->hq) continue;
            net_shutdown(c->sd[dst].nc);
            c->wr_done[dst] = 1;
            side_flush(p, c, dst);
        }
        for (int s = 0; s < 2; s++)
            if (c->sd[s].nc && c->rd_eof[s] && c->wr_done[s] && !c->sd[s].unflushed) close_side(c, s);
        if (!c->sd[0].nc && !c->sd[1].nc) {
            char why[256];
            close_text(c, why, sizeof why);
            conn_finish(p, c, why);
            return;
        }
    }
    set_interest(p, c, SIDE_CLIENT);
    set_interest(p, c, SIDE_BROKER);
}

/* ------------------------------------------------------------------ */
/* Rules                                                              */

static void conn_state(const px_conn *c, px_connstate *cs)
{
    cs->client_id = c->have_id ? c->client_id : NULL;
    cs->blackhole = c->blackhole;
}

static void refuse_for(proxy *p, int ms)
{
    if (ms <= 0) return;
    int64_t until = now_us() + (int64_t)ms * 1000;
    if (until > p->refuse_until_us) p->refuse_until_us = until;
}

/* PX_REORDER: keep a packet aside until `behind` later packets that
 * match the same rule have gone out, or its hold time is over. */
static void hold_aside(proxy *p, px_conn *c, int dir, int rule, const uint8_t *b, size_t n)
{
    const px_rule *r = &p->rules.v[rule].r;
    px_dir *d = &c->d[dir];
    px_held *h = kit_xmalloc(sizeof *h + n);
    h->next = NULL;
    h->rule = rule;
    h->left = r->behind ? r->behind : 1;
    h->release_us = now_us() + (int64_t)(r->delay_ms > 0 ? r->delay_ms : 1000) * 1000;
    h->len = n;
    memcpy(h->data, b, n);
    if (d->rq_tail) d->rq_tail->next = h;
    else d->rq = h;
    d->rq_tail = h;
    p->nreord++;
}

/* Forward, in the order they were held, the packets set aside whose
 * time has come (type 0), or those that a packet of that type just
 * overtook for the last time (type > 0). Returns how many went. */
static int release_aside(proxy *p, px_conn *c, int dir, int type, int64_t now)
{
    px_dir *d = &c->d[dir];
    px_connstate cs;
    conn_state(c, &cs);
    int n = 0;
    px_held **pp = &d->rq, *prev = NULL;
    while (*pp) {
        px_held *h = *pp;
        int go = type == 0 && h->release_us <= now;
        if (type > 0 && px_rules_match(&p->rules, h->rule, &cs, dir, type) && --h->left == 0) go = 1;
        if (!go) {
            prev = h;
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        if (d->rq_tail == h) d->rq_tail = prev;
        p->nreord--;
        if (!c->blackhole) emit(p, c, dir, h->data, h->len, 0);   /* a partition swallows it */
        free(h);
        n++;
    }
    return n;
}

static void overtaken(proxy *p, px_conn *c, int dir, int type)
{
    if (c->d[dir].rq) release_aside(p, c, dir, type, 0);
}

/* One whole packet read in dir: decode, judge, record, act. */
static void handle_packet(proxy *p, px_conn *c, int dir, const uint8_t *buf, size_t size)
{
    pkt k;
    char why[KIT_ERRLEN] = "";
    memset(&k, 0, sizeof k);
    int decoded = pkt_decode(buf, size, c->level, &k, why) == KIT_OK;
    int type = buf[0] >> 4;
    p->st.packets[dir]++;

    if (dir == PX_UP && type == PKT_CONNECT && decoded) {
        if (k.level >= PKT_V31 && k.level <= PKT_V5) c->level = k.level;
        size_t n = k.client_id.len < sizeof c->client_id - 1 ? k.client_id.len : sizeof c->client_id - 1;
        memcpy(c->client_id, k.client_id.p, n);
        c->client_id[n] = '\0';
        c->have_id = 1;
    }

    px_connstate cs;
    conn_state(c, &cs);
    px_verdict v;
    px_rules_judge(&p->rules, &cs, dir, type, size, &v);
    if (v.blackhole) c->blackhole = 1;
    px_trace_packet(&p->tr, c->id, c->transport, dir, buf, size, &k, decoded, why, v.fate);
    if (v.fate == PX_BLACKHOLED) return;

    uint64_t left = v.allow;
    if (v.reorder >= 0 && v.fate == PX_REORDERED) {
        for (int i = 0; i < v.copies; i++) hold_aside(p, c, dir, v.reorder, buf, size);
    } else {
        for (int i = 0; i < v.copies && left > 0; i++) {
            size_t n = left < size ? (size_t)left : size;
            emit(p, c, dir, buf, n, v.delay_ms);
            left -= n;
        }
        if (v.fate == PX_SENT || v.fate == PX_DUPLICATED || v.fate == PX_DELAYED) overtaken(p, c, dir, type);
    }
    if (v.cut >= 0) {
        char text[256];
        px_rules_cut_text(&p->rules, v.cut, v.cut_no, dir, text, sizeof text);
        refuse_for(p, v.refuse_ms);
        hard_close(p, c, text);
    }
}

/* ------------------------------------------------------------------ */
/* Reading                                                            */

static void take_bytes(proxy *p, px_conn *c, int dir, const uint8_t *b, size_t n)
{
    px_dir *d = &c->d[dir];
    if (!d->passthru && pkt_stream_feed(&d->in, b, n) != KIT_OK) {
        ev_text(p, c, PX_EV_ERROR, dir, "out of memory framing the %s stream; passing it through unparsed",
                side_name(dir));
        d->passthru = 1;
        if (!c->blackhole) emit(p, c, dir, d->in.buf, d->in.len, 0);
        pkt_stream_free(&d->in);
    }
    if (d->passthru) {
        if (!c->blackhole) emit(p, c, dir, b, n, 0);
        return;
    }
    while (!c->done) {
        size_t size = 0;
        char why[KIT_ERRLEN] = "";
        int rc = pkt_stream_next(&d->in, &size, why);
        if (rc == PKT_NEED_MORE) break;
        if (rc == PKT_COMPLETE) {
            handle_packet(p, c, dir, d->in.buf, size);
            pkt_stream_consume(&d->in, size);
            continue;
        }
        ev_text(p, c, PX_EV_ERROR, dir, "the %s's stream cannot be framed (%s); passing it through unparsed",
                side_name(dir), why);
        d->passthru = 1;
        if (!c->blackhole) emit(p, c, dir, d->in.buf, d->in.len, 0);
        pkt_stream_free(&d->in);
        break;
    }
}

/* Side s will send nothing more (EOF or an error). */
static void source_ended(proxy *p, px_conn *c, int s, int err)
{
    c->rd_eof[s] = 1;
    if (c->closer < 0) {
        c->closer = s;
        c->close_errno = err;
    }
    px_dir *d = &c->d[s];
    if (!d->passthru && d->in.len > 0) {
        ev_text(p, c, PX_EV_ERROR, s, "the %s closed in the middle of a packet (%zu bytes unframed)",
                side_name(s), d->in.len);
        if (!c->blackhole) emit(p, c, s, d->in.buf, d->in.len, 0);
        pkt_stream_consume(&d->in, d->in.len);
    }
    /* Whatever it sent before closing goes out now, delays or not. */
    if (!c->blackhole) release_held(p, c, s, 1, 0);
}

/* hup: the peer hung up or failed; read on even past the back-pressure
 * limit, or the hang-up would be reported again and again. */
static void on_readable(proxy *p, px_conn *c, int s, int hup)
{
    px_side *sd = &c->sd[s];
    for (int i = 0; i < READS_PER_WAKE; i++) {
        if (c->done || !sd->nc || c->rd_eof[s]) return;
        if (!hup && !c->blackhole && backlog(&c->d[s]) >= BACKLOG_LIMIT) return;
        sd->rd_need = 0;
        ssize_t n = net_read(sd->nc, p->rbuf, READ_SIZE);
        if (n > 0) {
            p->st.bytes[s] += (uint64_t)n;
            take_bytes(p, c, s, p->rbuf, (size_t)n);
            if (n < READ_SIZE && !(sd->nc && net_pending(sd->nc))) return;
            continue;
        }
        if (n == 0) {
            source_ended(p, c, s, 0);
            return;
        }
        if (n == NET_AGAIN) {
            sd->rd_need = sd->nc->want;
            return;
        }
        ev_text(p, c, PX_EV_ERROR, s, "reading from the %s failed: %s", side_name(s), net_why(sd->nc));
        source_ended(p, c, s, sd->nc->err ? sd->nc->err : EIO);
        return;
    }
    /* Bytes the variant holds (TLS, WebSocket) that the socket will not
     * announce again: read them on the next turn. */
    if (!c->done && sd->nc && !c->rd_eof[s] && net_pending(sd->nc)) net_again(&sd->io);
}

/* ------------------------------------------------------------------ */
/* Connections                                                        */

static void on_io(net_io *io, unsigned ev);

static void connect_failed(proxy *p, px_conn *c, int err)
{
    ev_text(p, c, PX_EV_ERROR, PX_UP, "cannot reach the broker at %s: %s", p->up_text, strerror(err));
    hard_close(p, c, "the broker could not be reached");
}

static void finish_connect(proxy *p, px_conn *c)
{
    px_side *sd = &c->sd[SIDE_BROKER];
    int err = net_connect_result(sd->nc->fd);
    if (err == EINPROGRESS || err == EALREADY) return;
    c->connecting = 0;
    if (err) {
        /* Nothing was read from the broker: the client's side decides. */
        net_del(&sd->io);
        net_close(sd->nc, 0);
        sd->nc = NULL;
        connect_failed(p, c, err);
        return;
    }
    set_interest(p, c, SIDE_BROKER);
}

/* Open the upstream socket and register it; c->connecting while a TCP
 * connect is in progress. Returns 0 or an errno (EAGAIN: a unix
 * listener's backlog is full, try again later). */
static int up_connect(proxy *p, px_conn *c)
{
    int connecting = 0;
    int fd = net_connect(&p->up.sa, p->up_len, &connecting);
    if (fd < 0) return errno;
    px_side *sd = &c->sd[SIDE_BROKER];
    int e = net_add(p->loop, &sd->io, fd, connecting ? NET_OUT : NET_IN, on_io, sd);
    if (e) {
        close(fd);
        return e;
    }
    sd->nc = net_tcp(fd);
    c->connecting = connecting;
    return 0;
}

/* A unix upstream is waiting for room in the broker's backlog: no
 * socket meanwhile (an unconnected unix socket reports a hang-up),
 * only c->connecting and a time to try again. */
static void retry_later(proxy *p, px_conn *c, int64_t now)
{
    if (!c->retry_at) {
        p->nretry++;
        c->give_up_at = now + CONNECT_PATIENCE_US;
    }
    c->connecting = 1;
    c->retry_at = now + CONNECT_RETRY_US;
}

/* Connections whose upstream retry time has come connect again. */
static void retry_connects(proxy *p, int64_t now)
{
    px_conn *next;
    for (px_conn *c = p->conns; c && p->nretry; c = next) {
        next = c->next;
        if (!c->retry_at || c->retry_at > now) continue;
        int err = up_connect(p, c);
        if (err == EAGAIN && now < c->give_up_at) {
            retry_later(p, c, now);
            continue;
        }
        c->retry_at = 0;
        p->nretry--;
        if (err) {
            c->connecting = 0;
            connect_failed(p, c, err);
            continue;
        }
        conn_pump(p, c);
    }
}

/* The client is ready for MQTT: open its upstream, and say so. */
static void conn_ready(proxy *p, px_conn *c)
{
    int err = up_connect(p, c);
    if (err == EAGAIN && p->up_unix) {
        retry_later(p, c, now_us());
        err = 0;
    }
    /* The upstream's local port is what the broker's log names ("New
     * connection from 127.0.0.1:PORT"), so the trace says it. A unix
     * socket has no such port: the broker names its own path instead. */
    char how[32] = "";
    if (c->transport != PX_TR_TCP) snprintf(how, sizeof how, " over %s", px_transport_name(c->transport));
    if (p->up_unix) {
        ev_text(p, c, PX_EV_OPEN, PX_UP, "client 127.0.0.1:%d connected%s; upstream -> %s", c->peer_port, how,
                p->up_text);
    } else {
        int uport = c->sd[SIDE_BROKER].nc ? net_local_port(c->sd[SIDE_BROKER].nc->fd) : 0;
        ev_text(p, c, PX_EV_OPEN, PX_UP, "client 127.0.0.1:%d connected%s; upstream 127.0.0.1:%d -> %s",
                c->peer_port, how, uport, p->up_text);
    }
    if (err) connect_failed(p, c, err);
}

/* Drive the client's TLS or WebSocket handshake; once it is done, the
 * upstream opens. A client that fails it never reaches the broker. */
static void client_handshake(proxy *p, px_conn *c)
{
    px_side *sd = &c->sd[SIDE_CLIENT];
    int r = net_handshake(sd->nc);
    if (r == NET_AGAIN) {
        sd->hs_need = sd->nc->want;
        return;
    }
    c->handshaking = 0;
    sd->hs_need = 0;
    p->nhandshaking--;
    if (r == NET_FAIL) {
        ev_text(p, c, PX_EV_ERROR, PX_UP, "client 127.0.0.1:%d: the %s handshake failed: %s", c->peer_port,
                px_transport_name(c->transport), net_why(sd->nc));
        side_flush(p, c, SIDE_CLIENT);     /* an HTTP error answer, a close frame */
        hard_close(p, c, "closed: the handshake failed");
        return;
    }
    conn_ready(p, c);
    /* Bytes that came with the handshake (a CONNECT right behind the
     * upgrade request) sit in the variant, where the socket cannot
     * announce them. */
    if (!c->done && sd->nc && net_pending(sd->nc)) net_again(&sd->io);
}

static net_conn *client_conn(proxy *p, int fd, int transport)
{
    if (transport == PX_TR_TCP) return net_tcp(fd);
    net_conn *nc = transport == PX_TR_WSS ? net_tls(fd, p->tls, 1, NULL) : net_tcp(fd);
    return nc ? ws_server(nc, NULL) : NULL;
}

static void conn_open(proxy *p, int cfd, int peer_port, int transport)
{
    px_conn *c = calloc(1, sizeof *c);
    net_conn *nc = c ? client_conn(p, cfd, transport) : NULL;
    if (!nc) {
        free(c);
        close(cfd);
        return;
    }
    c->p = p;
    c->id = ++p->next_id;
    c->transport = transport;
    c->peer_port = peer_port;
    c->closer = -1;
    for (int s = 0; s < 2; s++) {
        c->sd[s].c = c;
        c->sd[s].s = s;
        c->sd[s].io.fd = -1;
        pkt_stream_init(&c->d[s].in, p->max_packet);
    }
    c->next = p->conns;
    if (p->conns) p->conns->prev = c;
    p->conns = c;
    p->open_conns++;
    p->st.connections++;

    int err = net_add(p->loop, &c->sd[SIDE_CLIENT].io, cfd, NET_IN, on_io, &c->sd[SIDE_CLIENT]);
    if (err) {
        net_close(nc, 0);
        ev_text(p, c, PX_EV_ERROR, PX_UP, "cannot watch client 127.0.0.1:%d: %s", peer_port, strerror(err));
        conn_finish(p, c, "closed: the proxy could not watch it");
        return;
    }
    c->sd[SIDE_CLIENT].nc = nc;
    c->handshaking = 1;
    c->handshake_until = now_us() + p->handshake_us;
    p->nhandshaking++;
    client_handshake(p, c);
    conn_pump(p, c);
}

static void accept_all(proxy *p, px_listener *l)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int fd = net_accept(l->fd, &peer, &pl);
        if (fd < 0) {
            if (errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            ev_text(p, NULL, PX_EV_ERROR, PX_UP, "cannot accept a connection: %s", strerror(errno));
            p->listen_paused_until = now_us() + LISTEN_PAUSE_US;
            for (int i = 0; i < p->nls; i++) net_set(&p->ls[i].io, 0);
            return;
        }
        int peer_port = ntohs(((struct sockaddr_in *)&peer)->sin_port);
        int64_t now = now_us();
        if (now < p->refuse_until_us) {
            unsigned id = ++p->next_id;
            drain(fd);
            close(fd);
            p->st.refused++;
            px_event *e = ev_new(p, NULL, PX_EV_REFUSED, PX_UP);
            if (e) {
                e->conn = id;
                e->text = kit_strdup_printf("client 127.0.0.1:%d refused (refusing for %lld ms more)", peer_port,
                                            (long long)((p->refuse_until_us - now + 999) / 1000));
            }
            continue;
        }
        conn_open(p, fd, peer_port, l->transport);
    }
}

static void on_listen(net_io *io, unsigned ev)
{
    (void)ev;
    px_listener *l = io->ud;
    accept_all(l->p, l);
}

static void on_io(net_io *io, unsigned e)
{
    px_side *sd = io->ud;
    px_conn *c = sd->c;
    proxy *p = c->p;
    int s = sd->s;
    if (c->done || !sd->nc) return;
    if (s == SIDE_BROKER && c->connecting) {
        finish_connect(p, c);
        conn_pump(p, c);
        return;
    }
    if (s == SIDE_CLIENT && c->handshaking) {
        client_handshake(p, c);
        conn_pump(p, c);
        return;
    }
    if ((e & (NET_IN | NET_ERR | NET_HUP)) || ((e & NET_OUT) && sd->rd_need == NET_OUT))
        on_readable(p, c, s, (e & (NET_ERR | NET_HUP)) != 0);
    /* HUP: the peer can take no more bytes either; what was queued for it
     * is lost (as it would be without the proxy). Without this a hung-up
     * socket with nothing left to read would be reported forever. */
    if (!c->done && sd->nc && (e & NET_HUP) && c->rd_eof[s] && !c->wr_done[s]) write_failed(p, c, s, 0);
    if (!c->done && (e & NET_OUT)) flush_dir(p, c, 1 - s);
    conn_pump(p, c);
}

static void close_listeners(proxy *p)
{
    for (int i = 0; i < p->nls; i++) {
        px_listener *l = &p->ls[i];
        if (l->io.loop) net_del(&l->io);
        if (l->fd >= 0) close(l->fd);
        l->fd = -1;
    }
}

/* ------------------------------------------------------------------ */
/* The loop                                                           */

static void reap_dead(proxy *p)
{
    while (p->dead) {
        px_conn *c = p->dead;
        p->dead = c->next;
        for (int dir = 0; dir < 2; dir++) {
            discard_dir_output(p, &c->d[dir]);
            free(c->d[dir].out);
            pkt_stream_free(&c->d[dir].in);
        }
        free(c);
    }
}

static int next_timeout_ms(proxy *p)
{
    int64_t next = -1;
    if (p->nheld || p->nreord) {
        for (px_conn *c = p->conns; c; c = c->next)
            for (int dir = 0; dir < 2; dir++) {
                if (c->d[dir].hq && (next < 0 || c->d[dir].hq->release_us < next))
                    next = c->d[dir].hq->release_us;
                for (const px_held *h = c->d[dir].rq; h; h = h->next)
                    if (next < 0 || h->release_us < next) next = h->release_us;
            }
    }
    if (p->nretry || p->nhandshaking)
        for (const px_conn *c = p->conns; c; c = c->next) {
            if (c->retry_at && (next < 0 || c->retry_at < next)) next = c->retry_at;
            if (c->handshaking && (next < 0 || c->handshake_until < next)) next = c->handshake_until;
        }
    if (p->listen_paused_until && (next < 0 || p->listen_paused_until < next))
        next = p->listen_paused_until;
    if (next < 0) return -1;
    int64_t ms = (next - now_us() + 999) / 1000;
    if (ms < 0) ms = 0;
    if (ms > INT_MAX) ms = INT_MAX;
    return (int)ms;
}

static void apply_commands(proxy *p)
{
    if (p->done_seq == p->cmd_seq) return;
    if (p->cut_all_pending) {
        p->cut_all_pending = 0;
        while (p->conns) hard_close(p, p->conns, "cut by proxy_cut_all");
    }
    if (p->bh_pending) {
        p->bh_pending = 0;
        px_conn *next;
        for (px_conn *c = p->conns; c; c = next) {
            next = c->next;
            c->blackhole = p->bh_on;
            conn_pump(p, c);
        }
    }
    p->done_seq = p->cmd_seq;
    pthread_cond_broadcast(&p->cond);
}

/* Held packets whose time has come, upstream retries, handshakes that
 * took too long, a paused listener. */
static void run_timers(proxy *p)
{
    int64_t now = now_us();
    if (p->nretry) retry_connects(p, now);
    if (p->nheld || p->nreord || p->nhandshaking) {
        px_conn *next;
        for (px_conn *c = p->conns; c; c = next) {
            next = c->next;
            if (c->handshaking && c->handshake_until <= now) {
                ev_text(p, c, PX_EV_ERROR, PX_UP, "client 127.0.0.1:%d did not finish its %s handshake in %lld ms",
                        c->peer_port, px_transport_name(c->transport), (long long)(p->handshake_us / 1000));
                hard_close(p, c, "closed: no handshake in time");
                continue;
            }
            int released = 0;
            for (int dir = 0; dir < 2; dir++) {
                if (c->d[dir].hq && c->d[dir].hq->release_us <= now) {
                    release_held(p, c, dir, 0, now);
                    released = 1;
                }
                if (c->d[dir].rq && release_aside(p, c, dir, 0, now) > 0) released = 1;
            }
            if (released) conn_pump(p, c);
        }
    }
    if (p->listen_paused_until && now >= p->listen_paused_until) {
        p->listen_paused_until = 0;
        for (int i = 0; i < p->nls; i++) net_set(&p->ls[i].io, NET_IN);
    }
}

static void *proxy_main(void *arg)
{
    proxy *p = arg;
    const char *why = "closed by proxy_stop";
    for (;;) {
        int n = net_wait(p->loop, next_timeout_ms(p));
        if (n == -EINTR) continue;
        pthread_mutex_lock(&p->mu);
        if (p->stopping) break;
        if (n < 0) {
            /* Nothing can be waited on any more, and a loop that went on
             * would spin. End it; the owner reads why (proxy_error), and
             * new clients are refused rather than left hanging. */
            snprintf(p->failure, sizeof p->failure, "the proxy's event loop failed (epoll_wait: %s)",
                     strerror(-n));
            ev_text(p, NULL, PX_EV_ERROR, PX_UP, "%s; it stopped and closed every connection", p->failure);
            close_listeners(p);
            why = "closed: the proxy's event loop failed";
            break;
        }
        apply_commands(p);
        net_dispatch(p->loop);
        run_timers(p);
        reap_dead(p);
        publish(p);
        pthread_mutex_unlock(&p->mu);
    }
    /* Stopping or failed, mu held. */
    while (p->conns) hard_close(p, p->conns, why);
    reap_dead(p);
    publish(p);
    p->stopped = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* API                                                                */

static void timed_wait_slice(proxy *p, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&p->cond, &p->mu, &ts);
}

/* Hand the loop the command just set up (mu held) and wait until it has
 * been carried out, so the caller can rely on it when the call returns. */
static void run_command(proxy *p)
{
    unsigned my = ++p->cmd_seq;
    net_wake(p->loop);
    while (p->thread_started && !p->stopped && (int)(p->done_seq - my) < 0)
        timed_wait_slice(p, 50);
}

int proxy_start(const px_opts *o, proxy **out, char *err)
{
    if (out) *out = NULL;
    if (!o || !out) return kit_seterr(err, KIT_EINVAL, "proxy_start: no options");
    if (o->listen_port < 0 || o->listen_port > 65535)
        return kit_seterr(err, KIT_EINVAL, "proxy: the listen port %d is not a TCP port", o->listen_port);
    const char *path = o->upstream_path;
    if (path && (o->upstream_port || o->upstream_host))
        return kit_seterr(err, KIT_EINVAL, "proxy: give the broker's unix socket or its host and port, not both");
    if (!path && (o->upstream_port <= 0 || o->upstream_port > 65535))
        return kit_seterr(err, KIT_EINVAL, "proxy: the broker's port %d is not a TCP port", o->upstream_port);
    if (path && (!*path || strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path))
        return kit_seterr(err, KIT_EINVAL, "proxy: the broker's socket path '%s' is empty or too long "
                          "(at most %zu bytes)", path, sizeof ((struct sockaddr_un *)0)->sun_path - 1);
    const char *host = o->upstream_host ? o->upstream_host : "127.0.0.1";
    struct sockaddr_in up = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->upstream_port) };
    if (!path && inet_pton(AF_INET, host, &up.sin_addr) != 1)
        return kit_seterr(err, KIT_EINVAL, "proxy: the broker's address '%s' is not a numeric IPv4 address", host);

    int rc = KIT_ERR;
    proxy *p = calloc(1, sizeof *p);
    if (!p) return kit_seterr(err, KIT_ERR, "proxy: out of memory");
    if (path) {
        p->up.un.sun_family = AF_UNIX;
        memcpy(p->up.un.sun_path, path, strlen(path) + 1);
        p->up_len = sizeof p->up.un;
        p->up_unix = 1;
        snprintf(p->up_text, sizeof p->up_text, "unix:%s", path);
    } else {
        p->up.in = up;
        p->up_len = sizeof p->up.in;
        snprintf(p->up_text, sizeof p->up_text, "%s:%d", host, o->upstream_port);
    }
    p->max_packet = o->max_packet ? o->max_packet : DEFAULT_MAX_PACKET;
    p->tls = o->ws_tls;
    p->handshake_us = o->handshake_ms > 0 ? (int64_t)o->handshake_ms * 1000 : HANDSHAKE_US;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    p->rbuf = malloc(READ_SIZE);
    if (px_trace_init(&p->tr, now_us()) != 0 || !p->rbuf) {
        rc = kit_seterr(err, KIT_ERR, "proxy: out of memory");
        goto cleanup;
    }

    char why[KIT_ERRLEN];
    p->loop = net_loop_new(why);
    if (!p->loop) {
        rc = kit_seterr(err, KIT_ERR, "proxy: %s", why);
        goto cleanup;
    }
    int e = net_wake_init(p->loop, NULL, NULL);
    int ports[2] = { o->listen_port, o->ws_port };
    int kinds[2] = { PX_TR_TCP, o->ws_tls ? PX_TR_WSS : PX_TR_WS };
    for (int i = 0; i < (o->websocket ? 2 : 1) && !e; i++) {
        px_listener *l = &p->ls[i];
        l->p = p;
        l->transport = kinds[i];
        l->fd = net_listen_local(ports[i], 128, &l->port, why);
        if (l->fd < 0) {
            rc = kit_seterr(err, KIT_ERR, "proxy: %s%s", i ? "WebSocket port: " : "", why);
            goto cleanup;
        }
        p->nls++;
        e = net_add(p->loop, &l->io, l->fd, NET_IN, on_listen, l);
    }
    if (e) {
        rc = kit_seterr(err, KIT_ERR, "proxy: cannot watch its sockets: %s", strerror(e));
        goto cleanup;
    }

    p->tr.t0_us = now_us();
    /* Every signal blocked in the new thread (it inherits the mask), so
     * SIGINT and SIGCHLD always reach the main thread, whose waits watch
     * for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int trc = pthread_create(&p->thread, NULL, proxy_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (trc != 0) {
        rc = kit_seterr(err, KIT_ERR, "proxy: cannot start its thread: %s", strerror(trc));
        goto cleanup;
    }
    p->thread_started = 1;
    *out = p;
    return KIT_OK;

cleanup:
    proxy_free(p);
    return rc;
}

int proxy_port(const proxy *p)
{
    return p ? p->ls[0].port : 0;
}

int proxy_ws_port(const proxy *p)
{
    return p && p->nls > 1 ? p->ls[1].port : 0;
}

int proxy_add_rule(proxy *p, const px_rule *r, char *err)
{
    if (!p || !r) {
        kit_seterr(err, KIT_EINVAL, "proxy_add_rule: no proxy or no rule");
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    int idx = px_rules_add(&p->rules, r, err);
    pthread_mutex_unlock(&p->mu);
    return idx;
}

unsigned proxy_rule_fired(proxy *p, int idx)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    unsigned n = px_rules_fired(&p->rules, idx);
    pthread_mutex_unlock(&p->mu);
    return n;
}

void proxy_clear_rules(proxy *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    px_rules_clear(&p->rules);
    pthread_mutex_unlock(&p->mu);
}

void proxy_cut_all(proxy *p, int refuse_ms)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    refuse_for(p, refuse_ms);
    p->cut_all_pending = 1;
    run_command(p);
    pthread_mutex_unlock(&p->mu);
}

void proxy_blackhole_all(proxy *p, int on)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->bh_pending = 1;
    p->bh_on = on ? 1 : 0;
    run_command(p);
    pthread_mutex_unlock(&p->mu);
}

void proxy_refuse(proxy *p, int ms)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->refuse_until_us = ms > 0 ? now_us() + (int64_t)ms * 1000 : 0;
    pthread_mutex_unlock(&p->mu);
}

size_t proxy_count(proxy *p)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    size_t n = p->published;
    pthread_mutex_unlock(&p->mu);
    return n;
}

const px_event *proxy_event(proxy *p, size_t i)
{
    if (!p) return NULL;
    pthread_mutex_lock(&p->mu);
    size_t n = p->published;
    pthread_mutex_unlock(&p->mu);
    if (i >= n) return NULL;
    return px_trace_at(&p->tr, i);
}

int proxy_wait(proxy *p, size_t have, int timeout_ms)
{
    if (!p) return KIT_ETIMEOUT;
    int64_t end = kit_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int rc;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->published > have) { rc = KIT_OK; break; }
        if (cleanup_interrupted()) { rc = KIT_EINTR; break; }
        if (p->failure[0]) { rc = KIT_ERR; break; }
        /* A stopped proxy records nothing more: no point waiting. */
        if (p->stopped || !p->thread_started) { rc = KIT_ETIMEOUT; break; }
        int64_t left = end - kit_now_ms();
        if (left <= 0) { rc = KIT_ETIMEOUT; break; }
        timed_wait_slice(p, left < 50 ? (int)left : 50);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int proxy_error(proxy *p, char *err)
{
    if (!p) return KIT_OK;
    pthread_mutex_lock(&p->mu);
    int rc = p->failure[0] ? kit_seterr(err, KIT_ERR, "%s", p->failure) : KIT_OK;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

unsigned proxy_open_conns(proxy *p)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    unsigned n = p->open_conns;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void proxy_stats(proxy *p, px_stats *s)
{
    if (!s) return;
    memset(s, 0, sizeof *s);
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    *s = p->st;
    s->events_lost = p->tr.lost;
    pthread_mutex_unlock(&p->mu);
}

void proxy_stop(proxy *p)
{
    if (!p) return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stopping = 1;
        pthread_mutex_unlock(&p->mu);
        net_wake(p->loop);
        pthread_join(p->thread, NULL);
        p->thread_started = 0;
    }
    close_listeners(p);
    net_loop_free(p->loop);
    p->loop = NULL;
}

void proxy_free(proxy *p)
{
    if (!p) return;
    proxy_stop(p);
    px_trace_free(&p->tr);
    px_rules_free(&p->rules);
    free(p->rbuf);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

const char *px_dir_name(int dir)
{
    switch (dir) {
    case PX_UP: return "up";
    case PX_DOWN: return "down";
    case PX_ANY: return "any";
    default: return "?";
    }
}

const char *px_fate_name(int fate)
{
    static const char *const names[] = {
        NULL, "sent", "dropped", "duplicated", "delayed", "cut_before", "cut_after", "cut_mid", "blackholed",
        "reordered"
    };
    return fate >= PX_SENT && fate <= PX_REORDERED ? names[fate] : "?";
}

const char *px_kind_name(int kind)
{
    static const char *const names[] = { NULL, "open", "packet", "close", "refused", "error" };
    return kind >= PX_EV_OPEN && kind <= PX_EV_ERROR ? names[kind] : "?";
}

const char *px_transport_name(int transport)
{
    static const char *const names[] = { "tcp", "ws", "wss" };
    return transport >= PX_TR_TCP && transport <= PX_TR_WSS ? names[transport] : "?";
}

int px_action_from_name(const char *name)
{
    if (!name) return -1;
    char buf[32];
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof buf) return -1;
    for (size_t i = 0; i <= n; i++) buf[i] = name[i] == '-' ? '_' : name[i];
    for (int a = PX_DROP; a <= PX_REORDER; a++)
        if (strcasecmp(buf, px_action_name(a)) == 0) return a;
    return -1;
}
