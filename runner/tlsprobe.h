/*
 * tlsprobe.h - client checks of a listener, with OpenSSL: which protocol
 * versions it accepts, which certificate it presents, whether it answers
 * plain MQTT. One connection each.
 *
 * Probes block, with a deadline, polling cleanup_interrupted() (they
 * return KIT_EINTR). They write on sockets through OpenSSL, so SIGPIPE
 * must be ignored, as cleanup_init() does. Errors as util.h describes.
 */
#ifndef MQLAB_TLSPROBE_H
#define MQLAB_TLSPROBE_H

#include <stddef.h>

/* Protocol versions, indexes into the arrays below. */
enum { TLS_V10 = 0, TLS_V11, TLS_V12, TLS_V13, TLS_NVERSIONS };

/* "1.0", "1.1", "1.2", "1.3"; NULL for an unknown index. */
const char *tls_version_name(int v);

/* Try one handshake with ONLY version v enabled on our side (security
 * level 0, so that TLS 1.0/1.1 are offered at all), no certificate check.
 *   host: NULL means "127.0.0.1".   timeout_ms: for the whole attempt.
 *   *ok: 1 when the handshake completed (for TLS 1.3 also: the server did
 *        not reject us right after it), else 0, with the reason in why.
 * Returns KIT_OK when the attempt was made (whatever its outcome),
 * KIT_EINVAL on bad arguments, KIT_EINTR on Ctrl-C. */
int tls_probe_version(const char *host, int port, int v, int timeout_ms,
                      int *ok, char *why, size_t whylen);

#define TLS_MAX_NAMES 16

typedef struct {
    int handshake;              /* the handshake completed */
    int have_cert;              /* the fields below up to `expired` are set */
    char version[16];           /* "TLSv1.3" (when handshake) */
    char subject[256];          /* RFC 2253: "CN=localhost" */
    char issuer[256];
    char names[TLS_MAX_NAMES][256];  /* subjectAltName DNS and IP entries */
    int nnames;
    char not_after[32];         /* "2027-11-22 10:00:00 UTC" */
    int expired;
    int verified;               /* chain to cafile and name both good */
    char verify_error[128];     /* OpenSSL's words; "" when verified */
    char error[256];            /* why no handshake; "" otherwise */
} tls_cert_info_t;

/* Handshake (TLS 1.2 or 1.3) trusting only cafile, and check the server's
 * certificate for `name` (a DNS name or an IP address). The handshake is
 * completed even when the check fails, so that the certificate can be
 * described; the result of the check is in verified/verify_error.
 *   host: NULL means "127.0.0.1".   name: NULL means no name check.
 * Returns KIT_OK when the probe ran (see out->handshake), KIT_EINVAL,
 * KIT_ENOENT (cafile cannot be loaded), KIT_EINTR. */
int tls_probe_cert(const char *host, int port, const char *cafile, const char *name,
                   int timeout_ms, tls_cert_info_t *out, char *err);

typedef struct {
    int answered;       /* the server sent any bytes back */
    int connack;        /* the CONNACK return code, or -1 when none came */
    int closed;         /* the server closed the connection */
    char error[256];    /* why there is no CONNACK; "" when there is */
} tls_plain_result_t;

/* A plain (no TLS) MQTT 3.1.1 CONNECT, client id "mqlab-plain-probe",
 * clean session; waits for a CONNACK, the server closing, or timeout_ms.
 * On a CONNACK 0 it says DISCONNECT before closing.
 * Returns KIT_OK when the probe ran, KIT_EINVAL, KIT_EINTR. */
int tls_probe_plain(const char *host, int port, int timeout_ms,
                    tls_plain_result_t *out, char *err);

#endif
