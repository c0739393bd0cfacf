/*
 * lua_kit.c - the mqlab.kit module: the few services a lab needs from
 * the host (clock, sleep, private folders, embedded files, reading a
 * submission's files, writing and copying files into a private folder,
 * free ports, who we run as, the CPU time a broker got). A thin layer
 * over util/host.
 *
 * Every path goes through policy.h first. While a lab runs, reading,
 * writing and removing outside what the grading allows raises an error
 * naming the lab file and line; exists, is_dir, realpath and listdir answer
 * false / nil plus the reason instead, so a lab can ask whether a path a
 * student named lies inside their folder. The time budget is not a lab's
 * to change: the C side arms it around each step.
 */
#include "embedded.h"
#include "host.h"
#include "mqtt.h"
#include "policy.h"
#include "cleanup.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <poll.h>
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

/* kit.wait_enter(): wait for a line on the terminal (guided mode: "press
 * Enter and I cut your link"), pumping the kit's MQTT clients meanwhile.
 * true on Enter, false when stdin is closed. Ctrl-C raises. */
static int k_wait_enter(lua_State *L)
{
    for (;;) {
        struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
        int n = poll(&pfd, 1, 50);
        host_clamp_ms(L, 1);   /* raises on Ctrl-C */
        if (n < 0 && errno != EINTR) break;
        if (n > 0) {
            char c;
            ssize_t r;
            /* The rest of the line, up to its newline. */
            while ((r = read(STDIN_FILENO, &c, 1)) == 1 && c != '\n')
                ;
            lua_pushboolean(L, r == 1);
            return 1;
        }
        mq_pump(0);
    }
    lua_pushboolean(L, 0);
    return 1;
}

static int k_left(lua_State *L)
{
    int ms = host_left_ms();
    if (ms == INT32_MAX) lua_pushnil(L);
    else lua_pushnumber(L, ms / 1000.0);
    return 1;
}

/* The path at index i, checked for rights: raises, naming the lab's
 * file and line, when the grading does not allow it. out gets the real
 * path (or the path itself without a policy). */
static const char *allowed(lua_State *L, int i, int rights, char *out, size_t len)
{
    const char *path = luaL_checkstring(L, i);
    host_allow(L, path, rights, out, len);
    return path;
}

/* For the questions (exists, is_dir, realpath): 1 when the path may be
 * read; otherwise pushes false/nil and the reason and returns 0. */
static int readable(lua_State *L, const char *path, char *out, size_t len, int fail_is_nil)
{
    char err[KIT_ERRLEN];
    if (policy_check(path, POLICY_READ, out, len, err) == KIT_OK) return 1;
    if (fail_is_nil) luaL_pushfail(L);
    else lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 0;
}

static int k_read_file(lua_State *L)
{
    char real[PATH_MAX];
    allowed(L, 1, POLICY_READ, real, sizeof real);
    size_t len;
    char err[KIT_ERRLEN];
    char *data = kit_read_file(real, &len, err);
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
    char real[PATH_MAX];
    if (!readable(L, luaL_checkstring(L, 1), real, sizeof real, 0)) return 2;
    lua_pushboolean(L, kit_file_exists(real));
    return 1;
}

/* The folders kit.tmpdir made and kit.rmdir has not removed yet: the
 * only ones kit.rmdir will remove. */
#define MAX_TMPDIRS 64
static char tmpdirs[MAX_TMPDIRS][PATH_MAX];

static int tmpdir_slot(const char *path)
{
    for (int i = 0; i < MAX_TMPDIRS; i++)
        if (tmpdirs[i][0] && strcmp(tmpdirs[i], path) == 0) return i;
    return -1;
}

/* A private folder of the lab's own, removed at the latest when mqlab
 * exits; the lab may read, write and remove it. */
static int k_tmpdir(lua_State *L)
{
    const char *prefix = luaL_optstring(L, 1, "mqlab");
    char path[512], err[KIT_ERRLEN];
    for (const char *p = prefix; *p; p++)
        if (*p == '/' || *p == '.') luaL_argerror(L, 1, "a plain name, without '/' or '.'");
    int slot = tmpdir_slot("");
    if (slot < 0) {
        for (slot = 0; slot < MAX_TMPDIRS && tmpdirs[slot][0]; slot++) {}
        if (slot == MAX_TMPDIRS) return luaL_error(L, "too many kit.tmpdir folders (%d)", MAX_TMPDIRS);
    }
    if (kit_mkdtemp(path, sizeof path, prefix, err) != KIT_OK) return luaL_error(L, "%s", err);
    char real[PATH_MAX];    /* realpath's buffer: PATH_MAX (_FORTIFY_SOURCE checks) */
    if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);
    if (policy_active() && policy_add(real, POLICY_READ | POLICY_WRITE | POLICY_REMOVE, err) != KIT_OK) {
        kit_rmdtemp(path);
        return luaL_error(L, "%s", err);
    }
    snprintf(tmpdirs[slot], sizeof tmpdirs[slot], "%s", real);
    lua_pushstring(L, path);
    return 1;
}

/* Only a folder that kit.tmpdir made: rmdir is not a way to delete
 * anything else, with a policy in force or not. */
static int k_rmdir(lua_State *L)
{
    char real[PATH_MAX];
    allowed(L, 1, POLICY_REMOVE, real, sizeof real);
    int slot = tmpdir_slot(real);
    if (slot < 0) {
        char where[PATH_MAX];
        host_lab_where(L, where, sizeof where);
        return luaL_error(L, "%skit.rmdir removes only folders made by kit.tmpdir, not %s", where,
                          luaL_checkstring(L, 1));
    }
    policy_forget(real);
    kit_rmdtemp(luaL_checkstring(L, 1));
    kit_rmdtemp(real);
    tmpdirs[slot][0] = '\0';
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
    char path[PATH_MAX];
    allowed(L, 1, POLICY_WRITE, path, sizeof path);
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
    char src[PATH_MAX], dst[PATH_MAX];
    allowed(L, 1, POLICY_READ, src, sizeof src);
    allowed(L, 2, POLICY_WRITE, dst, sizeof dst);
    int mode = opt_mode(L, 3);
    char err[KIT_ERRLEN];
    struct stat st;
    if (stat(src, &st) != 0) {
        kit_seterr(err, KIT_ENOENT, "cannot read %s: %s", src, strerror(errno));
        return fail_msg(L, err);
    }
    if (!S_ISREG(st.st_mode)) {
        kit_seterr(err, KIT_EINVAL, "cannot copy %s: not a regular file", src);
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
    char checked[PATH_MAX];
    const char *path = luaL_checkstring(L, 1);
    if (!readable(L, path, checked, sizeof checked, 1)) return 2;
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
    char real[PATH_MAX];
    if (!readable(L, luaL_checkstring(L, 1), real, sizeof real, 0)) return 2;
    lua_pushboolean(L, kit_is_dir(real));
    return 1;
}

/* listdir(path) -> { name, ... } sorted, without "." and "..", at most
 * 2000 names | nil, message. */
static int k_listdir(lua_State *L)
{
    char real[PATH_MAX];
    if (!readable(L, luaL_checkstring(L, 1), real, sizeof real, 1)) return 2;
    DIR *d = opendir(real);
    if (!d) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: %s", real, strerror(errno));
        return 2;
    }
    enum { MAX_NAMES = 2000 };
    char **names = kit_xmalloc(sizeof *names * MAX_NAMES);
    size_t n = 0;
    struct dirent *e;
    while (n < MAX_NAMES && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        names[n++] = kit_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, kit_cmp_strp);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        free(names[i]);
    }
    free(names);
    return 1;
}

/* mkdir(path [, mode = 0700]) -> true | nil, message; parents too. */
static int k_mkdir(lua_State *L)
{
    char path[PATH_MAX];
    allowed(L, 1, POLICY_WRITE, path, sizeof path);
    int mode = lua_isnoneornil(L, 2) ? 0700 : opt_mode(L, 2);
    char err[KIT_ERRLEN];
    if (kit_mkdir_p(path, mode, err) != KIT_OK) return fail_msg(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* cpu(pid) -> {cpu = s, run = s, wait = s, slices = n} | nil, message.
 * What a process the kit started (a broker: its pid must be a child of
 * this one) has had of the CPUs so far, summed over its threads. cpu is
 * utime + stime (/proc/PID/stat, in clock ticks). run, wait and slices
 * come from /proc/PID/task/TID/schedstat when the kernel keeps it (nil
 * otherwise): the time it ran, the time it was ready to run but waited
 * for a CPU (what a busy machine costs it), and how many times it got
 * one. Two readings around a measurement tell a slow program from a
 * machine that gave it little time. */
static int k_cpu(lua_State *L)
{
    lua_Integer pid = luaL_checkinteger(L, 1);
    luaL_argcheck(L, pid > 0 && pid <= INT_MAX, 1, "a process id");
    char path[64];
    unsigned long long f[KIT_STAT_FIELDS];
    if (kit_proc_stat((int)pid, NULL, f) != 0) return fail_msg(L, "kit.cpu: no such process");
    if (f[4] != (unsigned long long)getpid())
        return fail_msg(L, "kit.cpu: not a process the kit started");
    long hz = sysconf(_SC_CLK_TCK);
    lua_createtable(L, 0, 4);
    lua_pushnumber(L, (double)(f[14] + f[15]) / (double)(hz > 0 ? hz : 100));
    lua_setfield(L, -2, "cpu");

    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    unsigned long long run = 0, wait = 0, slices = 0;
    int ok = d != NULL;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sp[128];
        snprintf(sp, sizeof sp, "/proc/%d/task/%.20s/schedstat", (int)pid, e->d_name);
        /* A thread that ended since readdir has no file: skipped. */
        char *s = kit_read_file(sp, NULL, NULL);
        unsigned long long r, w, n;
        if (s && sscanf(s, "%llu %llu %llu", &r, &w, &n) == 3) {
            run += r;
            wait += w;
            slices += n;
        } else if (s) {
            ok = 0;
        }
        free(s);
    }
    if (d) closedir(d);
    if (ok && slices > 0) {
        lua_pushnumber(L, (double)run / 1e9);
        lua_setfield(L, -2, "run");
        lua_pushnumber(L, (double)wait / 1e9);
        lua_setfield(L, -2, "wait");
        lua_pushinteger(L, (lua_Integer)slices);
        lua_setfield(L, -2, "slices");
    }
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
        { "left", k_left }, { "wait_enter", k_wait_enter },
        { "read_file", k_read_file }, { "exists", k_exists },
        { "tmpdir", k_tmpdir }, { "rmdir", k_rmdir }, { "embedded", k_embedded },
        { "write_file", k_write_file }, { "copy_file", k_copy_file }, { "user", k_user },
        { "free_port", k_free_port }, { "realpath", k_realpath }, { "is_dir", k_is_dir },
        { "mkdir", k_mkdir }, { "listdir", k_listdir }, { "cpu", k_cpu },
        { NULL, NULL }
    };
    luaL_newlib(L, fns);
    return 1;
}
