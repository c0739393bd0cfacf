/*
 * lua_programs.c - mqlab.programs: a student's submission as a Lua object.
 *
 *   local programs = require "mqlab.programs"
 *   local p, msg, code = programs.start{ dir = sub, name = "hello",
 *       env = { MQTT_HOST = "127.0.0.1", MQTT_PORT = port }, timeout = 10 }
 *   if not p then ... end          -- code: notfound|compile|missing|error
 *   p:wait(5); print(p:exit_code(), p:stdout())
 *
 * Options of start besides dir, name, env and timeout: workdir (a private
 * folder; made and removed here when absent), grace (seconds between TERM
 * and KILL), mem_mb, cpu_s, fsize_mb, nofile, link_sqlite, and for the
 * sandbox: ro = { path, ... } and rw = { path, ... } (host paths bound
 * read-only or writable at the same path; a writable one must belong to
 * the sandbox uid), nproc (RLIMIT_NPROC as root, default 64) and
 * sandbox = false (this program runs outside the sandbox: for tests).
 * programs.sandbox() answers whether programs run sandboxed, and a line
 * that says how (or why not).
 *
 * A thin layer over programs.c. Waiting here keeps the kit's MQTT clients
 * serviced (mq_pump) and is cut by the check's deadline (host_clamp_ms),
 * so a check can wait on a program while its subscriber keeps reading.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "programs.h"
#include "cleanup.h"
#include "host.h"
#include "mqtt.h"
#include "policy.h"
#include "util.h"

#include <lauxlib.h>
#include <lua.h>

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define PROGRAM_MT "mqlab.program"

typedef struct {
    prog_t *p;                /* NULL once closed */
    char tmpdir[PATH_MAX];    /* a workdir we made (removed on close), or "" */
    int grace_ms;
} lprog;

static lprog *checkprog(lua_State *L, int i)
{
    return (lprog *)luaL_checkudata(L, i, PROGRAM_MT);
}

/* The handle at 1, which must be open. */
static lprog *openprog(lua_State *L)
{
    lprog *h = checkprog(L, 1);
    if (!h->p) luaL_argerror(L, 1, "program is closed");
    return h;
}

static void release(lprog *h)
{
    if (h->p) {
        prog_free(h->p);
        h->p = NULL;
    }
    if (h->tmpdir[0]) {
        kit_rmdtemp(h->tmpdir);
        h->tmpdir[0] = '\0';
    }
}

static void sleep_ms(int ms)
{
    if (ms <= 0) return;
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* One step of a wait: service the MQTT clients for up to ms (<= 10), and
 * sleep the rest when mq_pump had nothing to wait on. */
static void pump_step(int ms)
{
    if (ms > 10) ms = 10;
    int64_t t0 = kit_now_ms();
    mq_pump(ms);
    sleep_ms(ms - (int)(kit_now_ms() - t0));
}

/* TERM, a grace period spent pumping, then KILL; prog_stop reaps and
 * takes the group. Never raises: it runs on close paths too, and cuts
 * the grace short when the check's deadline or Ctrl-C says so. */
static void stop_pumping(lprog *h)
{
    prog_t *p = h->p;
    if (prog_poll(p)) {
        prog_signal(p, SIGTERM);
        prog_signal(p, SIGCONT);
        int64_t end = kit_now_ms() + h->grace_ms;
        while (prog_poll(p) && !cleanup_interrupted()) {
            int64_t left = end - kit_now_ms();
            int dl = host_left_ms();
            if (dl < left) left = dl;
            if (left <= 0) break;
            pump_step(left < 10 ? (int)left : 10);
        }
        if (prog_poll(p)) prog_signal(p, SIGKILL);
    }
    prog_stop(p);
}

/* ---- module functions ------------------------------------------------- */

static int l_find(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    const char *name = luaL_checkstring(L, 2);
    char path[PATH_MAX], err[KIT_ERRLEN];
    enum prog_kind kind;
    if (prog_find(dir, name, path, sizeof path, &kind, err) != KIT_OK) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushstring(L, path);
    lua_pushstring(L, prog_kind_name(kind));
    return 2;
}

static int l_python(lua_State *L)
{
    char err[KIT_ERRLEN];
    const char *py = prog_python(err);
    if (!py) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushstring(L, py);
    return 1;
}

/* true/false, and one line on how programs are confined (or why not). */
static int l_sandbox(lua_State *L)
{
    char line[KIT_ERRLEN * 2];
    sbx_describe(line, sizeof line);
    int on = prog_sandbox();
    lua_pushboolean(L, on);
    if (on) lua_pushstring(L, line);
    else lua_pushfstring(L, "off, programs run unconfined (%s)", line);
    return 2;
}

/* t[key] as a string, or NULL when absent. */
static const char *field_string(lua_State *L, const char *key, int required)
{
    lua_getfield(L, 1, key);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) s = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1) || required)
        luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a string", key));
    lua_pop(L, 1);   /* the string stays alive: the table still holds it */
    return s;
}

static int field_ms(lua_State *L, const char *key, int def_ms)
{
    lua_getfield(L, 1, key);
    int ms = def_ms;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a number of seconds", key));
        ms = host_opt_ms(L, lua_gettop(L), def_ms);
        if (ms < 0) luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must not be negative", key));
    }
    lua_pop(L, 1);
    return ms;
}

static long field_count(lua_State *L, const char *key)
{
    lua_getfield(L, 1, key);
    lua_Integer v = 0;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v > INT32_MAX)
            luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a non-negative integer", key));
    }
    lua_pop(L, 1);
    return (long)v;
}

/* env = {K = V} into a NULL-terminated "K=V" array. The strings live in a
 * table and the array in a userdata, both left on the stack, so an error
 * half-way leaks nothing. */
static const char **build_env(lua_State *L)
{
    lua_getfield(L, 1, "env");
    if (lua_isnil(L, -1)) return NULL;
    if (!lua_istable(L, -1)) luaL_argerror(L, 1, "'env' must be a table");
    int src = lua_gettop(L);
    lua_newtable(L);
    int strs = lua_gettop(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, src)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 1, "'env' keys must be strings");
        const char *k = lua_tostring(L, -2);
        if (!*k || strchr(k, '='))
            luaL_argerror(L, 1, lua_pushfstring(L, "bad environment name '%s'", k));
        int t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_argerror(L, 1, lua_pushfstring(L, "env.%s must be a string or a number", k));
        /* Format with tostring on a copy: converting the value in place
         * would be harmless, the key must not be touched during lua_next. */
        lua_pushvalue(L, -1);
        const char *v = lua_tostring(L, -1);
        lua_pushfstring(L, "%s=%s", k, v);
        lua_rawseti(L, strs, ++n);
        lua_pop(L, 2);
    }
    const char **arr = lua_newuserdatauv(L, sizeof *arr * (size_t)(n + 1), 0);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, strs, i);
        arr[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    arr[n] = NULL;
    return arr;
}

/* t[key] = { path, ... } into a NULL-terminated array, left on the stack
 * as a userdata (the strings stay in the caller's table). NULL when
 * absent. */
static const char **build_paths(lua_State *L, const char *key)
{
    lua_getfield(L, 1, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (!lua_istable(L, -1))
        luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a list of paths", key));
    int src = lua_gettop(L);
    lua_Integer n = luaL_len(L, src);
    if (n < 0 || n > 1024) luaL_argerror(L, 1, lua_pushfstring(L, "'%s' has too many paths", key));
    const char **arr = lua_newuserdatauv(L, sizeof *arr * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, src, i) != LUA_TSTRING)
            luaL_argerror(L, 1, lua_pushfstring(L, "%s[%d] must be a string", key, (int)i));
        arr[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    arr[n] = NULL;
    return arr;
}

static const char *code_name(int rc)
{
    switch (rc) {
    case KIT_ENOENT: return "notfound";
    case KIT_EINVAL: return "compile";
    case KIT_EMISSING: return "missing";
    default: return "error";
    }
}

static int l_start(lua_State *L)
{
    char err[KIT_ERRLEN];
    luaL_checktype(L, 1, LUA_TTABLE);
    prog_opts_t o;
    memset(&o, 0, sizeof o);
    o.dir = field_string(L, "dir", 1);
    o.name = field_string(L, "name", 1);
    o.workdir = field_string(L, "workdir", 0);
    o.wall_ms = field_ms(L, "timeout", 0);
    o.term_grace_ms = field_ms(L, "grace", 2000);
    o.mem_mb = field_count(L, "mem_mb");
    o.cpu_s = field_count(L, "cpu_s");
    o.fsize_mb = field_count(L, "fsize_mb");
    o.nofile = field_count(L, "nofile");
    lua_getfield(L, 1, "link_sqlite");
    o.link_sqlite = lua_toboolean(L, -1);
    lua_pop(L, 1);
    o.nproc = field_count(L, "nproc");
    lua_getfield(L, 1, "sandbox");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        luaL_argerror(L, 1, "'sandbox' must be a boolean");
    o.no_sandbox = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    o.env = build_env(L);
    o.ro = build_paths(L, "ro");
    o.rw = build_paths(L, "rw");
    o.avoid = build_paths(L, "avoid");
    if (policy_active()) {
        /* While a lab grades: programs start only from the copy of the
         * submission, always sandboxed, and see only what the lab may. */
        if (o.no_sandbox) {
            char where[PATH_MAX];
            host_lab_where(L, where, sizeof where);
            return luaL_error(L, "%sa lab may not run a program outside the sandbox", where);
        }
        host_allow(L, o.dir, POLICY_RUN, NULL, 0);
        if (o.workdir) host_allow(L, o.workdir, POLICY_READ | POLICY_WRITE, NULL, 0);
        for (const char *const *x = o.ro; x && *x; x++) host_allow(L, *x, POLICY_READ, NULL, 0);
        for (const char *const *x = o.rw; x && *x; x++) host_allow(L, *x, POLICY_READ | POLICY_WRITE, NULL, 0);
    }

    /* Closed first, then opened: any failure below leaves a handle that
     * __gc can release as it is. */
    lprog *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->p = NULL;
    h->tmpdir[0] = '\0';
    h->grace_ms = o.term_grace_ms > 0 ? o.term_grace_ms : 2000;
    luaL_setmetatable(L, PROGRAM_MT);

    int rc = KIT_OK;
    if (!o.workdir) {
        rc = kit_mkdtemp(h->tmpdir, sizeof h->tmpdir, "mqlab-prog", err);
        if (rc != KIT_OK) h->tmpdir[0] = '\0';
        o.workdir = h->tmpdir;
    }
    if (rc == KIT_OK) rc = prog_start(&h->p, &o, err);
    if (rc != KIT_OK) {
        release(h);
        if (rc == KIT_EINTR) host_clamp_ms(L, 0);   /* raises for Ctrl-C */
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushstring(L, code_name(rc));
        return 3;
    }
    return 1;
}

/* ---- methods ---------------------------------------------------------- */

static int l_wait(lua_State *L)
{
    lprog *h = openprog(L);
    int ms = lua_isnoneornil(L, 2) ? -1 : host_opt_ms(L, 2, 0);
    int64_t end = ms < 0 ? INT64_MAX : kit_now_ms() + ms;
    for (;;) {
        if (!prog_poll(h->p)) {
            lua_pushboolean(L, 1);
            return 1;
        }
        int64_t left = end - kit_now_ms();
        if (left <= 0) break;
        int step = host_clamp_ms(L, left > 10 ? 10 : (int)left);
        if (step <= 0) break;
        pump_step(step);
    }
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "timeout");
    return 2;
}

static int l_poll(lua_State *L)
{
    lprog *h = openprog(L);
    lua_pushboolean(L, prog_poll(h->p));
    return 1;
}

static const struct { const char *name; int sig; } signames[] = {
    { "TERM", SIGTERM }, { "KILL", SIGKILL }, { "STOP", SIGSTOP },
    { "CONT", SIGCONT }, { "INT", SIGINT }, { "HUP", SIGHUP },
    { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
};

static int l_signal(lua_State *L)
{
    lprog *h = openprog(L);
    int sig = 0;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, 2);
        if (n < 1 || n >= NSIG) luaL_argerror(L, 2, "no such signal");
        sig = (int)n;
    } else {
        const char *name = luaL_checkstring(L, 2);
        if (strncmp(name, "SIG", 3) == 0) name += 3;
        for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++)
            if (strcmp(name, signames[i].name) == 0) sig = signames[i].sig;
        if (!sig) luaL_argerror(L, 2, lua_pushfstring(L, "unknown signal '%s'", name));
    }
    if (prog_signal(h->p, sig) != KIT_OK) {
        luaL_pushfail(L);
        lua_pushliteral(L, "not running");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_stop(lua_State *L)
{
    lprog *h = openprog(L);
    stop_pumping(h);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_restart(lua_State *L)
{
    char err[KIT_ERRLEN];
    lprog *h = openprog(L);
    stop_pumping(h);
    int rc = prog_restart(h->p, err);
    if (rc != KIT_OK) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushstring(L, code_name(rc == KIT_EINVAL ? KIT_ERR : rc));
        return 3;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void push_signame(lua_State *L, int sig)
{
    const char *s = sig > 0 ? sigabbrev_np(sig) : NULL;
    if (s) lua_pushstring(L, s);
    else if (sig > 0) lua_pushfstring(L, "%d", sig);
    else lua_pushliteral(L, "unknown");
}

static int l_exit_code(lua_State *L)
{
    lprog *h = openprog(L);
    if (prog_poll(h->p)) {
        luaL_pushfail(L);
        return 1;
    }
    int code = prog_exit_code(h->p);
    if (code >= 0) {
        lua_pushinteger(L, code);
        return 1;
    }
    luaL_pushfail(L);
    push_signame(L, prog_term_signal(h->p));
    return 2;
}

static int l_timed_out(lua_State *L)
{
    lprog *h = openprog(L);
    lua_pushboolean(L, prog_timed_out(h->p));
    return 1;
}

static int l_stdout(lua_State *L)
{
    lprog *h = openprog(L);
    size_t len = 0;
    const char *s = prog_stdout(h->p, &len);
    lua_pushlstring(L, s, len);
    return 1;
}

static int l_stderr(lua_State *L)
{
    lprog *h = openprog(L);
    size_t len = 0;
    const char *s = prog_stderr(h->p, &len);
    lua_pushlstring(L, s, len);
    return 1;
}

static int l_runtime(lua_State *L)
{
    lprog *h = openprog(L);
    lua_pushnumber(L, prog_runtime_s(h->p));
    return 1;
}

static int l_kind(lua_State *L)
{
    lprog *h = openprog(L);
    lua_pushstring(L, prog_kind_name(prog_get_kind(h->p)));
    return 1;
}

static int l_path(lua_State *L)
{
    lprog *h = openprog(L);
    lua_pushstring(L, prog_path(h->p));
    return 1;
}

static int l_pid(lua_State *L)
{
    lprog *h = openprog(L);
    pid_t pid = prog_poll(h->p) ? prog_pid(h->p) : 0;
    if (pid > 0) lua_pushinteger(L, pid);
    else luaL_pushfail(L);
    return 1;
}

/* close and __close: stop (with the grace, pumping), free, and remove
 * our workdir; a second call does nothing. */
static int l_close(lua_State *L)
{
    lprog *h = checkprog(L, 1);
    if (h->p) stop_pumping(h);
    release(h);
    return 0;
}

/* __gc may run while the state is being closed, possibly after the MQTT
 * layer is gone: the same release, without pumping. */
static int l_gc(lua_State *L)
{
    release(checkprog(L, 1));
    return 0;
}

static int l_tostring(lua_State *L)
{
    lprog *h = checkprog(L, 1);
    if (!h->p) {
        lua_pushliteral(L, "program (closed)");
        return 1;
    }
    const char *path = prog_path(h->p);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *kind = prog_kind_name(prog_get_kind(h->p));
    if (prog_poll(h->p))
        lua_pushfstring(L, "program %s (%s, pid %d)", base, kind, (int)prog_pid(h->p));
    else if (prog_exit_code(h->p) >= 0)
        lua_pushfstring(L, "program %s (%s, exited %d)", base, kind, prog_exit_code(h->p));
    else
        lua_pushfstring(L, "program %s (%s, killed by signal %d)", base, kind,
                        prog_term_signal(h->p));
    return 1;
}

static const luaL_Reg methods[] = {
    { "wait", l_wait },
    { "poll", l_poll },
    { "running", l_poll },
    { "signal", l_signal },
    { "stop", l_stop },
    { "restart", l_restart },
    { "exit_code", l_exit_code },
    { "timed_out", l_timed_out },
    { "stdout", l_stdout },
    { "stderr", l_stderr },
    { "runtime", l_runtime },
    { "kind", l_kind },
    { "path", l_path },
    { "pid", l_pid },
    { "close", l_close },
    { NULL, NULL }
};

static const luaL_Reg metamethods[] = {
    { "__index", NULL },      /* set to the method table below */
    { "__gc", l_gc },
    { "__close", l_close },
    { "__tostring", l_tostring },
    { NULL, NULL }
};

static const luaL_Reg functions[] = {
    { "find", l_find },
    { "python", l_python },
    { "sandbox", l_sandbox },
    { "start", l_start },
    { NULL, NULL }
};

int luaopen_mqlab_programs(lua_State *L)
{
    host_class(L, PROGRAM_MT, metamethods, methods);
    luaL_newlib(L, functions);
    return 1;
}
