/*
 * broker.h - a private Mosquitto for a lab.
 *
 * broker_start() fills a config template, writes it into a private
 * temporary folder, starts `mosquitto -c` there on a free 127.0.0.1 port
 * in its own process group, and waits until the port accepts. The
 * template placeholders are:
 *   @PORT@  the listener port          @DIR@   the private folder
 *   @USER@  the current user name      @LOG@   the log file path
 *   @CERTS@ the certs folder given in broker_opts_t.certs (a template
 *           that uses it without one is refused)
 * Every template must open its listeners as `listener @PORT@ 127.0.0.1`.
 *
 * With unix_socket set, the broker listens on a unix socket in its
 * private (0700) folder instead of a TCP port, so only the kit (and a
 * proxy it starts) can reach it: a sandboxed program cannot see the
 * folder. The template keeps its TCP line; the kit writes that single
 * `listener @PORT@ 127.0.0.1` line as `listener 0 DIR/mosquitto.sock`
 * (@PORT@ elsewhere becomes 0). A template with any other listener is
 * refused then.
 */
#ifndef MQLAB_BROKER_H
#define MQLAB_BROKER_H

#include <stddef.h>

typedef struct broker broker_t;

typedef struct {
    const char *name;       /* profile name for messages, e.g. "plain" */
    const char *tmpl;       /* the config template text */
    const char *extra;      /* lines appended to the config (may be NULL) */
    int port;               /* 0: pick a free one */
    int ready_ms;           /* how long to wait for the port; 0: 5000 */
    const char *mosquitto;  /* binary; NULL: $MQLAB_MOSQUITTO or "mosquitto" on PATH */
    const char *certs;      /* folder for @CERTS@ (the kit's PKI); NULL: none */
    int unix_socket;        /* 1: listen on DIR/mosquitto.sock, not TCP (port must be 0) */
} broker_opts_t;

/* Start, and return once the broker is ready: its listener accepts
 * (for TCP, a LISTEN socket on the port that the mosquitto we started
 * owns, never someone else's on that port) and, when it logs to @LOG@,
 * it has logged "running". On failure nothing is left behind, and err
 * quotes mosquitto's own last log/stderr line when it exited.
 * KIT_EMISSING when the binary is not installed; KIT_EINVAL for a
 * template that breaks the listener rule (with unix_socket: has more
 * than that one listener, or a private folder path that does not fit a
 * socket address), or uses @CERTS@ without o->certs; KIT_ENOENT when
 * o->certs is not a folder; KIT_ETIMEOUT when it is not ready within
 * ready_ms; KIT_EINTR when the user pressed Ctrl-C meanwhile. */
int broker_start(broker_t **out, const broker_opts_t *o, char *err);

/* Start the bundled profile `profile` (broker-config/PROFILE.conf, built
 * into mqlab) with the other options of o (may be NULL; o->tmpl is
 * ignored, o->name defaults to the profile). A profile that uses @CERTS@
 * gets the kit's PKI when o->certs is NULL, made now if it is missing.
 * KIT_ENOENT when there is no such profile; otherwise as broker_start. */
int broker_start_profile(broker_t **out, const char *profile, const broker_opts_t *o, char *err);

int broker_port(const broker_t *b);             /* 0 for a unix-socket broker */
const char *broker_socket(const broker_t *b);    /* its unix socket path, or NULL */
const char *broker_dir(const broker_t *b);       /* the private folder */
const char *broker_log_path(const broker_t *b);
const char *broker_certs(const broker_t *b);     /* what @CERTS@ became, or NULL */
int broker_pid(const broker_t *b);
int broker_running(broker_t *b);                 /* reaps if it died */

/* SIGTERM then, after 2 s, SIGKILL; reaps. The folder stays until free. */
int broker_stop(broker_t *b);
/* SIGKILL now (a crash); reaps. */
int broker_kill(broker_t *b);
/* Stop if running, then start again on the same port (or socket path)
 * with the same config and folder (persistence files survive). Errors
 * as broker_start; on failure the broker is stopped. */
int broker_restart(broker_t *b, char *err);

/* The log so far (malloc'd, NUL-terminated; caller frees). The lines of
 * all runs, in order. */
char *broker_log(const broker_t *b, size_t *len);

/* Stop (if running), remove the folder, free. NULL is fine. */
void broker_free(broker_t *b);

#endif
