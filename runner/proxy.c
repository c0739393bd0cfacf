/*
 * proxy.c - the fault proxy: one thread running one epoll loop, each
 * client connection paired with its own upstream connection to the broker.
 *
 * Ownership: the proxy thread owns every socket of every connection. The
 * API side only changes shared state under p->mu and wakes the loop
 * through an eventfd; commands that must have happened when the call
 * returns (cut_all, blackhole_all) wait for the loop's acknowledgement.
 * Everything the loop does after one epoll_wait (reads, rules, trace
 * appends, writes) runs under a single lock, so the API never sees half
 * a batch and the lock is taken once per batch, not once per packet.
 *
 * The trace is a fixed table of chunk pointers: an event never moves once
 * written, so readers use it without the lock once proxy_count() has
 * said it exists.
 */
#include "proxy.h"
#include "cleanup.h"
#include "packet.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EV_PER_CHUNK 1024
#define EV_CHUNKS 1024                  /* 1M events, then events_lost */
#define READ_SIZE (64 * 1024)
/* A few reads per wake-up per socket: enough for throughput, and one
 * busy connection cannot starve the others (epoll is level-triggered,
 * so what is left is reported again). */
#define READS_PER_WAKE 4
/* Bytes waiting in one direction (unwritten or held) before the proxy
 * stops reading that direction's source: TCP's own back-pressure then
 * reaches the sender instead of the proxy's memory growing. */
#define BACKLOG_LIMIT ((size_t)4 << 20)
#define DEFAULT_MAX_PACKET ((size_t)16 << 20)
#define MAX_EPOLL 256
/* How long accept() rests after running out of descriptors; a
 * level-triggered listen socket would otherwise spin. */
#define LISTEN_PAUSE_US 100000
/* A unix listener with a full backlog refuses a non-blocking connect
 * (EAGAIN) where TCP would queue the SYN or retry it; the proxy retries
 * every CONNECT_RETRY_US for CONNECT_PATIENCE_US before it gives up. */
#define CONNECT_RETRY_US 10000
#define CONNECT_PATIENCE_US 5000000

enum { SIDE_CLIENT = 0, SIDE_BROKER = 1 };
enum { TAG_LISTEN = 1, TAG_WAKE, TAG_SOCK };

typedef struct px_conn px_conn;

/* What an epoll event points at. */
typedef struct {
    int kind;
    px_conn *c;
    int side;
} px_tag;

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
    unsigned id;
    int fd[2];                  /* SIDE_CLIENT, SIDE_BROKER; -1 once closed */
    px_tag tags[2];
    uint32_t mask[2];           /* epoll events registered */
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
    px_rule r;
    int active;
    uint64_t matched;           /* matching packets since added */
    unsigned fired;
    uint64_t bytes;             /* PX_CUT_BYTES: forwarded since added */
    int spent;                  /* PX_CUT_BYTES: has cut */
} px_rule_state;

struct proxy {
    pthread_mutex_t mu;
    pthread_cond_t cond;        /* trace grew, a command was done, stopped */
    pthread_t thread;
    int thread_started;         /* API side only */
    int lfd, epfd, wakefd;
    int port;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_un un;
    } up;
    socklen_t up_len;
    int up_unix;
    char up_text[sizeof(struct sockaddr_un) + 16];
    size_t max_packet;
    int64_t t0_us;

    /* Shared with the API, under mu. */
    int stopping, stopped;
    px_rule_state *rules;
    int nrules, caprules;
    int64_t refuse_until_us;
    unsigned cmd_seq, done_seq;
    int cut_all_pending;
    int bh_pending, bh_on;
    unsigned open_conns;
    px_stats st;
    size_t published;

    /* The loop's own (also only touched under mu). */
    px_event **chunks;
    size_t nev;
    px_conn *conns, *dead;
    unsigned next_id;
    size_t nheld;
    size_t nreord;              /* packets held by PX_REORDER */
    unsigned nretry;            /* connections waiting to retry their upstream */
    char failure[KIT_ERRLEN];   /* why the loop ended by itself; "" while it runs */
    int64_t listen_paused_until;
    px_tag ltag, wtag;
    uint8_t *rbuf;
};

static const char *const action_names[] = {
    NULL, "drop", "duplicate", "delay", "cut_before", "cut_after", "blackhole", "cut_bytes", "reorder"
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *side_name(int s)
{
    return s == SIDE_CLIENT ? "client" : "broker";
}

/* ------------------------------------------------------------------ */
/* Trace                                                              */

static char *dup_bytes(const uint8_t *b, size_t n)
{
    char *s = kit_xmalloc(n + 1);
    if (n) memcpy(s, b, n);
    s[n] = '\0';
    return s;
}

/* A new zeroed event, counted but not yet published; NULL when the
 * trace is full (counted in events_lost instead). */
static px_event *ev_new(proxy *p, px_conn *c, int kind, int dir)
{
    if (p->nev >= (size_t)EV_CHUNKS * EV_PER_CHUNK) {
        p->st.events_lost++;
        return NULL;
    }
    size_t k = p->nev / EV_PER_CHUNK;
    if (!p->chunks[k]) {
        p->chunks[k] = calloc(EV_PER_CHUNK, sizeof(px_event));
        if (!p->chunks[k]) {
            p->st.events_lost++;
            return NULL;
        }
    }
    px_event *e = &p->chunks[k][p->nev % EV_PER_CHUNK];
    memset(e, 0, sizeof *e);
    e->t_us = now_us() - p->t0_us;
    e->conn = c ? c->id : 0;
    e->kind = (uint8_t)kind;
    e->dir = (uint8_t)dir;
    e->packet_id = -1;
    e->reason = -1;
    p->nev++;
    return e;
}

static void ev_text(proxy *p, px_conn *c, int kind, int dir, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void ev_text(proxy *p, px_conn *c, int kind, int dir, const char *fmt, ...)
{
    px_event *e = ev_new(p, c, kind, dir);
    if (!e) return;
    char buf[KIT_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    e->text = kit_strdup(buf);
}

static void ev_free_strings(px_event *e)
{
    free(e->client_id);
    free(e->topic);
    free(e->payload);
    for (int i = 0; i < e->nfilters; i++) free(e->filters[i]);
    free(e->filters);
    free(e->filter_qos);
    free(e->text);
}

/* Make what this batch appended visible to readers (mu held). */
static void publish(proxy *p)
{
    if (p->published == p->nev) return;
    p->published = p->nev;
    pthread_cond_broadcast(&p->cond);
}

static void ev_packet(proxy *p, px_conn *c, int dir, const uint8_t *buf, size_t size,
                      const pkt *k, int decoded, const char *why, int fate)
{
    px_event *e = ev_new(p, c, PX_EV_PACKET, dir);
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
    if (c->fd[s] < 0) return;
    uint32_t want = 0;
    if (s == SIDE_BROKER && c->connecting) {
        want = EPOLLOUT;
    } else {
        if (!c->rd_eof[s] && (c->blackhole || backlog(&c->d[s]) < BACKLOG_LIMIT)) want |= EPOLLIN;
        const px_dir *o = &c->d[1 - s];
        if (!c->wr_done[s] && o->off < o->len) want |= EPOLLOUT;
    }
    if (want == c->mask[s]) return;
    struct epoll_event ev = { .events = want, .data.ptr = &c->tags[s] };
    if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, c->fd[s], &ev) == 0) c->mask[s] = want;
}

/* Write what dir has ready to its destination, until the socket is full. */
static void flush_dir(proxy *p, px_conn *c, int dir)
{
    int dst = 1 - dir;
    px_dir *d = &c->d[dir];
    if (c->fd[dst] < 0 || c->wr_done[dst] || (dst == SIDE_BROKER && c->connecting)) return;
    while (d->off < d->len) {
        ssize_t w = send(c->fd[dst], d->out + d->off, d->len - d->off, MSG_NOSIGNAL);
        if (w > 0) {
            d->off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        /* The peer is gone: nothing more can reach it. What it sent
         * before going is still read and forwarded the other way. */
        if (c->closer < 0) {
            c->closer = dst;
            c->close_errno = errno;
        }
        c->wr_done[dst] = c->wr_failed[dst] = 1;
        discard_dir_output(p, d);
        break;
    }
    if (d->off == d->len) d->off = d->len = 0;
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

static void close_side(px_conn *c, int s)
{
    if (c->fd[s] < 0) return;
    close(c->fd[s]);            /* also leaves the epoll set */
    c->fd[s] = -1;
    c->mask[s] = 0;
    c->rd_eof[s] = c->wr_done[s] = 1;
}

/* Close with RST instead of FIN. */
static void reset_side(px_conn *c, int s)
{
    if (c->fd[s] < 0) return;
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(c->fd[s], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close_side(c, s);
}

/* The connection is over: unlink it; it is freed after the batch, since
 * epoll events of this batch may still point at it. */
static void conn_finish(proxy *p, px_conn *c, const char *why)
{
    if (c->done) return;
    for (int s = 0; s < 2; s++) close_side(c, s);
    if (c->retry_at) {
        c->retry_at = 0;
        p->nretry--;
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
        if (c->fd[s] < 0 || (s == SIDE_BROKER && c->connecting)) continue;
        drain(c->fd[s]);
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
 * finished, and ask epoll for what is still needed. */
static void conn_pump(proxy *p, px_conn *c)
{
    if (c->done) return;
    if (c->connecting) {
        set_interest(p, c, SIDE_CLIENT);
        set_interest(p, c, SIDE_BROKER);
        return;
    }
    for (int dir = 0; dir < 2; dir++) flush_dir(p, c, dir);

    if (c->blackhole) {
        /* A partition: the side that closed goes, the other stays open
         * and silent, as it would on a real network. */
        for (int s = 0; s < 2; s++) {
            if (c->fd[s] < 0 || !c->rd_eof[s]) continue;
            close_side(c, s);
            discard_dir_output(p, &c->d[1 - s]);
            ev_text(p, c, PX_EV_CLOSE, PX_UP, "blackholed side closed by the %s", side_name(s));
            if (c->fd[1 - s] < 0) {
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
            if (!c->rd_eof[dir] || c->wr_done[dst] || c->fd[dst] < 0) continue;
            if (d->off < d->len || d->hq) continue;
            shutdown(c->fd[dst], SHUT_WR);
            c->wr_done[dst] = 1;
        }
        for (int s = 0; s < 2; s++)
            if (c->fd[s] >= 0 && c->rd_eof[s] && c->wr_done[s]) close_side(c, s);
        if (c->fd[0] < 0 && c->fd[1] < 0) {
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

static int rule_matches(const px_rule_state *ru, const px_conn *c, int dir, int type)
{
    if (!ru->active) return 0;
    if (ru->r.type != 0 && ru->r.type != type) return 0;
    if (ru->r.dir != PX_ANY && ru->r.dir != dir) return 0;
    if (ru->r.client_id[0] && (!c->have_id || strcmp(ru->r.client_id, c->client_id) != 0)) return 0;
    return 1;
}

/* What the rules say about one packet: the first rule firing of each
 * action (-1 when none), and for delays the longest one. */
typedef struct {
    int slot[PX_NACTIONS];
    uint64_t match_no[PX_NACTIONS];
    int delay_ms;
} px_decision;

static void decide(proxy *p, px_conn *c, int dir, int type, px_decision *dn)
{
    for (int a = 0; a < PX_NACTIONS; a++) dn->slot[a] = -1;
    dn->delay_ms = 0;
    for (int i = 0; i < p->nrules; i++) {
        px_rule_state *ru = &p->rules[i];
        if (ru->r.action == PX_CUT_BYTES || !rule_matches(ru, c, dir, type)) continue;
        ru->matched++;
        uint64_t nth = ru->r.nth ? ru->r.nth : 1, times = ru->r.times ? ru->r.times : 1;
        if (ru->matched < nth || ru->matched - nth >= times) continue;
        int a = ru->r.action;
        if (a == PX_DELAY) {
            if (dn->slot[a] < 0 || ru->r.delay_ms > dn->delay_ms) {
                dn->slot[a] = i;
                dn->match_no[a] = ru->matched;
                dn->delay_ms = ru->r.delay_ms;
            }
        } else if (dn->slot[a] < 0) {
            dn->slot[a] = i;
            dn->match_no[a] = ru->matched;
        }
    }
}

static void rule_cut_text(proxy *p, int idx, uint64_t match_no, int dir, char *buf, size_t len)
{
    const px_rule *r = &p->rules[idx].r;
    if (r->action == PX_CUT_BYTES)
        snprintf(buf, len, "cut by rule %d (cut_bytes %llu B %s)", idx + 1,
                 (unsigned long long)r->bytes, px_dir_name(dir));
    else
        snprintf(buf, len, "cut by rule %d (%s %s #%llu)", idx + 1, action_names[r->action],
                 r->type ? pkt_type_name(r->type) : "any packet", (unsigned long long)match_no);
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
    const px_rule *r = &p->rules[rule].r;
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
    int n = 0;
    px_held **pp = &d->rq, *prev = NULL;
    while (*pp) {
        px_held *h = *pp;
        int go = type == 0 && h->release_us <= now;
        if (type > 0 && h->rule < p->nrules && rule_matches(&p->rules[h->rule], c, dir, type) && --h->left == 0)
            go = 1;
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

/* One whole packet read in dir: decode, apply the rules, record, act. */
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

    if (c->blackhole) {
        ev_packet(p, c, dir, buf, size, &k, decoded, why, PX_BLACKHOLED);
        return;
    }

    px_decision dn;
    decide(p, c, dir, type, &dn);
    int fate = PX_SENT, copies = 1, delay = 0, cut = -1, refuse = 0, reorder = -1;
    uint64_t cut_no = 0;
    if (dn.slot[PX_CUT_BEFORE] >= 0) {
        fate = PX_CUT_BEFORE_F;
        copies = 0;
        cut = dn.slot[PX_CUT_BEFORE];
        cut_no = dn.match_no[PX_CUT_BEFORE];
    } else if (dn.slot[PX_BLACKHOLE] >= 0) {
        fate = PX_BLACKHOLED;
        copies = 0;
        p->rules[dn.slot[PX_BLACKHOLE]].fired++;
        c->blackhole = 1;
    } else if (dn.slot[PX_DROP] >= 0) {
        fate = PX_DROPPED;
        copies = 0;
        p->rules[dn.slot[PX_DROP]].fired++;
        /* Dropped and then cut: nothing of it went out, so the trace
         * says cut before it. */
        if (dn.slot[PX_CUT_AFTER] >= 0) {
            fate = PX_CUT_BEFORE_F;
            cut = dn.slot[PX_CUT_AFTER];
            cut_no = dn.match_no[PX_CUT_AFTER];
        }
    } else {
        if (dn.slot[PX_DUPLICATE] >= 0) {
            fate = PX_DUPLICATED;
            copies = 2;
            p->rules[dn.slot[PX_DUPLICATE]].fired++;
        }
        if (dn.slot[PX_CUT_AFTER] >= 0) {
            /* The cut releases everything held at once, so a delay
             * would change nothing: cut_after wins over it. */
            fate = PX_CUT_AFTER_F;
            cut = dn.slot[PX_CUT_AFTER];
            cut_no = dn.match_no[PX_CUT_AFTER];
        } else if (dn.slot[PX_REORDER] >= 0) {
            /* Held aside, it is overtaken by what follows; a delay on
             * top would only stretch the hold. */
            reorder = dn.slot[PX_REORDER];
            p->rules[reorder].fired++;
            fate = PX_REORDERED;
        } else if (dn.slot[PX_DELAY] >= 0) {
            delay = dn.delay_ms;
            p->rules[dn.slot[PX_DELAY]].fired++;
            if (fate == PX_SENT) fate = PX_DELAYED;
        }
    }

    /* Byte budgets: the packet that reaches one is cut where it is
     * reached. */
    uint64_t total = (uint64_t)copies * size, allow = total;
    if (fate != PX_CUT_BEFORE_F && fate != PX_BLACKHOLED) {
        int bytes_rule = -1;
        for (int i = 0; i < p->nrules; i++) {
            px_rule_state *ru = &p->rules[i];
            if (ru->r.action != PX_CUT_BYTES || ru->spent || !rule_matches(ru, c, dir, type)) continue;
            uint64_t left = ru->r.bytes > ru->bytes ? ru->r.bytes - ru->bytes : 0;
            if (total < left) continue;
            ru->spent = 1;
            ru->fired++;
            if (ru->r.refuse_ms > refuse) refuse = ru->r.refuse_ms;
            if (bytes_rule < 0 || left < allow) {
                bytes_rule = i;
                allow = left;
            }
        }
        if (bytes_rule >= 0) {
            if (cut < 0 || allow < total) {
                cut = bytes_rule;
                cut_no = 0;
            }
            fate = allow == 0 ? PX_CUT_BEFORE_F : allow < total ? PX_CUT_MID : PX_CUT_AFTER_F;
            delay = 0;
        } else {
            for (int i = 0; i < p->nrules; i++) {
                px_rule_state *ru = &p->rules[i];
                if (ru->r.action == PX_CUT_BYTES && !ru->spent && rule_matches(ru, c, dir, type))
                    ru->bytes += total;
            }
        }
    }
    if (cut >= 0 && p->rules[cut].r.action != PX_CUT_BYTES) {
        p->rules[cut].fired++;
        if (p->rules[cut].r.refuse_ms > refuse) refuse = p->rules[cut].r.refuse_ms;
    }

    ev_packet(p, c, dir, buf, size, &k, decoded, why, fate);

    uint64_t left = allow;
    if (reorder >= 0 && fate == PX_REORDERED) {
        for (int i = 0; i < copies; i++) hold_aside(p, c, dir, reorder, buf, size);
    } else {
        for (int i = 0; i < copies && left > 0; i++) {
            size_t n = left < size ? (size_t)left : size;
            emit(p, c, dir, buf, n, delay);
            left -= n;
        }
        if (fate == PX_SENT || fate == PX_DUPLICATED || fate == PX_DELAYED) overtaken(p, c, dir, type);
    }
    if (cut >= 0) {
        char text[256];
        rule_cut_text(p, cut, cut_no, dir, text, sizeof text);
        refuse_for(p, refuse);
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
    for (int i = 0; i < READS_PER_WAKE; i++) {
        if (c->done || c->fd[s] < 0 || c->rd_eof[s]) return;
        if (!hup && !c->blackhole && backlog(&c->d[s]) >= BACKLOG_LIMIT) return;
        ssize_t n = recv(c->fd[s], p->rbuf, READ_SIZE, 0);
        if (n > 0) {
            p->st.bytes[s] += (uint64_t)n;
            take_bytes(p, c, s, p->rbuf, (size_t)n);
            if (n < READ_SIZE) return;
            continue;
        }
        if (n == 0) {
            source_ended(p, c, s, 0);
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        source_ended(p, c, s, errno);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* Connections                                                        */

static void connect_failed(proxy *p, px_conn *c, int err)
{
    ev_text(p, c, PX_EV_ERROR, PX_UP, "cannot reach the broker at %s: %s", p->up_text, strerror(err));
    hard_close(p, c, "the broker could not be reached");
}

static void finish_connect(proxy *p, px_conn *c)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(c->fd[SIDE_BROKER], SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
    if (soerr == EINPROGRESS || soerr == EALREADY) return;
    c->connecting = 0;
    if (soerr) {
        /* Nothing was read from the broker: the client's side decides. */
        close(c->fd[SIDE_BROKER]);
        c->fd[SIDE_BROKER] = -1;
        connect_failed(p, c, soerr);
        return;
    }
    set_interest(p, c, SIDE_BROKER);
}

/* Open the upstream socket and register it; c->connecting while a TCP
 * connect is in progress. Returns 0 or an errno (EAGAIN: a unix
 * listener's backlog is full, try again later). */
static int up_connect(proxy *p, px_conn *c)
{
    int fd = socket(p->up.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    /* Latency matters: the bench compares QoS 1 streams through the proxy
     * with direct ones, and Nagle would add tens of ms per exchange. */
    int one = 1;
    if (!p->up_unix) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int connecting = 0;
    if (connect(fd, &p->up.sa, p->up_len) != 0) {
        int e = errno;
        if (e != EINPROGRESS) {
            close(fd);
            return e;
        }
        connecting = 1;
    }
    struct epoll_event ev = { .events = connecting ? EPOLLOUT : EPOLLIN, .data.ptr = &c->tags[SIDE_BROKER] };
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    c->fd[SIDE_BROKER] = fd;
    c->mask[SIDE_BROKER] = ev.events;
    c->connecting = connecting;
    return 0;
}

/* A unix upstream is waiting for room in the broker's backlog: no
 * socket meanwhile (an unconnected unix socket reports a hang-up to
 * epoll), only c->connecting and a time to try again. */
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

static void conn_open(proxy *p, int cfd, const struct sockaddr_in *peer)
{
    px_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(cfd);
        return;
    }
    c->id = ++p->next_id;
    c->fd[SIDE_CLIENT] = cfd;
    c->fd[SIDE_BROKER] = -1;
    c->closer = -1;
    for (int s = 0; s < 2; s++) {
        c->tags[s].kind = TAG_SOCK;
        c->tags[s].c = c;
        c->tags[s].side = s;
        pkt_stream_init(&c->d[s].in, p->max_packet);
    }
    c->next = p->conns;
    if (p->conns) p->conns->prev = c;
    p->conns = c;
    p->open_conns++;
    p->st.connections++;

    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->tags[SIDE_CLIENT] };
    int err = epoll_ctl(p->epfd, EPOLL_CTL_ADD, cfd, &ev) == 0 ? 0 : errno;
    c->mask[SIDE_CLIENT] = err ? 0 : EPOLLIN;
    if (!err) err = up_connect(p, c);
    if (err == EAGAIN && p->up_unix) {
        retry_later(p, c, now_us());
        err = 0;
    }

    /* The upstream's local port is what the broker's log names ("New
     * connection from 127.0.0.1:PORT"), so the trace says it. A unix
     * socket has no such port: the broker names its own path instead. */
    if (p->up_unix) {
        ev_text(p, c, PX_EV_OPEN, PX_UP, "client 127.0.0.1:%d connected; upstream -> %s",
                ntohs(peer->sin_port), p->up_text);
    } else {
        struct sockaddr_in local = { 0 };
        socklen_t ll = sizeof local;
        int uport = 0;
        if (c->fd[SIDE_BROKER] >= 0 &&
            getsockname(c->fd[SIDE_BROKER], (struct sockaddr *)&local, &ll) == 0)
            uport = ntohs(local.sin_port);
        ev_text(p, c, PX_EV_OPEN, PX_UP, "client 127.0.0.1:%d connected; upstream 127.0.0.1:%d -> %s",
                ntohs(peer->sin_port), uport, p->up_text);
    }
    if (err) connect_failed(p, c, err);
}

static void accept_all(proxy *p)
{
    for (;;) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        int fd = accept4(p->lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            ev_text(p, NULL, PX_EV_ERROR, PX_UP, "cannot accept a connection: %s", strerror(errno));
            p->listen_paused_until = now_us() + LISTEN_PAUSE_US;
            struct epoll_event ev = { .events = 0, .data.ptr = &p->ltag };
            epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->lfd, &ev);
            return;
        }
        int64_t now = now_us();
        if (now < p->refuse_until_us) {
            unsigned id = ++p->next_id;
            drain(fd);
            close(fd);
            p->st.refused++;
            px_event *e = ev_new(p, NULL, PX_EV_REFUSED, PX_UP);
            if (e) {
                e->conn = id;
                e->text = kit_strdup_printf("client 127.0.0.1:%d refused (refusing for %lld ms more)",
                                            ntohs(peer.sin_port),
                                            (long long)((p->refuse_until_us - now + 999) / 1000));
            }
            continue;
        }
        conn_open(p, fd, &peer);
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
    if (p->nretry)
        for (const px_conn *c = p->conns; c; c = c->next)
            if (c->retry_at && (next < 0 || c->retry_at < next)) next = c->retry_at;
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

static void dispatch(proxy *p, const struct epoll_event *ev)
{
    px_tag *t = ev->data.ptr;
    if (t->kind == TAG_WAKE) {
        uint64_t v;
        while (read(p->wakefd, &v, sizeof v) > 0) {}
        return;
    }
    if (t->kind == TAG_LISTEN) {
        accept_all(p);
        return;
    }
    px_conn *c = t->c;
    int s = t->side;
    if (c->done || c->fd[s] < 0) return;      /* closed earlier in this batch */
    uint32_t e = ev->events;
    if (s == SIDE_BROKER && c->connecting) {
        finish_connect(p, c);
        conn_pump(p, c);
        return;
    }
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(p, c, s, (e & (EPOLLERR | EPOLLHUP)) != 0);
    /* HUP: the peer can take no more bytes either; what was queued for it
     * is lost (as it would be without the proxy). Without this a hung-up
     * socket with nothing left to read would be reported forever. */
    if (!c->done && c->fd[s] >= 0 && (e & EPOLLHUP) && c->rd_eof[s] && !c->wr_done[s]) {
        c->wr_done[s] = c->wr_failed[s] = 1;
        discard_dir_output(p, &c->d[1 - s]);
    }
    if (!c->done && (e & EPOLLOUT)) flush_dir(p, c, 1 - s);
    conn_pump(p, c);
}

static void *proxy_main(void *arg)
{
    proxy *p = arg;
    struct epoll_event evs[MAX_EPOLL];
    const char *why = "closed by proxy_stop";
    for (;;) {
        int n = epoll_wait(p->epfd, evs, MAX_EPOLL, next_timeout_ms(p));
        int werr = n < 0 ? errno : 0;
        if (werr == EINTR) continue;
        pthread_mutex_lock(&p->mu);
        if (p->stopping) break;
        if (werr) {
            /* Nothing can be waited on any more, and a loop that went on
             * would spin. End it; the owner reads why (proxy_error), and
             * new clients are refused rather than left hanging. */
            snprintf(p->failure, sizeof p->failure, "the proxy's event loop failed (epoll_wait: %s)",
                     strerror(werr));
            ev_text(p, NULL, PX_EV_ERROR, PX_UP, "%s; it stopped and closed every connection", p->failure);
            close(p->lfd);
            p->lfd = -1;
            why = "closed: the proxy's event loop failed";
            break;
        }
        apply_commands(p);
        for (int i = 0; i < n; i++) dispatch(p, &evs[i]);

        int64_t now = now_us();
        if (p->nretry) retry_connects(p, now);
        if (p->nheld || p->nreord) {
            px_conn *next;
            for (px_conn *c = p->conns; c; c = next) {
                next = c->next;
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
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &p->ltag };
            epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->lfd, &ev);
        }
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

static void wake(proxy *p)
{
    uint64_t one = 1;
    ssize_t w = write(p->wakefd, &one, sizeof one);
    (void)w;    /* a full counter already means "wake up" */
}

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
    wake(p);
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
    p->lfd = p->epfd = p->wakefd = -1;
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
    p->ltag.kind = TAG_LISTEN;
    p->wtag.kind = TAG_WAKE;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    p->chunks = calloc(EV_CHUNKS, sizeof *p->chunks);
    p->rbuf = malloc(READ_SIZE);
    if (!p->chunks || !p->rbuf) {
        rc = kit_seterr(err, KIT_ERR, "proxy: out of memory");
        goto cleanup;
    }

    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->lfd < 0) {
        rc = kit_seterr(err, KIT_ERR, "proxy: socket: %s", strerror(errno));
        goto cleanup;
    }
    int one = 1;
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->listen_port) };
    la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t ll = sizeof la;
    if (bind(p->lfd, (struct sockaddr *)&la, sizeof la) != 0 || listen(p->lfd, 128) != 0 ||
        getsockname(p->lfd, (struct sockaddr *)&la, &ll) != 0) {
        rc = kit_seterr(err, KIT_ERR, "proxy: cannot listen on 127.0.0.1:%d: %s", o->listen_port,
                        strerror(errno));
        goto cleanup;
    }
    p->port = ntohs(la.sin_port);

    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->epfd < 0 || p->wakefd < 0) {
        rc = kit_seterr(err, KIT_ERR, "proxy: epoll/eventfd: %s", strerror(errno));
        goto cleanup;
    }
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &p->ltag };
    struct epoll_event wev = { .events = EPOLLIN, .data.ptr = &p->wtag };
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->lfd, &lev) != 0 ||
        epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &wev) != 0) {
        rc = kit_seterr(err, KIT_ERR, "proxy: epoll_ctl: %s", strerror(errno));
        goto cleanup;
    }

    p->t0_us = now_us();
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
    return p ? p->port : 0;
}

int proxy_add_rule(proxy *p, const px_rule *r, char *err)
{
    if (!p || !r) {
        kit_seterr(err, KIT_EINVAL, "proxy_add_rule: no proxy or no rule");
        return -1;
    }
    const char *bad = NULL;
    if (r->action < PX_DROP || r->action > PX_REORDER) bad = "unknown action";
    else if (r->type < 0 || r->type > 15) bad = "the packet type must be 0 (any) or 1..15";
    else if (r->dir != PX_UP && r->dir != PX_DOWN && r->dir != PX_ANY) bad = "the direction must be up, down or any";
    else if (r->delay_ms < 0) bad = "delay_ms must not be negative";
    else if (r->refuse_ms < 0) bad = "refuse_ms must not be negative";
    else if (!memchr(r->client_id, '\0', sizeof r->client_id)) bad = "client_id is not NUL-terminated";
    if (bad) {
        kit_seterr(err, KIT_EINVAL, "proxy rule: %s", bad);
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    if (p->nrules == p->caprules) {
        int ncap = p->caprules ? p->caprules * 2 : 8;
        p->rules = kit_xrealloc(p->rules, (size_t)ncap * sizeof *p->rules);
        p->caprules = ncap;
    }
    int idx = p->nrules++;
    px_rule_state *ru = &p->rules[idx];
    memset(ru, 0, sizeof *ru);
    ru->r = *r;
    ru->active = 1;
    pthread_mutex_unlock(&p->mu);
    return idx;
}

unsigned proxy_rule_fired(proxy *p, int idx)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    unsigned n = idx >= 0 && idx < p->nrules ? p->rules[idx].fired : 0;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void proxy_clear_rules(proxy *p)
{
    if (!p) return;
    /* Kept, inactive, so that an index handed out earlier still answers
     * proxy_rule_fired(). */
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nrules; i++) p->rules[i].active = 0;
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
    return &p->chunks[i / EV_PER_CHUNK][i % EV_PER_CHUNK];
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
    pthread_mutex_unlock(&p->mu);
}

void proxy_stop(proxy *p)
{
    if (!p) return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stopping = 1;
        pthread_mutex_unlock(&p->mu);
        wake(p);
        pthread_join(p->thread, NULL);
        p->thread_started = 0;
    }
    if (p->lfd >= 0) close(p->lfd);
    if (p->wakefd >= 0) close(p->wakefd);
    if (p->epfd >= 0) close(p->epfd);
    p->lfd = p->wakefd = p->epfd = -1;
}

void proxy_free(proxy *p)
{
    if (!p) return;
    proxy_stop(p);
    if (p->chunks) {
        for (size_t i = 0; i < p->nev; i++)
            ev_free_strings(&p->chunks[i / EV_PER_CHUNK][i % EV_PER_CHUNK]);
        for (size_t k = 0; k < EV_CHUNKS; k++) free(p->chunks[k]);
        free(p->chunks);
    }
    free(p->rules);
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

int px_action_from_name(const char *name)
{
    if (!name) return -1;
    char buf[32];
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof buf) return -1;
    for (size_t i = 0; i <= n; i++) buf[i] = name[i] == '-' ? '_' : name[i];
    for (int a = PX_DROP; a <= PX_REORDER; a++)
        if (strcasecmp(buf, action_names[a]) == 0) return a;
    return -1;
}
