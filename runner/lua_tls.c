/*
 * lua_tls.c - mqlab.tls: the kit's PKI, TLS probes and the impostor
 * broker for lab authors. A thin layer over tls.c.
 *
 *   local dir = tls.certs()                      -- raises on failure
 *   local r = tls.versions{ port = P }           -- r["1.2"], r.errors["1.0"]
 *   local c = tls.cert{ port = P, ca = dir .. "/ca.crt", name = "localhost" }
 *   local p = tls.plain{ port = P }
 *   local imp <close> = tls.impostor{ cert = dir .. "/impostor.crt",
 *                                     key = dir .. "/impostor.key" }
 *   ... imp:port() ... imp:report() ... imp:close()
 *
 * The probes report what the wire showed in a table; only misuse (bad
 * arguments, an unreadable CA file) raises. host defaults to 127.0.0.1
 * and timeout to 3 s (per handshake, cut to the step's budget); cert's
 * name is optional (without it only the chain is checked); plain's
 * `answered` means any bytes came back, `connack` that they were a
 * CONNACK. The impostor is a full
 * userdata shaped like liolib.c's files: created closed, then started;
 * close(), __close and __gc share one idempotent close.
 */
#include "host.h"
#include "policy.h"
#include "tls.h"
#include "util.h"

#include <lauxlib.h>
#include <lua.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPOSTOR_MT "mqlab.tls.impostor"
#define DEFAULT_TIMEOUT_MS 3000

/* ---- argument helpers ------------------------------------------------ */

/* A file the kit will read for the lab (a CA, a certificate, a key): only
 * what the grading allows (see policy.h); raises naming the lab's line. */
static void readable_file(lua_State *L, const char *path)
{
    host_allow(L, path, POLICY_READ, NULL, 0);
}

static int port_field(lua_State *L, int t)
{
    lua_getfield(L, t, "port");
    int isint = 0;
    lua_Integer p = lua_tointegerx(L, -1, &isint);
    if (!isint || p < 1 || p > 65535)
        luaL_argerror(L, t, "field 'port' must be an integer 1..65535");
    lua_pop(L, 1);
    return (int)p;
}

/* An optional string field; the string stays on the stack (alive) until
 * the function returns. */
static const char *opt_string_field(lua_State *L, int t, const char *key)
{
    int ty = lua_getfield(L, t, key);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (ty != LUA_TSTRING)
        luaL_argerror(L, t, lua_pushfstring(L, "field '%s' must be a string", key));
    return lua_tostring(L, -1);
}

static const char *string_field(lua_State *L, int t, const char *key)
{
    const char *s = opt_string_field(L, t, key);
    if (!s || !*s) luaL_argerror(L, t, lua_pushfstring(L, "field '%s' is required", key));
    return s;
}

/* Seconds field `timeout` as ms, cut to the step's budget. */
static int timeout_field(lua_State *L, int t)
{
    int ty = lua_getfield(L, t, "timeout");
    int ms = DEFAULT_TIMEOUT_MS;
    if (ty != LUA_TNIL) {
        if (!lua_isnumber(L, -1))
            luaL_argerror(L, t, "field 'timeout' must be seconds (a number)");
        lua_Number s = lua_tonumber(L, -1);
        if (s < 0 || s > 86400) luaL_argerror(L, t, "field 'timeout' must be 0..86400 seconds");
        ms = (int)(s * 1000 + 0.5);
    }
    lua_pop(L, 1);
    return ms;
}

/* Ctrl-C and misuse both unwind; host_call tells them apart by text. */
static int fail_raise(lua_State *L, int rc, const char *err)
{
    (void)rc;
    return luaL_error(L, "%s", err && *err ? err : "tls: failed");
}

static void set_string(lua_State *L, const char *key, const char *s)
{
    if (s && *s) {
        lua_pushstring(L, s);
        lua_setfield(L, -2, key);
    }
}

static void set_bool(lua_State *L, const char *key, int b)
{
    lua_pushboolean(L, b);
    lua_setfield(L, -2, key);
}

static void push_list(lua_State *L, char **items, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, items[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* ---- module functions ------------------------------------------------ */

/* certs() -> absolute folder, made complete when files are missing. */
static int l_certs(lua_State *L)
{
    char dir[PATH_MAX], err[KIT_ERRLEN] = "";
    int rc = tls_default_certs_dir(dir, sizeof dir, err);
    if (rc == KIT_OK) rc = tls_pki_ensure(dir, NULL, NULL, err);
    if (rc != KIT_OK) return luaL_error(L, "tls.certs: %s", err);
    /* The folder exists now: hand out its canonical name, and let the lab
     * read it (it may have been made just now, after the grading's
     * folders were registered). */
    char real[PATH_MAX];
    const char *name = realpath(dir, real) ? real : dir;
    if (policy_active()) policy_add(name, POLICY_READ, NULL);
    lua_pushstring(L, name);
    return 1;
}

/* versions{port=, host=, timeout=} -> { ["1.0"]=bool, ..., errors = {...} } */
static int l_versions(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int port = port_field(L, 1);
    const char *host = opt_string_field(L, 1, "host");
    int timeout_ms = timeout_field(L, 1);

    lua_newtable(L);        /* result */
    lua_newtable(L);        /* errors */
    for (int v = 0; v < TLS_NVERSIONS; v++) {
        /* Each attempt gets the timeout, cut to what the step has left. */
        int ms = host_clamp_ms(L, timeout_ms);
        int ok = 0;
        char why[256] = "";
        int rc = tls_probe_version(host, port, v, ms, &ok, why, sizeof why);
        if (rc != KIT_OK) return fail_raise(L, rc, why);
        lua_pushboolean(L, ok);
        lua_setfield(L, -3, tls_version_name(v));
        if (!ok) {
            lua_pushstring(L, why);
            lua_setfield(L, -2, tls_version_name(v));
        }
    }
    lua_setfield(L, -2, "errors");
    return 1;
}

/* cert{port=, ca=, name=, host=, timeout=} -> { handshake=, version=, ... } */
static int l_cert(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int port = port_field(L, 1);
    const char *ca = string_field(L, 1, "ca");
    readable_file(L, ca);
    const char *name = opt_string_field(L, 1, "name");
    const char *host = opt_string_field(L, 1, "host");
    int ms = host_clamp_ms(L, timeout_field(L, 1));

    tls_cert_info_t *c = lua_newuserdatauv(L, sizeof *c, 0);   /* big: not on the C stack */
    char err[KIT_ERRLEN] = "";
    int rc = tls_probe_cert(host, port, ca, name, ms, c, err);
    if (rc != KIT_OK) return fail_raise(L, rc, err);

    lua_newtable(L);
    set_bool(L, "handshake", c->handshake);
    if (c->handshake) set_string(L, "version", c->version);
    if (c->have_cert) {
        set_string(L, "subject", c->subject);
        set_string(L, "issuer", c->issuer);
        lua_createtable(L, c->nnames, 0);
        for (int i = 0; i < c->nnames; i++) {
            lua_pushstring(L, c->names[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "names");
        set_string(L, "not_after", c->not_after);
        set_bool(L, "expired", c->expired);
    }
    set_bool(L, "verified", c->verified);
    if (c->handshake && !c->verified) set_string(L, "verify_error", c->verify_error);
    if (!c->handshake) set_string(L, "error", c->error[0] ? c->error : "no handshake");
    return 1;
}

/* plain{port=, host=, timeout=} -> { answered=, connack=, closed=, error= } */
static int l_plain(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int port = port_field(L, 1);
    const char *host = opt_string_field(L, 1, "host");
    int ms = host_clamp_ms(L, timeout_field(L, 1));

    tls_plain_result_t p;
    char err[KIT_ERRLEN] = "";
    int rc = tls_probe_plain(host, port, ms, &p, err);
    if (rc != KIT_OK) return fail_raise(L, rc, err);

    lua_newtable(L);
    set_bool(L, "answered", p.answered);
    if (p.connack >= 0) {
        lua_pushinteger(L, p.connack);
        lua_setfield(L, -2, "connack");
    }
    set_bool(L, "closed", p.closed);
    set_string(L, "error", p.error);
    return 1;
}

/* ---- the impostor ---------------------------------------------------- */

typedef struct {
    tls_impostor_t *imp;    /* NULL: closed */
    int port;
} limpostor;

static limpostor *toimpostor(lua_State *L, int i)
{
    return (limpostor *)luaL_checkudata(L, i, IMPOSTOR_MT);
}

static limpostor *checkimpostor(lua_State *L, int i)
{
    limpostor *h = toimpostor(L, i);
    if (!h->imp) luaL_error(L, "attempt to use a closed impostor");
    return h;
}

/* impostor{cert=, key=} -> impostor | nil, message, code */
static int l_impostor(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *cert = string_field(L, 1, "cert");
    const char *key = string_field(L, 1, "key");
    readable_file(L, cert);
    readable_file(L, key);
    host_clamp_ms(L, 1);    /* not when the user pressed Ctrl-C */

    limpostor *h = (limpostor *)lua_newuserdatauv(L, sizeof *h, 0);
    h->imp = NULL;
    h->port = 0;
    luaL_setmetatable(L, IMPOSTOR_MT);

    char err[KIT_ERRLEN] = "";
    int rc = tls_impostor_start(&h->imp, cert, key, err);
    if (rc != KIT_OK) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushstring(L, rc == KIT_ENOENT ? "notfound" : "error");
        return 3;
    }
    h->port = tls_impostor_port(h->imp);
    return 1;
}

static int l_port(lua_State *L)
{
    lua_pushinteger(L, checkimpostor(L, 1)->port);
    return 1;
}

static int l_report(lua_State *L)
{
    limpostor *h = checkimpostor(L, 1);
    host_clamp_ms(L, 1);
    tls_impostor_report_t r;
    int rc = tls_impostor_report(h->imp, &r);
    if (rc == KIT_EINTR) {
        tls_impostor_report_free(&r);
        host_clamp_ms(L, 1);        /* raises on Ctrl-C */
        return luaL_error(L, "interrupted");
    }
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, r.connections);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, r.handshakes);
    lua_setfield(L, -2, "handshakes");
    lua_pushinteger(L, (lua_Integer)r.bytes_after);
    lua_setfield(L, -2, "bytes_after");
    set_bool(L, "connect_seen", r.connect_seen);
    push_list(L, r.client_ids, r.nclient_ids);
    lua_setfield(L, -2, "client_ids");
    push_list(L, r.alerts, r.nalerts);
    lua_setfield(L, -2, "alerts");
    push_list(L, r.errors, r.nerrors);
    lua_setfield(L, -2, "errors");
    tls_impostor_report_free(&r);
    return 1;
}

/* Shared by close(), __close and __gc; a second call does nothing. */
static int l_close(lua_State *L)
{
    limpostor *h = toimpostor(L, 1);
    tls_impostor_stop(h->imp);
    h->imp = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    limpostor *h = toimpostor(L, 1);
    if (!h->imp) lua_pushliteral(L, "tls impostor (closed)");
    else lua_pushfstring(L, "tls impostor (127.0.0.1:%d)", h->port);
    return 1;
}

static const luaL_Reg methods[] = {
    { "port", l_port },
    { "report", l_report },
    { "close", l_close },
    { NULL, NULL }
};

static const luaL_Reg metamethods[] = {
    { "__index", NULL },    /* filled with the method table below */
    { "__gc", l_close },
    { "__close", l_close },
    { "__tostring", l_tostring },
    { NULL, NULL }
};

static const luaL_Reg funcs[] = {
    { "certs", l_certs },
    { "versions", l_versions },
    { "cert", l_cert },
    { "plain", l_plain },
    { "impostor", l_impostor },
    { NULL, NULL }
};

int luaopen_mqlab_tls(lua_State *L)
{
    host_class(L, IMPOSTOR_MT, metamethods, methods);
    luaL_newlib(L, funcs);
    return 1;
}
