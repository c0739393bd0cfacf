/*
 * lua_broker.c - mqlab.broker: private Mosquitto instances for Lua.
 *
 * A thin layer over broker.c, shaped like liolib.c: a broker is a full
 * userdata holding a broker_t (NULL once closed), closed by close(),
 * __close or __gc, whichever comes first. Lab code names a bundled
 * profile, or passes a template text (a student's prepared config).
 *
 *   local b, msg, code = broker.start{profile = "plain" | template = TEXT,
 *                                     name = "plain", extra = "...", port = 0,
 *                                     ready = 5, certs = DIR,  -- DIR fills @CERTS@
 *                                     unix = false}
 *   code: "missing" (no mosquitto), "noprofile", "timeout", "error"
 *
 * unix = true: the broker listens on a unix socket in its private folder
 * instead of a TCP port, so a sandboxed program reaches it only through
 * a proxy (proxy.start{upstream_path = b:socket()}); the kit's clients
 * use mqtt.connect{unix = b:socket()}. Then b:port() is 0 and b:socket()
 * the path (nil for a TCP broker). Not with port.
 */
#include "broker.h"
#include "host.h"
#include "util.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BROKER_MT "mqlab.broker"

typedef struct {
    broker_t *b;        /* NULL: closed */
    char name[64];
} lbroker;

static lbroker *tobroker(lua_State *L, int i)
{
    return (lbroker *)luaL_checkudata(L, i, BROKER_MT);
}

static lbroker *checkbroker(lua_State *L, int i)
{
    lbroker *h = tobroker(L, i);
    if (!h->b) luaL_error(L, "attempt to use a closed broker");
    return h;
}

static const char *code_name(int rc)
{
    switch (rc) {
    case KIT_EMISSING: return "missing";
    case KIT_ETIMEOUT: return "timeout";
    default: return "error";
    }
}

static int fail(lua_State *L, int rc, const char *err)
{
    /* Ctrl-C is not the lab's to handle: unwind like the host's hook. */
    if (rc == KIT_EINTR) return luaL_error(L, "%s", err);
    luaL_pushfail(L);
    lua_pushstring(L, err);
    lua_pushstring(L, code_name(rc));
    return 3;
}

static const char *opt_field_string(lua_State *L, const char *key)
{
    int t = lua_getfield(L, 1, key);
    if (t == LUA_TNIL) return NULL;
    if (t != LUA_TSTRING) {
        luaL_argerror(L, 1, lua_pushfstring(L, "field '%s' must be a string", key));
        return NULL;
    }
    return lua_tostring(L, -1);
}

/* start{profile= | template=, name=, extra=, port=, ready=, certs=, unix=}
 * -> broker | nil, msg, code */
static int l_start(lua_State *L)
{
    char err[KIT_ERRLEN] = "";
    luaL_checktype(L, 1, LUA_TTABLE);
    broker_opts_t o;
    memset(&o, 0, sizeof o);
    /* The strings stay on the stack, hence alive, until we return. */
    const char *profile = opt_field_string(L, "profile");
    o.tmpl = opt_field_string(L, "template");
    if (!o.tmpl == !profile)
        return luaL_argerror(L, 1, "give either 'profile' (a bundled broker) or 'template' (the config text)");
    o.name = opt_field_string(L, "name");
    o.extra = opt_field_string(L, "extra");
    o.certs = opt_field_string(L, "certs");
    int t = lua_getfield(L, 1, "unix");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        return luaL_argerror(L, 1, "field 'unix' must be true or false");
    o.unix_socket = lua_toboolean(L, -1);

    lua_getfield(L, 1, "port");
    if (!lua_isnil(L, -1)) {
        int isint = 0;
        lua_Integer port = lua_tointegerx(L, -1, &isint);
        if (!isint || port < 0 || port > 65535)
            return luaL_argerror(L, 1, "field 'port' must be an integer 0..65535");
        o.port = (int)port;
    }
    if (o.unix_socket && o.port)
        return luaL_argerror(L, 1, "a unix-socket broker (unix = true) has no port");
    lua_getfield(L, 1, "ready");
    int ready_ms = host_opt_ms(L, -1, 5000);
    ready_ms = host_clamp_ms(L, ready_ms);
    o.ready_ms = ready_ms > 0 ? ready_ms : 1;   /* 0 would mean "the default" */

    lbroker *h = (lbroker *)lua_newuserdatauv(L, sizeof *h, 0);
    h->b = NULL;
    snprintf(h->name, sizeof h->name, "%s", o.name ? o.name : profile ? profile : "custom");
    luaL_setmetatable(L, BROKER_MT);

    int rc = profile ? broker_start_profile(&h->b, profile, &o, err) : broker_start(&h->b, &o, err);
    /* An unknown profile is the lab's mistake, not the machine's. */
    if (rc == KIT_ENOENT && profile && strstr(err, "no broker profile")) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushliteral(L, "noprofile");
        return 3;
    }
    if (rc != KIT_OK) return fail(L, rc, err);
    return 1;
}

static int l_port(lua_State *L)
{
    lua_pushinteger(L, broker_port(checkbroker(L, 1)->b));
    return 1;
}

static int l_socket(lua_State *L)
{
    const char *path = broker_socket(checkbroker(L, 1)->b);
    if (path) lua_pushstring(L, path);
    else lua_pushnil(L);
    return 1;
}

static int l_host(lua_State *L)
{
    checkbroker(L, 1);
    lua_pushliteral(L, "127.0.0.1");
    return 1;
}

static int l_dir(lua_State *L)
{
    lua_pushstring(L, broker_dir(checkbroker(L, 1)->b));
    return 1;
}

static int l_log(lua_State *L)
{
    size_t len = 0;
    char *s = broker_log(checkbroker(L, 1)->b, &len);
    lua_pushlstring(L, s ? s : "", s ? len : 0);
    free(s);
    return 1;
}

static int l_running(lua_State *L)
{
    lua_pushboolean(L, broker_running(checkbroker(L, 1)->b));
    return 1;
}

static int l_stop(lua_State *L)
{
    broker_stop(checkbroker(L, 1)->b);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_kill(lua_State *L)
{
    broker_kill(checkbroker(L, 1)->b);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_restart(lua_State *L)
{
    char err[KIT_ERRLEN] = "";
    lbroker *h = checkbroker(L, 1);
    /* The C side waits with the start's ready time; refuse to begin when
     * the check's budget is already spent or the user pressed Ctrl-C. */
    host_clamp_ms(L, 1);
    int rc = broker_restart(h->b, err);
    if (rc != KIT_OK) {
        if (rc == KIT_EINTR) return luaL_error(L, "%s", err);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Shared by close(), __close and __gc; a second call does nothing. */
static int l_close(lua_State *L)
{
    lbroker *h = tobroker(L, 1);
    broker_free(h->b);
    h->b = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbroker *h = tobroker(L, 1);
    if (!h->b)
        lua_pushfstring(L, "broker %s (closed)", h->name);
    else if (broker_socket(h->b))
        lua_pushfstring(L, "broker %s (unix:%s, %s)", h->name, broker_socket(h->b),
                        broker_running(h->b) ? "running" : "stopped");
    else
        lua_pushfstring(L, "broker %s (127.0.0.1:%d, %s)", h->name, broker_port(h->b),
                        broker_running(h->b) ? "running" : "stopped");
    return 1;
}

static const luaL_Reg methods[] = {
    { "port", l_port },
    { "socket", l_socket },
    { "host", l_host },
    { "dir", l_dir },
    { "log", l_log },
    { "running", l_running },
    { "stop", l_stop },
    { "kill", l_kill },
    { "restart", l_restart },
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
    { "start", l_start },
    { NULL, NULL }
};

int luaopen_mqlab_broker(lua_State *L)
{
    host_class(L, BROKER_MT, metamethods, methods);
    luaL_newlib(L, funcs);
    return 1;
}
