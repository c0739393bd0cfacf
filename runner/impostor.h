/*
 * impostor.h - a TLS "broker" with a certificate a client should not
 * trust, that records what each client that reaches it does: the alert
 * it aborts with, or the CONNECT it sends when it does not check.
 *
 * It runs a net_loop (net.h) in a thread of its own. Errors as util.h
 * describes.
 */
#ifndef MQLAB_IMPOSTOR_H
#define MQLAB_IMPOSTOR_H

#include <stddef.h>

typedef struct tls_impostor tls_impostor_t;

typedef struct {
    int connections;        /* TCP connections accepted */
    int handshakes;         /* TLS handshakes completed */
    long long bytes_after;  /* application bytes received after them */
    int connect_seen;       /* an MQTT CONNECT was among those bytes */
    char **client_ids;      /* of those CONNECTs, in order */
    size_t nclient_ids;
    char **alerts;          /* a client aborted the handshake with this
                               alert, as OpenSSL names it ("tlsv1 alert
                               unknown ca") */
    size_t nalerts;
    char **errors;          /* other failed handshakes ("unexpected eof
                               while reading", "wrong version number") */
    size_t nerrors;
} tls_impostor_report_t;

/* A TLS listener on 127.0.0.1 on a free port that presents cert/key,
 * served by a thread of its own (all signals blocked there). It accepts
 * any number of connections; after a handshake it reads everything, and
 * answers an MQTT CONNECT with a CONNACK 0, as a broker would, so that a
 * client that does not check the certificate carries on and shows it.
 * Returns KIT_OK, KIT_EINVAL, KIT_ENOENT (cert/key cannot be loaded),
 * KIT_ERR. */
int tls_impostor_start(tls_impostor_t **out, const char *cert, const char *key, char *err);

int tls_impostor_port(const tls_impostor_t *imp);

/* What happened so far. Everything that reached the listener before the
 * call is counted: the thread processes what is pending first. The lists
 * hold at most 64 entries each. Free with tls_impostor_report_free().
 * Returns KIT_OK, or KIT_EINTR (then *out is still filled). */
int tls_impostor_report(tls_impostor_t *imp, tls_impostor_report_t *out);
void tls_impostor_report_free(tls_impostor_report_t *r);

/* Stop the thread, close every connection and the listener, free.
 * NULL is fine. */
void tls_impostor_stop(tls_impostor_t *imp);

#endif
