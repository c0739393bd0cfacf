/*
 * broker_test.c - the broker module against the real mosquitto.
 *
 * The suite points TMPDIR at a folder of its own, so "nothing left
 * behind" can be checked exactly: no entry in that folder and no process
 * whose command line names it. Tests run from the repository root, where
 * broker-config/plain.conf and tls.conf live. The TLS profile runs with
 * the kit's PKI, made in a folder of its own (tls_pki_ensure).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <CUnit/CUnit.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "broker.h"
#include "mqtt.h"
#include "tls.h"
#include "cleanup.h"
#include "util.h"

static char base[256];
static char *old_tmpdir;

static int suite_init(void)
{
    snprintf(base, sizeof base, "/tmp/mqlab-brokertest-XXXXXX");
    if (!mkdtemp(base)) return 1;
    const char *t = getenv("TMPDIR");
    old_tmpdir = t ? kit_strdup(t) : NULL;
    setenv("TMPDIR", base, 1);
    return 0;
}

static int suite_clean(void)
{
    if (old_tmpdir) setenv("TMPDIR", old_tmpdir, 1);
    else unsetenv("TMPDIR");
    free(old_tmpdir);
    old_tmpdir = NULL;
    return kit_rm_rf(base) == KIT_OK ? 0 : 1;
}

/* Entries in the suite's TMPDIR: the brokers' folders. */
static int folders_left(void)
{
    int n = 0;
    DIR *d = opendir(base);
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Live processes whose command line mentions the suite's TMPDIR (every
 * broker runs `mosquitto -c <TMPDIR>/mqlab-broker-.../mosquitto.conf`). */
static int processes_left(void)
{
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t r = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < r; i++) if (buf[i] == '\0') buf[i] = ' ';
        buf[r] = '\0';
        if (strstr(buf, base)) n++;
    }
    closedir(d);
    return n;
}

static char *plain_template(void)
{
    return kit_read_file("broker-config/plain.conf", NULL, NULL);
}

static int count_in(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Poll the log (mosquitto writes it a moment after the fact) until it
 * holds needle at least `times` times; generous deadline, no timing claim. */
static int log_has(const broker_t *b, const char *needle, int times)
{
    int64_t end = kit_now_ms() + 10000;
    do {
        char *log = broker_log(b, NULL);
        int n = log ? count_in(log, needle) : 0;
        free(log);
        if (n >= times) return 1;
        kit_sleep_ms(20);
    } while (kit_now_ms() < end);
    return 0;
}

static broker_t *start_plain(const char *extra, char *err)
{
    char *tmpl = plain_template();
    if (!tmpl) return NULL;
    broker_opts_t o = { .name = "plain", .tmpl = tmpl, .extra = extra };
    broker_t *b = NULL;
    if (broker_start(&b, &o, err) != KIT_OK) b = NULL;
    free(tmpl);
    return b;
}

static void TEST_start_plain(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = start_plain("# an extra line @PORT@\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT(broker_port(b) > 0);
    CU_ASSERT(broker_running(b) == 1);
    CU_ASSERT(broker_pid(b) > 0);
    CU_ASSERT(kit_wait_port(broker_port(b), 2000) == KIT_OK);
    CU_ASSERT(log_has(b, "running", 1));
    CU_ASSERT(strncmp(broker_dir(b), base, strlen(base)) == 0);

    /* The placeholders were filled and the extra line appended. */
    char *conf_path = kit_strdup_printf("%s/mosquitto.conf", broker_dir(b));
    char *conf = kit_read_file(conf_path, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    char *want = kit_strdup_printf("listener %d 127.0.0.1\n", broker_port(b));
    CU_ASSERT_PTR_NOT_NULL(strstr(conf, want));
    free(want);
    want = kit_strdup_printf("log_dest file %s\n", broker_log_path(b));
    CU_ASSERT_PTR_NOT_NULL(strstr(conf, want));
    free(want);
    want = kit_strdup_printf("# an extra line %d\n", broker_port(b));
    CU_ASSERT_PTR_NOT_NULL(strstr(conf, want));
    free(want);
    CU_ASSERT_PTR_NULL(strstr(conf, "@PORT@"));
    CU_ASSERT_PTR_NULL(strstr(conf, "@USER@"));
    free(conf);
    free(conf_path);

    broker_free(b);
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

static int connect_port(int port, int *local_port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    *local_port = ntohs(a.sin_port);
    return fd;
}

static void TEST_mqtt_connect_logged(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = start_plain(NULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);

    /* MQTT 3.1.1 CONNECT, clean session, keepalive 60, client id "id". */
    static const unsigned char connect_pkt[] = {
        0x10, 14, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 'i', 'd'
    };
    int local = 0;
    int fd = connect_port(broker_port(b), &local);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(write(fd, connect_pkt, sizeof connect_pkt) == (ssize_t)sizeof connect_pkt);
    unsigned char ack[4] = { 0 };
    size_t got = 0;
    while (got < sizeof ack) {
        ssize_t r = read(fd, ack + got, sizeof ack - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    CU_ASSERT(got == 4);
    CU_ASSERT(ack[0] == 0x20 && ack[1] == 0x02 && ack[2] == 0x00 && ack[3] == 0x00);

    /* This very connection, not the readiness probe's, by its source port. */
    char *line = kit_strdup_printf("New connection from 127.0.0.1:%d on port %d", local, broker_port(b));
    CU_ASSERT(log_has(b, line, 1));
    free(line);
    CU_ASSERT(log_has(b, " as id ", 1));
    close(fd);
    broker_free(b);
    CU_ASSERT(processes_left() == 0);
}

static void TEST_stop_restart_kill(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = start_plain(NULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    int port = broker_port(b);
    pid_t pid = broker_pid(b);
    CU_ASSERT(log_has(b, "running", 1));
    size_t len1 = 0;
    char *log1 = broker_log(b, &len1);

    CU_ASSERT(broker_stop(b) == KIT_OK);
    CU_ASSERT(kill(pid, 0) == -1 && errno == ESRCH);
    CU_ASSERT(log_has(b, "terminating", 1));    /* SIGTERM first: a clean exit */
    CU_ASSERT(broker_running(b) == 0);
    CU_ASSERT(kit_is_dir(broker_dir(b)));

    CU_ASSERT(broker_restart(b, err) == KIT_OK);
    CU_ASSERT(broker_running(b) == 1);
    CU_ASSERT(broker_port(b) == port);
    CU_ASSERT(kit_wait_port(port, 2000) == KIT_OK);
    CU_ASSERT(log_has(b, "running", 2));
    size_t len2 = 0;
    char *log2 = broker_log(b, &len2);
    CU_ASSERT(len2 > len1);
    CU_ASSERT(log1 && log2 && memcmp(log1, log2, len1) == 0);   /* appended, not rewritten */
    free(log1);
    free(log2);

    pid_t pid2 = broker_pid(b);
    CU_ASSERT(pid2 > 0 && pid2 != pid);
    CU_ASSERT(broker_kill(b) == KIT_OK);
    CU_ASSERT(broker_running(b) == 0);
    CU_ASSERT(kill(pid2, 0) == -1 && errno == ESRCH);

    /* A crash from outside is noticed too. */
    CU_ASSERT(broker_restart(b, err) == KIT_OK);
    pid_t pid3 = broker_pid(b);
    CU_ASSERT_FATAL(pid3 > 0);
    kill(pid3, SIGKILL);
    int64_t end = kit_now_ms() + 10000;
    while (broker_running(b) && kit_now_ms() < end) kit_sleep_ms(10);
    CU_ASSERT(broker_running(b) == 0);
    CU_ASSERT(kill(pid3, 0) == -1 && errno == ESRCH);

    broker_free(b);
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

/* 1 when the start is refused as invalid; a broker wrongly started is freed. */
static int refused(const char *tmpl, const char *extra, char *err)
{
    broker_t *b = (broker_t *)&b;   /* must come back NULL */
    broker_opts_t o = { .name = "open", .tmpl = tmpl, .extra = extra };
    int rc = broker_start(&b, &o, err);
    int was_null = b == NULL;
    if (rc == KIT_OK) broker_free(b);
    return rc == KIT_EINVAL && was_null;
}

static void TEST_refuse_open_listener(void)
{
    char err[KIT_ERRLEN] = "";
    CU_ASSERT(refused("listener @PORT@\nallow_anonymous true\n", NULL, err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "127.0.0.1"));
    CU_ASSERT(refused("listener @PORT@ 0.0.0.0\n", NULL, err));
    CU_ASSERT(refused("listener @PORT@ 127.0.0.1\n", "listener 1884\n", err));
    CU_ASSERT(refused("listener @PORT@ 127.0.0.1\n", "port 1883\n", err));
    /* No listener at all: mosquitto would serve 1883, never our port. */
    CU_ASSERT(refused("allow_anonymous true\n", NULL, err));
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

static void TEST_rejected_config(void)
{
    char err[KIT_ERRLEN] = "";
    char *tmpl = plain_template();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpl);
    char *bad = kit_strdup_printf("%sno_such_option true\n", tmpl);
    broker_opts_t o = { .name = "plain", .tmpl = bad };
    broker_t *b = NULL;
    CU_ASSERT(broker_start(&b, &o, err) == KIT_ERR);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Unknown configuration variable"));
    broker_free(b);   /* only if the start wrongly succeeded */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no_such_option"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "config line"));
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
    free(bad);
    free(tmpl);
}

/* Mosquitto keeps running when it cannot open its log file; the kit
 * must still refuse that broker and say why. */
static void TEST_log_file_error(void)
{
    char err[KIT_ERRLEN] = "";
    broker_opts_t o = {
        .name = "badlog",
        .tmpl = "listener @PORT@ 127.0.0.1\nallow_anonymous true\nuser @USER@\n"
                "log_dest file /nonexistent-mqlab/dir/mosquitto.log\n",
    };
    broker_t *b = NULL;
    CU_ASSERT(broker_start(&b, &o, err) == KIT_ERR);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Unable to open log file"));
    broker_free(b);   /* only if the start wrongly succeeded */
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

/* Someone else listens on the port: the connect would succeed, but it is
 * not our broker; mosquitto's own complaint must come back. The squatter
 * is in this very process, so the child mosquitto is forked from holds a
 * copy of its socket until it execs: that copy is not mosquitto's. */
static int port_taken_once(void)
{
    char err[KIT_ERRLEN] = "";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(fd, 8) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &al) == 0);

    char *tmpl = plain_template();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpl);
    broker_opts_t o = { .name = "plain", .tmpl = tmpl, .port = ntohs(a.sin_port) };
    broker_t *b = NULL;
    int rc = broker_start(&b, &o, err);
    int ok = rc == KIT_ERR && b == NULL && strstr(err, "Address already in use") != NULL;
    if (!ok) fprintf(stderr, "port taken: rc %d, %s\n", rc, err);
    CU_ASSERT(rc == KIT_ERR);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Address already in use"));
    broker_free(b);   /* only if the start wrongly succeeded */
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
    free(tmpl);
    close(fd);
    return ok;
}

static void TEST_port_taken(void)
{
    port_taken_once();
}

/* The race above is lost or won at each start; one run proves little. */
static void TEST_port_taken_repeated(void)
{
    int ok = 0;
    for (int i = 0; i < 20; i++) ok += port_taken_once();
    CU_ASSERT_EQUAL(ok, 20);
}

/* A stand-in for mosquitto: the real one, told to log to another file,
 * so the kit's log says it is starting but never that it is running.
 * Named "interrupt", it also sends its parent (this process) SIGINT once
 * the kit has connected, that is, has taken its listener as the broker's. */
static const char fake_broker[] =
    "#!/bin/sh\n"
    "conf=$2\n"
    "log=$(sed -n 's/^log_dest file //p' \"$conf\")\n"
    "echo '1: mosquitto version 2.0.11 starting' >> \"$log\"\n"
    "sed \"s|^log_dest file .*|log_dest file $log.hidden|\" \"$conf\" > \"$conf.hidden\"\n"
    "case $0 in *interrupt)\n"
    "    kit=$PPID\n"
    "    (until grep -q 'New connection from 127.0.0.1' \"$log.hidden\" 2>/dev/null; do sleep 0.02; done\n"
    "     kill -INT $kit) &\n"
    "esac\n"
    "exec \"$(command -v mosquitto || echo /usr/sbin/mosquitto)\" -c \"$conf.hidden\"\n";

/* Start the fake broker named mode; rc of broker_start, err filled. */
static int start_fake(const char *mode, int ready_ms, char *err)
{
    char dir[] = "/tmp/mqlab-fakebroker-XXXXXX";
    if (!mkdtemp(dir)) return -1;
    char *exe = kit_strdup_printf("%s/%s", dir, mode);
    int rc = -1;
    if (kit_write_file_atomic(exe, fake_broker, sizeof fake_broker - 1, 0700, err) == KIT_OK) {
        char *tmpl = plain_template();
        broker_opts_t o = { .name = "fake", .tmpl = tmpl, .mosquitto = exe, .ready_ms = ready_ms };
        broker_t *b = NULL;
        rc = tmpl ? broker_start(&b, &o, err) : -1;
        broker_free(b);   /* only if the start wrongly succeeded */
        free(tmpl);
    }
    kit_rm_rf(dir);
    free(exe);
    return rc;
}

/* Ctrl-C while mosquitto starts: KIT_EINTR, nothing left behind, never a
 * broker taken as started. Before the exec, and after the listener is
 * up but before mosquitto says "running". */
static void TEST_interrupted_start(void)
{
    char err[KIT_ERRLEN] = "";
    char *tmpl = plain_template();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpl);
    broker_opts_t o = { .name = "plain", .tmpl = tmpl };
    broker_t *b = (broker_t *)&b;
    raise(SIGINT);
    CU_ASSERT_EQUAL(broker_start(&b, &o, err), KIT_EINTR);
    cleanup_clear_interrupt();
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "interrupted"));
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
    free(tmpl);

    err[0] = '\0';
    int rc = start_fake("interrupt", 20000, err);
    cleanup_clear_interrupt();
    CU_ASSERT_EQUAL(rc, KIT_EINTR);
    if (rc != KIT_EINTR) fprintf(stderr, "interrupted start: rc %d, %s\n", rc, err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "interrupted"));
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

/* A broker that opens its port but never logs "running": a timeout that
 * says so, not a start. */
static void TEST_never_running(void)
{
    char err[KIT_ERRLEN] = "";
    int rc = start_fake("silent", 3000, err);
    int said = strstr(err, "did not log \"running\"") != NULL;
    if (rc != KIT_ETIMEOUT || !said) fprintf(stderr, "never running: rc %d, %s\n", rc, err);
    CU_ASSERT_EQUAL(rc, KIT_ETIMEOUT);
    CU_ASSERT(said);
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

/* A broker that runs but never serves the port: a timeout, cleaned up. */
static void TEST_ready_timeout(void)
{
    char err[KIT_ERRLEN] = "";
    int other = kit_free_port(NULL);
    CU_ASSERT_FATAL(other > 0);
    char *tmpl = kit_strdup_printf("listener %d 127.0.0.1\nallow_anonymous true\nuser @USER@\n"
                                   "log_dest file @LOG@\n", other);
    broker_opts_t o = { .name = "elsewhere", .tmpl = tmpl, .ready_ms = 300 };
    broker_t *b = NULL;
    CU_ASSERT(broker_start(&b, &o, err) == KIT_ETIMEOUT);
    CU_ASSERT_PTR_NULL(b);
    broker_free(b);   /* only if the start wrongly succeeded */
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
    free(tmpl);
}

static void TEST_missing_binary(void)
{
    char err[KIT_ERRLEN] = "";
    char *tmpl = plain_template();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpl);
    broker_opts_t o = { .name = "plain", .tmpl = tmpl, .mosquitto = "/nonexistent/mosquitto" };
    broker_t *b = NULL;
    CU_ASSERT(broker_start(&b, &o, err) == KIT_EMISSING);
    CU_ASSERT_PTR_NULL(b);
    broker_free(b);   /* only if the start wrongly succeeded */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "apt-get install -y mosquitto"));
    CU_ASSERT(folders_left() == 0);
    free(tmpl);
}

static void TEST_free_removes_folder(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = start_plain(NULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char *dir = kit_strdup(broker_dir(b));
    CU_ASSERT(kit_is_dir(dir));
    CU_ASSERT(processes_left() == 1);
    broker_free(b);
    CU_ASSERT(!kit_is_dir(dir));
    CU_ASSERT(processes_left() == 0);
    broker_free(NULL);
    free(dir);
}

/* ---- @CERTS@ -------------------------------------------------------------- */

/* A template that names @CERTS@ needs a folder for it; the refusal names
 * the line, and nothing starts. */
static void TEST_certs_refused(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = (broker_t *)&b;
    broker_opts_t o = { .name = "tls", .tmpl = "listener @PORT@ 127.0.0.1\nallow_anonymous true\n"
                                               "cafile @CERTS@/ca.crt\n" };
    CU_ASSERT_EQUAL(broker_start(&b, &o, err), KIT_EINVAL);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "@CERTS@"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 3"));

    /* In the extra lines too. */
    b = (broker_t *)&b;
    broker_opts_t e = { .name = "plain", .tmpl = "listener @PORT@ 127.0.0.1\n", .extra = "cafile @CERTS@/ca.crt\n" };
    CU_ASSERT_EQUAL(broker_start(&b, &e, err), KIT_EINVAL);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "extra lines"));

    /* A folder that is not there. */
    b = (broker_t *)&b;
    o.certs = "/nonexistent-mqlab/certs";
    CU_ASSERT_EQUAL(broker_start(&b, &o, err), KIT_ENOENT);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent-mqlab/certs"));
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

/* @CERTS@ becomes the folder, everywhere it appears; a template without
 * it does not mind a certs folder. */
static void TEST_certs_filled(void)
{
    char err[KIT_ERRLEN] = "";
    char certs[512];
    CU_ASSERT_FATAL(kit_mkdtemp(certs, sizeof certs, "certs", err) == KIT_OK);
    char *passwd = kit_strdup_printf("%s/passwd", certs);
    CU_ASSERT_FATAL(kit_write_file_atomic(passwd, "", 0, 0600, err) == KIT_OK);

    char *tmpl = plain_template();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpl);
    broker_opts_t o = { .name = "plain", .tmpl = tmpl, .extra = "password_file @CERTS@/passwd\n", .certs = certs };
    broker_t *b = NULL;
    CU_ASSERT_EQUAL(broker_start(&b, &o, err), KIT_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char *conf_path = kit_strdup_printf("%s/mosquitto.conf", broker_dir(b));
    char *conf = kit_read_file(conf_path, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL(conf);
    char *want = kit_strdup_printf("password_file %s\n", passwd);
    if (conf) {
        CU_ASSERT_PTR_NOT_NULL(strstr(conf, want));
        CU_ASSERT_PTR_NULL(strstr(conf, "@CERTS@"));
    }
    broker_free(b);

    /* certs given to a template that does not use it: no harm. */
    b = NULL;
    o.extra = NULL;
    CU_ASSERT_EQUAL(broker_start(&b, &o, err), KIT_OK);
    broker_free(b);

    kit_rmdtemp(certs);
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
    free(want);
    free(conf);
    free(conf_path);
    free(tmpl);
    free(passwd);
}

/* broker-config/tls.conf with the kit's PKI: its TLS client connects by
 * name and by address, a plain one does not. */
static void TEST_tls_profile(void)
{
    char err[KIT_ERRLEN] = "";
    char certs[512];
    CU_ASSERT_FATAL(kit_mkdtemp(certs, sizeof certs, "certs", err) == KIT_OK);
    int made = tls_pki_ensure(certs, NULL, NULL, err) == KIT_OK;
    if (!made) fprintf(stderr, "tls profile: %s\n", err);
    CU_ASSERT(made);
    char *tmpl = kit_read_file("broker-config/tls.conf", NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL(tmpl);
    broker_t *b = NULL;
    if (made && tmpl) {
        broker_opts_t o = { .name = "tls", .tmpl = tmpl, .certs = certs };
        CU_ASSERT_EQUAL(broker_start(&b, &o, err), KIT_OK);
        if (!b) fprintf(stderr, "tls profile: %s\n", err);
    }
    if (b) {
        char *ca = kit_strdup_printf("%s/ca.crt", certs);
        const char *hosts[] = { "localhost", "127.0.0.1" };
        for (int i = 0; i < 2; i++) {
            mq_client_t *c = NULL;
            mq_opts_t t = { .host = hosts[i], .port = broker_port(b), .clean = 1, .cafile = ca };
            CU_ASSERT_EQUAL(mq_connect(&c, &t, NULL, err), KIT_OK);
            if (!c) fprintf(stderr, "tls profile, %s: %s\n", hosts[i], err);
            mq_free(c);
        }
        mq_client_t *p = NULL;
        mq_opts_t plain = { .port = broker_port(b), .clean = 1, .timeout_ms = 2000 };
        CU_ASSERT_NOT_EQUAL(mq_connect(&p, &plain, NULL, err), KIT_OK);
        CU_ASSERT_PTR_NULL(p);
        mq_free(p);
        free(ca);
        broker_free(b);
    }
    kit_rmdtemp(certs);
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
    free(tmpl);
}

/* ---- unix socket ----------------------------------------------------------- */

/* TCP LISTEN sockets (IPv4 or IPv6) that pid holds. */
static int tcp_listeners_of(pid_t pid)
{
    unsigned long listen_inodes[256];
    int n = 0, held = 0;
    const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    for (int t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");
        if (!f) continue;
        char line[512];
        while (fgets(line, sizeof line, f)) {
            unsigned st = 0;
            unsigned long ino = 0;
            if (sscanf(line, " %*d: %*s %*s %x %*s %*s %*s %*u %*u %lu", &st, &ino) == 2 && st == 0x0A &&
                n < 256)
                listen_inodes[n++] = ino;
        }
        fclose(f);
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        char link[sizeof path + sizeof de->d_name], target[128];
        snprintf(link, sizeof link, "%s/%s", path, de->d_name);
        ssize_t r = readlink(link, target, sizeof target - 1);
        if (r <= 0) continue;
        target[r] = '\0';
        unsigned long ino;
        if (sscanf(target, "socket:[%lu]", &ino) != 1) continue;
        for (int i = 0; i < n; i++)
            if (listen_inodes[i] == ino) held++;
    }
    closedir(d);
    return held;
}

static broker_t *start_unix(const char *extra, char *err)
{
    char *tmpl = plain_template();
    if (!tmpl) return NULL;
    broker_opts_t o = { .name = "plain", .tmpl = tmpl, .extra = extra, .unix_socket = 1 };
    broker_t *b = NULL;
    if (broker_start(&b, &o, err) != KIT_OK) b = NULL;
    free(tmpl);
    return b;
}

/* A message from a kit client on the broker's socket to another one. */
static int goes_round(const broker_t *b, const char *topic)
{
    char err[KIT_ERRLEN] = "";
    mq_opts_t o = { .unix_path = broker_socket(b), .clean = 1 };
    mq_client_t *sub = NULL, *pub = NULL;
    int ok = 0, granted = -1;
    if (mq_connect(&sub, &o, NULL, err) != KIT_OK || mq_connect(&pub, &o, NULL, err) != KIT_OK ||
        mq_subscribe(sub, topic, 1, 10000, &granted, err) != KIT_OK ||
        mq_publish(pub, topic, "round", 5, 1, 0, 10000, NULL, err) != KIT_OK) {
        fprintf(stderr, "unix socket: %s\n", err);
        goto cleanup;
    }
    mq_message_t *m = mq_wait_message(sub, topic, 10000, NULL);
    ok = m && strcmp(m->payload, "round") == 0;
    mq_message_free(m);
cleanup:
    mq_free(sub);
    mq_free(pub);
    return ok;
}

static void TEST_unix_socket(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = start_unix("# the port is @PORT@\n", err);
    if (!b) fprintf(stderr, "unix socket: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(broker_port(b), 0);
    const char *sock = broker_socket(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sock);
    char *want = kit_strdup_printf("%s/mosquitto.sock", broker_dir(b));
    CU_ASSERT_STRING_EQUAL(sock, want);
    free(want);
    struct stat st;
    CU_ASSERT(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode));
    CU_ASSERT(stat(broker_dir(b), &st) == 0 && (st.st_mode & 0777) == 0700);
    CU_ASSERT(log_has(b, "running", 1));

    /* The template's TCP line became the socket's, line for line; no TCP
     * listener is left, in the config or in the process. */
    char *conf_path = kit_strdup_printf("%s/mosquitto.conf", broker_dir(b));
    char *conf = kit_read_file(conf_path, NULL, NULL);
    char *tmpl = plain_template();
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpl);
    want = kit_strdup_printf("\nlistener 0 %s\n", sock);
    CU_ASSERT_PTR_NOT_NULL(strstr(conf, want));
    CU_ASSERT_PTR_NULL(strstr(conf, "127.0.0.1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(conf, "# the port is 0\n"));
    CU_ASSERT_EQUAL(count_in(conf, "\n"), count_in(tmpl, "\n") + 1);
    CU_ASSERT_EQUAL(tcp_listeners_of(broker_pid(b)), 0);
    free(want);
    free(tmpl);
    free(conf);
    free(conf_path);

    CU_ASSERT(goes_round(b, "bt/unix/a"));
    want = kit_strdup_printf("Opening unix listen socket on path %s", sock);
    CU_ASSERT(log_has(b, want, 1));
    free(want);

    broker_free(b);
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

/* Restarts keep the path, after a clean stop and after a crash (which
 * leaves the socket file behind). */
static void TEST_unix_restart(void)
{
    char err[KIT_ERRLEN] = "";
    broker_t *b = start_unix(NULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char *sock = kit_strdup(broker_socket(b));
    CU_ASSERT(broker_stop(b) == KIT_OK);
    CU_ASSERT(broker_running(b) == 0);
    CU_ASSERT_EQUAL(broker_restart(b, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(broker_socket(b), sock);
    CU_ASSERT_EQUAL(broker_port(b), 0);
    CU_ASSERT(log_has(b, "running", 2));
    CU_ASSERT(goes_round(b, "bt/unix/b"));

    CU_ASSERT(broker_kill(b) == KIT_OK);
    CU_ASSERT(kit_file_exists(sock));
    CU_ASSERT_EQUAL(broker_restart(b, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(broker_socket(b), sock);
    CU_ASSERT(log_has(b, "running", 3));
    CU_ASSERT(goes_round(b, "bt/unix/c"));
    CU_ASSERT_EQUAL(tcp_listeners_of(broker_pid(b)), 0);

    broker_free(b);
    CU_ASSERT(!kit_file_exists(sock));
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
    free(sock);
}

/* 1 when a unix-socket start is refused as invalid, with why in err. */
static int unix_refused(const char *tmpl, const char *extra, int port, char *err)
{
    broker_t *b = (broker_t *)&b;   /* must come back NULL */
    broker_opts_t o = { .name = "open", .tmpl = tmpl, .extra = extra, .port = port, .unix_socket = 1 };
    int rc = broker_start(&b, &o, err);
    int was_null = b == NULL;
    if (rc == KIT_OK) broker_free(b);
    return rc == KIT_EINVAL && was_null;
}

/* One listener, the template's `listener @PORT@ 127.0.0.1`, and nothing
 * that could open another. */
static void TEST_unix_refused(void)
{
    char err[KIT_ERRLEN] = "";
    CU_ASSERT(unix_refused("listener @PORT@ 127.0.0.1\nlistener 1884 127.0.0.1\nallow_anonymous true\n",
                           NULL, 0, err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "this one has 2"));
    CU_ASSERT(unix_refused("listener @PORT@ 127.0.0.1\nlistener @PORT@ 127.0.0.1\n", NULL, 0, err));
    CU_ASSERT(unix_refused("listener @PORT@ 127.0.0.1\n", "listener @PORT@ 127.0.0.1\n", 0, err));
    CU_ASSERT(unix_refused("listener @PORT@ 127.0.0.1\n", "listener 1884 127.0.0.1\n", 0, err));
    CU_ASSERT(unix_refused("listener 1884 127.0.0.1\n", NULL, 0, err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "listener @PORT@ 127.0.0.1"));
    CU_ASSERT(unix_refused("listener @PORT@ 127.0.0.1\n", NULL, 1884, err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "port"));
    /* A socket listener is the kit's to write, never a template's. */
    CU_ASSERT(unix_refused("listener 0 /tmp/elsewhere.sock\n", NULL, 0, err));
    CU_ASSERT(refused("listener 0 /tmp/elsewhere.sock\n", NULL, err));
    CU_ASSERT(refused("listener @PORT@ 127.0.0.1\n", "listener 0 /tmp/elsewhere.sock\n", err));
    CU_ASSERT(refused("listener 0\n", NULL, err));
    CU_ASSERT(folders_left() == 0);
    CU_ASSERT(processes_left() == 0);
}

int init_broker_tests(void)
{
    CU_pSuite s = CU_add_suite("broker", suite_init, suite_clean);
    if (!s) return 1;
    if (!CU_add_test(s, "start plain", TEST_start_plain) ||
        !CU_add_test(s, "mqtt connect is logged", TEST_mqtt_connect_logged) ||
        !CU_add_test(s, "stop, restart, kill", TEST_stop_restart_kill) ||
        !CU_add_test(s, "refuse open listener", TEST_refuse_open_listener) ||
        !CU_add_test(s, "rejected config", TEST_rejected_config) ||
        !CU_add_test(s, "log file error", TEST_log_file_error) ||
        !CU_add_test(s, "port taken", TEST_port_taken) ||
        !CU_add_test(s, "port taken, 20 times", TEST_port_taken_repeated) ||
        !CU_add_test(s, "interrupted start", TEST_interrupted_start) ||
        !CU_add_test(s, "never running", TEST_never_running) ||
        !CU_add_test(s, "ready timeout", TEST_ready_timeout) ||
        !CU_add_test(s, "missing binary", TEST_missing_binary) ||
        !CU_add_test(s, "free removes folder", TEST_free_removes_folder) ||
        !CU_add_test(s, "@CERTS@ refused without a folder", TEST_certs_refused) ||
        !CU_add_test(s, "@CERTS@ filled", TEST_certs_filled) ||
        !CU_add_test(s, "tls profile", TEST_tls_profile) ||
        !CU_add_test(s, "unix socket", TEST_unix_socket) ||
        !CU_add_test(s, "unix socket restart", TEST_unix_restart) ||
        !CU_add_test(s, "unix socket refused", TEST_unix_refused))
        return 1;
    return 0;
}
