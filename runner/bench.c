/*
 * bench.c - the load generator (see bench.h).
 *
 * Why epoll and not libmosquitto's loop: mosquitto_loop() builds an
 * fd_set, which cannot hold a socket numbered 1024 or more, and a
 * connection test wants ten thousand. So every client is a plain
 * non-blocking libmosquitto handle whose socket sits in one epoll set;
 * we call loop_read/loop_write when the kernel says so, ask for EPOLLOUT
 * only while the library has bytes queued, and run loop_misc (keepalive)
 * about once a second. Callbacks only count; the schedule lives in the
 * main loop.
 *
 * Pacing is by deadline, not by sleeping per message: at each turn the
 * loop computes how many messages the schedule wanted by now and sends
 * the difference round-robin over the connected publishers. A slow turn
 * thus catches up instead of lowering the rate.
 */
#include "bench.h"

#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#define KEEPALIVE_S 60
/* Connections being set up at once: more would overflow the broker's
 * listen backlog, and a dropped SYN costs a second of retry. */
#define MAX_PENDING 200
/* Messages a publisher may have handed to the library and not yet seen
 * acknowledged (or, at QoS 0, written) in burst mode: bounds memory. */
#define BURST_WINDOW 64
#define EVENTS 512

enum { C_IDLE, C_CONNECTING, C_CONNECTED, C_FAILED, C_CLOSED };

typedef struct bench bench;

typedef struct {
    struct mosquitto *mosq;
    bench *b;
    int idx;                   /* publisher index; -1 for the subscriber */
    int state;
    int fd;                    /* in the epoll set, or -1 */
    int out;                   /* EPOLLOUT asked for */
    int subscribed;
    int64_t started_ms;
    char *topic;
    uint32_t seq;              /* next sequence number */
    uint64_t sent, done;
} bclient;

typedef struct {
    unsigned char *bits;
    size_t cap;                /* bytes */
} seen_set;

struct bench {
    const bench_opts *o;
    bench_result *r;
    int ep;
    bclient *c;                /* publishers (or conn clients), then the subscriber */
    int npub;
    bclient *sub;
    uint32_t magic;
    int size;
    unsigned char *payload;
    seen_set *seen;
    int connected, failed, pending, next_start;
    int stopping;              /* our own disconnects are not errors */
    /* the current second */
    uint64_t s_sent, s_acked, s_received;
    hist_t *s_lat;
    int nsec_cap;
    int64_t t0_ns, sec_end_ns;  /* start of the load, end of the current second */
};

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
    /* libmosquitto keeps a socket pair beside each client's socket, so a
     * client costs three fds: as root, lift the hard limit too (up to the
     * kernel's nr_open) when it is below what the run needs. */
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
    for (const char *p = tmpl; *p && n + 1 < outlen; ) {
        if (strncmp(p, "{i}", 3) == 0) { out[n++] = '+'; p += 3; }
        else out[n++] = *p++;
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

/* ---- the epoll set ---------------------------------------------------- */

/* Keep the epoll registration in line with the library's socket and its
 * wish to write. Called after anything that may have changed either. */
static void watch(bclient *c)
{
    int fd = c->mosq ? mosquitto_socket(c->mosq) : -1;
    if (fd != c->fd) {
        /* The library closed (or replaced) the socket: a closed fd has
         * already left the set, so only a live new one needs adding. */
        c->fd = -1;
        if (fd >= 0) {
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
            if (mosquitto_want_write(c->mosq)) ev.events |= EPOLLOUT;
            if (epoll_ctl(c->b->ep, EPOLL_CTL_ADD, fd, &ev) == 0) {
                c->fd = fd;
                c->out = (ev.events & EPOLLOUT) != 0;
            }
        }
        return;
    }
    if (fd < 0) return;
    int want = mosquitto_want_write(c->mosq) ? 1 : 0;
    if (want != c->out) {
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
        if (epoll_ctl(c->b->ep, EPOLL_CTL_MOD, fd, &ev) == 0) c->out = want;
    }
}

static void unwatch(bclient *c)
{
    if (c->fd >= 0) epoll_ctl(c->b->ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->fd = -1;
    c->out = 0;
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
    unwatch(c);
}

/* ---- callbacks: they only count ---------------------------------------- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    bclient *c = obj;
    if (c->state != C_CONNECTING) return;
    if (rc != 0) {
        client_down(c, mosquitto_connack_string(rc));
        mosquitto_disconnect(mosq);
        return;
    }
    c->b->pending--;
    c->b->connected++;
    c->state = C_CONNECTED;
    if (c->idx < 0) {
        char filter[512];
        bench_topic_filter(c->b->o->topic, filter, sizeof filter);
        if (mosquitto_subscribe(mosq, NULL, filter, c->b->o->qos) != MOSQ_ERR_SUCCESS)
            note_error(c->b, "cannot subscribe to %s", filter);
    }
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    bclient *c = obj;
    client_down(c, rc == 0 ? "closed" : mosquitto_strerror(rc));
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *granted)
{
    (void)mosq;
    (void)mid;
    bclient *c = obj;
    if (n >= 1 && granted[0] >= 0 && granted[0] <= 2) c->subscribed = 1;
    else note_error(c->b, "the broker refused the subscription");
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    (void)mid;
    bclient *c = obj;
    c->done++;
    c->b->r->acked++;
    c->b->s_acked++;
}

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

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    (void)mosq;
    bclient *c = obj;
    bench *b = c->b;
    if (msg->payloadlen < BENCH_MIN_SIZE) return;
    const unsigned char *p = msg->payload;
    uint32_t magic, pub, seq;
    int64_t t;
    memcpy(&magic, p, 4);
    memcpy(&pub, p + 4, 4);
    memcpy(&seq, p + 8, 4);
    memcpy(&t, p + 12, 8);
    /* Another run's leftovers (or someone else's traffic) are not ours. */
    if (magic != b->magic || pub >= (uint32_t)b->npub) return;
    if (seen_test_set(&b->seen[pub], seq)) {
        b->r->duplicates++;
        return;
    }
    int64_t us = (now_ns() - t) / 1000;
    if (us < 0) us = 0;
    hist_record(b->r->latency, (uint64_t)us);
    hist_record(b->s_lat, (uint64_t)us);
    b->r->received++;
    b->s_received++;
}

/* ---- clients ------------------------------------------------------------ */

static int client_start(bench *b, bclient *c, char *err)
{
    const bench_opts *o = b->o;
    char id[64];
    if (c->idx < 0) snprintf(id, sizeof id, "mqlab-bench-%d-sub", (int)getpid());
    else snprintf(id, sizeof id, "mqlab-bench-%d-%d", (int)getpid(), c->idx);
    c->mosq = mosquitto_new(id, true, c);
    if (!c->mosq) return kit_seterr(err, KIT_ERR, "mosquitto_new: %s", strerror(errno));
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
    mosquitto_message_callback_set(c->mosq, on_message);
    /* The generator paces itself; the library's cap of 20 in flight per
     * client would otherwise be the bottleneck of a one-client run. */
    mosquitto_max_inflight_messages_set(c->mosq, 0);
    if (o->username) mosquitto_username_pw_set(c->mosq, o->username, o->password);
    if (o->cafile) {
        int mrc = mosquitto_tls_set(c->mosq, o->cafile, NULL, NULL, NULL, NULL);
        if (mrc != MOSQ_ERR_SUCCESS)
            return kit_seterr(err, KIT_EINVAL, "TLS with %s: %s", o->cafile, mosquitto_strerror(mrc));
    }
    c->state = C_CONNECTING;
    c->started_ms = kit_now_ms();
    b->pending++;
    errno = 0;
    int mrc = mosquitto_connect_async(c->mosq, o->host, o->port, KEEPALIVE_S);
    if (mrc != MOSQ_ERR_SUCCESS && mrc != MOSQ_ERR_CONN_PENDING) {
        client_down(c, mrc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(mrc));
        return KIT_OK;
    }
    int fd = mosquitto_socket(c->mosq);
    if (fd >= 0) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    watch(c);
    return KIT_OK;
}

static void client_service(bclient *c, uint32_t events)
{
    int rc = MOSQ_ERR_SUCCESS;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = mosquitto_loop_read(c->mosq, 64);
    if (rc == MOSQ_ERR_SUCCESS && (events & EPOLLOUT) && mosquitto_socket(c->mosq) >= 0)
        rc = mosquitto_loop_write(c->mosq, 64);
    if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(c->mosq) < 0)
        client_down(c, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    else
        watch(c);
}

static int publish_one(bench *b, bclient *c)
{
    unsigned char *p = b->payload;
    uint32_t pub = (uint32_t)c->idx, seq = c->seq;
    int64_t t = now_ns();
    memcpy(p, &b->magic, 4);
    memcpy(p + 4, &pub, 4);
    memcpy(p + 8, &seq, 4);
    memcpy(p + 12, &t, 8);
    int mrc = mosquitto_publish(c->mosq, NULL, c->topic, b->size, p, b->o->qos, false);
    if (mrc != MOSQ_ERR_SUCCESS) {
        if (mrc == MOSQ_ERR_NO_CONN || mrc == MOSQ_ERR_CONN_LOST) client_down(c, mosquitto_strerror(mrc));
        else note_error(b, "publish refused: %s", mosquitto_strerror(mrc));
        return -1;
    }
    c->seq++;
    c->sent++;
    b->r->sent++;
    b->s_sent++;
    watch(c);
    return 0;
}

/* One turn of the event loop: wait up to ms, serve what is ready. */
static void turn(bench *b, int ms)
{
    struct epoll_event ev[EVENTS];
    int n = epoll_wait(b->ep, ev, EVENTS, ms < 0 ? 0 : ms);
    for (int i = 0; i < n; i++) {
        bclient *c = ev[i].data.ptr;
        if (c->mosq && c->fd >= 0) client_service(c, ev[i].events);
    }
}

static void misc_all(bench *b)
{
    int64_t now = kit_now_ms();
    int tmo = b->o->connect_timeout_ms > 0 ? b->o->connect_timeout_ms : 10000;
    for (int i = 0; i <= b->npub; i++) {
        bclient *c = &b->c[i];
        if (!c->mosq) continue;
        if (c->state == C_CONNECTING && now - c->started_ms > tmo) {
            client_down(c, "no CONNACK in time");
            mosquitto_disconnect(c->mosq);
            continue;
        }
        if (c->fd >= 0) {
            mosquitto_loop_misc(c->mosq);
            if (mosquitto_socket(c->mosq) < 0) client_down(c, "keepalive");
            else watch(c);
        }
    }
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
    b->s_sent = b->s_acked = b->s_received = 0;
    hist_reset(b->s_lat);
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
static int connect_all(bench *b, int include_sub, char *err)
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
            bclient *c = k < 0 ? b->sub : &b->c[k];
            int rc = client_start(b, c, err);
            if (rc != KIT_OK) return rc;
            started++;
        }
        if (started == total && b->pending == 0) break;
        turn(b, 5);
        if (kit_now_ms() - last_misc >= 250) { misc_all(b); last_misc = kit_now_ms(); }
    }
    return KIT_OK;
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

/* The next connected publisher after *rr (round-robin), or NULL. */
static bclient *next_pub(bench *b, int *rr, int window)
{
    for (int k = 0; k < b->npub; k++) {
        bclient *c = &b->c[(*rr + k) % b->npub];
        if (c->state == C_CONNECTED && (window <= 0 || c->sent - c->done < (uint64_t)window)) {
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
        /* Cap one turn's work so the sockets get served in between. */
        int budget = 2000;
        while (b->r->sent < want && budget-- > 0) {
            bclient *c = next_pub(b, &rr, burst ? BURST_WINDOW : 0);
            if (!c || publish_one(b, c) != 0) break;
        }
        if (over) break;
        int wait_ms = 0;
        if (!burst && b->r->sent >= want) {
            /* Sleep until the next message is due: at least 1 ms (the
             * next turn sends the batch that fell due meanwhile), at most
             * 5 ms, so the seconds and Ctrl-C are noticed on time. */
            double rate = offered_at(o, t);
            wait_ms = rate > 0 ? (int)(1000.0 / rate) : 5;
            if (wait_ms < 1) wait_ms = 1;
            if (wait_ms > 5) wait_ms = 5;
        } else if (burst && b->r->sent < want) {
            wait_ms = 1;   /* every window full: wait for acks */
        }
        turn(b, b->r->sent < want && !burst ? 0 : wait_ms);
        if (kit_now_ms() - last_misc >= 1000) { misc_all(b); last_misc = kit_now_ms(); }
    }
    int64_t t_end = now_ns();
    b->r->load_s = (double)(t_end - t0) / 1e9;
}

/* After the load: wait for the last acks and deliveries. */
static void drain(bench *b)
{
    int ms = b->o->drain_ms > 0 ? b->o->drain_ms : 5000;
    int64_t until = kit_now_ms() + ms, last_misc = kit_now_ms();
    while (kit_now_ms() < until && !stopped(b)) {
        int acked_all = b->r->acked >= b->r->sent;
        int got_all = !b->sub || b->sub->state != C_CONNECTED || b->r->received >= b->r->sent;
        if (acked_all && got_all) break;
        turn(b, 10);
        tick(b, now_ns());
        if (kit_now_ms() - last_misc >= 1000) { misc_all(b); last_misc = kit_now_ms(); }
    }
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
    int n = b->npub + 1;
    for (int i = 0; i < n; i++)
        if (b->c[i].mosq && b->c[i].state == C_CONNECTED) {
            mosquitto_disconnect(b->c[i].mosq);
            if (mosquitto_socket(b->c[i].mosq) >= 0) watch(&b->c[i]);
        }
    int64_t until = kit_now_ms() + 1000;
    while (kit_now_ms() < until) {
        int busy = 0;
        for (int i = 0; i < n && !busy; i++)
            if (b->c[i].mosq && b->c[i].fd >= 0 && mosquitto_want_write(b->c[i].mosq)) busy = 1;
        if (!busy) break;
        turn(b, 10);
    }
    for (int i = 0; i < n; i++) {
        bclient *c = &b->c[i];
        unwatch(c);
        if (c->mosq) mosquitto_destroy(c->mosq);   /* closes its socket */
        c->mosq = NULL;
        free(c->topic);
        c->topic = NULL;
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

int bench_run(const bench_opts *o_in, bench_result *r, char *err)
{
    memset(r, 0, sizeof *r);
    r->latency = hist_new();
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

    bench b;
    memset(&b, 0, sizeof b);
    b.o = &o;
    b.r = r;
    b.npub = o.clients;
    b.size = o.size;
    int code = KIT_OK;
    b.ep = epoll_create1(EPOLL_CLOEXEC);
    if (b.ep < 0) return kit_seterr(err, KIT_ERR, "epoll: %s", strerror(errno));
    b.c = calloc((size_t)b.npub + 1, sizeof *b.c);
    b.payload = calloc(1, (size_t)o.size);
    b.seen = calloc((size_t)b.npub, sizeof *b.seen);
    b.s_lat = hist_new();
    if (!b.c || !b.payload || !b.seen) { code = kit_seterr(err, KIT_ERR, "out of memory"); goto cleanup; }
    if (getrandom(&b.magic, sizeof b.magic, 0) != sizeof b.magic) b.magic = (uint32_t)now_ns() ^ (uint32_t)getpid();
    for (int i = 0; i <= b.npub; i++) {
        b.c[i].b = &b;
        b.c[i].fd = -1;
        b.c[i].idx = i < b.npub ? i : -1;
        if (i < b.npub && o.mode != BENCH_CONN) b.c[i].topic = topic_for(o.topic, i);
    }
    int with_sub = o.mode != BENCH_CONN && !o.no_subscriber;
    if (with_sub) b.sub = &b.c[b.npub];

    mosquitto_lib_init();
    int64_t c0 = kit_now_ms();
    code = connect_all(&b, with_sub, err);
    if (code != KIT_OK) goto cleanup;
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
    if (b.c) close_all(&b);
    if (b.ep >= 0) close(b.ep);
    r->rss_mb = peak_rss_mb();
    if (r->sent) {
        r->lost = b.sub && r->received < r->sent ? r->sent - r->received : 0;
        if (!b.sub) r->lost = 0;
        r->rate_sent = r->load_s > 0 ? (double)r->sent / r->load_s : 0;
        r->rate_received = r->load_s > 0 ? (double)r->received / r->load_s : 0;
    }
    if (o.mode == BENCH_RAMP) find_knee(r);
    if (b.seen) for (int i = 0; i < b.npub; i++) free(b.seen[i].bits);
    free(b.seen);
    free(b.payload);
    free(b.c);
    hist_free(b.s_lat);
    return code;
}

void bench_result_free(bench_result *r)
{
    if (!r) return;
    hist_free(r->latency);
    free(r->seconds);
    r->latency = NULL;
    r->seconds = NULL;
    r->nseconds = 0;
}
