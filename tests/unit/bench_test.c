/*
 * bench_test.c - the load generator against a real broker (the bench
 * profile from broker-config/bench.conf, on a free port): a short steady
 * run at QoS 1 delivers everything, QoS 0 and 2 count right, payloads
 * larger than a read arrive whole, a conn run connects everyone, a
 * closed port gives failures instead of a hang, the stop flag ends a run
 * from another thread, user names and passwords work with and without
 * TLS (tls.conf with a PKI made for the test), a CA that did not sign
 * the broker's certificate is refused, a handshake that is not over when
 * connect() returns still gets its CONNECT, and no fd is left open.
 * Sizes stay small, and nothing asserts on speed.
 */
#include <CUnit/CUnit.h>

#include "bench.h"
#include "broker.h"
#include "tls.h"
#include "cleanup.h"
#include "util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* A broker from broker-config/PROFILE.conf, with extra lines and a
 * certs folder for @CERTS@ (both may be NULL). */
static broker_t *start_profile(const char *profile, const char *extra, const char *certs)
{
    char err[KIT_ERRLEN] = "";
    char *path = kit_strdup_printf("broker-config/%s.conf", profile);
    char *tmpl = kit_read_file(path, NULL, err);
    free(path);
    CU_ASSERT_PTR_NOT_NULL(tmpl);
    if (!tmpl) return NULL;
    broker_t *b = NULL;
    broker_opts_t o = { .name = profile, .tmpl = tmpl, .extra = extra, .certs = certs };
    int rc = broker_start(&b, &o, err);
    free(tmpl);
    if (rc != KIT_OK) fprintf(stderr, "%s broker: %s\n", profile, err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    return rc == KIT_OK ? b : NULL;
}

static broker_t *start_broker(void)
{
    return start_profile("bench", NULL, NULL);
}

/* A short steady run: n publishers at QoS qos, 200 msg/s for 0.5 s. */
static void steady_opts(bench_opts *o, int port, int n, int qos)
{
    bench_opts_init(o);
    o->mode = BENCH_STEADY;
    o->port = port;
    o->clients = n;
    o->rate = 200;
    o->qos = qos;
    o->duration_ms = 500;
    o->drain_ms = 20000;
    o->connect_timeout_ms = 10000;
}

/* Everything sent was acknowledged and received, once, without errors. */
static void assert_delivered(const bench_result *r, int clients, const char *what)
{
    if (r->errors) fprintf(stderr, "%s: %s\n", what, r->first_error);
    CU_ASSERT_EQUAL(r->errors, 0);
    CU_ASSERT_EQUAL(r->connected, clients + 1);
    CU_ASSERT(r->sent > 0);
    CU_ASSERT_EQUAL(r->acked, r->sent);
    CU_ASSERT_EQUAL(r->received, r->sent);
    CU_ASSERT_EQUAL(r->lost, 0);
    CU_ASSERT_EQUAL(r->duplicates, 0);
    CU_ASSERT_EQUAL(hist_count(r->latency), r->received);
    /* corrected (from the due time) is never below raw (from the send
     * time), sample by sample, so neither is any percentile */
    CU_ASSERT_EQUAL(hist_count(r->latency_corrected), r->received);
    CU_ASSERT(hist_percentile(r->latency_corrected, 50) >= hist_percentile(r->latency, 50));
    CU_ASSERT(hist_percentile(r->latency_corrected, 99) >= hist_percentile(r->latency, 99));
    CU_ASSERT(hist_max(r->latency_corrected) >= hist_max(r->latency));
}

/* A mosquitto password file line in the $6$ form mosquitto 2 reads:
 * base64(salt) and base64(SHA-512(password then salt)). */
static char *passwd_line(const char *user, const char *pass)
{
    static const unsigned char salt[12] = { 'm', 'q', 'l', 'a', 'b', '-', 'b', 'e', 'n', 'c', 'h', '!' };
    unsigned char buf[256], hash[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    size_t pl = strlen(pass);
    if (pl + sizeof salt > sizeof buf) return NULL;
    memcpy(buf, pass, pl);
    memcpy(buf + pl, salt, sizeof salt);
    if (!EVP_Digest(buf, pl + sizeof salt, hash, &hl, EVP_sha512(), NULL)) return NULL;
    char s64[32], h64[128];
    EVP_EncodeBlock((unsigned char *)s64, salt, sizeof salt);
    EVP_EncodeBlock((unsigned char *)h64, hash, (int)hl);
    return kit_strdup_printf("%s:$6$%s$%s\n", user, s64, h64);
}

/* A folder with a password file for ana:s3cret (and the PKI when tls). */
static int make_certs(char *dir, size_t len, int tls)
{
    char err[KIT_ERRLEN] = "";
    if (kit_mkdtemp(dir, len, "bench-certs", err) != KIT_OK) {
        fprintf(stderr, "certs: %s\n", err);
        return -1;
    }
    if (tls && tls_pki_ensure(dir, NULL, NULL, err) != KIT_OK) {
        fprintf(stderr, "certs: %s\n", err);
        return -1;
    }
    char *line = passwd_line("ana", "s3cret");
    char *path = kit_strdup_printf("%s/passwd", dir);
    int rc = line ? kit_write_file_atomic(path, line, strlen(line), 0600, err) : KIT_ERR;
    free(line);
    free(path);
    return rc == KIT_OK ? 0 : -1;
}

static void TEST_topic_filter(void)
{
    char f[64];
    bench_topic_filter("acme/v1/bench/{i}/temp", f, sizeof f);
    CU_ASSERT_STRING_EQUAL(f, "acme/v1/bench/+/temp");
    bench_topic_filter("fixed/topic", f, sizeof f);
    CU_ASSERT_STRING_EQUAL(f, "fixed/topic");
    bench_topic_filter("{i}", f, sizeof f);
    CU_ASSERT_STRING_EQUAL(f, "+");
    /* {i} inside a level: the whole level becomes the wildcard. */
    bench_topic_filter("acme/v1/sensor-{i}/temp", f, sizeof f);
    CU_ASSERT_STRING_EQUAL(f, "acme/v1/+/temp");
    bench_topic_filter("a/{i}-x/z{i}", f, sizeof f);
    CU_ASSERT_STRING_EQUAL(f, "a/+/+");
    bench_topic_filter("a//b/", f, sizeof f);
    CU_ASSERT_STRING_EQUAL(f, "a//b/");
    char tiny[4];
    bench_topic_filter("abcdef", tiny, sizeof tiny);
    CU_ASSERT_STRING_EQUAL(tiny, "abc");
}

static void TEST_bad_options(void)
{
    char err[KIT_ERRLEN] = "";
    bench_opts o;
    bench_result r;
    bench_opts_init(&o);
    o.port = 1883;
    o.qos = 3;
    CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_EINVAL);
    CU_ASSERT(strstr(err, "qos") != NULL);
    bench_result_free(&r);
    bench_opts_init(&o);
    o.port = 0;
    CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_EINVAL);
    bench_result_free(&r);
}

static void TEST_steady_qos1_delivers_everything(void)
{
    broker_t *b = start_broker();
    if (!b) return;
    int fds = count_fds();
    char err[KIT_ERRLEN] = "";
    bench_opts o;
    bench_opts_init(&o);
    o.mode = BENCH_STEADY;
    o.port = broker_port(b);
    o.clients = 20;
    o.rate = 1000;
    o.qos = 1;
    o.size = 100;
    o.duration_ms = 1500;
    o.drain_ms = 20000;          /* a slow machine gets time, a fast one leaves early */
    o.topic = "acme/v1/bench/{i}/temp";
    bench_result r;
    CU_ASSERT_EQUAL_FATAL(bench_run(&o, &r, err), KIT_OK);
    if (r.errors) fprintf(stderr, "steady: %s\n", r.first_error);
    CU_ASSERT_EQUAL(r.errors, 0);
    CU_ASSERT_EQUAL(r.connected, 21);             /* 20 publishers and the subscriber */
    CU_ASSERT(r.sent > 0);
    CU_ASSERT_EQUAL(r.acked, r.sent);
    CU_ASSERT_EQUAL(r.received, r.sent);
    CU_ASSERT_EQUAL(r.lost, 0);
    CU_ASSERT_EQUAL(r.duplicates, 0);
    CU_ASSERT_EQUAL(hist_count(r.latency), r.received);
    CU_ASSERT(hist_max(r.latency) >= hist_percentile(r.latency, 50));
    CU_ASSERT(r.nseconds >= 1);
    bench_result_free(&r);
    CU_ASSERT_EQUAL(count_fds(), fds);
    broker_free(b);
}

static void TEST_burst_qos2_counts(void)
{
    broker_t *b = start_broker();
    if (!b) return;
    char err[KIT_ERRLEN] = "";
    bench_opts o;
    bench_opts_init(&o);
    o.mode = BENCH_BURST;
    o.port = broker_port(b);
    o.clients = 4;
    o.messages = 2000;
    o.qos = 2;
    o.drain_ms = 20000;
    bench_result r;
    CU_ASSERT_EQUAL_FATAL(bench_run(&o, &r, err), KIT_OK);
    CU_ASSERT_EQUAL(r.sent, 2000);
    CU_ASSERT_EQUAL(r.acked, 2000);
    CU_ASSERT_EQUAL(r.received, 2000);
    CU_ASSERT_EQUAL(r.duplicates, 0);
    /* burst has no schedule: corrected is raw */
    CU_ASSERT_EQUAL(hist_count(r.latency_corrected), 2000);
    CU_ASSERT_EQUAL(hist_percentile(r.latency_corrected, 50), hist_percentile(r.latency, 50));
    CU_ASSERT_EQUAL(hist_max(r.latency_corrected), hist_max(r.latency));
    bench_result_free(&r);
    broker_free(b);
}

static void TEST_conn_300(void)
{
    broker_t *b = start_broker();
    if (!b) return;
    bench_raise_nofile(BENCH_FDS(300));
    int fds = count_fds();
    char err[KIT_ERRLEN] = "";
    bench_opts o;
    bench_opts_init(&o);
    o.mode = BENCH_CONN;
    o.port = broker_port(b);
    o.clients = 300;
    o.hold_ms = 200;
    o.connect_timeout_ms = 30000;
    bench_result r;
    CU_ASSERT_EQUAL_FATAL(bench_run(&o, &r, err), KIT_OK);
    if (r.failed) fprintf(stderr, "conn: %s\n", r.first_error);
    CU_ASSERT_EQUAL(r.connected, 300);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT(r.connect_rate > 0);
    CU_ASSERT(r.rss_mb > 0);
    bench_result_free(&r);
    CU_ASSERT_EQUAL(count_fds(), fds);
    broker_free(b);
}

static void TEST_closed_port_fails(void)
{
    char err[KIT_ERRLEN] = "";
    int port = kit_free_port(err);   /* free a moment ago: nobody listens there */
    CU_ASSERT_FATAL(port > 0);
    int fds = count_fds();
    bench_opts o;
    bench_opts_init(&o);
    o.port = port;
    o.clients = 5;
    o.connect_timeout_ms = 5000;
    bench_result r;

    o.mode = BENCH_STEADY;
    o.duration_ms = 1000;
    CU_ASSERT_EQUAL_FATAL(bench_run(&o, &r, err), KIT_OK);
    CU_ASSERT_EQUAL(r.connected, 0);
    CU_ASSERT_EQUAL(r.failed, 6);                 /* 5 publishers and the subscriber */
    CU_ASSERT_EQUAL(r.errors, 6);
    CU_ASSERT(r.first_error[0] != '\0');
    CU_ASSERT_EQUAL(r.sent, 0);
    bench_result_free(&r);

    o.mode = BENCH_CONN;
    CU_ASSERT_EQUAL_FATAL(bench_run(&o, &r, err), KIT_OK);
    CU_ASSERT_EQUAL(r.connected, 0);
    CU_ASSERT_EQUAL(r.failed, 5);
    bench_result_free(&r);
    CU_ASSERT_EQUAL(count_fds(), fds);
}

static void TEST_steady_qos0_and_qos2(void)
{
    broker_t *b = start_broker();
    if (!b) return;
    int fds = count_fds();
    char err[KIT_ERRLEN] = "";
    for (int qos = 0; qos <= 2; qos += 2) {
        bench_opts o;
        bench_result r;
        steady_opts(&o, broker_port(b), 5, qos);
        CU_ASSERT_EQUAL_FATAL(bench_run(&o, &r, err), KIT_OK);
        assert_delivered(&r, 5, qos ? "steady qos 2" : "steady qos 0");
        bench_result_free(&r);
    }
    CU_ASSERT_EQUAL(count_fds(), fds);
    broker_free(b);
}

/* Payloads of 300 KB: every message spans many reads and writes. */
static void TEST_big_payloads(void)
{
    broker_t *b = start_broker();
    if (!b) return;
    char err[KIT_ERRLEN] = "";
    bench_opts o;
    bench_opts_init(&o);
    o.mode = BENCH_BURST;
    o.port = broker_port(b);
    o.clients = 2;
    o.messages = 40;
    o.qos = 1;
    o.size = 300 * 1024;
    o.drain_ms = 20000;
    bench_result r;
    CU_ASSERT_EQUAL_FATAL(bench_run(&o, &r, err), KIT_OK);
    assert_delivered(&r, 2, "big payloads");
    CU_ASSERT_EQUAL(r.sent, 40);
    bench_result_free(&r);
    broker_free(b);
}

static void *stop_later(void *arg)
{
    struct timespec ts = { 0, 300 * 1000000L };
    nanosleep(&ts, NULL);
    __atomic_store_n((int *)arg, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* As lua_bench.c does: the run in one thread, the stop flag set from
 * another. */
static void TEST_stop_flag(void)
{
    broker_t *b = start_broker();
    if (!b) return;
    int fds = count_fds();
    char err[KIT_ERRLEN] = "";
    int stop = 0;
    bench_opts o;
    steady_opts(&o, broker_port(b), 3, 1);
    o.duration_ms = 30000;
    o.stop = &stop;
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, stop_later, &stop), 0);
    int64_t t0 = kit_now_ms();
    bench_result r;
    CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
    pthread_join(t, NULL);
    CU_ASSERT(kit_now_ms() - t0 < 10000);
    CU_ASSERT_EQUAL(r.interrupted, 1);
    CU_ASSERT(r.sent > 0);
    bench_result_free(&r);
    CU_ASSERT_EQUAL(count_fds(), fds);
    broker_free(b);
}

/*
 * A listener whose accept queue is full (backlog 0, one connection
 * waiting in it) drops SYNs, so the generator's connect is still going
 * when connect() returns and its CONNECT must wait in the buffer for
 * NET_OUT (bench.c tries to send at once, which works on loopback only
 * when the handshake is over). The fake broker below empties the queue
 * after 300 ms; the SYN is sent again a second later, then it reads the
 * CONNECT and answers CONNACK.
 */
typedef struct {
    int lfd, filler;
    int got_connect;           /* the first byte read was CONNECT's */
} slow_listener;

static void *slow_accept(void *arg)
{
    slow_listener *s = arg;
    struct timespec ts = { 0, 300 * 1000000L };
    nanosleep(&ts, NULL);
    int f = accept(s->lfd, NULL, NULL);        /* the filler */
    if (f >= 0) close(f);
    /* the generator's client, if it comes (a generator that gave up
     * must fail the test, not hang it) */
    struct pollfd p = { .fd = s->lfd, .events = POLLIN };
    if (poll(&p, 1, 10000) != 1) return NULL;
    int c = accept(s->lfd, NULL, NULL);
    if (c < 0) return NULL;
    struct timeval tv = { 10, 0 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    unsigned char buf[256];
    ssize_t n = read(c, buf, sizeof buf);
    if (n > 0 && buf[0] == 0x10) {
        s->got_connect = 1;
        static const unsigned char connack[4] = { 0x20, 0x02, 0x00, 0x00 };
        if (write(c, connack, sizeof connack) != (ssize_t)sizeof connack) s->got_connect = 0;
        while (read(c, buf, sizeof buf) > 0) { }   /* until DISCONNECT and the close */
    }
    close(c);
    return NULL;
}

static void TEST_slow_handshake(void)
{
    slow_listener s = { -1, -1, 0 };
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    s.lfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(s.lfd >= 0);
    CU_ASSERT_FATAL(bind(s.lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(s.lfd, 0) == 0);
    CU_ASSERT_FATAL(getsockname(s.lfd, (struct sockaddr *)&a, &al) == 0);
    s.filler = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(connect(s.filler, (struct sockaddr *)&a, sizeof a) == 0);
    int fds = count_fds();
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, slow_accept, &s), 0);
    char err[KIT_ERRLEN] = "";
    bench_opts o;
    bench_opts_init(&o);
    o.mode = BENCH_CONN;
    o.port = ntohs(a.sin_port);
    o.clients = 1;
    o.hold_ms = 100;
    o.connect_timeout_ms = 20000;
    bench_result r;
    CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
    pthread_join(t, NULL);
    if (r.failed) fprintf(stderr, "slow handshake: %s\n", r.first_error);
    CU_ASSERT_EQUAL(r.connected, 1);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(s.got_connect, 1);
    bench_result_free(&r);
    CU_ASSERT_EQUAL(count_fds(), fds);
    close(s.filler);
    close(s.lfd);
}

/* A broker that wants a user name and password (ana:s3cret). */
static void TEST_credentials(void)
{
    char certs[512];
    if (make_certs(certs, sizeof certs, 0) != 0) { CU_FAIL("cannot make the password file"); return; }
    broker_t *b = start_profile("bench", "password_file @CERTS@/passwd\nallow_anonymous false\n", certs);
    if (b) {
        int fds = count_fds();
        char err[KIT_ERRLEN] = "";
        bench_opts o;
        bench_result r;
        steady_opts(&o, broker_port(b), 3, 1);
        o.username = "ana";
        o.password = "s3cret";
        CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
        assert_delivered(&r, 3, "credentials");
        bench_result_free(&r);

        o.password = "wrong";
        CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
        CU_ASSERT_EQUAL(r.connected, 0);
        CU_ASSERT_EQUAL(r.failed, 4);
        CU_ASSERT(strstr(r.first_error, "refused") != NULL);
        bench_result_free(&r);

        o.username = o.password = NULL;
        CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
        CU_ASSERT_EQUAL(r.connected, 0);
        CU_ASSERT(strstr(r.first_error, "refused") != NULL);
        bench_result_free(&r);
        CU_ASSERT_EQUAL(count_fds(), fds);
        broker_free(b);
    }
    kit_rmdtemp(certs);
}

/* broker-config/tls.conf with a PKI of its own, and credentials. */
static void TEST_tls(void)
{
    char certs[512];
    if (make_certs(certs, sizeof certs, 1) != 0) { CU_FAIL("cannot make the PKI"); return; }
    broker_t *b = start_profile("tls", "password_file @CERTS@/passwd\nallow_anonymous false\n", certs);
    char *ca = kit_strdup_printf("%s/ca.crt", certs);
    char *impostor = kit_strdup_printf("%s/impostor-ca.crt", certs);
    if (b) {
        int fds = count_fds();
        char err[KIT_ERRLEN] = "";
        bench_opts o;
        bench_result r;
        /* by address and by name: the certificate names both */
        const char *hosts[] = { "127.0.0.1", "localhost" };
        for (int i = 0; i < 2; i++) {
            steady_opts(&o, broker_port(b), 3, 1);
            o.host = hosts[i];
            o.cafile = ca;
            o.username = "ana";
            o.password = "s3cret";
            CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
            assert_delivered(&r, 3, hosts[i]);
            bench_result_free(&r);
        }

        /* many handshakes at once */
        bench_opts_init(&o);
        o.mode = BENCH_CONN;
        o.port = broker_port(b);
        o.clients = 60;
        o.cafile = ca;
        o.username = "ana";
        o.password = "s3cret";
        o.connect_timeout_ms = 20000;
        CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
        if (r.failed) fprintf(stderr, "tls conn: %s\n", r.first_error);
        CU_ASSERT_EQUAL(r.connected, 60);
        bench_result_free(&r);

        /* a CA that did not sign the broker's certificate */
        o.clients = 3;
        o.cafile = impostor;
        CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
        CU_ASSERT_EQUAL(r.connected, 0);
        CU_ASSERT_EQUAL(r.failed, 3);
        CU_ASSERT(strstr(r.first_error, "certificate") != NULL);
        bench_result_free(&r);

        /* plain MQTT to a TLS listener gets nowhere */
        o.cafile = NULL;
        o.connect_timeout_ms = 3000;
        CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_OK);
        CU_ASSERT_EQUAL(r.connected, 0);
        bench_result_free(&r);

        /* a CA file that is not there */
        o.cafile = "/nonexistent/ca.crt";
        CU_ASSERT_EQUAL(bench_run(&o, &r, err), KIT_EINVAL);
        bench_result_free(&r);
        CU_ASSERT_EQUAL(count_fds(), fds);
        broker_free(b);
    }
    free(ca);
    free(impostor);
    kit_rmdtemp(certs);
}

int init_bench_tests(void)
{
    CU_pSuite s = CU_add_suite("bench", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "topic filter from a template", TEST_topic_filter) ||
        !CU_add_test(s, "bad options are refused", TEST_bad_options) ||
        !CU_add_test(s, "steady, 20 publishers, QoS 1: nothing lost", TEST_steady_qos1_delivers_everything) ||
        !CU_add_test(s, "burst at QoS 2: every message once", TEST_burst_qos2_counts) ||
        !CU_add_test(s, "conn: 300 clients all connect", TEST_conn_300) ||
        !CU_add_test(s, "a closed port: failures, no hang, no fd left", TEST_closed_port_fails) ||
        !CU_add_test(s, "steady at QoS 0 and QoS 2: nothing lost", TEST_steady_qos0_and_qos2) ||
        !CU_add_test(s, "payloads larger than a read", TEST_big_payloads) ||
        !CU_add_test(s, "the stop flag, set from another thread", TEST_stop_flag) ||
        !CU_add_test(s, "a handshake not over at connect(): CONNECT waits for it", TEST_slow_handshake) ||
        !CU_add_test(s, "user name and password", TEST_credentials) ||
        !CU_add_test(s, "TLS: by address and name, credentials, wrong CA", TEST_tls))
        return 1;
    return 0;
}
