/*
 * lua_sqlite.c - mqlab.sqlite: read a student's SQLite database.
 *
 * Labs grade what a program left in its database (lab 09's readings
 * table), never the program's source. The database is the student's, so
 * a lab opens it read-only: the kit can count and inspect rows but never
 * change them, and a query that would write fails like any SQL error.
 *
 * A student's own Lua program (`mqlab run consumer.lua`, no lab code in
 * the process) may open its database for writing, as Python's sqlite3
 * and C's libsqlite3 can: mode "rw" creates the file when it is missing.
 *
 *   local db, msg, code = sqlite.open(path [, "rw"])  -- code: "notfound" | "notdb" | "error"
 *   local rows, msg = db:rows(sql, ...)       -- rows keyed by column name and position
 *   local n, msg = db:exec(sql, ...)          -- a statement; n rows changed
 *   local cols, msg = db:columns(name)        -- column names of a table, in order
 *   db:close()
 *
 * SQL errors are returned as nil, message (the student's schema decides
 * whether a query works), never raised. NULL values are nil; BLOBs are
 * strings. A busy database is waited for up to 2 s.
 */
#include "host.h"
#include "policy.h"
#include "util.h"

#include <limits.h>
#include <lauxlib.h>
#include <lua.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#define SQLITE_MT "mqlab.sqlite"
#define BUSY_MS 2000
#define MAX_ROWS 1000000

typedef struct {
    sqlite3 *db;    /* NULL: closed */
} ldb;

static ldb *checkdb(lua_State *L, int i)
{
    ldb *h = (ldb *)luaL_checkudata(L, i, SQLITE_MT);
    if (!h->db) luaL_error(L, "attempt to use a closed database");
    return h;
}

static int fail(lua_State *L, const char *msg, const char *code)
{
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    if (!code) return 2;
    lua_pushstring(L, code);
    return 3;
}

/* open(path [, mode]) -> db | nil, msg, code */
static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    char real[PATH_MAX];
    int rw = strcmp(mode, "rw") == 0;
    if (!rw && strcmp(mode, "r") != 0) return luaL_argerror(L, 2, "mode must be \"r\" or \"rw\"");
    /* A lab never writes a student's database. */
    if (rw && policy_active()) return luaL_error(L, "sqlite.open: labs open databases read-only");
    if (rw) {
        struct stat rst;
        if (lstat(path, &rst) == 0 && S_ISLNK(rst.st_mode))
            return fail(L, lua_pushfstring(L, "%s: a symbolic link, not a database file", path), "notdb");
        ldb *h = (ldb *)lua_newuserdatauv(L, sizeof *h, 0);
        h->db = NULL;
        luaL_setmetatable(L, SQLITE_MT);
        sqlite3 *db = NULL;
        int orc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (orc != SQLITE_OK) {
            lua_pushfstring(L, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(orc));
            sqlite3_close(db);
            return fail(L, lua_tostring(L, -1), "error");
        }
        h->db = db;
        sqlite3_busy_timeout(db, BUSY_MS);
        return 1;
    }
    /* The file is usually a student's (LAB_DB): it may be a link to a
     * database the grader can read and the student cannot. Only what the
     * grading allows, and never through a link. */
    host_allow(L, path, POLICY_READ, real, sizeof real);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return fail(L, lua_pushfstring(L, "%s: a symbolic link, not a database file", path), "notdb");
    if (stat(path, &st) != 0) return fail(L, lua_pushfstring(L, "%s: no such file", path), "notfound");
    if (!S_ISREG(st.st_mode)) return fail(L, lua_pushfstring(L, "%s: not a file", path), "notdb");

    ldb *h = (ldb *)lua_newuserdatauv(L, sizeof *h, 0);
    h->db = NULL;
    luaL_setmetatable(L, SQLITE_MT);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc != SQLITE_OK) {
        lua_pushfstring(L, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return fail(L, lua_tostring(L, -1), "error");
    }
    h->db = db;
    sqlite3_busy_timeout(db, BUSY_MS);
    /* sqlite opens lazily: a file that is not a database only shows
     * itself on the first read. */
    rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        lua_pushfstring(L, "%s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        h->db = NULL;
        return fail(L, lua_tostring(L, -1), rc == SQLITE_NOTADB ? "notdb" : "error");
    }
    return 1;
}

/* Bind the values at first.. to st's ? parameters. NULL when done, else
 * what is wrong (the caller finalizes st before raising it). */
static const char *bind_args(lua_State *L, sqlite3_stmt *st, int first)
{
    int n = lua_gettop(L) - first + 1, np = sqlite3_bind_parameter_count(st);
    if (n != np) return lua_pushfstring(L, "the query has %d parameter(s) but %d value(s) were given", np, n);
    for (int i = 0; i < n; i++) {
        int a = first + i, rc;
        switch (lua_type(L, a)) {
        case LUA_TNUMBER:
            rc = lua_isinteger(L, a) ? sqlite3_bind_int64(st, i + 1, (sqlite3_int64)lua_tointeger(L, a))
                                     : sqlite3_bind_double(st, i + 1, lua_tonumber(L, a));
            break;
        case LUA_TBOOLEAN:
            rc = sqlite3_bind_int(st, i + 1, lua_toboolean(L, a));
            break;
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, a, &len);
            rc = sqlite3_bind_text64(st, i + 1, s, len, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        }
        default:
            return lua_pushfstring(L, "value %d: only numbers, strings and booleans can be bound", i + 1);
        }
        if (rc != SQLITE_OK) return lua_pushfstring(L, "cannot bind value %d", i + 1);
    }
    return NULL;
}

static void push_value(lua_State *L, sqlite3_stmt *st, int col)
{
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER: lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, col)); break;
    case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(st, col)); break;
    case SQLITE_NULL: lua_pushnil(L); break;
    default: {
        const void *p = sqlite3_column_blob(st, col);
        lua_pushlstring(L, p ? (const char *)p : "", (size_t)sqlite3_column_bytes(st, col));
        break;
    }
    }
}

/* db:rows(sql, ...) -> {row, ...} | nil, msg */
static int l_rows(lua_State *L)
{
    ldb *h = checkdb(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, &tail) != SQLITE_OK)
        return fail(L, sqlite3_errmsg(h->db), NULL);
    if (!st) return fail(L, "empty query", NULL);
    int top = lua_gettop(L);
    const char *bad = bind_args(L, st, 3);
    if (bad) {
        sqlite3_finalize(st);
        return luaL_error(L, "db:rows: %s", bad);
    }
    lua_settop(L, top);

    int ncol = sqlite3_column_count(st);
    lua_newtable(L);
    lua_Integer nrows = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nrows >= MAX_ROWS) {
            sqlite3_finalize(st);
            return fail(L, "more than 1000000 rows", NULL);
        }
        lua_createtable(L, ncol, ncol);
        for (int c = 0; c < ncol; c++) {
            push_value(L, st, c);
            lua_pushvalue(L, -1);
            lua_rawseti(L, -3, c + 1);
            const char *name = sqlite3_column_name(st, c);
            if (name) lua_setfield(L, -2, name);
            else lua_pop(L, 1);
        }
        lua_rawseti(L, -2, ++nrows);
    }
    if (rc != SQLITE_DONE) {
        lua_pushstring(L, sqlite3_errmsg(h->db));
        sqlite3_finalize(st);
        return fail(L, lua_tostring(L, -1), NULL);
    }
    sqlite3_finalize(st);
    return 1;
}

/* db:exec(sql, ...) -> rows changed | nil, msg: one statement, for a
 * database opened "rw" (on a read-only one a write fails as SQL). */
static int l_exec(lua_State *L)
{
    ldb *h = checkdb(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(L, sqlite3_errmsg(h->db), NULL);
    if (!st) return fail(L, "empty query", NULL);
    const char *bad = bind_args(L, st, 3);
    if (bad) {
        sqlite3_finalize(st);
        return luaL_error(L, "db:exec: %s", bad);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
    if (rc != SQLITE_DONE) {
        lua_pushstring(L, sqlite3_errmsg(h->db));
        sqlite3_finalize(st);
        return fail(L, lua_tostring(L, -1), NULL);
    }
    sqlite3_finalize(st);
    lua_pushinteger(L, sqlite3_changes(h->db));
    return 1;
}

/* db:columns(table) -> {name, ...} | nil, msg */
static int l_columns(lua_State *L)
{
    ldb *h = checkdb(L, 1);
    const char *name = luaL_checkstring(L, 2);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h->db, "SELECT name FROM pragma_table_info(?) ORDER BY cid", -1, &st, NULL) != SQLITE_OK)
        return fail(L, sqlite3_errmsg(h->db), NULL);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    lua_newtable(L);
    lua_Integer n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lua_pushstring(L, (const char *)sqlite3_column_text(st, 0));
        lua_rawseti(L, -2, ++n);
    }
    if (rc != SQLITE_DONE) {
        lua_pushstring(L, sqlite3_errmsg(h->db));
        sqlite3_finalize(st);
        return fail(L, lua_tostring(L, -1), NULL);
    }
    sqlite3_finalize(st);
    if (n == 0) return fail(L, lua_pushfstring(L, "no such table: %s", name), NULL);
    return 1;
}

static int l_close(lua_State *L)
{
    ldb *h = (ldb *)luaL_checkudata(L, 1, SQLITE_MT);
    if (h->db) {
        sqlite3_close_v2(h->db);
        h->db = NULL;
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    ldb *h = (ldb *)luaL_checkudata(L, 1, SQLITE_MT);
    lua_pushstring(L, h->db ? "sqlite database" : "sqlite database (closed)");
    return 1;
}

static const luaL_Reg methods[] = {
    { "rows", l_rows },
    { "exec", l_exec },
    { "columns", l_columns },
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
    { "open", l_open },
    { NULL, NULL }
};

int luaopen_mqlab_sqlite(lua_State *L)
{
    host_class(L, SQLITE_MT, metamethods, methods);
    luaL_newlib(L, funcs);
    return 1;
}
