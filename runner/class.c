/*
 * class.c - grading a class: the layout rule (class.h), the content hash
 * that --resume compares, and the queue of workers.
 *
 * Like git's run_processes_parallel, one parent serves up to N child
 * processes and never runs a lab itself: the host deadline, the MQTT
 * client registry and the cleanup tables are per process, so each
 * grading gets a whole process of its own (worker.h). The parent alone
 * writes the gradebook, one transaction per attempt, as soon as each
 * grading ends; it prints in the class's order.
 */
#include "class.h"
#include "cleanup.h"
#include "host.h"
#include "lab.h"
#include "programs.h"
#include "util.h"
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ the labs */

typedef struct {
    char *name;
    char *data;
    size_t len;
} starter_t;

/* What marks a folder as a lab's: its programs in every form the kit
 * runs, and its data files. */
typedef struct {
    char *id;
    char **programs;
    int nprograms;
    char **files;
    int nfiles;
    double max_points;
    starter_t *starter;
    int nstarter;
} lab_marks_t;

typedef struct {
    char *student, *where;
    int from_file;             /* the id came from .mqlab/student */
    int first, count;          /* its subs */
} owner_t;


struct class {
    owner_t *owners;         /* while finding: who each folder is */
    int nowners;
    lab_marks_t *labs;
    int nlabs;
    char **all_ids;          /* every lab the kit knows, for rule 1 */
    int nall;
    class_sub_t *subs;
    int nsubs, cap;
    const char *lang;
};

static int es(const class_t *c) { return c->lang && strcmp(c->lang, "es") == 0; }
#define L(c, en_, es_) (es(c) ? (es_) : (en_))

static void split_list(const char *s, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    while (s && *s) {
        size_t k = strcspn(s, ",");
        while (*s == ' ') { s++; if (k) k--; }
        if (k) {
            *out = kit_xrealloc(*out, sizeof **out * (size_t)(*n + 1));
            (*out)[(*n)++] = kit_strdup_printf("%.*s", (int)k, s);
        }
        s += k;
        if (*s == ',') s++;
    }
}

static int add_starter(void *ud, const char *name, const char *data, size_t len)
{
    lab_marks_t *m = ud;
    m->starter = kit_xrealloc(m->starter, sizeof *m->starter * (size_t)(m->nstarter + 1));
    starter_t *s = &m->starter[m->nstarter++];
    s->name = kit_strdup(name);
    s->data = kit_xmalloc(len + 1);
    memcpy(s->data, data, len);
    s->data[len] = '\0';
    s->len = len;
    return KIT_OK;
}

static void free_strv(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* The kit runs NAME.py, NAME.c, NAME.lua, NAME.sh or NAME. */
static const char *const prog_forms[] = { ".py", ".c", ".lua", ".sh", "" };
#define NFORMS (int)(sizeof prog_forms / sizeof prog_forms[0])

/* Is `name` one of lab m's files? */
static int is_mark(const lab_marks_t *m, const char *name)
{
    for (int i = 0; i < m->nfiles; i++)
        if (strcmp(name, m->files[i]) == 0) return 1;
    for (int i = 0; i < m->nprograms; i++) {
        size_t k = strlen(m->programs[i]);
        if (strncmp(name, m->programs[i], k) != 0) continue;
        for (int f = 0; f < NFORMS; f++)
            if (strcmp(name + k, prog_forms[f]) == 0) return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ folders */

/* The visible entries of dir, sorted; folders get a trailing '/'. NULL
 * when it cannot be read. */
static char **entries(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    *n = 0;
    if (!d) return NULL;
    char **v = kit_xmalloc(sizeof *v);
    struct dirent *e;
    while ((e = readdir(d))) {
        /* Hidden files, and the interpreters' caches (__pycache__), are
         * no one's work. */
        if (kit_not_work(e->d_name)) continue;
        /* A link is listed as a file: a class is not followed out of
         * itself (class/evil -> / would walk the whole machine). */
        char *p = kit_strdup_printf("%s/%s", dir, e->d_name);
        struct stat st;
        int isdir = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
        free(p);
        v = kit_xrealloc(v, sizeof *v * (size_t)(*n + 1));
        v[(*n)++] = kit_strdup_printf("%s%s", e->d_name, isdir ? "/" : "");
    }
    closedir(d);
    qsort(v, (size_t)*n, sizeof *v, kit_cmp_strp);
    return v;
}

static int is_lab_id(const class_t *c, const char *name)
{
    for (int i = 0; i < c->nall; i++)
        if (strcmp(name, c->all_ids[i]) == 0) return 1;
    return 0;
}

/* Rule 1: .mqlab/, or a sub-folder named after a lab. */
static int is_workspace(const class_t *c, const char *dir)
{
    char *p = kit_strdup_printf("%s/.mqlab", dir);
    int yes = kit_is_dir(p);
    free(p);
    for (int i = 0; !yes && i < c->nall; i++) {
        p = kit_strdup_printf("%s/%s", dir, c->all_ids[i]);
        yes = kit_is_dir(p);
        free(p);
    }
    return yes;
}

/* Rule 2, for lab m: a file of the lab among the entries v of a folder.
 * A lab that names no files at all takes any folder. */
static int lists_lab(const lab_marks_t *m, char **v, int n)
{
    if (m->nprograms == 0 && m->nfiles == 0) return 1;
    for (int i = 0; i < n; i++)
        if (v[i][strlen(v[i]) - 1] != '/' && is_mark(m, v[i])) return 1;
    return 0;
}

static int holds_lab(const lab_marks_t *m, const char *dir)
{
    int n;
    char **v = entries(dir, &n);
    int yes = lists_lab(m, v, n);
    free_strv(v, n);
    return yes;
}

/* The folder is listed once, whatever the number of labs. */
static int holds_any_lab(const class_t *c, const char *dir)
{
    int n, yes = 0;
    char **v = entries(dir, &n);
    for (int i = 0; i < c->nlabs && !yes; i++) yes = lists_lab(&c->labs[i], v, n);
    free_strv(v, n);
    return yes;
}

/* Every file of lab m in dir is a starter file, unchanged. */
static int only_starter(const lab_marks_t *m, const char *dir)
{
    int n, marks = 0, same = 0;
    char **v = entries(dir, &n);
    for (int i = 0; i < n; i++) {
        if (!is_mark(m, v[i])) continue;
        marks++;
        for (int k = 0; k < m->nstarter; k++) {
            if (strcmp(m->starter[k].name, v[i]) != 0) continue;
            char *p = kit_strdup_printf("%s/%s", dir, v[i]);
            size_t len = 0;
            char *data = kit_read_file(p, &len, NULL);
            if (data && len == m->starter[k].len && memcmp(data, m->starter[k].data, len) == 0) same++;
            free(data);
            free(p);
        }
    }
    free_strv(v, n);
    return marks > 0 && same == marks;
}

/* What the kit looks for, for the missing-submission message. */
static char *wanted(const class_t *c, const lab_marks_t *m)
{
    char *out = kit_strdup("");
    for (int i = 0; i < m->nprograms; i++) {
        const char *p = m->programs[i];
        char *next = kit_strdup_printf(L(c, "%s%sthe lab runs %s.py, %s.c, %s.lua, %s.sh or %s",
                                            "%s%sel laboratorio ejecuta %s.py, %s.c, %s.lua, %s.sh o %s"),
                                       out, *out ? "; " : "", p, p, p, p, p);
        free(out);
        out = next;
    }
    if (m->nfiles > 0) {
        char *list = kit_strdup("");
        for (int i = 0; i < m->nfiles; i++) {
            char *next = kit_strdup_printf("%s%s%s", list, i ? ", " : "", m->files[i]);
            free(list);
            list = next;
        }
        char *next = kit_strdup_printf(L(c, "%s%sit reads %s", "%s%slee %s"), out, *out ? "; " : "", list);
        free(list);
        free(out);
        out = next;
    }
    return out;
}

/* "found Sensor.py, notes/; the lab runs sensor.py, ..." */
static char *missing_text(const class_t *c, const lab_marks_t *m, const char *dir, const char *why)
{
    char *want = wanted(c, m);
    char *msg;
    if (why) {
        msg = kit_strdup_printf("%s; %s", why, want);
    } else {
        int n;
        char **v = entries(dir, &n);
        if (!v) {
            msg = kit_strdup_printf(L(c, "%s cannot be read; %s", "no se puede leer %s; %s"), dir, want);
        } else if (n == 0) {
            msg = kit_strdup_printf(L(c, "nothing handed in: %s is empty; %s", "no hay entrega: %s está vacía; %s"), dir, want);
        } else {
            char *list = kit_strdup("");
            int shown = n < 8 ? n : 8;
            for (int i = 0; i < shown; i++) {
                char *next = kit_strdup_printf("%s%s%s", list, i ? ", " : "", v[i]);
                free(list);
                list = next;
            }
            msg = kit_strdup_printf(L(c, "nothing handed in: found %s%s in %s; %s",
                                         "no hay entrega: encontré %s%s en %s; %s"),
                                    list, n > shown ? ", ..." : "", dir, want);
            free(list);
        }
        free_strv(v, n);
    }
    free(want);
    return msg;
}

/* ------------------------------------------------------------ the class */

static class_sub_t *add_sub(class_t *c, const char *student, const char *lab, const char *where)
{
    if (c->nsubs == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->subs = kit_xrealloc(c->subs, sizeof *c->subs * (size_t)c->cap);
    }
    class_sub_t *s = &c->subs[c->nsubs++];
    memset(s, 0, sizeof *s);
    s->student = kit_strdup(student);
    s->lab = kit_strdup(lab);
    s->where = kit_strdup(where);
    return s;
}

static void set_missing(class_sub_t *s, const lab_marks_t *m, char *msg)
{
    s->dir = NULL;
    s->v.lab = kit_strdup(m->id);
    s->v.student = kit_strdup(s->student);
    s->v.submission = kit_strdup(s->where);
    s->v.missing = msg;
    s->v.max_score = m->max_points;
    s->v.started_ms = kit_wall_ms();
}

/* A lab folder for lab m of `student`: graded, or missing when it holds
 * none of the lab's files or only its starter files. */
static void add_lab_folder(class_t *c, const char *student, const lab_marks_t *m, const char *dir, const char *where)
{
    class_sub_t *s = add_sub(c, student, m->id, where);
    if (!kit_is_dir(dir)) {
        char *why = kit_strdup_printf(L(c, "nothing handed in: no folder %s/ in %s", "no hay entrega: no hay carpeta %s/ en %s"),
                                      m->id, where);
        set_missing(s, m, missing_text(c, m, dir, why));
        free(why);
    } else if (!holds_lab(m, dir)) {
        set_missing(s, m, missing_text(c, m, dir, NULL));
    } else if (only_starter(m, dir)) {
        char *why = kit_strdup_printf(L(c, "nothing handed in: %s holds only the starter files, unchanged",
                                           "no hay entrega: %s solo tiene los ficheros de partida, sin cambios"), dir);
        set_missing(s, m, missing_text(c, m, dir, why));
        free(why);
    } else {
        s->dir = kit_strdup(dir);
    }
}

/* .mqlab/student when it is a valid id, else NULL. */
static char *recorded_student(const char *ws)
{
    char *p = kit_strdup_printf("%s/.mqlab/student", ws);
    char *s = kit_read_file(p, NULL, NULL);
    free(p);
    if (!s) return NULL;
    s[strcspn(s, "\r\n")] = '\0';
    size_t n = strlen(s);
    int ok = n > 0 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
    if (!ok) { free(s); return NULL; }
    return s;
}

static const char *base_of(const char *path)
{
    const char *b = strrchr(path, '/');
    return b && b[1] ? b + 1 : path;
}


static void begin_owner(class_t *c, const char *student, const char *where, int from_file)
{
    c->owners = kit_xrealloc(c->owners, sizeof *c->owners * (size_t)(c->nowners + 1));
    c->owners[c->nowners++] = (owner_t){ kit_strdup(student), kit_strdup(where), from_file, c->nsubs, 0 };
}

static void end_owner(class_t *c)
{
    c->owners[c->nowners - 1].count = c->nsubs - c->owners[c->nowners - 1].first;
}

static void add_workspace(class_t *c, const char *ws, const char *forced)
{
    char *rec = forced ? NULL : recorded_student(ws);
    const char *who = forced ? forced : rec ? rec : base_of(ws);
    begin_owner(c, who, ws, rec != NULL);
    for (int i = 0; i < c->nlabs; i++) {
        char *dir = kit_strdup_printf("%s/%s", ws, c->labs[i].id);
        add_lab_folder(c, who, &c->labs[i], dir, ws);
        free(dir);
    }
    end_owner(c);
    free(rec);
}

/* Rule 2: a student's lab folder, for every lab of the run. (A folder
 * named after a lab always sits in a workspace: add_folder gives it to
 * that lab alone.) */
static void add_student_folder(class_t *c, const char *dir, const char *forced)
{
    const char *who = forced ? forced : base_of(dir);
    begin_owner(c, who, dir, 0);
    for (int i = 0; i < c->nlabs; i++) add_lab_folder(c, who, &c->labs[i], dir, dir);
    end_owner(c);
}

static int has_subfolder(const char *dir)
{
    int n, yes = 0;
    char **v = entries(dir, &n);
    for (int i = 0; i < n && !yes; i++) yes = v[i][strlen(v[i]) - 1] == '/';
    free_strv(v, n);
    return yes;
}

/* Rule 3: a class; its children are students, or classes themselves
 * (sections of a course), down to a few levels. */
enum { MAX_DEPTH = 3 };

static int holds_something(class_t *c, const char *dir, int depth)
{
    if (is_workspace(c, dir) || holds_any_lab(c, dir)) return 1;
    if (depth >= MAX_DEPTH) return 0;
    int n, yes = 0;
    char **v = entries(dir, &n);
    for (int i = 0; i < n && !yes; i++) {
        if (v[i][strlen(v[i]) - 1] != '/') continue;
        char *p = kit_strdup_printf("%s/%.*s", dir, (int)strlen(v[i]) - 1, v[i]);
        yes = holds_something(c, p, depth + 1);
        free(p);
    }
    free_strv(v, n);
    return yes;
}

static void add_folder(class_t *c, const char *dir, int depth, const char *forced)
{
    if (is_workspace(c, dir)) { add_workspace(c, dir, forced); return; }
    /* A lab folder inside a workspace (ana/03-qos-loss given alone)
     * belongs to the workspace's student. */
    if (depth == 0 && is_lab_id(c, base_of(dir))) {
        char *parent = kit_strdup(dir);
        *strrchr(parent, '/') = '\0';
        if (*parent && is_workspace(c, parent)) {
            char *rec = forced ? NULL : recorded_student(parent);
            const char *who = forced ? forced : rec ? rec : base_of(parent);
            begin_owner(c, who, parent, rec != NULL);
            /* That folder is that lab's alone: the workspace's other
             * labs were not asked for. */
            for (int i = 0; i < c->nlabs; i++)
                if (strcmp(c->labs[i].id, base_of(dir)) == 0) add_lab_folder(c, who, &c->labs[i], dir, parent);
            end_owner(c);
            free(rec);
            free(parent);
            return;
        }
        free(parent);
    }
    /* A lab folder, or a student who handed in nothing. A folder given
     * on the command line that holds folders is a class even when none of
     * its students handed in anything (class/ben/Sensor.py); further down,
     * only a folder with a submission somewhere inside is. */
    int is_class = depth == 0 ? has_subfolder(dir) : holds_something(c, dir, depth);
    if (holds_any_lab(c, dir) || depth >= MAX_DEPTH || !is_class) {
        add_student_folder(c, dir, forced);
        return;
    }
    int n;
    char **v = entries(dir, &n);
    for (int i = 0; i < n; i++) {
        if (v[i][strlen(v[i]) - 1] != '/') continue;
        char *p = kit_strdup_printf("%s/%.*s", dir, (int)strlen(v[i]) - 1, v[i]);
        add_folder(c, p, depth + 1, NULL);
        free(p);
    }
    free_strv(v, n);
}

/* Two folders claiming one student: every id read from .mqlab/student
 * (which a student writes) among them gives way to its folder's name;
 * two folders of the same name are an error. */
static int settle_owners(class_t *c, char *err, size_t errlen)
{
    char *clash = kit_xmalloc((size_t)(c->nowners ? c->nowners : 1));
    memset(clash, 0, (size_t)(c->nowners ? c->nowners : 1));
    for (int i = 0; i < c->nowners; i++)
        for (int k = i + 1; k < c->nowners; k++)
            if (strcmp(c->owners[i].student, c->owners[k].student) == 0) clash[i] = clash[k] = 1;
    for (int i = 0; i < c->nowners; i++) {
        owner_t *o = &c->owners[i];
        if (!clash[i] || !o->from_file) continue;
        const char *name = base_of(o->where);
        fprintf(stderr, es(c) ? "mqlab grade: %s/.mqlab/student dice «%s», como otra carpeta; se usa el nombre de la carpeta, «%s»\n"
                              : "mqlab grade: %s/.mqlab/student says '%s', as another folder does; using the folder's name, '%s'\n",
                o->where, o->student, name);
        free(o->student);
        o->student = kit_strdup(name);
        for (int j = o->first; j < o->first + o->count; j++) {
            free(c->subs[j].student);
            c->subs[j].student = kit_strdup(name);
            if (c->subs[j].v.student) {
                free(c->subs[j].v.student);
                c->subs[j].v.student = kit_strdup(name);
            }
        }
    }
    free(clash);
    for (int i = 0; i < c->nowners; i++)
        for (int k = i + 1; k < c->nowners; k++)
            if (strcmp(c->owners[i].student, c->owners[k].student) == 0) {
                snprintf(err, errlen, es(c) ? "dos carpetas son del estudiante «%s»: %s y %s; deja una, o cambia el nombre de una"
                                            : "two folders belong to student '%s': %s and %s; keep one, or rename one",
                         c->owners[i].student, c->owners[i].where, c->owners[k].where);
                return KIT_EINVAL;
            }
    return KIT_OK;
}

static int cmp_sub(const void *a, const void *b)
{
    const class_sub_t *x = a, *y = b;
    int r = strcmp(x->student, y->student);
    return r ? r : strcmp(x->lab, y->lab);
}

static void free_owners(class_t *c)
{
    for (int i = 0; i < c->nowners; i++) {
        free(c->owners[i].student);
        free(c->owners[i].where);
    }
    free(c->owners);
    c->owners = NULL;
    c->nowners = 0;
}

class_t *class_find(const char *const *labs, int nlabs, const char *const *dirs, int ndirs,
                    const char *student, const char *lang, char *err, size_t errlen)
{
    class_t *c = kit_xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->lang = lang;
    char herr[KIT_ERRLEN];
    host_t *h = host_new(herr);
    if (!h) {
        snprintf(err, errlen, "%s", herr);
        class_free(c);
        return NULL;
    }
    lab_ids(&c->all_ids, &c->nall);
    c->labs = kit_xmalloc(sizeof *c->labs * (size_t)(nlabs > 0 ? nlabs : 1));
    for (int i = 0; i < nlabs; i++) {
        lab_marks_t *m = &c->labs[c->nlabs];
        memset(m, 0, sizeof *m);
        lab_t *lab = NULL;
        if (lab_load(h, labs[i], &lab, err, errlen) != KIT_OK) {
            host_free(h);
            class_free(c);
            return NULL;
        }
        c->nlabs++;
        lab_info_t info = { 0 };
        lab_describe(lab, lang, &info);
        m->id = kit_strdup(labs[i]);
        split_list(info.programs, &m->programs, &m->nprograms);
        split_list(info.files, &m->files, &m->nfiles);
        m->max_points = info.max_points;
        lab_info_clear(&info);
        lab_free(lab);
        lab_starter_files(m->id, add_starter, m);
    }
    host_free(h);

    for (int i = 0; i < ndirs; i++) {
        char abs[PATH_MAX];
        if (!kit_is_dir(dirs[i]) || !realpath(dirs[i], abs)) {
            snprintf(err, errlen, es(c) ? "%s no es una carpeta" : "%s is not a folder", dirs[i]);
            free_owners(c);
            class_free(c);
            return NULL;
        }
        int before = c->nowners;
        add_folder(c, abs, 0, student);
        if (student && c->nowners - before > 1) {
            snprintf(err, errlen, es(c) ? "--student nombra al estudiante de una sola entrega, y %s tiene %d"
                                        : "--student names the student of a single submission, and %s holds %d",
                     dirs[i], c->nowners - before);
            free_owners(c);
            class_free(c);
            return NULL;
        }
    }
    int rc = settle_owners(c, err, errlen);
    free_owners(c);
    if (rc != KIT_OK) {
        class_free(c);
        return NULL;
    }
    qsort(c->subs, (size_t)c->nsubs, sizeof *c->subs, cmp_sub);
    return c;
}

void class_free(class_t *c)
{
    if (!c) return;
    free_owners(c);
    for (int i = 0; i < c->nlabs; i++) {
        lab_marks_t *m = &c->labs[i];
        free(m->id);
        free_strv(m->programs, m->nprograms);
        free_strv(m->files, m->nfiles);
        for (int k = 0; k < m->nstarter; k++) {
            free(m->starter[k].name);
            free(m->starter[k].data);
        }
        free(m->starter);
    }
    free(c->labs);
    if (c->all_ids) lab_free_ids(c->all_ids, c->nall);
    for (int i = 0; i < c->nsubs; i++) {
        class_sub_t *s = &c->subs[i];
        free(s->student);
        free(s->lab);
        free(s->dir);
        free(s->where);
        verdict_clear(&s->v);
    }
    free(c->subs);
    free(c);
}

int class_count(const class_t *c) { return c ? c->nsubs : 0; }
class_sub_t *class_at(class_t *c, int i) { return &c->subs[i]; }

/* ------------------------------------------------------------ shards */

int class_shard_of(const char *student, int count)
{
    /* FNV-1a, 64 bits: the same on every machine and every run, unlike
     * rand() or the order readdir() gives. */
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)student; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return count > 0 ? (int)(h % (uint64_t)count) : 0;
}

static int parse_count(const char *p, const char *end, long *out)
{
    long v = 0;
    if (p == end) return 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (*p - '0');
        if (v > 10000) return 0;
    }
    *out = v;
    return 1;
}

int class_parse_shard(const char *arg, int *index, int *count)
{
    long i = 0, n = 0;
    const char *slash = arg ? strchr(arg, '/') : NULL;
    if (!slash || !parse_count(arg, slash, &i) || !parse_count(slash + 1, slash + strlen(slash), &n) ||
        n < 1 || i >= n)
        return KIT_EINVAL;
    *index = (int)i;
    *count = (int)n;
    return KIT_OK;
}

void class_keep_shard(class_t *c, int index, int count, int *kept, int *total)
{
    /* Counted first: the filter below frees what it drops. The subs are
     * sorted by student, so a student starts where the name changes. */
    int k = 0, students = 0, mine = 0;
    for (int i = 0; i < c->nsubs; i++) {
        if (i > 0 && strcmp(c->subs[i].student, c->subs[i - 1].student) == 0) continue;
        students++;
        mine += class_shard_of(c->subs[i].student, count) == index;
    }
    for (int i = 0; i < c->nsubs; i++) {
        class_sub_t *s = &c->subs[i];
        if (class_shard_of(s->student, count) == index) {
            c->subs[k++] = *s;
            continue;
        }
        free(s->student);
        free(s->lab);
        free(s->dir);
        free(s->where);
        verdict_clear(&s->v);
    }
    c->nsubs = k;
    if (kept) *kept = mine;
    if (total) *total = students;
}

/* ------------------------------------------------------------ the hash */

/* Names, kinds and contents under dir, depth first in name order. A
 * file's content counts up to a limit (a submission is a few small
 * files; a huge one is told apart by its size and first bytes). */
enum { HASH_FILE_MAX = 16 << 20 };

static int hash_dir(EVP_MD_CTX *md, const char *dir, const char *rel, int depth)
{
    if (depth > 8) return 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **v = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        v = kit_xrealloc(v, sizeof *v * (size_t)(n + 1));
        v[n++] = kit_strdup(e->d_name);
    }
    closedir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof *v, kit_cmp_strp);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char *p = kit_strdup_printf("%s/%s", dir, v[i]);
        char *r = kit_strdup_printf("%s%s%s", rel, *rel ? "/" : "", v[i]);
        struct stat st;
        if (lstat(p, &st) != 0) {
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            EVP_DigestUpdate(md, "D", 1);
            EVP_DigestUpdate(md, r, strlen(r) + 1);
            if (hash_dir(md, p, r, depth + 1) != 0) rc = -1;
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t k = readlink(p, target, sizeof target);
            EVP_DigestUpdate(md, "L", 1);
            EVP_DigestUpdate(md, r, strlen(r) + 1);
            if (k > 0) EVP_DigestUpdate(md, target, (size_t)k);
            EVP_DigestUpdate(md, "", 1);
        } else if (S_ISREG(st.st_mode)) {
            char head[64];
            int len = snprintf(head, sizeof head, "%lld:%o", (long long)st.st_size, (unsigned)(st.st_mode & 0111));
            EVP_DigestUpdate(md, "F", 1);
            EVP_DigestUpdate(md, r, strlen(r) + 1);
            EVP_DigestUpdate(md, head, (size_t)len + 1);
            FILE *f = fopen(p, "rb");
            if (!f) {
                rc = -1;
            } else {
                char buf[65536];
                size_t got, total = 0;
                while (total < HASH_FILE_MAX && (got = fread(buf, 1, sizeof buf, f)) > 0) {
                    EVP_DigestUpdate(md, buf, got);
                    total += got;
                }
                fclose(f);
            }
        }
        free(p);
        free(r);
    }
    free_strv(v, n);
    return rc;
}

/* A SHA-256 digest in hex; -1 when it is not one. */
static int to_hex(const unsigned char *d, unsigned len, char hex[65])
{
    if (len != 32) return -1;
    for (unsigned i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

int class_hash(const char *dir, char hex[65])
{
    hex[0] = '\0';
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md) return -1;
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    int rc = -1;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && hash_dir(md, dir, "", 0) == 0 &&
        EVP_DigestFinal_ex(md, out, &len) == 1)
        rc = to_hex(out, len, hex);
    EVP_MD_CTX_free(md);
    return rc;
}

/* A missing submission's key: what was found instead, so a resumed run
 * keeps it while nothing changes. */
static void hash_text(const char *text, char hex[65])
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    hex[0] = '\0';
    if (EVP_Digest(text, strlen(text), out, &len, EVP_sha256(), NULL) == 1) to_hex(out, len, hex);
}

/* ------------------------------------------------------------ jobs */

int class_default_jobs(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    long jobs = 8 * cores;
    /* A grading holds a broker, a proxy, the student's programs and a
     * worker: about 100 MB at most. */
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1) break;
        fclose(f);
        if (kb > 0 && kb / (100 * 1024) < jobs) jobs = kb / (100 * 1024);
    }
    /* The parent holds a pipe and a few descriptors per worker. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        long fit = ((long)rl.rlim_cur - 64) / 8;
        if (fit < jobs) jobs = fit;
    }
    if (jobs > 16) jobs = 16;
    return jobs < 1 ? 1 : (int)jobs;
}

/* ------------------------------------------------------------ the run */

typedef struct {
    worker_job_t job;
    worker_t *w;
} running_t;

/* The progress line: done/total, not full marks so far, rate, ETA. */
static void progress(const class_t *c, int on, int done, int total, int bad, int64_t t0, int running)
{
    if (!on) return;
    double el = (double)(kit_now_ms() - t0) / 1000.0;
    char eta[32] = "?";
    if (done > 0 && done < total) {
        double left = el / done * (total - done);
        snprintf(eta, sizeof eta, "%dm%02ds", (int)left / 60, (int)left % 60);
    } else if (done == total) {
        snprintf(eta, sizeof eta, "0s");
    }
    double rate = el > 0 ? done * 60.0 / el : 0;
    fprintf(stderr, es(c) ? "\r\033[K%d/%d evaluadas · %d sin nota completa · %d en marcha · %.1f/min · quedan %s"
                          : "\r\033[K%d/%d graded · %d not full marks · %d running · %.1f/min · ETA %s",
            done, total, bad, running, rate, eta);
    fflush(stderr);
}

static void progress_clear(int on)
{
    if (!on) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

/* Is the gradebook's latest attempt of s the same submission, graded to
 * the end? Then v is filled from it. */
static int resume_from(store_t *st, class_sub_t *s)
{
    char err[KIT_ERRLEN];
    verdict_t v = { 0 };
    if (store_latest(st, s->student, s->lab, &v, err) != KIT_OK) return 0;
    int same = v.hash && strcmp(v.hash, s->hash) == 0 && !v.incomplete && !v.error &&
               (v.missing != NULL) == (s->dir == NULL);
    if (same) {
        verdict_clear(&s->v);
        s->v = v;
        s->resumed = 1;
        return 1;
    }
    verdict_clear(&v);
    return 0;
}

int class_run(class_t *c, store_t *st, const class_run_t *o)
{
    int n = c->nsubs, jobs = o->jobs > 0 ? o->jobs : 1;
    int exit_code = 0, stop = 0, nrun = 0, next = 0, emitted = 0, done = 0, bad = 0;
    int64_t t0 = kit_now_ms();
    char err[KIT_ERRLEN];
    running_t *run = kit_xmalloc(sizeof *run * (size_t)(n > 0 ? n : 1));
    memset(run, 0, sizeof *run * (size_t)(n > 0 ? n : 1));
    struct pollfd *pf = kit_xmalloc(sizeof *pf * (size_t)(n > 0 ? n : 1));

    /* What needs no worker: missing submissions, and with --resume what
     * the gradebook already has. */
    for (int i = 0; i < n; i++) {
        class_sub_t *s = &c->subs[i];
        if (s->dir) {
            if (class_hash(s->dir, s->hash) != 0) s->hash[0] = '\0';
        } else {
            hash_text(s->v.missing, s->hash);
        }
        if (o->resume && s->hash[0] && resume_from(st, s)) {
            s->state = CLASS_DONE;
            done++;
            if (!verdict_full_marks(&s->v)) bad++;
            continue;
        }
        if (!s->dir) {
            free(s->v.hash);
            s->v.hash = kit_strdup(s->hash);
            if (store_record(st, &s->v, NULL, err) != KIT_OK) {
                fprintf(stderr, "mqlab grade: %s\n", err);
                exit_code = 1;
            }
            s->state = CLASS_DONE;
            done++;
            bad++;
        }
    }

    /* Which Python runs the students' programs is found once, here, and
     * every worker inherits the answer: a probe per worker is wasted work,
     * and on a machine busy with many workers it could time out and pass
     * for a Python without paho. */
    for (int i = 0; i < n; i++)
        if (c->subs[i].state == CLASS_WAITING) { prog_python(NULL); break; }
    /* Workers start a little apart: a grading's first second (fork, the
     * lab, brokers, the sandbox, an interpreter) is its busiest, and a
     * whole batch of them at once starves each other's start-up. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t gap_ms = 500 / (cores > 0 ? cores : 1), last_start = 0;

    while (emitted < n) {
        /* Start workers up to the limit, in the class's order. */
        while (!stop && nrun < jobs && next < n) {
            class_sub_t *s = &c->subs[next];
            if (s->state == CLASS_WAITING && nrun > 0 && kit_now_ms() - last_start < gap_ms) break;
            running_t *r = &run[next++];
            if (s->state != CLASS_WAITING) continue;
            last_start = kit_now_ms();
            r->job = (worker_job_t){ .lab = s->lab, .dir = s->dir, .student = s->student, .lang = o->lang };
            worker_start(&r->job, &s->v, &r->w);
            s->state = CLASS_RUNNING;
            nrun++;
        }
        progress(c, o->progress, done, n, bad, t0, nrun);
        /* Wait for any of them, then let each act on what it said. */
        int np = 0;
        for (int i = 0; i < n; i++)
            if (c->subs[i].state == CLASS_RUNNING && worker_fd(run[i].w) >= 0)
                pf[np++] = (struct pollfd){ worker_fd(run[i].w), POLLIN, 0 };
        int wait = next < n && nrun < jobs && !stop ? (int)gap_ms : 250;
        if (np > 0) poll(pf, (nfds_t)np, wait);
        if (cleanup_interrupted()) stop = 1;
        for (int i = 0; i < n; i++) {
            class_sub_t *s = &c->subs[i];
            if (s->state != CLASS_RUNNING || !worker_step(run[i].w, 0)) continue;
            char werr[8192] = "";
            int wrc = worker_finish(run[i].w, werr, sizeof werr);
            run[i].w = NULL;
            s->state = CLASS_DONE;
            nrun--;
            done++;
            if (wrc == KIT_OK) {
                s->outcome = 0;
                free(s->v.hash);
                s->v.hash = kit_strdup(s->hash);
                if (!verdict_full_marks(&s->v)) bad++;
                if (s->v.error) exit_code = exit_code ? exit_code : 1;
                if (store_record(st, &s->v, NULL, err) != KIT_OK) {
                    progress_clear(o->progress);
                    fprintf(stderr, "mqlab grade: %s\n", err);
                    exit_code = exit_code ? exit_code : 1;
                }
                continue;
            }
            progress_clear(o->progress);
            if (wrc == KIT_EINTR) {
                s->outcome = 130;
            } else {
                fprintf(stderr, "mqlab grade: %s: %s\n", s->where, werr);
                s->outcome = wrc == KIT_EMISSING ? 3 : 2;
                bad++;
            }
            if (s->outcome == 130 || s->outcome == 3) {
                if (!stop || exit_code == 0 || exit_code == 1) exit_code = s->outcome;
                stop = 1;
            } else if (exit_code == 0) {
                exit_code = 1;
            }
        }
        if (stop) {
            /* What never started is left out. */
            for (int i = next; i < n; i++)
                if (c->subs[i].state == CLASS_WAITING) c->subs[i].state = CLASS_DROPPED;
            next = n;
        }
        /* Report in the class's order. */
        int cleared = 0;
        while (emitted < n) {
            class_sub_t *s = &c->subs[emitted];
            if (s->state != CLASS_DONE && s->state != CLASS_DROPPED) break;
            if (!cleared) { progress_clear(o->progress); cleared = 1; }
            if (o->emit) o->emit(o->ud, s);
            emitted++;
        }
    }
    progress_clear(o->progress);
    free(pf);
    free(run);
    if (stop && cleanup_interrupted() && exit_code != 3) exit_code = 130;
    return exit_code;
}
