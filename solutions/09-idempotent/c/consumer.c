/* Lab 09 reference solution in C (libmosquitto + SQLite): an idempotent
 * consumer.
 *
 * QoS 1 delivers "at least once", and not always in order. Each reading
 * is stored once because the database itself remembers what it holds:
 * `id` is the PRIMARY KEY and every write is INSERT OR IGNORE, so a copy
 * of a stored reading changes nothing, even after the process was killed
 * and started again. A payload that is not a valid reading is logged and
 * skipped. The session is persistent (clean_session false, the stable
 * client id), the course's default.
 *
 * libmosquitto's thread runs the network and the callbacks; the main
 * thread waits for SIGTERM with sigwait() and then leaves cleanly. That
 * thread also makes "acknowledge only after the commit" hold: under
 * mosquitto_loop_start() the PUBACK of a message is queued while
 * on_message runs and written only when it returns, after the INSERT
 * (each statement outside a transaction is its own commit).
 *
 * Built by the kit with: cc -O2 -Wall consumer.c -lmosquitto -lsqlite3 */
#include <ctype.h>
#include <math.h>
#include <mosquitto.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sqlite3 *db;
static sqlite3_stmt *insert;
static const char *topic_filter;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set\n", name);
        exit(2);
    }
    return v;
}

/* ---- a small JSON reader: {"id": "<text>", "ts": <number>, "v": <number>} ---- */

typedef struct {
    const char *p, *end;
} cursor;

static void ws(cursor *c)
{
    while (c->p < c->end && isspace((unsigned char)*c->p)) c->p++;
}

static int eat(cursor *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A JSON string into out (NUL-terminated, at most cap - 1 bytes); \uXXXX
 * escapes outside ASCII are refused rather than decoded. */
static int string(cursor *c, char *out, size_t cap)
{
    size_t n = 0;
    if (!eat(c, '"')) return 0;
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if ((unsigned char)ch < 0x20) return 0;
        if (ch == '\\') {
            if (c->p >= c->end) return 0;
            char e = *c->p++;
            switch (e) {
            case '"': case '\\': case '/': ch = e; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    if (c->p >= c->end || !isxdigit((unsigned char)*c->p)) return 0;
                    char h = *c->p++;
                    v = v * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
                }
                if (v == 0 || v > 0x7f) return 0;
                ch = (char)v;
                break;
            }
            default: return 0;
            }
        }
        if (n + 1 >= cap) return 0;
        out[n++] = ch;
    }
    if (!eat(c, '"')) return 0;
    out[n] = '\0';
    return 1;
}

static int number(cursor *c, double *out)
{
    char buf[64];
    size_t n = 0;
    ws(c);
    while (c->p < c->end && n + 1 < sizeof buf && strchr("+-0123456789.eE", *c->p)) buf[n++] = *c->p++;
    buf[n] = '\0';
    if (n == 0) return 0;
    char *stop;
    *out = strtod(buf, &stop);
    return *stop == '\0' && isfinite(*out);
}

/* Skip any JSON value we do not need (nested objects and arrays too). */
static int skip_value(cursor *c, int depth)
{
    char tmp[1024];
    double d;
    ws(c);
    if (c->p >= c->end || depth > 32) return 0;
    if (*c->p == '"') return string(c, tmp, sizeof tmp);
    if (*c->p == '{' || *c->p == '[') {
        char close = *c->p == '{' ? '}' : ']';
        c->p++;
        if (eat(c, close)) return 1;
        do {
            if (close == '}' && (!string(c, tmp, sizeof tmp) || !eat(c, ':'))) return 0;
            if (!skip_value(c, depth + 1)) return 0;
        } while (eat(c, ','));
        return eat(c, close);
    }
    static const char *const words[] = { "true", "false", "null" };
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(words[i]);
        if ((size_t)(c->end - c->p) >= len && memcmp(c->p, words[i], len) == 0) {
            c->p += len;
            return 1;
        }
    }
    return number(c, &d);
}

/* 1 when payload is a reading; fills id, ts and v. */
static int parse_reading(const char *payload, int len, char *id, size_t idcap, double *ts, double *v)
{
    cursor c = { payload, payload + len };
    int got = 0;
    char key[64];
    if (!eat(&c, '{')) return 0;
    if (!eat(&c, '}')) {
        do {
            if (!string(&c, key, sizeof key) || !eat(&c, ':')) return 0;
            ws(&c);
            if (strcmp(key, "id") == 0) {
                if (!string(&c, id, idcap) || !*id) return 0;
                got |= 1;
            } else if (strcmp(key, "ts") == 0) {
                if (!number(&c, ts)) return 0;
                got |= 2;
            } else if (strcmp(key, "v") == 0) {
                if (!number(&c, v)) return 0;
                got |= 4;
            } else if (!skip_value(&c, 0)) {
                return 0;
            }
        } while (eat(&c, ','));
        if (!eat(&c, '}')) return 0;
    }
    ws(&c);
    return got == 7 && c.p == c.end;
}

/* ---- MQTT ---------------------------------------------------------------- */

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)ud;
    if (rc != 0) {
        fprintf(stderr, "connection refused: %s\n", mosquitto_connack_string(rc));
        return;
    }
    /* Harmless with a kept session, needed when the broker lost it. */
    mosquitto_subscribe(m, NULL, topic_filter, 1);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m; (void)ud;
    char id[256];
    double ts = 0, v = 0;
    if (!parse_reading(msg->payload, msg->payloadlen, id, sizeof id, &ts, &v)) {
        fprintf(stderr, "skipped a malformed message on %s (%d bytes)\n", msg->topic, msg->payloadlen);
        return;
    }
    sqlite3_reset(insert);
    sqlite3_bind_text(insert, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(insert, 2, msg->topic, -1, SQLITE_TRANSIENT);
    if (ts == floor(ts) && fabs(ts) < 9e15) sqlite3_bind_int64(insert, 3, (sqlite3_int64)ts);
    else sqlite3_bind_double(insert, 3, ts);
    sqlite3_bind_double(insert, 4, v);
    int rc = sqlite3_step(insert);
    if (rc != SQLITE_DONE) fprintf(stderr, "insert %s: %s\n", id, sqlite3_errmsg(db));
    else if (sqlite3_changes(db) == 0) fprintf(stderr, "already stored: %s\n", id);
}

int main(void)
{
    topic_filter = env("MQTT_TOPIC");
    const char *host = env("MQTT_HOST");
    int port = atoi(env("MQTT_PORT"));

    if (sqlite3_open(env("LAB_DB"), &db) != SQLITE_OK) {
        fprintf(stderr, "cannot open %s: %s\n", getenv("LAB_DB"), sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS readings ("
                         " id TEXT PRIMARY KEY, topic TEXT NOT NULL,"
                         " ts INTEGER NOT NULL, value REAL NOT NULL)", NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO readings (id, topic, ts, value) VALUES (?, ?, ?, ?)",
                           -1, &insert, NULL) != SQLITE_OK) {
        fprintf(stderr, "database: %s\n", err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return 1;
    }

    /* SIGTERM is taken by sigwait() below: block it before any thread
     * starts, so that libmosquitto's thread inherits the mask. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);

    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(env("MQTT_CLIENT_ID"), false, NULL);
    if (!m) {
        perror("mosquitto_new");
        return 1;
    }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_reconnect_delay_set(m, 1, 4, true);
    int rc = mosquitto_connect(m, host, port, 20);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "connect to %s:%d: %s\n", host, port, mosquitto_strerror(rc));
        return 1;
    }
    mosquitto_loop_start(m);

    int sig = 0;
    sigwait(&term, &sig);

    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    sqlite3_finalize(insert);
    sqlite3_close(db);
    return 0;
}
