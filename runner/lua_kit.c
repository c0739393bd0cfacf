/*
 * lua_kit.c - the mqlab.kit module: the few services a lab needs from
 * the host (clock, sleep, deadline, private folders, embedded files,
 * reading a submission's files, writing and copying files into a private
 * folder, free ports, who we run as). A thin layer over util/host.
 */
#include "embedded.h"
#include "host.h"
#include "mqtt.h"
#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int k_now(lua_State *L)
{
    lua_pushnumber(L, (double)kit_now_ms() / 1000.0);
    return 1;
}

static int k_wall_ms(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)kit_wall_ms());
    return 1;
}

/* Sleep while keeping every MQTT client serviced. */
static int k_sleep(lua_State *L)
{
    int ms = host_clamp_ms(L, host_opt_ms(L, 1, 0));
    int64_t end = kit_now_ms() + ms;
    for (;;) {
        int64_t left = end - kit_now_ms();
        if (left <= 0) break;
        mq_pump(left > 20 ? 20 : (int)left);
        host_clamp_ms(L, 1);   /* raises on Ctrl-C or a spent budget */
    }
    return 0;
}

static int k_deadline(lua_State *L)
{
    host_set_deadline(lua_isnoneornil(L, 1) ? 0 : host_opt_ms(L, 1, 0));
    return 0;
}

static int k_left(lua_State *L)
{
    int ms = host_left_ms();
    if (ms == INT32_MAX) lua_pushnil(L);
    else lua_pushnumber(L, ms / 1000.0);
    return 1;
}

static int k_read_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    char err[KIT_ERRLEN];
    char *data = kit_read_file(path, &len, err);
    if (!data) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, data, len);
    free(data);
    return 1;
}

static int k_exists(lua_State *L)
{
    lua_pushboolean(L, kit_file_exists(luaL_checkstring(L, 1)));
    return 1;
}

static int k_tmpdir(lua_State *L)
{
    const char *prefix = luaL_optstring(L, 1, "mqlab");
    char path[512], err[KIT_ERRLEN];
    if (kit_mkdtemp(path, sizeof path, prefix, err) != KIT_OK) return luaL_error(L, "%s", err);
    lua_pushstring(L, path);
    return 1;
}

static int k_rmdir(lua_State *L)
{
    kit_rmdtemp(luaL_checkstring(L, 1));
    return 0;
}

/* An optional file mode at i: octal digits in a string ("0600", "644"),
 * or an integer (tonumber("600", 8)). Lua has no octal literals, so a
 * lab that writes 0600 means 600 decimal, which is above 0777: raised,
 * not turned into a strange mode. */
static int opt_mode(lua_State *L, int i)
{
    if (lua_isnoneornil(L, i)) return 0600;
    if (lua_type(L, i) == LUA_TSTRING) {
        const char *s = lua_tostring(L, i);
        char *end = NULL;
        long v = strtol(s, &end, 8);
        luaL_argcheck(L, *s && end && !*end && v >= 0 && v <= 0777, i, "a mode in octal digits, e.g. \"0600\"");
        return (int)v;
    }
    lua_Integer v = luaL_checkinteger(L, i);
    luaL_argcheck(L, v >= 0 && v <= 0777, i, "a file mode as a string of octal digits, e.g. \"0600\" "
                  "(Lua reads 0600 as six hundred)");
    return (int)v;
}

static int fail_msg(lua_State *L, const char *msg)
{
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
}

/* write_file(path, data [, mode = 0600]) -> true | nil, message.
 * Atomic: a reader sees the old file or the whole new one. */
static int k_write_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int mode = opt_mode(L, 3);
    char err[KIT_ERRLEN];
    if (kit_write_file_atomic(path, data, len, mode, err) != KIT_OK) return fail_msg(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* copy_file(src, dst [, mode = 0600]) -> true | nil, message. Regular
 * files only (a symbolic link counts as what it points to); the copy is
 * written atomically with the given mode, whatever src's mode was. */
static int k_copy_file(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = luaL_checkstring(L, 2);
    int mode = opt_mode(L, 3);
    char err[KIT_ERRLEN];
    struct stat st;
    if (stat(src, &st) != 0) {
        snprintf(err, sizeof err, "cannot read %s: %s", src, strerror(errno));
        return fail_msg(L, err);
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, sizeof err, "cannot copy %s: not a regular file", src);
        return fail_msg(L, err);
    }
    size_t len = 0;
    char *data = kit_read_file(src, &len, err);
    if (!data) return fail_msg(L, err);
    int rc = kit_write_file_atomic(dst, data, len, mode, err);
    free(data);
    if (rc != KIT_OK) return fail_msg(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* The user name the kit runs as; brokers run as this user too. */
static int k_user(lua_State *L)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name && *pw->pw_name) lua_pushstring(L, pw->pw_name);
    else lua_pushstring(L, geteuid() == 0 ? "root" : "nobody");
    return 1;
}

/* free_port() -> a TCP port of 127.0.0.1 free a moment ago | nil, message */
static int k_free_port(lua_State *L)
{
    char err[KIT_ERRLEN] = "";
    int port = kit_free_port(err);
    if (!port) return fail_msg(L, err);
    lua_pushinteger(L, port);
    return 1;
}

/* realpath(path) -> the absolute path without links, "." or ".." |
 * nil, message (also when it does not exist). */
static int k_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *r = realpath(path, NULL);
    if (!r) {
        char err[KIT_ERRLEN];
        snprintf(err, sizeof err, "%s: %s", path, strerror(errno));
        return fail_msg(L, err);
    }
    lua_pushstring(L, r);
    free(r);
    return 1;
}

static int k_is_dir(lua_State *L)
{
    lua_pushboolean(L, kit_is_dir(luaL_checkstring(L, 1)));
    return 1;
}

/* mkdir(path [, mode = 0700]) -> true | nil, message; parents too. */
static int k_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int mode = lua_isnoneornil(L, 2) ? 0700 : opt_mode(L, 2);
    char err[KIT_ERRLEN];
    if (kit_mkdir_p(path, mode, err) != KIT_OK) return fail_msg(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

static int k_embedded(lua_State *L)
{
    const embedded_file_t *f = embedded_find(luaL_checkstring(L, 1));
    if (!f) { lua_pushnil(L); return 1; }
    lua_pushlstring(L, (const char *)f->data, f->len);
    return 1;
}

int luaopen_mqlab_kit(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "now", k_now }, { "wall_ms", k_wall_ms }, { "sleep", k_sleep },
        { "deadline", k_deadline }, { "left", k_left },
        { "read_file", k_read_file }, { "exists", k_exists },
        { "tmpdir", k_tmpdir }, { "rmdir", k_rmdir }, { "embedded", k_embedded },
        { "write_file", k_write_file }, { "copy_file", k_copy_file }, { "user", k_user },
        { "free_port", k_free_port }, { "realpath", k_realpath }, { "is_dir", k_is_dir },
        { "mkdir", k_mkdir },
        { NULL, NULL }
    };
    luaL_newlib(L, fns);
    return 1;
}
