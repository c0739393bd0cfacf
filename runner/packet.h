/*
 * packet.h - MQTT 3.1, 3.1.1 and 5.0 packet decoder, and an MQTT 3.1.1
 * encoder for the packets a client sends (the load generator's).
 *
 * The proxy reads bytes written by a student's program: they are
 * untrusted. Nothing here allocates or trusts a length it has not checked
 * against the bytes it was given. Strings and payloads in a decoded
 * packet point into the caller's buffer (pkt_bytes), so a decoded packet
 * is only valid while that buffer is.
 *
 * Two steps:
 *   pkt_frame()  finds where the next packet ends (fixed header plus
 *                remaining length), or says that more bytes are needed;
 *   pkt_decode() decodes one whole framed packet into struct pkt.
 * struct pkt_stream buffers a byte stream (split reads, several packets
 * per read) on top of pkt_frame().
 */
#ifndef MQLAB_PACKET_H
#define MQLAB_PACKET_H

#include <stddef.h>
#include <stdint.h>

enum pkt_type {
    PKT_RESERVED = 0, PKT_CONNECT = 1, PKT_CONNACK = 2, PKT_PUBLISH = 3,
    PKT_PUBACK = 4, PKT_PUBREC = 5, PKT_PUBREL = 6, PKT_PUBCOMP = 7,
    PKT_SUBSCRIBE = 8, PKT_SUBACK = 9, PKT_UNSUBSCRIBE = 10, PKT_UNSUBACK = 11,
    PKT_PINGREQ = 12, PKT_PINGRESP = 13, PKT_DISCONNECT = 14, PKT_AUTH = 15
};

/* Protocol levels, as in CONNECT. */
enum { PKT_V31 = 3, PKT_V311 = 4, PKT_V5 = 5 };

/* The largest remaining length MQTT can encode (4 length bytes). */
#define PKT_MAX_REMAINING 268435455u

/* How many SUBSCRIBE/UNSUBSCRIBE filters (or SUBACK codes) a decoded
 * packet lists; more are counted in nfilters but not kept. */
#define PKT_MAX_FILTERS 16

/* Result of pkt_frame() and pkt_stream_next(). */
enum { PKT_NEED_MORE = 0, PKT_COMPLETE = 1, PKT_EMALFORMED = -1, PKT_ETOOBIG = -2 };

/* A length-counted view into the packet's bytes (not NUL-terminated). */
typedef struct {
    const uint8_t *p;
    size_t len;
} pkt_bytes;

typedef struct {
    pkt_bytes filter;
    int qos;            /* SUBSCRIBE: requested QoS (options byte & 3); -1 for UNSUBSCRIBE */
} pkt_filter;

typedef struct pkt {
    /* Fixed header: every packet. */
    int type;           /* enum pkt_type */
    int flags;          /* low nibble of the first byte */
    size_t header_len;  /* first byte + remaining-length bytes */
    size_t remaining;   /* remaining length */
    size_t size;        /* header_len + remaining: the whole packet */

    int packet_id;      /* PUBLISH q>0, PUBACK..PUBCOMP, (UN)SUBSCRIBE, (UN)SUBACK; else -1 */
    int reason;         /* CONNACK return/reason code, v5 PUBACK..PUBCOMP and
                           DISCONNECT reason code; -1 when absent */

    /* CONNECT */
    pkt_bytes proto_name;       /* "MQTT" or "MQIsdp" */
    int level;                  /* 3, 4 or 5: CONNECT's own; other packets:
                                   the level they were decoded at */
    int clean;                  /* clean session / clean start */
    int keepalive;              /* seconds */
    pkt_bytes client_id;
    int will;                   /* will flag */
    int will_qos, will_retain;
    pkt_bytes will_topic, will_payload;
    int has_username, has_password;
    pkt_bytes username;

    /* CONNACK */
    int session_present;

    /* PUBLISH */
    int qos, dup, retain;
    pkt_bytes topic, payload;

    /* SUBSCRIBE, UNSUBSCRIBE: filters; SUBACK, UNSUBACK (v5): codes */
    int nfilters;               /* how many the packet has */
    pkt_filter filters[PKT_MAX_FILTERS];
    int ncodes;
    uint8_t codes[PKT_MAX_FILTERS];
} pkt;

/*
 * Find the end of the packet at the start of buf.
 *   max: the largest whole packet accepted (0 = no limit beyond MQTT's own).
 * Returns PKT_COMPLETE and sets *size to header + remaining length;
 * PKT_NEED_MORE when buf holds only part of it; PKT_EMALFORMED (bad
 * remaining length encoding, packet type 0) or PKT_ETOOBIG (larger than
 * max), with a sentence in err (KIT_ERRLEN bytes, may be NULL).
 */
int pkt_frame(const uint8_t *buf, size_t len, size_t max, size_t *size, char *err);

/*
 * Decode one whole framed packet (buf[0..len) exactly, as pkt_frame
 * found it). level is the protocol level of the connection (from its
 * CONNECT; 0 when unknown, read as 3.1.1); a CONNECT packet carries its
 * own. Returns KIT_OK, or KIT_EINVAL with err set when the packet breaks
 * the protocol (bad flags, lengths running past the end, bad UTF-8
 * lengths, a missing packet id, reserved bits set). The fixed-header
 * fields of *p are filled even when decoding fails.
 */
int pkt_decode(const uint8_t *buf, size_t len, int level, pkt *p, char *err);

/* "CONNECT", "PUBLISH", ... ("RESERVED" for 0). */
const char *pkt_type_name(int type);
/* The type for a name, case-insensitive ("puback" -> 4); -1 if unknown. */
int pkt_type_from_name(const char *name);

/*
 * A one-line summary of a decoded packet, as the trace shows it, e.g.
 *   CONNECT id=gw-1 v4 clean=0 ka=10 will=acme/v1/p/estado "offline" r1 q1 user pass
 *   CONNACK rc=0 sp=0                       (v5: rc=0x00)
 *   PUBLISH q1 dup=1 r0 id=7 acme/v1/planta-1/norte/temp 28 B
 *   PUBLISH q0 r1 id=- a/b 6 B "online"
 *   PUBACK id=7 rc=0x10   SUBSCRIBE id=1 acme/v1/#:q1 a/b:q0   SUBACK id=1 [1 128]
 *   UNSUBSCRIBE id=2 a/b   PINGREQ   DISCONNECT rc=0x04
 * A payload (or will payload) is shown quoted only when it is at most 40
 * bytes of printable text; a PUBLISH always gives its size ("N B").
 * Non-printable bytes show as \xNN; names over 48 bytes are shortened
 * with "…", topics keeping their end. v5 forms (reason codes in hex)
 * follow p->level, which pkt_decode() sets for every packet. The full
 * list of shapes is above pkt_summary() in packet.c. Always
 * NUL-terminated (when outlen > 0); returns out.
 */
char *pkt_summary(const pkt *p, char *out, size_t outlen);

/* A growing buffer of bytes read from one direction of a connection. */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t max;         /* largest packet accepted; 0 = MQTT's own limit */
    size_t off;         /* private: consumed bytes before buf in the
                           allocation (buf - off is what was malloc'd;
                           cap counts from there) */
} pkt_stream;

void pkt_stream_init(pkt_stream *s, size_t max);
void pkt_stream_free(pkt_stream *s);
/* Append bytes. Returns KIT_OK, or KIT_ERR when memory runs out. */
int pkt_stream_feed(pkt_stream *s, const uint8_t *data, size_t len);
/* Is a whole packet at the front? Same results as pkt_frame(). The
 * packet is s->buf[0..*size). */
int pkt_stream_next(pkt_stream *s, size_t *size, char *err);
/* Forget the first n bytes (after handling a packet). */
void pkt_stream_consume(pkt_stream *s, size_t n);

/* ---------------------------------------------------------------------
 * Encoding (MQTT 3.1.1, the client's side)
 *
 * Each pkt_enc_*() writes one whole packet at out[0..cap) and returns its
 * length in bytes, or a negative code:
 *   PKT_ENOSPACE  it does not fit in cap bytes (nothing is written);
 *   PKT_EBADARG   the arguments would make a packet 3.1.1 forbids (QoS 3,
 *                 packet id 0 where one is needed, an empty topic or one
 *                 with a wildcard, a string over 65535 bytes, a password
 *                 without a user name, DUP at QoS 0, a remaining length
 *                 over PKT_MAX_REMAINING).
 * Nothing is allocated. Strings are NUL-terminated C strings; payloads
 * are counted bytes. What these write, pkt_decode() reads back.
 */
enum { PKT_ENOSPACE = -3, PKT_EBADARG = -4 };

typedef struct {
    const char *client_id;      /* NULL or "": empty (then clean must be 1
                                   for the broker to accept it) */
    int clean;                  /* clean session */
    int keepalive;              /* seconds, 0..65535 */
    const char *username;       /* NULL: none */
    const char *password;       /* NULL: none; needs username */
    const char *will_topic;     /* NULL: no will */
    const void *will_payload;
    size_t will_len;
    int will_qos, will_retain;
} pkt_connect_opts;

int pkt_enc_connect(uint8_t *out, size_t cap, const pkt_connect_opts *c);

/* The size of the PUBLISH pkt_enc_publish() would write (0 when it could
 * not be encoded at all), to size a buffer before encoding into it. */
size_t pkt_publish_size(size_t topic_len, int qos, size_t payload_len);

/* PUBLISH: packet_id 1..65535 at QoS 1 and 2; ignored (and not written)
 * at QoS 0. payload may be NULL when len is 0. */
int pkt_enc_publish(uint8_t *out, size_t cap, int qos, int retain, int dup, int packet_id,
                    const char *topic, const void *payload, size_t len);

/* PUBACK, PUBREC, PUBREL (flags 0x2) or PUBCOMP for packet_id 1..65535. */
int pkt_enc_ack(uint8_t *out, size_t cap, int type, int packet_id);

/* SUBSCRIBE with one filter at the requested QoS. */
int pkt_enc_subscribe(uint8_t *out, size_t cap, int packet_id, const char *filter, int qos);

int pkt_enc_pingreq(uint8_t *out, size_t cap);
int pkt_enc_disconnect(uint8_t *out, size_t cap);

#endif
