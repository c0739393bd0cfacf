/*
 * benchmerge.h - `mqlab bench merge`: runs made by several generators
 * (several machines, or pods of a Job) against one broker, joined into
 * one result.
 *
 * Each run's JSON (benchcmd.c) carries what a merge needs besides the
 * counts: its latency histogram in full ("latency_hist": every non-empty
 * bucket as [lowest_us, count], with the exact min, max and sum), so the
 * merged percentiles are those of all the samples together, not an
 * average of percentiles; and its load phase in wall-clock time
 * ("windows": [[start_unix, end_unix]]).
 *
 * Rates combine as the total messages over the union of the runs' time
 * windows: generators started by a Job do not start at the same instant,
 * and a sum of their rates would count as simultaneous what was not;
 * over the union, a second in which any generator was loading counts
 * once. The merged JSON has the same shape as one run's (with "runs"
 * and all the windows), so merges can be merged again.
 */
#ifndef MQLAB_BENCHMERGE_H
#define MQLAB_BENCHMERGE_H

#include <stdint.h>

#include "bench.h"
#include "hist.h"
#include "json.h"

/* The members a merge needs, written after a run's other JSON fields:
 * ,"start_unix":..,"end_unix":..,"load_s":..,"windows":[[s,e]],
 * "latency_hist":{"unit":"us","count":..,"min":..,"max":..,"sum":..,
 * "buckets":[[lo,n],...]} */
void bench_merge_fields(json_buf_t *b, const bench_result *r);

/* A histogram as the "latency_hist" object, and back (0, or -1 with
 * err when v is not one or does not fit hist.c's buckets). */
void bench_hist_json(json_buf_t *b, const hist_t *h);
int bench_hist_from_json(const json_t *v, hist_t *h, char *err, size_t errlen);

typedef struct {
    char mode[16];             /* "" until the first run */
    int qos, runs, clients, errors, interrupted;
    uint64_t sent, acked, received, lost, duplicates;
    double (*win)[2];          /* every run's load window (wall clock) */
    int nwin;
    hist_t *lat;
    hist_t *lat_corr;          /* corrected for coordinated omission; */
    int have_corr;             /* ... from runs that carry it (all or none) */
} bench_merge_t;

void bench_merge_init(bench_merge_t *m);
void bench_merge_free(bench_merge_t *m);
/* Add one run (or merge) read from JSON. -1 with err (in Spanish when
 * es) when v is not bench JSON or its mode or QoS differ from the runs
 * added before; m is then unchanged. */
int bench_merge_add(bench_merge_t *m, const json_t *v, int es, char *err, size_t errlen);
/* The length of the union of the windows (s). */
double bench_merge_window(const bench_merge_t *m);
/* The merged result as JSON (one line, no newline). */
void bench_merge_json(json_buf_t *b, const bench_merge_t *m);

/* `mqlab bench merge FILE...`: argv[0] is the first argument after
 * "merge". Returns the exit code. */
int bench_merge_main(int argc, char **argv, int es);

#endif
