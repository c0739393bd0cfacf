/*
 * ws.h - WebSockets (RFC 6455): a codec with no sockets, and a net_conn
 * variant that carries a byte stream (MQTT) in binary messages over an
 * inner net_conn (TCP: ws://, TLS: wss://).
 *
 * Debian's mosquitto has no WebSockets, so the kit's proxy accepts MQTT
 * over WebSockets from browsers (mqtt.js) and forwards plain MQTT to the
 * broker. The bytes come from untrusted peers: nothing here trusts a
 * length it has not checked against the bytes it was given, and the
 * codec allocates nothing. Views into a parsed buffer (ws_http's method,
 * path, headers) are valid while that buffer is.
 *
 * The codec, in three parts:
 *   ws_http_parse()   an HTTP/1.1 request or response head: need more,
 *                     complete (with its length), or bad (with the HTTP
 *                     status to answer). The kit's HTTP server reuses it
 *                     for plain GETs.
 *   ws_upgrade_check() / ws_response_101() / ws_response_error()
 *                     the server's side of the opening handshake;
 *                     ws_client_request() / ws_client_check() the client's.
 *   ws_frame_parse() / ws_decode()
 *                     one frame header; a decoder that applies the
 *                     message rules (fragments, control frames, sizes,
 *                     UTF-8) over a stream of frames and unmasks payload
 *                     in place, handing data out as it arrives (a frame
 *                     of 64 KiB is never waited for whole).
 */
#ifndef MQLAB_WS_H
#define MQLAB_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net.h"

/* Results of the parsers. */
enum { WS_NEED_MORE = 0, WS_OK = 1, WS_BAD = -1 };

/* Opcodes (RFC 6455 5.2). */
enum { WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2, WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xA };

/* Close codes (RFC 6455 7.4.1) the kit sends. */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,    /* a text message where MQTT wants binary */
    WS_CLOSE_NO_STATUS = 1005,      /* never sent: a close frame without a code */
    WS_CLOSE_BAD_DATA = 1007,       /* invalid UTF-8 */
    WS_CLOSE_TOO_BIG = 1009
};

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_HEADER 8192              /* default limit of a request head */
#define WS_MAX_HEADERS 48               /* header lines kept; more is a 431 */
#define WS_MAX_MESSAGE (256u << 20)     /* default limit of one message */

/* ---- HTTP heads ---------------------------------------------------- */

typedef struct {
    const char *name, *value;   /* not NUL-terminated; value trimmed */
    size_t name_len, value_len;
} ws_header;

typedef struct {
    size_t len;                 /* WS_OK: bytes of the head, blank line included */
    /* a request: */
    const char *method, *path, *query;  /* query: after '?', NULL when none */
    size_t method_len, path_len, query_len;
    /* a response: */
    int code;                   /* the status code */
    int minor;                  /* HTTP/1.minor */
    ws_header headers[WS_MAX_HEADERS];
    int nheaders;
    /* WS_BAD: the status to answer with and why, in words */
    int status;
    char why[120];
} ws_http;

/* Parse the head of an HTTP/1.x request (response: 0) or response (1)
 * from buf. WS_NEED_MORE, WS_OK (h->len says where the body or the first
 * frame starts), or WS_BAD with h->status and h->why. A head that has not
 * ended within max bytes (0: WS_MAX_HEADER) is a 431. Lines may end in
 * CRLF or a bare LF (RFC 9112 2.2). */
int ws_http_parse(const void *buf, size_t len, size_t max, int response, ws_http *h);

/* The first header called name (case-insensitive), its value's length in
 * *len; NULL when there is none. */
const char *ws_http_get(const ws_http *h, const char *name, size_t *len);
/* 1 when a comma-separated list in any header called name holds token
 * (both case-insensitive), as Connection: keep-alive, Upgrade. */
int ws_http_has_token(const ws_http *h, const char *name, const char *token);

/* ---- the opening handshake ----------------------------------------- */

typedef struct {
    char key[25];               /* Sec-WebSocket-Key, NUL-terminated */
    const char *protocol;       /* "mqtt", "mqttv3.1", or NULL when none was offered */
    int status;                 /* WS_BAD: 400, 405, 426 */
    char why[120];
} ws_upgrade;

/* Check a parsed request as an upgrade to WebSocket version 13 (RFC 6455
 * 4.2.1). require_protocol: a request must offer "mqtt" or "mqttv3.1"
 * (mosquitto's two names); a request that offers subprotocols, none of
 * them those, is refused either way. WS_OK or WS_BAD. */
int ws_upgrade_check(const ws_http *h, int require_protocol, ws_upgrade *u);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + WS_GUID)), 28
 * characters and a NUL into out. */
void ws_accept_key(const char *key, size_t key_len, char out[29]);

/* The 101 response to an accepted upgrade, into buf; its length, or 0
 * when cap is too small. */
size_t ws_response_101(char *buf, size_t cap, const ws_upgrade *u);
/* An HTTP error response (Connection: close, the reason as a text body;
 * a 426 says Sec-WebSocket-Version: 13); its length, or 0. */
size_t ws_response_error(char *buf, size_t cap, int status, const char *why);
const char *ws_status_text(int status);

/* The client's request, with a fresh random key (into key_out). protocol
 * may be NULL (none offered). Its length, or 0 when cap is too small. */
size_t ws_client_request(char *buf, size_t cap, const char *host, const char *path,
                         const char *protocol, char key_out[25]);
/* Check the server's answer to that request: WS_NEED_MORE, WS_OK (*used:
 * the bytes of the head; frames may follow), WS_BAD with why. */
int ws_client_check(const void *buf, size_t len, const char *key, const char *protocol,
                    size_t *used, char *why, size_t whylen);

/* ---- frames -------------------------------------------------------- */

typedef struct {
    int fin, rsv, opcode, masked;
    uint8_t mask[4];
    uint64_t len;               /* payload bytes */
    size_t hlen;                /* header bytes (2 to 14) */
} ws_frame;

/* Parse one frame header. server: the frames come from a client and must
 * be masked; else they come from a server and must not be. WS_NEED_MORE,
 * WS_OK, or WS_BAD with *code (1002) and *why (a static string). Checks
 * what one header can tell: RSV bits, opcodes, the mask bit, the 64-bit
 * length's top bit, control frames' FIN and size. */
int ws_frame_parse(const void *buf, size_t len, int server, ws_frame *f, int *code, const char **why);

/* A frame header into out; mask NULL: unmasked (a server's), else masked
 * with those 4 bytes (the payload must be masked by the caller, with
 * ws_unmask). Its length. */
size_t ws_frame_header(uint8_t out[14], int fin, int opcode, uint64_t len, const uint8_t *mask);

/* XOR p with the mask, starting at payload offset off (a frame handed
 * out in pieces). Masking and unmasking are the same. */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);

/* A close code a peer may send (RFC 6455 7.4): 1000-1003, 1007-1011,
 * 3000-4999. */
int ws_close_code_valid(unsigned code);
/* 1 when p[0..n) is whole, valid UTF-8. */
int ws_utf8_valid(const uint8_t *p, size_t n);

/* ---- the decoder ---------------------------------------------------- */

typedef struct {
    int server;                 /* frames from a client: masked */
    int text_ok;                /* text messages accepted (else 1003) */
    uint64_t max_message;       /* 0: WS_MAX_MESSAGE */

    /* state */
    ws_frame f;                 /* the data frame being handed out */
    int in_frame;
    uint64_t left, off;         /* its payload bytes still to come, given */
    int msg_op;                 /* WS_TEXT/WS_BINARY while a message goes on, else 0 */
    uint64_t msg_len;
    unsigned char u8need, u8lo, u8hi;   /* UTF-8 state of a text message */
    int closed;                 /* a close frame was decoded */

    /* WS_BAD */
    int code;                   /* the close code to send */
    const char *why;
} ws_decoder;

enum { WS_EV_NONE, WS_EV_DATA, WS_EV_PING, WS_EV_PONG, WS_EV_CLOSE };

typedef struct {
    int type;                   /* WS_EV_* */
    int opcode;                 /* DATA: WS_TEXT or WS_BINARY */
    int fin;                    /* DATA: the message's last bytes */
    uint8_t *data;              /* DATA, PING, PONG: unmasked, in buf */
    size_t len;
    unsigned close_code;        /* CLOSE: the peer's code (1005 when none) */
    const uint8_t *reason;      /* CLOSE: UTF-8, not NUL-terminated */
    size_t reason_len;
} ws_event;

void ws_decoder_init(ws_decoder *d, int server, uint64_t max_message, int text_ok);
/*
 * Decode from buf[0..len), unmasking in place. Returns the bytes used
 * (the caller drops them), with *ev set when something was decoded;
 * -1 on a protocol error (d->code, d->why). ev->type WS_EV_NONE with 0
 * used: more bytes are needed. DATA events hand out at most max_data
 * bytes (0 for no limit) and may be empty (an empty frame). Control
 * frames are decoded whole (125 bytes at most); after a CLOSE, nothing
 * more is decoded.
 */
ssize_t ws_decode(ws_decoder *d, uint8_t *buf, size_t len, size_t max_data, ws_event *ev);
/* Payload bytes (or a control frame) that ws_decode would hand out from
 * buf now: 0 when it needs more bytes. */
size_t ws_decode_ready(const ws_decoder *d, const uint8_t *buf, size_t len);

/* ---- the net_conn variant ------------------------------------------- */

typedef struct {
    uint64_t max_message;       /* 0: WS_MAX_MESSAGE */
    size_t max_header;          /* 0: WS_MAX_HEADER */
    int require_protocol;       /* server: refuse a request without "mqtt" */
    int text_ok;                /* accept text messages (not MQTT's way: 1003) */
    const char *protocol;       /* client: the subprotocol offered (NULL: "mqtt"; "": none) */
} ws_opts;

/*
 * A WebSocket over inner (already connected; the variant owns it from
 * now on and closes it). handshake() runs inner's handshake (TLS), then
 * the opening handshake: a server reads the request and answers 101, or
 * an HTTP error and then fails; a client sends its request and checks
 * the 101. read() returns the payload of binary messages as one byte
 * stream, answers pings, and returns 0 once the peer's close frame came
 * (answered) or the inner stream ended. write() takes bytes into one
 * binary frame in its own output buffer, which flush() drains. read()
 * sends its pongs and closes itself when the socket takes them; what it
 * does not take waits for flush(), so owners flush after reads as they
 * do after writes. A protocol error sends a close frame with the RFC's
 * code and fails. o may be NULL (defaults). The name is "ws" over TCP
 * and "wss" over TLS.
 *
 * Frames may arrive in the same segment as the request head (a client
 * sends CONNECT at once): after handshake() returns 0, check pending()
 * and read, as after a TLS handshake. Writes before that fail: RFC 6455
 * 4.1 has the client wait for the 101 before it sends anything.
 *
 * host (client): the Host header, with ":port" when it is not 80/443.
 * The server does not check Origin: the kit listens on 127.0.0.1 only.
 */
net_conn *ws_server(net_conn *inner, const ws_opts *o);
net_conn *ws_client(net_conn *inner, const char *host, const char *path, const ws_opts *o);
/* For an HTTP server that has read a request head and found an upgrade:
 * a server WebSocket that starts from those bytes (the head, and any
 * frames after it) instead of reading them from inner. */
net_conn *ws_server_accepted(net_conn *inner, const void *bytes, size_t len, const ws_opts *o);

/* 1 when c is a WebSocket (for the trace to mark the connection). */
int ws_is(const net_conn *c);
/* After the handshake: the request path ("/mqtt") and the subprotocol
 * chosen (NULL when none); NULL for another variant. */
const char *ws_path(const net_conn *c);
const char *ws_protocol(const net_conn *c);
/* Bytes queued for the socket (pongs, closes, data) that flush() has not
 * yet written. */
size_t ws_unsent(const net_conn *c);
/* The close code the peer sent (0: none yet; 1005: a close without one). */
unsigned ws_peer_close_code(const net_conn *c);
/* Queue a ping with payload (at most 125 bytes); flush() sends it. 0, or
 * NET_FAIL. */
int ws_ping(net_conn *c, const void *payload, size_t len);
/* Queue payload as one whole message (WS_BINARY or WS_TEXT, one frame)
 * whatever its size, for a sender of messages (the HTTP server's push)
 * rather than of a byte stream, whose write() cuts at its buffer's high
 * mark; flush() sends it. The caller bounds its backlog (ws_unsent). 0,
 * or NET_FAIL when the WebSocket is not open. */
int ws_send_message(net_conn *c, int opcode, const void *payload, size_t len);

#endif
