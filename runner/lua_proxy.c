/*
 * lua_proxy.c - mqlab.proxy: the fault proxy for lab authors.
 *
 * A thin layer over proxy.c, shaped like liolib.c. A proxy is a full
 * userdata holding the proxy (NULL once closed). Its trace is read as
 * Lua tables, one per event, and waited on with a match (a table of
 * field = value, or a function). While a wait blocks, the kit's own MQTT
 * clients are pumped, so a subscriber keeps receiving meanwhile.
 *
 *   local px, msg = proxy.start{ upstream = PORT [, port = P] [, max_packet = N] }
 *   local px, msg = proxy.start{ upstream_path = b:socket() [, port = P] ... }
 *   px:rule{ action = "drop", type = "puback", dir = "down", nth = 2 }
 *   local ev = px:wait({ type = "suback", dir = "down" }, 5)
 *
 * The broker is reached on 127.0.0.1:upstream (a TCP port), or on the
 * unix socket upstream_path of a broker started with unix = true: give
 * exactly one. Either way the proxy listens on TCP 127.0.0.1:px:port().
 * px:error() is nil while the proxy works, or why its loop died (then
 * the waits raise that, as no event will ever come).
 */
#include "host.h"
#include "mqtt.h"
#include "packet.h"
#include "proxy.h"
#include "net.h"
#include "util.h"

#include <lauxlib.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROXY_MT "mqlab.proxy"

typedef struct {
    proxy *p;               /* NULL: closed */
    int port;
    /* conn number -> client id of its CONNECT (pointers into the trace,
     * which lives as long as p). Filled by scanning the trace in order. */
    const char **client;
    size_t nclient;
    size_t scanned;
    SSL_CTX *tls;           /* wss:// or TLS clients: outlives p */
} lproxy;

static lproxy *toproxy(lua_State *L, int i)
{
    return (lproxy *)luaL_checkudata(L, i, PROXY_MT);
}

static lproxy *checkproxy(lua_State *L, int i)
{
    lproxy *h = toproxy(L, i);
    if (!h->p) luaL_error(L, "attempt to use a closed proxy");
    return h;
}

static int opt_int_field(lua_State *L, int t, const char *key, lua_Integer def,
                         lua_Integer lo, lua_Integer hi)
{
    lua_getfield(L, t, key);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return (int)def; }
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < lo || v > hi)
        return luaL_argerror(L, t, lua_pushfstring(L, "field '%s' must be an integer %I..%I",
                                                   key, (lua_Integer)lo, (lua_Integer)hi));
    lua_pop(L, 1);
    return (int)v;
}

/* Seconds field as ms (fractions allowed). */
static int opt_sec_field(lua_State *L, int t, const char *key, int def_ms)
{
    lua_getfield(L, t, key);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def_ms; }
    if (!lua_isnumber(L, -1))
        return luaL_argerror(L, t, lua_pushfstring(L, "field '%s' must be seconds (a number)", key));
    lua_Number s = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (s < 0 || s > 86400)
        return luaL_argerror(L, t, lua_pushfstring(L, "field '%s' must be 0..86400 seconds", key));
    return (int)(s * 1000 + 0.5);
}

/* start{upstream = PORT | upstream_path = PATH, port = 0, max_packet = 0,
 *       websocket = false, ws_port = 0, tls = CERTS_DIR} -> proxy | nil, msg
 * websocket: a second port for MQTT over WebSockets (a browser's mqtt.js),
 * with the same rules and trace; tls: that port is wss://, with the kit's
 * server certificate from CERTS_DIR (server.crt, server.key). */
static int l_start(lua_State *L)
{
    char err[KIT_ERRLEN] = "";
    luaL_checktype(L, 1, LUA_TTABLE);
    px_opts o;
    memset(&o, 0, sizeof o);
    o.upstream_port = opt_int_field(L, 1, "upstream", 0, 1, 65535);
    int t = lua_getfield(L, 1, "upstream_path");   /* stays on the stack, so alive */
    if (t != LUA_TNIL && t != LUA_TSTRING)
        return luaL_argerror(L, 1, "field 'upstream_path' must be a string (the broker's socket, b:socket())");
    o.upstream_path = lua_tostring(L, -1);
    if (!o.upstream_port == !o.upstream_path)
        return luaL_argerror(L, 1, "give the broker as 'upstream' (its port) or 'upstream_path' "
                                   "(its unix socket), one of them");
    o.listen_port = opt_int_field(L, 1, "port", 0, 0, 65535);
    o.max_packet = (size_t)opt_int_field(L, 1, "max_packet", 0, 0, PKT_MAX_REMAINING);
    lua_getfield(L, 1, "websocket");
    o.websocket = lua_toboolean(L, -1);
    lua_pop(L, 1);
    o.ws_port = opt_int_field(L, 1, "ws_port", 0, 0, 65535);
    int tt = lua_getfield(L, 1, "tls");     /* stays on the stack */
    if (tt != LUA_TNIL && tt != LUA_TSTRING)
        return luaL_argerror(L, 1, "field 'tls' must be the kit's certificates folder (tls.certs())");
    const char *certs = lua_tostring(L, -1);

    lproxy *h = (lproxy *)lua_newuserdatauv(L, sizeof *h, 0);
    memset(h, 0, sizeof *h);
    luaL_setmetatable(L, PROXY_MT);
    if (certs) {
        char crt[4096], key[4096];
        snprintf(crt, sizeof crt, "%s/server.crt", certs);
        snprintf(key, sizeof key, "%s/server.key", certs);
        h->tls = net_tls_server_ctx(crt, key, err);
        if (!h->tls) {
            luaL_pushfail(L);
            lua_pushstring(L, err);
            lua_pushliteral(L, "error");
            return 3;
        }
        o.ws_tls = h->tls;
    }
    if (proxy_start(&o, &h->p, err) != KIT_OK) {
        h->p = NULL;
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushliteral(L, "error");
        return 3;
    }
    h->port = proxy_port(h->p);
    return 1;
}

static int l_port(lua_State *L)
{
    lua_pushinteger(L, checkproxy(L, 1)->port);
    return 1;
}

/* The WebSocket port, or nil when the proxy has none. */
static int l_ws_port(lua_State *L)
{
    lproxy *h = checkproxy(L, 1);
    int port = h->p ? proxy_ws_port(h->p) : 0;
    if (port) lua_pushinteger(L, port);
    else lua_pushnil(L);
    return 1;
}

static int parse_dir(lua_State *L, int t)
{
    lua_getfield(L, t, "dir");
    const char *d = lua_isnil(L, -1) ? "any" : lua_tostring(L, -1);
    int dir = -1;
    if (d && strcasecmp(d, "up") == 0) dir = PX_UP;
    else if (d && strcasecmp(d, "down") == 0) dir = PX_DOWN;
    else if (d && strcasecmp(d, "any") == 0) dir = PX_ANY;
    lua_pop(L, 1);
    if (dir < 0) return luaL_argerror(L, t, "field 'dir' must be \"up\", \"down\" or \"any\"");
    return dir;
}

/* rule{action=, type=, dir=, nth=, times=, delay=, behind=, bytes=, refuse=, client=} -> index */
static int l_rule(lua_State *L)
{
    char err[KIT_ERRLEN] = "";
    lproxy *h = checkproxy(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    px_rule r;
    memset(&r, 0, sizeof r);

    lua_getfield(L, 2, "action");
    const char *a = lua_tostring(L, -1);
    int act = a ? px_action_from_name(a) : -1;
    if (act < 0)
        return luaL_argerror(L, 2, "field 'action' must be one of drop, duplicate, delay, cut_before, "
                                   "cut_after, blackhole, cut_bytes, reorder");
    r.action = (px_action)act;
    lua_pop(L, 1);

    lua_getfield(L, 2, "type");
    if (!lua_isnil(L, -1)) {
        const char *tn = lua_tostring(L, -1);
        r.type = tn && strcasecmp(tn, "any") != 0 ? pkt_type_from_name(tn) : 0;
        if (r.type < 0 || !tn)
            return luaL_argerror(L, 2, lua_pushfstring(L, "field 'type': unknown packet type '%s'",
                                                       tn ? tn : "?"));
    }
    lua_pop(L, 1);

    r.dir = parse_dir(L, 2);
    r.nth = (unsigned)opt_int_field(L, 2, "nth", 1, 1, 1000000000);
    r.times = (unsigned)opt_int_field(L, 2, "times", 1, 1, 1000000000);
    r.delay_ms = opt_sec_field(L, 2, "delay", 0);
    r.behind = (unsigned)opt_int_field(L, 2, "behind", 1, 1, 1000000);
    r.refuse_ms = opt_sec_field(L, 2, "refuse", 0);
    lua_getfield(L, 2, "bytes");
    if (!lua_isnil(L, -1)) {
        int isint = 0;
        lua_Integer b = lua_tointegerx(L, -1, &isint);
        if (!isint || b < 1) return luaL_argerror(L, 2, "field 'bytes' must be an integer >= 1");
        r.bytes = (uint64_t)b;
    }
    lua_pop(L, 1);
    if (r.action == PX_CUT_BYTES && r.bytes == 0)
        return luaL_argerror(L, 2, "action 'cut_bytes' needs the field 'bytes'");
    if (r.action == PX_DELAY && r.delay_ms <= 0)
        return luaL_argerror(L, 2, "action 'delay' needs the field 'delay' (seconds > 0)");

    lua_getfield(L, 2, "client");
    if (!lua_isnil(L, -1)) {
        size_t n = 0;
        const char *c = lua_tolstring(L, -1, &n);
        if (!c || n == 0 || n >= sizeof r.client_id)
            return luaL_argerror(L, 2, "field 'client' must be a client id (1..127 bytes)");
        memcpy(r.client_id, c, n + 1);
    }
    lua_pop(L, 1);

    int idx = proxy_add_rule(h->p, &r, err);
    if (idx < 0) return luaL_argerror(L, 2, err);
    lua_pushinteger(L, idx + 1);
    return 1;
}

static int l_fired(lua_State *L)
{
    lproxy *h = checkproxy(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1, 2, "rule index from px:rule{}");
    lua_pushinteger(L, proxy_rule_fired(h->p, (int)i - 1));
    return 1;
}

static int l_clear_rules(lua_State *L)
{
    proxy_clear_rules(checkproxy(L, 1)->p);
    return 0;
}

static int l_cut_all(lua_State *L)
{
    lproxy *h = checkproxy(L, 1);
    proxy_cut_all(h->p, host_opt_ms(L, 2, 0));
    return 0;
}

static int l_blackhole(lua_State *L)
{
    lproxy *h = checkproxy(L, 1);
    proxy_blackhole_all(h->p, lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2));
    return 0;
}

static int l_refuse(lua_State *L)
{
    lproxy *h = checkproxy(L, 1);
    proxy_refuse(h->p, host_opt_ms(L, 2, 0));
    return 0;
}

static int l_open_conns(lua_State *L)
{
    lua_pushinteger(L, proxy_open_conns(checkproxy(L, 1)->p));
    return 1;
}

static int l_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)proxy_count(checkproxy(L, 1)->p));
    return 1;
}

/* error() -> nil, or why the proxy's loop died */
static int l_error(lua_State *L)
{
    char err[KIT_ERRLEN] = "";
    if (proxy_error(checkproxy(L, 1)->p, err) == KIT_OK) lua_pushnil(L);
    else lua_pushstring(L, err);
    return 1;
}

static int l_stats(lua_State *L)
{
    px_stats s;
    proxy_stats(checkproxy(L, 1)->p, &s);
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, s.connections); lua_setfield(L, -2, "connections");
    lua_pushinteger(L, s.refused); lua_setfield(L, -2, "refused");
    lua_pushinteger(L, (lua_Integer)s.packets[PX_UP]); lua_setfield(L, -2, "packets_up");
    lua_pushinteger(L, (lua_Integer)s.packets[PX_DOWN]); lua_setfield(L, -2, "packets_down");
    lua_pushinteger(L, (lua_Integer)s.bytes[PX_UP]); lua_setfield(L, -2, "bytes_up");
    lua_pushinteger(L, (lua_Integer)s.bytes[PX_DOWN]); lua_setfield(L, -2, "bytes_down");
    lua_pushinteger(L, (lua_Integer)s.events_lost); lua_setfield(L, -2, "events_lost");
    return 1;
}

/* Learn the client id of every connection whose CONNECT is in the first
 * n events. CONNECT is a connection's first packet, so scanning in order
 * knows a connection's id before any of its later events. */
static void scan_clients(lproxy *h, size_t n)
{
    for (; h->scanned < n; h->scanned++) {
        const px_event *e = proxy_event(h->p, h->scanned);
        if (e->kind != PX_EV_PACKET || e->type != PKT_CONNECT || e->dir != PX_UP || !e->client_id)
            continue;
        if (e->conn >= h->nclient) {
            size_t cap = h->nclient ? h->nclient : 16;
            while (cap <= e->conn) cap *= 2;
            h->client = kit_xrealloc(h->client, cap * sizeof *h->client);
            memset(h->client + h->nclient, 0, (cap - h->nclient) * sizeof *h->client);
            h->nclient = cap;
        }
        if (!h->client[e->conn]) h->client[e->conn] = e->client_id;
    }
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* Push event i (0-based) as a table; its index field is 1-based. */
static void push_event(lua_State *L, lproxy *h, size_t i)
{
    const px_event *e = proxy_event(h->p, i);
    lua_createtable(L, 0, 24);
    set_int(L, "i", (lua_Integer)i + 1);
    lua_pushnumber(L, (lua_Number)e->t_us / 1000.0);
    lua_setfield(L, -2, "t");
    set_int(L, "conn", e->conn);
    set_str(L, "kind", px_kind_name(e->kind));
    set_str(L, "transport", px_transport_name(e->transport));
    set_str(L, "dir", px_dir_name(e->dir));
    if (e->conn < h->nclient) set_str(L, "client", h->client[e->conn]);
    set_str(L, "text", e->text);
    if (e->kind != PX_EV_PACKET) return;

    set_str(L, "fate", px_fate_name(e->fate));
    set_str(L, "type", pkt_type_name(e->type));
    set_int(L, "size", e->size);
    set_int(L, "flags", e->flags);
    set_bool(L, "decoded", e->decoded);
    if (e->packet_id >= 0) set_int(L, "id", e->packet_id);
    if (e->reason >= 0) set_int(L, "reason", e->reason);

    switch (e->type) {
    case PKT_CONNECT:
        set_str(L, "client_id", e->client_id);
        set_int(L, "level", e->level);
        set_bool(L, "clean", e->clean);
        set_int(L, "keepalive", e->keepalive);
        set_bool(L, "username", e->has_username);
        set_bool(L, "password", e->has_password);
        if (e->will) {
            lua_createtable(L, 0, 4);
            set_str(L, "topic", e->topic);
            lua_pushlstring(L, e->payload ? e->payload : "", e->payload ? e->payload_kept : 0);
            lua_setfield(L, -2, "payload");
            set_int(L, "qos", e->will_qos);
            set_bool(L, "retain", e->will_retain);
            lua_setfield(L, -2, "will");
        }
        break;
    case PKT_CONNACK:
        if (e->reason >= 0) set_int(L, "rc", e->reason);
        set_bool(L, "session_present", e->session_present);
        break;
    case PKT_PUBLISH:
        set_int(L, "qos", e->qos);
        set_bool(L, "dup", e->dup);
        set_bool(L, "retain", e->retain);
        set_str(L, "topic", e->topic);
        lua_pushlstring(L, e->payload ? e->payload : "", e->payload ? e->payload_kept : 0);
        lua_setfield(L, -2, "payload");
        set_int(L, "payload_len", e->payload_len);
        break;
    case PKT_SUBSCRIBE:
    case PKT_UNSUBSCRIBE:
        lua_createtable(L, e->nfilters, 0);
        for (int k = 0; k < e->nfilters; k++) {
            lua_createtable(L, 0, 2);
            set_str(L, "filter", e->filters[k]);
            if (e->filter_qos[k] >= 0) set_int(L, "qos", e->filter_qos[k]);
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, "filters");
        break;
    case PKT_SUBACK:
    case PKT_UNSUBACK:
        lua_createtable(L, e->ncodes, 0);
        for (int k = 0; k < e->ncodes; k++) {
            lua_pushinteger(L, e->codes[k]);
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, "codes");
        break;
    default:
        break;
    }
}

/* events([from [, to]]) -> list of event tables, from..to (1-based). */
static int l_events(lua_State *L)
{
    lproxy *h = checkproxy(L, 1);
    size_t n = proxy_count(h->p);
    lua_Integer from = luaL_optinteger(L, 2, 1);
    lua_Integer to = luaL_optinteger(L, 3, (lua_Integer)n);
    if (from < 1) from = 1;
    if (to > (lua_Integer)n) to = (lua_Integer)n;
    scan_clients(h, (size_t)(to > 0 ? to : 0));
    lua_createtable(L, to >= from ? (int)(to - from + 1) : 0, 0);
    int k = 0;
    for (lua_Integer i = from; i <= to; i++) {
        push_event(L, h, (size_t)(i - 1));
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* Does the event table on top of the stack match the matcher at index
 * m? A function is called with the event; a table of field = value is
 * judged by mqlab.wire's match(), the same rule wire.select() uses.
 * Leaves the stack as it found it. */
static int matches(lua_State *L, int m)
{
    int ev = lua_gettop(L);
    int is_fn = lua_type(L, m) == LUA_TFUNCTION;
    if (is_fn) {
        lua_pushvalue(L, m);
    } else {
        lua_getglobal(L, "require");
        lua_pushliteral(L, "mqlab.wire");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "match");
        lua_remove(L, -2);
    }
    lua_pushvalue(L, ev);
    if (!is_fn) lua_pushvalue(L, m);
    lua_call(L, is_fn ? 1 : 2, 1);
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return ok;
}

static void check_matcher(lua_State *L, int i)
{
    int t = lua_type(L, i);
    luaL_argcheck(L, t == LUA_TTABLE || t == LUA_TFUNCTION, i,
                  "a table of field = value, or a function(ev)");
}

/* Wait until the trace has more than `have` events, pumping the kit's
 * MQTT clients meanwhile; false once timeout_ms has passed. Raises on
 * Ctrl-C or a spent check budget. */
static int wait_more(lua_State *L, lproxy *h, size_t have, int64_t end)
{
    for (;;) {
        if (proxy_count(h->p) > have) return 1;
        int64_t left = end - kit_now_ms();
        if (left <= 0) return 0;
        host_clamp_ms(L, 1);
        int rc = proxy_wait(h->p, have, left > 10 ? 10 : (int)left);
        if (rc == KIT_EINTR) return host_raise_interrupt(L);
        if (rc == KIT_ERR) {
            char err[KIT_ERRLEN] = "";
            proxy_error(h->p, err);
            return luaL_error(L, "%s", err);
        }
        mq_pump(0);
    }
}

/* wait(match, timeout_s [, from]) -> event | nil */
static int l_wait(lua_State *L)
{
    lproxy *h = checkproxy(L, 1);
    check_matcher(L, 2);
    int ms = host_clamp_ms(L, host_opt_ms(L, 3, 5000));
    lua_Integer from = luaL_optinteger(L, 4, 1);
    size_t pos = from > 1 ? (size_t)(from - 1) : 0;
    int64_t end = kit_now_ms() + ms;
    for (;;) {
        size_t n = proxy_count(h->p);
        scan_clients(h, n);
        for (; pos < n; pos++) {
            push_event(L, h, pos);
            if (matches(L, 2)) return 1;
            lua_pop(L, 1);
        }
        if (!wait_more(L, h, n, end)) break;
    }
    luaL_pushfail(L);
    return 1;
}

/* wait_count(match, n, timeout_s [, from]) -> ok, count */
static int l_wait_count(lua_State *L)
{
    lproxy *h = checkproxy(L, 1);
    check_matcher(L, 2);
    lua_Integer want = luaL_checkinteger(L, 3);
    int ms = host_clamp_ms(L, host_opt_ms(L, 4, 5000));
    lua_Integer from = luaL_optinteger(L, 5, 1);
    size_t pos = from > 1 ? (size_t)(from - 1) : 0;
    lua_Integer got = 0;
    int64_t end = kit_now_ms() + ms;
    for (;;) {
        size_t n = proxy_count(h->p);
        scan_clients(h, n);
        for (; pos < n && got < want; pos++) {
            push_event(L, h, pos);
            if (matches(L, 2)) got++;
            lua_pop(L, 1);
        }
        if (got >= want || !wait_more(L, h, n, end)) break;
    }
    lua_pushboolean(L, got >= want);
    lua_pushinteger(L, got);
    return 2;
}

/* Shared by close(), __close and __gc; a second call does nothing. */
static int l_close(lua_State *L)
{
    lproxy *h = toproxy(L, 1);
    proxy_free(h->p);
    h->p = NULL;
    SSL_CTX_free(h->tls);
    h->tls = NULL;
    free(h->client);
    h->client = NULL;
    h->nclient = h->scanned = 0;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lproxy *h = toproxy(L, 1);
    if (!h->p) lua_pushliteral(L, "proxy (closed)");
    else lua_pushfstring(L, "proxy (127.0.0.1:%d)", h->port);
    return 1;
}

static const luaL_Reg methods[] = {
    { "port", l_port },
    { "ws_port", l_ws_port },
    { "rule", l_rule },
    { "fired", l_fired },
    { "clear_rules", l_clear_rules },
    { "cut_all", l_cut_all },
    { "blackhole", l_blackhole },
    { "refuse", l_refuse },
    { "open_conns", l_open_conns },
    { "count", l_count },
    { "stats", l_stats },
    { "error", l_error },
    { "events", l_events },
    { "wait", l_wait },
    { "wait_count", l_wait_count },
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

int luaopen_mqlab_proxy(lua_State *L)
{
    host_class(L, PROXY_MT, metamethods, methods);
    luaL_newlib(L, funcs);
    return 1;
}
