/*
 * hist_test.c - the latency histogram against the truth: sorted arrays of
 * random values, percentile by percentile, within the promised 1%.
 */
#include <CUnit/CUnit.h>

#include "hist.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact value at percentile p, with hist.h's rank rule. */
static uint64_t truth(const uint64_t *sorted, size_t n, double p)
{
    uint64_t rank = (uint64_t)(p / 100.0 * (double)n - 1e-9) + 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static int within_1pct(uint64_t got, uint64_t want)
{
    double e = fabs((double)got - (double)want);
    return e <= 0.01 * (double)want;
}

/* xorshift: the same values on every machine, so a failure repeats. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void check_against_sorted(uint64_t *v, size_t n)
{
    hist_t *h = hist_new();
    for (size_t i = 0; i < n; i++) hist_record(h, v[i]);
    qsort(v, n, sizeof *v, cmp_u64);
    static const double ps[] = { 50, 90, 99, 99.9, 100 };
    CU_ASSERT_EQUAL(hist_count(h), n);
    CU_ASSERT_EQUAL(hist_min(h), v[0]);
    CU_ASSERT_EQUAL(hist_max(h), v[n - 1]);
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) {
        uint64_t got = hist_percentile(h, ps[k]), want = truth(v, n, ps[k]);
        if (!within_1pct(got, want)) fprintf(stderr, "p%.1f: got %llu want %llu\n", ps[k],
                                             (unsigned long long)got, (unsigned long long)want);
        CU_ASSERT(within_1pct(got, want));
    }
    hist_free(h);
}

static void TEST_uniform(void)
{
    size_t n = 100000;
    uint64_t *v = malloc(n * sizeof *v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    for (size_t i = 0; i < n; i++) v[i] = rnd() % 2000000;   /* 0..2 s */
    check_against_sorted(v, n);
    free(v);
}

static void TEST_log_spread(void)
{
    /* Latency-like: most small, a long tail over many decades. */
    size_t n = 50000;
    uint64_t *v = malloc(n * sizeof *v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    for (size_t i = 0; i < n; i++) {
        double u = (double)(rnd() % 1000000) / 1e6;
        v[i] = (uint64_t)exp(u * u * u * 30.0);   /* 1 us .. ~10^13 us, clipped */
        if (v[i] > HIST_MAX_US) v[i] = HIST_MAX_US;
    }
    check_against_sorted(v, n);
    free(v);
}

static void TEST_every_value_small(void)
{
    /* Each value alone: its percentiles are the value itself within 1%. */
    hist_t *h = hist_new();
    for (uint64_t x = 0; x < 300000; x += (x < 1000 ? 1 : x / 50)) {
        hist_reset(h);
        hist_record(h, x);
        CU_ASSERT_EQUAL(hist_count(h), 1);
        CU_ASSERT_EQUAL(hist_percentile(h, 50), x);   /* clamped to min/max */
    }
    hist_reset(h);
    CU_ASSERT_EQUAL(hist_count(h), 0);
    CU_ASSERT_EQUAL(hist_percentile(h, 99), 0);
    CU_ASSERT_EQUAL(hist_max(h), 0);
    hist_free(h);
}

static void TEST_merge(void)
{
    size_t n = 40000;
    uint64_t *v = malloc(n * sizeof *v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    hist_t *a = hist_new(), *b = hist_new(), *all = hist_new();
    for (size_t i = 0; i < n; i++) {
        /* Two different populations, so the merge has to mix them. */
        v[i] = i % 2 ? 100 + rnd() % 1000 : 50000 + rnd() % 500000;
        hist_record(i % 2 ? a : b, v[i]);
        hist_record(all, v[i]);
    }
    hist_merge(a, b);
    CU_ASSERT_EQUAL(hist_count(a), n);
    CU_ASSERT_EQUAL(hist_min(a), hist_min(all));
    CU_ASSERT_EQUAL(hist_max(a), hist_max(all));
    qsort(v, n, sizeof *v, cmp_u64);
    static const double ps[] = { 10, 50, 90, 99, 99.9 };
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) {
        CU_ASSERT_EQUAL(hist_percentile(a, ps[k]), hist_percentile(all, ps[k]));
        CU_ASSERT(within_1pct(hist_percentile(a, ps[k]), truth(v, n, ps[k])));
    }
    CU_ASSERT(fabs(hist_mean(a) - hist_mean(all)) < 1e-6 * hist_mean(all));
    /* Merging an empty one changes nothing. */
    hist_t *empty = hist_new();
    hist_merge(a, empty);
    CU_ASSERT_EQUAL(hist_count(a), n);
    hist_merge(empty, a);
    CU_ASSERT_EQUAL(hist_min(empty), hist_min(all));
    hist_free(a);
    hist_free(b);
    hist_free(all);
    hist_free(empty);
    free(v);
}

static void TEST_record_n_and_clip(void)
{
    hist_t *h = hist_new();
    hist_record_n(h, 1000, 99);
    hist_record_n(h, 5000000, 1);
    hist_record_n(h, 7, 0);                    /* nothing */
    CU_ASSERT_EQUAL(hist_count(h), 100);
    CU_ASSERT(within_1pct(hist_percentile(h, 99), 1000));
    CU_ASSERT_EQUAL(hist_percentile(h, 100), 5000000);
    hist_record(h, HIST_MAX_US * 4);
    CU_ASSERT_EQUAL(hist_max(h), HIST_MAX_US);
    hist_free(h);
}

int init_hist_tests(void)
{
    CU_pSuite s = CU_add_suite("hist", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "percentiles of uniform values within 1%", TEST_uniform) ||
        !CU_add_test(s, "percentiles of a long tail within 1%", TEST_log_spread) ||
        !CU_add_test(s, "single values, reset, empty", TEST_every_value_small) ||
        !CU_add_test(s, "merge equals recording everything in one", TEST_merge) ||
        !CU_add_test(s, "record_n and clipping", TEST_record_n_and_clip))
        return 1;
    return 0;
}
