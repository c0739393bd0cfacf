/*
 * hist.c - the log-linear latency histogram (see hist.h).
 *
 * Index layout: values below 256 have a slot each. Above, a value whose
 * highest bit is b keeps its top 8 bits: the bucket is b - 7 (its shift)
 * and the sub-bucket the 128 values those bits can take with the top one
 * set. The widest slot is thus 1/128 of its lower bound, and reporting
 * its midpoint halves that.
 */
#include "hist.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define SUB_BITS 7
#define SUB_HALF (1u << SUB_BITS)             /* 128 sub-buckets per doubling */
#define LINEAR (2u * SUB_HALF)                /* 0..255 exact */
#define MAX_SHIFT (40 - SUB_BITS)             /* shift of HIST_MAX_US's bucket */
#define NSLOTS (LINEAR + MAX_SHIFT * SUB_HALF)

struct hist {
    uint64_t count, min, max;
    double sum;
    uint64_t slot[NSLOTS];
};

static unsigned slot_of(uint64_t v)
{
    if (v < LINEAR) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) - SUB_HALF;
    return LINEAR + (shift - 1) * SUB_HALF + sub;
}

/* The lowest value of a slot and its width. */
static void slot_range(unsigned i, uint64_t *lo, uint64_t *width)
{
    if (i < LINEAR) { *lo = i; *width = 1; return; }
    unsigned shift = (i - LINEAR) / SUB_HALF + 1;
    unsigned sub = (i - LINEAR) % SUB_HALF + SUB_HALF;
    *lo = (uint64_t)sub << shift;
    *width = (uint64_t)1 << shift;
}

hist_t *hist_new(void)
{
    hist_t *h = kit_xmalloc(sizeof *h);
    hist_reset(h);
    return h;
}

void hist_free(hist_t *h)
{
    free(h);
}

void hist_reset(hist_t *h)
{
    memset(h, 0, sizeof *h);
}

void hist_record_n(hist_t *h, uint64_t us, uint64_t n)
{
    if (!n) return;
    if (us > HIST_MAX_US) us = HIST_MAX_US;
    unsigned i = slot_of(us);
    if (i >= NSLOTS) i = NSLOTS - 1;
    h->slot[i] += n;
    if (h->count == 0 || us < h->min) h->min = us;
    if (us > h->max) h->max = us;
    h->count += n;
    h->sum += (double)us * (double)n;
}

void hist_record(hist_t *h, uint64_t us)
{
    hist_record_n(h, us, 1);
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    if (!src->count) return;
    for (unsigned i = 0; i < NSLOTS; i++) dst->slot[i] += src->slot[i];
    if (dst->count == 0 || src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
}

uint64_t hist_count(const hist_t *h) { return h->count; }
uint64_t hist_min(const hist_t *h) { return h->min; }
uint64_t hist_max(const hist_t *h) { return h->max; }
double hist_mean(const hist_t *h) { return h->count ? h->sum / (double)h->count : 0.0; }

uint64_t hist_percentile(const hist_t *h, double p)
{
    if (!h->count) return 0;
    if (p < 0) p = 0;
    if (p > 100) p = 100;
    /* The rank in 1..count; the small epsilon keeps 99.9% of 1000 at 999. */
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count - 1e-9) + 1;
    if (rank > h->count) rank = h->count;
    if (rank < 1) rank = 1;
    /* The ends of the order are known exactly. */
    if (rank == h->count) return h->max;
    if (rank == 1) return h->min;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NSLOTS; i++) {
        seen += h->slot[i];
        if (seen >= rank) {
            uint64_t lo, width;
            slot_range(i, &lo, &width);
            uint64_t v = lo + width / 2;
            /* The exact extremes are better than a midpoint outside them. */
            if (v > h->max) v = h->max;
            if (v < h->min) v = h->min;
            return v;
        }
    }
    return h->max;
}

/* ---- export and import ------------------------------------------------ */

double hist_sum(const hist_t *h) { return h->sum; }

void hist_export(const hist_t *h, void (*fn)(uint64_t lo, uint64_t n, void *ud), void *ud)
{
    for (unsigned i = 0; i < NSLOTS; i++) {
        if (!h->slot[i]) continue;
        uint64_t lo, width;
        slot_range(i, &lo, &width);
        fn(lo, h->slot[i], ud);
    }
}

int hist_import_bucket(hist_t *h, uint64_t lo, uint64_t n)
{
    if (lo > HIST_MAX_US) return -1;
    unsigned i = slot_of(lo);
    if (i >= NSLOTS) return -1;
    uint64_t l, width;
    slot_range(i, &l, &width);
    if (l != lo) return -1;
    if (!n) return 0;
    h->slot[i] += n;
    h->count += n;
    return 0;
}

int hist_import_stats(hist_t *h, uint64_t min, uint64_t max, double sum)
{
    if (!h->count || min > max || max > HIST_MAX_US || !(sum >= 0)) return -1;
    unsigned first = NSLOTS, last = 0;
    for (unsigned i = 0; i < NSLOTS; i++)
        if (h->slot[i]) { if (first == NSLOTS) first = i; last = i; }
    if (slot_of(min) != first || slot_of(max) != last) return -1;
    h->min = min;
    h->max = max;
    h->sum = sum;
    return 0;
}
