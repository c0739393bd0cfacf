/*
 * tlsprobe.c - client checks of a TLS listener (see tlsprobe.h).
 *
 * OpenSSL 3.0 API only. Each probe is one client connection over a
 * non-blocking socket, with poll() in short slices, so a deadline or
 * Ctrl-C always cuts it. OpenSSL's error queue is per thread: every
 * operation whose failure we describe starts with ERR_clear_error().
 */
#include "tlsprobe.h"
#include "cleanup.h"
#include "net.h"
#include "packet.h"
#include "pki.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

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
        int inprog = 0;
        int fd = net_connect(ai->ai_addr, ai->ai_addrlen, &inprog);
        if (fd < 0) {
            snprintf(why, whylen, "cannot connect to %s:%d: %s", host, port, strerror(errno));
            continue;
        }
        int e = inprog ? EINPROGRESS : 0, w = KIT_OK;
        while (e == EINPROGRESS && w != KIT_EINTR && w != KIT_ETIMEOUT) {
            w = wait_fd(fd, POLLOUT, deadline);
            if (w != KIT_EINTR && w != KIT_ETIMEOUT) e = net_connect_result(fd);
        }
        if (e == EINPROGRESS) {
            close(fd);
            rc = w;
            snprintf(why, whylen, w == KIT_EINTR ? "interrupted"
                     : "no TCP connection to %s:%d in time", host, port);
            break;
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
        snprintf(why, whylen, "cannot make a TLS context: %s", tls_ossl_reason());
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
        snprintf(why, whylen, "this OpenSSL cannot offer TLS %s: %s", tls_version_name(v), tls_ossl_reason());
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
        snprintf(why, whylen, "cannot make a TLS session: %s", tls_ossl_reason());
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
        rc = kit_seterr(err, KIT_ERR, "cannot make a TLS context: %s", tls_ossl_reason());
        goto cleanup;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Only the given CA, not the system's store. */
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
        rc = kit_seterr(err, KIT_ENOENT, "cannot load the CA file %s: %s", cafile, tls_ossl_reason());
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
        rc = kit_seterr(err, KIT_ERR, "cannot make a TLS session: %s", tls_ossl_reason());
        goto cleanup;
    }
    if (name && *name) {
        if (!net_tls_expect_peer(ssl, name)) {
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
