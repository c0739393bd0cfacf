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
#include <sys/un.h>
#include <unistd.h>

#include <mosquitto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Longest single poll() inside a wait loop: bounds how late we notice a
 * Ctrl-C that arrived just before poll() started. */
#define SLICE_MS 50
/* How long mq_disconnect waits for its DISCONNECT to leave. */
#define DISCONNECT_MS 1000
/* SUBACKs remembered per client until their waiter takes them. */
#define SUBACK_SLOTS 32
/* What a TLS client remembers of libmosquitto's error lines. */
#define TLS_NOTE_LEN 256

struct mq_client {
    struct mosquitto *mosq;    /* NULL once closed */
    char *id;
    char *where;               /* "host:port" or "unix:PATH", for messages */
    int protocol;
    int got_connack, connack_rc;
    int connected;             /* CONNACK 0 seen and no disconnect since */
    int tls;                   /* speaks TLS (opts had a cafile) */
    /* Why a handshake failed, as libmosquitto and OpenSSL said it while
     * it happened: the SSL object may be gone by the time we look. */
    char tls_note[TLS_NOTE_LEN];
    long tls_verify;           /* X509_V_OK, or the chain's verify error */
    int tls_hostname;          /* "host name verification failed" seen */
    /* Completed mids (PUBLISH written / PUBACK / PUBCOMP / UNSUBACK), one
     * bit each: O(1) and no allocation inside callbacks. */
    unsigned char done[65536 / 8];
    struct { int mid, granted, used; } suback[SUBACK_SLOTS];
    int suback_next;
    mq_message_t *head, *tail;
    int nqueued;
    /* manual_ack: mids received at QoS 1/2 and not acknowledged yet. While
     * there is one, the client is held (not polled): libmosquitto, put in
     * threaded mode, has queued their PUBACKs without writing them. */
    int manual_ack;
    int *unacked, nunacked, capunacked;
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

/* Error lines only, and only what explains a failed handshake. */
static void on_log(struct mosquitto *m, void *ud, int level, const char *line)
{
    mq_client_t *c = ud;
    if (level != MOSQ_LOG_ERR || !line) return;
    if (strstr(line, "host name verification failed")) c->tls_hostname = 1;
    SSL *ssl = mosquitto_ssl_get(m);
    if (ssl && c->tls_verify == X509_V_OK) c->tls_verify = SSL_get_verify_result(ssl);
    if (strncmp(line, "Error: ", 7) == 0 && !c->tls_hostname) {
        /* libmosquitto's own words name the file ("Unable to load CA
         * certificates, check cafile ..."): better than OpenSSL's. */
        snprintf(c->tls_note, sizeof c->tls_note, "%s", line + 7);
        return;
    }
    if (c->tls_note[0] || strncmp(line, "OpenSSL Error", 13) != 0) return;
    /* "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify
     * failed": the words after the last colon are the ones that help. */
    const char *why = strrchr(line, ':');
    snprintf(c->tls_note, sizeof c->tls_note, "%s", why && why[1] ? why + 1 : line);
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
    if (c->manual_ack && msg->qos > 0) {
        if (c->nunacked == c->capunacked) {
            c->capunacked = c->capunacked ? c->capunacked * 2 : 8;
            c->unacked = kit_xrealloc(c->unacked, (size_t)c->capunacked * sizeof *c->unacked);
        }
        c->unacked[c->nunacked++] = msg->mid;
    }
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

/* A packet just queued by a manual_ack client goes out now, while the
 * client holds no message: once one arrives (a PUBLISH queued for this
 * session, ahead of the SUBACK) nothing is written until mq_ack, and a
 * SUBSCRIBE still in the queue would never leave. */
static void flush_queued(mq_client_t *c)
{
    if (c->manual_ack && c->nunacked == 0 && sock_of(c) >= 0 && mosquitto_want_write(c->mosq))
        mosquitto_loop_write(c->mosq, 1);
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
        /* A client holding unacknowledged messages (manual_ack) is still
         * read, so that a SUBACK or CONNACK behind a queued PUBLISH gets
         * in, but nothing is written: its PUBACKs wait for mq_ack. */
        poll_fds[n].events = POLLIN | (c->nunacked == 0 && mosquitto_want_write(c->mosq) ? POLLOUT : 0);
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
        if ((poll_fds[i].revents & POLLOUT) && sock_of(c) >= 0 && c->nunacked == 0)
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

/* ---- TLS --------------------------------------------------------------- */

/* The options make sense together and their files can be read, so that a
 * typo is reported as such rather than as a failed handshake. */
static int check_tls_opts(const mq_opts_t *o, char *err)
{
    if (!o->cafile) {
        if (o->certfile || o->keyfile || o->tls_version)
            return kit_seterr(err, KIT_EINVAL, "certfile, keyfile and tls_version need cafile "
                              "(the CA that signed the broker's certificate)");
        return KIT_OK;
    }
    if (!o->certfile != !o->keyfile)
        return kit_seterr(err, KIT_EINVAL, "a client certificate needs both certfile and keyfile");
    const char *const names[] = { "cafile", "certfile", "keyfile" };
    const char *const paths[] = { o->cafile, o->certfile, o->keyfile };
    for (int i = 0; i < 3; i++) {
        if (!paths[i]) continue;
        if (access(paths[i], R_OK) != 0 || kit_is_dir(paths[i]))
            return kit_seterr(err, KIT_ENOENT, "cannot read %s %s: %s", names[i], paths[i],
                              kit_is_dir(paths[i]) ? "it is a folder" : strerror(errno));
    }
    return KIT_OK;
}

static int tls_setup(mq_client_t *c, const mq_opts_t *o, char *err)
{
    int mrc = mosquitto_tls_set(c->mosq, o->cafile, NULL, o->certfile, o->keyfile, NULL);
    if (mrc != MOSQ_ERR_SUCCESS)
        return kit_seterr(err, KIT_EINVAL, "invalid TLS files: %s", mosquitto_strerror(mrc));
    mrc = mosquitto_tls_opts_set(c->mosq, SSL_VERIFY_PEER, o->tls_version, NULL);
    if (mrc != MOSQ_ERR_SUCCESS)
        return kit_seterr(err, KIT_EINVAL, "unknown tls_version \"%s\" (use tlsv1.2 or tlsv1.3)",
                          o->tls_version ? o->tls_version : "");
    /* Peer verification alone accepts any certificate the CA signed;
     * the host name check is what stops a certificate for another host. */
    mrc = mosquitto_tls_insecure_set(c->mosq, false);
    if (mrc != MOSQ_ERR_SUCCESS)
        return kit_seterr(err, KIT_ERR, "cannot enable the host name check: %s", mosquitto_strerror(mrc));
    mosquitto_log_callback_set(c->mosq, on_log);
    c->tls = 1;
    return KIT_OK;
}

static int handshake_done(const mq_client_t *c)
{
    SSL *ssl = c->mosq ? mosquitto_ssl_get(c->mosq) : NULL;
    return ssl && SSL_is_init_finished(ssl);
}

/* Why the handshake failed, from what the callbacks recorded.
 * handshook: 1 it had finished, 0 it had not, -1 cannot tell. */
static int tls_failed(const mq_client_t *c, const char *host, int handshook, char *err)
{
    long v = c->tls_verify;
    if (c->tls_hostname)
        return kit_seterr(err, KIT_ERR, "TLS handshake with %s failed: the broker's certificate is not "
                          "for the host name %s (host name verification failed)", c->where, host);
    if (v != X509_V_OK) {
        int chain = v == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN || v == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
                    || v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
                    || v == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
        return kit_seterr(err, KIT_ERR, "TLS handshake with %s failed: certificate verify failed: %s%s",
                          c->where, X509_verify_cert_error_string(v),
                          chain ? " (the broker's certificate is not signed by the CA in cafile)" : "");
    }
    if (c->tls_note[0]) {
        const char *n = c->tls_note;
        int plain = strstr(n, "unexpected eof") || strstr(n, "wrong version number")
                    || strstr(n, "packet length too long") || strstr(n, "record layer failure");
        return kit_seterr(err, KIT_ERR, "TLS handshake with %s failed: %s%s", c->where, n,
                          plain ? " (is that a plain MQTT listener, without TLS?)" : "");
    }
    /* No reason given: the peer just closed. After the handshake, the
     * usual cause is a broker that wants a client certificate (its alert
     * can be lost when our CONNECT meets the closed socket first). */
    if (handshook)
        return kit_seterr(err, KIT_ERR, "TLS handshake with %s failed: the broker closed the connection %s "
                          "the handshake (as a broker that requires a client certificate does when it gets none; "
                          "see certfile/keyfile)", c->where, handshook > 0 ? "right after" : "during or right after");
    return kit_seterr(err, KIT_ERR, "TLS handshake with %s failed: the connection closed before it finished",
                      c->where);
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
    free(c->unacked);
    free(c->id);
    free(c->where);
    free(c);
}

int mq_connect(mq_client_t **out, const mq_opts_t *o, int *rc, char *err)
{
    if (out) *out = NULL;
    if (rc) *rc = -1;
    if (!out || !o) return kit_seterr(err, KIT_EINVAL, "mq_connect: missing arguments");
    const char *path = o->unix_path;
    if (path && (o->host || o->port))
        return kit_seterr(err, KIT_EINVAL, "give the broker's unix socket or its host and port, not both");
    if (path && o->cafile)
        return kit_seterr(err, KIT_EINVAL, "TLS over a unix socket is not supported");
    if (path && (!*path || strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path))
        return kit_seterr(err, KIT_EINVAL, "the unix socket path \"%s\" is empty or too long (at most %zu bytes)",
                          path, sizeof ((struct sockaddr_un *)0)->sun_path - 1);
    if (!path && (o->port <= 0 || o->port > 65535))
        return kit_seterr(err, KIT_EINVAL, "invalid port %d", o->port);
    int protocol = o->protocol ? o->protocol : 4;
    if (protocol < 3 || protocol > 5)
        return kit_seterr(err, KIT_EINVAL, "invalid MQTT protocol %d (use 3 for 3.1, 4 for 3.1.1, 5 for 5.0)", protocol);
    int keepalive = o->keepalive ? o->keepalive : 60;
    if (keepalive < 5 || keepalive > 65535)
        return kit_seterr(err, KIT_EINVAL, "keepalive must be between 5 and 65535 seconds (got %d)", keepalive);
    if (o->will_topic && (o->will_qos < 0 || o->will_qos > 2))
        return kit_seterr(err, KIT_EINVAL, "will QoS must be 0, 1 or 2 (got %d)", o->will_qos);
    int trc = check_tls_opts(o, err);
    if (trc != KIT_OK) return trc;
    if (mq_init() != KIT_OK)
        return kit_seterr(err, KIT_ERR, "cannot initialise libmosquitto");

    /* libmosquitto takes port 0 with a path for host as a unix socket. */
    const char *host = path ? path : o->host ? o->host : "127.0.0.1";
    int port = path ? 0 : o->port;
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    int64_t deadline = kit_now_ms() + timeout;
    char idbuf[16];
    const char *id = o->id;
    if (!id) { random_id(idbuf, sizeof idbuf); id = idbuf; }
    /* libmosquitto 2.0.11 refuses these ids in mosquitto_new, but only
     * after zeroing its socket-pair fields: its cleanup then closes fd 0
     * (our stdin, and later a broker's captured stderr). Refuse first. */
    if (!*id || mosquitto_validate_utf8(id, (int)strlen(id)) != MOSQ_ERR_SUCCESS)
        return kit_seterr(err, KIT_EINVAL, "invalid client id \"%s\"%s", id,
                          o->clean ? "" : " (a persistent session needs a client id)");

    int code = KIT_OK, mrc;
    mq_client_t *c = kit_xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->id = kit_strdup(id);
    c->where = path ? kit_strdup_printf("unix:%s", path) : kit_strdup_printf("%s:%d", host, port);
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
    if (o->cafile && (code = tls_setup(c, o, err)) != KIT_OK) goto cleanup;

    /* Blocking TCP connect: on loopback it is immediate, and it sends the
     * CONNECT before returning. A TLS client connects asynchronously: the
     * handshake then runs in the pump, under the deadline, so a listener
     * that never answers it cannot hold us. */
    errno = 0;
    mrc = c->tls ? mosquitto_connect_async(c->mosq, host, port, keepalive)
                 : mosquitto_connect(c->mosq, host, port, keepalive);
    /* A unix listener with a full backlog refuses at once (EAGAIN) where
     * TCP would queue or retry the SYN: try again, within the deadline. */
    while (path && mrc == MOSQ_ERR_ERRNO && errno == EAGAIN && kit_now_ms() < deadline) {
        if (kit_sleep_ms(5) == KIT_EINTR) {
            code = kit_seterr(err, KIT_EINTR, "interrupted");
            goto cleanup;
        }
        errno = 0;
        mrc = mosquitto_connect(c->mosq, host, port, keepalive);
    }
    if (mrc != MOSQ_ERR_SUCCESS) {
        /* A handshake that fails inside the connect call comes back as
         * MOSQ_ERR_TLS, or as MOSQ_ERR_ERRNO with errno EPROTO. */
        if (c->tls && (mrc == MOSQ_ERR_TLS || (mrc == MOSQ_ERR_ERRNO && errno == EPROTO)
                       || c->tls_note[0] || c->tls_hostname || c->tls_verify != X509_V_OK))
            code = tls_failed(c, host, handshake_done(c) ? 1 : -1, err);
        else if (mrc == MOSQ_ERR_ERRNO)
            code = kit_seterr(err, KIT_ERR, "cannot connect to %s: %s%s", c->where, strerror(errno),
                              errno == ECONNREFUSED || errno == ENOENT
                              ? path ? " (is the broker running on that socket?)"
                                     : " (is the broker running on that port?)" : "");
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

    int handshook = 0;
    while (!c->got_connack && sock_of(c) >= 0) {
        code = pump_until(deadline);
        if (c->tls && !handshook) handshook = handshake_done(c);
        if (code == KIT_ETIMEOUT) {
            if (c->tls && !handshook)
                kit_seterr(err, code, "the TLS handshake with %s did not finish within %d ms "
                           "(is that port a TLS listener?)", c->where, timeout);
            else
                kit_seterr(err, code, "no CONNACK from %s within %d ms", c->where, timeout);
            goto cleanup;
        }
        if (code == KIT_EINTR) { kit_seterr(err, code, "interrupted"); goto cleanup; }
        if (code != KIT_OK) { kit_seterr(err, code, "poll failed: %s", strerror(errno)); goto cleanup; }
    }
    if (!c->got_connack && c->tls && (!handshook || c->tls_note[0] || c->tls_verify != X509_V_OK)) {
        /* With TLS 1.3 the client finishes first; a broker that wants a
         * client certificate says so with an alert after that. */
        code = tls_failed(c, host, handshook, err);
        goto cleanup;
    }
    if (!c->got_connack) {
        code = kit_seterr(err, KIT_ENOTCONN, "%s closed the connection without answering CONNECT%s", c->where,
                          c->tls ? " (after the TLS handshake: a broker that requires a client certificate "
                                   "does that when it gets none; see certfile/keyfile)" : "");
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
    /* Threaded mode only makes libmosquitto queue every packet instead of
     * writing it from inside the read that caused it (the PUBACK of a
     * PUBLISH); mq_pump writes the queue, and skips a held client. */
    if (o->manual_ack) {
        c->manual_ack = 1;
        mosquitto_threaded_set(c->mosq, true);
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
    int m = 0;
    int code = mq_publish_nowait(c, topic, payload, len, qos, retain, &m, err);
    if (mid) *mid = m;
    if (code != KIT_OK) return code;
    /* QoS 0 completes when the packet is written, QoS 1 on PUBACK and
     * QoS 2 on PUBCOMP: libmosquitto reports all three as on_publish. */
    return wait_done(c, m, timeout_ms, qos == 0 ? "write of the PUBLISH" : qos == 1 ? "PUBACK" : "PUBCOMP",
                     err);
}

int mq_acked(mq_client_t *c, int mid)
{
    if (!c) return 0;
    mq_pump(0);
    return done_test(c, mid);
}

int mq_reconnect(mq_client_t *c, int timeout_ms, int *rc, char *err)
{
    if (rc) *rc = -1;
    if (!c || !c->mosq) return kit_seterr(err, KIT_EINVAL, "mq_reconnect: the client is closed");
    if (c->tls) return kit_seterr(err, KIT_EINVAL, "reconnecting a TLS client is not supported");
    int64_t deadline = kit_now_ms() + (timeout_ms > 0 ? timeout_ms : 5000);
    c->got_connack = 0;
    c->connack_rc = -1;
    c->connected = 0;
    errno = 0;
    int mrc = mosquitto_reconnect(c->mosq);
    if (mrc == MOSQ_ERR_ERRNO)
        return kit_seterr(err, KIT_ERR, "cannot connect to %s: %s", c->where, strerror(errno));
    if (mrc != MOSQ_ERR_SUCCESS)
        return kit_seterr(err, KIT_ERR, "cannot connect to %s: %s", c->where, mosquitto_strerror(mrc));
    int fd = mosquitto_socket(c->mosq);
    if (fd >= 0) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    while (!c->got_connack && sock_of(c) >= 0) {
        int code = pump_until(deadline);
        if (code == KIT_ETIMEOUT) return kit_seterr(err, code, "no CONNACK from %s within %d ms", c->where, timeout_ms);
        if (code == KIT_EINTR) return kit_seterr(err, code, "interrupted");
        if (code != KIT_OK) return kit_seterr(err, code, "poll failed: %s", strerror(errno));
    }
    if (!c->got_connack)
        return kit_seterr(err, KIT_ENOTCONN, "%s closed the connection without answering CONNECT", c->where);
    if (rc) *rc = c->connack_rc;
    if (c->connack_rc != 0)
        return kit_seterr(err, KIT_EREFUSED, "%s refused the connection (code %d): %s", c->where,
                          c->connack_rc, connack_meaning(c->protocol, c->connack_rc));
    if (!c->connected)
        return kit_seterr(err, KIT_ENOTCONN, "%s closed the connection right after accepting it", c->where);
    return KIT_OK;
}

int mq_publish_nowait(mq_client_t *c, const char *topic, const void *payload, int len,
                      int qos, int retain, int *mid, char *err)
{
    if (mid) *mid = 0;
    if (!c || !topic) return kit_seterr(err, KIT_EINVAL, "mq_publish: missing arguments");
    if (qos < 0 || qos > 2) return kit_seterr(err, KIT_EINVAL, "QoS must be 0, 1 or 2 (got %d)", qos);
    if (len < 0 || (len > 0 && !payload)) return kit_seterr(err, KIT_EINVAL, "invalid payload");
    if (!mq_is_connected(c)) return not_connected(c, err);

    int m = 0;
    int mrc = mosquitto_publish(c->mosq, &m, topic, len, payload, qos, retain ? true : false);
    if (mrc == MOSQ_ERR_SUCCESS) flush_queued(c);
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
    return KIT_OK;
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
    if (mrc == MOSQ_ERR_SUCCESS) flush_queued(c);
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
    if (mrc == MOSQ_ERR_SUCCESS) flush_queued(c);
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

int mq_unacked(const mq_client_t *c)
{
    return c ? c->nunacked : 0;
}

int mq_ack(mq_client_t *c, int mid, char *err)
{
    if (!c) return kit_seterr(err, KIT_EINVAL, "mq_ack: missing client");
    if (!c->manual_ack)
        return kit_seterr(err, KIT_EINVAL, "client %s acknowledges by itself (connect it with manual_ack)", c->id);
    int i = 0;
    while (i < c->nunacked && c->unacked[i] != mid) i++;
    if (i == c->nunacked)
        return kit_seterr(err, KIT_EINVAL, "message %d of client %s is not waiting for an acknowledgement "
                          "(already acknowledged, or received at QoS 0)", mid, c->id);
    memmove(c->unacked + i, c->unacked + i + 1, (size_t)(c->nunacked - i - 1) * sizeof *c->unacked);
    c->nunacked--;
    /* Nothing held any more: the queued PUBACKs leave now, in order. */
    if (c->nunacked == 0 && sock_of(c) >= 0 && mosquitto_want_write(c->mosq))
        mosquitto_loop_write(c->mosq, 1);
    return KIT_OK;
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
