/*
 * benchmerge_test.c - bench merge: a histogram written to JSON and read
 * back is the same bucket for bucket; runs merged from their JSON equal
 * one histogram of all their samples; the windows' union; what merge
 * refuses.
 */
#include <CUnit/CUnit.h>

#include "benchmerge.h"
#include "hist.h"
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Latency-like values over many decades, clipped as hist.c clips. */
static uint64_t sample(void)
{
    double u = (double)(rnd() % 1000000) / 1e6;
    uint64_t v = (uint64_t)exp(u * u * 28.0);
    return v > HIST_MAX_US ? HIST_MAX_US : v;
}

typedef struct {
    uint64_t (*b)[2];
    size_t n, cap;
} buckets;

static void collect(uint64_t lo, uint64_t n, void *ud)
{
    buckets *bs = ud;
    if (bs->n == bs->cap) {
        bs->cap = bs->cap ? bs->cap * 2 : 64;
        bs->b = realloc(bs->b, bs->cap * sizeof *bs->b);
    }
    bs->b[bs->n][0] = lo;
    bs->b[bs->n][1] = n;
    bs->n++;
}

/* 1 when a and b have the same buckets, count, min and max. */
static int same_hist(const hist_t *a, const hist_t *b)
{
    buckets x = { 0 }, y = { 0 };
    hist_export(a, collect, &x);
    hist_export(b, collect, &y);
    int same = x.n == y.n && (x.n == 0 || memcmp(x.b, y.b, x.n * sizeof *x.b) == 0);
    if (!same) fprintf(stderr, "buckets differ: %zu vs %zu\n", x.n, y.n);
    free(x.b);
    free(y.b);
    return same && hist_count(a) == hist_count(b) && hist_min(a) == hist_min(b) && hist_max(a) == hist_max(b);
}

static json_t *parse(const json_buf_t *b)
{
    CU_ASSERT_FATAL(!b->oom);
    char err[256];
    json_t *v = json_parse(b->data, b->len, err);
    if (!v) fprintf(stderr, "%s\n%.*s\n", err, (int)(b->len > 400 ? 400 : b->len), b->data);
    return v;
}

static void TEST_hist_round_trip(void)
{
    hist_t *h = hist_new(), *back = hist_new();
    for (int i = 0; i < 50000; i++) hist_record(h, sample());
    hist_record(h, 0);
    hist_record(h, HIST_MAX_US);
    json_buf_t b = { 0 };
    bench_hist_json(&b, h);
    json_t *v = parse(&b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    char err[64];
    CU_ASSERT_EQUAL(bench_hist_from_json(v, back, err, sizeof err), 0);
    CU_ASSERT(same_hist(h, back));
    CU_ASSERT_EQUAL(hist_sum(h), hist_sum(back));
    static const double ps[] = { 1, 50, 90, 99, 99.9, 99.99, 100 };
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) CU_ASSERT_EQUAL(hist_percentile(h, ps[k]), hist_percentile(back, ps[k]));
    json_free(v);
    json_buf_free(&b);

    /* An empty one too. */
    hist_reset(h);
    json_buf_t e = { 0 };
    bench_hist_json(&e, h);
    v = parse(&e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(bench_hist_from_json(v, back, err, sizeof err), 0);
    CU_ASSERT_EQUAL(hist_count(back), 0);
    json_free(v);
    json_buf_free(&e);
    hist_free(h);
    hist_free(back);
}

static void TEST_import_checks(void)
{
    hist_t *h = hist_new();
    CU_ASSERT_EQUAL(hist_import_bucket(h, 255, 1), 0);     /* linear: every value is a bucket */
    CU_ASSERT_EQUAL(hist_import_bucket(h, 256, 1), 0);
    CU_ASSERT_EQUAL(hist_import_bucket(h, 257, 1), -1);    /* inside [256, 258) */
    CU_ASSERT_EQUAL(hist_import_bucket(h, HIST_MAX_US + 1, 1), -1);
    CU_ASSERT_EQUAL(hist_count(h), 2);
    CU_ASSERT_EQUAL(hist_import_stats(h, 255, 257, 512), 0);
    CU_ASSERT_EQUAL(hist_min(h), 255);
    CU_ASSERT_EQUAL(hist_max(h), 257);
    CU_ASSERT_EQUAL(hist_import_stats(h, 200, 257, 512), -1);   /* min outside the first bucket */
    CU_ASSERT_EQUAL(hist_import_stats(h, 255, 300, 512), -1);   /* max outside the last */
    CU_ASSERT_EQUAL(hist_import_stats(h, 257, 255, 512), -1);
    hist_reset(h);
    CU_ASSERT_EQUAL(hist_import_stats(h, 0, 0, 0), -1);         /* no samples */
    hist_free(h);
}

/* One run's JSON as benchcmd.c writes it (the fields merge reads). */
static json_t *run_json(const char *mode, int qos, uint64_t sent, const hist_t *lat, double start, double end)
{
    bench_result r;
    memset(&r, 0, sizeof r);
    r.latency = (hist_t *)lat;
    r.start_unix = start;
    r.end_unix = end;
    r.load_s = end - start;
    json_buf_t b = { 0 };
    json_buf_printf(&b, "{\"mode\":\"%s\",\"clients\":3,\"qos\":%d,\"sent\":%llu,\"acked\":%llu,\"received\":%llu,"
                    "\"lost\":0,\"duplicates\":1,\"rate_sent\":1.0,\"rate_received\":1.0,\"latency_ms\":{},\"errors\":2",
                    mode, qos, (unsigned long long)sent, (unsigned long long)sent, (unsigned long long)hist_count(lat));
    bench_merge_fields(&b, &r);
    json_buf_puts(&b, "}");
    json_t *v = parse(&b);
    json_buf_free(&b);
    return v;
}

static void TEST_merge_equals_union(void)
{
    hist_t *a = hist_new(), *b = hist_new(), *u = hist_new();
    for (int i = 0; i < 60000; i++) {
        /* Two populations, so the merge has to mix them. */
        uint64_t v = i % 3 ? sample() : 20000 + rnd() % 300000;
        hist_record(i % 3 ? a : b, v);
        hist_record(u, v);
    }
    json_t *ja = run_json("burst", 1, hist_count(a), a, 1000.0, 1010.0);
    json_t *jb = run_json("burst", 1, hist_count(b), b, 1005.0, 1012.0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ja);
    CU_ASSERT_PTR_NOT_NULL_FATAL(jb);
    bench_merge_t m;
    bench_merge_init(&m);
    char err[256];
    CU_ASSERT_EQUAL(bench_merge_add(&m, ja, 0, err, sizeof err), 0);
    CU_ASSERT_EQUAL(bench_merge_add(&m, jb, 0, err, sizeof err), 0);
    CU_ASSERT(same_hist(m.lat, u));
    CU_ASSERT(fabs(hist_sum(m.lat) - hist_sum(u)) <= 1e-9 * hist_sum(u));
    static const double ps[] = { 10, 50, 90, 99, 99.9, 100 };
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) CU_ASSERT_EQUAL(hist_percentile(m.lat, ps[k]), hist_percentile(u, ps[k]));
    CU_ASSERT_EQUAL(m.runs, 2);
    CU_ASSERT_EQUAL(m.clients, 6);
    CU_ASSERT_EQUAL(m.errors, 4);
    CU_ASSERT_EQUAL(m.duplicates, 2);
    CU_ASSERT_EQUAL(m.sent, 60000);
    CU_ASSERT_EQUAL(m.received, 60000);
    CU_ASSERT(fabs(bench_merge_window(&m) - 12.0) < 1e-6);   /* [1000,1010] U [1005,1012] */

    /* The merged JSON merges again to the same thing. */
    json_buf_t out = { 0 };
    bench_merge_json(&out, &m);
    json_t *jm = parse(&out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(jm);
    CU_ASSERT_EQUAL(json_get_num(jm, "runs", 0), 2);
    CU_ASSERT(fabs(json_get_num(jm, "rate_sent", 0) - 5000.0) < 0.1);   /* 60000 over 12 s */
    bench_merge_t m2;
    bench_merge_init(&m2);
    CU_ASSERT_EQUAL(bench_merge_add(&m2, jm, 0, err, sizeof err), 0);
    CU_ASSERT(same_hist(m2.lat, u));
    CU_ASSERT_EQUAL(m2.runs, 2);
    CU_ASSERT(fabs(bench_merge_window(&m2) - 12.0) < 1e-6);
    bench_merge_free(&m2);
    json_free(jm);
    json_buf_free(&out);

    /* Different mode, different QoS, conn, not bench JSON: refused, m unchanged. */
    json_t *jr = run_json("ramp", 1, 10, a, 0, 1), *jq = run_json("burst", 2, 10, a, 0, 1);
    CU_ASSERT_EQUAL(bench_merge_add(&m, jr, 0, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "mode ramp"));
    CU_ASSERT_EQUAL(bench_merge_add(&m, jq, 0, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "QoS 2"));
    static const char *const bad[] = {
        "{}", "[1,2]", "{\"mode\":\"conn\",\"clients\":3}", "{\"mode\":\"burst\",\"clients\":3}",
        "{\"mode\":\"burst\",\"clients\":1,\"qos\":1,\"sent\":1,\"acked\":1,\"received\":1,\"lost\":0,\"duplicates\":0,\"errors\":0}",
        "{\"mode\":\"burst\",\"clients\":1,\"qos\":1,\"sent\":1,\"acked\":1,\"received\":1,\"lost\":0,\"duplicates\":0,\"errors\":0,"
        "\"windows\":[[0,1]],\"latency_hist\":{\"unit\":\"us\",\"count\":1,\"min\":257,\"max\":257,\"sum\":257,\"buckets\":[[257,1]]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *v = json_parse(bad[i], strlen(bad[i]), NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT_EQUAL(bench_merge_add(&m, v, 0, err, sizeof err), -1);
        json_free(v);
    }
    CU_ASSERT_EQUAL(m.runs, 2);
    CU_ASSERT(same_hist(m.lat, u));
    json_free(jr);
    json_free(jq);
    bench_merge_free(&m);
    json_free(ja);
    json_free(jb);
    hist_free(a);
    hist_free(b);
    hist_free(u);
}

static void TEST_window_union(void)
{
    bench_merge_t m;
    bench_merge_init(&m);
    static const double w[][2] = { { 20, 25 }, { 0, 10 }, { 5, 12 }, { 6, 7 }, { 25, 26 } };
    m.win = malloc(sizeof w);
    memcpy(m.win, w, sizeof w);
    m.nwin = 5;
    CU_ASSERT(fabs(bench_merge_window(&m) - 18.0) < 1e-9);   /* [0,12] + [20,26] */
    m.nwin = 1;
    CU_ASSERT(fabs(bench_merge_window(&m) - 5.0) < 1e-9);
    bench_merge_free(&m);
}

int init_benchmerge_tests(void)
{
    CU_pSuite s = CU_add_suite("bench merge", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "a histogram through JSON comes back identical", TEST_hist_round_trip) ||
        !CU_add_test(s, "hist import refuses what does not fit", TEST_import_checks) ||
        !CU_add_test(s, "merged runs equal the histogram of all samples, bucket by bucket", TEST_merge_equals_union) ||
        !CU_add_test(s, "the union of the time windows", TEST_window_union))
        return 1;
    return 0;
}
