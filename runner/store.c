/*
 * store.c - progress in SQLite: students, attempts, check results, hints.
 *
 * The database runs in WAL mode so a student's `mqlab progress` can read
 * while `mqlab watch` writes, and an instructor's parallel grading does not
 * block readers. Every change that spans rows runs in one BEGIN IMMEDIATE
 * transaction: an attempt is stored whole or not at all. The schema grows
 * by numbered migration steps recorded in PRAGMA user_version.
 *
 * Every value from the outside is bound to a prepared statement; SQL text
 * is never built from data.
 */
#include "store.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct store {
    sqlite3 *db;
    char *path;
};

/*
 * Migration steps, in order: step i brings the schema from version i to
 * i+1. Never edit a step that has shipped; append a new one instead, since
 * existing databases have already run the old text.
 */
static const char *const migrations[] = {
    /* 1: the initial schema */
    "CREATE TABLE students ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  created_ms INTEGER NOT NULL"
    ");"
    "CREATE TABLE attempts ("
    "  id INTEGER PRIMARY KEY,"
    "  student TEXT NOT NULL REFERENCES students(id),"
    "  lab TEXT NOT NULL,"
    "  submission TEXT,"
    "  started_ms INTEGER NOT NULL,"
    "  duration_s REAL NOT NULL DEFAULT 0,"
    "  score REAL NOT NULL,"
    "  max_score REAL NOT NULL,"
    "  error TEXT"
    ");"
    "CREATE INDEX attempts_student_lab ON attempts(student, lab);"
    "CREATE TABLE check_results ("
    "  attempt_id INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  check_id TEXT NOT NULL,"
    "  title TEXT,"
    "  passed INTEGER NOT NULL,"
    "  skipped INTEGER NOT NULL,"
    "  points REAL NOT NULL,"
    "  max_points REAL NOT NULL,"
    "  message TEXT,"
    "  PRIMARY KEY (attempt_id, seq)"
    ");"
    "CREATE TABLE hints ("
    "  student TEXT NOT NULL,"
    "  lab TEXT NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  used_ms INTEGER NOT NULL"
    ");"
    "CREATE INDEX hints_student_lab ON hints(student, lab);",
    /* 2: a grading that did not finish (its worker was stopped) has no
     * score; its row says so instead of passing for a 0 */
    "ALTER TABLE attempts ADD COLUMN incomplete INTEGER NOT NULL DEFAULT 0;",
    /* 3: class grading. A submission that was not handed in is its own
     * outcome (what was found instead); the hash of the files graded
     * lets a resumed run skip what has not changed; exports pick one
     * attempt per student and lab */
    "ALTER TABLE attempts ADD COLUMN missing TEXT;"
    "ALTER TABLE attempts ADD COLUMN content_hash TEXT;"
    "CREATE INDEX attempts_lab_student ON attempts(lab, student);",
    /* 4: guided mode (mqlab start): the steps a student has met, once
     * each, whenever they were met */
    "CREATE TABLE guide_steps ("
    "  student TEXT NOT NULL,"
    "  lab TEXT NOT NULL,"
    "  step TEXT NOT NULL,"
    "  done_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (student, lab, step)"
    ");",
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int store_schema_version(void)
{
    return NMIGRATIONS;
}

static int dberr(store_t *s, char *err, const char *what)
{
    return kit_seterr(err, KIT_ERR, "progress database %s: %s: %s",
                      s->path, what, sqlite3_errmsg(s->db));
}

static int exec(store_t *s, const char *sql, char *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK) return KIT_OK;
    kit_seterr(err, KIT_ERR, "progress database %s: %s", s->path,
               msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return KIT_ERR;
}

/* ROLLBACK after a failure: err already holds the cause, so a failure of
 * the rollback itself (nothing open) must not overwrite it. */
static void rollback(store_t *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int prepare(store_t *s, sqlite3_stmt **st, const char *sql, char *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return dberr(s, err, "prepare");
    }
    return KIT_OK;
}

/* Run a statement that returns no rows (or whose rows are not wanted). */
static int step_done(store_t *s, sqlite3_stmt *st, char *err)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE) return dberr(s, err, "write");
    return KIT_OK;
}

/* The first column of a one-row integer query; -1 on error. */
static int query_int(store_t *s, const char *sql, int *out, char *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, sql, err) != KIT_OK) return KIT_ERR;
    int rc = sqlite3_step(st);
    int ret = KIT_OK;
    if (rc == SQLITE_ROW) *out = sqlite3_column_int(st, 0);
    else ret = dberr(s, err, "read");
    sqlite3_finalize(st);
    return ret;
}

int store_db_version(store_t *s)
{
    int v = -1;
    if (!s || !s->db) return -1;
    if (query_int(s, "PRAGMA user_version", &v, NULL) != KIT_OK) return -1;
    return v;
}

/* Apply step `to-1`. The version is read again inside the write lock, as
 * another mqlab may have migrated the same file since we last looked. */
static int migrate_one(store_t *s, int to, char *err)
{
    char sql[64];
    int v = 0;
    if (exec(s, "BEGIN IMMEDIATE", err) != KIT_OK) return KIT_ERR;
    if (query_int(s, "PRAGMA user_version", &v, err) != KIT_OK) goto fail;
    if (v >= to) return exec(s, "COMMIT", err);
    if (exec(s, migrations[to - 1], err) != KIT_OK) goto fail;
    /* PRAGMA takes no bound parameters; `to` is our own constant. */
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", to);
    if (exec(s, sql, err) != KIT_OK) goto fail;
    if (exec(s, "COMMIT", err) != KIT_OK) goto fail;
    return KIT_OK;
fail:
    rollback(s);
    return KIT_ERR;
}

/* Make the folder that will hold path (nothing to do for a bare name). */
static int make_parent(const char *path, char *err)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return KIT_OK;
    char *dir = kit_strdup(path);
    dir[slash - path] = '\0';
    int rc = kit_mkdir_p(dir, 0700, err);
    free(dir);
    return rc;
}

int store_open(store_t **out, const char *path, char *err)
{
    if (!out) return kit_seterr(err, KIT_EINVAL, "store_open: no output handle");
    *out = NULL;
    if (!path || !*path)
        return kit_seterr(err, KIT_EINVAL, "store_open: no database path");
    if (strcmp(path, ":memory:") != 0 && make_parent(path, err) != KIT_OK)
        return KIT_ERR;

    store_t *s = kit_xmalloc(sizeof *s);
    s->db = NULL;
    s->path = kit_strdup(path);
    sqlite3_stmt *st = NULL;
    int ret = KIT_ERR, v = 0;

    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        kit_seterr(err, KIT_ERR, "cannot open progress database %s: %s", path,
                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto cleanup;
    }
    sqlite3_extended_result_codes(s->db, 1);
    if (exec(s, "PRAGMA busy_timeout = 5000", err) != KIT_OK) goto cleanup;

    /* The first read of the file: this is where a file that is not a
     * database shows up, so name it plainly rather than "file is not a
     * database" with no path. */
    if (prepare(s, &st, "PRAGMA user_version", err) != KIT_OK) goto cleanup;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
        kit_seterr(err, KIT_ERR, "%s is not an SQLite database (%s); move it away "
                   "or choose another progress file", path, sqlite3_errstr(rc));
        goto cleanup;
    }
    if (rc != SQLITE_ROW) {
        kit_seterr(err, KIT_ERR, "cannot read progress database %s: %s", path,
                   sqlite3_errmsg(s->db));
        goto cleanup;
    }
    if (v > NMIGRATIONS) {
        kit_seterr(err, KIT_ERR, "progress database %s was made by a newer mqlab "
                   "(schema version %d, this mqlab knows up to %d): upgrade mqlab",
                   path, v, NMIGRATIONS);
        goto cleanup;
    }

    /* Foreign keys are off by default in SQLite and the setting is per
     * connection; without it ON DELETE CASCADE would silently not run. */
    if (exec(s, "PRAGMA foreign_keys = ON", err) != KIT_OK) goto cleanup;
    if (exec(s, "PRAGMA journal_mode = WAL", err) != KIT_OK) goto cleanup;

    for (int to = v + 1; to <= NMIGRATIONS; to++)
        if (migrate_one(s, to, err) != KIT_OK) goto cleanup;

    *out = s;
    s = NULL;
    ret = KIT_OK;
cleanup:
    store_close(s);
    return ret;
}

void store_close(store_t *s)
{
    if (!s) return;
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

/* sqlite3_bind_text with NULL binds SQL NULL, which NOT NULL columns refuse:
 * that is wanted, a check without an id is a bug upstream. */
static int bind_text(sqlite3_stmt *st, int i, const char *text)
{
    return sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

static int ensure_student(store_t *s, const char *student, char *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "INSERT OR IGNORE INTO students(id, created_ms) VALUES (?1, ?2)",
                err) != KIT_OK)
        return KIT_ERR;
    bind_text(st, 1, student);
    sqlite3_bind_int64(st, 2, kit_wall_ms());
    int ret = step_done(s, st, err);
    sqlite3_finalize(st);
    return ret;
}

int store_record(store_t *s, const verdict_t *v, int64_t *attempt_id, char *err)
{
    if (!s || !v) return kit_seterr(err, KIT_EINVAL, "store_record: no store or verdict");
    if (!v->student || !*v->student)
        return kit_seterr(err, KIT_EINVAL, "store_record: the verdict has no student");
    if (!v->lab || !*v->lab)
        return kit_seterr(err, KIT_EINVAL, "store_record: the verdict has no lab");
    if (v->nchecks < 0 || (v->nchecks > 0 && !v->checks))
        return kit_seterr(err, KIT_EINVAL, "store_record: malformed check list");

    sqlite3_stmt *att = NULL, *chk = NULL;
    int ret = KIT_ERR;
    if (exec(s, "BEGIN IMMEDIATE", err) != KIT_OK) return KIT_ERR;
    if (ensure_student(s, v->student, err) != KIT_OK) goto cleanup;

    if (prepare(s, &att,
                "INSERT INTO attempts(student, lab, submission, started_ms, duration_s,"
                " score, max_score, error, incomplete, missing, content_hash)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                err) != KIT_OK)
        goto cleanup;
    bind_text(att, 1, v->student);
    bind_text(att, 2, v->lab);
    bind_text(att, 3, v->submission);
    sqlite3_bind_int64(att, 4, v->started_ms);
    sqlite3_bind_double(att, 5, v->duration_s);
    sqlite3_bind_double(att, 6, v->score);
    sqlite3_bind_double(att, 7, v->max_score);
    bind_text(att, 8, v->error);
    sqlite3_bind_int(att, 9, v->incomplete ? 1 : 0);
    bind_text(att, 10, v->missing);
    bind_text(att, 11, v->hash);
    if (step_done(s, att, err) != KIT_OK) goto cleanup;
    int64_t id = sqlite3_last_insert_rowid(s->db);

    if (prepare(s, &chk,
                "INSERT INTO check_results(attempt_id, seq, check_id, title, passed,"
                " skipped, points, max_points, message)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                err) != KIT_OK)
        goto cleanup;
    for (int i = 0; i < v->nchecks; i++) {
        const check_result_t *c = &v->checks[i];
        sqlite3_reset(chk);
        sqlite3_bind_int64(chk, 1, id);
        sqlite3_bind_int(chk, 2, i);
        bind_text(chk, 3, c->id);
        bind_text(chk, 4, c->title);
        sqlite3_bind_int(chk, 5, c->passed ? 1 : 0);
        sqlite3_bind_int(chk, 6, c->skipped ? 1 : 0);
        sqlite3_bind_double(chk, 7, c->points);
        sqlite3_bind_double(chk, 8, c->max_points);
        bind_text(chk, 9, c->message);
        if (step_done(s, chk, err) != KIT_OK) goto cleanup;
    }
    if (exec(s, "COMMIT", err) != KIT_OK) goto cleanup;
    if (attempt_id) *attempt_id = id;
    ret = KIT_OK;
cleanup:
    sqlite3_finalize(att);
    sqlite3_finalize(chk);
    if (ret != KIT_OK) rollback(s);
    return ret;
}

/* Best = highest score, a finished grading before one that did not
 * finish, ties broken by the latest; "latest" is by start time, then by
 * insertion order for attempts started the same ms. */
#define BEST_ORDER " ORDER BY score DESC, incomplete ASC, started_ms DESC, id DESC LIMIT 1"
#define LAST_ORDER " ORDER BY started_ms DESC, id DESC LIMIT 1"

int store_summary(store_t *s, const char *student, const char *lab,
                  store_summary_t *out, char *err)
{
    if (!out) return kit_seterr(err, KIT_EINVAL, "store_summary: no output");
    memset(out, 0, sizeof *out);
    if (!s || !student || !lab)
        return kit_seterr(err, KIT_EINVAL, "store_summary: missing store, student or lab");

    /* One statement, so the figures come from one snapshot even while
     * another process records an attempt. */
    static const char sql[] =
        "SELECT"
        " (SELECT count(*) FROM attempts WHERE student = ?1 AND lab = ?2),"
        " (SELECT score FROM attempts WHERE student = ?1 AND lab = ?2" BEST_ORDER "),"
        " (SELECT max_score FROM attempts WHERE student = ?1 AND lab = ?2" BEST_ORDER "),"
        " (SELECT score FROM attempts WHERE student = ?1 AND lab = ?2" LAST_ORDER "),"
        " (SELECT started_ms FROM attempts WHERE student = ?1 AND lab = ?2" LAST_ORDER "),"
        " (SELECT count(*) FROM hints WHERE student = ?1 AND lab = ?2),"
        " EXISTS (SELECT 1 FROM attempts WHERE student = ?1 AND lab = ?2"
        "         AND max_score > 0 AND score >= max_score)";
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, sql, err) != KIT_OK) return KIT_ERR;
    bind_text(st, 1, student);
    bind_text(st, 2, lab);
    int ret = KIT_OK;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->attempts = sqlite3_column_int(st, 0);
        out->best_score = sqlite3_column_double(st, 1);  /* NULL reads as 0 */
        out->max_score = sqlite3_column_double(st, 2);
        out->last_score = sqlite3_column_double(st, 3);
        out->last_ms = sqlite3_column_int64(st, 4);
        out->hints_used = sqlite3_column_int(st, 5);
        out->passed = sqlite3_column_int(st, 6);
    } else {
        ret = dberr(s, err, "summary");
    }
    sqlite3_finalize(st);
    return ret;
}

int store_use_hint(store_t *s, const char *student, const char *lab,
                   int nhints, int *index, char *err)
{
    if (!s || !student || !*student || !lab || !*lab)
        return kit_seterr(err, KIT_EINVAL, "store_use_hint: missing store, student or lab");
    if (nhints <= 0)
        return kit_seterr(err, KIT_EINVAL, "lab %s has no hints", lab);

    sqlite3_stmt *cnt = NULL, *ins = NULL;
    int ret = KIT_ERR, used = 0;
    /* IMMEDIATE: two `mqlab hint` at once must not both read the same count. */
    if (exec(s, "BEGIN IMMEDIATE", err) != KIT_OK) return KIT_ERR;
    if (ensure_student(s, student, err) != KIT_OK) goto cleanup;
    if (prepare(s, &cnt, "SELECT count(*) FROM hints WHERE student = ?1 AND lab = ?2",
                err) != KIT_OK)
        goto cleanup;
    bind_text(cnt, 1, student);
    bind_text(cnt, 2, lab);
    if (sqlite3_step(cnt) != SQLITE_ROW) {
        dberr(s, err, "read hints");
        goto cleanup;
    }
    used = sqlite3_column_int(cnt, 0);
    if (used >= nhints) {
        /* Every hint was shown already: nothing new to record. */
        if (exec(s, "COMMIT", err) != KIT_OK) goto cleanup;
        if (index) *index = nhints;
        ret = KIT_OK;
        goto cleanup;
    }
    int idx = used;

    if (prepare(s, &ins, "INSERT INTO hints(student, lab, idx, used_ms) VALUES (?1, ?2, ?3, ?4)",
                err) != KIT_OK)
        goto cleanup;
    bind_text(ins, 1, student);
    bind_text(ins, 2, lab);
    sqlite3_bind_int(ins, 3, idx);
    sqlite3_bind_int64(ins, 4, kit_wall_ms());
    if (step_done(s, ins, err) != KIT_OK) goto cleanup;
    if (exec(s, "COMMIT", err) != KIT_OK) goto cleanup;
    if (index) *index = idx;
    ret = KIT_OK;
cleanup:
    sqlite3_finalize(cnt);
    sqlite3_finalize(ins);
    if (ret != KIT_OK) rollback(s);
    return ret;
}

int store_reset(store_t *s, const char *student, const char *lab,
                int *removed, char *err)
{
    if (removed) *removed = 0;
    if (!s || !student || !*student)
        return kit_seterr(err, KIT_EINVAL, "store_reset: missing store or student");

    /* ?2 IS NULL selects every lab. Check results are deleted explicitly
     * rather than trusting ON DELETE CASCADE alone, in case the file is
     * later edited by a tool that leaves foreign keys off. */
    static const char *const sql[] = {
        "DELETE FROM check_results WHERE attempt_id IN (SELECT id FROM attempts"
        " WHERE student = ?1 AND (?2 IS NULL OR lab = ?2))",
        "DELETE FROM attempts WHERE student = ?1 AND (?2 IS NULL OR lab = ?2)",
        "DELETE FROM hints WHERE student = ?1 AND (?2 IS NULL OR lab = ?2)",
        "DELETE FROM guide_steps WHERE student = ?1 AND (?2 IS NULL OR lab = ?2)",
    };
    sqlite3_stmt *st = NULL;
    int ret = KIT_ERR, nattempts = 0;
    if (exec(s, "BEGIN IMMEDIATE", err) != KIT_OK) return KIT_ERR;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        if (prepare(s, &st, sql[i], err) != KIT_OK) goto cleanup;
        bind_text(st, 1, student);
        bind_text(st, 2, lab);
        if (step_done(s, st, err) != KIT_OK) goto cleanup;
        if (i == 1) nattempts = sqlite3_changes(s->db);
        sqlite3_finalize(st);
        st = NULL;
    }
    if (exec(s, "COMMIT", err) != KIT_OK) goto cleanup;
    if (removed) *removed = nattempts;
    ret = KIT_OK;
cleanup:
    sqlite3_finalize(st);
    if (ret != KIT_OK) rollback(s);
    return ret;
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return (char *)(t ? (const char *)t : "");
}

int store_best_checks(store_t *s, const char *student, const char *lab,
                      void (*fn)(void *ud, const check_result_t *c), void *ud,
                      char *err)
{
    if (!s || !student || !lab || !fn)
        return kit_seterr(err, KIT_EINVAL, "store_best_checks: missing argument");

    /* One statement for one snapshot. The LEFT JOIN yields a row with a
     * NULL seq for a best attempt without checks (grading could not run),
     * and no row at all when there is no attempt. */
    static const char sql[] =
        "SELECT c.seq, c.check_id, c.title, c.passed, c.skipped, c.points,"
        "       c.max_points, c.message"
        " FROM (SELECT id FROM attempts WHERE student = ?1 AND lab = ?2" BEST_ORDER ") a"
        " LEFT JOIN check_results c ON c.attempt_id = a.id"
        " ORDER BY c.seq";
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, sql, err) != KIT_OK) return KIT_ERR;
    bind_text(st, 1, student);
    bind_text(st, 2, lab);
    int rc, rows = 0, ret = KIT_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        if (sqlite3_column_type(st, 0) == SQLITE_NULL) continue;
        /* The strings point into sqlite's row: valid during the call only. */
        check_result_t c = {
            .id = col_text(st, 1),
            .title = col_text(st, 2),
            .passed = sqlite3_column_int(st, 3),
            .skipped = sqlite3_column_int(st, 4),
            .points = sqlite3_column_double(st, 5),
            .max_points = sqlite3_column_double(st, 6),
            .message = col_text(st, 7),
        };
        fn(ud, &c);
    }
    if (rc != SQLITE_DONE)
        ret = dberr(s, err, "read check results");
    else if (rows == 0)
        ret = kit_seterr(err, KIT_ENOENT, "no attempt of %s on lab %s yet", student, lab);
    sqlite3_finalize(st);
    return ret;
}

/* ------------------------------------------------------------ whole attempts */

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? kit_strdup((const char *)t) : NULL;
}

/* Attempt `id` into v (cleared first). */
static int load_attempt(store_t *s, int64_t id, verdict_t *v, char *err)
{
    static const char asql[] =
        "SELECT student, lab, submission, started_ms, duration_s, score, max_score,"
        " error, incomplete, missing, content_hash FROM attempts WHERE id = ?1";
    static const char csql[] =
        "SELECT check_id, title, passed, skipped, points, max_points, message"
        " FROM check_results WHERE attempt_id = ?1 ORDER BY seq";
    sqlite3_stmt *st = NULL;
    verdict_clear(v);
    if (prepare(s, &st, asql, err) != KIT_OK) return KIT_ERR;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? kit_seterr(err, KIT_ENOENT, "no attempt %lld", (long long)id)
                                 : dberr(s, err, "read attempt");
    }
    v->student = col_dup(st, 0);
    v->lab = col_dup(st, 1);
    v->submission = col_dup(st, 2);
    v->started_ms = sqlite3_column_int64(st, 3);
    v->duration_s = sqlite3_column_double(st, 4);
    v->score = sqlite3_column_double(st, 5);
    v->max_score = sqlite3_column_double(st, 6);
    v->error = col_dup(st, 7);
    v->incomplete = sqlite3_column_int(st, 8);
    v->missing = col_dup(st, 9);
    v->hash = col_dup(st, 10);
    sqlite3_finalize(st);
    if (prepare(s, &st, csql, err) != KIT_OK) return KIT_ERR;
    sqlite3_bind_int64(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        verdict_add(v, col_text(st, 0), col_text(st, 1), sqlite3_column_int(st, 2),
                    sqlite3_column_int(st, 3), sqlite3_column_double(st, 4),
                    sqlite3_column_double(st, 5), col_text(st, 6));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return dberr(s, err, "read check results");
    return KIT_OK;
}

int store_latest(store_t *s, const char *student, const char *lab, verdict_t *v, char *err)
{
    if (!s || !student || !lab || !v) return kit_seterr(err, KIT_EINVAL, "store_latest: missing argument");
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "SELECT id FROM attempts WHERE student = ?1 AND lab = ?2" LAST_ORDER, err) != KIT_OK)
        return KIT_ERR;
    bind_text(st, 1, student);
    bind_text(st, 2, lab);
    int rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return kit_seterr(err, KIT_ENOENT, "no attempt of %s on lab %s yet", student, lab);
    if (rc != SQLITE_ROW) return dberr(s, err, "read attempts");
    return load_attempt(s, id, v, err);
}

int store_each(store_t *s, const char *const *labs, int nlabs, int best,
               int (*fn)(void *ud, verdict_t *v), void *ud, char *err)
{
    if (!s || !fn) return kit_seterr(err, KIT_EINVAL, "store_each: missing argument");
    /* One attempt per student and lab, chosen by the same orders as the
     * summary; the ids first, then each attempt whole. A read
     * transaction keeps them one snapshot while another mqlab writes.
     * In the inner query the orders' bare columns are b's. */
#define ONE_PER_STUDENT_LAB(order) \
        "SELECT a.id, a.lab FROM attempts a WHERE a.id = (SELECT b.id FROM attempts b" \
        " WHERE b.student = a.student AND b.lab = a.lab" order ")" \
        " ORDER BY a.student, a.lab"
    static const char latest[] = ONE_PER_STUDENT_LAB(LAST_ORDER);
    static const char bestq[] = ONE_PER_STUDENT_LAB(BEST_ORDER);
#undef ONE_PER_STUDENT_LAB
    sqlite3_stmt *st = NULL;
    int64_t *ids = NULL;
    int n = 0, cap = 0, ret = KIT_ERR, rc;
    if (exec(s, "BEGIN", err) != KIT_OK) return KIT_ERR;
    if (prepare(s, &st, best ? bestq : latest, err) != KIT_OK) goto done;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *lab = col_text(st, 1);
        int want = nlabs <= 0;
        for (int i = 0; i < nlabs && !want; i++) want = strcmp(labs[i], lab) == 0;
        if (!want) continue;
        if (n == cap) ids = kit_xrealloc(ids, sizeof *ids * (size_t)(cap = cap ? cap * 2 : 64));
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE) { dberr(s, err, "read attempts"); goto done; }
    ret = KIT_OK;
    for (int i = 0; i < n && ret == KIT_OK; i++) {
        verdict_t v = { 0 };
        ret = load_attempt(s, ids[i], &v, err);
        if (ret == KIT_OK) ret = fn(ud, &v);
        verdict_clear(&v);
    }
done:
    sqlite3_finalize(st);
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    free(ids);
    return ret;
}

int store_guide_step(store_t *s, const char *student, const char *lab, const char *step, char *err)
{
    if (!s || !student || !*student || !lab || !step)
        return kit_seterr(err, KIT_EINVAL, "store_guide_step: missing store, student, lab or step");
    sqlite3_stmt *st = NULL;
    int ret = KIT_ERR;
    if (exec(s, "BEGIN IMMEDIATE", err) != KIT_OK) return KIT_ERR;
    if (ensure_student(s, student, err) != KIT_OK) goto cleanup;
    /* A step met again keeps the time it was first met. */
    if (prepare(s, &st, "INSERT OR IGNORE INTO guide_steps(student, lab, step, done_ms) VALUES (?1, ?2, ?3, ?4)",
                err) != KIT_OK)
        goto cleanup;
    bind_text(st, 1, student);
    bind_text(st, 2, lab);
    bind_text(st, 3, step);
    sqlite3_bind_int64(st, 4, kit_wall_ms());
    if (step_done(s, st, err) != KIT_OK) goto cleanup;
    if (exec(s, "COMMIT", err) != KIT_OK) goto cleanup;
    ret = KIT_OK;
cleanup:
    sqlite3_finalize(st);
    if (ret != KIT_OK) rollback(s);
    return ret;
}

int store_guide_done(store_t *s, const char *student, const char *lab, int *n, char *err)
{
    *n = 0;
    if (!s || !student || !lab) return kit_seterr(err, KIT_EINVAL, "store_guide_done: missing store, student or lab");
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "SELECT count(*) FROM guide_steps WHERE student = ?1 AND lab = ?2", err) != KIT_OK)
        return KIT_ERR;
    bind_text(st, 1, student);
    bind_text(st, 2, lab);
    int ret = KIT_OK;
    if (sqlite3_step(st) == SQLITE_ROW) *n = sqlite3_column_int(st, 0);
    else ret = dberr(s, err, "read guide steps");
    sqlite3_finalize(st);
    return ret;
}

/* ------------------------------------------------------------ merging */

/* Is path a gradebook of this build's schema? Only read; opened
 * read-write all the same, since a read-only connection to a WAL database
 * cannot remove the -wal and -shm files it makes when it closes. */
static int check_gradebook(const char *path, char *err)
{
    if (!kit_file_exists(path) || kit_is_dir(path))
        return kit_seterr(err, KIT_EINVAL, "%s: no such gradebook file", path);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int ret = KIT_EINVAL, v = -1, tables = 0;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        kit_seterr(err, KIT_EINVAL, "%s: cannot open: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto done;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
        rc = sqlite3_extended_errcode(db);
    } else {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
        kit_seterr(err, KIT_EINVAL, "%s is not a gradebook: not an SQLite database", path);
        goto done;
    }
    if (rc != SQLITE_ROW) {
        kit_seterr(err, KIT_EINVAL, "%s: cannot read: %s", path, sqlite3_errmsg(db));
        goto done;
    }
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                               " ('students', 'attempts', 'check_results', 'hints')", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        tables = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (v < 1 || tables != 4) {
        kit_seterr(err, KIT_EINVAL, "%s is not a gradebook: an SQLite database without mqlab's tables", path);
        goto done;
    }
    if (v != NMIGRATIONS) {
        kit_seterr(err, KIT_EINVAL, "%s is a gradebook of schema version %d, and this mqlab writes version %d: %s",
                   path, v, NMIGRATIONS, v > NMIGRATIONS ? "merge it with a newer mqlab"
                   : "open it once with this mqlab (mqlab gradebook export --db FILE) to upgrade it, then merge");
        goto done;
    }
    ret = KIT_OK;
done:
    sqlite3_close(db);
    return ret;
}

/* Are a and b the same file? (out given again as an input) */
static int same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb)) return 0;
    return strcmp(ra, rb) == 0;
}

/* One input, attached as src, into s in one transaction. */
static int merge_one(store_t *s, const char *in, store_merge_stats_t *stats, char *err)
{
    static const char *const bulk[] = {
        /* The students: each once, known since the earliest. */
        "INSERT INTO main.students(id, created_ms) SELECT id, created_ms FROM src.students WHERE true"
        " ON CONFLICT(id) DO UPDATE SET created_ms = min(created_ms, excluded.created_ms)",
        "INSERT OR IGNORE INTO main.students(id, created_ms)"
        " SELECT student, min(started_ms) FROM src.attempts GROUP BY student",
        /* A hint is its index: the same hint in two inputs was used once. */
        "INSERT INTO main.hints(student, lab, idx, used_ms) SELECT h.student, h.lab, h.idx, min(h.used_ms)"
        " FROM src.hints h WHERE NOT EXISTS (SELECT 1 FROM main.hints m WHERE m.student = h.student"
        " AND m.lab = h.lab AND m.idx = h.idx) GROUP BY h.student, h.lab, h.idx",
        "INSERT INTO main.guide_steps(student, lab, step, done_ms) SELECT student, lab, step, done_ms"
        " FROM src.guide_steps WHERE true"
        " ON CONFLICT(student, lab, step) DO UPDATE SET done_ms = min(done_ms, excluded.done_ms)",
    };
    static const char cols[] = "student, lab, submission, started_ms, duration_s, score, max_score,"
                               " error, incomplete, missing, content_hash";
    sqlite3_stmt *att = NULL, *seen = NULL, *ins = NULL, *chk = NULL, *st = NULL;
    int ret = KIT_ERR, rc;
    int64_t base = 0;

    if (prepare(s, &st, "ATTACH ?1 AS src", err) != KIT_OK) return KIT_ERR;
    bind_text(st, 1, in);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE)
        return kit_seterr(err, KIT_ERR, "%s: cannot attach: %s", in, sqlite3_errmsg(s->db));
    if (exec(s, "BEGIN IMMEDIATE", err) != KIT_OK) goto detach;
    for (size_t i = 0; i < sizeof bulk / sizeof *bulk; i++)
        if (exec(s, bulk[i], err) != KIT_OK) goto cleanup;

    /* Attempts that an earlier input brought are the ones to compare with;
     * two of one input are two attempts, even alike. */
    if (prepare(s, &st, "SELECT coalesce(max(id), 0) FROM main.attempts", err) != KIT_OK) goto cleanup;
    if (sqlite3_step(st) == SQLITE_ROW) base = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;

    char *sql = kit_strdup_printf("SELECT id, %s FROM src.attempts ORDER BY id", cols);
    rc = prepare(s, &att, sql, err);
    free(sql);
    if (rc != KIT_OK) goto cleanup;
    if (prepare(s, &seen,
                "SELECT 1 FROM main.attempts WHERE id <= ?12 AND student = ?1 AND lab = ?2"
                " AND submission IS ?3 AND started_ms = ?4 AND duration_s = ?5 AND score = ?6"
                " AND max_score = ?7 AND error IS ?8 AND incomplete = ?9 AND missing IS ?10"
                " AND content_hash IS ?11 LIMIT 1", err) != KIT_OK)
        goto cleanup;
    sql = kit_strdup_printf("INSERT INTO main.attempts(%s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", cols);
    rc = prepare(s, &ins, sql, err);
    free(sql);
    if (rc != KIT_OK) goto cleanup;
    if (prepare(s, &chk,
                "INSERT INTO main.check_results(attempt_id, seq, check_id, title, passed, skipped,"
                " points, max_points, message) SELECT ?1, seq, check_id, title, passed, skipped,"
                " points, max_points, message FROM src.check_results WHERE attempt_id = ?2 ORDER BY seq",
                err) != KIT_OK)
        goto cleanup;
    while ((rc = sqlite3_step(att)) == SQLITE_ROW) {
        sqlite3_reset(seen);
        sqlite3_reset(ins);
        sqlite3_reset(chk);
        for (int k = 1; k <= 11; k++) {
            sqlite3_bind_value(seen, k, sqlite3_column_value(att, k));
            sqlite3_bind_value(ins, k, sqlite3_column_value(att, k));
        }
        sqlite3_bind_int64(seen, 12, base);
        int r = sqlite3_step(seen);
        if (r == SQLITE_ROW) {
            if (stats) stats->duplicates++;
            continue;
        }
        if (r != SQLITE_DONE) { dberr(s, err, "compare attempts"); goto cleanup; }
        if (step_done(s, ins, err) != KIT_OK) goto cleanup;
        sqlite3_bind_int64(chk, 1, sqlite3_last_insert_rowid(s->db));
        sqlite3_bind_int64(chk, 2, sqlite3_column_int64(att, 0));
        if (step_done(s, chk, err) != KIT_OK) goto cleanup;
    }
    if (rc != SQLITE_DONE) { kit_seterr(err, KIT_ERR, "%s: cannot read attempts: %s", in, sqlite3_errmsg(s->db)); goto cleanup; }
    sqlite3_finalize(att);
    sqlite3_finalize(seen);
    sqlite3_finalize(ins);
    sqlite3_finalize(chk);
    att = seen = ins = chk = NULL;
    if (exec(s, "COMMIT", err) != KIT_OK) goto cleanup;
    ret = KIT_OK;
cleanup:
    sqlite3_finalize(att);
    sqlite3_finalize(seen);
    sqlite3_finalize(ins);
    sqlite3_finalize(chk);
    if (ret != KIT_OK) rollback(s);
detach:
    sqlite3_exec(s->db, "DETACH src", NULL, NULL, NULL);
    return ret;
}

static void unlink_db(const char *path)
{
    static const char *const tails[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        char *p = kit_strdup_printf("%s%s", path, tails[i]);
        unlink(p);
        free(p);
    }
}

int store_merge(const char *out, const char *const *ins, int n, store_merge_stats_t *stats, char *err)
{
    if (stats) memset(stats, 0, sizeof *stats);
    if (!out || !*out || !ins || n < 1)
        return kit_seterr(err, KIT_EINVAL, "store_merge: no output or no inputs");
    for (int i = 0; i < n; i++) {
        if (same_file(ins[i], out))
            return kit_seterr(err, KIT_EINVAL, "%s is the output (--db) too: merge into a new file", ins[i]);
        if (check_gradebook(ins[i], err) != KIT_OK) return KIT_EINVAL;
    }
    /* A journal beside out belongs to whoever has out open: renaming a
     * new file under it would mix the two. */
    static const char *const journals[] = { "-wal", "-journal" };
    for (size_t i = 0; i < sizeof journals / sizeof *journals; i++) {
        char *j = kit_strdup_printf("%s%s", out, journals[i]);
        int there = kit_file_exists(j);
        free(j);
        if (there)
            return kit_seterr(err, KIT_EINVAL, "%s%s exists: is another mqlab writing %s? Choose another --db",
                              out, journals[i], out);
    }
    if (make_parent(out, err) != KIT_OK) return KIT_ERR;

    char *tmp = kit_strdup_printf("%s.tmp-XXXXXX", out);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        kit_seterr(err, KIT_ERR, "cannot write %s: %s", out, strerror(errno));
        free(tmp);
        return KIT_ERR;
    }
    close(fd);   /* an empty file: SQLite makes it a new database */
    store_t *s = NULL;
    int ret = store_open(&s, tmp, err);
    for (int i = 0; i < n && ret == KIT_OK; i++) ret = merge_one(s, ins[i], stats, err);
    if (ret == KIT_OK && stats) {
        ret = query_int(s, "SELECT count(*) FROM attempts", &stats->attempts, err);
        if (ret == KIT_OK) ret = query_int(s, "SELECT count(*) FROM students", &stats->students, err);
    }
    /* Closing the last connection checkpoints the WAL into the file and
     * removes it: the file is whole before it is renamed. */
    if (ret == KIT_OK && exec(s, "PRAGMA journal_mode = DELETE", err) != KIT_OK) ret = KIT_ERR;
    store_close(s);
    if (ret == KIT_OK && rename(tmp, out) != 0)
        ret = kit_seterr(err, KIT_ERR, "cannot write %s: %s", out, strerror(errno));
    if (ret != KIT_OK) unlink_db(tmp);
    free(tmp);
    return ret;
}
