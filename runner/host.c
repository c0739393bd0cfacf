/*
 * host.c - the one door into Lua (see host.h).
 *
 * The deadline lives in a file-level variable rather than in the state:
 * mqlab runs one check at a time, and the bindings need it without a
 * lookup on every wait.
 */
#include "host.h"
#include "policy.h"
#include "cleanup.h"
#include "embedded.h"
#include "util.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int luaopen_mqlab_mqtt(lua_State *L);
int luaopen_mqlab_topics(lua_State *L);
int luaopen_mqlab_broker(lua_State *L);
int luaopen_mqlab_programs(lua_State *L);
int luaopen_mqlab_kit(lua_State *L);
int luaopen_mqlab_proxy(lua_State *L);
int luaopen_mqlab_http(lua_State *L);
int luaopen_mqlab_tls(lua_State *L);
int luaopen_mqlab_sqlite(lua_State *L);
int luaopen_mqlab_bench(lua_State *L);
int luaopen_mqlab_browser(lua_State *L);

struct host {
    lua_State *L;
    int engine;       /* registry ref of mqlab.engine, LUA_NOREF until loaded */
};

static int64_t deadline_ms;   /* monotonic; 0: none */
static int expired;           /* the deadline's error was raised (sticky until disarmed) */
static host_t *the_host;      /* for the panic handler */

/* The hook's two paces: every HOOK_COUNT instructions while the budget
 * lasts, then every instruction once it is spent, as redis re-arms its
 * script-kill hook: a lab's own pcall can catch the error, but the very
 * next instruction raises it again, so the check unwinds all the way. */
#define HOOK_COUNT 1000
static void count_hook(lua_State *L, lua_Debug *ar);

static void set_pace(lua_State *L, int every_instruction)
{
    lua_sethook(L, count_hook, every_instruction ? LUA_MASKCOUNT | LUA_MASKLINE : LUA_MASKCOUNT,
                every_instruction ? 1 : HOOK_COUNT);
}

void host_set_deadline(int ms)
{
    deadline_ms = ms > 0 ? kit_now_ms() + ms : 0;
    expired = 0;
    if (the_host) set_pace(the_host->L, 0);
}

int host_left_ms(void)
{
    if (!deadline_ms) return INT32_MAX;
    int64_t left = deadline_ms - kit_now_ms();
    return left < 0 ? 0 : (int)(left > INT32_MAX ? INT32_MAX : left);
}

int host_deadline_expired(void) { return expired; }

/* The texts are for people; host_call tells the two apart by the flags
 * (cleanup_interrupted, expired), never by matching these words. */
static const char MSG_INTR[] = "interrupted by the user";
static const char MSG_TIMEOUT[] = "time budget of this step is spent";

int host_raise_interrupt(lua_State *L)
{
    return luaL_error(L, MSG_INTR);
}

int host_raise_timeout(lua_State *L)
{
    expired = 1;
    set_pace(L, 1);
    return luaL_error(L, MSG_TIMEOUT);
}

static int deadline_passed(void)
{
    return deadline_ms && (expired || kit_now_ms() > deadline_ms);
}

int host_clamp_ms(lua_State *L, int ms)
{
    if (cleanup_interrupted()) host_raise_interrupt(L);
    if (deadline_passed()) host_raise_timeout(L);
    int left = host_left_ms();
    if (ms < 0) ms = 0;
    return ms < left ? ms : left;
}

int host_opt_ms(lua_State *L, int i, int def_ms)
{
    if (lua_isnoneornil(L, i)) return def_ms;
    double s = luaL_checknumber(L, i);
    if (s < 0) s = 0;
    if (s > 86400) s = 86400;
    return (int)(s * 1000.0 + 0.5);
}

/* Every HOOK_COUNT instructions (every one once the budget is spent): a
 * busy loop in a lab cannot outlive its budget, and Ctrl-C reaches Lua
 * code that never waits. A coroutine made before the budget ran out
 * keeps its slower pace until its own hook fires, then switches too. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (cleanup_interrupted()) host_raise_interrupt(L);
    if (deadline_passed()) host_raise_timeout(L);
}

/* Where a lab file called the kit from: the first Lua frame that is not
 * one of the kit's own modules (runner/lua/...). "file:line: " or "". */
void host_lab_where(lua_State *L, char *buf, size_t len)
{
    lua_Debug ar;
    buf[0] = '\0';
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
        if (strncmp(ar.source, "@runner/lua/", 12) == 0) continue;
        snprintf(buf, len, "%s:%d: ", ar.short_src, ar.currentline);
        return;
    }
}

void host_allow(lua_State *L, const char *path, int rights, char *resolved, size_t len)
{
    char err[KIT_ERRLEN];
    if (policy_check(path, rights, resolved, len, err) == KIT_OK) return;
    char where[PATH_MAX];
    host_lab_where(L, where, sizeof where);
    luaL_error(L, "%s%s", where, err);
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int host_call(host_t *h, int nargs, int nresults, char *err, size_t errlen)
{
    lua_State *L = h->L;
    int base = lua_gettop(L) - nargs;     /* index of the function */
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc == LUA_OK) return KIT_OK;
    const char *msg = lua_tostring(L, -1);
    if (err && errlen) snprintf(err, errlen, "%s", msg ? msg : "(no message)");
    int code = KIT_ERR;
    if (cleanup_interrupted()) code = KIT_EINTR;
    else if (expired) code = KIT_ETIMEOUT;
    lua_pop(L, 1);
    return code;
}

int host_load(host_t *h, const char *code, size_t len, const char *chunkname,
              int env_idx, char *err, size_t errlen)
{
    lua_State *L = h->L;
    if (env_idx < 0) env_idx = lua_gettop(L) + env_idx + 1;
    if (luaL_loadbufferx(L, code, len, chunkname, "t") != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return KIT_EINVAL;
    }
    if (env_idx > 0) {
        lua_pushvalue(L, env_idx);
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    }
    return KIT_OK;
}

/* package.searchers entry: "mqlab.NAME" is runner/lua/NAME.lua, compiled
 * into the binary. */
static int embedded_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (strncmp(name, "mqlab.", 6) != 0) {
        lua_pushfstring(L, "no embedded module '%s'", name);
        return 1;
    }
    char path[256], bc[260];
    snprintf(path, sizeof path, "runner/lua/%s.lua", name + 6);
    snprintf(bc, sizeof bc, "%sc", path);
    /* The bytecode compiled at build time (runner/tools/embed.c) when it
     * is there: parsing every module on every start is most of it. */
    const embedded_file_t *f = embedded_find(bc);
    const char *mode = "b";
    if (!f) { f = embedded_find(path); mode = "t"; }
    if (!f) {
        lua_pushfstring(L, "no embedded file '%s'", path);
        return 1;
    }
    char chunk[270];
    snprintf(chunk, sizeof chunk, "@%s", path);
    if (luaL_loadbufferx(L, (const char *)f->data, f->len, chunk, mode) != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, path);
    return 2;
}

/* The message handler of a lab's xpcall, guarded: an error raised by the
 * hook (budget spent, Ctrl-C) runs the handler with hooks off, so a
 * handler that loops would hold the kit forever. Such an error skips the
 * lab's handler and goes on unchanged; the next instruction raises again. */
static int guarded_handler(lua_State *L)
{
    if (expired || cleanup_interrupted()) return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int guard_handler(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    lua_pushcclosure(L, guarded_handler, 1);
    return 1;
}

/* mqlab.host: for the engine only (labs may not require it). */
static int luaopen_mqlab_host(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, guard_handler);
    lua_setfield(L, -2, "guard_handler");
    return 1;
}

static void preload(lua_State *L, const char *name, lua_CFunction fn)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* An error outside any protected call (a bug in the kit, or memory
 * exhausted while no pcall was running): Lua would abort() right after
 * this returns, skipping every exit path. Release what the kit started
 * first, then leave. */
static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "mqlab: unrecoverable Lua error: %s\n", msg ? msg : "(no message)");
    cleanup_run();
    _exit(70);
    return 0;
}

host_t *host_new(char *err)
{
    lua_State *L = luaL_newstate();
    if (!L) { kit_seterr(err, KIT_ERR, "cannot create a Lua state"); return NULL; }
    host_t *h = kit_xmalloc(sizeof *h);
    h->L = L;
    h->engine = LUA_NOREF;
    the_host = h;
    lua_atpanic(L, panic);
    luaL_openlibs(L);
    set_pace(L, 0);

    preload(L, "mqlab.mqtt", luaopen_mqlab_mqtt);
    preload(L, "mqlab.topics", luaopen_mqlab_topics);
    preload(L, "mqlab.broker", luaopen_mqlab_broker);
    preload(L, "mqlab.programs", luaopen_mqlab_programs);
    preload(L, "mqlab.proxy", luaopen_mqlab_proxy);
    preload(L, "mqlab.http", luaopen_mqlab_http);
    preload(L, "mqlab.tls", luaopen_mqlab_tls);
    preload(L, "mqlab.sqlite", luaopen_mqlab_sqlite);
    preload(L, "mqlab.bench", luaopen_mqlab_bench);
    preload(L, "mqlab.browser", luaopen_mqlab_browser);
    preload(L, "mqlab.kit", luaopen_mqlab_kit);
    preload(L, "mqlab.host", luaopen_mqlab_host);

    /* Embedded Lua modules come right after the preload searcher, before
     * anything on disk: the kit always runs the code it was built with. */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    for (lua_Integer i = (lua_Integer)luaL_len(L, -1); i >= 2; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, embedded_searcher);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
    return h;
}

lua_State *host_state(host_t *h) { return h->L; }

void host_free(host_t *h)
{
    if (!h) return;
    deadline_ms = 0;
    expired = 0;
    lua_close(h->L);   /* __gc of brokers, programs and clients releases them */
    if (the_host == h) the_host = NULL;
    free(h);
}

static int require_field(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

int host_require(host_t *h, const char *module, char *err, size_t errlen)
{
    lua_State *L = h->L;
    lua_pushcfunction(L, require_field);
    lua_pushstring(L, module);
    return host_call(h, 1, 1, err, errlen);
}

int host_engine(host_t *h, const char *fn, char *err, size_t errlen)
{
    lua_State *L = h->L;
    if (h->engine == LUA_NOREF) {
        int rc = host_require(h, "mqlab.engine", err, errlen);
        if (rc != KIT_OK) return rc;
        h->engine = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->engine);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    return KIT_OK;
}

void host_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
    int n = 0;
    while (methods[n].name) n++;
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_createtable(L, 0, n);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
