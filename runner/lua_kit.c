/*
 * lua_kit.c - the mqlab.kit module: the few services a lab needs from
 * the host (clock, sleep, deadline, private folders, embedded files,
 * reading a submission's files). A thin layer over util/host.
 */
#include "embedded.h"
#include "host.h"
#include "mqtt.h"
#include "util.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdlib.h>

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
        { NULL, NULL }
    };
    luaL_newlib(L, fns);
    return 1;
}
