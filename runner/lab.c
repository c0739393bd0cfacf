/*
 * lab.c - the lab engine's C half: where labs come from, and the grading
 * loop (begin, setup, each check, finish) driven through host_call, so
 * that no Lua error, time-out or Ctrl-C can skip finish().
 */
#include "lab.h"
#include "cleanup.h"
#include "embedded.h"
#include "policy.h"
#include "sandbox.h"
#include "programs.h"
#include "tls.h"
#include "util.h"

#include <dirent.h>
#include <limits.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lab {
    host_t *h;
    int ref;          /* the lab table in the registry */
    char *id;
    char *folder;     /* the lab's folder on disk (readable by it), or NULL */
};

/* ---------------------------------------------------------------- sources */

/* Where each lab comes from: built into the binary (folder NULL), or a
 * folder on disk named after the lab's id. Built once per process (a
 * worker inherits it through fork): the built-in labs, then every
 * folder MQLAB_LABS names (a ':'-separated list of folders of labs, or
 * of lab folders), then the lab folders given as paths on the command
 * line. An own lab with a built-in's id takes its place, with a notice;
 * a second own lab with an id already taken is left out, with a notice. */
typedef struct {
    char *id;
    char *folder;     /* absolute; NULL when built in */
    int replaced;     /* it stands for a built-in lab of the same id */
} lab_src_t;

static lab_src_t *srcs;
static int nsrcs, scanned;

static int valid_id(const char *s)
{
    return s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] == '-' && s[3];
}

static lab_src_t *find_src(const char *id)
{
    for (int i = 0; i < nsrcs; i++)
        if (strcmp(srcs[i].id, id) == 0) return &srcs[i];
    return NULL;
}

static int holds_lab(const char *folder)
{
    char *p = kit_strdup_printf("%s/lab.lua", folder);
    int ok = kit_file_exists(p);
    free(p);
    return ok;
}

/* Add the lab in folder (which holds lab.lua). quiet: no notice. */
static void add_folder_src(const char *folder, int quiet)
{
    char real[PATH_MAX];
    if (!realpath(folder, real)) return;
    const char *base = strrchr(real, '/');
    base = base ? base + 1 : real;
    lab_src_t *s = find_src(base);
    if (s && s->folder && strcmp(s->folder, real) == 0) return;
    if (s && s->folder) {
        if (!quiet)
            fprintf(stderr, "mqlab: lab %s in %s is left out: %s already has that id\n", base, real, s->folder);
        return;
    }
    if (s) {
        if (!quiet) fprintf(stderr, "mqlab: lab %s comes from %s (it replaces the built-in one)\n", base, real);
        s->folder = kit_strdup(real);
        s->replaced = 1;
        return;
    }
    srcs = kit_xrealloc(srcs, sizeof *srcs * (size_t)(nsrcs + 1));
    srcs[nsrcs++] = (lab_src_t){ kit_strdup(base), kit_strdup(real), 0 };
}

static int cmp_src(const void *a, const void *b)
{
    return strcmp(((const lab_src_t *)a)->id, ((const lab_src_t *)b)->id);
}

static void scan_sources(void)
{
    if (scanned) return;
    scanned = 1;
    for (size_t i = 0; i < embedded_count; i++) {
        const char *name = embedded_files[i].name;
        char id[128];
        if (sscanf(name, "labs/%127[^/]/lab.lua", id) != 1) continue;
        if (strcmp(name + 5 + strlen(id), "/lab.lua") != 0 || !valid_id(id)) continue;
        srcs = kit_xrealloc(srcs, sizeof *srcs * (size_t)(nsrcs + 1));
        srcs[nsrcs++] = (lab_src_t){ kit_strdup(id), NULL, 0 };
    }
    const char *env = getenv("MQLAB_LABS");
    char *list = kit_strdup(env ? env : "");
    for (char *save = NULL, *dir = strtok_r(list, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        if (!*dir) continue;
        if (!kit_is_dir(dir)) {
            fprintf(stderr, "mqlab: MQLAB_LABS names %s, which is not a folder\n", dir);
            continue;
        }
        if (holds_lab(dir)) { add_folder_src(dir, 0); continue; }
        DIR *d = opendir(dir);
        struct dirent *e;
        char **names = NULL;
        int n = 0;
        while (d && (e = readdir(d))) {
            if (!valid_id(e->d_name)) continue;
            names = kit_xrealloc(names, sizeof *names * (size_t)(n + 1));
            names[n++] = kit_strdup(e->d_name);
        }
        if (d) closedir(d);
        if (n) qsort(names, (size_t)n, sizeof *names, kit_cmp_strp);
        for (int i = 0; i < n; i++) {
            char *p = kit_strdup_printf("%s/%s", dir, names[i]);
            if (holds_lab(p)) add_folder_src(p, 0);
            free(p);
            free(names[i]);
        }
        free(names);
    }
    free(list);
    if (nsrcs) qsort(srcs, (size_t)nsrcs, sizeof *srcs, cmp_src);
}

const char *lab_source(const char *id)
{
    scan_sources();
    lab_src_t *s = find_src(id);
    return s ? s->folder : NULL;
}

int lab_replaced(const char *id)
{
    scan_sources();
    lab_src_t *s = find_src(id);
    return s && s->replaced;
}

int lab_ids(char ***ids, int *n)
{
    scan_sources();
    char **out = nsrcs ? kit_xmalloc(sizeof *out * (size_t)nsrcs) : NULL;
    for (int i = 0; i < nsrcs; i++) out[i] = kit_strdup(srcs[i].id);
    *ids = out;
    *n = nsrcs;
    return KIT_OK;
}

void lab_free_ids(char **ids, int n)
{
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

/* A lab argument that is a path to a lab folder: "./05-x", "mylabs/05-x"
 * or a folder holding lab.lua. */
static int is_lab_path(const char *arg)
{
    return (strchr(arg, '/') || strcmp(arg, ".") == 0 || holds_lab(arg)) && kit_is_dir(arg);
}

int lab_resolve(const char *arg, char *id, size_t idlen, char *err)
{
    scan_sources();
    if (is_lab_path(arg)) {
        char real[PATH_MAX];
        if (!holds_lab(arg) || !realpath(arg, real))
            return kit_seterr(err, KIT_ENOENT, "%s is a folder without a lab.lua", arg);
        const char *base = strrchr(real, '/');
        base = base ? base + 1 : real;
        if (!valid_id(base))
            return kit_seterr(err, KIT_ENOENT,
                              "a lab folder is named after its lab's id (two digits, a dash, a name: 05-retain-lwt); %s is not",
                              real);
        /* A path given on the command line wins over MQLAB_LABS. */
        lab_src_t *s = find_src(base);
        if (!s) {
            add_folder_src(real, 1);
            qsort(srcs, (size_t)nsrcs, sizeof *srcs, cmp_src);
        } else if (!s->folder) {
            fprintf(stderr, "mqlab: lab %s comes from %s (it replaces the built-in one)\n", base, real);
            s->folder = kit_strdup(real);
            s->replaced = 1;
        } else if (strcmp(s->folder, real) != 0) {
            free(s->folder);
            s->folder = kit_strdup(real);
        }
        snprintf(id, idlen, "%s", base);
        return KIT_OK;
    }
    int found = -1, matches = 0;
    char want[64];
    /* "1" -> "01": a number is the lab's two-digit prefix. */
    char *end;
    long num = strtol(arg, &end, 10);
    if (*arg && *end == '\0' && num >= 0 && num < 100) snprintf(want, sizeof want, "%02ld-", num);
    else snprintf(want, sizeof want, "%s", arg);
    for (int i = 0; i < nsrcs; i++) {
        if (strcmp(srcs[i].id, arg) == 0) { found = i; matches = 1; break; }
        if (strncmp(srcs[i].id, want, strlen(want)) == 0) { found = i; matches++; }
    }
    if (matches == 1) {
        snprintf(id, idlen, "%s", srcs[found].id);
        return KIT_OK;
    }
    char list[1200] = "";
    for (int i = 0; i < nsrcs; i++) {
        if (matches > 1 && strncmp(srcs[i].id, want, strlen(want)) != 0) continue;
        size_t l = strlen(list);
        if (matches > 1)
            snprintf(list + l, sizeof list - l, "%s%s (%s)", l ? ", " : "", srcs[i].id,
                     srcs[i].folder ? srcs[i].folder : "built in");
        else
            snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", srcs[i].id);
    }
    if (matches > 1)
        return kit_seterr(err, KIT_ENOENT, "more than one lab '%s': %s; give the full id", arg, list);
    return kit_seterr(err, KIT_ENOENT, "no lab '%s' (labs here: %s)", arg, nsrcs ? list : "none");
}

/* Push engine[name]. The engine is loaded once, through the protected
 * door; if even that fails, the kit itself is broken. */
static void push_engine(host_t *h, const char *name)
{
    char err[KIT_ERRLEN];
    if (host_engine(h, name, err, sizeof err) != KIT_OK) {
        fprintf(stderr, "mqlab: the lab engine does not load: %s\n", err);
        cleanup_run();
        _exit(70);
    }
}

/* Lab code may run from here on: the file functions reach only what
 * policy.h lists. folder is the lab's own folder (NULL when built in). */
static void enter_policy(const char *folder)
{
    if (!policy_active()) policy_begin();
    if (folder) policy_add(folder, POLICY_READ, NULL);
}

/* Keep only the first line of an error: a lab author wants file:line
 * and the message, not the engine's traceback. */
static void first_line(char *s)
{
    char *nl = strstr(s, "\nstack traceback:");
    if (nl) *nl = '\0';
}

/* The texts a lab file may leave beside itself instead of inline. */
static const char *const side_files[] = { "instructions.es.md", "instructions.en.md" };

/* Push { [name] = text } of the side files found, from the embedded
 * folder embdir ("labs/01-hello") or from folder on disk. */
static void push_side_files(lua_State *L, const char *embdir, const char *folder)
{
    lua_newtable(L);
    for (size_t i = 0; i < sizeof side_files / sizeof *side_files; i++) {
        if (embdir) {
            char name[300];
            snprintf(name, sizeof name, "%s/%s", embdir, side_files[i]);
            const embedded_file_t *f = embedded_find(name);
            if (!f) continue;
            lua_pushlstring(L, (const char *)f->data, f->len);
        } else if (folder) {
            char *p = kit_strdup_printf("%s/%s", folder, side_files[i]);
            size_t len;
            char *data = kit_read_file(p, &len, NULL);
            free(p);
            if (!data) continue;
            lua_pushlstring(L, data, len);
            free(data);
        } else {
            continue;
        }
        lua_setfield(L, -2, side_files[i]);
    }
}

/* bc: the same lab compiled at build time (embedded labs only), or NULL.
 * embdir: the embedded lab's folder name, or NULL. folder: the lab's
 * folder on disk, or NULL. */
static int load_text(host_t *h, const char *code, size_t len, const embedded_file_t *bc,
                     const char *chunk, const char *embdir, const char *folder,
                     lab_t **out, char *err, size_t errlen)
{
    lua_State *L = host_state(h);
    enter_policy(folder);
    push_engine(h, "load");
    lua_pushlstring(L, code, len);
    lua_pushstring(L, chunk);
    if (bc) lua_pushlstring(L, (const char *)bc->data, bc->len);
    else lua_pushnil(L);
    push_side_files(L, embdir, folder);
    int rc = host_call(h, 4, 1, err, errlen);
    if (rc != KIT_OK) {
        first_line(err);
        return rc == KIT_ERR ? KIT_EINVAL : rc;
    }
    lua_getfield(L, -1, "id");
    lab_t *lab = kit_xmalloc(sizeof *lab);
    lab->id = kit_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    lab->h = h;
    lab->folder = folder ? kit_strdup(folder) : NULL;
    lab->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    *out = lab;
    return KIT_OK;
}

int lab_load_file(host_t *h, const char *path, lab_t **out, char *err, size_t errlen)
{
    size_t len;
    char e[KIT_ERRLEN], folder[PATH_MAX];
    char *code = kit_read_file(path, &len, e);
    if (!code) { snprintf(err, errlen, "%s", e); return KIT_ENOENT; }
    /* The folder that holds the lab file is the lab's own. */
    char *copy = kit_strdup(path);
    char *slash = strrchr(copy, '/');
    if (slash) *slash = '\0';
    int have_folder = realpath(slash ? copy : ".", folder) != NULL;
    free(copy);
    char *chunk = kit_strdup_printf("@%s", path);
    int rc = load_text(h, code, len, NULL, chunk, NULL, have_folder ? folder : NULL, out, err, errlen);
    free(chunk);
    free(code);
    return rc;
}

int lab_load(host_t *h, const char *id, lab_t **out, char *err, size_t errlen)
{
    scan_sources();
    lab_src_t *src = find_src(id);
    if (src && src->folder) {
        char *path = kit_strdup_printf("%s/lab.lua", src->folder);
        int rc = lab_load_file(h, path, out, err, errlen);
        free(path);
        /* A lab on disk lives in the folder named after its id. */
        if (rc == KIT_OK && strcmp((*out)->id, id) != 0) {
            snprintf(err, errlen, "%s/lab.lua: the lab's id is '%s', but its folder is called '%s': name one after the other",
                     src->folder, (*out)->id, id);
            lab_free(*out);
            *out = NULL;
            return KIT_EINVAL;
        }
        return rc;
    }
    char name[256];
    snprintf(name, sizeof name, "labs/%s/lab.lua", id);
    const embedded_file_t *f = embedded_find(name);
    if (!f) { snprintf(err, errlen, "no lab '%s'", id); return KIT_ENOENT; }
    char chunk[260], bcname[260], embdir[260];
    snprintf(chunk, sizeof chunk, "@%s", name);
    snprintf(bcname, sizeof bcname, "%sc", name);
    snprintf(embdir, sizeof embdir, "labs/%s", id);
    return load_text(h, (const char *)f->data, f->len, embedded_find(bcname), chunk, embdir, NULL,
                     out, err, errlen);
}

void lab_free(lab_t *lab)
{
    if (!lab) return;
    luaL_unref(host_state(lab->h), LUA_REGISTRYINDEX, lab->ref);
    free(lab->id);
    free(lab->folder);
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
    push_engine(lab->h, "describe");
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
    push_engine(lab->h, fn);
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
    const char *dir = lab_source(id);
    int rc = KIT_OK;
    if (dir) {
        char *sdir = kit_strdup_printf("%s/starter", dir);
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

/* ---------------------------------------------------------------- budgets */

static int push_starter(void *ud, const char *name, const char *data, size_t len)
{
    lua_State *L = ud;
    lua_pushlstring(L, data, len);
    lua_setfield(L, -2, name);
    return KIT_OK;
}

/* The kit's own part of a setup (a broker, a proxy, the private copy) on
 * top of what the lab asks for, and what finish() may take to stop
 * programs (each with its grace) and brokers. */
#define SETUP_KIT_MS 15000
#define FINISH_MS 30000
#define DEFAULT_SETUP_S 30
#define DEFAULT_CHECK_S 10

/* lab[key] (or lab.checks[i][key]) as ms, or def_s seconds when absent. */
static int field_ms(lua_State *L, int idx, const char *key, double def_s)
{
    lua_getfield(L, idx, key);
    double s = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : def_s;
    lua_pop(L, 1);
    if (s < 0) s = 0;
    if (s > 86400) s = 86400;
    return (int)(s * 1000.0 + 0.5);
}

static int setup_budget_ms(lua_State *L, int labidx)
{
    return field_ms(L, labidx, "setup_timeout", DEFAULT_SETUP_S) + SETUP_KIT_MS;
}

static int check_budget_ms(lua_State *L, int labidx, lua_Integer i)
{
    lua_getfield(L, labidx, "checks");
    lua_rawgeti(L, -1, i);
    int ms = field_ms(L, lua_gettop(L), "timeout", DEFAULT_CHECK_S);
    lua_pop(L, 2);
    return ms;
}

static lua_Integer count_checks(lua_State *L, int labidx)
{
    lua_getfield(L, labidx, "checks");
    lua_Integer n = luaL_len(L, -1);
    lua_pop(L, 1);
    return n;
}

int lab_budget(lab_t *lab, lab_budget_t *b)
{
    lua_State *L = host_state(lab->h);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    int t = lua_gettop(L);
    memset(b, 0, sizeof *b);
    b->setup_ms = setup_budget_ms(L, t);
    b->finish_ms = FINISH_MS;
    b->nchecks = (int)count_checks(L, t);
    int64_t total = (int64_t)b->setup_ms + b->finish_ms;
    for (lua_Integer i = 1; i <= b->nchecks; i++) total += check_budget_ms(L, t, i);
    b->total_ms = total > INT32_MAX ? INT32_MAX : (int)total;
    lua_pop(L, 1);
    return KIT_OK;
}

int lab_check_info(lab_t *lab, int i, const char *lang, char **id, char **title, double *points)
{
    lua_State *L = host_state(lab->h);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    lua_getfield(L, -1, "checks");
    lua_rawgeti(L, -1, i + 1);
    if (!lua_istable(L, -1)) { lua_pop(L, 3); return KIT_ENOENT; }
    int c = lua_gettop(L);
    lua_getfield(L, c, "id");
    *id = kit_strdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_getfield(L, c, "points");
    *points = lua_tonumber(L, -1);
    lua_getfield(L, c, "title");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, lang);
        lua_replace(L, -2);
    }
    *title = kit_strdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 6);
    return KIT_OK;
}

/* ---------------------------------------------------------------- grading */

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

/* Every check from `from` on is reported failed, with 0 points and the
 * reason, so the student still sees the whole lab. */
static void fail_rest(lab_t *lab, int from, const char *lang, verdict_t *v, const char *why,
                      const lab_progress_t *pr)
{
    lua_State *L = host_state(lab->h);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    int n = (int)count_checks(L, lua_gettop(L));
    lua_pop(L, 1);
    for (int i = from; i < n; i++) {
        char *id, *title;
        double points;
        if (lab_check_info(lab, i, lang, &id, &title, &points) != KIT_OK) continue;
        check_result_t *c = verdict_add(v, id, title, 0, 0, 0, points, why);
        if (pr && pr->result) pr->result(pr->ud, i, c);
        free(id);
        free(title);
    }
}

/* ctx:status(text) ends here: the lab's own word on what it is doing. */
static int l_status(lua_State *L)
{
    const lab_progress_t *pr = lua_touserdata(L, lua_upvalueindex(1));
    const char *s = luaL_checkstring(L, 1);
    if (pr && pr->status) pr->status(pr->ud, s);
    return 0;
}

static void phase(const lab_progress_t *pr, const char *name, int i, const char *id,
                  const char *title, int budget_ms)
{
    if (pr && pr->phase) pr->phase(pr->ud, name, i, id, title, budget_ms);
}

/* The grading's private folder: work/ (the kit's and the lab's own
 * files, never shown to a program), scratch/ (writable by every program
 * of the grading: a LAB_DB lives there) and, when the lab runs programs,
 * sub/ (the private copy of the submission that programs run in, made
 * once and kept through every start and restart). Every path a lab may
 * reach is registered with the policy. */
typedef struct {
    char root[512];
    char work[PATH_MAX], scratch[PATH_MAX], copy[PATH_MAX];
    int have_copy;
} grading_dirs_t;

static int runs_programs(lua_State *L, int labidx)
{
    lua_getfield(L, labidx, "submission");
    lua_getfield(L, -1, "programs");
    int n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
    lua_pop(L, 2);
    return n > 0;
}

static int make_dirs(lab_t *lab, const char *dir, grading_dirs_t *g, char *err, size_t errlen)
{
    char e[KIT_ERRLEN];
    int rc;
    lua_State *L = host_state(lab->h);
    memset(g, 0, sizeof *g);
    if ((rc = kit_mkdtemp(g->root, sizeof g->root, "mqlab-run", e)) != KIT_OK) goto fail;
    snprintf(g->work, sizeof g->work, "%s/work", g->root);
    snprintf(g->scratch, sizeof g->scratch, "%s/scratch", g->root);
    if ((rc = kit_mkdir_p(g->work, 0700, e)) != KIT_OK) goto fail;
    if ((rc = kit_mkdir_p(g->scratch, 0700, e)) != KIT_OK) goto fail;
    if (prog_sandbox() && (rc = sbx_chown_tree(g->scratch, e)) != KIT_OK) goto fail;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    g->have_copy = runs_programs(L, lua_gettop(L));
    lua_pop(L, 1);
    if (g->have_copy) {
        snprintf(g->copy, sizeof g->copy, "%s/sub", g->root);
        if ((rc = sbx_copy_tree(dir, g->copy, e)) != KIT_OK) goto fail;
    }

    policy_add(g->work, POLICY_READ | POLICY_WRITE, NULL);
    policy_add(g->scratch, POLICY_READ | POLICY_WRITE, NULL);
    if (g->have_copy) policy_add(g->copy, POLICY_READ | POLICY_RUN, NULL);
    policy_add(dir, POLICY_READ, NULL);
    char certs[PATH_MAX];
    if (tls_default_certs_dir(certs, sizeof certs, NULL) == KIT_OK && kit_is_dir(certs))
        policy_add(certs, POLICY_READ, NULL);
    return KIT_OK;
fail:
    snprintf(err, errlen, "%s", e);
    if (g->root[0]) kit_rmdtemp(g->root);
    g->root[0] = '\0';
    return rc;
}

static void drop_dirs(lab_t *lab, const char *dir, grading_dirs_t *g)
{
    policy_forget(g->work);
    policy_forget(g->scratch);
    if (g->have_copy) policy_forget(g->copy);
    policy_forget(dir);
    /* The lab's own folder stays readable; everything else goes. */
    enter_policy(lab->folder);
    if (g->root[0]) kit_rmdtemp(g->root);
}

int lab_grade_with(lab_t *lab, const char *dir, const char *student, const char *lang,
                   const lab_progress_t *pr, verdict_t *v, char *err, size_t errlen)
{
    lua_State *L = host_state(lab->h);
    int base = lua_gettop(L);
    int64_t t0 = kit_now_ms();
    memset(v, 0, sizeof *v);
    v->lab = kit_strdup(lab->id);
    v->student = kit_strdup(student);
    v->submission = kit_strdup(dir);
    v->started_ms = kit_wall_ms();

    enter_policy(lab->folder);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    int labidx = lua_gettop(L);
    int nchecks = (int)count_checks(L, labidx);

    {
        push_engine(lab->h, "title");
        lua_pushvalue(L, labidx);
        lua_pushstring(L, lang);
        char e[KIT_ERRLEN];
        if (host_call(lab->h, 2, 1, e, sizeof e) == KIT_OK) {
            v->title = kit_strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }

    grading_dirs_t g;
    int rc = make_dirs(lab, dir, &g, err, errlen);
    if (rc != KIT_OK) {
        lua_settop(L, base);
        /* A submission the kit cannot copy (too big, unreadable) is the
         * student's to fix: a verdict that says so, not a crash. */
        if (rc == KIT_EINVAL) {
            v->error = kit_strdup(err);
            fail_rest(lab, 0, lang, v, err, pr);
            v->duration_s = (double)(kit_now_ms() - t0) / 1000.0;
            verdict_total(v);
            return KIT_OK;
        }
        return rc;
    }

    /* ctx = engine.begin(lab, {dir, copy, scratch, workdir, student, lang, status}) */
    push_engine(lab->h, "begin");
    lua_pushvalue(L, labidx);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, dir); lua_setfield(L, -2, "dir");
    if (g.have_copy) { lua_pushstring(L, g.copy); lua_setfield(L, -2, "copy"); }
    lua_pushstring(L, g.scratch); lua_setfield(L, -2, "scratch");
    lua_pushstring(L, g.work); lua_setfield(L, -2, "workdir");
    lua_pushstring(L, student); lua_setfield(L, -2, "student");
    lua_pushstring(L, lang); lua_setfield(L, -2, "lang");
    if (pr && pr->status) {
        lua_pushlightuserdata(L, (void *)pr);
        lua_pushcclosure(L, l_status, 1);
        lua_setfield(L, -2, "status");
    }
    /* The starter files, so that the engine can tell an unchanged one
     * (hello.py as handed out) from the student's own work (hello.sh). */
    lua_newtable(L);
    lab_starter_files(lab_id(lab), push_starter, L);
    lua_setfield(L, -2, "starters");
    rc = host_call(lab->h, 2, 1, err, errlen);
    if (rc != KIT_OK) {
        first_line(err);
        lua_settop(L, base);
        drop_dirs(lab, dir, &g);
        return rc;
    }
    int ctx = lua_gettop(L);

    int budget = setup_budget_ms(L, labidx);
    phase(pr, "setup", -1, "", "", budget);
    push_engine(lab->h, "setup");
    lua_pushvalue(L, ctx);
    host_set_deadline(budget);
    rc = host_call(lab->h, 1, 3, err, errlen);
    host_set_deadline(0);
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
    } else if (rc == KIT_ETIMEOUT) {
        snprintf(err, errlen, "the lab's setup did not finish within %d s", budget / 1000);
        rc = KIT_ERR;
    }
    if (rc == KIT_OK) {
        for (int i = 0; i < nchecks && rc == KIT_OK; i++) {
            char *id = NULL, *title = NULL;
            double points = 0;
            lab_check_info(lab, i, lang, &id, &title, &points);
            budget = check_budget_ms(L, labidx, i + 1);
            phase(pr, "check", i, id, title, budget);
            push_engine(lab->h, "check");
            lua_pushvalue(L, ctx);
            lua_pushinteger(L, i + 1);
            host_set_deadline(budget);
            rc = host_call(lab->h, 2, 1, err, errlen);
            host_set_deadline(0);
            if (rc == KIT_ETIMEOUT) {
                /* The check (or a pcall of its own) held on past its
                 * budget: the engine writes the verdict for it now. */
                push_engine(lab->h, "timed_out");
                lua_pushvalue(L, ctx);
                lua_pushinteger(L, i + 1);
                lua_pushnumber(L, budget / 1000.0);
                rc = host_call(lab->h, 3, 1, err, errlen);
            }
            if (rc == KIT_OK) {
                add_result(L, v);
                if (pr && pr->result) pr->result(pr->ud, i, &v->checks[v->nchecks - 1]);
                lua_pop(L, 1);
            } else if (rc == KIT_ERR) {
                first_line(err);
            }
            free(id);
            free(title);
        }
        if (rc == KIT_ERR) {
            /* The engine itself failed on a check: the lab is broken. */
            v->error = kit_strdup(err);
            fail_rest(lab, v->nchecks, lang, v, err, pr);
            rc = KIT_OK;
        }
    } else if (rc == KIT_ERR) {
        v->error = kit_strdup(err);
        fail_rest(lab, 0, lang, v, err, pr);
        rc = KIT_OK;
    }

    /* finish() always runs, even after Ctrl-C: it is what stops the
     * broker and the student's programs. */
    int interrupted = rc == KIT_EINTR;
    if (interrupted) cleanup_clear_interrupt();
    char e2[KIT_ERRLEN];
    phase(pr, "finish", -1, "", "", FINISH_MS);
    push_engine(lab->h, "finish");
    lua_pushvalue(L, ctx);
    host_set_deadline(FINISH_MS);
    host_call(lab->h, 1, 0, e2, sizeof e2);
    host_set_deadline(0);
    lua_settop(L, base);
    lua_gc(L, LUA_GCCOLLECT);
    drop_dirs(lab, dir, &g);
    if (interrupted) {
        snprintf(err, errlen, "interrupted");
        return KIT_EINTR;
    }
    v->duration_s = (double)(kit_now_ms() - t0) / 1000.0;
    verdict_total(v);
    return rc;
}

int lab_grade(lab_t *lab, const char *dir, const char *student, const char *lang,
              verdict_t *v, char *err, size_t errlen)
{
    return lab_grade_with(lab, dir, student, lang, NULL, v, err, errlen);
}

/* ---------------------------------------------------------------- verify */

int lab_text_problems(lab_t *lab, char ***out, int *n)
{
    lua_State *L = host_state(lab->h);
    char err[KIT_ERRLEN];
    *out = NULL;
    *n = 0;
    push_engine(lab->h, "text_problems");
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    if (host_call(lab->h, 1, 1, err, sizeof err) != KIT_OK) {
        *out = kit_xmalloc(sizeof **out);
        (*out)[0] = kit_strdup(err);
        *n = 1;
        return KIT_ERR;
    }
    lua_Integer len = luaL_len(L, -1);
    if (len > 0) *out = kit_xmalloc(sizeof **out * (size_t)len);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, -1, i);
        (*out)[(*n)++] = kit_strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return KIT_OK;
}

/* ---------------------------------------------------------------- guided mode */

int lab_guide_steps(lab_t *lab)
{
    lua_State *L = host_state(lab->h);
    char err[KIT_ERRLEN];
    push_engine(lab->h, "guide_count");
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    if (host_call(lab->h, 1, 1, err, sizeof err) != KIT_OK) return 0;
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return n;
}

int lab_guide(lab_t *lab, const char *student, const char *lang, const char *dir, int want_port,
              void (*step_met)(void *ud, int i, const char *step), void *ud, char *err, size_t errlen)
{
    lua_State *L = host_state(lab->h);
    int base = lua_gettop(L);
    host_set_deadline(0);
    /* ctx = engine.begin(lab, {student, lang}): no submission, no folders
     * of a grading; the broker and the proxy make their own. */
    push_engine(lab->h, "begin");
    lua_rawgeti(L, LUA_REGISTRYINDEX, lab->ref);
    lua_newtable(L);
    lua_pushstring(L, student); lua_setfield(L, -2, "student");
    lua_pushstring(L, lang); lua_setfield(L, -2, "lang");
    /* The student's folder, read-only, for a guide that serves it. */
    char real[PATH_MAX];
    if (dir && realpath(dir, real)) {
        policy_add(real, POLICY_READ, NULL);
        lua_pushstring(L, real);
        lua_setfield(L, -2, "dir");
    } else {
        real[0] = '\0';
    }
    int rc = host_call(lab->h, 2, 1, err, errlen);
    if (rc != KIT_OK) {
        first_line(err);
        if (real[0]) policy_forget(real);
        lua_settop(L, base);
        return rc;
    }
    int ctx = lua_gettop(L);

    push_engine(lab->h, "guide_setup");
    lua_pushvalue(L, ctx);
    if (want_port > 0) lua_pushinteger(L, want_port);
    else lua_pushnil(L);
    rc = host_call(lab->h, 2, 3, err, errlen);
    if (rc == KIT_OK) {
        if (lua_isnil(L, -3)) {
            const char *code = lua_tostring(L, -2);
            snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "cannot start the broker");
            rc = code && strcmp(code, "missing") == 0 ? KIT_EMISSING : KIT_ERR;
        }
        lua_pop(L, 3);
    } else {
        first_line(err);
    }
    if (rc == KIT_OK) {
        push_engine(lab->h, "guide_intro");
        lua_pushvalue(L, ctx);
        rc = host_call(lab->h, 1, 0, err, errlen);
        if (rc != KIT_OK) first_line(err);
    }
    int n = lab_guide_steps(lab);
    for (int i = 0; i < n && rc == KIT_OK; i++) {
        push_engine(lab->h, "guide_step");
        lua_pushvalue(L, ctx);
        lua_pushinteger(L, i + 1);
        rc = host_call(lab->h, 2, 1, err, errlen);
        if (rc == KIT_OK) {
            if (step_met) step_met(ud, i, lua_tostring(L, -1));
            lua_pop(L, 1);
        } else if (rc == KIT_ERR) {
            first_line(err);
        }
    }
    /* Whatever happened: the proxy, the broker and every client go. */
    char ferr[KIT_ERRLEN];
    cleanup_clear_interrupt();
    push_engine(lab->h, "finish");
    lua_pushvalue(L, ctx);
    host_call(lab->h, 1, 1, ferr, sizeof ferr);
    if (real[0]) policy_forget(real);
    lua_settop(L, base);
    return rc;
}
