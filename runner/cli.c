/*
 * cli.c - helpers the commands share: the workspace, the student id, the
 * progress store, loading a lab, and grading one folder in a worker.
 */
#include "programs.h"
#include "report.h"
#include "util.h"
#include "worker.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------ workspace */

/* The workspace is the nearest folder, from start upwards, holding
 * .mqlab/. Fills root; 0 when there is none. */
int find_workspace(const char *start, char *root, size_t len)
{
    char buf[PATH_MAX];
    if (!realpath(start, buf)) return 0;
    for (;;) {
        char probe[PATH_MAX + 16];
        snprintf(probe, sizeof probe, "%s/.mqlab", buf);
        if (kit_is_dir(probe)) { snprintf(root, len, "%s", buf); return 1; }
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf) return 0;
        *slash = '\0';
    }
}

static char student_buf[256];

const char *student_id(const char *ws)
{
    if (opt.student && *opt.student) return opt.student;
    const char *env = getenv("MQLAB_STUDENT");
    if (env && *env) return env;
    if (ws) {
        char *p = kit_strdup_printf("%s/.mqlab/student", ws);
        char *s = kit_read_file(p, NULL, NULL);
        free(p);
        if (s) {
            s[strcspn(s, "\r\n")] = '\0';
            snprintf(student_buf, sizeof student_buf, "%s", s);
            free(s);
            if (*student_buf) return student_buf;
        }
    }
    const char *u = getenv("USER");
    return u && *u ? u : "student";
}

/* Progress database: --db, MQLAB_DB, the workspace's, or ~/.local/share. */
char *progress_path(const char *ws)
{
    if (opt.db) return kit_strdup(opt.db);
    const char *env = getenv("MQLAB_DB");
    if (env && *env) return kit_strdup(env);
    if (ws) return kit_strdup_printf("%s/.mqlab/progress.db", ws);
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg) return kit_strdup_printf("%s/mqlab/progress.db", xdg);
    const char *home = getenv("HOME");
    return kit_strdup_printf("%s/.local/share/mqlab/progress.db", home && *home ? home : ".");
}

store_t *open_store(const char *ws)
{
    char err[KIT_ERRLEN];
    char *path = progress_path(ws);
    store_t *s = NULL;
    if (store_open(&s, path, err) != KIT_OK) {
        fprintf(stderr, "mqlab: %s\n", err);
        s = NULL;
    }
    free(path);
    return s;
}

host_t *new_host(void)
{
    char err[KIT_ERRLEN];
    host_t *h = host_new(err);
    if (!h) fprintf(stderr, "mqlab: %s\n", err);
    return h;
}

/* Resolve NN and load the lab. Prints the error; returns an exit code. */
int load_lab(host_t *h, const char *cmd, const char *arg, lab_t **lab)
{
    char id[128], err[4096];
    if (lab_resolve(arg, id, sizeof id, err) != KIT_OK) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    if (lab_load(h, id, lab, err, sizeof err) != KIT_OK) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    return EXIT_PASS;
}

/* ------------------------------------------------------------ tables */

/* Print s left-aligned in a column of width characters. printf pads by
 * bytes, which shifts every column after an accented word ("TÍTULO"). */
void column(const char *s, int width)
{
    int chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) chars++;
    fputs(s, stdout);
    for (; chars < width; chars++) putchar(' ');
    putchar(' ');
}

/* ------------------------------------------------------------ check, grade */

/* Student programs run in the sandbox when the machine allows it. check
 * runs a student's own code, so without one it goes on with a notice;
 * grade runs strangers' code, so it refuses unless told --no-sandbox.
 * Returns an exit code (EXIT_PASS to go on). */
static const char *unconfined_cmd = "check";

/* Set while a live line is on: the sandbox notice (unconfined_notice) is
 * printed by the worker, which inherits this, and must not be glued to
 * the end of that line. */
static int live_on;

static void unconfined_notice(const char *why)
{
    fprintf(stderr, "%smqlab %s: %s (%s)\n", live_on ? "\r\033[K" : "", unconfined_cmd,
            T("no sandbox here, your program runs unconfined", "aquí no hay aislamiento: tu programa corre sin confinar"), why);
}

int choose_sandbox(const char *cmd, int strict)
{
    char why[KIT_ERRLEN];
    if (opt.no_sandbox) {
        prog_set_sandbox(0);
        fprintf(stderr, "mqlab %s: %s\n", cmd, T("--no-sandbox: programs run with your own rights, unconfined",
                                                 "--no-sandbox: los programas corren con tus permisos, sin aislar"));
        return EXIT_PASS;
    }
    unconfined_cmd = cmd;
    if (!strict) {
        /* No probe (a whole sandbox start, a tenth of a short grading):
         * the first program finds out, and says so if it cannot be. */
        if (sbx_installed(why, sizeof why)) {
            prog_set_sandbox_lenient(unconfined_notice);
            return EXIT_PASS;
        }
        prog_set_sandbox(0);
        unconfined_notice(why);
        return EXIT_PASS;
    }
    if (sbx_available(why, sizeof why)) {
        prog_set_sandbox(1);
        return EXIT_PASS;
    }
    prog_set_sandbox(0);
    fprintf(stderr, "mqlab %s: %s: %s\n%s\n", cmd,
            T("cannot sandbox the submissions", "no se pueden aislar las entregas"), why,
            T("Fix that (see mqlab doctor), or grade without a sandbox with --no-sandbox.",
              "Arréglalo (mira mqlab doctor), o evalúa sin aislamiento con --no-sandbox."));
    return EXIT_ENV;
}

/* ------------------------------------------------------------ the live line */

struct live {
    int nchecks;
    char step[512];            /* "setup", "check 3/7", ... */
    char what[1024];           /* the step's own text, or the lab's status */
    int64_t since;             /* the step began (kit_now_ms) */
    char shown[2048];          /* what is on the screen now, "" when nothing */
};

int live_wanted(const char *fmt)
{
    const char *nc = getenv("NO_COLOR"), *ci = getenv("CI"), *term = getenv("TERM");
    if (fmt && strcmp(fmt, "json") == 0) return 0;
    if ((nc && *nc) || (ci && *ci) || (term && strcmp(term, "dumb") == 0)) return 0;
    return isatty(STDERR_FILENO);
}

live_t *live_new(const char *fmt)
{
    if (!live_wanted(fmt)) return NULL;
    live_t *l = kit_xmalloc(sizeof *l);
    memset(l, 0, sizeof *l);
    live_on = 1;
    snprintf(l->step, sizeof l->step, "%s", T("start", "inicio"));
    snprintf(l->what, sizeof l->what, "%s", T("loading the lab…", "cargando el laboratorio…"));
    l->since = kit_now_ms();
    return l;
}

/* The first n characters of s (UTF-8), as bytes. */
static size_t utf8_prefix(const char *s, int n)
{
    size_t b = 0;
    for (int c = 0; s[b]; b++) {
        if (((unsigned char)s[b] & 0xC0) != 0x80 && c++ == n) break;
    }
    return b;
}

void live_tick(live_t *l)
{
    if (!l) return;
    char line[2048];
    int secs = (int)((kit_now_ms() - l->since) / 1000);
    snprintf(line, sizeof line, "%s: %s %d s", l->step, l->what, secs);
    /* One line of the terminal at most: a wrapped line cannot be erased
     * by \r. Tabs and newlines of a lab's text would break it too. */
    for (char *p = line; *p; p++) if (*p == '\n' || *p == '\t' || *p == '\r') *p = ' ';
    struct winsize ws;
    int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    line[utf8_prefix(line, cols - 1)] = '\0';
    if (strcmp(line, l->shown) == 0) return;
    snprintf(l->shown, sizeof l->shown, "%s", line);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

void live_clear(live_t *l)
{
    if (!l || !l->shown[0]) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    l->shown[0] = '\0';
}

void live_event(void *ud, const worker_event_t *ev)
{
    live_t *l = ud;
    if (!l) return;
    switch (ev->kind) {
    case WEV_BEGIN:
        l->nchecks = ev->nchecks;
        break;
    case WEV_PHASE:
        l->since = kit_now_ms();
        if (strcmp(ev->phase, "check") == 0) {
            snprintf(l->step, sizeof l->step, T("check %d/%d", "comprobación %d/%d"), ev->index + 1, l->nchecks);
            snprintf(l->what, sizeof l->what, "%s…", ev->title ? ev->title : "");
        } else if (strcmp(ev->phase, "setup") == 0) {
            snprintf(l->step, sizeof l->step, "%s", T("setup", "preparación"));
            snprintf(l->what, sizeof l->what, "%s", T("starting the broker…", "arrancando el broker…"));
        } else if (strcmp(ev->phase, "finish") == 0) {
            snprintf(l->step, sizeof l->step, "%s", T("finish", "cierre"));
            snprintf(l->what, sizeof l->what, "%s", T("stopping the broker and your programs…",
                                                      "parando el broker y tus programas…"));
        } else {
            snprintf(l->step, sizeof l->step, "%s", ev->phase);
            snprintf(l->what, sizeof l->what, "…");
        }
        break;
    case WEV_STATUS:
        snprintf(l->what, sizeof l->what, "%s", ev->text ? ev->text : "");
        break;
    default:
        return;
    }
    live_tick(l);
}

void live_free(live_t *l)
{
    live_clear(l);
    if (l) live_on = 0;
    free(l);
}

/* Grade one folder in a worker. Returns an exit code; v is filled when it
 * is 0 or 1. live (may be NULL) shows the grading as it goes, and is
 * erased before this returns. */
int grade_one(const char *lab, const char *dir, const char *who, verdict_t *v, const char *cmd, live_t *live)
{
    char err[8192];
    char abs[PATH_MAX];
    if (!kit_is_dir(dir) || !realpath(dir, abs)) {
        fprintf(stderr, "mqlab %s: %s: %s\n", cmd, dir, T("no such folder", "no existe esa carpeta"));
        return EXIT_USAGE;
    }
    worker_job_t job = { .lab = lab, .dir = abs, .student = who, .lang = opt.lang,
                         .on_event = live ? live_event : NULL, .ud = live };
    worker_t *w = NULL;
    if (worker_start(&job, v, &w) == KIT_OK) {
        live_tick(live);
        /* A tick at least every 250 ms keeps the seconds going. */
        while (!worker_step(w, live ? 250 : 100)) live_tick(live);
    }
    live_clear(live);
    int rc = worker_finish(w, err, sizeof err);
    return grade_outcome(rc, err, v, cmd);
}

int grade_outcome(int rc, const char *err, const verdict_t *v, const char *cmd)
{
    if (rc == KIT_EINTR) {
        /* Once, however many workers the Ctrl-C stopped. */
        static int said;
        if (!said++)
            fprintf(stderr, "mqlab %s: %s\n", cmd, T("interrupted; everything was stopped and removed",
                                                      "interrumpido; se paró y borró todo lo que se había creado"));
        return 130;
    }
    if (rc == KIT_EMISSING) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_ENV;
    }
    if (rc != KIT_OK) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    return !v->incomplete && v->max_score > 0 && v->score >= v->max_score ? EXIT_PASS : EXIT_FAIL;
}

int resolve_lab(const char *cmd, const char *arg, char *id, size_t len)
{
    char err[KIT_ERRLEN];
    if (lab_resolve(arg, id, len, err) != KIT_OK) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    return EXIT_PASS;
}
