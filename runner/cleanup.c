/*
 * cleanup.c - one owner for every process group and temporary folder, and
 * the waits that must notice Ctrl-C. It builds on util.c, never the
 * other way round.
 *
 * The tables are fixed-size arrays so the signal handler can walk them
 * without allocating; a slot holding 0 / "" is free.
 */
#include "cleanup.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PGIDS 256
#define MAX_DIRS 64

static volatile pid_t pgids[MAX_PGIDS];
static char dirs[MAX_DIRS][512];
static volatile sig_atomic_t interrupted;
static int initialised;

static void kill_all(void)
{
    for (int i = 0; i < MAX_PGIDS; i++)
        if (pgids[i] > 0) kill(-pgids[i], SIGKILL);
}

static volatile sig_atomic_t nsignals;

/* First signal: a flag that the wait loops and the Lua hook turn into a
 * normal unwind (brokers stopped, folders removed). Second: kill every
 * child group now, so nothing we wait on can hold us. Third: leave at
 * once; only async-signal-safe calls are made here. */
static void on_signal(int sig)
{
    nsignals++;
    if (nsignals == 1) interrupted = sig;
    else if (nsignals == 2) kill_all();
    else _exit(130);
}

void cleanup_init(void)
{
    if (initialised) return;
    initialised = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup_run);
}

int cleanup_interrupted(void) { return interrupted; }
void cleanup_clear_interrupt(void) { interrupted = 0; nsignals = 0; }

void cleanup_track_pgid(pid_t pgid)
{
    for (int i = 0; i < MAX_PGIDS; i++)
        if (pgids[i] == 0) { pgids[i] = pgid; return; }
}

void cleanup_untrack_pgid(pid_t pgid)
{
    for (int i = 0; i < MAX_PGIDS; i++)
        if (pgids[i] == pgid) pgids[i] = 0;
}

void cleanup_track_dir(const char *path)
{
    for (int i = 0; i < MAX_DIRS; i++)
        if (!dirs[i][0]) { snprintf(dirs[i], sizeof dirs[i], "%s", path); return; }
}

void cleanup_untrack_dir(const char *path)
{
    for (int i = 0; i < MAX_DIRS; i++)
        if (strcmp(dirs[i], path) == 0) dirs[i][0] = '\0';
}

void cleanup_run(void)
{
    for (int i = 0; i < MAX_PGIDS; i++) {
        pid_t g = pgids[i];
        if (g <= 0) continue;
        kill(-g, SIGKILL);
        /* Reap the leader if it is our child; others are reaped by init. */
        waitpid(g, NULL, 0);
        pgids[i] = 0;
    }
    for (int i = 0; i < MAX_DIRS; i++) {
        if (!dirs[i][0]) continue;
        kit_rm_rf(dirs[i]);
        dirs[i][0] = '\0';
    }
}

/* ---- waiting and temporary folders: what needs the flag and the tables ---- */

/* Sleep in short slices so that Ctrl-C is noticed within ~20 ms. */
int kit_sleep_ms(int ms)
{
    int64_t end = kit_now_ms() + ms;
    for (;;) {
        if (cleanup_interrupted()) return KIT_EINTR;
        int64_t left = end - kit_now_ms();
        if (left <= 0) return KIT_OK;
        if (left > 20) left = 20;
        struct timespec ts = { 0, (long)left * 1000000L };
        nanosleep(&ts, NULL);
    }
}

int kit_mkdtemp(char *out, size_t outlen, const char *prefix, char *err)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    if ((size_t)snprintf(out, outlen, "%s/%s-XXXXXX", base, prefix) >= outlen)
        return kit_seterr(err, KIT_EINVAL, "temporary path too long");
    if (!mkdtemp(out))
        return kit_seterr(err, KIT_ERR, "cannot make a temporary folder in %s: %s", base, strerror(errno));
    chmod(out, 0700);
    cleanup_track_dir(out);
    return KIT_OK;
}

void kit_rmdtemp(const char *path)
{
    if (!path || !*path) return;
    kit_rm_rf(path);
    cleanup_untrack_dir(path);
}

int kit_wait_port(int port, int timeout_ms)
{
    int64_t end = kit_now_ms() + timeout_ms;
    do {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return KIT_ERR;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) return KIT_OK;
        if (kit_sleep_ms(10) == KIT_EINTR) return KIT_EINTR;
    } while (kit_now_ms() < end);
    return KIT_ETIMEOUT;
}
