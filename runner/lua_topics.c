/*
 * lua_topics.c - the mqlab.topics Lua module: a thin layer over topics.c.
 *
 * Topics are plain strings, so unlike the other bindings there is no
 * userdata here, only functions. Level indexes are 1-based on the Lua side
 * and 0-based in C. A Lua string may hold a NUL byte that a C string would
 * silently cut, so every function looks for one first: validation reports
 * it as invalid, and the other functions treat it as misuse.
 */
#include <lua.h>
#include <lauxlib.h>

#include "topics.h"

#define WHYLEN 512

/* Byte position (1-based) of the first NUL in s[0..len), or 0. */
static size_t nul_at(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0')
            return i + 1;
    return 0;
}

/* A string argument without NUL bytes (misuse otherwise). */
static const char *check_topic(lua_State *L, int arg, size_t *len)
{
    size_t n;
    const char *s = luaL_checklstring(L, arg, &n);

    if (nul_at(s, n))
        luaL_argerror(L, arg, "topic contains a NUL byte");
    if (len)
        *len = n;
    return s;
}

/* Shared by valid_name/valid_filter: true, or false and why. */
static int push_valid(lua_State *L, int is_filter)
{
    char why[WHYLEN];
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    size_t at = nul_at(s, len);

    if (at) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "the %s has a NUL byte at byte %I",
                        is_filter ? "filter" : "topic", (lua_Integer)at);
        return 2;
    }
    why[0] = '\0';
    int ok = is_filter ? topic_valid_filter(s, why, sizeof why)
                       : topic_valid_name(s, why, sizeof why);
    lua_pushboolean(L, ok);
    if (ok)
        return 1;
    lua_pushstring(L, why);
    return 2;
}

/* valid_name(t) -> true | false, why */
static int t_valid_name(lua_State *L)
{
    return push_valid(L, 0);
}

/* valid_filter(f) -> true | false, why */
static int t_valid_filter(lua_State *L)
{
    return push_valid(L, 1);
}

/* matches(filter, topic) -> boolean. Matching an invalid filter or topic
 * has no meaningful answer, so it is a lab author's mistake and raises. */
static int t_matches(lua_State *L)
{
    char why[WHYLEN];
    const char *f = check_topic(L, 1, NULL);
    const char *t = check_topic(L, 2, NULL);

    why[0] = '\0';
    if (!topic_valid_filter(f, why, sizeof why))
        return luaL_argerror(L, 1, lua_pushfstring(L, "invalid filter: %s", why));
    if (!topic_valid_name(t, why, sizeof why))
        return luaL_argerror(L, 2, lua_pushfstring(L, "invalid topic: %s", why));
    lua_pushboolean(L, topic_matches(f, t));
    return 1;
}

/* levels(t) -> integer */
static int t_levels(lua_State *L)
{
    const char *t = check_topic(L, 1, NULL);

    lua_pushinteger(L, topic_levels(t));
    return 1;
}

/* level(t, i) -> string, or nil when there is no level i (1-based) */
static int t_level(lua_State *L)
{
    const char *t = check_topic(L, 1, NULL);
    lua_Integer i = luaL_checkinteger(L, 2);

    if (i < 1 || i > topic_levels(t)) {
        lua_pushnil(L);
        return 1;
    }
    /* Ask for the length first: a level may be up to 64 KiB long. */
    int n = topic_level(t, (int)(i - 1), NULL, 0);
    if (n < 0) {
        lua_pushnil(L);
        return 1;
    }
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (size_t)n + 1);
    if (topic_level(t, (int)(i - 1), out, (size_t)n + 1) != n)
        return luaL_error(L, "topics: level %I changed size", i);
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* split(t) -> { level1, level2, ... } ({} for "").
 * One pass over the string instead of topic_level() per level, which
 * would be quadratic on a long run of '/'; the result agrees with
 * topic_levels()/topic_level(): "/a/" gives { "", "a", "" }. */
static int t_split(lua_State *L)
{
    size_t len;
    const char *t = check_topic(L, 1, &len);

    lua_createtable(L, len ? topic_levels(t) : 0, 0);
    if (len == 0)
        return 1;
    lua_Integer k = 1;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || t[i] == '/') {
            lua_pushlstring(L, t + start, i - start);
            lua_rawseti(L, -2, k++);
            start = i + 1;
        }
    }
    return 1;
}

/* An optional level bound: absent or nil is 0 (no bound). */
static int opt_bound(lua_State *L, int arg)
{
    lua_Integer v = luaL_optinteger(L, arg, 0);

    luaL_argcheck(L, v >= -1000000 && v <= 1000000, arg, "level bound out of range");
    return (int)v;
}

/* lint(t [, min, max]) -> { rule names } (empty when clean), why | nil */
static int t_lint(lua_State *L)
{
    char why[WHYLEN];
    const char *t = check_topic(L, 1, NULL);
    int min_levels = opt_bound(L, 2);
    int max_levels = opt_bound(L, 3);

    why[0] = '\0';
    unsigned rules = topic_lint(t, min_levels, max_levels, why, sizeof why);
    lua_newtable(L);
    lua_Integer k = 1;
    for (unsigned bit = 1; bit != 0 && bit <= rules; bit <<= 1) {
        if (rules & bit) {
            lua_pushstring(L, topic_lint_name(bit));
            lua_rawseti(L, -2, k++);
        }
    }
    if (rules)
        lua_pushstring(L, why);
    else
        lua_pushnil(L);
    return 2;
}

static const luaL_Reg topics_funcs[] = {
    { "valid_name", t_valid_name },
    { "valid_filter", t_valid_filter },
    { "matches", t_matches },
    { "levels", t_levels },
    { "level", t_level },
    { "split", t_split },
    { "lint", t_lint },
    { NULL, NULL }
};

int luaopen_mqlab_topics(lua_State *L)
{
    luaL_newlib(L, topics_funcs);
    return 1;
}
