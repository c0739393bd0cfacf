/*
 * util.h - small helpers shared by every C module of mqlab: error codes,
 * the error buffer convention, clocks, files, temporary folders and ports.
 *
 * Convention (as in redis's anet.c): functions return KIT_OK (0) or a
 * positive KIT_E* code, and write a human sentence into a caller-owned
 * buffer `err` of KIT_ERRLEN bytes (err may be NULL).
 */
#ifndef MQLAB_UTIL_H
#define MQLAB_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define KIT_ERRLEN 512

enum {
    KIT_OK = 0,
    KIT_ERR = 1,        /* generic failure, see err */
    KIT_ETIMEOUT = 2,   /* a deadline passed */
    KIT_EINTR = 3,      /* the user interrupted (SIGINT/SIGTERM) */
    KIT_ENOENT = 4,     /* a file, program or lab does not exist */
    KIT_EREFUSED = 5,   /* the peer refused (e.g. CONNACK != 0) */
    KIT_EINVAL = 6,     /* bad argument or malformed input */
    KIT_ENOTCONN = 7,   /* the connection is gone */
    KIT_EMISSING = 8    /* the environment lacks something (exit code 3) */
};

/* Format into err (if not NULL), truncating at KIT_ERRLEN. Returns code. */
int kit_seterr(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int64_t kit_now_ms(void);          /* monotonic clock, milliseconds */
/* setrlimit(resource), both values capped at the current hard limit. */
void kit_set_limit(int resource, uint64_t soft, uint64_t hard);
/* 1 when path is dir or lies inside it (both absolute, normalised). */
int kit_path_under(const char *path, const char *dir);
/* qsort comparator for an array of C strings. */
int kit_cmp_strp(const void *a, const void *b);
/* Close every descriptor from lowfd up (close_range, else one by one).
 * For a forked child before exec. */
void kit_close_from(int lowfd);
/* /proc/PID/stat as numbers (pid 0: this process, read through
 * /proc/self, which stays right under a /proc of another pid namespace).
 * f[k] is field k as proc(5) numbers them (f[1] the pid; f[2], the
 * command name, is left 0) for k < KIT_STAT_FIELDS: 4 the parent, 14 and
 * 15 utime and stime, 22 the start time, in clock ticks. *state (may be
 * NULL) gets field 3. 0, or -1 when there is no such process. */
enum { KIT_STAT_FIELDS = 23 };
int kit_proc_stat(int pid, char *state, unsigned long long f[KIT_STAT_FIELDS]);
double kit_wall_s(void);           /* wall clock, seconds since epoch */
int64_t kit_wall_ms(void);         /* wall clock, ms since epoch */


/* Read a whole file; result is malloc'd and NUL-terminated. NULL on error. */
char *kit_read_file(const char *path, size_t *len, char *err);

/* Write data to path via a temporary file and rename(): never half-written. */
int kit_write_file_atomic(const char *path, const void *data, size_t len,
                          int mode, char *err);

int kit_mkdir_p(const char *path, int mode, char *err);
int kit_rm_rf(const char *path);
int kit_file_exists(const char *path);
int kit_is_dir(const char *path);
/* A folder entry that is nobody's work: hidden (.git, .mqlab) or a
 * cache (__pycache__). Class grading, verify and watch skip them. */
int kit_not_work(const char *name);


/* A TCP port on 127.0.0.1 that was free a moment ago (0 on failure). */
int kit_free_port(char *err);

/* malloc'd printf. Aborts on out-of-memory, as the kit cannot go on. */
char *kit_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *kit_strdup(const char *s);

/* A usage error of `mqlab CMD` on stderr: "mqlab CMD: " fmt (with arg),
 * then "Try: mqlab CMD --help" in English or, when es, Spanish. Returns
 * the exit code for bad usage (2). */
int kit_usage_error(const char *cmd, int es, const char *fmt, const char *arg);

/* Split a long option "--name" or "--name=value": the name into name
 * (namelen bytes with the NUL), *val to the value or NULL. 0, or -1 when
 * arg does not start with "--", -2 when the name does not fit. */
int kit_long_opt(const char *arg, char *name, size_t namelen, const char **val);
/* The out-of-memory policy. Small, fixed-size allocations (names, paths,
 * tables of the kit's own objects) use kit_xmalloc/kit_xrealloc: they do
 * not fail, or the process ends, as it does after a Lua panic: a line on
 * stderr, the handler set by kit_on_out_of_memory (cleanup_run: brokers,
 * programs and folders go), then exit 70. Buffers whose size comes from
 * outside (packets, program output, a copy of a submission, load tests)
 * use malloc and return an error, so one huge input fails one operation
 * and not the kit. */
void *kit_xmalloc(size_t n);
void *kit_xrealloc(void *p, size_t n);
void kit_on_out_of_memory(void (*fn)(void));

/* Absolute path of the running mqlab binary (cached). */
const char *kit_self_exe(void);

#endif
