/*
 * bench.c - the load generator (see bench.h).
 *
 * Every client is one net_conn (net.h: plain TCP, or TLS over it) in one
 * net_loop, speaking MQTT 3.1.1 through the kit's own codec: packet.c's
 * encoder writes, its pkt_frame() and pkt_stream frame what comes back,
 * pkt_decode() reads it. No client library: libmosquitto keeps a socket
 * pair beside each client's socket (three fds a client) and writes each
 * packet with its own syscall.
 *
 * Writing is batched. A client's packets go into its output buffer; the
 * buffers of every client touched are sent once per turn of the loop,
 * with one send() each: one syscall for a whole window of PUBLISHes, or
 * for all the PUBACKs the subscriber owes after a read. (The broker's
 * side does not change: mosquitto 2.0 reads each packet with three
 * read() calls and answers each with its own write().)
 *
 * Each publisher keeps at most `window` messages unacknowledged (see
 * WINDOW_QOS1 for why these sizes). The packet ids in flight sit in a
 * small table of `window` slots indexed by id % window, allocated at the
 * first publish. Under heavy load, turns of the loop rest a little in
 * between, so that each moves many packets at once (see PACE_NS_PER_SLOT).
 *
 * Pacing is by deadline, not by sleeping per message: at each turn the
 * loop computes how many messages the schedule wanted by now and sends
 * the difference round-robin over the connected publishers. A slow turn
 * thus catches up instead of lowering the rate.
 *
 * Memory: an idle client is its struct (200 bytes) and its net_conn
 * (240, most of it the room for a failure in words). An output buffer
 * is kept once sent only while it is small (OBUF_KEEP: a window of
 * publishes; 256 bytes after a CONNECT), input buffers are freed as soon
 * as no part of a packet is left in them, so ten thousand held
 * connections cost a few megabytes (ten thousand full burst windows,
 * some 40 MB). Reads go through one 64 KB buffer per run. A TLS
 * client adds OpenSSL's session, some 40 KB even with its buffers
 * released when idle.
 *
 * Threads: bench_run keeps everything in its own struct bench (no
 * globals), installs no signal handler (cleanup_init() ignores SIGPIPE;
 * plain sends use MSG_NOSIGNAL) and reads the stop flag atomically, so
 * lua_bench.c may run it in a thread of its own.
 */
#include "bench.h"

#include "cleanup.h"
#include "net.h"
#include "packet.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define KEEPALIVE_S 60
/* Connections being set up at once. mosquitto listens with a backlog of
 * 100: more handshakes than that in flight overflow its accept queue
 * whenever it is slow to accept (just started, or busy), and each one
 * dropped costs a second of SYN retry (measured with 200: 2000 clients
 * took 1.1 s on a fresh broker instead of 0.1 s). */
#define MAX_PENDING 64
/* Messages a publisher may have unacknowledged (QoS 1: PUBACK not seen;
 * QoS 2: PUBCOMP not seen; QoS 0: not yet written). A stock mosquitto
 * (max_inflight_messages 20) keeps at most 20 QoS 2 messages of a 3.1.1
 * client between PUBREC and PUBREL and hangs up on the 21st, so QoS 2
 * stays at 20. QoS 1 publishes are acknowledged at once and count
 * against nothing there; 100 is also what bench/peers/paho_pub.py uses. */
#define WINDOW_QOS1 100
#define WINDOW_QOS2 20
/*
 * Rest between turns of the loop under heavy load: PACE_NS_PER_SLOT per
 * slot of all the publishers' windows (PACE_NS_PER_SLOT_QOS2 at QoS 2),
 * at most PACE_MAX_NS in burst mode and PACE_MAX_RATE_NS in steady and
 * ramp, where latency is the point. One QoS 1 publisher rests 200 us a
 * turn, ten of them 2 ms; one QoS 2 publisher 100 us, ten 1 ms.
 *
 * Without a rest the loop clocks itself on the broker: mosquitto does
 * not set TCP_NODELAY, so its PUBACKs wait (Nagle) until our next
 * packet carries the ACK for the last one; we wake for that segment,
 * send the few publishes its acks allow, which releases the next one...
 * Every turn then moves some ten messages, this process spends a whole
 * core in syscalls, and on a two-core machine the broker slows down for
 * it (measured: 13 us of broker CPU per QoS 1 message instead of 7.5,
 * and half the rate). Resting between turns lets each turn move
 * everything that came meanwhile, in one read and one write a client.
 *
 * How long: acks reach us about two turns after their publish left, so
 * the window must hold more than two rests of the broker's work. A
 * QoS 1 message costs mosquitto 10 to 13 us, so 2 us a slot keeps it
 * busy with room to spare. A QoS 2 message takes two round trips and
 * twice the broker's work; its window is a fifth of QoS 1's (see
 * WINDOW_QOS2), and 5 us a slot is where its writes stop costing more
 * than the broker's work per turn. Measured on two cores, ten
 * publishers, 100,000 messages (bench/limit.sh): QoS 1 at the old cap
 * of 200 us, 54% of the broker's CPU and 71,000 msg/s; uncapped (2 ms),
 * 12% and 75,000 msg/s. QoS 2 at 2 us a slot, 23%; at 5 us, 11%, at the
 * same rate; at 7 us the broker ran short of work and the rate fell by
 * a quarter. The cap, 5 ms, only matters past 25 QoS 1 publishers, whose
 * windows then hold well over 5 ms of the broker's work.
 *
 * The rest applies in burst mode, and in steady and ramp once the
 * offered rate reaches PACE_FROM_RATE: below that the loop sleeps
 * between messages anyway, and a rest would only add to the latency
 * measured at the subscriber. Above it, the latency figures include up
 * to one rest (the subscriber reads once a turn), in exchange for a
 * generator that leaves the CPU to the broker (measured at 30000 msg/s,
 * 20 publishers, QoS 1: p50 0.30 ms instead of 0.06, p99 0.46 instead
 * of 3.6, a third less CPU).
 */
#define PACE_NS_PER_SLOT 2000
#define PACE_NS_PER_SLOT_QOS2 5000
#define PACE_MAX_NS 5000000
#define PACE_MAX_RATE_NS 100000
#define PACE_FROM_RATE 20000.0
#define RBUF_SIZE (64 * 1024)
#define STAMP_EVERY 32
#define OBUF_KEEP 4096
#define TLS_TURN_BYTES (256 * 1024)
#define MAX_ADDRS 4

enum { C_IDLE, C_CONNECTING, C_CONNECTED, C_FAILED, C_CLOSED };
/* Steps of C_CONNECTING. */
enum { P_TCP, P_TLS, P_MQTT };

typedef struct bench bench;

/* One QoS 1/2 message in flight: its packet id (0: free slot) and, at
 * QoS 2, whether PUBREC came (PUBREL sent, PUBCOMP awaited). */
typedef struct {
    uint16_t id;
    uint8_t rel;
} flight;

typedef struct {
    bench *b;
    net_conn *conn;            /* NULL while closed */
    net_io io;                 /* conn's socket in b->loop */
    int idx;                   /* publisher index; -1 for the subscriber */
    uint8_t state, phase;
    uint8_t out_armed;         /* NET_OUT asked for: the socket was full */
    uint8_t out_after_read;    /* a TLS write wanted a read first */
    uint8_t queued;            /* in b->dirty, to be flushed this turn */
    uint8_t subscribed;        /* SUBACK: 1 granted, 2 refused */
    uint8_t ping_out, addr;
    uint16_t next_id;          /* next packet id to try */
    uint32_t hlen;             /* bytes in head */
    uint32_t seq;              /* next sequence number */
    uint32_t q0;               /* QoS 0 messages buffered, not yet written */
    int64_t started_ms;        /* connect started */
    int64_t tx_ms;             /* last bytes written (keepalive) */
    int64_t ping_ms;           /* PINGREQ sent (when ping_out) */
    uint64_t sent, done;       /* publishes encoded; acked (or, QoS 0, written) */
    uint8_t *obuf;             /* pending output, obuf[ooff..olen) */
    uint32_t olen, ooff, ocap;
    pkt_stream in;             /* a partial packet left from the last read */
    flight *fl;                /* `window` slots, publishers only */
    uint8_t *head;             /* a publisher's PUBLISH up to its packet id:
                                  fixed header and topic, encoded once */
} bclient;

typedef struct {
    unsigned char *bits;
    size_t cap;                /* bytes */
} seen_set;

struct bench {
    const bench_opts *o;
    bench_result *r;
    net_loop *loop;
    bclient *c;                /* publishers (or conn clients), then the subscriber */
    int npub;
    bclient *sub;
    uint32_t magic;
    int pid;                   /* for the client ids (getpid is a syscall) */
    int size;
    int window;
    int64_t pace_ns;           /* shortest turn (0: no rest between turns) */
    int64_t turn_ns;           /* when the last turn started */
    int64_t stamp_ns;          /* the clock for the next stamps ... */
    int stamp_left;            /* ... read again after this many */
    unsigned char *payload;
    seen_set *seen;
    int connected, failed, pending;
    int stopping;              /* our own disconnects are not errors */
    uint8_t *rbuf;             /* RBUF_SIZE, shared by every read */
    bclient **dirty;           /* clients with output to send this turn */
    int ndirty;
    struct sockaddr_storage addr[MAX_ADDRS];
    socklen_t alen[MAX_ADDRS];
    int naddr, addr_pref;      /* the address that worked last */
    char resolve_err[160];
    SSL_CTX *tls;
    char *filter;              /* the subscriber's */
    int64_t now_ms;            /* kit_now_ms() at the end of the last turn */
    /* the current second */
    uint64_t s_sent, s_acked, s_received;
    hist_t *s_lat, *s_lat_corr;
    int nsec_cap;
    int64_t t0_ns, sec_end_ns;  /* start of the load, end of the current second */
};

/* Wall-clock seconds since 1970: only to line up runs made on several
 * machines (bench merge); every duration is measured on CLOCK_MONOTONIC. */
static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void note_error(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(bench *b, const char *fmt, ...)
{
    b->r->errors++;
    if (b->r->first_error[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->r->first_error, sizeof b->r->first_error, fmt, ap);
    va_end(ap);
}

/* strerror, thread-safe (GNU strerror_r returns the string to use). */
static const char *errstr(int e, char *buf, size_t len)
{
    return strerror_r(e, buf, len);
}

const char *bench_mode_name(bench_mode m)
{
    switch (m) {
    case BENCH_CONN: return "conn";
    case BENCH_STEADY: return "steady";
    case BENCH_BURST: return "burst";
    case BENCH_RAMP: return "ramp";
    }
    return "?";
}

void bench_opts_init(bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = BENCH_STEADY;
    o->clients = 1;
    o->rate = 1000;
    o->rate_from = 100;
    o->rate_to = 10000;
    o->messages = 10000;
    o->qos = 1;
    o->size = 64;
    o->duration_ms = 10000;
}

long bench_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    /* As root, lift the hard limit too (up to the kernel's nr_open) when
     * it is below what the run needs. */
    if (want > 0 && rl.rlim_max != RLIM_INFINITY && (rlim_t)want > rl.rlim_max) {
        long nr_open = 0;
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        if (f) {
            if (fscanf(f, "%ld", &nr_open) != 1) nr_open = 0;
            fclose(f);
        }
        if (nr_open > 0 && want > nr_open) want = nr_open;
        struct rlimit up = { (rlim_t)want, (rlim_t)want };
        if ((rlim_t)want > rl.rlim_max && setrlimit(RLIMIT_NOFILE, &up) == 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 30 : (long)rl.rlim_cur;
}

void bench_topic_filter(const char *tmpl, char *out, size_t outlen)
{
    size_t n = 0;
    if (!outlen) return;
    /* Level by level: one that holds {i} anywhere ("sensor-{i}") becomes
     * a whole '+', since a wildcard cannot share a level with text. */
    for (const char *p = tmpl; ; ) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int has_i = 0;
        for (size_t k = 0; k + 3 <= len; k++) has_i |= strncmp(p + k, "{i}", 3) == 0;
        const char *src = has_i ? "+" : p;
        size_t sl = has_i ? 1 : len;
        for (size_t k = 0; k < sl && n + 1 < outlen; k++) out[n++] = src[k];
        if (!end) break;
        if (n + 1 < outlen) out[n++] = '/';
        p = end + 1;
    }
    out[n] = '\0';
}

/* The template with {i} replaced by the index (malloc'd). */
static char *topic_for(const char *tmpl, int idx)
{
    char num[16];
    snprintf(num, sizeof num, "%d", idx);
    size_t cap = strlen(tmpl) + 1, n = 0;
    for (const char *p = tmpl; (p = strstr(p, "{i}")); p += 3) cap += strlen(num);
    char *s = kit_xmalloc(cap);
    for (const char *p = tmpl; *p; ) {
        if (strncmp(p, "{i}", 3) == 0) { memcpy(s + n, num, strlen(num)); n += strlen(num); p += 3; }
        else s[n++] = *p++;
    }
    s[n] = '\0';
    return s;
}

/* ---- a client's socket ---------------------------------------------------- */

static void arm_out(bclient *c, int on)
{
    if (!c->conn || c->out_armed == on) return;
    if (net_set(&c->io, NET_IN | (on ? NET_OUT : 0)) == 0) c->out_armed = (uint8_t)on;
}

/* Close the connection and free every buffer (the struct stays). */
static void client_close(bclient *c)
{
    if (c->conn) {
        net_del(&c->io);
        net_close(c->conn, 0);
        c->conn = NULL;
    }
    c->out_armed = 0;
    c->out_after_read = 0;
    free(c->obuf);
    c->obuf = NULL;
    c->olen = c->ooff = c->ocap = 0;
    c->q0 = 0;
    pkt_stream_free(&c->in);
    free(c->fl);
    c->fl = NULL;
}

/* A client that will not connect, or lost its connection. */
static void client_down(bclient *c, const char *why)
{
    bench *b = c->b;
    if (c->state == C_CONNECTING) {
        b->pending--;
        b->failed++;
        c->state = C_FAILED;
        note_error(b, "cannot connect: %s", why);
    } else if (c->state == C_CONNECTED) {
        b->connected--;
        c->state = C_CLOSED;
        if (!b->stopping) note_error(b, "connection lost: %s", why);
    }
    client_close(c);
}

static void client_downf(bclient *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void client_downf(bclient *c, const char *fmt, ...)
{
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    client_down(c, why);
}

/* The connection failed (NET_FAIL): say why, in bench's words. A TLS
 * failure names the certificate check when that is what refused the
 * broker, as a student reading first_error needs to know. */
static void conn_failed(bclient *c)
{
    net_conn *k = c->conn;
    SSL *ssl = net_tls_ssl(k);
    if (!ssl) {
        char eb[128];
        client_down(c, net_why(k)[0] ? net_why(k) : errstr(k->err, eb, sizeof eb));
        return;
    }
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK)
        client_downf(c, "TLS: the broker's certificate was not accepted (%s)", X509_verify_cert_error_string(v));
    else if (k->err == ECONNRESET && !strstr(net_why(k), "reset"))
        /* net.c's ECONNRESET without the word: an end of stream in the
         * middle of TLS, not a reset */
        client_down(c, "the broker closed the connection");
    else if (strncmp(net_why(k), "TLS", 3) == 0)
        client_down(c, net_why(k));
    else
        client_downf(c, "TLS: %s", net_why(k));
}

/* Room for n more bytes of output; NULL once the client is down. */
static uint8_t *out_room(bclient *c, size_t n)
{
    if (!c->conn) return NULL;
    size_t need = (size_t)c->olen + n;
    if (need > UINT32_MAX) {
        client_down(c, "more than 4 GB of output pending");
        return NULL;
    }
    if (need > c->ocap) {
        if (c->ooff) {                 /* a partial send left room at the front */
            memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
            c->olen -= c->ooff;
            c->ooff = 0;
            need = (size_t)c->olen + n;
        }
        if (need > c->ocap) {
            size_t cap = c->ocap ? c->ocap : 256;
            while (cap < need) cap *= 2;
            c->obuf = kit_xrealloc(c->obuf, cap);
            c->ocap = (uint32_t)cap;
        }
    }
    return c->obuf + c->olen;
}

/* Send it this turn (with whatever else the client has by then). */
static void queue_out(bclient *c)
{
    if (c->queued || c->out_armed || !c->conn) return;
    c->queued = 1;
    c->b->dirty[c->b->ndirty++] = c;
}

/* Write what the client has pending, until done or the socket is full.
 * Returns -1 when the client went down. */
static int flush(bclient *c)
{
    bench *b = c->b;
    if (!c->conn) return -1;
    while (c->ooff < c->olen) {
        ssize_t n = net_write(c->conn, c->obuf + c->ooff, c->olen - c->ooff);
        if (n == NET_AGAIN) {
            /* A TLS write that must read first is retried on the next
             * NET_IN (service() flushes after reading). */
            if (c->conn->want & NET_OUT) arm_out(c, 1);
            else c->out_after_read = 1;
            return 0;
        }
        if (n < 0) {
            conn_failed(c);
            return -1;
        }
        c->ooff += (uint32_t)n;
        c->tx_ms = b->now_ms;
    }
    /* All out: QoS 0 publishes count as done once written. */
    if (c->q0) {
        c->done += c->q0;
        b->r->acked += c->q0;
        b->s_acked += c->q0;
        c->q0 = 0;
    }
    /* A small buffer is kept for the next turn (a window of publishes
     * fits in it), a large one freed. */
    if (c->ocap > OBUF_KEEP) {
        free(c->obuf);
        c->obuf = NULL;
        c->ocap = 0;
    }
    c->olen = c->ooff = 0;
    arm_out(c, 0);
    return 0;
}

static void flush_dirty(bench *b)
{
    /* flush() never queues, so the list does not grow meanwhile. */
    for (int i = 0; i < b->ndirty; i++) {
        bclient *c = b->dirty[i];
        c->queued = 0;
        if (c->conn && !c->out_armed) flush(c);
    }
    b->ndirty = 0;
}

/* Append one 4-byte acknowledgement (PUBACK..PUBCOMP). */
static void send_ack(bclient *c, int type, int id)
{
    uint8_t *p = out_room(c, 4);
    if (!p) return;
    c->olen += (uint32_t)pkt_enc_ack(p, 4, type, id);
    queue_out(c);
}

/* Encode CONNECT into the client's output; -1 when the client went down. */
static int queue_connect(bclient *c)
{
    bench *b = c->b;
    const bench_opts *o = b->o;
    char id[BENCH_ID_PREFIX_MAX + 40];
    if (o->id_prefix && c->idx < 0) snprintf(id, sizeof id, "%.*ssub", BENCH_ID_PREFIX_MAX, o->id_prefix);
    else if (o->id_prefix) snprintf(id, sizeof id, "%.*s%d", BENCH_ID_PREFIX_MAX, o->id_prefix, c->idx);
    else if (c->idx < 0) snprintf(id, sizeof id, "mqlab-bench-%d-%04x-sub", b->pid, b->magic & 0xffff);
    else snprintf(id, sizeof id, "mqlab-bench-%d-%04x-%d", b->pid, b->magic & 0xffff, c->idx);
    pkt_connect_opts co = { .client_id = id, .clean = 1, .keepalive = KEEPALIVE_S,
                            .username = o->username, .password = o->username ? o->password : NULL };
    size_t need = 32 + strlen(id) + (o->username ? strlen(o->username) : 0) + (o->password ? strlen(o->password) : 0);
    uint8_t *p = out_room(c, need);
    if (!p) return -1;
    int n = pkt_enc_connect(p, need, &co);
    if (n < 0) {
        client_down(c, "the user name or password is too long for MQTT");
        return -1;
    }
    c->olen += (uint32_t)n;
    return 0;
}

static void send_connect(bclient *c)
{
    if (queue_connect(c) != 0) return;
    c->phase = P_MQTT;
    flush(c);
}

static const char *connack_reason(int rc)
{
    switch (rc) {
    case 1: return "connection refused: unacceptable protocol version";
    case 2: return "connection refused: identifier rejected";
    case 3: return "connection refused: broker unavailable";
    case 4: return "connection refused: bad user name or password";
    case 5: return "connection refused: not authorised";
    }
    return "connection refused";
}

/* ---- connecting ----------------------------------------------------------- */

static void on_io(net_io *io, unsigned events);
static int tcp_failed(bclient *c, int e);

/* Open the socket towards address k and start the TCP handshake (with
 * TCP_NODELAY: net_connect sets it). */
static int tcp_start(bclient *c, int k)
{
    bench *b = c->b;
    char eb[128];
    c->addr = (uint8_t)k;
    c->phase = P_TCP;
    int in_progress;
    int fd = net_connect((struct sockaddr *)&b->addr[k], b->alen[k], &in_progress);
    if (fd < 0) {
        client_down(c, errstr(errno, eb, sizeof eb));
        return -1;
    }
    c->conn = net_tcp(fd);
    unsigned mask = NET_IN | NET_OUT;
    if (!b->tls) {
        /*
         * Plain MQTT: send CONNECT at once. On loopback the handshake is
         * usually over by the time connect() returns (the kernel plays
         * both ends inside the call), and a send on a socket still
         * connecting only says EAGAIN: then CONNECT waits in the buffer
         * for NET_OUT, as before. Saves a getsockopt, an epoll_ctl and a
         * wakeup per connection (the CPU they cost is lost in the noise
         * beside the handshake's own: bench conn went from 0.51 to
         * 0.48 CPU-s for 10,000 connections). TLS waits for NET_OUT: its
         * handshake comes first.
         */
        if (queue_connect(c) != 0) return -1;
        ssize_t n = net_write(c->conn, c->obuf, c->olen);
        if (n >= 0) {
            b->addr_pref = c->addr;
            c->phase = P_MQTT;
            c->ooff = (uint32_t)n;
            c->tx_ms = kit_now_ms();
            if (c->ooff == c->olen) {
                c->olen = c->ooff = 0;
                mask = NET_IN;
            }
        } else if (n != NET_AGAIN) {
            return tcp_failed(c, c->conn->err);
        }
    }
    /* NET_OUT says when the handshake is over (either way), or when the
     * rest of CONNECT can go. */
    int e = net_add(b->loop, &c->io, fd, mask, on_io, c);
    if (e) {
        client_down(c, errstr(e, eb, sizeof eb));
        return -1;
    }
    c->out_armed = (mask & NET_OUT) != 0;
    return 0;
}

/* The connection to address c->addr failed with errno e: try the next
 * address ("localhost" may name ::1 first while the broker listens on
 * 127.0.0.1 only), or give up. */
static int tcp_failed(bclient *c, int e)
{
    char eb[128];
    if (c->addr + 1 < c->b->naddr) {
        net_del(&c->io);
        net_close(c->conn, 0);
        c->conn = NULL;
        c->out_armed = 0;
        c->olen = c->ooff = 0;
        return tcp_start(c, c->addr + 1);
    }
    client_down(c, errstr(e, eb, sizeof eb));
    return -1;
}

static void client_start(bench *b, bclient *c)
{
    c->state = C_CONNECTING;
    c->started_ms = kit_now_ms();
    b->pending++;
    pkt_stream_init(&c->in, 0);
    if (b->naddr == 0) {
        client_down(c, b->resolve_err);
        return;
    }
    tcp_start(c, b->addr_pref);
}

static void tls_step(bclient *c)
{
    int k = net_handshake(c->conn);
    if (k == 0) {
        arm_out(c, 0);
        send_connect(c);
        return;
    }
    if (k == NET_AGAIN) {
        arm_out(c, (c->conn->want & NET_OUT) != 0);
        return;
    }
    conn_failed(c);
}

/* The TCP handshake is over: go on with TLS, or with CONNECT. */
static void tcp_done(bclient *c)
{
    bench *b = c->b;
    /* NET_OUT (or an error) on a connecting socket: the connect is over,
     * and SO_ERROR alone says how. (net_connect_result would also ask
     * getpeername, one more syscall per connection, to tell a connect
     * still going, which epoll does not report.) */
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(c->conn->fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0) e = errno;
    if (e) {
        tcp_failed(c, e);
        return;
    }
    b->addr_pref = c->addr;
    if (!b->tls) {
        /* CONNECT has waited in the buffer (tcp_start) */
        c->phase = P_MQTT;
        flush(c);
        return;
    }
    /* TLS takes the socket over from the plain connection (same fd, same
     * net_io). net_tls checks the certificate names the host we dialled,
     * as libmosquitto does unless told to be insecure. */
    net_conn *t = net_tls(c->conn->fd, b->tls, 0, b->o->host);
    if (!t) {
        client_down(c, "TLS: cannot set up the session");
        return;
    }
    net_conn_free(c->conn);
    c->conn = t;
    c->phase = P_TLS;
    tls_step(c);
}

/* ---- what the broker sends -------------------------------------------------- */

/* Mark seq seen for a publisher; returns 1 if it was already. */
static int seen_test_set(seen_set *s, uint32_t seq)
{
    size_t byte = seq / 8;
    if (byte >= s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap <= byte) cap *= 2;
        s->bits = kit_xrealloc(s->bits, cap);
        memset(s->bits + s->cap, 0, cap - s->cap);
        s->cap = cap;
    }
    unsigned char m = (unsigned char)(1u << (seq % 8));
    int was = (s->bits[byte] & m) != 0;
    s->bits[byte] |= m;
    return was;
}

/* A message at the subscriber: ours (the stamp's magic) or not, it is
 * counted once, with its latency. */
static void on_message(bench *b, pkt_bytes pl)
{
    if (pl.len < BENCH_MIN_SIZE) return;
    const unsigned char *p = pl.p;
    uint32_t magic, pub, seq, sent_us, late_us;
    memcpy(&magic, p, 4);
    memcpy(&pub, p + 4, 4);
    memcpy(&seq, p + 8, 4);
    memcpy(&sent_us, p + 12, 4);
    memcpy(&late_us, p + 16, 4);
    /* Another run's leftovers (or someone else's traffic) are not ours. */
    if (magic != b->magic || pub >= (uint32_t)b->npub) return;
    if (seen_test_set(&b->seen[pub], seq)) {
        b->r->duplicates++;
        return;
    }
    /* The send time is microseconds since the load started, modulo 2^32
     * (71 minutes): the difference modulo 2^32 is right for any latency
     * under that, however long the run. */
    int64_t now_us = (now_ns() - b->t0_ns) / 1000;
    uint64_t us = (uint32_t)((uint32_t)now_us - sent_us);
    uint64_t corr = us + late_us;
    hist_record(b->r->latency, us);
    hist_record(b->s_lat, us);
    hist_record(b->r->latency_corrected, corr);
    hist_record(b->s_lat_corr, corr);
    b->r->received++;
    b->s_received++;
}

static flight *flight_find(bclient *c, int id)
{
    if (!c->fl || id <= 0) return NULL;
    flight *f = &c->fl[id % c->b->window];
    return f->id == id ? f : NULL;
}

/* A publish of ours is over (PUBACK, or PUBCOMP). */
static void flight_done(bclient *c, flight *f)
{
    f->id = 0;
    f->rel = 0;
    c->done++;
    c->b->r->acked++;
    c->b->s_acked++;
}

static void subscribe(bclient *c)
{
    size_t fl = strlen(c->b->filter);
    size_t need = fl + 8;
    uint8_t *p = out_room(c, need);
    if (!p) return;
    int n = pkt_enc_subscribe(p, need, 1, c->b->filter, c->b->o->qos);
    if (n < 0) {
        note_error(c->b, "cannot subscribe to %s", c->b->filter);
        return;
    }
    c->olen += (uint32_t)n;
    queue_out(c);
}

/* One whole packet from the broker. Returns -1 when the client went down
 * (its buffers are then gone). */
static int handle(bclient *c, const uint8_t *buf, size_t len)
{
    bench *b = c->b;
    pkt p;
    char err[KIT_ERRLEN];
    if (pkt_decode(buf, len, PKT_V311, &p, err) != KIT_OK) {
        client_downf(c, "bad packet from the broker: %s", err);
        return -1;
    }
    if (c->state == C_CONNECTING) {
        if (p.type != PKT_CONNACK) {
            client_downf(c, "%s before CONNACK", pkt_type_name(p.type));
            return -1;
        }
        if (p.reason != 0) {
            client_down(c, connack_reason(p.reason));
            return -1;
        }
        b->pending--;
        b->connected++;
        c->state = C_CONNECTED;
        if (c->idx < 0) subscribe(c);
        return c->conn ? 0 : -1;
    }
    flight *f;
    switch (p.type) {
    case PKT_PUBACK:
        if ((f = flight_find(c, p.packet_id)) && b->o->qos == 1) flight_done(c, f);
        break;
    case PKT_PUBREC:
        if ((f = flight_find(c, p.packet_id)) && b->o->qos == 2) {
            f->rel = 1;
            send_ack(c, PKT_PUBREL, p.packet_id);
        }
        break;
    case PKT_PUBCOMP:
        if ((f = flight_find(c, p.packet_id)) && f->rel) flight_done(c, f);
        break;
    case PKT_PUBLISH:
        /* QoS 2 is counted when the PUBLISH arrives (the receiver may
         * pass the message on then; a resent one is a duplicate by its
         * sequence number anyway), and PUBREL is answered below. */
        on_message(b, p.payload);
        if (p.qos == 1) send_ack(c, PKT_PUBACK, p.packet_id);
        else if (p.qos == 2) send_ack(c, PKT_PUBREC, p.packet_id);
        break;
    case PKT_PUBREL:
        send_ack(c, PKT_PUBCOMP, p.packet_id);
        break;
    case PKT_SUBACK:
        if (p.ncodes >= 1 && p.codes[0] <= 2) {
            c->subscribed = 1;
        } else {
            c->subscribed = 2;         /* refused: the load goes on, unheard */
            note_error(b, "the broker refused the subscription to %s", b->filter);
        }
        break;
    case PKT_PINGRESP:
        c->ping_out = 0;
        break;
    default:
        note_error(b, "unexpected %s from the broker", pkt_type_name(p.type));
        break;
    }
    return c->conn ? 0 : -1;
}

/* How many bytes the packet starting at buf[0..len) has in all, or, when
 * even its fixed header is cut short, len + 1 (at least one more byte). */
static size_t packet_wants(const uint8_t *buf, size_t len)
{
    size_t rem = 0;
    for (size_t i = 1; i < len && i <= 4; i++) {
        rem |= (size_t)(buf[i] & 0x7f) << (7 * (i - 1));
        if (!(buf[i] & 0x80)) return i + 1 + rem;
    }
    return len + 1;
}

/*
 * Bytes read: handle every whole packet, keep the partial one. Packets
 * are framed in place, straight from the read buffer; only a packet cut
 * by the end of a read is copied into the client's pkt_stream, and the
 * next read first tops it up with just the bytes it lacks, so a busy
 * subscriber does not copy every read.
 */
static void take_bytes(bclient *c, const uint8_t *data, size_t n)
{
    char err[KIT_ERRLEN];
    size_t sz, off = 0;
    int rc;
    while (c->in.len > 0 && off < n) {
        size_t want = packet_wants(c->in.buf, c->in.len) - c->in.len;
        if (want > n - off) want = n - off;
        if (pkt_stream_feed(&c->in, data + off, want) != KIT_OK) { client_down(c, "out of memory"); return; }
        off += want;
        rc = pkt_stream_next(&c->in, &sz, err);
        if (rc == PKT_NEED_MORE) continue;
        if (rc != PKT_COMPLETE) { client_downf(c, "bad packet from the broker: %s", err); return; }
        if (handle(c, c->in.buf, sz) != 0) return;
        pkt_stream_consume(&c->in, sz);
        if (c->in.len == 0) pkt_stream_free(&c->in);
    }
    while (off < n) {
        rc = pkt_frame(data + off, n - off, c->in.max, &sz, err);
        if (rc == PKT_NEED_MORE) break;
        if (rc != PKT_COMPLETE) { client_downf(c, "bad packet from the broker: %s", err); return; }
        if (handle(c, data + off, sz) != 0) return;
        off += sz;
    }
    if (off < n && pkt_stream_feed(&c->in, data + off, n - off) != KIT_OK) client_down(c, "out of memory");
}

/*
 * Plain TCP: one read per turn (level-triggered, the rest is announced
 * again). TLS: SSL_read gives one record at a time (mosquitto sends one
 * per packet), and with read-ahead OpenSSL keeps what it pulled from the
 * socket where epoll cannot see it: read until it needs the socket
 * again. So that a busy connection cannot hold the loop, after
 * TLS_TURN_BYTES what OpenSSL still holds (net_pending) waits for the
 * next turn (net_again).
 */
static void on_readable(bclient *c)
{
    bench *b = c->b;
    int tls = b->tls != NULL;
    size_t got = 0;
    for (;;) {
        ssize_t n = net_read(c->conn, b->rbuf, RBUF_SIZE);
        if (n == NET_AGAIN) {
            if (c->conn->want & NET_OUT) arm_out(c, 1);
            return;
        }
        if (n == 0) {
            client_down(c, "the broker closed the connection");
            return;
        }
        if (n < 0) {
            conn_failed(c);
            return;
        }
        take_bytes(c, b->rbuf, (size_t)n);
        if (!c->conn || !tls) return;
        got += (size_t)n;
        if (got >= TLS_TURN_BYTES) {
            if (net_pending(c->conn)) net_again(&c->io);
            return;
        }
    }
}

static void service(bclient *c, unsigned events)
{
    if (!c->conn) return;
    if (c->state == C_CONNECTING && c->phase == P_TCP) {
        if (events & (NET_OUT | NET_ERR | NET_HUP)) tcp_done(c);
        return;
    }
    if (c->state == C_CONNECTING && c->phase == P_TLS) {
        tls_step(c);
        return;
    }
    if (events & (NET_IN | NET_ERR | NET_HUP)) on_readable(c);
    /* Output waits on a full socket (NET_OUT), or on OpenSSL wanting
     * to read first: either way, try again now. (Answers queued by this
     * read wait for the turn's flush, with the publishes of the turn.) */
    if (c->conn && c->ooff < c->olen && (c->out_armed || c->out_after_read)) {
        c->out_after_read = 0;
        flush(c);
    }
}

static void on_io(net_io *io, unsigned events)
{
    service(io->ud, events);
}

/* ---- publishing ------------------------------------------------------------- */

/* Encode one stamped PUBLISH into the publisher's buffer. */
static int publish_one(bench *b, bclient *c)
{
    int qos = b->o->qos, id = 0;
    if (qos > 0) {
        if (!c->fl) c->fl = calloc((size_t)b->window, sizeof *c->fl);
        if (!c->fl) { note_error(b, "out of memory"); return -1; }
        /* The window has room, so a free slot is at most `window` ids away. */
        for (;;) {
            id = c->next_id ? c->next_id : 1;
            c->next_id = (uint16_t)(id + 1);
            if (c->fl[id % b->window].id == 0) break;
        }
    }
    size_t size = (size_t)b->size, need = c->hlen + (qos ? 2u : 0u) + size;
    uint8_t *p = out_room(c, need);
    if (!p) return -1;
    /*
     * The packet: the head encoded at the start (publisher_head), the
     * packet id, and the payload, whose first 20 bytes (BENCH_MIN_SIZE)
     * are the stamp, in host byte order (the subscriber is this
     * process): magic (the run), publisher index, sequence number, send
     * time in microseconds since the load started (modulo 2^32, see
     * on_message), and how late it is sent, in microseconds (saturated
     * at 2^32-1): send time - due time.
     *
     * The send time is the clock read at most STAMP_EVERY messages ago
     * in this turn (reading it costs more than encoding a message: a
     * fifth of the generator's time in a QoS 0 burst over TLS); encoding
     * that many takes a few microseconds, and the whole batch is written
     * after the last of them anyway.
     *
     * Steady mode's schedule wants floor(rate x t) messages by t, so the
     * run's k-th message (k from 0) is due at t0 + (k+1)/rate, and it is
     * never sent before. A generator held back by a full window (a broker
     * or link that stalls) sends the messages that fell due meanwhile
     * late; counting their latency from the send time would omit the
     * wait (coordinated omission), so the subscriber also records
     * receive - due. Burst has no schedule; ramp's is not inverted here:
     * lateness 0, corrected = raw.
     */
    if (b->stamp_left-- <= 0) {
        b->stamp_ns = now_ns();
        b->stamp_left = STAMP_EVERY - 1;
    }
    uint32_t pub = (uint32_t)c->idx, seq = c->seq;
    int64_t t = b->stamp_ns;
    uint32_t sent_us = (uint32_t)((t - b->t0_ns) / 1000), late_us = 0;
    if (b->o->mode == BENCH_STEADY) {
        int64_t due = b->t0_ns + (int64_t)((double)(b->r->sent + 1) * 1e9 / b->o->rate);
        int64_t late = (t - due) / 1000;
        late_us = late <= 0 ? 0 : late >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)late;
    }
    memcpy(p, c->head, c->hlen);
    uint8_t *q = p + c->hlen;
    if (qos) {
        *q++ = (uint8_t)(id >> 8);
        *q++ = (uint8_t)id;
    }
    memcpy(q, b->payload, size);
    memcpy(q, &b->magic, 4);
    memcpy(q + 4, &pub, 4);
    memcpy(q + 8, &seq, 4);
    memcpy(q + 12, &sent_us, 4);
    memcpy(q + 16, &late_us, 4);
    c->olen += (uint32_t)need;
    if (qos > 0) {
        c->fl[id % b->window].id = (uint16_t)id;
        c->fl[id % b->window].rel = 0;
    } else {
        c->q0++;
    }
    c->seq++;
    c->sent++;
    b->r->sent++;
    b->s_sent++;
    queue_out(c);
    return 0;
}

/* One turn of the event loop: send what was queued, wait up to ms, serve
 * what is ready, and send the answers (unless later: the load sends them
 * at the start of the next turn, in one write with the publishes it
 * adds meanwhile; at QoS 2 that halves the writes, as every turn has
 * PUBRELs to send). */
static void turn_later(bench *b, int ms, int answer_now)
{
    flush_dirty(b);
    if (b->pace_ns > 0) {
        int64_t left = b->turn_ns + b->pace_ns - now_ns();
        if (left > 0) {
            struct timespec ts = { 0, (long)left };
            nanosleep(&ts, NULL);
        }
        b->turn_ns = now_ns();
    }
    /* net_wait does not sleep while TLS clients are left with records to
     * read (net_again); net_dispatch serves them after the sockets. */
    int n = net_wait(b->loop, ms < 0 ? 0 : ms);
    b->now_ms = kit_now_ms();
    if (n >= 0) net_dispatch(b->loop);
    if (answer_now) flush_dirty(b);
}

static void turn(bench *b, int ms)
{
    turn_later(b, ms, 1);
}

/* Timeouts and keepalive, about once a second. */
static void misc_all(bench *b)
{
    int64_t now = kit_now_ms();
    b->now_ms = now;
    int tmo = b->o->connect_timeout_ms > 0 ? b->o->connect_timeout_ms : 10000;
    for (int i = 0; i <= b->npub; i++) {
        bclient *c = &b->c[i];
        if (!c->conn) continue;
        if (c->state == C_CONNECTING && now - c->started_ms > tmo) {
            client_down(c, c->phase == P_TCP ? "no TCP connection in time"
                           : c->phase == P_TLS ? "no TLS handshake in time" : "no CONNACK in time");
            continue;
        }
        if (c->state != C_CONNECTED) continue;
        if (c->ping_out && now - c->ping_ms > KEEPALIVE_S * 1000) {
            client_down(c, "keepalive: no PINGRESP");
            continue;
        }
        /* The broker hangs up after 1.5 keepalives of silence; ping well
         * before a whole one has passed. */
        if (!c->ping_out && now - c->tx_ms >= KEEPALIVE_S * 750) {
            uint8_t *p = out_room(c, 2);
            if (!p) continue;
            c->olen += (uint32_t)pkt_enc_pingreq(p, 2);
            c->ping_out = 1;
            c->ping_ms = now;
            queue_out(c);
        }
    }
    flush_dirty(b);
}

/* ---- per-second bookkeeping -------------------------------------------- */

static void close_second(bench *b, double t, double offered)
{
    bench_result *r = b->r;
    if (r->nseconds == b->nsec_cap) {
        b->nsec_cap = b->nsec_cap ? b->nsec_cap * 2 : 64;
        r->seconds = kit_xrealloc(r->seconds, (size_t)b->nsec_cap * sizeof *r->seconds);
    }
    bench_second *s = &r->seconds[r->nseconds++];
    s->t = t;
    s->offered = offered;
    s->sent = b->s_sent;
    s->acked = b->s_acked;
    s->received = b->s_received;
    s->connected = (uint64_t)b->connected;
    s->p50_ms = (double)hist_percentile(b->s_lat, 50) / 1000.0;
    s->p99_ms = (double)hist_percentile(b->s_lat, 99) / 1000.0;
    s->p50_corr_ms = (double)hist_percentile(b->s_lat_corr, 50) / 1000.0;
    s->p99_corr_ms = (double)hist_percentile(b->s_lat_corr, 99) / 1000.0;
    b->s_sent = b->s_acked = b->s_received = 0;
    hist_reset(b->s_lat);
    hist_reset(b->s_lat_corr);
    if (b->o->progress) b->o->progress(s, b->o, b->o->ud);
}

/* Messages the schedule wants sent by t seconds into the load. */
static double scheduled(const bench_opts *o, double t)
{
    double d = o->duration_ms / 1000.0;
    if (t > d) t = d;
    if (o->mode == BENCH_STEADY) return o->rate * t;
    /* ramp: the integral of a rate rising linearly from A to B over d */
    return o->rate_from * t + (o->rate_to - o->rate_from) * t * t / (2.0 * d);
}

static double offered_at(const bench_opts *o, double t)
{
    if (o->mode == BENCH_STEADY) return o->rate;
    if (o->mode == BENCH_RAMP) {
        double d = o->duration_ms / 1000.0;
        return o->rate_from + (o->rate_to - o->rate_from) * (t > d ? d : t) / d;
    }
    return 0;
}

/* ---- phases -------------------------------------------------------------- */

/* Ctrl-C, or the caller's stop flag (another thread may set it). */
static int stopped(const bench *b)
{
    return cleanup_interrupted() || (b->o->stop && __atomic_load_n(b->o->stop, __ATOMIC_RELAXED));
}

/* Start connections (at most MAX_PENDING at once, at connect_rate/s) until
 * every client has connected or failed, or we are interrupted. */
static void connect_all(bench *b, int include_sub)
{
    const bench_opts *o = b->o;
    int total = b->npub + (include_sub ? 1 : 0);
    int64_t t0 = kit_now_ms(), last_misc = t0;
    /* The subscriber goes first, so it is listening before anyone sends. */
    int order0 = include_sub ? -1 : 0;
    int started = 0;
    for (;;) {
        if (stopped(b)) { b->r->interrupted = 1; break; }
        int64_t now = kit_now_ms();
        double allowed = o->connect_rate > 0 ? o->connect_rate * (double)(now - t0) / 1000.0 + 1 : total;
        while (started < total && b->pending < MAX_PENDING && started < allowed) {
            int k = order0 + started;
            client_start(b, k < 0 ? b->sub : &b->c[k]);
            started++;
        }
        if (started == total && b->pending == 0) break;
        turn(b, 5);
        if (kit_now_ms() - last_misc >= 250) { misc_all(b); last_misc = kit_now_ms(); }
    }
}

static void wait_subscribed(bench *b)
{
    int64_t until = kit_now_ms() + 5000;
    while (b->sub && b->sub->state == C_CONNECTED && !b->sub->subscribed && kit_now_ms() < until) {
        if (stopped(b)) { b->r->interrupted = 1; return; }
        turn(b, 10);
    }
    if (b->sub && b->sub->state == C_CONNECTED && !b->sub->subscribed)
        note_error(b, "no SUBACK for the subscriber");
}

/* The next connected publisher after *rr (round-robin) with room in its
 * window, or NULL. */
static bclient *next_pub(bench *b, int *rr)
{
    for (int k = 0; k < b->npub; k++) {
        bclient *c = &b->c[(*rr + k) % b->npub];
        if (c->state == C_CONNECTED && c->sent - c->done < (uint64_t)b->window) {
            *rr = (*rr + k + 1) % b->npub;
            return c;
        }
    }
    return NULL;
}

/* Close the second if it is over (during the load and the drain alike). */
static void tick(bench *b, int64_t now)
{
    if (now < b->sec_end_ns) return;
    double t = (double)(b->sec_end_ns - b->t0_ns) / 1e9;
    /* During the drain the schedule offers nothing. */
    double offered = b->r->load_s > 0 ? 0 : offered_at(b->o, t - 0.5);
    close_second(b, t, offered);
    b->sec_end_ns += 1000000000LL;
}

static void load(bench *b)
{
    const bench_opts *o = b->o;
    int64_t t0 = now_ns();
    int64_t last_misc = kit_now_ms();
    b->r->start_unix = wall_s();
    b->t0_ns = t0;
    b->sec_end_ns = t0 + 1000000000LL;
    int rr = 0;
    int burst = o->mode == BENCH_BURST;
    int64_t end_ns = burst ? INT64_MAX : t0 + (int64_t)o->duration_ms * 1000000LL;
    for (;;) {
        if (stopped(b)) { b->r->interrupted = 1; break; }
        int64_t now = now_ns();
        double t = (double)(now - t0) / 1e9;
        tick(b, now);
        int over = now >= end_ns;   /* still send what fell due up to the end */
        if (burst && b->r->sent >= o->messages) break;
        if (b->connected == 0 || (b->sub && b->connected == 1 && b->sub->state == C_CONNECTED)) {
            note_error(b, "no publisher connected");
            break;
        }
        uint64_t want = burst ? o->messages : (uint64_t)scheduled(o, t);
        b->pace_ns = 0;
        /* No rest at QoS 0: nothing comes back to wait for. */
        if (o->qos > 0 && (burst || offered_at(o, t) >= PACE_FROM_RATE)) {
            int64_t per_slot = o->qos == 2 ? PACE_NS_PER_SLOT_QOS2 : PACE_NS_PER_SLOT;
            b->pace_ns = (int64_t)b->window * per_slot * (b->connected - (b->sub ? 1 : 0));
            int64_t cap = burst ? PACE_MAX_NS : PACE_MAX_RATE_NS;
            if (b->pace_ns > cap) b->pace_ns = cap;
        }
        /* Cap one turn's work so the sockets get served in between. */
        int budget = 4096;
        b->stamp_left = 0;          /* read the clock for this turn's stamps */
        int blocked = 0;
        while (b->r->sent < want && budget-- > 0) {
            bclient *c = next_pub(b, &rr);
            if (!c) { blocked = 1; break; }
            if (publish_one(b, c) != 0) break;
            /* QoS 0 windows empty as they are written, not acked: a full
             * one is written at once (one write a window), so none is
             * left full but behind a full socket, and the load goes on
             * until every socket is. */
            if (o->qos == 0 && c->q0 >= (uint32_t)b->window) flush(c);
        }
        if (over) break;
        int wait_ms = 0;
        if (b->r->sent >= want && !burst) {
            /* Sleep until the next message is due: at least 1 ms (the
             * next turn sends the batch that fell due meanwhile), at most
             * 5 ms, so the seconds and Ctrl-C are noticed on time. */
            double rate = offered_at(o, t);
            wait_ms = rate > 0 ? (int)(1000.0 / rate) : 5;
            if (o->mode == BENCH_STEADY) {
                /* Until the next message's due time (publish_one), rounded
                 * up to the wait's millisecond: a whole interval from now
                 * could overshoot it by up to an interval, and the
                 * corrected latency would count that (at 200 msg/s, 2.5 ms
                 * of p50 that were the generator's, not the broker's). */
                int64_t due = t0 + (int64_t)((double)(b->r->sent + 1) * 1e9 / o->rate);
                int64_t left = due - now_ns();
                wait_ms = left > 0 ? (int)((left + 999999) / 1000000) : 1;
            }
            if (wait_ms < 1) wait_ms = 1;
            if (wait_ms > 5) wait_ms = 5;
        } else if (blocked) {
            wait_ms = 5;    /* every window is full: the next ack wakes us */
        }
        turn_later(b, wait_ms, 0);
        if (b->now_ms - last_misc >= 1000) { misc_all(b); last_misc = b->now_ms; }
    }
    flush_dirty(b);
    int64_t t_end = now_ns();
    b->r->end_unix = wall_s();
    b->r->load_s = (double)(t_end - t0) / 1e9;
}

/* After the load: wait for the last acks and deliveries. */
static void drain(bench *b)
{
    int ms = b->o->drain_ms > 0 ? b->o->drain_ms : 5000;
    int64_t until = kit_now_ms() + ms, last_misc = kit_now_ms();
    /* The rest the load ended with, if any, keeps the drain light too. */
    while (kit_now_ms() < until && !stopped(b)) {
        int acked_all = b->r->acked >= b->r->sent;
        int got_all = !b->sub || b->sub->state != C_CONNECTED || b->r->received >= b->r->sent;
        if (acked_all && got_all) break;
        turn(b, 10);
        tick(b, now_ns());
        if (kit_now_ms() - last_misc >= 1000) { misc_all(b); last_misc = kit_now_ms(); }
    }
    b->pace_ns = 0;
    if (stopped(b)) b->r->interrupted = 1;
    /* The last, partial second counts too. */
    if (b->s_sent || b->s_acked || b->s_received)
        close_second(b, (double)(now_ns() - b->t0_ns) / 1e9, 0);
}

static void hold(bench *b, int ms)
{
    int64_t until = kit_now_ms() + ms, last_misc = kit_now_ms();
    while (kit_now_ms() < until) {
        if (stopped(b)) { b->r->interrupted = 1; return; }
        int64_t left = until - kit_now_ms();
        turn(b, left > 100 ? 100 : (int)left);
        if (kit_now_ms() - last_misc >= 1000) { misc_all(b); last_misc = kit_now_ms(); }
    }
}

/* Polite DISCONNECTs, a short wait for them to leave, then close all. */
static void close_all(bench *b)
{
    b->stopping = 1;
    b->pace_ns = 0;
    int n = b->npub + 1;
    for (int i = 0; i < n; i++) {
        bclient *c = &b->c[i];
        if (!c->conn || c->state != C_CONNECTED) continue;
        uint8_t *p = out_room(c, 2);
        if (!p) continue;
        c->olen += (uint32_t)pkt_enc_disconnect(p, 2);
        queue_out(c);
    }
    flush_dirty(b);
    int64_t until = kit_now_ms() + 1000;
    while (kit_now_ms() < until) {
        int busy = 0;
        for (int i = 0; i < n && !busy; i++)
            if (b->c[i].conn && b->c[i].state == C_CONNECTED && b->c[i].ooff < b->c[i].olen) busy = 1;
        if (!busy) break;
        turn(b, 10);
    }
    for (int i = 0; i < n; i++) {
        bclient *c = &b->c[i];
        /* TLS: close_notify, not waited for. */
        if (c->conn && c->state == C_CONNECTED && b->tls) net_shutdown(c->conn);
        client_close(c);
        free(c->head);
        c->head = NULL;
    }
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0;   /* ru_maxrss is in KB on Linux */
}

static void find_knee(bench_result *r)
{
    r->knee_s = -1;
    r->knee_rate = 0;
    r->knee_reason[0] = '\0';
    if (r->nseconds < 3) return;
    /* The baseline: the first two seconds, before the load builds up. */
    double base = r->seconds[0].p99_ms > r->seconds[1].p99_ms ? r->seconds[0].p99_ms : r->seconds[1].p99_ms;
    r->base_p99_ms = base;
    for (int i = 2; i < r->nseconds; i++) {
        const bench_second *s = &r->seconds[i];
        /* Only whole seconds of the ramp itself, not the drain after it. */
        if (s->offered <= 0 || s->t - r->seconds[i - 1].t < 0.99) break;
        const char *why = NULL;
        if (base > 0 && s->p99_ms > 5 * base) why = "p99 > 5x baseline";
        else if (s->offered > 0 && (double)s->acked < 0.9 * s->offered) why = "acks < 90% of offered";
        if (why) {
            r->knee_s = s->t;
            r->knee_rate = s->offered;
            snprintf(r->knee_reason, sizeof r->knee_reason, "%s", why);
            return;
        }
    }
}

/* The broker's addresses, looked up once for every client. */
static void resolve(bench *b)
{
    char port[16];
    snprintf(port, sizeof port, "%d", b->o->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(b->o->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(b->resolve_err, sizeof b->resolve_err, "cannot resolve %s: %s", b->o->host, gai_strerror(rc));
        return;
    }
    for (struct addrinfo *a = res; a && b->naddr < MAX_ADDRS; a = a->ai_next) {
        if (a->ai_addrlen > sizeof b->addr[0]) continue;
        memcpy(&b->addr[b->naddr], a->ai_addr, a->ai_addrlen);
        b->alen[b->naddr++] = a->ai_addrlen;
    }
    freeaddrinfo(res);
    if (!b->naddr) snprintf(b->resolve_err, sizeof b->resolve_err, "cannot resolve %s: no address", b->o->host);
}

static int tls_setup(bench *b, char *err)
{
    b->tls = SSL_CTX_new(TLS_client_method());
    if (!b->tls) return kit_seterr(err, KIT_ERR, "TLS: cannot create a context");
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(b->tls, b->o->cafile, NULL) != 1) {
        char buf[200] = "";
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        ERR_clear_error();
        return kit_seterr(err, KIT_EINVAL, "TLS with %s: cannot load the CA file (%s)", b->o->cafile, buf);
    }
    SSL_CTX_set_verify(b->tls, SSL_VERIFY_PEER, NULL);
    /* The output buffer may move between a WANT_WRITE and the retry, and
     * an idle session should not keep 34 KB of OpenSSL buffers. */
    SSL_CTX_set_mode(b->tls, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    /* Pull whole socketfuls, not one record header at a time. */
    SSL_CTX_set_read_ahead(b->tls, 1);
    return KIT_OK;
}

/* Encode, once, what every PUBLISH of publisher c starts with: the
 * fixed header and its topic (the template with {i} replaced). The codec
 * checks the topic here, so publish_one only copies it. */
static int publisher_head(bench *b, bclient *c, char *err)
{
    char *topic = topic_for(b->o->topic, c->idx);
    size_t tl = strlen(topic), size = (size_t)b->size;
    int qos = b->o->qos;
    size_t total = pkt_publish_size(tl, qos, size);
    uint8_t *enc = total ? malloc(total) : NULL;
    int n = enc ? pkt_enc_publish(enc, total, qos, 0, 0, qos ? 1 : 0, topic, b->payload, size) : -1;
    if (n < 0) {
        free(enc);
        int rc = kit_seterr(err, KIT_EINVAL, "cannot publish on \"%s\": %s", topic,
                            tl > 65535 ? "the topic is over 65535 bytes"
                            : !total ? "the message is too large for MQTT" : "not a valid topic name");
        free(topic);
        return rc;
    }
    free(topic);
    c->hlen = (uint32_t)(total - size - (qos ? 2 : 0));
    c->head = kit_xrealloc(enc, c->hlen);
    return KIT_OK;
}

int bench_run(const bench_opts *o_in, bench_result *r, char *err)
{
    memset(r, 0, sizeof *r);
    r->latency = hist_new();
    r->latency_corrected = hist_new();
    r->knee_s = -1;
    bench_opts o = *o_in;
    if (!o.host) o.host = "127.0.0.1";
    if (!o.topic) o.topic = "mqlab/bench/{i}";
    if (o.size < BENCH_MIN_SIZE) o.size = BENCH_MIN_SIZE;
    r->mode = o.mode;
    r->clients = o.clients;
    r->qos = o.qos;
    r->size = o.size;

    if (o.port < 1 || o.port > 65535) return kit_seterr(err, KIT_EINVAL, "port %d is not 1..65535", o.port);
    if (o.clients < 1) return kit_seterr(err, KIT_EINVAL, "clients must be at least 1");
    if (o.qos < 0 || o.qos > 2) return kit_seterr(err, KIT_EINVAL, "qos must be 0, 1 or 2");
    if (o.size > 256 * 1024 * 1024) return kit_seterr(err, KIT_EINVAL, "size %d is too large", o.size);
    if (o.mode == BENCH_STEADY && !(o.rate > 0)) return kit_seterr(err, KIT_EINVAL, "rate must be > 0");
    if (o.mode == BENCH_RAMP && (!(o.rate_from > 0) || !(o.rate_to > 0)))
        return kit_seterr(err, KIT_EINVAL, "ramp rates must be > 0");
    if ((o.mode == BENCH_STEADY || o.mode == BENCH_RAMP) && o.duration_ms <= 0)
        return kit_seterr(err, KIT_EINVAL, "duration must be > 0");
    if (o.mode == BENCH_BURST && o.messages == 0) return kit_seterr(err, KIT_EINVAL, "messages must be > 0");
    if (!*o.topic || strchr(o.topic, '+') || strchr(o.topic, '#') || strlen(o.topic) > 60000)
        return kit_seterr(err, KIT_EINVAL, "topic template '%.100s' is empty, too long or has a wildcard", o.topic);
    if (o.id_prefix && (!*o.id_prefix || strlen(o.id_prefix) > BENCH_ID_PREFIX_MAX))
        return kit_seterr(err, KIT_EINVAL, "the client id prefix must have 1 to %d bytes", BENCH_ID_PREFIX_MAX);

    bench b;
    memset(&b, 0, sizeof b);
    b.o = &o;
    b.r = r;
    b.npub = o.clients;
    b.size = o.size;
    b.window = o.qos == 2 ? WINDOW_QOS2 : WINDOW_QOS1;
    b.now_ms = kit_now_ms();
    int code = KIT_OK;
    b.loop = net_loop_new(err);
    if (!b.loop) return KIT_ERR;
    b.c = calloc((size_t)b.npub + 1, sizeof *b.c);
    b.dirty = calloc((size_t)b.npub + 1, sizeof *b.dirty);
    b.payload = calloc(1, (size_t)o.size);
    b.seen = calloc((size_t)b.npub, sizeof *b.seen);
    b.rbuf = malloc(RBUF_SIZE);
    b.filter = malloc(strlen(o.topic) + 1);
    b.s_lat = hist_new();
    b.s_lat_corr = hist_new();
    if (!b.c || !b.dirty || !b.payload || !b.seen || !b.rbuf || !b.filter) {
        code = kit_seterr(err, KIT_ERR, "out of memory");
        goto cleanup;
    }
    bench_topic_filter(o.topic, b.filter, strlen(o.topic) + 1);
    b.pid = (int)getpid();
    if (getrandom(&b.magic, sizeof b.magic, 0) != sizeof b.magic) b.magic = (uint32_t)now_ns() ^ (uint32_t)b.pid;
    for (int i = 0; i <= b.npub; i++) {
        bclient *c = &b.c[i];
        c->b = &b;
        c->io.fd = -1;
        c->idx = i < b.npub ? i : -1;
        c->next_id = 1;
    }
    for (int i = 0; i < b.npub && o.mode != BENCH_CONN; i++)
        if ((code = publisher_head(&b, &b.c[i], err)) != KIT_OK) goto cleanup;
    if (o.cafile && (code = tls_setup(&b, err)) != KIT_OK) goto cleanup;
    int with_sub = o.mode != BENCH_CONN && !o.no_subscriber;
    if (with_sub) b.sub = &b.c[b.npub];
    resolve(&b);

    int64_t c0 = kit_now_ms();
    connect_all(&b, with_sub);
    double conn_s = (double)(kit_now_ms() - c0) / 1000.0;
    r->connected = b.connected;
    r->failed = b.failed;
    r->connect_rate = conn_s > 0 ? b.connected / conn_s : 0;

    if (!r->interrupted) {
        if (o.mode == BENCH_CONN) {
            hold(&b, o.hold_ms);
            r->connected = b.connected < r->connected ? b.connected : r->connected;
        } else if (b.connected > 0) {
            wait_subscribed(&b);
            if (!r->interrupted) load(&b);
            if (!r->interrupted) drain(&b);
            else if (b.s_sent || b.s_acked || b.s_received)
                close_second(&b, (double)(now_ns() - b.t0_ns) / 1e9, 0);
        }
    }

cleanup:
    if (b.c && b.dirty) close_all(&b);
    else if (b.c) for (int i = 0; i <= b.npub; i++) free(b.c[i].head);
    net_loop_free(b.loop);
    if (b.tls) SSL_CTX_free(b.tls);
    r->rss_mb = peak_rss_mb();
    if (r->sent) {
        r->lost = b.sub && r->received < r->sent ? r->sent - r->received : 0;
        r->rate_sent = r->load_s > 0 ? (double)r->sent / r->load_s : 0;
        r->rate_received = r->load_s > 0 ? (double)r->received / r->load_s : 0;
    }
    if (o.mode == BENCH_RAMP) find_knee(r);
    if (b.seen) for (int i = 0; i < b.npub; i++) free(b.seen[i].bits);
    free(b.seen);
    free(b.payload);
    free(b.dirty);
    free(b.rbuf);
    free(b.filter);
    free(b.c);
    hist_free(b.s_lat);
    hist_free(b.s_lat_corr);
    return code;
}

void bench_result_free(bench_result *r)
{
    if (!r) return;
    hist_free(r->latency);
    hist_free(r->latency_corrected);
    free(r->seconds);
    r->latency = NULL;
    r->latency_corrected = NULL;
    r->seconds = NULL;
    r->nseconds = 0;
}
