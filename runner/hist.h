/*
 * hist.h - an HDR-style latency histogram for `mqlab bench`.
 *
 * Values are microseconds. Buckets double in width, and each is cut into
 * 128 linear sub-buckets, so any reported value is within 1/256 (0.4%)
 * of a recorded one of the same rank: the 1% the load reports promise,
 * with a fixed 36 KB and O(1) recording, whatever the number of samples.
 * Values 0..255 are exact; values above HIST_MAX_US are recorded as
 * HIST_MAX_US.
 */
#ifndef MQLAB_HIST_H
#define MQLAB_HIST_H

#include <stdint.h>

#define HIST_MAX_US ((uint64_t)1 << 40)   /* about 12.7 days */

typedef struct hist hist_t;

hist_t *hist_new(void);            /* empty; aborts on out-of-memory */
void hist_free(hist_t *h);         /* NULL is fine */
void hist_reset(hist_t *h);

void hist_record(hist_t *h, uint64_t us);
void hist_record_n(hist_t *h, uint64_t us, uint64_t n);

/* Add every sample of src into dst. */
void hist_merge(hist_t *dst, const hist_t *src);

uint64_t hist_count(const hist_t *h);
uint64_t hist_min(const hist_t *h);    /* exact; 0 when empty */
uint64_t hist_max(const hist_t *h);    /* exact; 0 when empty */
double hist_mean(const hist_t *h);     /* exact; 0 when empty */

/* The value at percentile p (0..100): the sample of rank ceil(p% of
 * count) (at least 1) in sorted order, within 1%. 0 when empty. */
uint64_t hist_percentile(const hist_t *h, double p);

/* Export and import, so that a histogram written out (bench's JSON
 * "latency_hist") is read back identical, and so merged exactly:
 * hist_export visits the non-empty buckets in increasing order, each as
 * its lowest value and its count; hist_sum is the exact sum of the
 * samples (the mean's numerator). hist_import_bucket adds n samples to
 * the bucket whose lowest value is lo (-1 when lo is no bucket's lowest
 * value); hist_import_stats then sets min, max and sum (-1 when they do
 * not fit the buckets: min or max outside the first or last non-empty
 * bucket, or min > max, or no samples). */
double hist_sum(const hist_t *h);
void hist_export(const hist_t *h, void (*fn)(uint64_t lo, uint64_t n, void *ud), void *ud);
int hist_import_bucket(hist_t *h, uint64_t lo, uint64_t n);
int hist_import_stats(hist_t *h, uint64_t min, uint64_t max, double sum);

#endif
