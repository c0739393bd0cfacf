/*
 * cli.h - what mqlab's commands share: the global options, the two
 * languages, the exit codes and the helpers several commands use. Each
 * command, or close family of commands, has its own file (cmd_*.c), as
 * git keeps builtin/<command>.c; main.c parses the global options and
 * dispatches.
 */
#ifndef MQLAB_CLI_H
#define MQLAB_CLI_H

#include <stddef.h>
#include <string.h>

#include "host.h"
#include "lab.h"
#include "store.h"
#include "verdict.h"
#include "worker.h"

#define MQLAB_VERSION "0.1.0"

enum { EXIT_PASS = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_ENV = 3 };

/* Options shared by every command (main.c fills them). */
struct cli_opt {
    const char *lang;       /* "es" or "en" */
    const char *student;    /* --student */
    const char *format;     /* --format */
    const char *db;         /* --db */
    int json;               /* --json */
    int all;                /* --all */
    int no_record;          /* --no-record */
    int port;               /* --port */
    int ws_port;            /* --ws-port (broker): 0 unset (9001 when free, else
                               any), -1 none, -2 any free port */
    int no_sandbox;         /* --no-sandbox */
    int jobs;               /* --jobs (grade): 0 default, -1 invalid */
    int resume;             /* --resume (grade) */
    const char *out;        /* --out DIR (grade, gradebook export) */
    const char *attempt;    /* --attempt latest|best (gradebook export) */
    const char *shard;      /* --shard I/N (grade), as given */
    int help;
};
extern struct cli_opt opt;

static inline int es(void) { return strcmp(opt.lang, "es") == 0; }
#define T(en_, es_) (es() ? (es_) : (en_))

/* main.c */
int usage_error(const char *cmd, const char *fmt, const char *arg);
int print_help(const char *cmd);

/* cli.c: workspaces, students, the store, labs, grading one folder */
int find_workspace(const char *start, char *root, size_t len);
const char *student_id(const char *ws);
char *progress_path(const char *ws);
store_t *open_store(const char *ws);
host_t *new_host(void);
int load_lab(host_t *h, const char *cmd, const char *arg, lab_t **lab);
void column(const char *s, int width);
int choose_sandbox(const char *cmd, int strict);
/* The live line of a grading on a terminal (stderr): the step under way
 * and its seconds, rewritten in place, erased before anything else is
 * printed. live_new answers NULL where there must be none: stderr is not
 * a terminal, NO_COLOR, TERM=dumb, CI, or --format json. Every other
 * function takes NULL and does nothing. live_event is a worker_job_t's
 * on_event; live_tick redraws (call it a few times a second). */
typedef struct live live_t;
int live_wanted(const char *fmt);
live_t *live_new(const char *fmt);
void live_tick(live_t *l);
void live_clear(live_t *l);
void live_free(live_t *l);
void live_event(void *ud, const worker_event_t *ev);
int grade_one(const char *lab, const char *dir, const char *who, verdict_t *v, const char *cmd, live_t *live);
/* What worker_grade's answer means as an exit code (saying why on stderr
 * when it is not a verdict): 0 full marks, 1 not, 2 a broken lab, 3
 * something missing, 130 interrupted. */
int grade_outcome(int rc, const char *err, const verdict_t *v, const char *cmd);
int resolve_lab(const char *cmd, const char *arg, char *id, size_t len);

/* cmd_workspace.c */
int make_workspace(const char *dir, const char *student, int quiet);
int cmd_init(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_hint(int argc, char **argv);
int cmd_progress(int argc, char **argv);
int cmd_reset(int argc, char **argv);
/* cmd_grade.c */
int cmd_check(int argc, char **argv);
int cmd_grade(int argc, char **argv);
int cmd_gradebook(int argc, char **argv);
/* cmd_start.c */
int cmd_start(int argc, char **argv);
/* What check and watch share: the folder to grade (given, else the lab's
 * folder in the workspace, else here; malloc'd; ws filled and *have_ws set
 * when there is a workspace), and the verdict printed in fmt and recorded
 * (unless --no-record). check_report returns the exit code, rc or 1 when
 * the grading could not finish. */
char *check_folder(const char *given, const char *lab, char *ws, size_t wslen, int *have_ws);
int check_report(verdict_t *v, int rc, const char *fmt, const char *ws, const char *cmd);
/* cmd_watch.c */
int cmd_watch(int argc, char **argv);
/* cmd_author.c */
int cmd_verify(int argc, char **argv);
int cmd_new_lab(int argc, char **argv);
/* cmd_classroom.c */
int cmd_classroom(int argc, char **argv);
/* cmd_tools.c */
int cmd_run(int argc, char **argv);
int cmd_broker(int argc, char **argv);
/* The broker profiles built in (broker-config/NAME.conf), as "a, b, c". */
void broker_profile_list(char *buf, size_t len);
int cmd_bench(int argc, char **argv);
int cmd_certs(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_tour(int argc, char **argv);

#endif
