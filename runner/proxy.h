/*
 * proxy.h - an MQTT-aware TCP proxy that records and breaks the wire.
 *
 * A proxy listens on a loopback port. Each client connection gets its own
 * upstream connection to the broker, over TCP or over the broker's unix
 * socket (a broker the program must not reach but through the proxy). Bytes are framed into MQTT packets
 * (packet.h) in both directions, every packet is recorded in a trace
 * with a timestamp, and fault rules decide what happens to it: forwarded,
 * dropped, duplicated, delayed, or the link cut before or after it.
 *
 * Clients speak plain MQTT on the proxy's port and, when asked, MQTT over
 * WebSockets (ws:// or wss://, as a browser does) on a second port; the
 * broker side is always plain. Both ports share the rules and the trace,
 * which marks each connection with its transport.
 *
 * Three parts: the transport (proxy.c, on the kit's event loop, net.h, in
 * one thread, so it keeps forwarding while the kit waits on a program or
 * a broker), the rules (px_rules.h, a pure function from a packet to its
 * fate) and the trace (px_trace.h). That thread never calls back into the caller: the trace is an
 * append-only list that any thread reads with proxy_count() and
 * proxy_event(), and proxy_wait() sleeps until it grows.
 *
 * Fidelity: what a client sends before closing (a DISCONNECT) reaches the
 * broker before the proxy closes the upstream side, so the broker sees a
 * clean disconnect exactly when the client made one. A stream that cannot
 * be framed (garbage) is still forwarded byte for byte and the trace says
 * so; the broker decides what to do with it.
 */
#ifndef MQLAB_PROXY_H
#define MQLAB_PROXY_H

#include <stddef.h>
#include <stdint.h>

typedef struct proxy proxy;

/* Directions. */
enum { PX_UP = 0,       /* client -> broker */
       PX_DOWN = 1,     /* broker -> client */
       PX_ANY = 2 };    /* rules only: either direction, counted together */

/* What a rule does to the packet(s) it matches. */
typedef enum {
    PX_DROP = 1,        /* not forwarded */
    PX_DUPLICATE,       /* forwarded twice, back to back */
    PX_DELAY,           /* held delay_ms; what follows on that connection
                           in that direction waits behind it (TCP order) */
    PX_CUT_BEFORE,      /* the connection is closed instead of forwarding it */
    PX_CUT_AFTER,       /* forwarded, then the connection is closed */
    PX_BLACKHOLE,       /* from this packet on (it included), nothing is
                           forwarded on that connection in either direction,
                           but both sockets stay open: a network partition.
                           When one side closes, the other is left open and
                           silent, so the broker must find out by keepalive */
    PX_CUT_BYTES,       /* the connection is cut once `bytes` bytes have been
                           forwarded in dir since the rule was added; the
                           packet that crosses the limit is cut in the middle */
    PX_REORDER          /* held aside and forwarded right after the next
                           `behind` packets that match the same rule on that
                           connection and direction (so they overtake it),
                           or after delay_ms (0: 1000) when none come; lost
                           if the connection ends first */
} px_action;
#define PX_NACTIONS (PX_REORDER + 1)

typedef struct {
    px_action action;
    int type;           /* packet type (enum pkt_type) to match; 0 = any */
    int dir;            /* PX_UP, PX_DOWN or PX_ANY */
    unsigned nth;       /* fires on the nth matching packet counted since the
                           rule was added (1 = the next one); 0 is read as 1 */
    unsigned times;     /* and on the times-1 matching packets after it; 0 = 1 */
    int delay_ms;       /* PX_DELAY; PX_REORDER: the longest hold */
    unsigned behind;    /* PX_REORDER: packets that overtake it; 0 is read as 1 */
    uint64_t bytes;     /* PX_CUT_BYTES */
    int refuse_ms;      /* after the cut (PX_CUT_*), refuse new connections
                           for this long, as proxy_refuse() */
    char client_id[128];/* match only connections whose CONNECT carried this
                           client id; "" = any connection */
} px_rule;

/* How a client reached the proxy. */
enum { PX_TR_TCP = 0, PX_TR_WS, PX_TR_WSS };

/* Trace event kinds. */
typedef enum {
    PX_EV_OPEN = 1,     /* a client connected to the proxy (dir PX_UP) */
    PX_EV_PACKET,       /* a packet was read; fate says what became of it */
    PX_EV_CLOSE,        /* a connection ended; text says who closed it */
    PX_EV_REFUSED,      /* a client connection refused (proxy_refuse) */
    PX_EV_ERROR         /* the stream could not be framed or decoded, the
                           broker could not be reached, ...; text says what */
} px_kind;

/* What became of a packet. */
typedef enum {
    PX_SENT = 1, PX_DROPPED, PX_DUPLICATED, PX_DELAYED,
    PX_CUT_BEFORE_F,    /* the link was cut instead of forwarding it */
    PX_CUT_AFTER_F,     /* forwarded, then the link was cut */
    PX_CUT_MID,         /* part of it forwarded, then the link was cut (PX_CUT_BYTES) */
    PX_BLACKHOLED,      /* swallowed by a black hole */
    PX_REORDERED        /* held back and forwarded after later packets (or lost
                           with its connection) */
} px_fate;

/* How many bytes of each payload (and will payload) the trace keeps. */
#define PX_PAYLOAD_KEEP 4096

/*
 * One trace event. Immutable once it is counted by proxy_count(), and
 * valid until proxy_free(). Strings are NUL-terminated copies (NULL when
 * absent); binary payload bytes are kept as they were (payload_kept of
 * them, plus a NUL after them).
 */
typedef struct px_event {
    int64_t t_us;           /* microseconds since the proxy started */
    unsigned conn;          /* connection number, 1, 2, ... in accept order */
    uint8_t kind;           /* px_kind */
    uint8_t transport;      /* PX_TR_*: the client's side of the connection */
    uint8_t dir;            /* PX_UP or PX_DOWN */
    uint8_t fate;           /* px_fate (PX_EV_PACKET only) */
    uint8_t type;           /* MQTT packet type (PX_EV_PACKET only) */
    uint8_t flags;          /* low nibble of the fixed header */
    int8_t decoded;         /* 1 when the packet decoded cleanly; 0 when only
                               framed (text then says what was wrong) */
    int8_t qos, dup, retain;
    int32_t packet_id;      /* -1 when absent */
    int32_t reason;         /* CONNACK code, v5 reason code; -1 when absent */
    uint32_t size;          /* bytes of the whole packet */

    /* CONNECT */
    int8_t level, clean, will, will_qos, will_retain;
    int8_t has_username, has_password;
    uint16_t keepalive;
    char *client_id;
    /* CONNACK */
    int8_t session_present;

    char *topic;            /* PUBLISH topic; CONNECT will topic */
    char *payload;          /* PUBLISH payload; CONNECT will payload */
    uint32_t payload_len;   /* the whole payload's length */
    uint32_t payload_kept;  /* how many of its bytes are in payload */

    /* SUBSCRIBE / UNSUBSCRIBE filters (qos -1 for UNSUBSCRIBE), and
     * SUBACK / UNSUBACK codes; at most PKT_MAX_FILTERS of each. */
    int nfilters;
    char **filters;
    int8_t *filter_qos;
    int ncodes;
    uint8_t codes[16];

    char *text;             /* PACKET: the one-line summary (pkt_summary);
                               other kinds: what happened, in English */
} px_event;

typedef struct {
    const char *upstream_host;  /* the broker; NULL = "127.0.0.1" */
    int upstream_port;          /* 0 when upstream_path is given */
    const char *upstream_path;  /* the broker's unix socket instead of
                                   host:port; NULL = TCP. A full backlog
                                   there is retried for a few seconds, as
                                   TCP would retry its SYN */
    int listen_port;            /* 0 = any free port on 127.0.0.1 */
    size_t max_packet;          /* largest packet framed; 0 = 16 MiB. A
                                   larger one is an error event and the
                                   stream is passed through unparsed */
    int websocket;              /* also listen for MQTT over WebSockets
                                   (a browser's mqtt.js) on ws_port */
    int ws_port;                /* 0 = any free port on 127.0.0.1 */
    struct ssl_ctx_st *ws_tls;  /* wss:// on that port: a TLS server
                                   context, borrowed (it must outlive
                                   the proxy) */
    int handshake_ms;           /* a WebSocket or TLS client that has not
                                   finished its handshake by then is
                                   closed; 0 = 10000 */
} px_opts;

/*
 * Listen on 127.0.0.1 and start the proxy's thread. Returns KIT_OK and
 * *out, or an error with err set: KIT_EINVAL for bad options (both or
 * neither of upstream_port and upstream_path, a path too long for a
 * socket address), KIT_ERR when the port is taken or there is no thread.
 */
int proxy_start(const px_opts *o, proxy **out, char *err);
int proxy_port(const proxy *p);
/* The WebSocket port (0 when there is none). */
int proxy_ws_port(const proxy *p);

/* Add a rule (copied). Returns its index (>= 0), or -1 with err set
 * when the rule makes no sense (unknown action, delay_ms < 0, ...). */
int proxy_add_rule(proxy *p, const px_rule *r, char *err);
/* How many packets rule idx has acted on so far (a cut counts once). */
unsigned proxy_rule_fired(proxy *p, int idx);
/* Remove every rule; black holes and refusals in force are not lifted. */
void proxy_clear_rules(proxy *p);

/* Cut every open connection now; then refuse new ones for refuse_ms. */
void proxy_cut_all(proxy *p, int refuse_ms);
/* on: every open connection becomes a black hole. off: every black hole
 * forwards again (what it swallowed is gone). */
void proxy_blackhole_all(proxy *p, int on);
/* Refuse new connections for ms from now: the proxy accepts each one and
 * closes it at once (so the attempt is counted: PX_EV_REFUSED). 0 lifts it. */
void proxy_refuse(proxy *p, int ms);

/* Number of events in the trace. */
size_t proxy_count(proxy *p);
/* Event i (0-based, i < proxy_count()). */
const px_event *proxy_event(proxy *p, size_t i);
/* Wait until the trace has more than `have` events. Returns KIT_OK,
 * KIT_ETIMEOUT (at once when the proxy is stopped), KIT_EINTR when the
 * user pressed Ctrl-C, or KIT_ERR at once when the proxy's loop has
 * failed (proxy_error says why). */
int proxy_wait(proxy *p, size_t have, int timeout_ms);

/* KIT_OK while the proxy's loop runs, and after proxy_stop. KIT_ERR when
 * the loop ended by itself because the system failed it (epoll_wait):
 * err says why, every connection was closed, new ones are refused, and
 * the trace ends with a PX_EV_ERROR event saying so. */
int proxy_error(proxy *p, char *err);

/* Open connections right now. */
unsigned proxy_open_conns(proxy *p);

typedef struct {
    unsigned connections;       /* accepted and proxied */
    unsigned refused;
    uint64_t packets[2];        /* per direction */
    uint64_t bytes[2];
    size_t events_lost;         /* not recorded: the trace was full */
} px_stats;
void proxy_stats(proxy *p, px_stats *s);

/* Close every connection and stop the thread. The trace stays readable.
 * Idempotent. */
void proxy_stop(proxy *p);
/* Stop (if needed) and free everything, the trace included. NULL is fine. */
void proxy_free(proxy *p);

/* "up" / "down"; "sent", "dropped", ...; "open", "packet", ... */
const char *px_dir_name(int dir);
const char *px_fate_name(int fate);
const char *px_kind_name(int kind);
/* "tcp", "ws", "wss" */
const char *px_transport_name(int transport);
/* The action for a name ("drop", "duplicate", "delay", "cut_before",
 * "cut_after", "blackhole", "cut_bytes"; '-' is read as '_'); -1 if unknown. */
int px_action_from_name(const char *name);

#endif
