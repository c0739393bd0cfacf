/*
 * cmd_watch.c - mqlab watch NN [DIR]: grade like check, then again each
 * time a file of the folder changes.
 *
 * One loop, one worker at a time. The folder is watched with inotify
 * (not its sub-folders: a lab's files sit at its top). Editors write a
 * file in several steps (a temporary file, a rename, a chmod), so a
 * change is acted on once nothing more has happened for DEBOUNCE_MS. A
 * change during a grading makes that grading stale: its worker is
 * cancelled (worker_cancel stops its brokers and programs and removes its
 * folder) and a new one starts once the folder is quiet. Ctrl-C is
 * passed to the worker under way, as check does, and ends the watch.
 *
 * MQLAB_WATCH_TIMES=1 adds, on stderr after each verdict, the wall-clock
 * times (ms since the epoch) of the change seen, the grading's start, its
 * end (the verdict complete in the worker) and the verdict printed, for
 * bench/watch.sh.
 */
#include "cleanup.h"
#include "report.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define DEBOUNCE_MS 300
/* A folder that never stops changing (a program writing into it) is
 * graded anyway, this long after the first change. */
#define DEBOUNCE_MAX_MS 3000
#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

typedef struct {
    int fd;
    const char *dir;
    int gone;                  /* the folder itself was removed or moved */
    char changed[256];         /* the last file that changed */
    int64_t seen_ms;           /* when the first change of a batch was read (wall clock) */
} watch_t;

/* Files no one grades: hidden ones, editors' backups and swap files, the
 * probe vim writes to test a folder (4913), interpreters' caches. */
static int ignored(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || kit_not_work(name) || name[n - 1] == '~') return 1;
    if (strcmp(name, "4913") == 0) return 1;
    if (name[0] == '#' && name[n - 1] == '#') return 1;        /* emacs autosave */
    static const char *const ends[] = { ".swp", ".swx", ".swo", ".swpx", ".tmp", ".pyc" };
    for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
        size_t k = strlen(ends[i]);
        if (n >= k && strcmp(name + n - k, ends[i]) == 0) return 1;
    }
    return 0;
}

/* Read what inotify has; the number of changes that count. */
static int drain(watch_t *wt)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int count = 0;
    for (;;) {
        ssize_t n = read(wt->fd, buf, sizeof buf);
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            p += sizeof *e + e->len;
            if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) { wt->gone = 1; continue; }
            const char *name = e->len ? e->name : "";
            if (ignored(name)) continue;
            if (!count && !wt->changed[0]) wt->seen_ms = kit_wall_ms();
            snprintf(wt->changed, sizeof wt->changed, "%s", name);
            count++;
        }
    }
    return count;
}

/* After a change: wait until the folder has been quiet for DEBOUNCE_MS.
 * 0, or -1 on Ctrl-C. */
static int settle(watch_t *wt)
{
    int64_t first = kit_now_ms(), last = first;
    for (;;) {
        int64_t now = kit_now_ms();
        int64_t left = last + DEBOUNCE_MS - now;
        if (now - first >= DEBOUNCE_MAX_MS) left = 0;
        if (left <= 0 || wt->gone) return 0;
        struct pollfd p = { wt->fd, POLLIN, 0 };
        poll(&p, 1, (int)left);
        if (cleanup_interrupted()) return -1;
        if (drain(wt) > 0) last = kit_now_ms();
    }
}

/* Wait for a change that counts. 0, or -1 on Ctrl-C. */
static int wait_change(watch_t *wt)
{
    while (!wt->gone) {
        struct pollfd p = { wt->fd, POLLIN, 0 };
        poll(&p, 1, 500);
        if (cleanup_interrupted()) return -1;
        if (drain(wt) > 0) return settle(wt);
    }
    return 0;
}

typedef struct {
    live_t *live;
    int64_t end_ms;            /* the verdict was complete in the worker */
} grading_t;

static void on_event(void *ud, const worker_event_t *ev)
{
    grading_t *g = ud;
    if (ev->kind == WEV_DONE) g->end_ms = kit_wall_ms();
    live_event(g->live, ev);
}

static void say_change(const watch_t *wt, int during)
{
    const char *f = wt->changed[0] ? wt->changed : wt->dir;
    if (during)
        fprintf(stderr, T("mqlab watch: %s changed during the grading: it was stopped; grading again\n",
                          "mqlab watch: %s cambió durante la corrección: se paró; se evalúa de nuevo\n"), f);
    else
        fprintf(stderr, T("mqlab watch: %s changed; grading again\n", "mqlab watch: %s cambió; se evalúa de nuevo\n"), f);
    fflush(stderr);
}

int cmd_watch(int argc, char **argv)
{
    if (argc < 1 || argc > 2)
        return usage_error("watch", "%s", T("expects a lab and optionally a folder: mqlab watch 01 [DIR]",
                                             "espera un laboratorio y, si quieres, una carpeta: mqlab watch 01 [DIR]"));
    const char *fmt = opt.format ? opt.format : "text";
    if (strcmp(fmt, "text") && strcmp(fmt, "json"))
        return usage_error("watch", T("unknown format '%s' (text or json)", "formato desconocido '%s' (text o json)"), fmt);
    char lab[128];
    int rc = resolve_lab("watch", argv[0], lab, sizeof lab);
    if (rc != EXIT_PASS) return rc;

    char ws[PATH_MAX], abs[PATH_MAX];
    int have_ws = 0;
    char *dir = check_folder(argc == 2 ? argv[1] : NULL, lab, ws, sizeof ws, &have_ws);
    if (!kit_is_dir(dir) || !realpath(dir, abs)) {
        fprintf(stderr, "mqlab watch: %s: %s\n", dir, T("no such folder", "no existe esa carpeta"));
        free(dir);
        return EXIT_USAGE;
    }
    free(dir);
    if ((rc = choose_sandbox("watch", 0)) != EXIT_PASS) return rc;

    watch_t wt = { .dir = abs };
    wt.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (wt.fd < 0 || inotify_add_watch(wt.fd, abs, WATCH_MASK) < 0) {
        fprintf(stderr, "mqlab watch: %s: %s (inotify: %s)\n", abs,
                T("cannot watch this folder", "no se puede vigilar esta carpeta"), strerror(errno));
        if (wt.fd >= 0) close(wt.fd);
        return EXIT_ENV;
    }
    const char *who = student_id(have_ws ? ws : NULL);
    int json = strcmp(fmt, "json") == 0;
    /* The screen is cleared before each verdict on a terminal; elsewhere
     * a separator line tells one verdict from the next. In JSON, stdout
     * holds nothing but the verdicts. */
    int tty = !json && isatty(STDOUT_FILENO);
    FILE *side = json ? stderr : stdout;
    const char *times = getenv("MQLAB_WATCH_TIMES");
    int show_times = times && *times && strcmp(times, "0") != 0;

    for (;;) {
        grading_t g = { .live = live_new(fmt) };
        worker_job_t job = { .lab = lab, .dir = abs, .student = who, .lang = opt.lang, .on_event = on_event, .ud = &g };
        verdict_t v = { 0 };
        worker_t *w = NULL;
        int64_t start_ms = kit_wall_ms(), seen_ms = wt.seen_ms;
        int cancelled = 0;
        wt.changed[0] = '\0';
        if (worker_start(&job, &v, &w) == KIT_OK) {
            live_tick(g.live);
            while (!worker_step(w, 0)) {
                struct pollfd p[2] = { { worker_fd(w), POLLIN, 0 }, { wt.fd, POLLIN, 0 } };
                /* After Ctrl-C the worker is unwinding: only it matters. */
                poll(p, cleanup_interrupted() ? 1 : 2, 250);
                live_tick(g.live);
                if (!cleanup_interrupted() && drain(&wt) > 0) {
                    live_clear(g.live);
                    worker_cancel(w);
                    cancelled = 1;
                    break;
                }
            }
        }
        live_free(g.live);
        char err[8192];
        int wrc = worker_finish(w, err, sizeof err);
        if (cancelled && !cleanup_interrupted()) {
            say_change(&wt, 1);
            if (settle(&wt) != 0) { rc = 130; break; }
            continue;
        }
        if (wrc == KIT_EINTR) {
            rc = grade_outcome(wrc, err, &v, "watch");
            break;
        }
        rc = grade_outcome(wrc, err, &v, "watch");
        if (rc == EXIT_PASS || rc == EXIT_FAIL) {
            if (tty) fputs("\033[H\033[2J", stdout);
            else {
                char when[32];
                time_t now = time(NULL);
                struct tm tm;
                strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
                fprintf(side, "──────── mqlab watch · %s ────────\n", when);
            }
            fflush(side);
            check_report(&v, rc, fmt, have_ws ? ws : NULL, "watch");
            if (show_times)
                fprintf(stderr, "mqlab watch: times change=%lld start=%lld end=%lld verdict=%lld\n",
                        (long long)seen_ms, (long long)start_ms, (long long)g.end_ms, (long long)kit_wall_ms());
        }
        verdict_clear(&v);
        fprintf(side, T("watching %s; Ctrl-C to stop\n", "vigilando %s; Ctrl-C para parar\n"), abs);
        fflush(side);
        wt.seen_ms = 0;
        if (wait_change(&wt) != 0) { rc = 130; break; }
        if (wt.gone) {
            fprintf(stderr, "mqlab watch: %s: %s\n", abs,
                    T("the folder was removed or moved; stopping", "la carpeta se borró o se movió; se para"));
            rc = EXIT_USAGE;
            break;
        }
        say_change(&wt, 0);
    }
    close(wt.fd);
    return rc;
}
