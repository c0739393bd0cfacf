/*
 * bench.h - the load generator behind `mqlab bench` (no Lua).
 *
 * One process, one thread, one event loop (net.h) over every client's
 * socket: thousands of MQTT connections on raw sockets with the kit's own
 * codec (no client library, whose select() loop stops at 1024 fds). Publishers stamp each payload with the run,
 * their index, a sequence number, the send time and, in steady mode, how
 * late that was against the schedule; one subscriber on the topic filter
 * measures end-to-end latency (raw: from the send time; corrected: from
 * the due time) and counts what was lost or duplicated.
 *
 * Modes:
 *   BENCH_CONN    connect N clients (at connect_rate/s, 0: as fast as
 *                 possible), hold them hold_ms, report how many made it
 *   BENCH_STEADY  a total of rate msg/s spread over N publishers for
 *                 duration_ms
 *   BENCH_BURST   messages in total, as fast as the broker takes them
 *   BENCH_RAMP    offered rate rising linearly from rate_from to rate_to
 *                 over duration_ms; reports the knee (see bench_result)
 *
 * Ctrl-C (cleanup_interrupted) ends a run early: bench_run still fills
 * the result with what was measured, sets result->interrupted and returns
 * KIT_OK; nothing stays open.
 */
#ifndef MQLAB_BENCH_H
#define MQLAB_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

typedef enum { BENCH_CONN, BENCH_STEADY, BENCH_BURST, BENCH_RAMP } bench_mode;

/* The smallest payload: the stamp (run, publisher, sequence, send time,
 * lateness; see publish_one in bench.c). */
#define BENCH_MIN_SIZE 20

/* The longest --id-prefix (bytes). */
#define BENCH_ID_PREFIX_MAX 64

/* One second of a run (for the progress line, ramp, csv and plot). */
typedef struct {
    double t;                  /* seconds since the load started (end of this second) */
    double offered;            /* msg/s the schedule asked for */
    uint64_t sent, acked, received;   /* in this second */
    uint64_t connected;        /* clients connected at its end */
    double p50_ms, p99_ms;     /* latency of the messages received in it */
    double p50_corr_ms, p99_corr_ms;  /* the same, corrected (see latency_corrected) */
} bench_second;

typedef struct bench_opts {
    bench_mode mode;
    const char *host;          /* NULL: 127.0.0.1 */
    int port;
    int clients;               /* publishers, or connections in conn mode; default 1 */
    double rate;               /* steady: total msg/s (default 1000) */
    double rate_from, rate_to; /* ramp (defaults 100 and 10000) */
    uint64_t messages;         /* burst: in total (default 10000) */
    int qos;                   /* 0..2 (default 1 from the command line) */
    int size;                  /* payload bytes; raised to BENCH_MIN_SIZE */
    int duration_ms;           /* steady, ramp (default 10000) */
    int hold_ms;               /* conn (default 0) */
    double connect_rate;       /* conn: attempts per second, 0: as fast as possible */
    int connect_timeout_ms;    /* a client not connected by then has failed; 0: 10000 */
    int drain_ms;              /* after the load, wait this long for the last acks and deliveries; 0: 5000 */
    const char *topic;         /* template, {i} = publisher index; NULL: mqlab/bench/{i} */
    const char *username, *password;
    const char *cafile;        /* TLS when set */
    int no_subscriber;         /* 1: publishers only (no latency, no loss count) */
    /* Client ids: NULL: mqlab-bench-PID-RUN-{i} (and -sub); else exactly
     * id_prefix{i} and id_prefix"sub", so that generators on several
     * machines, given different prefixes, never take each other's ids. */
    const char *id_prefix;
    /* Set *stop non-zero, from any thread, to end the run early as
     * Ctrl-C does (r->interrupted is set); NULL: only Ctrl-C. */
    int *stop;
    /* Called about once a second during the run (may be NULL). */
    void (*progress)(const bench_second *s, const struct bench_opts *o, void *ud);
    void *ud;
} bench_opts;

typedef struct {
    bench_mode mode;
    int clients, qos, size;
    /* conn */
    int connected;             /* at the end of the connect phase */
    int failed;                /* never connected (refused, timed out, error) */
    double connect_rate;       /* connections/s over the connect phase */
    double rss_mb;             /* this process's peak resident size */
    /* load */
    uint64_t sent;             /* PUBLISH packets written to the socket */
    uint64_t acked;            /* PUBACK/PUBCOMP seen (QoS 0: written out) */
    uint64_t received;         /* distinct messages of this run at the subscriber */
    uint64_t lost;             /* sent - received (0 without a subscriber) */
    uint64_t duplicates;       /* received again */
    double rate_sent, rate_received;   /* msg/s over the load phase */
    double load_s;             /* length of the load phase (s) */
    double start_unix, end_unix;   /* the load phase in wall-clock time (s since 1970), for merges */
    hist_t *latency;           /* end-to-end, microseconds (owned): receive - send
                                  time ("raw") */
    /* Corrected for coordinated omission (owned): receive - the time the
     * message was due by the schedule. In steady mode a message is due at
     * its slot, t0 + (k+1)/rate for the k-th of the run, so a generator
     * held back (a full window behind a stalled link) does not hide the
     * wait from the figures, as wrk2 does; >= latency sample by sample.
     * Other modes have no schedule to fall behind: the same as latency. */
    hist_t *latency_corrected;
    int errors;                /* failed connects, lost connections, refused publishes */
    char first_error[256];     /* the first of them, as a sentence ("" if none) */
    /* ramp: the first second where p99 > 5x the p99 of the first seconds,
     * or the acks fall below 90% of the offered rate. knee_s < 0: none. */
    double knee_s, knee_rate, base_p99_ms;
    char knee_reason[64];
    bench_second *seconds;     /* one per second of load (owned) */
    int nseconds;
    int interrupted;           /* Ctrl-C ended the run early */
} bench_result;

/* Fill o with the defaults above. */
void bench_opts_init(bench_opts *o);

/* Raise RLIMIT_NOFILE's soft limit to the hard one (children, such as
 * the bundled broker, inherit it); as root, also the hard limit up to
 * want (capped by /proc/sys/fs/nr_open) when want is above it. Each
 * client is one socket: BENCH_FDS(clients) is a fair want (with room
 * for the process's other files). Returns the new soft limit. */
#define BENCH_FDS(n) ((long)(n) + 256)
long bench_raise_nofile(long want);

/* Run. KIT_OK with r filled (also when clients failed: see r->errors,
 * r->failed; also after Ctrl-C: r->interrupted); KIT_EINVAL for bad
 * options; KIT_ERR when the event loop cannot be set up. r must be freed
 * with bench_result_free() whatever the return. */
int bench_run(const bench_opts *o, bench_result *r, char *err);
void bench_result_free(bench_result *r);

/* The subscriber's filter for a topic template: {i} becomes +. */
void bench_topic_filter(const char *tmpl, char *out, size_t outlen);

const char *bench_mode_name(bench_mode m);

#endif
