/*
 * net.h - the kit's one network layer: an event loop, and a connection
 * interface whose variants are plain TCP, TLS and WebSocket.
 *
 * The loop (in the manner of redis's ae.c) wraps one epoll set. Owners
 * embed a net_io in their own connection object and register it with a
 * handler; the loop calls the handler with what is ready. Nothing in the
 * loop allocates per event. Each thread that needs a loop makes its own:
 * the proxy runs one in its thread, the load generator one in the
 * caller's thread, the TLS impostor and the HTTP server one each.
 *
 *   - Level-triggered, so a handler may leave bytes unread (to share the
 *     loop fairly); they are reported again on the next turn.
 *   - net_del() may be called from any handler, for any io, and the io
 *     may be freed at once: events still pending in this batch for it are
 *     forgotten.
 *   - Bytes that a layer holds where epoll cannot see them (OpenSSL's
 *     read-ahead, a WebSocket frame decoded but not yet delivered) are
 *     announced with net_again(): the io is called with NET_IN on the
 *     next turn, and that turn does not sleep.
 *   - Timers are one-shot, at an absolute time on the monotonic clock.
 *   - net_wake() is the only call that is safe from another thread.
 *
 * A net_conn (in the manner of wrk's struct sock) is a byte stream over a
 * socket: read, write, a handshake, an orderly end. A variant that would
 * block returns NET_AGAIN and says in c->want whether it waits to read
 * (NET_IN) or to write (NET_OUT); the owner adds that to what it asks of
 * the loop. A TLS read may need the socket writable, and a WebSocket
 * write may need to read first; c->want covers both.
 */
#ifndef MQLAB_NET_H
#define MQLAB_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ---- the loop ------------------------------------------------------ */

enum { NET_IN = 1, NET_OUT = 2, NET_HUP = 4, NET_ERR = 8 };

typedef struct net_loop net_loop;
typedef struct net_io net_io;
typedef struct net_timer net_timer;

typedef void net_io_fn(net_io *io, unsigned events);
typedef void net_timer_fn(net_timer *t);

struct net_io {
    int fd;                     /* -1 while not in a loop */
    unsigned mask;              /* NET_IN | NET_OUT asked for */
    net_io_fn *fn;
    void *ud;                   /* the owner's */
    net_loop *loop;
    int again;                  /* index + 1 in the loop's again list */
};

struct net_timer {
    int64_t at_us;              /* net_now_us() time it fires */
    net_timer_fn *fn;
    void *ud;                   /* the owner's */
    net_timer *next;
    int armed;
};

/* A new loop, or NULL with err set (KIT_ERRLEN bytes, may be NULL). */
net_loop *net_loop_new(char *err);
/* Free the loop. Ios still in it are forgotten, not closed. NULL is fine. */
void net_loop_free(net_loop *l);

/* Add fd to the loop with the events in mask (NET_IN, NET_OUT; hang-ups
 * and errors are always reported). 0, or an errno. */
int net_add(net_loop *l, net_io *io, int fd, unsigned mask, net_io_fn *fn, void *ud);
/* Change what io waits for; nothing is done when mask is unchanged.
 * 0, or an errno. */
int net_set(net_io *io, unsigned mask);
/* Take io out of its loop (before closing its fd). Safe on an io that
 * is in no loop. */
void net_del(net_io *io);
/* Call io with NET_IN on the next turn even if the socket is silent. */
void net_again(net_io *io);

/* Wait up to timeout_ms (-1: until something happens; shortened to the
 * next timer and to 0 when an io is in the again list). Returns how many
 * sockets are ready, or -errno (-EINTR included: the caller decides). */
int net_wait(net_loop *l, int timeout_ms);
/* Call the handlers for what the last net_wait found, then those of the
 * again list, then the timers that are due. */
void net_dispatch(net_loop *l);
/* net_wait then net_dispatch. Returns what net_wait returned. */
int net_turn(net_loop *l, int timeout_ms);

/* Arm t to fire at at_us (net_now_us() clock); rearming moves it. */
void net_timer_at(net_loop *l, net_timer *t, int64_t at_us, net_timer_fn *fn, void *ud);
void net_timer_cancel(net_loop *l, net_timer *t);

/* Make the loop's current or next net_wait return at once. Thread-safe;
 * the first call makes the loop's eventfd (fn, when not NULL, runs in the
 * loop's thread on each wake, from net_dispatch). 0 or an errno. */
int net_wake_init(net_loop *l, void (*fn)(void *ud), void *ud);
void net_wake(net_loop *l);

int64_t net_now_us(void);       /* monotonic clock */

/* ---- sockets (in the manner of redis's anet.c) --------------------- */

/* Listen on 127.0.0.1:port (0: a free port); *port_out gets the port.
 * Non-blocking, close-on-exec. The fd, or -1 with err set. */
int net_listen_local(int port, int backlog, int *port_out, char *err);
/* Accept one connection, non-blocking and close-on-exec, with
 * TCP_NODELAY. The fd, or -1 with errno (EAGAIN: none waiting). */
int net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *plen);
/* Start a non-blocking connect. The fd, or -1 with errno set;
 * *in_progress is 1 while the connect is still going (wait for NET_OUT,
 * then net_connect_result). TCP sockets get TCP_NODELAY. */
int net_connect(const struct sockaddr *sa, socklen_t len, int *in_progress);
/* After NET_OUT on a connecting socket: 0 when connected, EINPROGRESS
 * while it is not done, else the errno that failed it. */
int net_connect_result(int fd);
/* The port of a socket's local or peer address (0 when it has none). */
int net_local_port(int fd);
int net_peer_port(int fd);

/* ---- connections --------------------------------------------------- */

enum {
    NET_AGAIN = -2,             /* would block: see c->want */
    NET_FAIL = -1               /* failed for good: see c->err, net_why(c) */
};

typedef struct net_conn net_conn;

typedef struct {
    const char *name;           /* "tcp", "tls", "ws", "wss" */
    /* 0 when the connection is ready for data, NET_AGAIN, NET_FAIL.
     * Called again after each NET_AGAIN until it is not. */
    int (*handshake)(net_conn *c);
    /* >0 bytes read, 0 at the end of the stream, NET_AGAIN, NET_FAIL. */
    ssize_t (*read)(net_conn *c, void *buf, size_t n);
    /* >0 bytes taken (maybe fewer than n), NET_AGAIN, NET_FAIL. A variant
     * with its own output buffer takes what fits and writes it later,
     * from flush. */
    ssize_t (*write)(net_conn *c, const void *buf, size_t n);
    /* Write what the variant holds: 0 all written, NET_AGAIN, NET_FAIL. */
    int (*flush)(net_conn *c);
    /* Bytes it holds for reading that the socket will not announce. */
    size_t (*pending)(net_conn *c);
    /* No more writes (FIN, close_notify, a close frame): 0, NET_AGAIN
     * (call again), NET_FAIL. Reading goes on. */
    int (*shutdown)(net_conn *c);
    /* Release the variant's state and close the socket; reset: end it
     * with a TCP reset instead of an orderly close. Frees c. */
    void (*close)(net_conn *c, int reset);
} net_conn_ops;

struct net_conn {
    const net_conn_ops *ops;
    int fd;
    unsigned want;              /* after NET_AGAIN: NET_IN or NET_OUT */
    int err;                    /* errno of a failure, or 0 */
    char *why;                  /* a failure in words (NULL: none; read it
                                   with net_why). Allocated only on a
                                   failure: an idle connection stays small */
    net_conn *inner;            /* a layered variant's transport */
    void *impl;                 /* the variant's own state */
};

/* Plain TCP (or unix) on a connected, or connecting, non-blocking socket. */
net_conn *net_tcp(int fd);

/* TLS over fd. ctx is borrowed (it must outlive the connection). server:
 * accept a handshake; else connect, checking the peer against host when
 * host is not NULL (a name, or an IP literal) and SNI for a name. */
typedef struct ssl_ctx_st SSL_CTX;
net_conn *net_tls(int fd, SSL_CTX *ctx, int server, const char *host);
/* A server context for net_tls(..., 1, ...): TLS 1.2 at least, with the
 * certificate chain and key in these PEM files. NULL with err set. */
SSL_CTX *net_tls_server_ctx(const char *certfile, const char *keyfile, char *err);
typedef struct ssl_st SSL;
/* A client's check of the server: host is an IP literal (checked against
 * the certificate's addresses) or a name (checked, and sent as SNI).
 * 1, or 0 when OpenSSL cannot take it. */
int net_tls_expect_peer(SSL *ssl, const char *host);
/* The OpenSSL session of a TLS connection (NULL for another variant). */
SSL *net_tls_ssl(net_conn *c);

static inline int net_handshake(net_conn *c) { return c->ops->handshake(c); }
static inline ssize_t net_read(net_conn *c, void *b, size_t n) { return c->ops->read(c, b, n); }
static inline ssize_t net_write(net_conn *c, const void *b, size_t n) { return c->ops->write(c, b, n); }
static inline int net_flush(net_conn *c) { return c->ops->flush(c); }
static inline size_t net_pending(net_conn *c) { return c->ops->pending(c); }
static inline int net_shutdown(net_conn *c) { return c->ops->shutdown(c); }
static inline void net_close(net_conn *c, int reset) { if (c) c->ops->close(c, reset); }

/* The failure in words ("" when there is none). */
static inline const char *net_why(const net_conn *c) { return c->why ? c->why : ""; }

/* For variants: record a failure (errno e, may be 0) and return NET_FAIL. */
int net_fail(net_conn *c, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* For variants: a zeroed net_conn with ops and fd set (aborts when out of
 * memory, as the kit does). */
net_conn *net_conn_new(const net_conn_ops *ops, int fd);
/* For variants: free c itself (not its inner connection). */
void net_conn_free(net_conn *c);

/* The TCP variant's own operations, for layers that reuse some of them. */
extern const net_conn_ops net_tcp_ops;

#endif
