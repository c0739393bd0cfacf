/*
 * bench_test.c - the load generator against a real broker (the bench
 * profile from broker-config/bench.conf, on a free port): a short steady
 * run at QoS 1 delivers everything, a conn run connects everyone, a
 * closed port gives failures instead of a hang, and no fd is left open.
 * Sizes stay small, and nothing asserts on speed.
 */
#include <CUnit/CUnit.h>

#include "bench.h"
#include "broker.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static broker_t *start_broker(void)
{
    char err[KIT_ERRLEN] = "";
    char *tmpl = kit_read_file("broker-config/bench.conf", NULL, err);
    CU_ASSERT_PTR_NOT_NULL(tmpl);
    if (!tmpl) return NULL;
    broker_t *b = NULL;
    broker_opts_t o = { .name = "bench", .tmpl = tmpl };
    int rc = broker_start(&b, &o, err);
    free(tmpl);
    if (rc != KIT_OK) fprintf(stderr, "bench broker: %s\n", err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    return rc == KIT_OK ? b : NULL;
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

int init_bench_tests(void)
{
    CU_pSuite s = CU_add_suite("bench", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "topic filter from a template", TEST_topic_filter) ||
        !CU_add_test(s, "bad options are refused", TEST_bad_options) ||
        !CU_add_test(s, "steady, 20 publishers, QoS 1: nothing lost", TEST_steady_qos1_delivers_everything) ||
        !CU_add_test(s, "burst at QoS 2: every message once", TEST_burst_qos2_counts) ||
        !CU_add_test(s, "conn: 300 clients all connect", TEST_conn_300) ||
        !CU_add_test(s, "a closed port: failures, no hang, no fd left", TEST_closed_port_fails))
        return 1;
    return 0;
}
