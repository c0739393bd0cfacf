/*
 * tls.h - the kit's TLS side, with OpenSSL: makes the PKI the TLS labs
 * use, probes a listener (which protocol versions it accepts, which
 * certificate it presents, whether it answers plain MQTT), and plays an
 * impostor broker that records what a client does when shown a
 * certificate it should not trust.
 *
 * No Lua here (runner/lua_tls.c binds it as mqlab.tls). Functions return
 * KIT_OK or a KIT_E* code and write a sentence into err (KIT_ERRLEN
 * bytes, may be NULL), as util.h describes.
 *
 * Probes block, with a deadline, polling cleanup_interrupted() (they
 * return KIT_EINTR). They write on sockets through OpenSSL, so SIGPIPE
 * must be ignored, as cleanup_init() does.
 */
#ifndef MQLAB_TLS_H
#define MQLAB_TLS_H

#include <stddef.h>

/* ---- PKI ------------------------------------------------------------ */

/* The files of the PKI, NULL-terminated, in the order they are made:
 * ca, server, client, impostor-ca, impostor, otherhost, expired; each as
 * NAME.key then NAME.crt. */
extern const char *const tls_pki_files[];

/* Called once for every file tls_pki_ensure() writes (its full path). */
typedef void (*tls_made_fn)(const char *path, void *ud);

/* Make the PKI in dir (created 0700 when missing) where files are
 * missing; files already there are left alone. If ca.crt or ca.key is
 * missing everything is made again (the rest was signed by the old CA);
 * likewise impostor.* when impostor-ca.* is made again. Otherwise only
 * the pairs with a missing file are made. EC P-256 keys, SHA-256
 * signatures; keys 0600, certificates 0644, each written atomically, the
 * CA last, so an interrupted run is completed by the next one. Holds an
 * flock on dir meanwhile, so two kits never interleave.
 *   made: may be NULL.
 * Returns KIT_OK, KIT_EINVAL (dir NULL/empty), KIT_ERR (cannot write, a
 * file there cannot be read back, OpenSSL failed). */
int tls_pki_ensure(const char *dir, tls_made_fn made, void *ud, char *err);

/* The kit's certs folder, absolute (it may not exist yet):
 * $MQLAB_CERTS, else certs/ beside the mqlab binary when that folder
 * exists and is writable, else $XDG_DATA_HOME/mqlab/certs, else
 * $HOME/.local/share/mqlab/certs. KIT_EMISSING when none can be named. */
int tls_default_certs_dir(char *buf, size_t len, char *err);

/* `mqlab certs [DIR]`: tls_pki_ensure(dir or the default folder) and,
 * unless quiet, print to stdout the folder and each file made (or that
 * nothing was missing). Returns what tls_pki_ensure returned. */
int tls_certs_command(const char *dir, int quiet, char *err);

/* ---- probes --------------------------------------------------------- */

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

/* ---- impostor ------------------------------------------------------- */

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
