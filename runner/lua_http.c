/*
 * lua_http.c - the mqlab.http module: the kit's HTTP server (http.h) for
 * lab files and `mqlab run` scripts.
 *
 *   local http = require "mqlab.http"
 *   local s = http.start { root = ctx.dir, port = 0 }
 *   s:route_file("/vendor/mqtt.min.js", path)   -- a file at a fixed path
 *   s:route("/page.html", bytes [, ctype])      -- bytes held in memory
 *   s:port(); s:url("/dashboard.html")
 *   s:requests([from]) -> { {method=, path=, status=}, ... }
 *   s:close()
 *
 * While a lab runs, the folder served must be one the lab may read
 * (policy.h): the server's thread reads it on its own afterwards.
 */
#include "host.h"
#include "http.h"
#include "policy.h"
#include "util.h"

#include <lauxlib.h>
#include <limits.h>
#include <string.h>

#define HTTP_MT "mqlab.http"

typedef struct {
    http_server *s;
} lhttp;

static lhttp *tohttp(lua_State *L, int i)
{
    return luaL_checkudata(L, i, HTTP_MT);
}

static http_server *checkhttp(lua_State *L, int i)
{
    lhttp *h = tohttp(L, i);
    if (!h->s) luaL_error(L, "the HTTP server is closed");
    return h->s;
}

/* The path, resolved, when the lab may read it; raises otherwise. */
static void readable(lua_State *L, const char *path, char *out, size_t len)
{
    char err[KIT_ERRLEN];
    if (policy_check(path, POLICY_READ, out, len, err) != KIT_OK) luaL_error(L, "%s", err);
}

static int l_start(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    http_opts o;
    memset(&o, 0, sizeof o);
    char root[PATH_MAX];
    if (lua_getfield(L, 1, "root") != LUA_TNIL) {
        readable(L, luaL_checkstring(L, -1), root, sizeof root);
        o.root = root;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "port");
    o.port = (int)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    if (o.port < 0 || o.port > 65535) return luaL_argerror(L, 1, "field 'port' must be 0..65535");
    lhttp *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->s = NULL;
    luaL_setmetatable(L, HTTP_MT);
    char err[KIT_ERRLEN];
    if (http_start(&o, &h->s, err) != KIT_OK) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

static int l_port(lua_State *L)
{
    lua_pushinteger(L, http_port(checkhttp(L, 1)));
    return 1;
}

static int l_url(lua_State *L)
{
    http_server *s = checkhttp(L, 1);
    const char *path = luaL_optstring(L, 2, "/");
    lua_pushfstring(L, "http://127.0.0.1:%d%s", http_port(s), path);
    return 1;
}

static int l_route_file(lua_State *L)
{
    http_server *s = checkhttp(L, 1);
    const char *url = luaL_checkstring(L, 2);
    char real[PATH_MAX];
    readable(L, luaL_checkstring(L, 3), real, sizeof real);
    char err[KIT_ERRLEN];
    if (http_route_file(s, url, real, err) != KIT_OK) luaL_error(L, "%s", err);
    return 0;
}

static int l_route(lua_State *L)
{
    http_server *s = checkhttp(L, 1);
    const char *url = luaL_checkstring(L, 2);
    size_t len;
    const char *body = luaL_checklstring(L, 3, &len);
    const char *ctype = luaL_optstring(L, 4, NULL);
    char err[KIT_ERRLEN];
    if (http_route_bytes(s, url, ctype, body, len, err) != KIT_OK) luaL_error(L, "%s", err);
    return 0;
}

static void push_req(void *ud, const char *method, const char *path, int status)
{
    lua_State *L = ud;
    lua_createtable(L, 0, 3);
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int l_requests(lua_State *L)
{
    http_server *s = checkhttp(L, 1);
    lua_Integer from = luaL_optinteger(L, 2, 1);
    lua_newtable(L);
    http_requests(s, from > 1 ? (size_t)(from - 1) : 0, push_req, L);
    return 1;
}

static int l_close(lua_State *L)
{
    lhttp *h = tohttp(L, 1);
    http_free(h->s);
    h->s = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lhttp *h = tohttp(L, 1);
    if (!h->s) lua_pushliteral(L, "http server (closed)");
    else lua_pushfstring(L, "http server (127.0.0.1:%d)", http_port(h->s));
    return 1;
}

static const luaL_Reg methods[] = {
    { "port", l_port },
    { "url", l_url },
    { "route_file", l_route_file },
    { "route", l_route },
    { "requests", l_requests },
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

int luaopen_mqlab_http(lua_State *L)
{
    host_class(L, HTTP_MT, metamethods, methods);
    luaL_newlib(L, funcs);
    return 1;
}
