/*
 * mqtt.c - libmosquitto clients driven by hand, without threads.
 *
 * Every open client sits in one registry. mq_pump() polls all their
 * sockets at once and lets libmosquitto read, write and keep alive, so a
 * check that waits on one client never starves another (a subscriber
 * keeps reading while a publisher waits for its PUBACK). The callbacks
 * only record what happened in the client's struct; the waiting
 * functions look at those records between pumps.
 *
 * There is no automatic reconnection: a lab wants to see that a
 * connection was lost, not have it papered over.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mqtt.h"
#include "util.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mosquitto.h>

/* Longest single poll() inside a wait loop: bounds how late we notice a
 * Ctrl-C that arrived just before poll() started. */
#define SLICE_MS 50
/* How long mq_disconnect waits for its DISCONNECT to leave. */
#define DISCONNECT_MS 1000
/* SUBACKs remembered per client until their waiter takes them. */
#define SUBACK_SLOTS 32

struct mq_client {
    struct mosquitto *mosq;    /* NULL once closed */
    char *id;
    char *where;               /* "host:port", for messages */
    int protocol;
    int got_connack, connack_rc;
    int connected;             /* CONNACK 0 seen and no disconnect since */
    /* Completed mids (PUBLISH written / PUBACK / PUBCOMP / UNSUBACK), one
     * bit each: O(1) and no allocation inside callbacks. */
    unsigned char done[65536 / 8];
    struct { int mid, granted, used; } suback[SUBACK_SLOTS];
    int suback_next;
    mq_message_t *head, *tail;
    int nqueued;
    struct mq_client *next;    /* registry */
};

static mq_client_t *registry;
static int lib_ready;
/* mq_pump's poll set, kept between calls to avoid an allocation per pump. */
static struct pollfd *poll_fds;
static mq_client_t **poll_who;
static size_t poll_cap;

/* ---- the mid bitmap ---------------------------------------------------- */

static void done_set(mq_client_t *c, int mid)
{
    mid &= 0xFFFF;
    c->done[mid >> 3] |= (unsigned char)(1u << (mid & 7));
}

static void done_clear(mq_client_t *c, int mid)
{
    mid &= 0xFFFF;
    c->done[mid >> 3] &= (unsigned char)~(1u << (mid & 7));
}

static int done_test(const mq_client_t *c, int mid)
{
    mid &= 0xFFFF;
    return (c->done[mid >> 3] >> (mid & 7)) & 1;
}

/* A new mid was handed out. libmosquitto counts mids up and wraps, so the
 * bit half a cycle ahead belongs to an acknowledgement nobody waited for
 * (a timed-out publish); clearing it now keeps it from looking complete
 * when that mid comes round again. The new mid itself cannot be cleared:
 * a QoS 0 publish completes inside mosquitto_publish. */
static void mid_issued(mq_client_t *c, int mid)
{
    done_clear(c, mid + 32768);
}

/* ---- callbacks: record only -------------------------------------------- */

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    mq_client_t *c = ud;
    c->got_connack = 1;
    c->connack_rc = rc;
    c->connected = (rc == 0);
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
    (void)m; (void)rc;
    mq_client_t *c = ud;
    c->connected = 0;
}

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
    (void)m;
    done_set(ud, mid);
}

static void on_unsubscribe(struct mosquitto *m, void *ud, int mid)
{
    (void)m;
    done_set(ud, mid);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    mq_client_t *c = ud;
    int slot = c->suback_next;
    c->suback_next = (slot + 1) % SUBACK_SLOTS;
    c->suback[slot].mid = mid;
    c->suback[slot].granted = (n > 0 && granted) ? granted[0] : 128;
    c->suback[slot].used = 1;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    mq_client_t *c = ud;
    mq_message_t *q = kit_xmalloc(sizeof *q);
    int len = msg->payloadlen > 0 ? msg->payloadlen : 0;
    q->topic = kit_strdup(msg->topic ? msg->topic : "");
    q->payload = kit_xmalloc((size_t)len + 1);
    if (len) memcpy(q->payload, msg->payload, (size_t)len);
    q->payload[len] = '\0';
    q->len = len;
    q->qos = msg->qos;
    q->retain = msg->retain ? 1 : 0;
    q->mid = msg->mid;
    q->t_ms = kit_now_ms();
    q->next = NULL;
    if (c->tail) c->tail->next = q;
    else c->head = q;
    c->tail = q;
    c->nqueued++;
}

/* ---- registry and pump -------------------------------------------------- */

static void registry_add(mq_client_t *c)
{
    c->next = registry;
    registry = c;
}

static void registry_remove(mq_client_t *c)
{
    for (mq_client_t **p = &registry; *p; p = &(*p)->next)
        if (*p == c) { *p = c->next; c->next = NULL; return; }
}

static int sock_of(const mq_client_t *c)
{
    return c && c->mosq ? mosquitto_socket(c->mosq) : -1;
}

int mq_init(void)
{
    if (lib_ready) return KIT_OK;
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) return KIT_ERR;
    lib_ready = 1;
    return KIT_OK;
}

void mq_cleanup(void)
{
    while (registry) mq_free(registry);
    if (lib_ready) mosquitto_lib_cleanup();
    lib_ready = 0;
    free(poll_fds);
    free(poll_who);
    poll_fds = NULL;
    poll_who = NULL;
    poll_cap = 0;
}

int mq_pump(int timeout_ms)
{
    size_t n = 0;

    if (cleanup_interrupted()) return KIT_EINTR;
    if (timeout_ms < 0) timeout_ms = 0;

    for (mq_client_t *c = registry; c; c = c->next) {
        int fd = sock_of(c);
        if (fd < 0) continue;
        if (n == poll_cap) {
            poll_cap = poll_cap ? poll_cap * 2 : 16;
            poll_fds = kit_xrealloc(poll_fds, poll_cap * sizeof *poll_fds);
            poll_who = kit_xrealloc(poll_who, poll_cap * sizeof *poll_who);
        }
        poll_fds[n].fd = fd;
        poll_fds[n].events = POLLIN | (mosquitto_want_write(c->mosq) ? POLLOUT : 0);
        poll_fds[n].revents = 0;
        poll_who[n++] = c;
    }

    int r = poll(n ? poll_fds : NULL, (nfds_t)n, timeout_ms);
    if (r < 0 && errno != EINTR) return KIT_ERR;
    if (cleanup_interrupted()) return KIT_EINTR;

    for (size_t i = 0; r > 0 && i < n; i++) {
        mq_client_t *c = poll_who[i];
        /* A read or write may find the peer gone; libmosquitto then closes
         * the socket and calls on_disconnect, so check it again. */
        if (poll_fds[i].revents & (POLLIN | POLLHUP | POLLERR))
            mosquitto_loop_read(c->mosq, 1);
        if ((poll_fds[i].revents & POLLOUT) && sock_of(c) >= 0)
            mosquitto_loop_write(c->mosq, 1);
    }
    /* Keepalive: PINGREQ when due, and a dead peer noticed. */
    for (size_t i = 0; i < n; i++)
        if (sock_of(poll_who[i]) >= 0) mosquitto_loop_misc(poll_who[i]->mosq);
    return KIT_OK;
}

/* One step of a wait loop: KIT_EINTR, KIT_ETIMEOUT when the deadline has
 * passed, else pump for at most what is left (and at most a slice). */
static int pump_until(int64_t deadline)
{
    if (cleanup_interrupted()) return KIT_EINTR;
    int64_t left = deadline - kit_now_ms();
    if (left <= 0) return KIT_ETIMEOUT;
    return mq_pump(left > SLICE_MS ? SLICE_MS : (int)left);
}

/* ---- connect ------------------------------------------------------------ */

static void random_id(char *out, size_t len)
{
    unsigned char b[3];
    if (getrandom(b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b) {
        unsigned v = (unsigned)kit_now_ms() ^ ((unsigned)getpid() << 8);
        b[0] = (unsigned char)v; b[1] = (unsigned char)(v >> 8); b[2] = (unsigned char)(v >> 16);
    }
    snprintf(out, len, "mqlab-%02x%02x%02x", b[0], b[1], b[2]);
}

static const char *connack_meaning(int protocol, int rc)
{
    return protocol == 5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc);
}

/* Closes the connection without DISCONNECT and releases libmosquitto's
 * side; the struct stays, with its id and queued messages. shutdown()
 * first: if a child process inherited the socket, close() alone would
 * not end the connection and the broker would never send the will. */
static void close_dirty(mq_client_t *c)
{
    if (!c->mosq) return;
    int fd = mosquitto_socket(c->mosq);
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
    mosquitto_destroy(c->mosq);
    c->mosq = NULL;
    c->connected = 0;
}

static void client_free(mq_client_t *c)
{
    if (!c) return;
    registry_remove(c);
    close_dirty(c);
    for (mq_message_t *m = c->head, *nx; m; m = nx) {
        nx = m->next;
        mq_message_free(m);
    }
    free(c->id);
    free(c->where);
    free(c);
}

int mq_connect(mq_client_t **out, const mq_opts_t *o, int *rc, char *err)
{
    if (out) *out = NULL;
    if (rc) *rc = -1;
    if (!out || !o) return kit_seterr(err, KIT_EINVAL, "mq_connect: missing arguments");
    if (o->port <= 0 || o->port > 65535)
        return kit_seterr(err, KIT_EINVAL, "invalid port %d", o->port);
    int protocol = o->protocol ? o->protocol : 4;
    if (protocol < 3 || protocol > 5)
        return kit_seterr(err, KIT_EINVAL, "invalid MQTT protocol %d (use 3 for 3.1, 4 for 3.1.1, 5 for 5.0)", protocol);
    int keepalive = o->keepalive ? o->keepalive : 60;
    if (keepalive < 5 || keepalive > 65535)
        return kit_seterr(err, KIT_EINVAL, "keepalive must be between 5 and 65535 seconds (got %d)", keepalive);
    if (o->will_topic && (o->will_qos < 0 || o->will_qos > 2))
        return kit_seterr(err, KIT_EINVAL, "will QoS must be 0, 1 or 2 (got %d)", o->will_qos);
    if (mq_init() != KIT_OK)
        return kit_seterr(err, KIT_ERR, "cannot initialise libmosquitto");

    const char *host = o->host ? o->host : "127.0.0.1";
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    char idbuf[16];
    const char *id = o->id;
    if (!id) { random_id(idbuf, sizeof idbuf); id = idbuf; }

    int code = KIT_OK, mrc;
    mq_client_t *c = kit_xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->id = kit_strdup(id);
    c->where = kit_strdup_printf("%s:%d", host, o->port);
    c->protocol = protocol;
    c->connack_rc = -1;

    c->mosq = mosquitto_new(id, o->clean ? true : false, c);
    if (!c->mosq) {
        code = errno == EINVAL
            ? kit_seterr(err, KIT_EINVAL, "invalid client id \"%s\"%s", id,
                         o->clean ? "" : " (a persistent session needs a client id)")
            : kit_seterr(err, KIT_ERR, "cannot create an MQTT client: %s", strerror(errno));
        goto cleanup;
    }
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, protocol);
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
    mosquitto_unsubscribe_callback_set(c->mosq, on_unsubscribe);
    mosquitto_message_callback_set(c->mosq, on_message);

    if (o->will_topic) {
        mrc = mosquitto_will_set(c->mosq, o->will_topic, o->will_len, o->will_payload,
                                 o->will_qos, o->will_retain ? true : false);
        if (mrc != MOSQ_ERR_SUCCESS) {
            code = kit_seterr(err, KIT_EINVAL, "invalid will topic \"%s\": %s", o->will_topic,
                              mosquitto_pub_topic_check(o->will_topic) != MOSQ_ERR_SUCCESS
                              ? "a topic name must not be empty nor contain '+' or '#'"
                              : mosquitto_strerror(mrc));
            goto cleanup;
        }
    }
    if (o->username || o->password) {
        mrc = mosquitto_username_pw_set(c->mosq, o->username, o->password);
        if (mrc != MOSQ_ERR_SUCCESS) {
            code = kit_seterr(err, KIT_EINVAL, "invalid credentials: %s", mosquitto_strerror(mrc));
            goto cleanup;
        }
    }

    /* Blocking TCP connect: on loopback it is immediate, and it sends the
     * CONNECT before returning. */
    errno = 0;
    mrc = mosquitto_connect(c->mosq, host, o->port, keepalive);
    if (mrc != MOSQ_ERR_SUCCESS) {
        if (mrc == MOSQ_ERR_ERRNO)
            code = kit_seterr(err, KIT_ERR, "cannot connect to %s: %s%s", c->where, strerror(errno),
                              errno == ECONNREFUSED ? " (is the broker running on that port?)" : "");
        else if (mrc == MOSQ_ERR_EAI)
            code = kit_seterr(err, KIT_ERR, "cannot connect to %s: unknown host", c->where);
        else
            code = kit_seterr(err, KIT_ERR, "cannot connect to %s: %s", c->where, mosquitto_strerror(mrc));
        goto cleanup;
    }
    /* Programs the kit starts must not inherit our connections. */
    int fd = mosquitto_socket(c->mosq);
    if (fd >= 0) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    registry_add(c);

    int64_t deadline = kit_now_ms() + timeout;
    while (!c->got_connack && sock_of(c) >= 0) {
        code = pump_until(deadline);
        if (code == KIT_ETIMEOUT) {
            kit_seterr(err, code, "no CONNACK from %s within %d ms", c->where, timeout);
            goto cleanup;
        }
        if (code == KIT_EINTR) { kit_seterr(err, code, "interrupted"); goto cleanup; }
        if (code != KIT_OK) { kit_seterr(err, code, "poll failed: %s", strerror(errno)); goto cleanup; }
    }
    if (!c->got_connack) {
        code = kit_seterr(err, KIT_ENOTCONN, "%s closed the connection without answering CONNECT", c->where);
        goto cleanup;
    }
    if (rc) *rc = c->connack_rc;
    if (c->connack_rc != 0) {
        code = kit_seterr(err, KIT_EREFUSED, "%s refused the connection (code %d): %s", c->where,
                          c->connack_rc, connack_meaning(protocol, c->connack_rc));
        goto cleanup;
    }
    if (!c->connected) {
        code = kit_seterr(err, KIT_ENOTCONN, "%s closed the connection right after accepting it", c->where);
        goto cleanup;
    }
    *out = c;
    return KIT_OK;

cleanup:
    client_free(c);
    return code;
}

/* ---- publish / subscribe ----------------------------------------------- */

static int not_connected(const mq_client_t *c, char *err)
{
    return kit_seterr(err, KIT_ENOTCONN, "client %s is not connected", c->id);
}

/* Pump until bit `mid` is set. what names the acknowledgement. */
static int wait_done(mq_client_t *c, int mid, int timeout_ms, const char *what, char *err)
{
    int64_t deadline = kit_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (done_test(c, mid)) { done_clear(c, mid); return KIT_OK; }
        if (!mq_is_connected(c))
            return kit_seterr(err, KIT_ENOTCONN, "client %s lost its connection before the %s arrived",
                              c->id, what);
        int code = pump_until(deadline);
        if (code == KIT_ETIMEOUT && done_test(c, mid)) continue;
        if (code == KIT_ETIMEOUT)
            return kit_seterr(err, code, "no %s for client %s within %d ms", what, c->id, timeout_ms);
        if (code == KIT_EINTR) return kit_seterr(err, code, "interrupted");
        if (code != KIT_OK) return kit_seterr(err, code, "poll failed: %s", strerror(errno));
    }
}

int mq_publish(mq_client_t *c, const char *topic, const void *payload, int len,
               int qos, int retain, int timeout_ms, int *mid, char *err)
{
    if (mid) *mid = 0;
    if (!c || !topic) return kit_seterr(err, KIT_EINVAL, "mq_publish: missing arguments");
    if (qos < 0 || qos > 2) return kit_seterr(err, KIT_EINVAL, "QoS must be 0, 1 or 2 (got %d)", qos);
    if (len < 0 || (len > 0 && !payload)) return kit_seterr(err, KIT_EINVAL, "invalid payload");
    if (!mq_is_connected(c)) return not_connected(c, err);

    int m = 0;
    int mrc = mosquitto_publish(c->mosq, &m, topic, len, payload, qos, retain ? true : false);
    switch (mrc) {
    case MOSQ_ERR_SUCCESS: break;
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_MALFORMED_UTF8:
        return kit_seterr(err, KIT_EINVAL, "cannot publish to \"%s\": %s", topic,
                          mrc == MOSQ_ERR_INVAL ? "a topic name must not be empty nor contain '+' or '#'"
                                                : "the topic is not valid UTF-8");
    case MOSQ_ERR_PAYLOAD_SIZE:
        return kit_seterr(err, KIT_EINVAL, "payload too large (%d bytes)", len);
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
        return not_connected(c, err);
    default:
        return kit_seterr(err, KIT_ERR, "publish failed: %s", mosquitto_strerror(mrc));
    }
    mid_issued(c, m);
    if (mid) *mid = m;
    /* QoS 0 completes when the packet is written, QoS 1 on PUBACK and
     * QoS 2 on PUBCOMP: libmosquitto reports all three as on_publish. */
    return wait_done(c, m, timeout_ms, qos == 0 ? "write of the PUBLISH" : qos == 1 ? "PUBACK" : "PUBCOMP",
                     err);
}

static int suback_take(mq_client_t *c, int mid, int *granted)
{
    for (int i = 0; i < SUBACK_SLOTS; i++) {
        if (c->suback[i].used && c->suback[i].mid == mid) {
            c->suback[i].used = 0;
            *granted = c->suback[i].granted;
            return 1;
        }
    }
    return 0;
}

static int filter_error(const char *filter, int mrc, char *err)
{
    return kit_seterr(err, KIT_EINVAL, "invalid topic filter \"%s\": %s", filter,
                      mrc == MOSQ_ERR_MALFORMED_UTF8 ? "not valid UTF-8"
                      : "'+' must fill a whole level and '#' must be the whole last level");
}

int mq_subscribe(mq_client_t *c, const char *filter, int qos, int timeout_ms,
                 int *granted, char *err)
{
    if (granted) *granted = -1;
    if (!c || !filter) return kit_seterr(err, KIT_EINVAL, "mq_subscribe: missing arguments");
    if (qos < 0 || qos > 2) return kit_seterr(err, KIT_EINVAL, "QoS must be 0, 1 or 2 (got %d)", qos);
    int mrc = mosquitto_sub_topic_check(filter);
    if (mrc != MOSQ_ERR_SUCCESS || !*filter) return filter_error(filter, mrc, err);
    if (!mq_is_connected(c)) return not_connected(c, err);

    int m = 0;
    mrc = mosquitto_subscribe(c->mosq, &m, filter, qos);
    if (mrc == MOSQ_ERR_INVAL || mrc == MOSQ_ERR_MALFORMED_UTF8) return filter_error(filter, mrc, err);
    if (mrc == MOSQ_ERR_NO_CONN || mrc == MOSQ_ERR_CONN_LOST) return not_connected(c, err);
    if (mrc != MOSQ_ERR_SUCCESS)
        return kit_seterr(err, KIT_ERR, "subscribe failed: %s", mosquitto_strerror(mrc));
    mid_issued(c, m);

    int64_t deadline = kit_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int g;
    for (;;) {
        if (suback_take(c, m, &g)) break;
        if (!mq_is_connected(c))
            return kit_seterr(err, KIT_ENOTCONN, "client %s lost its connection before the SUBACK arrived",
                              c->id);
        int code = pump_until(deadline);
        if (code == KIT_ETIMEOUT && suback_take(c, m, &g)) break;
        if (code == KIT_ETIMEOUT)
            return kit_seterr(err, code, "no SUBACK for client %s within %d ms", c->id, timeout_ms);
        if (code == KIT_EINTR) return kit_seterr(err, code, "interrupted");
        if (code != KIT_OK) return kit_seterr(err, code, "poll failed: %s", strerror(errno));
    }
    if (granted) *granted = g;
    return KIT_OK;
}

int mq_unsubscribe(mq_client_t *c, const char *filter, int timeout_ms, char *err)
{
    if (!c || !filter) return kit_seterr(err, KIT_EINVAL, "mq_unsubscribe: missing arguments");
    int mrc = mosquitto_sub_topic_check(filter);
    if (mrc != MOSQ_ERR_SUCCESS || !*filter) return filter_error(filter, mrc, err);
    if (!mq_is_connected(c)) return not_connected(c, err);

    int m = 0;
    mrc = mosquitto_unsubscribe(c->mosq, &m, filter);
    if (mrc == MOSQ_ERR_INVAL || mrc == MOSQ_ERR_MALFORMED_UTF8) return filter_error(filter, mrc, err);
    if (mrc == MOSQ_ERR_NO_CONN || mrc == MOSQ_ERR_CONN_LOST) return not_connected(c, err);
    if (mrc != MOSQ_ERR_SUCCESS)
        return kit_seterr(err, KIT_ERR, "unsubscribe failed: %s", mosquitto_strerror(mrc));
    mid_issued(c, m);
    return wait_done(c, m, timeout_ms, "UNSUBACK", err);
}

/* ---- received messages ------------------------------------------------- */

/* Unlink and return the oldest queued message matching filter. */
static mq_message_t *take_match(mq_client_t *c, const char *filter)
{
    mq_message_t *prev = NULL;
    for (mq_message_t *m = c->head; m; prev = m, m = m->next) {
        bool match = true;
        if (filter && (mosquitto_topic_matches_sub(filter, m->topic, &match) != MOSQ_ERR_SUCCESS))
            match = false;
        if (!match) continue;
        if (prev) prev->next = m->next;
        else c->head = m->next;
        if (c->tail == m) c->tail = prev;
        m->next = NULL;
        c->nqueued--;
        return m;
    }
    return NULL;
}

mq_message_t *mq_wait_message(mq_client_t *c, const char *filter, int timeout_ms, int *why)
{
    int code;
    if (why) *why = KIT_OK;
    if (!c || (filter && (!*filter || mosquitto_sub_topic_check(filter) != MOSQ_ERR_SUCCESS))) {
        if (why) *why = KIT_EINVAL;
        return NULL;
    }
    int64_t deadline = kit_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    /* Pump once without waiting even for a zero timeout, so data already
     * in the socket counts as received. */
    if ((code = mq_pump(0)) == KIT_EINTR) goto none;
    for (;;) {
        mq_message_t *m = take_match(c, filter);
        if (m) return m;
        if (!mq_is_connected(c)) { code = KIT_ENOTCONN; goto none; }
        code = pump_until(deadline);
        if (code == KIT_ETIMEOUT) {
            if ((m = take_match(c, filter))) return m;
            goto none;
        }
        if (code != KIT_OK) goto none;
    }
none:
    if (why) *why = code == KIT_ETIMEOUT || code == KIT_EINTR || code == KIT_ENOTCONN ? code : KIT_ERR;
    return NULL;
}

void mq_message_free(mq_message_t *m)
{
    if (!m) return;
    free(m->topic);
    free(m->payload);
    free(m);
}

int mq_pending(const mq_client_t *c)
{
    return c ? c->nqueued : 0;
}

int mq_is_connected(const mq_client_t *c)
{
    return c && c->mosq && c->connected && mosquitto_socket(c->mosq) >= 0;
}

const char *mq_id(const mq_client_t *c)
{
    return c ? c->id : NULL;
}

/* ---- closing ------------------------------------------------------------ */

int mq_disconnect(mq_client_t *c)
{
    if (!c) return KIT_EINVAL;
    if (!mq_is_connected(c)) {
        close_dirty(c);
        return KIT_ENOTCONN;
    }
    int code = KIT_OK;
    /* libmosquitto writes the DISCONNECT at once when it can, then closes
     * the socket itself; if the socket buffer is full, pump until it does. */
    if (mosquitto_disconnect(c->mosq) == MOSQ_ERR_SUCCESS) {
        int64_t deadline = kit_now_ms() + DISCONNECT_MS;
        while (sock_of(c) >= 0) {
            code = pump_until(deadline);
            if (code != KIT_OK) break;
        }
    } else {
        code = KIT_ERR;
    }
    close_dirty(c);
    return code == KIT_OK ? KIT_OK : code;
}

int mq_kill(mq_client_t *c)
{
    if (!c) return KIT_EINVAL;
    close_dirty(c);
    return KIT_OK;
}

void mq_free(mq_client_t *c)
{
    client_free(c);
}
