/*
 * tls.c - the kit's PKI, TLS probes and the impostor broker (see tls.h).
 *
 * OpenSSL 3.0 API only. The probes are client code over non-blocking
 * sockets and poll() in short slices, so a deadline or Ctrl-C always cuts
 * them; the impostor is a small poll() server in a thread of its own.
 * OpenSSL's error queue is per thread: every operation whose failure we
 * describe starts with ERR_clear_error().
 */
#include "tls.h"
#include "cleanup.h"
#include "packet.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* ==================================================================== */
/* PKI                                                                   */
/* ==================================================================== */

#define DAY_S (24L * 3600L)
/* The CA/Browser limit that clients such as Apple's enforce; well past
 * any course. */
#define VALID_DAYS 825

typedef struct {
    const char *stem;       /* STEM.key, STEM.crt */
    const char *cn;
    int signer;             /* index of the issuing CA in specs, -1: self-signed */
    const char *san;        /* subjectAltName, NULL: none */
    const char *eku;        /* extendedKeyUsage, NULL for CAs */
    int expired;            /* validity ended in the past */
} pki_spec;

#define SERVER_SAN "DNS:localhost,IP:127.0.0.1"

static const pki_spec specs[] = {
    { "ca", "mqlab CA", -1, NULL, NULL, 0 },
    { "server", "localhost", 0, SERVER_SAN, "serverAuth", 0 },
    { "client", "mqlab-client", 0, NULL, "clientAuth", 0 },
    { "impostor-ca", "mqlab impostor CA", -1, NULL, NULL, 0 },
    { "impostor", "localhost", 3, SERVER_SAN, "serverAuth", 0 },
    { "otherhost", "otherhost.invalid", 0, "DNS:otherhost.invalid", "serverAuth", 0 },
    { "expired", "localhost", 0, SERVER_SAN, "serverAuth", 1 },
};
#define NSPECS ((int)(sizeof specs / sizeof specs[0]))

const char *const tls_pki_files[] = {
    "ca.key", "ca.crt", "server.key", "server.crt", "client.key", "client.crt",
    "impostor-ca.key", "impostor-ca.crt", "impostor.key", "impostor.crt",
    "otherhost.key", "otherhost.crt", "expired.key", "expired.crt", NULL
};

/* OpenSSL's most recent reason, for messages: "no such file", ... */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    if (!ext) return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A random positive 127-bit serial, as RFC 5280 wants them unique. */
static int set_serial(X509 *x)
{
    unsigned char buf[16];
    if (RAND_bytes(buf, sizeof buf) != 1) return 0;
    buf[0] &= 0x7f;
    buf[0] |= 0x01;     /* never zero, never a leading zero byte */
    BIGNUM *bn = BN_bin2bn(buf, sizeof buf, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

/* A certificate for spec s and key, signed by issuer/issuer_key (NULL:
 * self-signed). NULL on failure. */
static X509 *make_cert(const pki_spec *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    if (!x) return NULL;
    int is_ca = s->signer < 0;
    long from = -3600, to = (long)VALID_DAYS * DAY_S;   /* an hour back: clock skew */
    if (s->expired) { from = -90 * DAY_S; to = -DAY_S; }
    X509V3_CTX v3;
    int ok = X509_set_version(x, 2) && set_serial(x) &&
             X509_gmtime_adj(X509_getm_notBefore(x), from) &&
             X509_gmtime_adj(X509_getm_notAfter(x), to) &&
             X509_set_pubkey(x, key) &&
             X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                                        (const unsigned char *)s->cn, -1, -1, 0) &&
             X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                            : X509_get_subject_name(x));
    if (ok) {
        X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
        ok = add_ext(x, &v3, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
             add_ext(x, &v3, NID_key_usage, is_ca ? "critical,keyCertSign,cRLSign"
                                                 : "critical,digitalSignature") &&
             add_ext(x, &v3, NID_subject_key_identifier, "hash") &&
             (is_ca || add_ext(x, &v3, NID_authority_key_identifier, "keyid:always")) &&
             (!s->eku || add_ext(x, &v3, NID_ext_key_usage, s->eku)) &&
             (!s->san || add_ext(x, &v3, NID_subject_alt_name, s->san));
    }
    if (ok) ok = X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
    if (!ok) { X509_free(x); return NULL; }
    return x;
}

/* PEM of a key (PKCS#8, unencrypted) or a certificate into path. */
static int write_pem(const char *path, EVP_PKEY *key, X509 *cert, char *err)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return kit_seterr(err, KIT_ERR, "out of memory");
    int ok = key ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_bio_X509(b, cert);
    int rc;
    if (!ok) {
        rc = kit_seterr(err, KIT_ERR, "cannot encode %s: %s", path, ossl_reason());
    } else {
        char *data = NULL;
        long len = BIO_get_mem_data(b, &data);
        rc = kit_write_file_atomic(path, data, (size_t)len, key ? 0600 : 0644, err);
    }
    BIO_free(b);
    return rc;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

static void pki_path(char *out, size_t len, const char *dir, const char *stem, const char *ext)
{
    snprintf(out, len, "%s/%s.%s", dir, stem, ext);
}

/* Hold an exclusive flock on the folder itself (no lock file to leave
 * behind), waiting in slices so Ctrl-C still works. */
static int lock_dir(const char *dir, int *fdout, char *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return kit_seterr(err, KIT_ERR, "cannot open %s: %s", dir, strerror(errno));
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) break;   /* no locking there: go on */
        if (kit_sleep_ms(20) == KIT_EINTR) {
            close(fd);
            return kit_seterr(err, KIT_EINTR, "interrupted while waiting for %s", dir);
        }
    }
    *fdout = fd;
    return KIT_OK;
}

int tls_pki_ensure(const char *dir, tls_made_fn made, void *ud, char *err)
{
    if (!dir || !*dir) return kit_seterr(err, KIT_EINVAL, "no certs folder given");
    if (strlen(dir) > PATH_MAX - 32) return kit_seterr(err, KIT_EINVAL, "path too long: %s", dir);

    int rc = kit_mkdir_p(dir, 0700, err);
    if (rc != KIT_OK) return rc;

    EVP_PKEY *keys[NSPECS] = { 0 };
    X509 *certs[NSPECS] = { 0 };
    int need[NSPECS] = { 0 };
    char kpath[PATH_MAX], cpath[PATH_MAX];
    int lockfd = -1;

    rc = lock_dir(dir, &lockfd, err);
    if (rc != KIT_OK) return rc;

    /* Decide under the lock: another kit may just have made them. */
    for (int i = 0; i < NSPECS; i++) {
        pki_path(kpath, sizeof kpath, dir, specs[i].stem, "key");
        pki_path(cpath, sizeof cpath, dir, specs[i].stem, "crt");
        need[i] = !kit_file_exists(kpath) || !kit_file_exists(cpath);
    }
    /* Without the kit's CA the folder is a new PKI: all of it, the
     * impostor's too. Otherwise a CA made again takes along what it
     * signs (specs lists every CA before those). */
    for (int i = 0; i < NSPECS; i++)
        if (need[0] || (specs[i].signer >= 0 && need[specs[i].signer])) need[i] = 1;

    /* Make everything in memory first; load a CA that is kept when it
     * must sign something new. */
    for (int i = 0; i < NSPECS; i++) {
        int sg = specs[i].signer;
        if (!need[i]) continue;
        if (sg >= 0 && !need[sg] && !keys[sg]) {
            pki_path(kpath, sizeof kpath, dir, specs[sg].stem, "key");
            pki_path(cpath, sizeof cpath, dir, specs[sg].stem, "crt");
            ERR_clear_error();
            keys[sg] = read_key(kpath);
            certs[sg] = read_cert(cpath);
            if (!keys[sg] || !certs[sg] || X509_check_private_key(certs[sg], keys[sg]) != 1) {
                rc = kit_seterr(err, KIT_ERR,
                                "cannot use %s with %s (unreadable or not a pair); remove both to make "
                                "a new CA", cpath, kpath);
                goto cleanup;
            }
        }
        ERR_clear_error();
        keys[i] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (keys[i])
            certs[i] = make_cert(&specs[i], keys[i], sg >= 0 ? certs[sg] : NULL,
                                 sg >= 0 ? keys[sg] : NULL);
        if (!keys[i] || !certs[i]) {
            rc = kit_seterr(err, KIT_ERR, "cannot make %s.crt: %s", specs[i].stem, ossl_reason());
            goto cleanup;
        }
    }

    /* Write: what a CA signed before the CA, the kit's CA last, each key
     * before its certificate. A run cut short leaves a pair or a CA
     * missing, and the next run makes it (and what depends on it) again. */
    for (int pass = 0; pass < 3; pass++) {
        for (int i = NSPECS - 1; i >= 0; i--) {
            int is_ca = specs[i].signer < 0;
            int this_pass = !is_ca ? 0 : (i != 0 ? 1 : 2);
            if (!need[i] || this_pass != pass) continue;
            pki_path(kpath, sizeof kpath, dir, specs[i].stem, "key");
            pki_path(cpath, sizeof cpath, dir, specs[i].stem, "crt");
            rc = write_pem(kpath, keys[i], NULL, err);
            if (rc == KIT_OK && made) made(kpath, ud);
            if (rc == KIT_OK) rc = write_pem(cpath, NULL, certs[i], err);
            if (rc == KIT_OK && made) made(cpath, ud);
            if (rc != KIT_OK) goto cleanup;
        }
    }
    rc = KIT_OK;

cleanup:
    for (int i = 0; i < NSPECS; i++) {
        EVP_PKEY_free(keys[i]);
        X509_free(certs[i]);
    }
    ERR_clear_error();
    if (lockfd >= 0) close(lockfd);     /* releases the flock */
    return rc;
}

int tls_default_certs_dir(char *buf, size_t len, char *err)
{
    if (!buf || len == 0) return kit_seterr(err, KIT_EINVAL, "no buffer");
    const char *env = getenv("MQLAB_CERTS");
    if (env && *env) {
        if (env[0] == '/') {
            if ((size_t)snprintf(buf, len, "%s", env) >= len) goto toolong;
            return KIT_OK;
        }
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return kit_seterr(err, KIT_ERR, "MQLAB_CERTS is relative and the current folder is unknown");
        if ((size_t)snprintf(buf, len, "%s/%s", cwd, env) >= len) goto toolong;
        return KIT_OK;
    }

    /* The repository's certs/ when mqlab runs from its checkout. */
    const char *exe = kit_self_exe();
    const char *slash = strrchr(exe, '/');
    if (exe[0] == '/' && slash) {
        char beside[PATH_MAX];
        if (snprintf(beside, sizeof beside, "%.*s/certs", (int)(slash - exe), exe) < (int)sizeof beside &&
            kit_is_dir(beside) && access(beside, W_OK) == 0) {
            if ((size_t)snprintf(buf, len, "%s", beside) >= len) goto toolong;
            return KIT_OK;
        }
    }

    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && xdg[0] == '/') {     /* the XDG spec ignores relative values */
        if ((size_t)snprintf(buf, len, "%s/mqlab/certs", xdg) >= len) goto toolong;
        return KIT_OK;
    }
    const char *home = getenv("HOME");
    if (!home || home[0] != '/') {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
    }
    if (!home)
        return kit_seterr(err, KIT_EMISSING,
                          "no folder for the kit's certificates: set MQLAB_CERTS (or HOME)");
    if ((size_t)snprintf(buf, len, "%s/.local/share/mqlab/certs", home) >= len) goto toolong;
    return KIT_OK;
toolong:
    return kit_seterr(err, KIT_EINVAL, "the certs folder's path is too long");
}

static void print_made(const char *path, void *ud)
{
    int *n = ud;
    const char *base = strrchr(path, '/');
    printf("  made %s\n", base ? base + 1 : path);
    (*n)++;
}

int tls_certs_command(const char *dir, int quiet, char *err)
{
    char def[PATH_MAX];
    if (!dir || !*dir) {
        int rc = tls_default_certs_dir(def, sizeof def, err);
        if (rc != KIT_OK) return rc;
        dir = def;
    }
    int n = 0;
    if (!quiet) {
        printf("certs folder: %s\n", dir);
        fflush(stdout);
    }
    int rc = tls_pki_ensure(dir, quiet ? NULL : print_made, &n, err);
    if (rc != KIT_OK) return rc;
    if (!quiet) {
        if (n == 0) printf("  nothing missing: every file was already there\n");
        else printf("  %d files made (keys 0600, certificates 0644)\n", n);
    }
    return KIT_OK;
}

/* ==================================================================== */
/* Client side: sockets with deadlines                                   */
/* ==================================================================== */

/* Wait for events on fd until deadline, in slices so Ctrl-C is seen.
 * KIT_OK when ready (or in error: the next call says which). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        if (cleanup_interrupted()) return KIT_EINTR;
        int64_t left = deadline - kit_now_ms();
        if (left <= 0) return KIT_ETIMEOUT;
        struct pollfd p = { .fd = fd, .events = events };
        int r = poll(&p, 1, left > 50 ? 50 : (int)left);
        if (r > 0) return KIT_OK;
        if (r < 0 && errno != EINTR) return KIT_ERR;
    }
}

/* Connect (non-blocking) to host:port. KIT_OK with *fdout, KIT_EREFUSED
 * (why says why), KIT_ETIMEOUT, KIT_EINTR, KIT_EINVAL (unknown host). */
static int tcp_connect(const char *host, int port, int64_t deadline, int *fdout,
                       char *why, size_t whylen)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(host, portstr, &hints, &res);
    if (g != 0) {
        snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(g));
        return KIT_EINVAL;
    }
    int rc = KIT_EREFUSED;
    snprintf(why, whylen, "cannot connect to %s:%d", host, port);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(why, whylen, "socket: %s", strerror(errno));
            continue;
        }
        int e = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            e = errno;
            if (e == EINPROGRESS) {
                int w = wait_fd(fd, POLLOUT, deadline);
                if (w == KIT_EINTR || w == KIT_ETIMEOUT) {
                    close(fd);
                    rc = w;
                    snprintf(why, whylen, w == KIT_EINTR ? "interrupted"
                             : "no TCP connection to %s:%d in time", host, port);
                    break;
                }
                socklen_t el = sizeof e;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) e = errno;
            }
        }
        if (e == 0) {
            *fdout = fd;
            rc = KIT_OK;
            why[0] = '\0';
            break;
        }
        snprintf(why, whylen, "cannot connect to %s:%d: %s", host, port, strerror(e));
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/* Why an SSL call that returned r failed, in OpenSSL's words. errno_at
 * is errno right after the call. */
static void ssl_why(SSL *ssl, int r, int errno_at, char *why, size_t whylen)
{
    int e = SSL_get_error(ssl, r);
    unsigned long code = ERR_peek_last_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    if (reason)
        snprintf(why, whylen, "%s", reason);
    else if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno_at == 0))
        snprintf(why, whylen, "the server closed the connection");
    else if (e == SSL_ERROR_SYSCALL)
        snprintf(why, whylen, "%s", strerror(errno_at));
    else
        snprintf(why, whylen, "TLS error %d", e);
}

/* Drive SSL_connect to its end. KIT_OK, KIT_EREFUSED (why), KIT_ETIMEOUT,
 * KIT_EINTR. */
static int ssl_handshake(SSL *ssl, int fd, int64_t deadline, char *why, size_t whylen)
{
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_connect(ssl);
        int errno_at = errno;
        if (r == 1) return KIT_OK;
        int e = SSL_get_error(ssl, r);
        int w;
        if (e == SSL_ERROR_WANT_READ) w = wait_fd(fd, POLLIN, deadline);
        else if (e == SSL_ERROR_WANT_WRITE) w = wait_fd(fd, POLLOUT, deadline);
        else {
            ssl_why(ssl, r, errno_at, why, whylen);
            return KIT_EREFUSED;
        }
        if (w == KIT_EINTR) { snprintf(why, whylen, "interrupted"); return w; }
        if (w == KIT_ETIMEOUT) { snprintf(why, whylen, "the TLS handshake did not finish in time"); return w; }
    }
}

/* With TLS 1.3 our SSL_connect returns before the server has checked our
 * Finished (and a client certificate, if it wants one): it only says no
 * afterwards, with an alert, where it would otherwise send its session
 * tickets. Listen briefly for either. */
static int confirm_tls13(SSL *ssl, int fd, int64_t deadline, char *why, size_t whylen)
{
    if (SSL_version(ssl) != TLS1_3_VERSION) return KIT_OK;
    int64_t end = kit_now_ms() + 300;
    if (end > deadline) end = deadline;
    int w = wait_fd(fd, POLLIN, end);
    if (w == KIT_EINTR) { snprintf(why, whylen, "interrupted"); return w; }
    if (w != KIT_OK) return KIT_OK;     /* silence: accepted */
    char buf[256];
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(ssl, buf, sizeof buf);
    int errno_at = errno;
    if (r > 0) return KIT_OK;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return KIT_OK;  /* tickets */
    ssl_why(ssl, r, errno_at, why, whylen);
    return KIT_EREFUSED;
}

static const int proto_of[TLS_NVERSIONS] = {
    TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION
};

const char *tls_version_name(int v)
{
    static const char *const names[TLS_NVERSIONS] = { "1.0", "1.1", "1.2", "1.3" };
    return v >= 0 && v < TLS_NVERSIONS ? names[v] : NULL;
}

int tls_probe_version(const char *host, int port, int v, int timeout_ms,
                      int *ok, char *why, size_t whylen)
{
    char scratch[8];
    if (!why || whylen == 0) { why = scratch; whylen = sizeof scratch; }
    why[0] = '\0';
    if (ok) *ok = 0;
    if (!ok || port <= 0 || port > 65535 || v < 0 || v >= TLS_NVERSIONS || timeout_ms < 0) {
        snprintf(why, whylen, "tls_probe_version: bad arguments");
        return KIT_EINVAL;
    }
    if (!host) host = "127.0.0.1";
    int64_t deadline = kit_now_ms() + timeout_ms;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int fd = -1, rc;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(why, whylen, "cannot make a TLS context: %s", ossl_reason());
        rc = KIT_ERR;
        goto cleanup;
    }
    /* Level 0 and this one version only: a broker that still accepts
     * TLS 1.0/1.1 must be caught, not saved by our own defaults. */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (!SSL_CTX_set_min_proto_version(ctx, proto_of[v]) ||
        !SSL_CTX_set_max_proto_version(ctx, proto_of[v]) ||
        (v < TLS_V13 && !SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0"))) {
        snprintf(why, whylen, "this OpenSSL cannot offer TLS %s: %s", tls_version_name(v), ossl_reason());
        rc = KIT_OK;
        goto cleanup;
    }

    rc = tcp_connect(host, port, deadline, &fd, why, whylen);
    if (rc != KIT_OK) {
        if (rc != KIT_EINTR && rc != KIT_EINVAL) rc = KIT_OK;
        goto cleanup;
    }
    ssl = SSL_new(ctx);
    if (!ssl || !SSL_set_fd(ssl, fd)) {
        snprintf(why, whylen, "cannot make a TLS session: %s", ossl_reason());
        rc = KIT_ERR;
        goto cleanup;
    }
    rc = ssl_handshake(ssl, fd, deadline, why, whylen);
    if (rc == KIT_OK) rc = confirm_tls13(ssl, fd, deadline, why, whylen);
    if (rc == KIT_OK) *ok = 1;
    else if (rc != KIT_EINTR) rc = KIT_OK;    /* a refusal is a result */

cleanup:
    SSL_free(ssl);
    if (fd >= 0) close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* "2027-11-22 10:00:00 UTC" */
static void format_time(const ASN1_TIME *t, char *out, size_t len)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) { snprintf(out, len, "?"); return; }
    strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void name_text(const X509_NAME *n, char *out, size_t len)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return;
    if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
        char *data = NULL;
        long dl = BIO_get_mem_data(b, &data);
        snprintf(out, len, "%.*s", (int)dl, data ? data : "");
    }
    BIO_free(b);
}

static void describe_cert(X509 *x, tls_cert_info_t *out)
{
    out->have_cert = 1;
    name_text(X509_get_subject_name(x), out->subject, sizeof out->subject);
    name_text(X509_get_issuer_name(x), out->issuer, sizeof out->issuer);
    format_time(X509_get0_notAfter(x), out->not_after, sizeof out->not_after);
    out->expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0;

    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && out->nnames < TLS_MAX_NAMES; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        char *dst = out->names[out->nnames];
        size_t dl = sizeof out->names[0];
        if (gn->type == GEN_DNS) {
            const ASN1_IA5STRING *s = gn->d.dNSName;
            snprintf(dst, dl, "%.*s", ASN1_STRING_length(s), (const char *)ASN1_STRING_get0_data(s));
            out->nnames++;
        } else if (gn->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = gn->d.iPAddress;
            int n = ASN1_STRING_length(s);
            int af = n == 4 ? AF_INET : n == 16 ? AF_INET6 : 0;
            if (af && inet_ntop(af, ASN1_STRING_get0_data(s), dst, (socklen_t)dl))
                out->nnames++;
        }
    }
    GENERAL_NAMES_free(sans);
}

int tls_probe_cert(const char *host, int port, const char *cafile, const char *name,
                   int timeout_ms, tls_cert_info_t *out, char *err)
{
    if (!out) return kit_seterr(err, KIT_EINVAL, "tls_probe_cert: no result");
    memset(out, 0, sizeof *out);
    if (port <= 0 || port > 65535 || timeout_ms < 0)
        return kit_seterr(err, KIT_EINVAL, "tls_probe_cert: bad port or timeout");
    if (!cafile || !*cafile) return kit_seterr(err, KIT_EINVAL, "tls_probe_cert: no CA file");
    if (!kit_file_exists(cafile)) return kit_seterr(err, KIT_ENOENT, "no CA file %s", cafile);
    if (!host) host = "127.0.0.1";
    int64_t deadline = kit_now_ms() + timeout_ms;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int fd = -1, rc;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        rc = kit_seterr(err, KIT_ERR, "cannot make a TLS context: %s", ossl_reason());
        goto cleanup;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Only the given CA, not the system's store. */
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
        rc = kit_seterr(err, KIT_ENOENT, "cannot load the CA file %s: %s", cafile, ossl_reason());
        goto cleanup;
    }
    /* VERIFY_NONE still runs the whole check (chain, dates, name) and
     * keeps its result; it only lets the handshake finish, so the
     * certificate can be described even when it would be refused. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

    rc = tcp_connect(host, port, deadline, &fd, out->error, sizeof out->error);
    if (rc != KIT_OK) {
        if (rc == KIT_EINTR) kit_seterr(err, rc, "interrupted");
        else if (rc == KIT_EINVAL) kit_seterr(err, rc, "%s", out->error);
        else rc = KIT_OK;
        goto cleanup;
    }
    ssl = SSL_new(ctx);
    if (!ssl || !SSL_set_fd(ssl, fd)) {
        rc = kit_seterr(err, KIT_ERR, "cannot make a TLS session: %s", ossl_reason());
        goto cleanup;
    }
    if (name && *name) {
        struct in6_addr a6;
        struct in_addr a4;
        int is_ip = inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1;
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        int set = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) : SSL_set1_host(ssl, name);
        if (!is_ip) SSL_set_tlsext_host_name(ssl, name);
        if (set != 1) {
            rc = kit_seterr(err, KIT_EINVAL, "'%s' is not a usable host name", name);
            goto cleanup;
        }
    }

    rc = ssl_handshake(ssl, fd, deadline, out->error, sizeof out->error);
    if (rc == KIT_OK) rc = confirm_tls13(ssl, fd, deadline, out->error, sizeof out->error);
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer) describe_cert(peer, out);
    if (rc == KIT_EINTR) {
        kit_seterr(err, rc, "interrupted");
        goto cleanup;
    }
    if (rc == KIT_OK) {
        out->handshake = 1;
        out->error[0] = '\0';
        snprintf(out->version, sizeof out->version, "%s", SSL_get_version(ssl));
        long vr = SSL_get_verify_result(ssl);
        if (!peer) {
            snprintf(out->verify_error, sizeof out->verify_error, "the server sent no certificate");
        } else if (vr == X509_V_OK) {
            out->verified = 1;
        } else {
            snprintf(out->verify_error, sizeof out->verify_error, "%s",
                     X509_verify_cert_error_string(vr));
        }
    }
    rc = KIT_OK;

cleanup:
    if (ssl && out->handshake) SSL_shutdown(ssl);   /* close_notify, best effort */
    SSL_free(ssl);
    if (fd >= 0) close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int tls_probe_plain(const char *host, int port, int timeout_ms,
                    tls_plain_result_t *out, char *err)
{
    if (!out) return kit_seterr(err, KIT_EINVAL, "tls_probe_plain: no result");
    memset(out, 0, sizeof *out);
    out->connack = -1;
    if (port <= 0 || port > 65535 || timeout_ms < 0)
        return kit_seterr(err, KIT_EINVAL, "tls_probe_plain: bad port or timeout");
    if (!host) host = "127.0.0.1";
    int64_t deadline = kit_now_ms() + timeout_ms;

    /* MQTT 3.1.1 CONNECT: clean session, keepalive 60, id "mqlab-plain-probe". */
    uint8_t req[64];
    const pkt_connect_opts co = { .client_id = "mqlab-plain-probe", .clean = 1, .keepalive = 60 };
    int reqlen = pkt_enc_connect(req, sizeof req, &co);
    if (reqlen <= 0) return kit_seterr(err, KIT_ERR, "tls_probe_plain: cannot encode the CONNECT");

    int fd = -1;
    int rc = tcp_connect(host, port, deadline, &fd, out->error, sizeof out->error);
    if (rc != KIT_OK) {
        if (rc == KIT_EINTR) return kit_seterr(err, rc, "interrupted");
        if (rc == KIT_EINVAL) return kit_seterr(err, rc, "%s", out->error);
        return KIT_OK;
    }

    size_t sent = 0;
    while (sent < (size_t)reqlen) {
        ssize_t w = send(fd, req + sent, (size_t)reqlen - sent, MSG_NOSIGNAL);
        if (w > 0) { sent += (size_t)w; continue; }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            rc = wait_fd(fd, POLLOUT, deadline);
            if (rc == KIT_OK) continue;
        } else {
            rc = KIT_ERR;
        }
        break;
    }
    if (rc == KIT_EINTR) {
        close(fd);
        return kit_seterr(err, rc, "interrupted");
    }
    if (sent < (size_t)reqlen) {
        out->closed = 1;
        snprintf(out->error, sizeof out->error, "the server closed the connection before the CONNECT was sent");
        close(fd);
        return KIT_OK;
    }

    /* A CONNACK is 4 bytes; anything else that starts differently is
     * not going to become one. */
    unsigned char in[4];
    size_t got = 0;
    for (;;) {
        rc = wait_fd(fd, POLLIN, deadline);
        if (rc == KIT_EINTR) {
            close(fd);
            return kit_seterr(err, rc, "interrupted");
        }
        if (rc == KIT_ETIMEOUT) break;
        ssize_t r = recv(fd, in + got, sizeof in - got, 0);
        if (r > 0) {
            got += (size_t)r;
            if (got == sizeof in || in[0] != 0x20) break;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        out->closed = 1;      /* EOF or reset */
        break;
    }
    out->answered = got > 0;
    if (got == 4 && in[0] == 0x20 && in[1] == 0x02) {
        out->connack = in[3];
        if (in[3] == 0) {
            static const unsigned char disconnect[2] = { 0xe0, 0x00 };
            (void)!send(fd, disconnect, sizeof disconnect, MSG_NOSIGNAL);
        }
    } else if (got > 0) {
        snprintf(out->error, sizeof out->error,
                 "the server answered %zu byte(s) that are not an MQTT CONNACK (first byte 0x%02x)",
                 got, in[0]);
    } else if (out->closed) {
        snprintf(out->error, sizeof out->error, "the server closed the connection without answering");
    } else {
        snprintf(out->error, sizeof out->error, "no answer in %d ms", timeout_ms);
    }
    close(fd);
    return KIT_OK;
}

/* ==================================================================== */
/* Impostor                                                              */
/* ==================================================================== */

#define IMP_MAX_CONNS 64
#define IMP_MAX_LIST 64
#define IMP_MAX_CONNECT (64 * 1024)   /* bytes kept while looking for the CONNECT */

typedef struct {
    int fd;
    SSL *ssl;
    int open;                   /* handshake done */
    int dead;
    int alert_read;             /* the client sent an alert (info callback) */
    char alert[64];             /* its description, in case no reason is queued */
    short want;                 /* POLLIN / POLLOUT */
    int scan;                   /* 0: looking for a CONNECT, 1: done */
    unsigned char *in;
    size_t inlen;
    unsigned char out[8];       /* a pending CONNACK */
    size_t outlen;
} imp_conn;

struct tls_impostor {
    SSL_CTX *ctx;
    int lfd, wakefd, port;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* Under mu: */
    int stop;
    unsigned long long sync_want, sync_done;
    tls_impostor_report_t rep;
    /* The thread's own: */
    imp_conn *conns[IMP_MAX_CONNS];
    int nconns;
};

static void list_add(char ***list, size_t *n, const char *s)
{
    if (*n >= IMP_MAX_LIST) return;
    *list = kit_xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = kit_strdup(s);
}

static void list_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

static void info_cb(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_READ_ALERT)) return;
    imp_conn *c = SSL_get_app_data(ssl);
    if (!c) return;
    c->alert_read = 1;
    snprintf(c->alert, sizeof c->alert, "%s", SSL_alert_desc_string_long(ret));
}

/* Is the packet at the start of b a CONNECT? Framed and decoded by the
 * kit's codec (packet.c). 1: yes (id, *v5 set), 0: need more bytes,
 * -1: something else, or more than IMP_MAX_CONNECT bytes. */
static int parse_connect(const unsigned char *b, size_t n, char *id, size_t idlen, int *v5)
{
    size_t size = 0;
    int f = pkt_frame(b, n, IMP_MAX_CONNECT, &size, NULL);
    if (f == PKT_NEED_MORE) return 0;
    if (f != PKT_COMPLETE) return -1;
    pkt p;
    if (pkt_decode(b, size, 0, &p, NULL) != KIT_OK || p.type != PKT_CONNECT) return -1;
    snprintf(id, idlen, "%.*s", (int)p.client_id.len, (const char *)p.client_id.p);
    *v5 = p.level == PKT_V5;
    return 1;
}

static void conn_flush(imp_conn *c)
{
    if (!c->outlen || c->dead) return;
    ERR_clear_error();
    int r = SSL_write(c->ssl, c->out, (int)c->outlen);
    if (r > 0) { c->outlen = 0; return; }
    int e = SSL_get_error(c->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) c->dead = 1;
}

/* Application bytes: look for the CONNECT at the start and answer it. */
static void conn_feed(tls_impostor_t *imp, imp_conn *c, const unsigned char *buf, size_t n)
{
    if (c->scan) return;
    size_t keep = n;
    if (c->inlen + keep > IMP_MAX_CONNECT) keep = IMP_MAX_CONNECT - c->inlen;
    c->in = kit_xrealloc(c->in, c->inlen + keep);
    memcpy(c->in + c->inlen, buf, keep);
    c->inlen += keep;
    char id[256];
    int v5 = 0;
    int p = parse_connect(c->in, c->inlen, id, sizeof id, &v5);
    if (p == 0 && c->inlen < IMP_MAX_CONNECT) return;
    c->scan = 1;
    free(c->in);
    c->in = NULL;
    c->inlen = 0;
    if (p != 1) return;
    pthread_mutex_lock(&imp->mu);
    imp->rep.connect_seen = 1;
    list_add(&imp->rep.client_ids, &imp->rep.nclient_ids, id);
    pthread_mutex_unlock(&imp->mu);
    /* CONNACK "accepted", session not present (v5: no properties). */
    static const unsigned char ack4[] = { 0x20, 0x02, 0x00, 0x00 };
    static const unsigned char ack5[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    c->outlen = v5 ? sizeof ack5 : sizeof ack4;
    memcpy(c->out, v5 ? ack5 : ack4, c->outlen);
    conn_flush(c);
}

/* A handshake that failed: the client's alert, or what else went wrong. */
static void conn_failed(tls_impostor_t *imp, imp_conn *c, int r, int errno_at)
{
    char why[256];
    ssl_why(c->ssl, r, errno_at, why, sizeof why);
    if (!ERR_peek_last_error() && c->alert_read) snprintf(why, sizeof why, "alert %s", c->alert);
    else if (strcmp(why, "the server closed the connection") == 0)
        snprintf(why, sizeof why, "the client closed the connection");
    pthread_mutex_lock(&imp->mu);
    if (c->alert_read) list_add(&imp->rep.alerts, &imp->rep.nalerts, why);
    else list_add(&imp->rep.errors, &imp->rep.nerrors, why);
    pthread_mutex_unlock(&imp->mu);
}

/* Move a connection on as far as it goes without blocking. */
static void conn_progress(tls_impostor_t *imp, imp_conn *c)
{
    if (c->dead) return;
    if (!c->open) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_accept(c->ssl);
        int errno_at = errno;
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) { c->want = POLLIN; return; }
            if (e == SSL_ERROR_WANT_WRITE) { c->want = POLLOUT; return; }
            conn_failed(imp, c, r, errno_at);
            c->dead = 1;
            return;
        }
        c->open = 1;
        pthread_mutex_lock(&imp->mu);
        imp->rep.handshakes++;
        pthread_mutex_unlock(&imp->mu);
    }
    conn_flush(c);
    while (!c->dead) {
        unsigned char buf[4096];
        ERR_clear_error();
        int r = SSL_read(c->ssl, buf, sizeof buf);
        if (r > 0) {
            pthread_mutex_lock(&imp->mu);
            imp->rep.bytes_after += r;
            pthread_mutex_unlock(&imp->mu);
            conn_feed(imp, c, buf, (size_t)r);
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) { c->want = POLLIN; break; }
        if (e == SSL_ERROR_WANT_WRITE) { c->want = POLLOUT; break; }
        c->dead = 1;    /* closed by the client, or broken: either way, done */
    }
}

static void conn_free(imp_conn *c)
{
    if (!c) return;
    SSL_free(c->ssl);
    if (c->fd >= 0) close(c->fd);
    free(c->in);
    free(c);
}

static void accept_all(tls_impostor_t *imp)
{
    for (;;) {
        int fd = accept4(imp->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;
        }
        pthread_mutex_lock(&imp->mu);
        imp->rep.connections++;
        pthread_mutex_unlock(&imp->mu);
        imp_conn *c = NULL;
        if (imp->nconns < IMP_MAX_CONNS) c = calloc(1, sizeof *c);
        if (c) {
            c->fd = fd;
            c->ssl = SSL_new(imp->ctx);
        }
        if (!c || !c->ssl || !SSL_set_fd(c->ssl, fd)) {
            pthread_mutex_lock(&imp->mu);
            list_add(&imp->rep.errors, &imp->rep.nerrors,
                     c ? "cannot make a TLS session" : "too many connections at once");
            pthread_mutex_unlock(&imp->mu);
            if (c) conn_free(c);
            else close(fd);
            continue;
        }
        SSL_set_app_data(c->ssl, c);
        SSL_set_accept_state(c->ssl);
        imp->conns[imp->nconns++] = c;
        conn_progress(imp, c);
    }
}

static void *imp_main(void *arg)
{
    tls_impostor_t *imp = arg;
    struct pollfd pfd[2 + IMP_MAX_CONNS];
    unsigned long long done = 0;
    for (;;) {
        int n = 0, nc = imp->nconns;
        pfd[n++] = (struct pollfd){ .fd = imp->wakefd, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = imp->lfd, .events = POLLIN };
        for (int i = 0; i < nc; i++) {
            imp_conn *c = imp->conns[i];
            pfd[n++] = (struct pollfd){ .fd = c->fd,
                                        .events = (short)(c->want | (c->outlen ? POLLOUT : 0)) };
        }
        /* No timeout: every reason to act is a descriptor, stop included. */
        if (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR) {
            struct timespec ts = { 0, 10 * 1000000L };
            nanosleep(&ts, NULL);
            continue;
        }
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            (void)!read(imp->wakefd, &v, sizeof v);
        }
        pthread_mutex_lock(&imp->mu);
        int stop = imp->stop;
        unsigned long long want = imp->sync_want;
        pthread_mutex_unlock(&imp->mu);
        if (stop) break;
        /* A report asked for: take in everything that has arrived. */
        int sync = want != done;

        for (int i = 0; i < nc; i++)
            if (sync || pfd[2 + i].revents) conn_progress(imp, imp->conns[i]);
        if (sync || pfd[1].revents) accept_all(imp);

        int k = 0;
        for (int i = 0; i < imp->nconns; i++) {
            if (imp->conns[i]->dead) conn_free(imp->conns[i]);
            else imp->conns[k++] = imp->conns[i];
        }
        imp->nconns = k;

        if (sync) {
            done = want;
            pthread_mutex_lock(&imp->mu);
            imp->sync_done = want;
            pthread_cond_broadcast(&imp->cond);
            pthread_mutex_unlock(&imp->mu);
        }
    }
    for (int i = 0; i < imp->nconns; i++) conn_free(imp->conns[i]);
    imp->nconns = 0;
    return NULL;
}

static void wake(tls_impostor_t *imp)
{
    uint64_t one = 1;
    (void)!write(imp->wakefd, &one, sizeof one);
}

void tls_impostor_stop(tls_impostor_t *imp)
{
    if (!imp) return;
    if (imp->thread_started) {
        pthread_mutex_lock(&imp->mu);
        imp->stop = 1;
        pthread_mutex_unlock(&imp->mu);
        wake(imp);
        pthread_join(imp->thread, NULL);
    }
    if (imp->lfd >= 0) close(imp->lfd);
    if (imp->wakefd >= 0) close(imp->wakefd);
    SSL_CTX_free(imp->ctx);
    tls_impostor_report_free(&imp->rep);
    pthread_cond_destroy(&imp->cond);
    pthread_mutex_destroy(&imp->mu);
    free(imp);
}

int tls_impostor_start(tls_impostor_t **out, const char *cert, const char *key, char *err)
{
    if (!out) return kit_seterr(err, KIT_EINVAL, "tls_impostor_start: no result");
    *out = NULL;
    if (!cert || !*cert || !key || !*key)
        return kit_seterr(err, KIT_EINVAL, "the impostor needs a certificate and a key");
    if (!kit_file_exists(cert)) return kit_seterr(err, KIT_ENOENT, "no certificate file %s", cert);
    if (!kit_file_exists(key)) return kit_seterr(err, KIT_ENOENT, "no key file %s", key);

    int rc = KIT_ERR;
    tls_impostor_t *imp = calloc(1, sizeof *imp);
    if (!imp) return kit_seterr(err, KIT_ERR, "out of memory");
    imp->lfd = imp->wakefd = -1;
    pthread_mutex_init(&imp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&imp->cond, &ca);
    pthread_condattr_destroy(&ca);

    ERR_clear_error();
    imp->ctx = SSL_CTX_new(TLS_server_method());
    if (!imp->ctx) {
        rc = kit_seterr(err, KIT_ERR, "cannot make a TLS context: %s", ossl_reason());
        goto cleanup;
    }
    if (SSL_CTX_use_certificate_chain_file(imp->ctx, cert) != 1) {
        rc = kit_seterr(err, KIT_ENOENT, "cannot load the certificate %s: %s", cert, ossl_reason());
        goto cleanup;
    }
    if (SSL_CTX_use_PrivateKey_file(imp->ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(imp->ctx) != 1) {
        rc = kit_seterr(err, KIT_ENOENT, "cannot use the key %s with %s: %s", key, cert, ossl_reason());
        goto cleanup;
    }
    SSL_CTX_set_info_callback(imp->ctx, info_cb);

    imp->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (imp->lfd < 0) {
        rc = kit_seterr(err, KIT_ERR, "impostor: socket: %s", strerror(errno));
        goto cleanup;
    }
    /* Port 0: the kernel picks a free one, no race with kit_free_port. */
    struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = 0 };
    la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t ll = sizeof la;
    if (bind(imp->lfd, (struct sockaddr *)&la, sizeof la) != 0 || listen(imp->lfd, 128) != 0 ||
        getsockname(imp->lfd, (struct sockaddr *)&la, &ll) != 0) {
        rc = kit_seterr(err, KIT_ERR, "impostor: cannot listen on 127.0.0.1: %s", strerror(errno));
        goto cleanup;
    }
    imp->port = ntohs(la.sin_port);
    imp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (imp->wakefd < 0) {
        rc = kit_seterr(err, KIT_ERR, "impostor: eventfd: %s", strerror(errno));
        goto cleanup;
    }

    /* The thread inherits a full mask: SIGINT/SIGCHLD go to the main
     * thread, whose waits watch for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int trc = pthread_create(&imp->thread, NULL, imp_main, imp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (trc != 0) {
        rc = kit_seterr(err, KIT_ERR, "impostor: cannot start its thread: %s", strerror(trc));
        goto cleanup;
    }
    imp->thread_started = 1;
    *out = imp;
    ERR_clear_error();
    return KIT_OK;

cleanup:
    ERR_clear_error();
    tls_impostor_stop(imp);
    return rc;
}

int tls_impostor_port(const tls_impostor_t *imp)
{
    return imp ? imp->port : 0;
}

static char **list_copy(char **list, size_t n)
{
    char **c = kit_xmalloc((n ? n : 1) * sizeof *c);
    for (size_t i = 0; i < n; i++) c[i] = kit_strdup(list[i]);
    return c;
}

int tls_impostor_report(tls_impostor_t *imp, tls_impostor_report_t *out)
{
    if (!out) return KIT_EINVAL;
    memset(out, 0, sizeof *out);
    if (!imp) return KIT_EINVAL;
    int rc = KIT_OK;
    pthread_mutex_lock(&imp->mu);
    unsigned long long want = ++imp->sync_want;
    pthread_mutex_unlock(&imp->mu);
    wake(imp);

    /* The thread answers within a pass of its loop; the bound is only
     * there so a wedged peer can never hold the caller. */
    int64_t end = kit_now_ms() + 2000;
    pthread_mutex_lock(&imp->mu);
    while (imp->sync_done < want && kit_now_ms() < end) {
        if (cleanup_interrupted()) { rc = KIT_EINTR; break; }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&imp->cond, &imp->mu, &ts);
    }
    const tls_impostor_report_t *r = &imp->rep;
    out->connections = r->connections;
    out->handshakes = r->handshakes;
    out->bytes_after = r->bytes_after;
    out->connect_seen = r->connect_seen;
    out->client_ids = list_copy(r->client_ids, r->nclient_ids);
    out->nclient_ids = r->nclient_ids;
    out->alerts = list_copy(r->alerts, r->nalerts);
    out->nalerts = r->nalerts;
    out->errors = list_copy(r->errors, r->nerrors);
    out->nerrors = r->nerrors;
    pthread_mutex_unlock(&imp->mu);
    return rc;
}

void tls_impostor_report_free(tls_impostor_report_t *r)
{
    if (!r) return;
    list_free(r->client_ids, r->nclient_ids);
    list_free(r->alerts, r->nalerts);
    list_free(r->errors, r->nerrors);
    memset(r, 0, sizeof *r);
}
