/*
 * lab.c - the lab engine's C half: where labs come from, and the grading
 * loop (begin, setup, each check, finish) driven through host_call, so
 * that no Lua error, time-out or Ctrl-C can skip finish().
 */
#include "lab.h"
#include "cleanup.h"
#include "embedded.h"
#include "util.h"

#include <dirent.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lab {
    host_t *h;
    int ref;          /* the lab table in the registry */
    char *id;
};

static const char *labs_dir(void)
{
    const char *d = getenv("MQLAB_LABS");
    return d && *d ? d : NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int valid_id(const char *s)
{
    return s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] == '-' && s[3];
}

int lab_ids(char ***ids, int *n)
{
    char **out = NULL;
    int count = 0;
    const char *dir = labs_dir();
    if (dir) {
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!valid_id(e->d_name)) continue;
            char *p = kit_strdup_printf("%s/%s/lab.lua", dir, e->d_name);
            int ok = kit_file_exists(p);
            free(p);
            if (!ok) continue;
            out = kit_xrealloc(out, sizeof *out * (size_t)(count + 1));
            out[count++] = kit_strdup(e->d_name);
        }
        if (d) closedir(d);
    } else {
        for (size_t i = 0; i < embedded_count; i++) {
            const char *name = embedded_files[i].name;
            char id[128];
            if (sscanf(name, "labs/%127[^/]/lab.lua", id) != 1) continue;
            if (strcmp(name + 5 + strlen(id), "/lab.lua") != 0 || !valid_id(id)) continue;
            out = kit_xrealloc(out, sizeof *out * (size_t)(count + 1));
            out[count++] = kit_strdup(id);
        }
    }
    if (count) qsort(out, (size_t)count, sizeof *out, cmp_str);
    *ids = out;
    *n = count;
    return KIT_OK;
}

void lab_free_ids(char **ids, int n)
{
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

int lab_resolve(const char *arg, char *id, size_t idlen, char *err)
{
    char **ids;
    int n, found = -1, matches = 0;
    lab_ids(&ids, &n);
    char want[64];
    /* "1" -> "01": a number is the lab's two-digit prefix. */
    char *end;
    long num = strtol(arg, &end, 10);
    if (*arg && *end == '\0' && num >= 0 && num < 100) snprintf(want, sizeof want, "%02ld-", num);
    else snprintf(want, sizeof want, "%s", arg);
    for (int i = 0; i < n; i++) {
        if (strcmp(ids[i], arg) == 0) { found = i; matches = 1; break; }
        if (strncmp(ids[i], want, strlen(want)) == 0) { found = i; matches++; }
    }
    int rc = KIT_OK;
    if (matches == 1) {
        snprintf(id, idlen, "%s", ids[found]);
    } else {
        char list[400] = "";
        for (int i = 0; i < n; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", ids[i]);
        }
        rc = kit_seterr(err, KIT_ENOENT, "%s lab '%s' (labs here: %s)",
                        matches > 1 ? "more than one" : "no", arg, n ? list : "none");
    }
    lab_free_ids(ids, n);
    return rc;
}

/* Push engine[name]. */
static void push_engine(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "mqlab.engine");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* Keep only the first line of an error: a lab author wants file:line
 * and the message, not the engine's traceback. */
static void first_line(char *s)
{
    char *nl = strstr(s, "\nstack traceback:");
    if (nl) *nl = '\0';
}

/* bc: the same lab compiled at build time (embedded labs only), or NULL. */
static int load_text(host_t *h, const char *code, size_t len, const embedded_file_t *bc,
                     const char *chunk, lab_t **out, char *err, size_t errlen)
{
    lua_State *L = host_state(h);
    push_engine(L, "load");
    lua_pushlstring(L, code, len);
    lua_pushstring(L, chunk);
    if (bc) lua_pushlstring(L, (const char *)bc->data, bc->len);
    else lua_pushnil(L);
    int rc = host_call(h, 3, 1, err, errlen);
    if (rc != KIT_OK) {
        first_line(err);
        return rc == KIT_ERR ? KIT_EINVAL : rc;
    }
    lua_getfield(L, -1, "id");
    lab_t *lab = kit_xmalloc(sizeof *lab);
    lab->id = kit_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    lab->h = h;
    lab->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    *out = lab;
    return KIT_OK;
}

int lab_load_file(host_t *h, const char *path, lab_t **out, char *err, size_t errlen)
{
    size_t len;
    char e[KIT_ERRLEN];
    char *code = kit_read_file(path, &len, e);
    if (!code) { snprintf(err, errlen, "%s", e); return KIT_ENOENT; }
    char *chunk = kit_strdup_printf("@%s", path);
    int rc = load_text(h, code, len, NULL, chunk, out, err, errlen);
    free(chunk);
    free(code);
    return rc;
}

int lab_load(host_t *h, const char *id, lab_t **out, char *err, size_t errlen)
{
    const char *dir = labs_dir();
    if (dir) {
        char *path = kit_strdup_printf("%s/%s/lab.lua", dir, id);
        int rc = lab_load_file(h, path, out, err, errlen);
        free(path);
        return rc;
    }
    char name[256];
    snprintf(name, sizeof name, "labs/%s/lab.lua", id);
    const embedded_file_t *f = embedded_find(name);
    if (!f) { snprintf(err, errlen, "no lab '%s'", id); return KIT_ENOENT; }
    char chunk[260], bcname[260];
    snprintf(chunk, sizeof chunk, "@%s", name);
    snprintf(bcname, sizeof bcname, "%sc", name);
    return load_text(h, (const char *)f->data, f->len, embedded_find(bcname), chunk, out, err, errlen);
}

void lab_free(lab_t *lab)
{
    if (!lab) return;
    luaL_unref(host_state(lab->h), LUA_REGISTRYINDEX, lab->ref);
    free(lab->id);
    free(lab);
}

const char *lab_id(const lab_t *lab) { return lab->id; }

static char *dup_field(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    char *s = kit_strdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    return s;
}

static char *join_list(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    char *out = kit_strdup("");
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        char *next = kit_strdup_printf("%s%s%s", out, i > 1 ? ", " : "", lua_tostring(L, -1));
        free(out);
        out = next;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return out;
}

int lab_describe(lab_t *lab, const char *lang, lab_info_t *info)
{
    lua_State *L = host_state(lab->h);
    char err[KIT_ERRLEN];
    push_engine(L, "describe");
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    lua_pushstring(L, lang);
    memset(info, 0, sizeof *info);
    if (host_call(lab->h, 2, 1, err, sizeof err) != KIT_OK) return KIT_ERR;
    info->title = dup_field(L, -1, "title");
    info->programs = join_list(L, -1, "programs");
    info->files = join_list(L, -1, "files");
    lua_getfield(L, -1, "checks");
    info->nchecks = (int)lua_tointeger(L, -1);
    lua_getfield(L, -2, "max_points");
    info->max_points = lua_tonumber(L, -1);
    lua_pop(L, 3);
    return KIT_OK;
}

void lab_info_clear(lab_info_t *info)
{
    free(info->title);
    free(info->programs);
    free(info->files);
    memset(info, 0, sizeof *info);
}

/* Call engine[fn](lab, args...) that returns one string. */
static char *call_text(lab_t *lab, const char *fn, int extra_int, const char *student,
                       const char *lang, char *err, size_t errlen)
{
    lua_State *L = host_state(lab->h);
    push_engine(L, fn);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    int nargs = 3;
    if (extra_int > 0) { lua_pushinteger(L, extra_int); nargs++; }
    lua_pushstring(L, student);
    lua_pushstring(L, lang);
    if (host_call(lab->h, nargs, 1, err, errlen) != KIT_OK) { first_line(err); return NULL; }
    char *s = kit_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return s;
}

char *lab_instructions(lab_t *lab, const char *student, const char *lang, char *err, size_t errlen)
{
    return call_text(lab, "instructions", 0, student, lang, err, errlen);
}

int lab_nhints(lab_t *lab)
{
    lua_State *L = host_state(lab->h);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    lua_getfield(L, -1, "hints");
    int n = (int)luaL_len(L, -1);
    lua_pop(L, 2);
    return n;
}

char *lab_hint(lab_t *lab, int i, const char *student, const char *lang, char *err, size_t errlen)
{
    return call_text(lab, "hint", i + 1, student, lang, err, errlen);
}

int lab_starter_files(const char *id,
                      int (*fn)(void *ud, const char *name, const char *data, size_t len),
                      void *ud)
{
    const char *dir = labs_dir();
    int rc = KIT_OK;
    if (dir) {
        char *sdir = kit_strdup_printf("%s/%s/starter", dir, id);
        DIR *d = opendir(sdir);
        struct dirent *e;
        while (rc == KIT_OK && d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char *p = kit_strdup_printf("%s/%s", sdir, e->d_name);
            size_t len;
            char *data = kit_is_dir(p) ? NULL : kit_read_file(p, &len, NULL);
            if (data) rc = fn(ud, e->d_name, data, len);
            free(data);
            free(p);
        }
        if (d) closedir(d);
        free(sdir);
        return rc;
    }
    char prefix[256];
    snprintf(prefix, sizeof prefix, "labs/%s/starter/", id);
    size_t pl = strlen(prefix);
    for (size_t i = 0; rc == KIT_OK && i < embedded_count; i++) {
        const embedded_file_t *f = &embedded_files[i];
        if (strncmp(f->name, prefix, pl) == 0)
            rc = fn(ud, f->name + pl, (const char *)f->data, f->len);
    }
    return rc;
}

/* Read engine.check's result table at the top of the stack into v. */
static void add_result(lua_State *L, verdict_t *v)
{
    int t = lua_gettop(L);
    lua_getfield(L, t, "id");
    lua_getfield(L, t, "title");
    lua_getfield(L, t, "passed");
    lua_getfield(L, t, "skipped");
    lua_getfield(L, t, "points");
    lua_getfield(L, t, "max_points");
    lua_getfield(L, t, "message");
    verdict_add(v, lua_tostring(L, t + 1), lua_tostring(L, t + 2), lua_toboolean(L, t + 3),
                lua_toboolean(L, t + 4), lua_tonumber(L, t + 5), lua_tonumber(L, t + 6),
                lua_tostring(L, t + 7));
    lua_getfield(L, t, "lab_error");
    if (lua_isstring(L, -1) && !v->error) v->error = kit_strdup(lua_tostring(L, -1));
    lua_settop(L, t);
}

/* After setup failed, every check is reported (failed, 0 points) with
 * the reason, so the student still sees the whole lab. */
static void fail_all(lua_State *L, int ref, const char *lang, verdict_t *v, const char *why)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_getfield(L, -1, "checks");
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        int c = lua_gettop(L);
        lua_getfield(L, c, "id");
        lua_getfield(L, c, "points");
        lua_getfield(L, c, "title");
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, lang);
            lua_replace(L, -2);
        }
        verdict_add(v, lua_tostring(L, c + 1), lua_tostring(L, c + 3), 0, 0, 0, lua_tonumber(L, c + 2), why);
        lua_settop(L, c - 1);
    }
    lua_pop(L, 2);
}

int lab_grade(lab_t *lab, const char *dir, const char *student, const char *lang,
              verdict_t *v, char *err, size_t errlen)
{
    lua_State *L = host_state(lab->h);
    int base = lua_gettop(L);
    int64_t t0 = kit_now_ms();
    memset(v, 0, sizeof *v);
    v->lab = kit_strdup(lab->id);
    v->student = kit_strdup(student);
    v->submission = kit_strdup(dir);
    v->started_ms = kit_wall_ms();

    /* ctx = engine.begin(lab, {dir, student, lang}) */
    push_engine(L, "begin");
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, dir); lua_setfield(L, -2, "dir");
    lua_pushstring(L, student); lua_setfield(L, -2, "student");
    lua_pushstring(L, lang); lua_setfield(L, -2, "lang");
    int rc = host_call(lab->h, 2, 1, err, errlen);
    if (rc != KIT_OK) { first_line(err); return rc; }
    int ctx = lua_gettop(L);

    {
        push_engine(L, "title");
        lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
        lua_pushstring(L, lang);
        char e[KIT_ERRLEN];
        if (host_call(lab->h, 2, 1, e, sizeof e) == KIT_OK) {
            v->title = kit_strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }

    push_engine(L, "setup");
    lua_pushvalue(L, ctx);
    rc = host_call(lab->h, 1, 3, err, errlen);
    if (rc == KIT_OK) {
        /* true, or nil + "missing"/"error" + message: the machine could
         * not give the lab what it needs (e.g. mosquitto). */
        if (!lua_toboolean(L, -3)) {
            const char *code = lua_tostring(L, -2);
            snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "setup failed");
            rc = code && strcmp(code, "missing") == 0 ? KIT_EMISSING : KIT_ERR;
        }
        lua_pop(L, 3);
    } else if (rc == KIT_ERR) {
        first_line(err);
    }
    if (rc == KIT_OK) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
        lua_getfield(L, -1, "checks");
        lua_Integer n = luaL_len(L, -1);
        lua_pop(L, 2);
        for (lua_Integer i = 1; i <= n && rc == KIT_OK; i++) {
            push_engine(L, "check");
            lua_pushvalue(L, ctx);
            lua_pushinteger(L, i);
            rc = host_call(lab->h, 2, 1, err, errlen);
            if (rc == KIT_OK) { add_result(L, v); lua_pop(L, 1); }
        }
    } else if (rc == KIT_ERR) {
        v->error = kit_strdup(err);
        fail_all(L, lab->ref, lang, v, err);
        rc = KIT_OK;
    }

    /* finish() always runs, even after Ctrl-C: it is what stops the
     * broker and the student's programs. */
    int interrupted = rc == KIT_EINTR;
    if (interrupted) cleanup_clear_interrupt();
    char e2[KIT_ERRLEN];
    push_engine(L, "finish");
    lua_pushvalue(L, ctx);
    host_call(lab->h, 1, 0, e2, sizeof e2);
    lua_settop(L, base);
    lua_gc(L, LUA_GCCOLLECT);
    if (interrupted) {
        snprintf(err, errlen, "interrupted");
        return KIT_EINTR;
    }
    v->duration_s = (double)(kit_now_ms() - t0) / 1000.0;
    verdict_total(v);
    return rc;
}
