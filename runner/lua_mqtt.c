/*
 * lua_mqtt.c - the mqlab.mqtt module: MQTT clients for lab checks and for
 * students' own scripts (`mqlab run FILE.lua`).
 *
 * A thin layer over mqtt.c. Clients are full userdata shaped like
 * liolib's files; every wait is cut to the check's time budget with
 * host_clamp_ms(), and a Ctrl-C during a wait raises, so a script cannot
 * hold the kit. Mistakes in the call (a wildcard in a topic name, an
 * unknown option) raise; failures a script must handle (a refused
 * connection, a timeout, a lost connection) return nil, message, code.
 */
#include "mqtt.h"
#include "host.h"
#include "util.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define CLIENT_MT "mqlab.mqtt.client"
#define DEFAULT_WAIT_MS 5000

typedef struct {
    mq_client_t *c;            /* NULL: closed */
} LClient;

static LClient *checkclient(lua_State *L, int i)
{
    return (LClient *)luaL_checkudata(L, i, CLIENT_MT);
}

/* The open client at i; raises on a closed one, as liolib does. */
static mq_client_t *toclient(lua_State *L, int i)
{
    LClient *p = checkclient(L, i);
    if (!p->c) luaL_error(L, "attempt to use a closed MQTT client");
    return p->c;
}

/* A wait ended with a timeout: if that was the check's budget running
 * out rather than the caller's own timeout, host_clamp_ms raises. */
static void after_timeout(lua_State *L, int code)
{
    if (code == KIT_ETIMEOUT) host_clamp_ms(L, 0);
}

/* With manual_ack, a client holding a message it has not acknowledged
 * reads and writes nothing: a call that needs the wire would only time
 * out (and a DISCONNECT would carry the held PUBACK out), so it raises. */
static void check_not_held(lua_State *L, mq_client_t *c, const char *what)
{
    if (mq_unacked(c) > 0)
        luaL_error(L, "%s: %d received message(s) not acknowledged yet: call client:ack(msg) first "
                   "(with manual_ack the client waits for it)", what, mq_unacked(c));
}

/* nil, message, code: the shape of every failure a script handles. */
static int fail(lua_State *L, const char *msg, const char *code)
{
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    return 3;
}

static const char *code_name(int code)
{
    switch (code) {
    case KIT_ETIMEOUT: return "timeout";
    case KIT_ENOTCONN: return "disconnected";
    default: return "error";
    }
}

/* ---- option tables ------------------------------------------------------ */

/* Raise on keys the function does not know: a typo such as `prot = 1883`
 * would otherwise silently connect somewhere else. */
static void check_keys(lua_State *L, int t, const char *what, const char *const known[])
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; known[i]; i++)
                if (strcmp(k, known[i]) == 0) { ok = 1; break; }
        }
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; known[i]; i++) {
                if (i) luaL_addstring(&b, ", ");
                luaL_addstring(&b, known[i]);
            }
            luaL_pushresult(&b);
            luaL_error(L, "unknown option '%s' in %s (known: %s)",
                       lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2),
                       what, lua_tostring(L, -1));
        }
    }
}

/* The field name of the table at t, pushed and left on the stack (so a
 * string stays alive), or NULL when absent. */
static const char *field_string(lua_State *L, int t, const char *name, const char *what)
{
    int ty = lua_getfield(L, t, name);
    if (ty == LUA_TNIL) return NULL;
    if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
        luaL_error(L, "option '%s' in %s must be a string, not a %s", name, what, lua_typename(L, ty));
    return lua_tostring(L, -1);
}

static const char *field_bytes(lua_State *L, int t, const char *name, const char *what, size_t *len)
{
    const char *s = field_string(L, t, name, what);
    if (s) lua_tolstring(L, -1, len);
    else *len = 0;
    return s;
}

static int field_int(lua_State *L, int t, const char *name, const char *what, int def, int lo, int hi)
{
    int ty = lua_getfield(L, t, name);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (ty == LUA_TNIL) return def;
    if (!isint || ty != LUA_TNUMBER)
        return luaL_error(L, "option '%s' in %s must be an integer", name, what);
    if (v < lo || v > hi)
        return luaL_error(L, "option '%s' in %s must be between %d and %d (got %d)", name, what, lo, hi, (int)v);
    return (int)v;
}

static int field_bool(lua_State *L, int t, const char *name, const char *what, int def)
{
    int ty = lua_getfield(L, t, name);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (ty == LUA_TNIL) return def;
    if (ty != LUA_TBOOLEAN)
        return luaL_error(L, "option '%s' in %s must be true or false", name, what);
    return v;
}

/* A duration in seconds, as milliseconds. */
static int field_ms(lua_State *L, int t, const char *name, const char *what, int def)
{
    int ty = lua_getfield(L, t, name);
    lua_Number s = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (ty == LUA_TNIL) return def;
    if (ty != LUA_TNUMBER || !(s >= 0))
        return luaL_error(L, "option '%s' in %s must be a number of seconds (>= 0)", name, what);
    return s * 1000.0 >= (lua_Number)INT_MAX ? INT_MAX : (int)(s * 1000.0);
}

/* protocol = 3 | 4 | 5, or the names "3.1", "3.1.1", "5", "5.0". */
static int field_protocol(lua_State *L, int t)
{
    int ty = lua_getfield(L, t, "protocol");
    int v = 0;
    if (ty == LUA_TNUMBER && lua_isinteger(L, -1)) {
        lua_Integer i = lua_tointeger(L, -1);
        if (i >= 3 && i <= 5) v = (int)i;
    } else if (ty == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (strcmp(s, "3.1") == 0) v = 3;
        else if (strcmp(s, "3.1.1") == 0) v = 4;
        else if (strcmp(s, "5") == 0 || strcmp(s, "5.0") == 0) v = 5;
    } else if (ty == LUA_TNIL) {
        v = 4;
    }
    lua_pop(L, 1);
    if (!v) return luaL_error(L, "option 'protocol' in mqtt.connect must be 3 (MQTT 3.1), 4 (3.1.1) or 5");
    return v;
}

/* ---- module functions --------------------------------------------------- */

static const char *const connect_keys[] = {
    "host", "port", "unix", "id", "clean", "keepalive", "protocol", "username", "password",
    "will", "timeout", "cafile", "certfile", "keyfile", "tls_version", "manual_ack", NULL
};
static const char *const will_keys[] = { "topic", "payload", "qos", "retain", NULL };

/* mqtt.connect{...} -> client | nil, message, code. Without host/port it
 * uses MQTT_HOST/MQTT_PORT, which the kit sets for students' programs.
 * unix = PATH connects to a broker's unix socket instead (b:socket());
 * it does not go with host, port or TLS. manual_ack = true: a message
 * received at QoS 1/2 is acknowledged only by client:ack(msg), and the
 * client reads nothing more until then. */
static int l_connect(lua_State *L)
{
    static const char what[] = "mqtt.connect";
    if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 24, "mqtt.connect");
    check_keys(L, 1, what, connect_keys);

    mq_opts_t o;
    memset(&o, 0, sizeof o);
    const char *envport = getenv("MQTT_PORT");
    int defport = envport && atoi(envport) > 0 && atoi(envport) <= 65535 ? atoi(envport) : 1883;
    o.unix_path = field_string(L, 1, "unix", what);
    o.host = field_string(L, 1, "host", what);
    if (!o.host && !o.unix_path) o.host = getenv("MQTT_HOST");
    o.port = field_int(L, 1, "port", what, o.unix_path ? 0 : defport, 1, 65535);
    o.id = field_string(L, 1, "id", what);
    o.clean = field_bool(L, 1, "clean", what, 1);
    o.keepalive = field_int(L, 1, "keepalive", what, 60, 5, 65535);
    o.protocol = field_protocol(L, 1);
    o.username = field_string(L, 1, "username", what);
    o.password = field_string(L, 1, "password", what);
    o.timeout_ms = field_ms(L, 1, "timeout", what, DEFAULT_WAIT_MS);
    o.manual_ack = field_bool(L, 1, "manual_ack", what, 0);

    int ty = lua_getfield(L, 1, "will");
    if (ty == LUA_TTABLE) {
        static const char wwhat[] = "the will of mqtt.connect";
        int w = lua_gettop(L);
        size_t len = 0;
        check_keys(L, w, wwhat, will_keys);
        o.will_topic = field_string(L, w, "topic", wwhat);
        if (!o.will_topic) return luaL_error(L, "the will of mqtt.connect needs a topic");
        o.will_payload = field_bytes(L, w, "payload", wwhat, &len);
        if (len > INT_MAX) return luaL_error(L, "the will payload is too large");
        o.will_len = (int)len;
        o.will_qos = field_int(L, w, "qos", wwhat, 0, 0, 2);
        o.will_retain = field_bool(L, w, "retain", wwhat, 0);
    } else if (ty != LUA_TNIL) {
        return luaL_error(L, "option 'will' in mqtt.connect must be a table {topic=, payload=, qos=, retain=}");
    }
    if (!o.clean && !o.id)
        return luaL_error(L, "mqtt.connect: a persistent session (clean=false) needs an id");
    /* TLS: with cafile, trusting only that CA and checking the host name.
     * A file that cannot be read is a failure to handle (nil, message),
     * like a refused connection; a nonsensical combination raises. */
    o.cafile = field_string(L, 1, "cafile", what);
    o.certfile = field_string(L, 1, "certfile", what);
    o.keyfile = field_string(L, 1, "keyfile", what);
    o.tls_version = field_string(L, 1, "tls_version", what);
    o.timeout_ms = host_clamp_ms(L, o.timeout_ms);
    if (o.timeout_ms <= 0) o.timeout_ms = 1;

    /* The handle exists, closed, before the connection does. */
    LClient *p = (LClient *)lua_newuserdatauv(L, sizeof *p, 0);
    p->c = NULL;
    luaL_setmetatable(L, CLIENT_MT);

    char err[KIT_ERRLEN] = "";
    int rc = -1;
    int code = mq_connect(&p->c, &o, &rc, err);
    if (code == KIT_OK) return 1;
    if (code == KIT_EINTR) return host_raise_interrupt(L);
    if (code == KIT_EINVAL) return luaL_argerror(L, 1, err);
    after_timeout(L, code);
    luaL_pushfail(L);
    lua_pushstring(L, err);
    if (code == KIT_EREFUSED) lua_pushinteger(L, rc);
    else lua_pushstring(L, code_name(code));
    return 3;
}

/* mqtt.pump([seconds]): service every client, waiting up to seconds
 * (default 0) for something to happen. */
static int l_pump(lua_State *L)
{
    int ms = host_clamp_ms(L, host_opt_ms(L, 1, 0));
    int code = mq_pump(ms);
    if (code == KIT_EINTR) return host_raise_interrupt(L);
    if (code != KIT_OK) return fail(L, "poll failed", "error");
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- SIGTERM, for long-running scripts ---------------------------------- */

static volatile sig_atomic_t term_caught;

static void on_term(int sig)
{
    (void)sig;
    term_caught = 1;
}

/* mqtt.catch_sigterm(): from now on SIGTERM no longer stops the script
 * with "interrupted by the user"; it only sets the flag mqtt.sigterm()
 * reads, so a program that runs until SIGTERM (`mqlab run`) can publish
 * its goodbye, DISCONNECT and return normally (exit code 0). Ctrl-C
 * still interrupts. Only for scripts: a lab's checks keep the kit's own
 * handling, so that a stop always unwinds the grading. */
static int l_catch_sigterm(lua_State *L)
{
    if (host_left_ms() != INT32_MAX)
        return luaL_error(L, "mqtt.catch_sigterm is for scripts run with 'mqlab run', not for labs");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0) return fail(L, "cannot catch SIGTERM", "error");
    lua_pushboolean(L, 1);
    return 1;
}

/* mqtt.sigterm() -> true once SIGTERM arrived after mqtt.catch_sigterm(). */
static int l_sigterm(lua_State *L)
{
    lua_pushboolean(L, term_caught != 0);
    return 1;
}

/* ---- client methods ----------------------------------------------------- */

/* client:publish(topic, payload [, {qos=, retain=, timeout=, wait=} | qos])
 * -> mid | nil, message, code. With wait = false it returns the mid as
 * soon as the library has the message, and client:acked(mid) tells when
 * its PUBACK (QoS 1) or PUBCOMP (QoS 2) has come. */
static int c_publish(lua_State *L)
{
    static const char *const keys[] = { "qos", "retain", "timeout", "wait", NULL };
    static const char what[] = "client:publish";
    mq_client_t *c = toclient(L, 1);
    check_not_held(L, c, what);
    const char *topic = luaL_checkstring(L, 2);
    size_t len = 0;
    const char *payload = luaL_optlstring(L, 3, "", &len);
    int qos = 0, retain = 0, ms = DEFAULT_WAIT_MS, wait = 1;
    if (lua_type(L, 4) == LUA_TTABLE) {
        check_keys(L, 4, what, keys);
        qos = field_int(L, 4, "qos", what, 0, 0, 2);
        retain = field_bool(L, 4, "retain", what, 0);
        ms = field_ms(L, 4, "timeout", what, DEFAULT_WAIT_MS);
        wait = field_bool(L, 4, "wait", what, 1);
    } else if (!lua_isnoneornil(L, 4)) {
        lua_Integer q = luaL_checkinteger(L, 4);
        luaL_argcheck(L, q >= 0 && q <= 2, 4, "QoS must be 0, 1 or 2");
        qos = (int)q;
    }
    if (len > INT_MAX) return luaL_argerror(L, 3, "payload too large");
    ms = host_clamp_ms(L, ms);

    char err[KIT_ERRLEN] = "";
    int mid = 0;
    int code = wait ? mq_publish(c, topic, payload, (int)len, qos, retain, ms, &mid, err)
                    : mq_publish_nowait(c, topic, payload, (int)len, qos, retain, &mid, err);
    if (code == KIT_OK) { lua_pushinteger(L, mid); return 1; }
    if (code == KIT_EINTR) return host_raise_interrupt(L);
    if (code == KIT_EINVAL) return luaL_argerror(L, 2, err);
    after_timeout(L, code);
    return fail(L, err, code_name(code));
}

/* client:subscribe(filter [, qos [, timeout]]) -> granted | nil, message, code.
 * granted is the broker's answer: 0-2, or 128 when it refused. */
static int c_subscribe(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    check_not_held(L, c, "client:subscribe");
    const char *filter = luaL_checkstring(L, 2);
    lua_Integer qos = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, qos >= 0 && qos <= 2, 3, "QoS must be 0, 1 or 2");
    int ms = host_clamp_ms(L, host_opt_ms(L, 4, DEFAULT_WAIT_MS));

    char err[KIT_ERRLEN] = "";
    int granted = -1;
    int code = mq_subscribe(c, filter, (int)qos, ms, &granted, err);
    if (code == KIT_OK) { lua_pushinteger(L, granted); return 1; }
    if (code == KIT_EINTR) return host_raise_interrupt(L);
    if (code == KIT_EINVAL) return luaL_argerror(L, 2, err);
    after_timeout(L, code);
    return fail(L, err, code_name(code));
}

/* client:unsubscribe(filter [, timeout]) -> true | nil, message, code */
static int c_unsubscribe(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    check_not_held(L, c, "client:unsubscribe");
    const char *filter = luaL_checkstring(L, 2);
    int ms = host_clamp_ms(L, host_opt_ms(L, 3, DEFAULT_WAIT_MS));

    char err[KIT_ERRLEN] = "";
    int code = mq_unsubscribe(c, filter, ms, err);
    if (code == KIT_OK) { lua_pushboolean(L, 1); return 1; }
    if (code == KIT_EINTR) return host_raise_interrupt(L);
    if (code == KIT_EINVAL) return luaL_argerror(L, 2, err);
    after_timeout(L, code);
    return fail(L, err, code_name(code));
}

static void push_message(lua_State *L, const mq_message_t *m)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, m->topic);
    lua_setfield(L, -2, "topic");
    lua_pushlstring(L, m->payload, (size_t)m->len);
    lua_setfield(L, -2, "payload");
    lua_pushinteger(L, m->qos);
    lua_setfield(L, -2, "qos");
    lua_pushboolean(L, m->retain);
    lua_setfield(L, -2, "retain");
    lua_pushinteger(L, m->mid);
    lua_setfield(L, -2, "mid");
    /* Seconds on the kit's monotonic clock: good for intervals. */
    lua_pushnumber(L, (lua_Number)m->t_ms / 1000.0);
    lua_setfield(L, -2, "t");
}

/* client:wait([seconds [, filter]]) -> message | nil, "timeout" | "disconnected".
 * Without seconds it waits as long as the check's budget allows; the
 * filter may also come first: client:wait("a/#", 2). */
static int c_wait(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    int ti = 2, fi = 3;
    if (lua_type(L, 2) == LUA_TSTRING) { ti = 3; fi = 2; }
    int ms = host_clamp_ms(L, host_opt_ms(L, ti, INT_MAX));
    const char *filter = luaL_optstring(L, fi, NULL);
    if (mq_pending(c) == 0) check_not_held(L, c, "client:wait");

    int why = KIT_OK;
    mq_message_t *m = mq_wait_message(c, filter, ms, &why);
    if (m) {
        push_message(L, m);
        mq_message_free(m);
        return 1;
    }
    if (why == KIT_EINTR) return host_raise_interrupt(L);
    if (why == KIT_EINVAL)
        return luaL_argerror(L, fi, "invalid topic filter ('+' must fill a whole level, '#' must be the whole last level)");
    after_timeout(L, why);
    luaL_pushfail(L);
    lua_pushstring(L, why == KIT_ENOTCONN ? "disconnected" : why == KIT_ETIMEOUT ? "timeout" : "error");
    return 2;
}

/* client:drain() -> every queued message, oldest first, without waiting. */
static int c_drain(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    mq_pump(0);
    int n = mq_pending(c);
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        int why;
        mq_message_t *m = mq_wait_message(c, NULL, 0, &why);
        if (!m) break;
        push_message(L, m);
        mq_message_free(m);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

static int c_pending(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    mq_pump(0);
    lua_pushinteger(L, mq_pending(c));
    return 1;
}

static int c_connected(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    mq_pump(0);  /* notice a connection that has just gone */
    lua_pushboolean(L, mq_is_connected(c));
    return 1;
}

/* client:acked(mid) -> whether the message publish() returned mid for
 * is complete (PUBACK at QoS 1, PUBCOMP at QoS 2, written at QoS 0). */
static int c_acked(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    lua_Integer mid = luaL_checkinteger(L, 2);
    lua_pushboolean(L, mq_acked(c, (int)mid));
    return 1;
}

/* client:reconnect([timeout]) -> true | nil, message, code. The same
 * client connects again, with its id, session flag and will. With
 * clean = false the broker keeps the session, and the messages still in
 * flight go out again once it accepts: a PUBLISH with DUP=1, or the
 * PUBREL of a QoS 2 exchange left half done. Not for TLS clients. */
static int c_reconnect(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    int ms = host_clamp_ms(L, host_opt_ms(L, 2, DEFAULT_WAIT_MS));
    char err[KIT_ERRLEN] = "";
    int rc = -1;
    int code = mq_reconnect(c, ms, &rc, err);
    if (code == KIT_OK) { lua_pushboolean(L, 1); return 1; }
    if (code == KIT_EINTR) return host_raise_interrupt(L);
    if (code == KIT_EINVAL) return luaL_error(L, "%s", err);
    after_timeout(L, code);
    luaL_pushfail(L);
    lua_pushstring(L, err);
    if (code == KIT_EREFUSED) lua_pushinteger(L, rc);
    else lua_pushstring(L, code_name(code));
    return 3;
}

static int c_id(lua_State *L)
{
    lua_pushstring(L, mq_id(toclient(L, 1)));
    return 1;
}

/* client:ack(msg | mid) -> true. With manual_ack: the PUBACK (PUBCOMP)
 * of a message received at QoS 1/2 leaves now, typically right after the
 * script has committed what the message carried. A QoS 0 message needs
 * none: true. Acknowledging twice, or without manual_ack, raises. */
static int c_ack(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    lua_Integer mid, qos = 1;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_getfield(L, 2, "qos");
        qos = luaL_optinteger(L, -1, 1);
        lua_getfield(L, 2, "mid");
        if (!lua_isinteger(L, -1)) return luaL_argerror(L, 2, "a message from client:wait(), or its mid");
        mid = lua_tointeger(L, -1);
        lua_pop(L, 2);
    } else {
        mid = luaL_checkinteger(L, 2);
    }
    if (qos == 0) { lua_pushboolean(L, 1); return 1; }
    char err[KIT_ERRLEN] = "";
    if (mq_ack(c, (int)mid, err) != KIT_OK) return luaL_error(L, "client:ack: %s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* Clean: DISCONNECT first, so the broker discards the will. */
static int c_disconnect(lua_State *L)
{
    mq_client_t *c = toclient(L, 1);
    check_not_held(L, c, "client:disconnect");
    int code = mq_disconnect(c);
    if (code == KIT_OK) { lua_pushboolean(L, 1); return 1; }
    if (code == KIT_EINTR) return host_raise_interrupt(L);
    if (code == KIT_ENOTCONN) return fail(L, "not connected", "disconnected");
    return fail(L, "the DISCONNECT could not be sent; the connection was closed anyway", code_name(code));
}

/* Dirty: the connection just drops, as when a device loses power. */
static int c_kill(lua_State *L)
{
    mq_kill(toclient(L, 1));
    lua_pushboolean(L, 1);
    return 1;
}

/* Shared by close, __gc and __close; a second call does nothing. */
static int c_close(lua_State *L)
{
    LClient *p = checkclient(L, 1);
    if (p->c) {
        mq_free(p->c);
        p->c = NULL;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int c_gc(lua_State *L)
{
    c_close(L);
    return 0;
}

static int c_tostring(lua_State *L)
{
    LClient *p = checkclient(L, 1);
    if (!p->c) lua_pushliteral(L, "mqtt client (closed)");
    else lua_pushfstring(L, "mqtt client (%s, %s)", mq_id(p->c),
                         mq_is_connected(p->c) ? "connected" : "disconnected");
    return 1;
}

static const luaL_Reg methods[] = {
    { "publish", c_publish },
    { "subscribe", c_subscribe },
    { "unsubscribe", c_unsubscribe },
    { "wait", c_wait },
    { "ack", c_ack },
    { "drain", c_drain },
    { "pending", c_pending },
    { "connected", c_connected },
    { "acked", c_acked },
    { "reconnect", c_reconnect },
    { "id", c_id },
    { "disconnect", c_disconnect },
    { "kill", c_kill },
    { "close", c_close },
    { NULL, NULL }
};

static const luaL_Reg metamethods[] = {
    { "__index", NULL },  /* the method table, set below */
    { "__gc", c_gc },
    { "__close", c_gc },
    { "__tostring", c_tostring },
    { NULL, NULL }
};

static const luaL_Reg functions[] = {
    { "connect", l_connect },
    { "pump", l_pump },
    { "catch_sigterm", l_catch_sigterm },
    { "sigterm", l_sigterm },
    { NULL, NULL }
};

int luaopen_mqlab_mqtt(lua_State *L)
{
    if (mq_init() != KIT_OK) return luaL_error(L, "cannot initialise libmosquitto");
    host_class(L, CLIENT_MT, metamethods, methods);
    luaL_newlib(L, functions);
    return 1;
}
