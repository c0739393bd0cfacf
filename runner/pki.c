/*
 * pki.c - the kit's PKI (see pki.h). OpenSSL 3.0 API only; every
 * operation whose failure we describe starts with ERR_clear_error(), as
 * OpenSSL's error queue is per thread and keeps older errors.
 */
#include "pki.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

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

const char *tls_ossl_reason(void)
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
        rc = kit_seterr(err, KIT_ERR, "cannot encode %s: %s", path, tls_ossl_reason());
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
            rc = kit_seterr(err, KIT_ERR, "cannot make %s.crt: %s", specs[i].stem, tls_ossl_reason());
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
