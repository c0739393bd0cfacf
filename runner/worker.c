/*
 * worker.c - one grading in its own process (see worker.h).
 *
 * The pipe carries one event per line, fields separated by tabs, with
 * '\\', tab and newline escaped inside a field:
 *
 *   B  title  nchecks  total_ms            the lab is loaded
 *   C  index  points  id  title            a check, before any runs
 *   P  phase  index  budget_ms  id  title  a phase begins (setup/check/finish)
 *   R  index  passed  skipped  points  max  id  title  message
 *   S  text                                the lab's own word (ctx:status)
 *   V  duration_s  error                   the verdict is complete
 *   E  kind  message                       no verdict: intr|missing|lab
 *
 * A line-based text format rather than JSON: the parent needs no parser
 * beyond splitting on tabs, and a watch or guided mode can print events
 * as they come.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "worker.h"
#include "cleanup.h"
#include "host.h"
#include "lab.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Until the worker has said how long its lab may take: loading a lab is
 * quick, so a minute is generous. */
#define LOAD_LIMIT_MS 60000
/* On top of the lab's own budgets: a process start, a slow machine. */
#define TOTAL_MARGIN_MS 30000
/* On top of one phase's budget: the hook ends Lua code at once; only a
 * stuck C call needs this long, and then the worker is killed. */
#define PHASE_MARGIN_MS 10000
#define MAX_FIELDS 9

/* ---------------------------------------------------------------- the line format */

static void put_field(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\') fputs("\\\\", f);
        else if (*s == '\t') fputs("\\t", f);
        else if (*s == '\n') fputs("\\n", f);
        else fputc(*s, f);
    }
}

/* Build one line in memory, then write it whole: a worker killed half-way
 * leaves at most a cut last line, which the parent ignores. */
static void send_line(int fd, const char *type, int n, const char *const *fields)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return;
    fputs(type, f);
    for (int i = 0; i < n; i++) {
        fputc('\t', f);
        put_field(f, fields[i]);
    }
    fputc('\n', f);
    fclose(f);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(buf);
}

/* Split a line (modified in place) into fields, unescaping each. */
static int split_line(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *out = p;
        for (; *p && *p != '\t'; p++) {
            if (*p == '\\' && p[1]) {
                p++;
                *out++ = *p == 't' ? '\t' : *p == 'n' ? '\n' : *p;
            } else {
                *out++ = *p;
            }
        }
        int more = *p == '\t';
        *out = '\0';
        if (!more) break;
        p++;
    }
    return n;
}

/* ---------------------------------------------------------------- the worker side */

typedef struct {
    int fd;
} wctx_t;

static void on_phase(void *ud, const char *name, int i, const char *id, const char *title, int budget_ms)
{
    wctx_t *w = ud;
    char idx[16], b[16];
    snprintf(idx, sizeof idx, "%d", i);
    snprintf(b, sizeof b, "%d", budget_ms);
    const char *f[] = { name, idx, b, id, title };
    send_line(w->fd, "P", 5, f);
}

static void on_result(void *ud, int i, const check_result_t *r)
{
    wctx_t *w = ud;
    char idx[16], pts[32], max[32];
    snprintf(idx, sizeof idx, "%d", i);
    snprintf(pts, sizeof pts, "%.17g", r->points);
    snprintf(max, sizeof max, "%.17g", r->max_points);
    const char *f[] = { idx, r->passed ? "1" : "0", r->skipped ? "1" : "0", pts, max,
                        r->id, r->title, r->message };
    send_line(w->fd, "R", 8, f);
}

static void on_status(void *ud, const char *text)
{
    wctx_t *w = ud;
    const char *f[] = { text };
    send_line(w->fd, "S", 1, f);
}

static void send_error(int fd, const char *kind, const char *msg)
{
    const char *f[] = { kind, msg };
    send_line(fd, "E", 2, f);
}

/* Bring the loopback of a fresh network namespace up (it starts down). */
static int loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return rc;
}

/* A namespace of our own, or (errno set) none: the caller decides what
 * that means. */
static int own_network(void)
{
    if (unshare(CLONE_NEWNET) != 0) return -1;
    return loopback_up();
}

static int netns_state = -1;     /* -1 unknown, 0 no, 1 yes */
static char netns_why[KIT_ERRLEN];

int worker_netns_available(char *why, size_t len)
{
    if (netns_state < 0) {
        /* Try it in a child, so this process keeps its network. */
        int pfd[2];
        netns_state = 0;
        snprintf(netns_why, sizeof netns_why, "cannot tell");
        if (pipe2(pfd, O_CLOEXEC) == 0) {
            pid_t pid = fork();
            if (pid == 0) {
                close(pfd[0]);
                int e = own_network() == 0 ? 0 : errno;
                ssize_t w = write(pfd[1], &e, sizeof e);
                _exit(w == (ssize_t)sizeof e ? 0 : 1);
            }
            close(pfd[1]);
            int e = -1;
            if (pid > 0) {
                ssize_t r;
                do r = read(pfd[0], &e, sizeof e); while (r < 0 && errno == EINTR);
                if (r != (ssize_t)sizeof e) e = -1;
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
            }
            close(pfd[0]);
            if (e == 0) netns_state = 1;
            else if (e > 0)
                snprintf(netns_why, sizeof netns_why, "unshare(CLONE_NEWNET): %s%s", strerror(e),
                         e == EPERM ? " (it needs root, or CAP_SYS_ADMIN)" : "");
        }
    }
    if (why && len) snprintf(why, len, "%s", netns_state == 1 ? "" : netns_why);
    return netns_state == 1;
}

/* The worker's whole life. Never returns. */
static void worker_main(const worker_job_t *job, int fd, const char *root)
{
    wctx_t w = { fd };
    char err[8192];
    setenv("TMPDIR", root, 1);
    if (netns_state == 1) own_network();   /* elsewhere, the shared loopback */

    host_t *h = host_new(err);
    if (!h) { send_error(fd, "lab", err); exit(1); }
    lab_t *lab = NULL;
    int rc = lab_load(h, job->lab, &lab, err, sizeof err);
    if (rc != KIT_OK) {
        send_error(fd, "lab", err);
        host_free(h);
        exit(1);
    }
    lab_budget_t b;
    lab_budget(lab, &b);
    {
        char n[16], total[16];
        snprintf(n, sizeof n, "%d", b.nchecks);
        snprintf(total, sizeof total, "%d", b.total_ms);
        lab_info_t info;
        lab_describe(lab, job->lang, &info);
        const char *f[] = { info.title ? info.title : "", n, total };
        send_line(fd, "B", 3, f);
        lab_info_clear(&info);
        for (int i = 0; i < b.nchecks; i++) {
            char *id, *title, idx[16], pts[32];
            double points;
            if (lab_check_info(lab, i, job->lang, &id, &title, &points) != KIT_OK) continue;
            snprintf(idx, sizeof idx, "%d", i);
            snprintf(pts, sizeof pts, "%.17g", points);
            const char *cf[] = { idx, pts, id, title };
            send_line(fd, "C", 4, cf);
            free(id);
            free(title);
        }
    }

    lab_progress_t pr = { on_phase, on_result, &w, on_status };
    verdict_t v;
    rc = lab_grade_with(lab, job->dir, job->student, job->lang, &pr, &v, err, sizeof err);
    if (rc == KIT_OK) {
        char dur[32];
        snprintf(dur, sizeof dur, "%.3f", v.duration_s);
        const char *f[] = { dur, v.error ? v.error : "" };
        send_line(fd, "V", 2, f);
        verdict_clear(&v);
    } else {
        send_error(fd, rc == KIT_EINTR ? "intr" : rc == KIT_EMISSING ? "missing" : "lab", err);
    }
    lab_free(lab);
    host_free(h);
    exit(0);
}

/* ---------------------------------------------------------------- the parent side */

typedef struct {
    const worker_job_t *job;
    verdict_t *v;
    /* From C lines: every check, so an unfinished grading can still list
     * them all. */
    int nmeta;
    struct { char *id, *title; double points; } *meta;
    int total_ms;
    int64_t total_deadline, phase_deadline;
    int phase_budget_ms;
    char phase[16];            /* "setup", "check", "finish", or "" (loading) */
    char phase_id[128], phase_title[256];
    int have_verdict, have_error;
    char error_kind[16];
    char error_msg[8192];
} parent_t;

static void handle_line(parent_t *p, char *line)
{
    char *f[MAX_FIELDS + 1];
    char type = line[0];
    if (!type || line[1] != '\t') return;
    int n = split_line(line + 2, f, MAX_FIELDS);
    const worker_job_t *job = p->job;
    worker_event_t ev;
    memset(&ev, 0, sizeof ev);
    switch (type) {
    case 'B':
        if (n < 3) return;
        free(p->v->title);
        p->v->title = kit_strdup(f[0]);
        p->total_ms = atoi(f[2]);
        p->total_deadline = kit_now_ms() + p->total_ms + TOTAL_MARGIN_MS;
        ev.kind = WEV_BEGIN;
        ev.title = f[0];
        ev.nchecks = atoi(f[1]);
        ev.total_ms = p->total_ms;
        break;
    case 'C':
        if (n < 4) return;
        p->meta = kit_xrealloc(p->meta, sizeof *p->meta * (size_t)(p->nmeta + 1));
        p->meta[p->nmeta].points = atof(f[1]);
        p->meta[p->nmeta].id = kit_strdup(f[2]);
        p->meta[p->nmeta].title = kit_strdup(f[3]);
        p->nmeta++;
        return;
    case 'P':
        if (n < 5) return;
        p->phase_budget_ms = atoi(f[2]);
        p->phase_deadline = kit_now_ms() + p->phase_budget_ms + PHASE_MARGIN_MS;
        snprintf(p->phase, sizeof p->phase, "%s", f[0]);
        snprintf(p->phase_id, sizeof p->phase_id, "%s", f[3]);
        snprintf(p->phase_title, sizeof p->phase_title, "%s", f[4]);
        ev.kind = WEV_PHASE;
        ev.phase = f[0];
        ev.index = atoi(f[1]);
        ev.budget_ms = p->phase_budget_ms;
        ev.id = f[3];
        ev.title = f[4];
        break;
    case 'R': {
        if (n < 8) return;
        check_result_t *c = verdict_add(p->v, f[5], f[6], atoi(f[1]), atoi(f[2]), atof(f[3]), atof(f[4]), f[7]);
        ev.kind = WEV_RESULT;
        ev.index = atoi(f[0]);
        ev.result = c;
        break;
    }
    case 'S':
        if (n < 1) return;
        ev.kind = WEV_STATUS;
        ev.text = f[0];
        break;
    case 'V':
        if (n < 2) return;
        p->v->duration_s = atof(f[0]);
        if (*f[1]) p->v->error = kit_strdup(f[1]);
        p->have_verdict = 1;
        ev.kind = WEV_DONE;
        break;
    case 'E':
        if (n < 2) return;
        snprintf(p->error_kind, sizeof p->error_kind, "%s", f[0]);
        snprintf(p->error_msg, sizeof p->error_msg, "%s", f[1]);
        p->have_error = 1;
        return;
    default:
        return;
    }
    if (job->on_event) job->on_event(job->ud, &ev);
}

/* The grading did not end with a verdict: list every check, the ones
 * that ran as they ran, the others failed with the reason. */
static void unfinished(parent_t *p, const char *why)
{
    verdict_t *v = p->v;
    for (int i = v->nchecks; i < p->nmeta; i++)
        verdict_add(v, p->meta[i].id, p->meta[i].title, 0, 0, 0, p->meta[i].points, why);
    free(v->error);
    v->error = kit_strdup(why);
    v->incomplete = 1;
}

/* Why the worker was killed, in the student's language: how long it had,
 * and the step it was in. */
static void stuck_message(const parent_t *p, int limit_s, char *out, size_t len)
{
    int es = p->job->lang && strcmp(p->job->lang, "es") == 0;
    char where[512];
    if (strcmp(p->phase, "check") == 0)
        snprintf(where, sizeof where, es ? "en la comprobación «%s» (%s)" : "in the check \"%s\" (%s)",
                 p->phase_title, p->phase_id);
    else if (strcmp(p->phase, "setup") == 0)
        snprintf(where, sizeof where, "%s", es ? "al preparar el laboratorio" : "in the lab's setup");
    else if (p->phase[0])
        snprintf(where, sizeof where, es ? "en la fase «%s»" : "in the step \"%s\"", p->phase);
    else
        snprintf(where, sizeof where, "%s", es ? "al cargar el laboratorio" : "loading the lab");
    snprintf(out, len, es ? "la corrección no terminó en %d s: se quedó atascada %s"
                          : "grading did not finish in %d s: it was stuck %s", limit_s, where);
}

struct worker {
    parent_t p;
    verdict_t *v;
    char root[512];
    int fd;                    /* the read end of the worker's pipe */
    pid_t pid;
    int64_t t0;
    char buf[65536];
    size_t have;
    int forwarded, killed, eof;
    int cancelled, retold;     /* worker_cancel: asked, asked twice */
    int64_t cancel_ms;         /* when it was asked */
    char killed_why[512];
    int rc;                    /* a failure of worker_start, kept for worker_finish */
    char err[KIT_ERRLEN];
};

int worker_start(const worker_job_t *job, verdict_t *v, worker_t **out)
{
    worker_t *w = kit_xmalloc(sizeof *w);
    memset(w, 0, sizeof *w);
    *out = w;
    int fds[2] = { -1, -1 };
    char *e = w->err;
    w->fd = -1;
    w->pid = -1;
    w->v = v;
    memset(v, 0, sizeof *v);
    w->p.job = job;
    w->p.v = v;
    v->lab = kit_strdup(job->lab);
    v->student = kit_strdup(job->student);
    v->submission = kit_strdup(job->dir);
    v->started_ms = kit_wall_ms();
    w->t0 = kit_now_ms();

    if ((w->rc = kit_mkdtemp(w->root, sizeof w->root, "mqlab-worker", e)) != KIT_OK) {
        w->root[0] = '\0';
        return w->rc;
    }
    if (pipe2(fds, O_CLOEXEC) != 0)
        return w->rc = kit_seterr(e, KIT_ERR, "pipe: %s", strerror(errno));
    /* Decide before forking, so the worker inherits the answer. */
    worker_netns_available(NULL, 0);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return w->rc = kit_seterr(e, KIT_ERR, "cannot start a worker: %s", strerror(errno));
    }
    if (pid == 0) {
        /* Its own process group: a Ctrl-C at the terminal reaches the
         * parent, which decides what the worker gets. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        cleanup_forget_all();
        close(fds[0]);
        int wfd = fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
        worker_main(job, wfd < 0 ? fds[1] : wfd, w->root);
    }
    setpgid(pid, pid);
    close(fds[1]);
    w->fd = fds[0];
    if (cleanup_track_pgid(pid) != 0) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        return w->rc = kit_seterr(e, KIT_ERR, "cannot track the worker process");
    }
    w->pid = pid;
    w->p.total_deadline = kit_now_ms() + LOAD_LIMIT_MS;
    return KIT_OK;
}

int worker_fd(const worker_t *w) { return w && w->pid > 0 && !w->eof ? w->fd : -1; }

int worker_step(worker_t *w, int timeout_ms)
{
    if (!w || w->pid <= 0 || w->eof) return 1;
    parent_t *p = &w->p;
    struct pollfd pfd = { w->fd, POLLIN, 0 };
    int r = poll(&pfd, 1, timeout_ms);
    if (r > 0) {
        ssize_t n = read(w->fd, w->buf + w->have, sizeof w->buf - 1 - w->have);
        if (n < 0 && errno == EINTR) return 0;
        if (n <= 0) {
            w->eof = 1;
        } else {
            w->have += (size_t)n;
            w->buf[w->have] = '\0';
            char *start = w->buf, *nl;
            while ((nl = memchr(start, '\n', w->have - (size_t)(start - w->buf)))) {
                *nl = '\0';
                handle_line(p, start);
                start = nl + 1;
            }
            w->have -= (size_t)(start - w->buf);
            memmove(w->buf, start, w->have);
            /* A line longer than the buffer is no line of ours. */
            if (w->have == sizeof w->buf - 1) w->have = 0;
        }
    }
    if (cleanup_interrupted() && !w->forwarded && !w->killed) {
        kill(w->pid, SIGINT);
        w->forwarded = 1;
    }
    int64_t now = kit_now_ms();
    if (w->cancelled && !w->killed) {
        /* Asked to stop and still there: tell it again (its second signal
         * kills everything it started), then end its group. */
        if (!w->retold && now - w->cancel_ms > 2000) {
            kill(w->pid, SIGTERM);
            w->retold = 1;
        } else if (now - w->cancel_ms > 4000) {
            kill(-w->pid, SIGKILL);
            w->killed = 1;
        }
    }
    if (!w->killed && !w->cancelled) {
        int over_total = now > p->total_deadline;
        int over_phase = p->phase_deadline && now > p->phase_deadline;
        if (over_total || over_phase) {
            int limit_s = over_total ? (p->total_ms ? p->total_ms + TOTAL_MARGIN_MS : LOAD_LIMIT_MS) / 1000
                                     : (p->phase_budget_ms + PHASE_MARGIN_MS) / 1000;
            stuck_message(p, limit_s, w->killed_why, sizeof w->killed_why);
            kill(-w->pid, SIGKILL);
            w->killed = 1;
        }
    }
    return w->eof;
}

int worker_finish(worker_t *w, char *err, size_t errlen)
{
    parent_t *p = &w->p;
    verdict_t *v = w->v;
    int rc = w->rc;
    if (rc != KIT_OK) {
        snprintf(err, errlen, "%s", w->err);
    } else {
        int status = 0;
        while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR) {}
        /* Whatever the worker left in its group (nothing, normally). */
        kill(-w->pid, SIGKILL);
        cleanup_untrack_pgid(w->pid);
        if (w->cancelled) {
            snprintf(err, errlen, "cancelled");
            rc = KIT_EINTR;
        } else if (w->killed) {
            unfinished(p, w->killed_why);
        } else if (p->have_verdict) {
            rc = KIT_OK;
        } else if (p->have_error) {
            snprintf(err, errlen, "%s", p->error_msg);
            rc = strcmp(p->error_kind, "intr") == 0 ? KIT_EINTR
               : strcmp(p->error_kind, "missing") == 0 ? KIT_EMISSING : KIT_ERR;
        } else if (w->forwarded || cleanup_interrupted()) {
            snprintf(err, errlen, "interrupted");
            rc = KIT_EINTR;
        } else {
            char why[256];
            if (WIFSIGNALED(status))
                snprintf(why, sizeof why, "grading stopped: the worker was killed by signal %d", WTERMSIG(status));
            else
                snprintf(why, sizeof why, "grading stopped: the worker exited with status %d and no verdict",
                         WEXITSTATUS(status));
            unfinished(p, why);
        }
        if (rc == KIT_OK) {
            if (!p->have_verdict) v->duration_s = (double)(kit_now_ms() - w->t0) / 1000.0;
            verdict_total(v);
        }
    }
    if (w->fd >= 0) close(w->fd);
    if (w->root[0]) kit_rmdtemp(w->root);
    for (int i = 0; i < p->nmeta; i++) {
        free(p->meta[i].id);
        free(p->meta[i].title);
    }
    free(p->meta);
    free(w);
    if (rc != KIT_OK) verdict_clear(v);
    return rc;
}

void worker_cancel(worker_t *w)
{
    if (!w || w->pid <= 0) return;
    if (!w->eof && !w->cancelled) {
        w->cancelled = 1;
        w->cancel_ms = kit_now_ms();
        kill(w->pid, SIGTERM);
    }
    w->cancelled = 1;
    while (!worker_step(w, 50)) {}
}

int worker_grade(const worker_job_t *job, verdict_t *v, char *err, size_t errlen)
{
    worker_t *w = NULL;
    if (worker_start(job, v, &w) == KIT_OK)
        while (!worker_step(w, 100)) {}
    return worker_finish(w, err, errlen);
}
