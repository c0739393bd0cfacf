/*
 * lua_browser.c - the mqlab.browser module: headless Chromium for labs
 * that grade a web page. A thin layer over browser.h.
 *
 *   local browser = require "mqlab.browser"
 *   local br, err, code = browser.start{ timeout = 30, sandbox = true|false|nil,
 *                                        width =, height =, js_heap_mb =, ro = {paths} }
 *   br:navigate(url [, timeout_s])      true, or nil + err + code
 *   br:eval(js [, timeout_s])           the value (tables, strings, numbers,
 *                                       booleans; nil for null/undefined),
 *                                       or nil + err + code ("js" when it threw)
 *   br:screenshot(path [, timeout_s])   true, or nil + err + code
 *   br:console([clear])                 { {level=, text=, source=}, ... }
 *   br:close()                          also on garbage collection
 *   browser.mqttjs()                    path of mqtt.min.js, or nil + err + "missing"
 *
 * navigate, not goto: goto is a keyword in Lua 5.4 (br:goto(...) does
 * not parse).
 *
 * As mqlab.broker does, failures are nil + message + code, code being
 * "missing" when the machine lacks Chromium (the lab's setup passes that
 * on, and the kit exits 3 with the message, which says how to install
 * it), "timeout", "gone" (Chromium exited) or "error". sandbox = nil runs
 * Chromium in the kit's sandbox when it can run here; true requires it;
 * false never. Screenshot paths go through the grading's policy like any
 * write. Ctrl-C and a spent time budget raise, as everywhere.
 */
#include "browser.h"
#include "host.h"
#include "json.h"
#include "policy.h"
#include "util.h"

#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BROWSER_MT "mqlab.browser"

typedef struct {
    browser_t *b;   /* NULL: closed */
} lbrowser;

static lbrowser *checkopen(lua_State *L)
{
    lbrowser *h = (lbrowser *)luaL_checkudata(L, 1, BROWSER_MT);
    if (!h->b) luaL_error(L, "attempt to use a closed browser");
    return h;
}

static const char *code_name(int rc)
{
    switch (rc) {
    case KIT_EMISSING: return "missing";
    case KIT_ETIMEOUT: return "timeout";
    case KIT_ENOTCONN: return "gone";
    default: return "error";
    }
}

static int fail(lua_State *L, int rc, const char *err, const char *code)
{
    /* Ctrl-C is not the lab's to handle: unwind like the host's hook. */
    if (rc == KIT_EINTR) return host_raise_interrupt(L);
    luaL_pushfail(L);
    lua_pushstring(L, err);
    lua_pushstring(L, code ? code : code_name(rc));
    return 3;
}

/* A wait asked for (seconds at index i, default def_ms), cut to the
 * time budget; raises when it is spent. */
static int wait_ms(lua_State *L, int i, int def_ms)
{
    return host_clamp_ms(L, host_opt_ms(L, i, def_ms));
}

/* A JSON value as a Lua value; depth is bounded by the parser. */
static void push_json(lua_State *L, const json_t *v)
{
    luaL_checkstack(L, 4, "JSON nested too deep");
    switch (v->type) {
    case JSON_NULL: lua_pushnil(L); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    case JSON_NUMBER:
        if (v->num == floor(v->num) && fabs(v->num) < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)v->num);
        else
            lua_pushnumber(L, v->num);
        break;
    case JSON_STRING: lua_pushlstring(L, v->str, v->len); break;
    case JSON_ARRAY: {
        lua_createtable(L, v->count > INT_MAX ? 0 : (int)v->count, 0);
        lua_Integer i = 1;
        for (const json_t *e = v->child; e; e = e->next, i++) {
            push_json(L, e);
            lua_rawseti(L, -2, i);   /* a null leaves a hole, as in any Lua list */
        }
        break;
    }
    case JSON_OBJECT:
        lua_createtable(L, 0, v->count > INT_MAX ? 0 : (int)v->count);
        for (const json_t *e = v->child; e; e = e->next) {
            lua_pushlstring(L, e->key, e->key_len);
            push_json(L, e);
            lua_rawset(L, -3);
        }
        break;
    }
}

static int opt_int_field(lua_State *L, const char *key, int def)
{
    lua_getfield(L, 1, key);
    int v = lua_isnil(L, -1) ? def : (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* start{...}: see the top of the file. */
static int l_start(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    browser_opts_t o = { 0 };
    lua_getfield(L, 1, "timeout");
    o.timeout_ms = lua_isnil(L, -1) ? 30000 : (int)(luaL_checknumber(L, -1) * 1000);
    lua_pop(L, 1);
    o.timeout_ms = host_clamp_ms(L, o.timeout_ms > 0 ? o.timeout_ms : 30000);
    lua_getfield(L, 1, "sandbox");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_argerror(L, 1, "'sandbox' must be a boolean");
    o.sandbox = lua_isnil(L, -1) ? BROWSER_SANDBOX_AUTO
              : lua_toboolean(L, -1) ? BROWSER_SANDBOX_REQUIRE : BROWSER_SANDBOX_NEVER;
    lua_pop(L, 1);
    o.width = opt_int_field(L, "width", 0);
    o.height = opt_int_field(L, "height", 0);
    o.js_heap_mb = opt_int_field(L, "js_heap_mb", 0);
    if (o.width < 0 || o.width > 8192 || o.height < 0 || o.height > 8192)
        luaL_argerror(L, 1, "width and height must be between 1 and 8192");
    if (o.js_heap_mb < 0 || o.js_heap_mb > 8192) luaL_argerror(L, 1, "js_heap_mb must be between 1 and 8192");
    /* ro: paths the page may read; each must be readable by the grading. */
    const char **ro = NULL;
    if (lua_getfield(L, 1, "ro") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_Integer n = luaL_len(L, -1);
        if (n < 0 || n > 64) luaL_argerror(L, 1, "'ro' has too many paths");
        ro = lua_newuserdatauv(L, sizeof *ro * (size_t)(n + 1), 0);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -2, i) != LUA_TSTRING) luaL_argerror(L, 1, "'ro' must hold strings");
            host_allow(L, lua_tostring(L, -1), POLICY_READ, NULL, 0);
            ro[i - 1] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        ro[n] = NULL;
        /* The strings stay alive in the ro table, on the stack. */
    }
    o.ro = ro;
    char err[KIT_ERRLEN];
    browser_t *b = NULL;
    int rc = browser_start(&o, &b, err);
    if (rc != KIT_OK) return fail(L, rc, err, NULL);
    lbrowser *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->b = b;
    luaL_setmetatable(L, BROWSER_MT);
    return 1;
}

static int l_navigate(lua_State *L)
{
    lbrowser *h = checkopen(L);
    const char *url = luaL_checkstring(L, 2);
    int ms = wait_ms(L, 3, 30000);
    char err[KIT_ERRLEN];
    int rc = browser_goto(h->b, url, ms, err);
    if (rc == KIT_ETIMEOUT) host_clamp_ms(L, 1);   /* the budget, if that is what ran out */
    if (rc != KIT_OK) return fail(L, rc, err, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_eval(lua_State *L)
{
    lbrowser *h = checkopen(L);
    const char *js = luaL_checkstring(L, 2);
    int ms = wait_ms(L, 3, 10000);
    char err[KIT_ERRLEN];
    char *text = NULL;
    int rc = browser_eval(h->b, js, ms, &text, err);
    if (rc == KIT_ETIMEOUT) host_clamp_ms(L, 1);
    /* A thrown error is the page's: code "js". */
    if (rc != KIT_OK) return fail(L, rc, err, rc == KIT_ERR ? "js" : NULL);
    json_t *v = json_parse(text, strlen(text), err);
    free(text);
    if (!v) return fail(L, KIT_ERR, err, NULL);
    push_json(L, v);
    json_free(v);
    return 1;
}

static int l_screenshot(lua_State *L)
{
    lbrowser *h = checkopen(L);
    char real[PATH_MAX];
    luaL_checkstring(L, 2);
    host_allow(L, lua_tostring(L, 2), POLICY_WRITE, real, sizeof real);
    int ms = wait_ms(L, 3, 20000);
    char err[KIT_ERRLEN];
    int rc = browser_screenshot(h->b, real, ms, err);
    if (rc != KIT_OK) return fail(L, rc, err, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_console(lua_State *L)
{
    lbrowser *h = checkopen(L);
    int clear = lua_toboolean(L, 2);
    char err[KIT_ERRLEN];
    browser_pump(h->b, err);   /* what arrived since the last call; a dead browser keeps what it had */
    size_t n;
    const browser_msg_t *m = browser_console(h->b, &n);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, m[i].level);
        lua_setfield(L, -2, "level");
        lua_pushstring(L, m[i].text);
        lua_setfield(L, -2, "text");
        lua_pushstring(L, m[i].source);
        lua_setfield(L, -2, "source");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (clear) browser_console_clear(h->b);
    return 1;
}

static int l_sandboxed(lua_State *L)
{
    lbrowser *h = checkopen(L);
    lua_pushboolean(L, browser_sandboxed(h->b));
    return 1;
}

static int l_close(lua_State *L)
{
    lbrowser *h = (lbrowser *)luaL_checkudata(L, 1, BROWSER_MT);
    browser_stop(h->b);
    h->b = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbrowser *h = (lbrowser *)luaL_checkudata(L, 1, BROWSER_MT);
    lua_pushfstring(L, "browser (%s)", h->b ? "open" : "closed");
    return 1;
}

static int l_mqttjs(lua_State *L)
{
    char path[PATH_MAX], err[KIT_ERRLEN];
    int rc = browser_find_mqttjs(path, sizeof path, err);
    if (rc != KIT_OK) return fail(L, rc, err, NULL);
    /* The kit's own file: a lab may read it (and serve it to its page,
     * lab 11's /vendor/mqtt.min.js), as it reads the kit's certificates. */
    policy_add(path, POLICY_READ, NULL);
    lua_pushstring(L, path);
    return 1;
}

int luaopen_mqlab_browser(lua_State *L)
{
    static const luaL_Reg meta[] = {
        { "__gc", l_close }, { "__close", l_close }, { "__tostring", l_tostring },
        { "__index", NULL }, { NULL, NULL }
    };
    static const luaL_Reg methods[] = {
        { "navigate", l_navigate }, { "eval", l_eval }, { "screenshot", l_screenshot },
        { "console", l_console }, { "sandboxed", l_sandboxed }, { "close", l_close }, { NULL, NULL }
    };
    host_class(L, BROWSER_MT, meta, methods);
    static const luaL_Reg fns[] = { { "start", l_start }, { "mqttjs", l_mqttjs }, { NULL, NULL } };
    luaL_newlib(L, fns);
    return 1;
}
