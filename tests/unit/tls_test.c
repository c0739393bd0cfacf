/*
 * tls_test.c - the tls module: the PKI it makes (files, modes, chains and
 * names checked with X509_verify_cert), its probes against a real
 * mosquitto with a TLS listener made from that PKI, and the impostor
 * driven by OpenSSL clients written here.
 *
 * The suite points TMPDIR at a folder of its own (the brokers' folders
 * go there) and generates one PKI in it for the probe tests; everything
 * is removed at the end, and the impostor test counts /proc/self/fd.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <CUnit/CUnit.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "broker.h"
#include "cleanup.h"
#include "tls.h"
#include "util.h"

static char base[256];
static char pki[300];           /* the suite's PKI, made once */
static char *old_tmpdir, *old_certs, *old_xdg;

static char *save_env(const char *name)
{
    const char *v = getenv(name);
    return v ? kit_strdup(v) : NULL;
}

static void restore_env(const char *name, char **saved)
{
    if (*saved) setenv(name, *saved, 1);
    else unsetenv(name);
    free(*saved);
    *saved = NULL;
}

static void reset_env(const char *name, const char *value)
{
    if (value) setenv(name, value, 1);
    else unsetenv(name);
}

static int suite_init(void)
{
    snprintf(base, sizeof base, "/tmp/mqlab-tlstest-XXXXXX");
    if (!mkdtemp(base)) return 1;
    old_tmpdir = save_env("TMPDIR");
    old_certs = save_env("MQLAB_CERTS");
    old_xdg = save_env("XDG_DATA_HOME");
    setenv("TMPDIR", base, 1);
    snprintf(pki, sizeof pki, "%s/pki", base);
    return tls_pki_ensure(pki, NULL, NULL, NULL) == KIT_OK ? 0 : 1;
}

static int suite_clean(void)
{
    restore_env("TMPDIR", &old_tmpdir);
    restore_env("MQLAB_CERTS", &old_certs);
    restore_env("XDG_DATA_HOME", &old_xdg);
    return kit_rm_rf(base) == KIT_OK ? 0 : 1;
}

static char *path_in(const char *dir, const char *file)
{
    return kit_strdup_printf("%s/%s", dir, file);
}

static void count_made(const char *path, void *ud)
{
    (void)path;
    (*(int *)ud)++;
}

static int file_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static X509 *load_cert(const char *dir, const char *file)
{
    char *p = path_in(dir, file);
    FILE *f = fopen(p, "r");
    free(p);
    if (!f) return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

static EVP_PKEY *load_key(const char *dir, const char *file)
{
    char *p = path_in(dir, file);
    FILE *f = fopen(p, "r");
    free(p);
    if (!f) return NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

/* X509_verify_cert of leaf against the one trusted CA, with an optional
 * host name (or IP) and purpose; the X509_V_* result. */
static int verify(const char *dir, const char *ca_file, const char *leaf_file, const char *host,
                  const char *ip, int purpose)
{
    X509 *ca = load_cert(dir, ca_file), *leaf = load_cert(dir, leaf_file);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int res = -1;
    if (ca && leaf && store && ctx && X509_STORE_add_cert(store, ca) == 1 &&
        X509_STORE_CTX_init(ctx, store, leaf, NULL) == 1) {
        X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
        if (host) X509_VERIFY_PARAM_set1_host(vp, host, 0);
        if (ip) X509_VERIFY_PARAM_set1_ip_asc(vp, ip);
        if (purpose) X509_STORE_CTX_set_purpose(ctx, purpose);
        X509_verify_cert(ctx);
        res = X509_STORE_CTX_get_error(ctx);
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(ca);
    X509_free(leaf);
    return res;
}

static int cn_is(const char *dir, const char *file, const char *want)
{
    X509 *x = load_cert(dir, file);
    if (!x) return 0;
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    X509_free(x);
    return strcmp(cn, want) == 0;
}

/* Days from notBefore to notAfter. */
static int validity_days(const char *dir, const char *file)
{
    X509 *x = load_cert(dir, file);
    if (!x) return -1;
    int days = -1, secs = 0;
    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x));
    X509_free(x);
    return days;
}

/* ---- PKI ------------------------------------------------------------- */

static void TEST_pki_generated(void)
{
    char *dir = path_in(base, "gen/certs");
    char err[KIT_ERRLEN] = "";
    int made = 0;
    CU_ASSERT_EQUAL_FATAL(tls_pki_ensure(dir, count_made, &made, err), KIT_OK);
    CU_ASSERT_EQUAL(made, 14);
    CU_ASSERT_EQUAL(file_mode(dir), 0700);
    int n = 0;
    for (const char *const *f = tls_pki_files; *f; f++, n++) {
        char *p = path_in(dir, *f);
        int is_key = strstr(*f, ".key") != NULL;
        CU_ASSERT_EQUAL(file_mode(p), is_key ? 0600 : 0644);
        free(p);
    }
    CU_ASSERT_EQUAL(n, 14);

    /* Nothing else in the folder: no temporary file was left behind. */
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int entries = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') entries++;
    closedir(d);
    CU_ASSERT_EQUAL(entries, 14);

    /* Every key is EC P-256 and belongs to its certificate. */
    static const char *const stems[] = { "ca", "server", "client", "impostor-ca", "impostor",
                                         "otherhost", "expired" };
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++) {
        char kf[64], cf[64];
        snprintf(kf, sizeof kf, "%s.key", stems[i]);
        snprintf(cf, sizeof cf, "%s.crt", stems[i]);
        EVP_PKEY *k = load_key(dir, kf);
        X509 *x = load_cert(dir, cf);
        CU_ASSERT_PTR_NOT_NULL(k);
        CU_ASSERT_PTR_NOT_NULL(x);
        if (k && x) {
            CU_ASSERT(EVP_PKEY_is_a(k, "EC"));
            char group[64] = "";
            EVP_PKEY_get_group_name(k, group, sizeof group, NULL);
            CU_ASSERT_STRING_EQUAL(group, "prime256v1");
            CU_ASSERT_EQUAL(X509_check_private_key(x, k), 1);
            CU_ASSERT_EQUAL(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
        }
        EVP_PKEY_free(k);
        X509_free(x);
        int days = validity_days(dir, cf);
        CU_ASSERT(days > 0 && days <= 825);
    }
    free(dir);
}

static void TEST_pki_chains_and_names(void)
{
    const char *dir = pki;
    /* The CAs are CAs, the leaves are not. */
    X509 *ca = load_cert(dir, "ca.crt"), *ica = load_cert(dir, "impostor-ca.crt");
    X509 *srv = load_cert(dir, "server.crt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ica);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(X509_check_ca(ca), 1);
    CU_ASSERT_EQUAL(X509_check_ca(ica), 1);
    CU_ASSERT_EQUAL(X509_check_ca(srv), 0);
    X509_free(ca);
    X509_free(ica);
    X509_free(srv);

    CU_ASSERT(cn_is(dir, "ca.crt", "mqlab CA"));
    CU_ASSERT(cn_is(dir, "impostor-ca.crt", "mqlab impostor CA"));
    CU_ASSERT(cn_is(dir, "server.crt", "localhost"));
    CU_ASSERT(cn_is(dir, "client.crt", "mqlab-client"));

    /* server: the kit CA, for localhost and 127.0.0.1, as a TLS server. */
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "server.crt", "localhost", NULL, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "server.crt", NULL, "127.0.0.1", X509_PURPOSE_SSL_SERVER), X509_V_OK);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "server.crt", "otherhost", NULL, 0), X509_V_ERR_HOSTNAME_MISMATCH);
    /* client: for mutual TLS, not a server certificate. */
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "client.crt", NULL, NULL, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "client.crt", NULL, NULL, X509_PURPOSE_SSL_SERVER),
                    X509_V_ERR_INVALID_PURPOSE);
    /* impostor: same names, other CA. */
    CU_ASSERT_EQUAL(verify(dir, "impostor-ca.crt", "impostor.crt", "localhost", NULL, X509_PURPOSE_SSL_SERVER),
                    X509_V_OK);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "impostor.crt", "localhost", NULL, 0),
                    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    CU_ASSERT_EQUAL(verify(dir, "impostor-ca.crt", "server.crt", "localhost", NULL, 0),
                    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    /* otherhost: the kit CA, only otherhost.invalid. */
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "otherhost.crt", "otherhost.invalid", NULL, X509_PURPOSE_SSL_SERVER),
                    X509_V_OK);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "otherhost.crt", "localhost", NULL, 0), X509_V_ERR_HOSTNAME_MISMATCH);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "otherhost.crt", NULL, "127.0.0.1", 0), X509_V_ERR_IP_ADDRESS_MISMATCH);
    /* expired: the kit CA, server's names, in the past. */
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "expired.crt", "localhost", NULL, 0), X509_V_ERR_CERT_HAS_EXPIRED);
}

static char *read_all(const char *dir, const char *file)
{
    char *p = path_in(dir, file);
    char *s = kit_read_file(p, NULL, NULL);
    free(p);
    return s;
}

static int remove_file(const char *dir, const char *file)
{
    char *p = path_in(dir, file);
    int rc = unlink(p);
    free(p);
    return rc;
}

static int same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static void TEST_pki_regenerates_only_missing(void)
{
    char *dir = path_in(base, "regen");
    char err[KIT_ERRLEN] = "";
    int made = 0;
    CU_ASSERT_EQUAL_FATAL(tls_pki_ensure(dir, count_made, &made, err), KIT_OK);
    CU_ASSERT_EQUAL(made, 14);

    /* Complete: nothing made, nothing changed. */
    char *server1 = read_all(dir, "server.crt"), *client1 = read_all(dir, "client.crt");
    char *imp1 = read_all(dir, "impostor.crt"), *ca1 = read_all(dir, "ca.crt");
    made = 0;
    CU_ASSERT_EQUAL(tls_pki_ensure(dir, count_made, &made, err), KIT_OK);
    CU_ASSERT_EQUAL(made, 0);
    char *s = read_all(dir, "server.crt");
    CU_ASSERT(same(s, server1));
    free(s);

    /* One certificate missing: only its pair, signed by the same CA. */
    CU_ASSERT_EQUAL(remove_file(dir, "client.crt"), 0);
    made = 0;
    CU_ASSERT_EQUAL(tls_pki_ensure(dir, count_made, &made, err), KIT_OK);
    CU_ASSERT_EQUAL(made, 2);
    s = read_all(dir, "client.crt");
    CU_ASSERT_PTR_NOT_NULL(s);
    CU_ASSERT(!same(s, client1));
    free(s);
    s = read_all(dir, "server.crt");
    CU_ASSERT(same(s, server1));
    free(s);
    s = read_all(dir, "ca.crt");
    CU_ASSERT(same(s, ca1));
    free(s);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "client.crt", NULL, NULL, X509_PURPOSE_SSL_CLIENT), X509_V_OK);

    /* The impostor CA's key missing: that CA and what it signed. */
    CU_ASSERT_EQUAL(remove_file(dir, "impostor-ca.key"), 0);
    made = 0;
    CU_ASSERT_EQUAL(tls_pki_ensure(dir, count_made, &made, err), KIT_OK);
    CU_ASSERT_EQUAL(made, 4);
    s = read_all(dir, "impostor.crt");
    CU_ASSERT(!same(s, imp1));
    free(s);
    CU_ASSERT_EQUAL(verify(dir, "impostor-ca.crt", "impostor.crt", "localhost", NULL, 0), X509_V_OK);

    /* The kit CA missing: everything again, and it all still chains. */
    CU_ASSERT_EQUAL(remove_file(dir, "ca.crt"), 0);
    made = 0;
    CU_ASSERT_EQUAL(tls_pki_ensure(dir, count_made, &made, err), KIT_OK);
    CU_ASSERT_EQUAL(made, 14);
    s = read_all(dir, "server.crt");
    CU_ASSERT(!same(s, server1));
    free(s);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "server.crt", "localhost", NULL, 0), X509_V_OK);
    CU_ASSERT_EQUAL(verify(dir, "ca.crt", "expired.crt", "localhost", NULL, 0), X509_V_ERR_CERT_HAS_EXPIRED);

    /* A CA that cannot be read is an error, not silently replaced. */
    char *cakey = path_in(dir, "ca.key");
    CU_ASSERT_EQUAL(kit_write_file_atomic(cakey, "garbage\n", 8, 0600, NULL), KIT_OK);
    CU_ASSERT_EQUAL(remove_file(dir, "server.key"), 0);
    err[0] = '\0';
    CU_ASSERT_EQUAL(tls_pki_ensure(dir, NULL, NULL, err), KIT_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ca.key"));
    free(cakey);

    CU_ASSERT_EQUAL(tls_pki_ensure(NULL, NULL, NULL, err), KIT_EINVAL);
    free(server1);
    free(client1);
    free(imp1);
    free(ca1);
    free(dir);
}

static void TEST_certs_command_and_default_dir(void)
{
    char err[KIT_ERRLEN] = "", buf[PATH_MAX];
    char *dir = path_in(base, "cmd");
    setenv("MQLAB_CERTS", dir, 1);
    CU_ASSERT_EQUAL(tls_default_certs_dir(buf, sizeof buf, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(buf, dir);
    /* NULL dir: the default, i.e. MQLAB_CERTS. */
    CU_ASSERT_EQUAL(tls_certs_command(NULL, 1, err), KIT_OK);
    char *ca = path_in(dir, "ca.crt");
    CU_ASSERT(kit_file_exists(ca));
    free(ca);

    /* Relative MQLAB_CERTS becomes absolute. */
    char cwd[PATH_MAX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
    setenv("MQLAB_CERTS", "some/certs", 1);
    CU_ASSERT_EQUAL(tls_default_certs_dir(buf, sizeof buf, err), KIT_OK);
    char *want = kit_strdup_printf("%s/some/certs", cwd);
    CU_ASSERT_STRING_EQUAL(buf, want);
    free(want);

    /* Without it: certs/ beside the binary if writable, else XDG. */
    unsetenv("MQLAB_CERTS");
    setenv("XDG_DATA_HOME", "/nonexistent-xdg", 1);
    CU_ASSERT_EQUAL(tls_default_certs_dir(buf, sizeof buf, err), KIT_OK);
    char *beside = kit_strdup(kit_self_exe());
    char *slash = strrchr(beside, '/');
    if (slash) strcpy(slash, "/certs");
    const char *expect = kit_is_dir(beside) && access(beside, W_OK) == 0 ? beside
                                                                        : "/nonexistent-xdg/mqlab/certs";
    CU_ASSERT_STRING_EQUAL(buf, expect);
    free(beside);

    reset_env("XDG_DATA_HOME", old_xdg);
    reset_env("MQLAB_CERTS", old_certs);
    free(dir);
}

/* ---- probes against mosquitto ---------------------------------------- */

/* A broker whose main listener is TLS with certs from the suite's PKI
 * (server.crt unless cert says otherwise) and, when plain_port > 0, a
 * plain listener too. */
static broker_t *start_tls_broker(const char *cert, int plain_port, char *err)
{
    char *plain = plain_port > 0 ? kit_strdup_printf("listener %d 127.0.0.1\n", plain_port) : kit_strdup("");
    char *tmpl = kit_strdup_printf(
        "per_listener_settings false\n"
        "listener @PORT@ 127.0.0.1\n"
        "cafile %s/ca.crt\ncertfile %s/%s.crt\nkeyfile %s/%s.key\n"
        "tls_version tlsv1.2\n"
        "%s"
        "allow_anonymous true\nuser @USER@\npersistence false\n"
        "log_dest file @LOG@\nlog_type all\nconnection_messages true\n",
        pki, pki, cert, pki, cert, plain);
    broker_opts_t o = { .name = "tls", .tmpl = tmpl };
    broker_t *b = NULL;
    if (broker_start(&b, &o, err) != KIT_OK) b = NULL;
    free(tmpl);
    free(plain);
    return b;
}

static void TEST_probe_versions_mosquitto(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = start_tls_broker("server", 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    int ok[TLS_NVERSIONS];
    char why[TLS_NVERSIONS][256];
    for (int v = 0; v < TLS_NVERSIONS; v++)
        CU_ASSERT_EQUAL(tls_probe_version(NULL, broker_port(b), v, 5000, &ok[v], why[v], sizeof why[v]), KIT_OK);
    /* Debian 12's OpenSSL and `tls_version tlsv1.2`: 1.2 and 1.3 only. */
    CU_ASSERT_EQUAL(ok[TLS_V10], 0);
    CU_ASSERT_EQUAL(ok[TLS_V11], 0);
    CU_ASSERT_EQUAL(ok[TLS_V12], 1);
    CU_ASSERT_EQUAL(ok[TLS_V13], 1);
    CU_ASSERT(strlen(why[TLS_V10]) > 0);
    CU_ASSERT(strlen(why[TLS_V11]) > 0);
    CU_ASSERT_STRING_EQUAL(why[TLS_V12], "");
    broker_free(b);

    /* Nobody listening: an answer, not an error. */
    int port = kit_free_port(NULL);
    int o = 1;
    char w[256] = "";
    CU_ASSERT_EQUAL(tls_probe_version("127.0.0.1", port, TLS_V12, 2000, &o, w, sizeof w), KIT_OK);
    CU_ASSERT_EQUAL(o, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(w, "refused"));
    CU_ASSERT_EQUAL(tls_probe_version(NULL, port, 7, 2000, &o, w, sizeof w), KIT_EINVAL);
    CU_ASSERT_STRING_EQUAL(tls_version_name(TLS_V11), "1.1");
    CU_ASSERT_PTR_NULL(tls_version_name(4));
}

/* A server that speaks only TLS 1.1 (security level 0), for `accepts`
 * connections: proves the probe really offers the old versions. */
typedef struct {
    int lfd;
    SSL_CTX *ctx;
    int accepts;
} old_server;

static void *old_server_main(void *arg)
{
    old_server *s = arg;
    for (int i = 0; i < s->accepts; i++) {
        struct pollfd p = { .fd = s->lfd, .events = POLLIN };
        if (poll(&p, 1, 5000) <= 0) break;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) break;
        struct timeval tv = { 5, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(s->ctx);
        if (ssl) {
            SSL_set_fd(ssl, fd);
            if (SSL_accept(ssl) == 1) SSL_shutdown(ssl);
            SSL_free(ssl);
        }
        close(fd);
    }
    ERR_clear_error();
    return NULL;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void TEST_probe_versions_old_server(void)
{
    old_server s = { .accepts = TLS_NVERSIONS };
    int port = 0;
    s.lfd = listen_loopback(&port);
    CU_ASSERT_FATAL(s.lfd >= 0);
    s.ctx = SSL_CTX_new(TLS_server_method());
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.ctx);
    char *crt = path_in(pki, "server.crt"), *key = path_in(pki, "server.key");
    SSL_CTX_set_security_level(s.ctx, 0);
    CU_ASSERT(SSL_CTX_set_cipher_list(s.ctx, "ALL:@SECLEVEL=0") == 1);
    CU_ASSERT(SSL_CTX_set_min_proto_version(s.ctx, TLS1_1_VERSION) == 1);
    CU_ASSERT(SSL_CTX_set_max_proto_version(s.ctx, TLS1_1_VERSION) == 1);
    CU_ASSERT(SSL_CTX_use_certificate_file(s.ctx, crt, SSL_FILETYPE_PEM) == 1);
    CU_ASSERT(SSL_CTX_use_PrivateKey_file(s.ctx, key, SSL_FILETYPE_PEM) == 1);
    free(crt);
    free(key);
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, old_server_main, &s) == 0);

    int ok[TLS_NVERSIONS] = { 0 };
    char why[256];
    for (int v = 0; v < TLS_NVERSIONS; v++)
        CU_ASSERT_EQUAL(tls_probe_version(NULL, port, v, 5000, &ok[v], why, sizeof why), KIT_OK);
    pthread_join(t, NULL);
    close(s.lfd);
    SSL_CTX_free(s.ctx);
    CU_ASSERT_EQUAL(ok[TLS_V10], 0);
    CU_ASSERT_EQUAL(ok[TLS_V11], 1);
    CU_ASSERT_EQUAL(ok[TLS_V12], 0);
    CU_ASSERT_EQUAL(ok[TLS_V13], 0);
}

/* A listener that never accepts: the kernel completes the TCP handshake
 * and then nothing is ever said. The probes must give up on time, and at
 * once on Ctrl-C. */
static void TEST_probe_silent_server(void)
{
    int port = 0;
    int lfd = listen_loopback(&port);
    CU_ASSERT_FATAL(lfd >= 0);
    int ok = 1;
    char why[256] = "";
    CU_ASSERT_EQUAL(tls_probe_version(NULL, port, TLS_V13, 300, &ok, why, sizeof why), KIT_OK);
    CU_ASSERT_EQUAL(ok, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "in time"));

    tls_plain_result_t p;
    char err[KIT_ERRLEN] = "";
    CU_ASSERT_EQUAL(tls_probe_plain(NULL, port, 300, &p, err), KIT_OK);
    CU_ASSERT_EQUAL(p.answered, 0);
    CU_ASSERT_EQUAL(p.closed, 0);
    CU_ASSERT_EQUAL(p.connack, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.error, "no answer"));

    /* Ctrl-C: only when cleanup_init() installed the handler that turns
     * the first SIGINT into a flag (tests/unit/test.c does). */
    struct sigaction sa;
    if (sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN) {
        raise(SIGINT);
        CU_ASSERT(cleanup_interrupted() != 0);
        int64_t t0 = kit_now_ms();
        CU_ASSERT_EQUAL(tls_probe_version(NULL, port, TLS_V12, 60000, &ok, why, sizeof why), KIT_EINTR);
        CU_ASSERT_EQUAL(tls_probe_plain(NULL, port, 60000, &p, err), KIT_EINTR);
        CU_ASSERT(kit_now_ms() - t0 < 30000);   /* not the 60 s asked for */
        cleanup_clear_interrupt();
    }
    close(lfd);
}

static int has_name(const tls_cert_info_t *c, const char *name)
{
    for (int i = 0; i < c->nnames; i++)
        if (strcmp(c->names[i], name) == 0) return 1;
    return 0;
}

static void TEST_probe_cert(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = start_tls_broker("server", 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    int port = broker_port(b);
    char *ca = path_in(pki, "ca.crt"), *ica = path_in(pki, "impostor-ca.crt");
    tls_cert_info_t c;

    CU_ASSERT_EQUAL(tls_probe_cert(NULL, port, ca, "localhost", 5000, &c, err), KIT_OK);
    CU_ASSERT_EQUAL(c.handshake, 1);
    CU_ASSERT_EQUAL(c.verified, 1);
    CU_ASSERT_STRING_EQUAL(c.verify_error, "");
    CU_ASSERT_STRING_EQUAL(c.error, "");
    CU_ASSERT(strcmp(c.version, "TLSv1.3") == 0 || strcmp(c.version, "TLSv1.2") == 0);
    CU_ASSERT_STRING_EQUAL(c.subject, "CN=localhost");
    CU_ASSERT_STRING_EQUAL(c.issuer, "CN=mqlab CA");
    CU_ASSERT_EQUAL(c.nnames, 2);
    CU_ASSERT(has_name(&c, "localhost"));
    CU_ASSERT(has_name(&c, "127.0.0.1"));
    CU_ASSERT_EQUAL(c.expired, 0);
    CU_ASSERT(strlen(c.not_after) == strlen("2027-11-22 10:00:00 UTC"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.not_after, " UTC"));

    CU_ASSERT_EQUAL(tls_probe_cert("127.0.0.1", port, ca, "127.0.0.1", 5000, &c, err), KIT_OK);
    CU_ASSERT_EQUAL(c.verified, 1);

    /* Another CA: the handshake completes (so the certificate is
     * described) but it is not verified. */
    CU_ASSERT_EQUAL(tls_probe_cert(NULL, port, ica, "localhost", 5000, &c, err), KIT_OK);
    CU_ASSERT_EQUAL(c.handshake, 1);
    CU_ASSERT_EQUAL(c.verified, 0);
    CU_ASSERT(strlen(c.verify_error) > 0);
    CU_ASSERT_STRING_EQUAL(c.subject, "CN=localhost");

    CU_ASSERT_EQUAL(tls_probe_cert(NULL, port, ca, "otherhost", 5000, &c, err), KIT_OK);
    CU_ASSERT_EQUAL(c.handshake, 1);
    CU_ASSERT_EQUAL(c.verified, 0);
    CU_ASSERT_STRING_EQUAL(c.verify_error, "hostname mismatch");

    /* A CA file that is not there is the caller's mistake. */
    char *nothere = path_in(base, "nothere.crt");
    CU_ASSERT_EQUAL(tls_probe_cert(NULL, port, nothere, "localhost", 5000, &c, err), KIT_ENOENT);
    free(nothere);
    broker_free(b);

    /* Nobody listening: no handshake, and why. */
    CU_ASSERT_EQUAL(tls_probe_cert(NULL, port, ca, "localhost", 2000, &c, err), KIT_OK);
    CU_ASSERT_EQUAL(c.handshake, 0);
    CU_ASSERT_EQUAL(c.verified, 0);
    CU_ASSERT(strlen(c.error) > 0);

    /* The expired certificate, served by mosquitto. */
    b = start_tls_broker("expired", 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(tls_probe_cert(NULL, broker_port(b), ca, "localhost", 5000, &c, err), KIT_OK);
    CU_ASSERT_EQUAL(c.handshake, 1);
    CU_ASSERT_EQUAL(c.expired, 1);
    CU_ASSERT_EQUAL(c.verified, 0);
    CU_ASSERT_STRING_EQUAL(c.verify_error, "certificate has expired");
    broker_free(b);
    free(ca);
    free(ica);
}

static void TEST_probe_plain(void)
{
    char err[KIT_ERRLEN] = "";
    int plain_port = kit_free_port(err);
    CU_ASSERT_FATAL(plain_port > 0);
    broker_t *b = start_tls_broker("server", plain_port, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    tls_plain_result_t p;

    /* The TLS port: no CONNACK. */
    CU_ASSERT_EQUAL(tls_probe_plain(NULL, broker_port(b), 5000, &p, err), KIT_OK);
    CU_ASSERT_EQUAL(p.connack, -1);
    CU_ASSERT(strlen(p.error) > 0);

    /* The plain listener: CONNACK 0, and mosquitto saw the probe's id. */
    CU_ASSERT_EQUAL(tls_probe_plain("127.0.0.1", plain_port, 5000, &p, err), KIT_OK);
    CU_ASSERT_EQUAL(p.answered, 1);
    CU_ASSERT_EQUAL(p.connack, 0);
    CU_ASSERT_STRING_EQUAL(p.error, "");
    int seen = 0;
    for (int i = 0; i < 250 && !seen; i++) {
        char *log = broker_log(b, NULL);
        seen = log && strstr(log, "mqlab-plain-probe") != NULL;
        free(log);
        if (!seen) kit_sleep_ms(20);
    }
    CU_ASSERT(seen);
    broker_free(b);

    /* Nobody listening. */
    CU_ASSERT_EQUAL(tls_probe_plain(NULL, plain_port, 2000, &p, err), KIT_OK);
    CU_ASSERT_EQUAL(p.answered, 0);
    CU_ASSERT_EQUAL(p.connack, -1);
    CU_ASSERT(strlen(p.error) > 0);
}

/* ---- impostor -------------------------------------------------------- */

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* A blocking OpenSSL client: verifies against cafile for "localhost"
 * when cafile is given. Sends `data`, then reads up to want bytes into
 * reply. Returns 1 when the handshake completed. */
static int tls_client(int port, const char *cafile, const unsigned char *data, size_t len,
                      unsigned char *reply, size_t want, size_t *got)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int hs = -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (!ctx || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) goto done;
    if (cafile) {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) goto done;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    ssl = SSL_new(ctx);
    if (!ssl) goto done;
    SSL_set_fd(ssl, fd);
    if (cafile) SSL_set1_host(ssl, "localhost");
    hs = SSL_connect(ssl) == 1;
    if (hs && data) {
        SSL_write(ssl, data, (int)len);
        size_t n = 0;
        while (n < want) {
            int r = SSL_read(ssl, reply + n, (int)(want - n));
            if (r <= 0) break;
            n += (size_t)r;
        }
        if (got) *got = n;
    }
    if (hs) SSL_shutdown(ssl);
done:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();
    return hs;
}

static void TEST_impostor(void)
{
    char err[KIT_ERRLEN] = "";
    int fds0 = count_fds();
    char *crt = path_in(pki, "impostor.crt"), *key = path_in(pki, "impostor.key");
    char *ca = path_in(pki, "ca.crt");
    tls_impostor_t *imp = NULL;
    CU_ASSERT_EQUAL_FATAL(tls_impostor_start(&imp, crt, key, err), KIT_OK);
    int port = tls_impostor_port(imp);
    CU_ASSERT(port > 0);

    tls_impostor_report_t r;
    CU_ASSERT_EQUAL(tls_impostor_report(imp, &r), KIT_OK);
    CU_ASSERT_EQUAL(r.connections, 0);
    tls_impostor_report_free(&r);

    /* A client that checks the certificate aborts: nothing after. */
    CU_ASSERT_EQUAL(tls_client(port, ca, NULL, 0, NULL, 0, NULL), 0);
    CU_ASSERT_EQUAL(tls_impostor_report(imp, &r), KIT_OK);
    CU_ASSERT_EQUAL(r.connections, 1);
    CU_ASSERT_EQUAL(r.handshakes, 0);
    CU_ASSERT_EQUAL(r.bytes_after, 0);
    CU_ASSERT_EQUAL(r.connect_seen, 0);
    CU_ASSERT_EQUAL(r.nclient_ids, 0);
    CU_ASSERT_EQUAL_FATAL(r.nalerts, 1);
    CU_ASSERT_STRING_EQUAL(r.alerts[0], "tlsv1 alert unknown ca");
    tls_impostor_report_free(&r);

    /* One that does not check carries on, sends its CONNECT (3.1.1, id
     * "victim-1") and is answered with a CONNACK 0. */
    static const unsigned char connect311[] = {
        0x10, 20, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c,
        0x00, 0x08, 'v', 'i', 'c', 't', 'i', 'm', '-', '1'
    };
    unsigned char reply[8];
    size_t got = 0;
    CU_ASSERT_EQUAL(tls_client(port, NULL, connect311, sizeof connect311, reply, 4, &got), 1);
    CU_ASSERT_EQUAL(got, 4);
    CU_ASSERT(got == 4 && reply[0] == 0x20 && reply[1] == 0x02 && reply[3] == 0x00);

    /* MQTT 5 with properties before the id (session expiry 0). */
    static const unsigned char connect5[] = {
        0x10, 22, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c,
        0x05, 0x11, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x04, 'v', '5', 'i', 'd'
    };
    got = 0;
    CU_ASSERT_EQUAL(tls_client(port, NULL, connect5, sizeof connect5, reply, 5, &got), 1);
    CU_ASSERT(got == 5 && reply[0] == 0x20 && reply[1] == 0x03);

    /* Plain MQTT at the TLS port: a failed handshake, not an alert. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT(write(fd, connect311, sizeof connect311) == (ssize_t)sizeof connect311);
    close(fd);

    CU_ASSERT_EQUAL(tls_impostor_report(imp, &r), KIT_OK);
    CU_ASSERT_EQUAL(r.connections, 4);
    CU_ASSERT_EQUAL(r.handshakes, 2);
    CU_ASSERT_EQUAL(r.bytes_after, (long long)(sizeof connect311 + sizeof connect5));
    CU_ASSERT_EQUAL(r.connect_seen, 1);
    CU_ASSERT_EQUAL_FATAL(r.nclient_ids, 2);
    CU_ASSERT_STRING_EQUAL(r.client_ids[0], "victim-1");
    CU_ASSERT_STRING_EQUAL(r.client_ids[1], "v5id");
    CU_ASSERT_EQUAL(r.nalerts, 1);
    CU_ASSERT_EQUAL(r.nerrors, 1);
    tls_impostor_report_free(&r);

    /* Connections still open when it stops are closed with it. */
    int held = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT(connect(held, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_EQUAL(tls_impostor_report(imp, &r), KIT_OK);
    CU_ASSERT_EQUAL(r.connections, 5);
    tls_impostor_report_free(&r);

    tls_impostor_stop(imp);
    close(held);
    tls_impostor_stop(NULL);
    CU_ASSERT_EQUAL(count_fds(), fds0);

    /* Files that are not there, or not a pair. */
    char *nothere = path_in(base, "nothere.crt");
    imp = NULL;
    CU_ASSERT_EQUAL(tls_impostor_start(&imp, nothere, key, err), KIT_ENOENT);
    CU_ASSERT_PTR_NULL(imp);
    char *srvkey = path_in(pki, "server.key");
    CU_ASSERT_EQUAL(tls_impostor_start(&imp, crt, srvkey, err), KIT_ENOENT);
    CU_ASSERT_PTR_NULL(imp);
    CU_ASSERT_EQUAL(count_fds(), fds0);
    free(srvkey);
    free(nothere);
    free(crt);
    free(key);
    free(ca);
}

int init_tls_tests(void)
{
    CU_pSuite s = CU_add_suite("tls", suite_init, suite_clean);
    if (!s) return 1;
    if (!CU_add_test(s, "pki generated", TEST_pki_generated) ||
        !CU_add_test(s, "pki chains and names", TEST_pki_chains_and_names) ||
        !CU_add_test(s, "pki regenerates only missing", TEST_pki_regenerates_only_missing) ||
        !CU_add_test(s, "certs command and default dir", TEST_certs_command_and_default_dir) ||
        !CU_add_test(s, "probe versions mosquitto", TEST_probe_versions_mosquitto) ||
        !CU_add_test(s, "probe versions old server", TEST_probe_versions_old_server) ||
        !CU_add_test(s, "probe silent server", TEST_probe_silent_server) ||
        !CU_add_test(s, "probe cert", TEST_probe_cert) ||
        !CU_add_test(s, "probe plain", TEST_probe_plain) ||
        !CU_add_test(s, "impostor", TEST_impostor))
        return 1;
    return 0;
}
