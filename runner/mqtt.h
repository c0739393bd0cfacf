/*
 * mqtt.h - MQTT clients for checks, over libmosquitto, driven without
 * threads: mq_pump() services every open client with poll() and
 * mosquitto_loop_read/write/misc. libmosquitto's callbacks only append to
 * a client's event queue; nothing else runs inside them.
 *
 * Every waiting function pumps all clients (so a subscriber keeps
 * reading while another client waits for its PUBACK) and returns
 * KIT_EINTR as soon as the user presses Ctrl-C.
 */
#ifndef MQLAB_MQTT_H
#define MQLAB_MQTT_H

#include <stdint.h>

typedef struct mq_client mq_client_t;

typedef struct {
    const char *host;          /* NULL: 127.0.0.1 */
    int port;
    /* A broker's unix socket instead of host:port (which must then be
     * NULL and 0): the kit's own way into a broker that programs reach
     * only through the proxy. Not with TLS. */
    const char *unix_path;
    const char *id;            /* NULL: a random "mqlab-XXXXXX" */
    int clean;                 /* clean session (1) or persistent (0) */
    int keepalive;             /* seconds, 0: 60 */
    int protocol;              /* 3 (3.1), 4 (3.1.1, default), 5 */
    const char *username, *password;
    const char *will_topic;    /* NULL: no will */
    const void *will_payload;
    int will_len;
    int will_qos, will_retain;
    int timeout_ms;            /* for the CONNACK; 0: 5000 */
    /* TLS: with cafile set the client speaks TLS, trusts only that CA
     * and checks that the broker's certificate names `host` (a DNS name
     * or an IP address). certfile/keyfile (both or neither) present a
     * client certificate; tls_version is the oldest version accepted,
     * "tlsv1.2" or "tlsv1.3" (NULL: libmosquitto's default, which is
     * 1.2). A handshake that fails or does not finish
     * within timeout_ms is an error saying why, never a hang. */
    const char *cafile;
    const char *certfile, *keyfile;
    const char *tls_version;
    /* Manual acknowledgement: the PUBACK (PUBCOMP at QoS 2) of a message
     * received at QoS 1 or 2 leaves only when mq_ack() is called for it,
     * so a consumer can acknowledge after its own commit. Until then the
     * client is held: it is still read (a SUBACK behind a queued PUBLISH
     * gets in), but nothing is written on its socket. */
    int manual_ack;
} mq_opts_t;

typedef struct mq_message {
    char *topic;
    char *payload;             /* NUL-terminated for convenience */
    int len;
    int qos, retain, mid;
    int64_t t_ms;              /* monotonic time it was read */
    struct mq_message *next;
} mq_message_t;

int mq_init(void);             /* mosquitto_lib_init, once */
void mq_cleanup(void);

/* Connect and wait for the CONNACK. KIT_EREFUSED when the broker answered
 * with a non-zero code (in *rc, and err says what it means). On any
 * failure *out is NULL and nothing is left open. KIT_EINVAL for
 * unix_path with a host, a port or TLS, or a path too long for a socket
 * address; a unix socket whose backlog is full is tried again until
 * timeout_ms. With TLS: KIT_ENOENT
 * when cafile/certfile/keyfile cannot be read, KIT_EINVAL for certfile
 * without keyfile (or the reverse) or an unknown tls_version, KIT_ERR
 * when the handshake fails (err names the reason: the certificate's
 * chain or host name, an alert from the broker, a plain listener),
 * KIT_ETIMEOUT when it does not finish in time. */
int mq_connect(mq_client_t **out, const mq_opts_t *o, int *rc, char *err);

/* Publish; for QoS>0 wait until the broker acknowledged (PUBACK/PUBCOMP)
 * or timeout_ms. */
int mq_publish(mq_client_t *c, const char *topic, const void *payload, int len,
               int qos, int retain, int timeout_ms, int *mid, char *err);

/* Publish without waiting for the acknowledgement: *mid names the
 * message, and mq_acked() tells when its PUBACK/PUBCOMP has come (a
 * QoS 0 message counts as done once written). With a persistent session
 * the message outlives a lost connection: after mq_reconnect() the
 * library sends it again (DUP=1), or its PUBREL. */
int mq_publish_nowait(mq_client_t *c, const char *topic, const void *payload, int len,
                      int qos, int retain, int *mid, char *err);
int mq_acked(mq_client_t *c, int mid);

/* Connect the same client again (same id, session flag and will), and
 * wait for the CONNACK, as mq_connect does; what the library still had in
 * flight goes out once the broker accepts. KIT_EREFUSED with *rc when
 * the broker refused; KIT_EINVAL for a TLS client (not supported). */
int mq_reconnect(mq_client_t *c, int timeout_ms, int *rc, char *err);

/* Subscribe and wait for the SUBACK; *granted gets the granted QoS (128 =
 * refused). KIT_EINVAL for a filter libmosquitto rejects. */
int mq_subscribe(mq_client_t *c, const char *filter, int qos, int timeout_ms,
                 int *granted, char *err);
int mq_unsubscribe(mq_client_t *c, const char *filter, int timeout_ms, char *err);

/* The next received message (oldest first) whose topic matches filter
 * (NULL: any), waiting up to timeout_ms. NULL on timeout/interrupt/
 * disconnect (then *why, if given, is KIT_ETIMEOUT/KIT_EINTR/KIT_ENOTCONN).
 * The caller frees it with mq_message_free. */
mq_message_t *mq_wait_message(mq_client_t *c, const char *filter, int timeout_ms, int *why);
void mq_message_free(mq_message_t *m);
int mq_pending(const mq_client_t *c);  /* messages queued, not yet taken */

/* With manual_ack: acknowledge the received message mid (QoS 1 or 2).
 * When no received message is left unacknowledged, the held PUBACKs are
 * written at once. KIT_EINVAL when mid is not waiting for one. */
int mq_ack(mq_client_t *c, int mid, char *err);
/* Received QoS 1/2 messages not acknowledged yet (0 without manual_ack). */
int mq_unacked(const mq_client_t *c);

/* Service all open clients once, waiting up to timeout_ms for activity. */
int mq_pump(int timeout_ms);

int mq_is_connected(const mq_client_t *c);
const char *mq_id(const mq_client_t *c);

/* Clean: DISCONNECT, then close (the broker discards the will). */
int mq_disconnect(mq_client_t *c);
/* Dirty: close the socket without DISCONNECT (the broker sends the will). */
int mq_kill(mq_client_t *c);

/* Close (dirty if still connected) and free. NULL is fine. */
void mq_free(mq_client_t *c);

#endif
