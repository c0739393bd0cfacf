/*
 * store_test.c - the SQLite progress store: schema and migrations, recording
 * attempts whole or not at all, summaries, hints, resets, best checks.
 *
 * Every test gets a fresh database in its own kit_mkdtemp folder (made by
 * the suite's set-up, removed by its tear-down, which CUnit runs even after
 * a fatal assertion). A second, raw sqlite3 connection looks at the file
 * from outside where the store's API cannot show what is on disk.
 */
#include <CUnit/CUnit.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "cleanup.h"
#include "util.h"
#include "verdict.h"

static char dir[512];
static char path[640];
static store_t *st;
static char err[KIT_ERRLEN];

static void setup(void)
{
    dir[0] = path[0] = '\0';
    st = NULL;
    err[0] = '\0';
    if (kit_mkdtemp(dir, sizeof dir, "mqlab-store-test", NULL) != KIT_OK) {
        dir[0] = '\0';
        return;
    }
    /* A folder that does not exist yet: store_open must make it. */
    snprintf(path, sizeof path, "%s/home/.mqlab/progress.db", dir);
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    if (dir[0]) kit_rmdtemp(dir);
    dir[0] = '\0';
}

static void open_store(void)
{
    CU_ASSERT_FATAL(dir[0] != '\0');
    int rc = store_open(&st, path, err);
    if (rc != KIT_OK) fprintf(stderr, "store_open: %s\n", err);
    CU_ASSERT_FATAL(rc == KIT_OK);
    CU_ASSERT_FATAL(st != NULL);
}

/* One integer from a query on a raw connection of our own; -1 on error. */
static int raw_int(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static int raw_exec(const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* A verdict with checks given as (points, max) pairs, named c0, c1, ... */
static void make_verdict(verdict_t *v, const char *student, const char *lab,
                         int64_t started_ms, int n, const double *pts,
                         const double *max, const char *tag)
{
    *v = (verdict_t){ 0 };
    v->student = kit_strdup(student);
    v->lab = kit_strdup(lab);
    v->title = kit_strdup("A lab");
    v->submission = kit_strdup("/home/student/lab");
    v->started_ms = started_ms;
    v->duration_s = 1.5;
    for (int i = 0; i < n; i++) {
        char id[16], title[32], msg[64];
        snprintf(id, sizeof id, "c%d", i);
        snprintf(title, sizeof title, "Check %d", i);
        snprintf(msg, sizeof msg, "%s:%d", tag ? tag : "", i);
        verdict_add(v, id, title, pts[i] >= max[i], 0, pts[i], max[i], msg);
    }
    verdict_total(v);
}

static int64_t record(const char *student, const char *lab, int64_t started_ms,
                      double score, double max, const char *tag)
{
    verdict_t v;
    double p[2] = { score / 2, score / 2 }, m[2] = { max / 2, max / 2 };
    make_verdict(&v, student, lab, started_ms, 2, p, m, tag);
    int64_t id = -1;
    int rc = store_record(st, &v, &id, err);
    if (rc != KIT_OK) fprintf(stderr, "store_record: %s\n", err);
    CU_ASSERT(rc == KIT_OK);
    verdict_clear(&v);
    return id;
}

static void TEST_open_creates_schema(void)
{
    open_store();
    CU_ASSERT(store_schema_version() >= 1);
    CU_ASSERT(store_db_version(st) == store_schema_version());
    CU_ASSERT(kit_file_exists(path));
    CU_ASSERT(raw_int("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                      " ('students', 'attempts', 'check_results', 'hints')") == 4);
    CU_ASSERT(raw_int("PRAGMA user_version") == store_schema_version());
}

static void TEST_reopen_is_idempotent(void)
{
    open_store();
    record("ana", "01-hello", 1000, 5, 10, "first");
    store_close(st);
    st = NULL;

    open_store();
    CU_ASSERT(store_db_version(st) == store_schema_version());
    store_summary_t sum;
    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 1);
    CU_ASSERT(raw_int("SELECT count(*) FROM students") == 1);
}

static void TEST_record_and_summary(void)
{
    open_store();
    store_summary_t sum;
    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 0 && sum.last_ms == 0 && sum.best_score == 0 && !sum.passed);

    int64_t a = record("ana", "01-hello", 1000, 3, 10, "a");
    int64_t b = record("ana", "01-hello", 2000, 7, 10, "b");
    int64_t c = record("ana", "01-hello", 3000, 5, 10, "c");
    record("bob", "01-hello", 4000, 10, 10, "bob");
    CU_ASSERT(a > 0 && b > a && c > b);

    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 3);
    CU_ASSERT_DOUBLE_EQUAL(sum.best_score, 7, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(sum.max_score, 10, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(sum.last_score, 5, 1e-9);
    CU_ASSERT(sum.last_ms == 3000);
    CU_ASSERT(sum.passed == 0);
    CU_ASSERT(sum.hints_used == 0);

    record("ana", "01-hello", 5000, 10, 10, "full");
    record("ana", "01-hello", 6000, 2, 10, "worse");
    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 5);
    CU_ASSERT_DOUBLE_EQUAL(sum.best_score, 10, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(sum.last_score, 2, 1e-9);
    CU_ASSERT(sum.last_ms == 6000);
    CU_ASSERT(sum.passed == 1);

    /* Another lab of the same student is separate. */
    CU_ASSERT(store_summary(st, "ana", "02-qos", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 0 && !sum.passed);

    /* A zero-point attempt is not a pass, even though score == max. */
    record("eve", "03-empty", 1000, 0, 0, "zero");
    CU_ASSERT(store_summary(st, "eve", "03-empty", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 1 && !sum.passed);
}


/* store_each picks one attempt per student and lab: the latest, or the
 * best; store_latest gives one whole; missing and hash round-trip. */
static int each_n;
static char each_seen[8][64];

static int each_fn(void *ud, verdict_t *v)
{
    (void)ud;
    if (each_n < 8)
        snprintf(each_seen[each_n], sizeof each_seen[0], "%s %s %g %s", v->student, v->lab, v->score,
                 v->missing ? "missing" : v->hash ? v->hash : "-");
    each_n++;
    return KIT_OK;
}

static void TEST_each_latest_and_best(void)
{
    open_store();
    record("bob", "02-topics", 1000, 8, 10, "b1");
    record("ana", "01-hello", 1000, 10, 10, "a1");
    record("ana", "01-hello", 2000, 4, 10, "a2");
    verdict_t m = { 0 };
    m.student = kit_strdup("ana");
    m.lab = kit_strdup("02-topics");
    m.started_ms = 3000;
    m.max_score = 16;
    m.missing = kit_strdup("found Topics.txt");
    m.hash = kit_strdup("abc");
    CU_ASSERT(store_record(st, &m, NULL, err) == KIT_OK);
    verdict_clear(&m);

    each_n = 0;
    CU_ASSERT(store_each(st, NULL, 0, 0, each_fn, NULL, err) == KIT_OK);
    CU_ASSERT(each_n == 3);
    CU_ASSERT_STRING_EQUAL(each_seen[0], "ana 01-hello 4 -");
    CU_ASSERT_STRING_EQUAL(each_seen[1], "ana 02-topics 0 missing");
    CU_ASSERT_STRING_EQUAL(each_seen[2], "bob 02-topics 8 -");
    each_n = 0;
    CU_ASSERT(store_each(st, NULL, 0, 1, each_fn, NULL, err) == KIT_OK);
    CU_ASSERT(each_n == 3);
    CU_ASSERT_STRING_EQUAL(each_seen[0], "ana 01-hello 10 -");
    const char *only[] = { "02-topics" };
    each_n = 0;
    CU_ASSERT(store_each(st, only, 1, 0, each_fn, NULL, err) == KIT_OK);
    CU_ASSERT(each_n == 2);

    verdict_t v = { 0 };
    CU_ASSERT(store_latest(st, "ana", "02-topics", &v, err) == KIT_OK);
    CU_ASSERT(v.missing && strcmp(v.missing, "found Topics.txt") == 0);
    CU_ASSERT(v.hash && strcmp(v.hash, "abc") == 0);
    CU_ASSERT_DOUBLE_EQUAL(v.max_score, 16, 1e-9);
    CU_ASSERT(store_latest(st, "ana", "01-hello", &v, err) == KIT_OK);
    CU_ASSERT(v.nchecks == 2 && v.missing == NULL && v.started_ms == 2000);
    CU_ASSERT(store_latest(st, "zoe", "01-hello", &v, err) == KIT_ENOENT);
    verdict_clear(&v);
}

/* Collects what store_best_checks reports, copying the strings because
 * they are only valid during the callback. */
struct seen {
    int n;
    char id[8][16];
    char title[8][32];
    char msg[8][64];
    int passed[8], skipped[8];
    double points[8], max_points[8];
};

static void collect(void *ud, const check_result_t *c)
{
    struct seen *s = ud;
    if (s->n >= 8) return;
    snprintf(s->id[s->n], sizeof s->id[0], "%s", c->id);
    snprintf(s->title[s->n], sizeof s->title[0], "%s", c->title);
    snprintf(s->msg[s->n], sizeof s->msg[0], "%s", c->message);
    s->passed[s->n] = c->passed;
    s->skipped[s->n] = c->skipped;
    s->points[s->n] = c->points;
    s->max_points[s->n] = c->max_points;
    s->n++;
}

static void TEST_best_checks_round_trip(void)
{
    open_store();
    struct seen seen = { 0 };
    CU_ASSERT(store_best_checks(st, "ana", "01-hello", collect, &seen, err) == KIT_ENOENT);
    CU_ASSERT(seen.n == 0);

    verdict_t v = { 0 };
    v.student = kit_strdup("ana");
    v.lab = kit_strdup("01-hello");
    v.started_ms = 2000;
    /* Inserted in an order that is not alphabetical, to see that the
     * store keeps check order rather than sorting by id. */
    verdict_add(&v, "zeta", "Connects", 1, 0, 2, 2, "connected in 3 ms");
    verdict_add(&v, "alpha", "Publishes", 0, 0, 0.5, 3, "QoS 0 seen, QoS 1 expected");
    verdict_add(&v, "mid", "Retains", 0, 1, 0, 1, "skipped: 'alpha' failed");
    verdict_total(&v);
    CU_ASSERT(store_record(st, &v, NULL, err) == KIT_OK);
    verdict_clear(&v);
    record("ana", "01-hello", 3000, 1, 10, "worse");   /* later but lower */

    CU_ASSERT(store_best_checks(st, "ana", "01-hello", collect, &seen, err) == KIT_OK);
    CU_ASSERT_FATAL(seen.n == 3);
    CU_ASSERT_STRING_EQUAL(seen.id[0], "zeta");
    CU_ASSERT_STRING_EQUAL(seen.id[1], "alpha");
    CU_ASSERT_STRING_EQUAL(seen.id[2], "mid");
    CU_ASSERT_STRING_EQUAL(seen.title[1], "Publishes");
    CU_ASSERT_STRING_EQUAL(seen.msg[1], "QoS 0 seen, QoS 1 expected");
    CU_ASSERT(seen.passed[0] == 1 && seen.passed[1] == 0 && seen.passed[2] == 0);
    CU_ASSERT(seen.skipped[0] == 0 && seen.skipped[2] == 1);
    CU_ASSERT_DOUBLE_EQUAL(seen.points[1], 0.5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(seen.max_points[1], 3, 1e-9);

    /* Ties on score go to the latest attempt. */
    record("bob", "01-hello", 1000, 4, 10, "early");
    record("bob", "01-hello", 3000, 4, 10, "late");
    record("bob", "01-hello", 2000, 4, 10, "middle");
    memset(&seen, 0, sizeof seen);
    CU_ASSERT(store_best_checks(st, "bob", "01-hello", collect, &seen, err) == KIT_OK);
    CU_ASSERT_FATAL(seen.n == 2);
    CU_ASSERT_STRING_EQUAL(seen.msg[0], "late:0");
    CU_ASSERT_STRING_EQUAL(seen.msg[1], "late:1");

    /* A best attempt whose grading could not run has no checks: found,
     * but no callback. */
    verdict_t e = { 0 };
    e.student = kit_strdup("carl");
    e.lab = kit_strdup("01-hello");
    e.error = kit_strdup("lab file has a syntax error");
    e.started_ms = 1000;
    CU_ASSERT(store_record(st, &e, NULL, err) == KIT_OK);
    verdict_clear(&e);
    memset(&seen, 0, sizeof seen);
    CU_ASSERT(store_best_checks(st, "carl", "01-hello", collect, &seen, err) == KIT_OK);
    CU_ASSERT(seen.n == 0);
}

static void TEST_hints_progress_and_cap(void)
{
    open_store();
    int idx = -1;
    int want[] = { 0, 1, 2, 3, 3 };
    for (int i = 0; i < 5; i++) {
        idx = -1;
        CU_ASSERT(store_use_hint(st, "ana", "01-hello", 3, &idx, err) == KIT_OK);
        CU_ASSERT(idx == want[i]);
    }
    store_summary_t sum;
    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.hints_used == 3);   /* asking past the last records nothing */
    CU_ASSERT(sum.attempts == 0);

    /* Per lab and per student. */
    CU_ASSERT(store_use_hint(st, "ana", "02-qos", 3, &idx, err) == KIT_OK);
    CU_ASSERT(idx == 0);
    CU_ASSERT(store_use_hint(st, "bob", "01-hello", 3, &idx, err) == KIT_OK);
    CU_ASSERT(idx == 0);

    /* A single hint, then no more. */
    CU_ASSERT(store_use_hint(st, "dan", "01-hello", 1, &idx, err) == KIT_OK);
    CU_ASSERT(idx == 0);
    CU_ASSERT(store_use_hint(st, "dan", "01-hello", 1, &idx, err) == KIT_OK);
    CU_ASSERT(idx == 1);
    CU_ASSERT(raw_int("SELECT count(*) FROM hints WHERE student = 'dan'") == 1);

    /* A lab without hints is a caller error, and records nothing. */
    CU_ASSERT(store_use_hint(st, "eve", "01-hello", 0, &idx, err) == KIT_EINVAL);
    CU_ASSERT(raw_int("SELECT count(*) FROM hints WHERE student = 'eve'") == 0);
}

static void TEST_reset_one_lab_and_all(void)
{
    open_store();
    record("ana", "01-hello", 1000, 5, 10, "a");
    record("ana", "01-hello", 2000, 6, 10, "b");
    record("ana", "02-qos", 3000, 7, 10, "c");
    record("bob", "01-hello", 4000, 8, 10, "d");
    int idx;
    CU_ASSERT(store_use_hint(st, "ana", "01-hello", 3, &idx, err) == KIT_OK);
    CU_ASSERT(store_use_hint(st, "ana", "02-qos", 3, &idx, err) == KIT_OK);
    CU_ASSERT(store_use_hint(st, "bob", "01-hello", 3, &idx, err) == KIT_OK);
    CU_ASSERT(raw_int("SELECT count(*) FROM check_results") == 8);

    int removed = -1;
    CU_ASSERT(store_reset(st, "ana", "01-hello", &removed, err) == KIT_OK);
    CU_ASSERT(removed == 2);
    store_summary_t sum;
    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 0 && sum.hints_used == 0);
    CU_ASSERT(store_summary(st, "ana", "02-qos", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 1 && sum.hints_used == 1);
    CU_ASSERT(raw_int("SELECT count(*) FROM check_results") == 4);
    /* The hint sequence starts over after a reset. */
    CU_ASSERT(store_use_hint(st, "ana", "01-hello", 3, &idx, err) == KIT_OK);
    CU_ASSERT(idx == 0);

    removed = -1;
    CU_ASSERT(store_reset(st, "ana", NULL, &removed, err) == KIT_OK);
    CU_ASSERT(removed == 1);
    CU_ASSERT(store_summary(st, "ana", "02-qos", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 0 && sum.hints_used == 0);
    CU_ASSERT(raw_int("SELECT count(*) FROM hints WHERE student = 'ana'") == 0);

    /* Other students are untouched. */
    CU_ASSERT(store_summary(st, "bob", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 1 && sum.hints_used == 1);
    CU_ASSERT(raw_int("SELECT count(*) FROM check_results") == 2);

    /* Nothing to remove is not an error. */
    CU_ASSERT(store_reset(st, "ana", NULL, &removed, err) == KIT_OK);
    CU_ASSERT(removed == 0);
}

static void TEST_newer_schema_refused(void)
{
    open_store();
    store_close(st);
    st = NULL;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", store_schema_version() + 1);
    CU_ASSERT_FATAL(raw_exec(sql) == SQLITE_OK);

    static int sentinel;
    store_t *s = (store_t *)&sentinel;   /* must be reset to NULL on failure */
    err[0] = '\0';
    CU_ASSERT(store_open(&s, path, err) != KIT_OK);
    CU_ASSERT(s == NULL);
    CU_ASSERT(strstr(err, "made by a newer mqlab") != NULL);
    CU_ASSERT(strstr(err, path) != NULL);
    /* Refused without touching it. */
    CU_ASSERT(raw_int("PRAGMA user_version") == store_schema_version() + 1);
}

static void TEST_not_sqlite_file(void)
{
    CU_ASSERT_FATAL(dir[0] != '\0');
    snprintf(path, sizeof path, "%s/notes.db", dir);
    static const char text[] = "these are my lab notes, not a database\n"
                               "they are long enough to look like a header.......\n"
                               "and more text so the file is over one hundred bytes\n";
    CU_ASSERT_FATAL(kit_write_file_atomic(path, text, sizeof text - 1, 0600, NULL) == KIT_OK);

    store_t *s = NULL;
    err[0] = '\0';
    CU_ASSERT(store_open(&s, path, err) != KIT_OK);
    CU_ASSERT(s == NULL);
    CU_ASSERT(strstr(err, path) != NULL);
    CU_ASSERT(strstr(err, "not an SQLite database") != NULL);
    /* The file is left as it was. */
    size_t len = 0;
    char *back = kit_read_file(path, &len, NULL);
    CU_ASSERT(back && len == sizeof text - 1 && memcmp(back, text, len) == 0);
    free(back);
}

/* A failure on the second check must leave nothing behind: no attempt, no
 * first check, and not even the new student. The failure is forced by a
 * trigger put in the file from outside, as a disk-full would, mid-way. */
static void TEST_record_is_atomic(void)
{
    open_store();
    CU_ASSERT_FATAL(raw_exec("CREATE TRIGGER boom BEFORE INSERT ON check_results"
                             " WHEN NEW.check_id = 'c1'"
                             " BEGIN SELECT RAISE(ABORT, 'forced failure'); END") == SQLITE_OK);
    verdict_t v;
    double p[3] = { 1, 1, 1 }, m[3] = { 1, 1, 1 };
    make_verdict(&v, "ana", "01-hello", 1000, 3, p, m, "x");
    int64_t id = -7;
    err[0] = '\0';
    CU_ASSERT(store_record(st, &v, &id, err) == KIT_ERR);
    CU_ASSERT(id == -7);
    CU_ASSERT(strstr(err, "forced failure") != NULL);

    store_summary_t sum;
    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 0);
    CU_ASSERT(raw_int("SELECT count(*) FROM attempts") == 0);
    CU_ASSERT(raw_int("SELECT count(*) FROM check_results") == 0);
    CU_ASSERT(raw_int("SELECT count(*) FROM students") == 0);

    /* The connection is not left inside a transaction: it still works. */
    CU_ASSERT_FATAL(raw_exec("DROP TRIGGER boom") == SQLITE_OK);
    CU_ASSERT(store_record(st, &v, &id, err) == KIT_OK);
    CU_ASSERT(raw_int("SELECT count(*) FROM check_results") == 3);
    verdict_clear(&v);
}

/* Same, through the schema's own constraint: a check without an id. */
static void TEST_record_null_check_id_rolls_back(void)
{
    open_store();
    verdict_t v;
    double p[2] = { 1, 1 }, m[2] = { 1, 1 };
    make_verdict(&v, "ana", "01-hello", 1000, 2, p, m, "x");
    free(v.checks[1].id);
    v.checks[1].id = NULL;
    err[0] = '\0';
    CU_ASSERT(store_record(st, &v, NULL, err) != KIT_OK);
    CU_ASSERT(strstr(err, "NOT NULL") != NULL);
    /* Asked on the same connection, which would see an open transaction. */
    store_summary_t sum;
    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT(sum.attempts == 0);
    CU_ASSERT(raw_int("SELECT count(*) FROM attempts") == 0);
    CU_ASSERT(raw_int("SELECT count(*) FROM check_results") == 0);
    verdict_clear(&v);

    /* Missing student or lab is refused before touching the database. */
    verdict_t w = { 0 };
    w.lab = kit_strdup("01-hello");
    CU_ASSERT(store_record(st, &w, NULL, err) == KIT_EINVAL);
    verdict_clear(&w);
}

static void TEST_wal_mode(void)
{
    open_store();
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    char mode[16] = "";
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    CU_ASSERT_STRING_EQUAL(mode, "wal");
}

/* Two gradebooks, one attempt in both: merged, every table, that attempt
 * once, its checks under the new id; a hint in both counts once. */
static void TEST_merge(void)
{
    char a[600], b[600], out[600], bad[600];
    snprintf(a, sizeof a, "%s/a.db", dir);
    snprintf(b, sizeof b, "%s/b.db", dir);
    snprintf(out, sizeof out, "%s/out/merged.db", dir);
    snprintf(bad, sizeof bad, "%s/bad.db", dir);
    snprintf(path, sizeof path, "%s", a);
    open_store();
    record("ana", "01-hello", 1000, 10, 10, "a");
    record("ana", "01-hello", 2000, 4, 10, "a");
    int idx = -1;
    CU_ASSERT(store_use_hint(st, "ana", "01-hello", 3, &idx, err) == KIT_OK);
    CU_ASSERT(store_guide_step(st, "ana", "01-hello", "sub", err) == KIT_OK);
    store_close(st);
    st = NULL;
    snprintf(path, sizeof path, "%s", b);
    open_store();
    record("ben", "01-hello", 1500, 6, 10, "b");
    record("ana", "01-hello", 2000, 4, 10, "a");   /* the same attempt as in a */
    CU_ASSERT(store_use_hint(st, "ana", "01-hello", 3, &idx, err) == KIT_OK);
    store_close(st);
    st = NULL;

    const char *ins[] = { a, b };
    store_merge_stats_t ms;
    int rc = store_merge(out, ins, 2, &ms, err);
    if (rc != KIT_OK) fprintf(stderr, "store_merge: %s\n", err);
    CU_ASSERT_FATAL(rc == KIT_OK);
    CU_ASSERT_EQUAL(ms.attempts, 3);
    CU_ASSERT_EQUAL(ms.duplicates, 1);
    CU_ASSERT_EQUAL(ms.students, 2);
    snprintf(path, sizeof path, "%s", out);
    CU_ASSERT_EQUAL(raw_int("SELECT count(*) FROM check_results"), 6);
    CU_ASSERT_EQUAL(raw_int("SELECT count(*) FROM check_results c JOIN attempts a ON a.id = c.attempt_id"
                            " WHERE a.student = 'ben' AND c.message LIKE 'b:%'"), 2);
    CU_ASSERT_EQUAL(raw_int("SELECT count(*) FROM hints"), 1);
    CU_ASSERT_EQUAL(raw_int("SELECT count(*) FROM guide_steps"), 1);
    open_store();
    store_summary_t sum;
    CU_ASSERT(store_summary(st, "ana", "01-hello", &sum, err) == KIT_OK);
    CU_ASSERT_EQUAL(sum.attempts, 2);
    CU_ASSERT_DOUBLE_EQUAL(sum.best_score, 10, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(sum.last_score, 4, 1e-9);
    CU_ASSERT_EQUAL(sum.hints_used, 1);
    store_close(st);
    st = NULL;

    /* Not a gradebook: refused by name, out left as it was. */
    FILE *f = fopen(bad, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("hello\n", f);
    fclose(f);
    const char *ins2[] = { a, bad };
    CU_ASSERT(store_merge(out, ins2, 2, &ms, err) == KIT_EINVAL);
    CU_ASSERT(strstr(err, bad) != NULL);
    CU_ASSERT_EQUAL(raw_int("SELECT count(*) FROM attempts"), 3);
    /* Its own output as an input. */
    const char *ins3[] = { a, out };
    CU_ASSERT(store_merge(out, ins3, 2, &ms, err) == KIT_EINVAL);
}

int init_store_tests(void)
{
    CU_pSuite suite = CU_add_suite_with_setup_and_teardown("store", NULL, NULL, setup, teardown);
    if (!suite) return 1;
    if (!CU_add_test(suite, "open creates schema", TEST_open_creates_schema)
        || !CU_add_test(suite, "reopen is idempotent", TEST_reopen_is_idempotent)
        || !CU_add_test(suite, "record and summary", TEST_record_and_summary)
        || !CU_add_test(suite, "best checks round trip", TEST_best_checks_round_trip)
        || !CU_add_test(suite, "hints progress and cap", TEST_hints_progress_and_cap)
        || !CU_add_test(suite, "reset one lab and all", TEST_reset_one_lab_and_all)
        || !CU_add_test(suite, "newer schema refused", TEST_newer_schema_refused)
        || !CU_add_test(suite, "not an SQLite file", TEST_not_sqlite_file)
        || !CU_add_test(suite, "record is atomic", TEST_record_is_atomic)
        || !CU_add_test(suite, "null check id rolls back", TEST_record_null_check_id_rolls_back)
        || !CU_add_test(suite, "WAL mode", TEST_wal_mode)
        || !CU_add_test(suite, "each: latest and best, missing and hash", TEST_each_latest_and_best)
        || !CU_add_test(suite, "merge: every table, an attempt in two inputs once, bad input refused", TEST_merge))
        return 1;
    return 0;
}
