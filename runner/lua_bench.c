/*
 * lua_bench.c - mqlab.bench: the load generator for labs, in the
 * background.
 *
 * A lab causes load while it watches something else (a student's
 * monitor, the broker's $SYS), so a run goes on in a thread of its own
 * while the lab goes on: start() returns at once, wait() collects the
 * result, stop() ends the run early (as Ctrl-C ends `mqlab bench`).
 *
 *   local run = bench.start{mode = "conn" | "steady" | "burst" | "ramp",
 *                           port =, host =, clients =, rate =, from =, to =,
 *                           messages =, qos =, size =, duration = s, hold = s,
 *                           connect_rate =, topic =, username =, password =,
 *                           cafile =, subscriber = true, drain = s}
 *   run:running()            -- true while the run goes on
 *   run:seconds()            -- {{t=, offered=, sent=, acked=, received=, connected=,
 *                                 p50_ms=, p99_ms=}, ...} so far
 *   run:wait([s])            -- the result (below), or nil, "timeout"
 *   run:stop()               -- end it now; wait() then returns what was measured
 *   run:close()              -- stop, wait, free (also __close / __gc)
 *
 * The result has the fields of `mqlab bench --format json`: mode,
 * clients, qos, sent, acked, received, lost, duplicates, rate_sent,
 * rate_received, latency_ms {p50, p90, p99, p999, max} (and
 * latency_corrected_ms, the same keys: see bench.h), errors,
 * connected, failed, connect_rate, rss_mb, first_error, interrupted, and
 * for ramp knee_s, knee_rate, knee_reason.
 */
#include "bench.h"
#include "cleanup.h"
#include "host.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MT "mqlab.bench"

typedef struct {
    bench_opts o;
    bench_result r;
    char *strs[5];              /* copies of host, topic, username, password, cafile */
    char err[KIT_ERRLEN];
    int code;
    int stop;                   /* set by stop(), read by the run */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;                   /* under mu */
    bench_second *secs;         /* under mu: progress so far */
    int nsecs, capsecs;
} brun;

typedef struct {
    brun *b;                    /* NULL once closed */
    int joined;
} lbench;

static void on_second(const bench_second *s, const bench_opts *o, void *ud)
{
    (void)o;
    brun *b = ud;
    pthread_mutex_lock(&b->mu);
    if (b->nsecs == b->capsecs) {
        int ncap = b->capsecs ? b->capsecs * 2 : 64;
        b->secs = kit_xrealloc(b->secs, (size_t)ncap * sizeof *b->secs);
        b->capsecs = ncap;
    }
    b->secs[b->nsecs++] = *s;
    pthread_mutex_unlock(&b->mu);
}

static void *run_main(void *arg)
{
    brun *b = arg;
    b->code = bench_run(&b->o, &b->r, b->err);
    pthread_mutex_lock(&b->mu);
    b->done = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void brun_free(brun *b)
{
    bench_result_free(&b->r);
    for (size_t i = 0; i < sizeof b->strs / sizeof b->strs[0]; i++) free(b->strs[i]);
    free(b->secs);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cond);
    free(b);
}

/* Stop the run, wait for its thread, free it. */
static void lbench_close(lbench *h)
{
    if (!h->b) return;
    __atomic_store_n(&h->b->stop, 1, __ATOMIC_RELAXED);
    if (!h->joined) pthread_join(h->b->thread, NULL);
    brun_free(h->b);
    h->b = NULL;
}

static lbench *checkrun(lua_State *L, int i)
{
    lbench *h = (lbench *)luaL_checkudata(L, i, BENCH_MT);
    if (!h->b) luaL_error(L, "attempt to use a closed bench run");
    return h;
}

/* ---- options ------------------------------------------------------------ */

static double opt_num(lua_State *L, const char *key, double def, double lo, double hi)
{
    int t = lua_getfield(L, 1, key);
    double v = def;
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER) luaL_error(L, "bench.start: field '%s' must be a number", key);
        v = lua_tonumber(L, -1);
        if (!(v >= lo && v <= hi)) luaL_error(L, "bench.start: field '%s' must be between %f and %f", key, lo, hi);
    }
    lua_pop(L, 1);
    return v;
}

/* The string field key, or NULL; it stays valid while the options table
 * (argument 1) holds it. Raises for a value that is not a string. */
static const char *opt_str(lua_State *L, const char *key)
{
    int t = lua_getfield(L, 1, key);
    if (t != LUA_TNIL && t != LUA_TSTRING) luaL_error(L, "bench.start: field '%s' must be a string", key);
    const char *v = lua_tostring(L, -1);
    lua_pop(L, 1);
    return v;
}

static void check_keys(lua_State *L)
{
    static const char *const keys[] = {
        "mode", "host", "port", "clients", "rate", "from", "to", "messages", "qos", "size", "duration",
        "hold", "connect_rate", "topic", "username", "password", "cafile", "subscriber", "drain", NULL
    };
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int ok = 0;
        for (int i = 0; k && keys[i]; i++) ok |= strcmp(k, keys[i]) == 0;
        if (!ok) luaL_error(L, "bench.start: unknown option '%s'", k ? k : luaL_typename(L, -1));
    }
}

/* start{...} -> run | nil, message */
static int l_start(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    check_keys(L);
    lua_getfield(L, 1, "mode");
    const char *mode = luaL_optstring(L, -1, "steady");
    bench_mode m;
    if (strcmp(mode, "conn") == 0) m = BENCH_CONN;
    else if (strcmp(mode, "steady") == 0) m = BENCH_STEADY;
    else if (strcmp(mode, "burst") == 0) m = BENCH_BURST;
    else if (strcmp(mode, "ramp") == 0) m = BENCH_RAMP;
    else return luaL_error(L, "bench.start: mode must be conn, steady, burst or ramp, not '%s'", mode);
    lua_pop(L, 1);

    /* Everything that can raise comes before the allocation. */
    bench_opts o;
    bench_opts_init(&o);
    o.mode = m;
    o.port = (int)opt_num(L, "port", 0, 1, 65535);
    if (!o.port) return luaL_error(L, "bench.start: field 'port' is required");
    o.clients = (int)opt_num(L, "clients", 1, 1, 100000);
    o.rate = opt_num(L, "rate", o.rate, 0.1, 1e7);
    o.rate_from = opt_num(L, "from", o.rate_from, 0.1, 1e7);
    o.rate_to = opt_num(L, "to", o.rate_to, 0.1, 1e7);
    o.messages = (uint64_t)opt_num(L, "messages", (double)o.messages, 1, 1e9);
    o.qos = (int)opt_num(L, "qos", 1, 0, 2);
    o.size = (int)opt_num(L, "size", o.size, 0, 1 << 20);
    o.duration_ms = (int)(opt_num(L, "duration", o.duration_ms / 1000.0, 0.1, 86400) * 1000);
    o.hold_ms = (int)(opt_num(L, "hold", o.hold_ms / 1000.0, 0, 86400) * 1000);
    o.connect_rate = opt_num(L, "connect_rate", 0, 0, 1e6);
    o.drain_ms = (int)(opt_num(L, "drain", 5, 0.1, 600) * 1000);
    lua_getfield(L, 1, "subscriber");
    o.no_subscriber = !lua_isnil(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* Every string is read (and checked) before anything is allocated. */
    const char *strs[] = { opt_str(L, "host"), opt_str(L, "topic"), opt_str(L, "username"),
                           opt_str(L, "password"), opt_str(L, "cafile") };

    lbench *h = (lbench *)lua_newuserdatauv(L, sizeof *h, 0);
    h->b = NULL;
    h->joined = 0;
    luaL_setmetatable(L, BENCH_MT);
    brun *b = kit_xmalloc(sizeof *b);
    memset(b, 0, sizeof *b);
    b->o = o;
    for (int i = 0; i < 5; i++) b->strs[i] = strs[i] ? kit_strdup(strs[i]) : NULL;
    b->o.host = b->strs[0];
    b->o.topic = b->strs[1];
    b->o.username = b->strs[2];
    b->o.password = b->strs[3];
    b->o.cafile = b->strs[4];
    b->o.stop = &b->stop;
    b->o.progress = on_second;
    b->o.ud = b;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cond, NULL);
    if (pthread_create(&b->thread, NULL, run_main, b) != 0) {
        brun_free(b);
        luaL_pushfail(L);
        lua_pushstring(L, "cannot start the load thread");
        return 2;
    }
    h->b = b;
    return 1;
}

/* ---- methods ------------------------------------------------------------ */

static int l_running(lua_State *L)
{
    lbench *h = checkrun(L, 1);
    pthread_mutex_lock(&h->b->mu);
    int done = h->b->done;
    pthread_mutex_unlock(&h->b->mu);
    lua_pushboolean(L, !done);
    return 1;
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void push_second(lua_State *L, const bench_second *s)
{
    lua_createtable(L, 0, 8);
    set_num(L, "t", s->t);
    set_num(L, "offered", s->offered);
    set_int(L, "sent", (lua_Integer)s->sent);
    set_int(L, "acked", (lua_Integer)s->acked);
    set_int(L, "received", (lua_Integer)s->received);
    set_int(L, "connected", (lua_Integer)s->connected);
    set_num(L, "p50_ms", s->p50_ms);
    set_num(L, "p99_ms", s->p99_ms);
}

static int l_seconds(lua_State *L)
{
    lbench *h = checkrun(L, 1);
    brun *b = h->b;
    pthread_mutex_lock(&b->mu);
    int n = b->nsecs;
    bench_second *copy = n ? kit_xmalloc((size_t)n * sizeof *copy) : NULL;
    if (n) memcpy(copy, b->secs, (size_t)n * sizeof *copy);
    pthread_mutex_unlock(&b->mu);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        push_second(L, &copy[i]);
        lua_rawseti(L, -2, i + 1);
    }
    free(copy);
    return 1;
}

static void push_result(lua_State *L, const brun *b)
{
    const bench_result *r = &b->r;
    lua_createtable(L, 0, 24);
    lua_pushstring(L, bench_mode_name(r->mode));
    lua_setfield(L, -2, "mode");
    set_int(L, "clients", r->clients);
    set_int(L, "qos", r->qos);
    set_int(L, "size", r->size);
    set_int(L, "sent", (lua_Integer)r->sent);
    set_int(L, "acked", (lua_Integer)r->acked);
    set_int(L, "received", (lua_Integer)r->received);
    set_int(L, "lost", (lua_Integer)r->lost);
    set_int(L, "duplicates", (lua_Integer)r->duplicates);
    set_num(L, "rate_sent", r->rate_sent);
    set_num(L, "rate_received", r->rate_received);
    set_int(L, "errors", r->errors);
    set_int(L, "connected", r->connected);
    set_int(L, "failed", r->failed);
    set_num(L, "connect_rate", r->connect_rate);
    set_num(L, "rss_mb", r->rss_mb);
    lua_pushstring(L, r->first_error);
    lua_setfield(L, -2, "first_error");
    lua_pushboolean(L, r->interrupted);
    lua_setfield(L, -2, "interrupted");
    lua_createtable(L, 0, 5);
    static const struct { const char *k; double p; } q[] = {
        { "p50", 50 }, { "p90", 90 }, { "p99", 99 }, { "p999", 99.9 },
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        set_num(L, q[i].k, r->latency ? (double)hist_percentile(r->latency, q[i].p) / 1000.0 : 0);
    set_num(L, "max", r->latency ? (double)hist_max(r->latency) / 1000.0 : 0);
    lua_setfield(L, -2, "latency_ms");
    /* corrected for coordinated omission (bench.h); = latency_ms but in steady */
    lua_createtable(L, 0, 5);
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        set_num(L, q[i].k, r->latency_corrected ? (double)hist_percentile(r->latency_corrected, q[i].p) / 1000.0 : 0);
    set_num(L, "max", r->latency_corrected ? (double)hist_max(r->latency_corrected) / 1000.0 : 0);
    lua_setfield(L, -2, "latency_corrected_ms");
    if (r->mode == BENCH_RAMP) {
        set_num(L, "knee_s", r->knee_s);
        set_num(L, "knee_rate", r->knee_rate);
        lua_pushstring(L, r->knee_reason);
        lua_setfield(L, -2, "knee_reason");
    }
}

/* wait([s]) -> result | nil, "timeout" | nil, message (the run failed) */
static int l_wait(lua_State *L)
{
    lbench *h = checkrun(L, 1);
    brun *b = h->b;
    int ms = host_clamp_ms(L, host_opt_ms(L, 2, INT_MAX));
    int64_t until = kit_now_ms() + ms;
    pthread_mutex_lock(&b->mu);
    while (!b->done) {
        int64_t left = until - kit_now_ms();
        if (left <= 0) break;
        if (left > 100) left = 100;          /* notice Ctrl-C and the check's deadline */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)left * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&b->cond, &b->mu, &ts);
        if (!b->done && cleanup_interrupted()) {
            /* The run sees Ctrl-C too and ends; host_clamp_ms raises. */
            pthread_mutex_unlock(&b->mu);
            __atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
            host_clamp_ms(L, 1);
            return 0;
        }
    }
    int done = b->done;
    pthread_mutex_unlock(&b->mu);
    if (!done) {
        luaL_pushfail(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    if (!h->joined) {
        pthread_join(b->thread, NULL);
        h->joined = 1;
    }
    if (b->code != KIT_OK) {
        luaL_pushfail(L);
        lua_pushstring(L, b->err);
        return 2;
    }
    push_result(L, b);
    return 1;
}

static int l_stop(lua_State *L)
{
    lbench *h = checkrun(L, 1);
    __atomic_store_n(&h->b->stop, 1, __ATOMIC_RELAXED);
    return 0;
}

static int l_close(lua_State *L)
{
    lbench_close((lbench *)luaL_checkudata(L, 1, BENCH_MT));
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbench *h = (lbench *)luaL_checkudata(L, 1, BENCH_MT);
    if (!h->b) lua_pushliteral(L, "bench run (closed)");
    else lua_pushfstring(L, "bench run (%s, %d clients)", bench_mode_name(h->b->o.mode), h->b->o.clients);
    return 1;
}

static const luaL_Reg methods[] = {
    { "running", l_running },
    { "seconds", l_seconds },
    { "wait", l_wait },
    { "stop", l_stop },
    { "close", l_close },
    { NULL, NULL }
};

static const luaL_Reg metamethods[] = {
    { "__index", NULL },
    { "__gc", l_close },
    { "__close", l_close },
    { "__tostring", l_tostring },
    { NULL, NULL }
};

static const luaL_Reg funcs[] = {
    { "start", l_start },
    { NULL, NULL }
};

int luaopen_mqlab_bench(lua_State *L)
{
    host_class(L, BENCH_MT, metamethods, methods);
    luaL_newlib(L, funcs);
    return 1;
}
