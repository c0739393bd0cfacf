/*
 * mqtt_test.c - the mqtt client module against a real mosquitto.
 *
 * The suite starts its own broker (not through runner/broker.c, so the
 * two modules can be tested apart) with three listeners: a unix socket
 * in the suite's folder and a loopback port that accept anonymous
 * clients, and a loopback port that refuses them.
 *
 * A second suite, mqtt-tls, makes the kit's PKI (tls_pki_ensure: a CA,
 * certificates for localhost, for another host, for a client, an expired
 * one and an impostor CA) in a folder of its own and runs a broker with
 * TLS listeners that present them, to see the client succeed, and fail
 * with a reason rather than hang.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <CUnit/CUnit.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "mqtt.h"
#include "tls.h"
#include "util.h"

static char dir[512];
static char sock_path[600];
static pid_t broker_pid;
static int port_open, port_closed;

/* mosquitto -c path in its own process group, tracked; its output is
 * thrown away (the config logs to a file). */
static pid_t launch(const char *path)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setpgid(0, 0);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) { dup2(null, 1); dup2(null, 2); }
        execlp("mosquitto", "mosquitto", "-c", path, (char *)NULL);
        execl("/usr/sbin/mosquitto", "mosquitto", "-c", path, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    cleanup_track_pgid(pid);
    return pid;
}

static void stop(pid_t *pid)
{
    if (*pid <= 0) return;
    kill(-*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    cleanup_untrack_pgid(*pid);
    *pid = 0;
}

static int start_broker(void)
{
    char err[KIT_ERRLEN];
    if (kit_mkdtemp(dir, sizeof dir, "mqlab-mqtt-test", err) != KIT_OK) return -1;
    port_open = kit_free_port(err);
    port_closed = kit_free_port(err);
    if (!port_open || !port_closed || port_open == port_closed) return -1;

    snprintf(sock_path, sizeof sock_path, "%s/mosquitto.sock", dir);

    /* The socket first: mosquitto opens listeners in order, so once the
     * ports accept, the socket does too. */
    struct passwd *pw = getpwuid(geteuid());
    char *conf = kit_strdup_printf(
        "per_listener_settings true\n"
        "persistence false\n"
        "user %s\n"
        "log_dest file %s/broker.log\n"
        "log_type all\n"
        "listener 0 %s\n"
        "allow_anonymous true\n"
        "listener %d 127.0.0.1\n"
        "allow_anonymous true\n"
        "listener %d 127.0.0.1\n"
        "allow_anonymous false\n",
        pw ? pw->pw_name : "root", dir, sock_path, port_open, port_closed);
    char *path = kit_strdup_printf("%s/mosquitto.conf", dir);
    int rc = kit_write_file_atomic(path, conf, strlen(conf), 0600, err);
    free(conf);
    if (rc != KIT_OK) { free(path); return -1; }

    broker_pid = launch(path);
    free(path);
    if (broker_pid < 0) { broker_pid = 0; return -1; }
    if (kit_wait_port(port_open, 5000) != KIT_OK || kit_wait_port(port_closed, 5000) != KIT_OK)
        return -1;
    return 0;
}

static int suite_clean(void);

/* CUnit does not run the cleanup of a suite whose init failed, so a
 * half-started broker is taken down here. */
static int suite_init(void)
{
    if (mq_init() != KIT_OK || start_broker() != 0) {
        suite_clean();
        return -1;
    }
    return 0;
}

static int suite_clean(void)
{
    mq_cleanup();
    stop(&broker_pid);
    if (dir[0]) kit_rmdtemp(dir);
    dir[0] = '\0';
    return 0;
}

/* An anonymous client on the open listener; NULL (and a failed assert)
 * if that does not work. */
static mq_client_t *client(const char *id)
{
    char err[KIT_ERRLEN] = "";
    mq_opts_t o = { .port = port_open, .id = id, .clean = 1 };
    mq_client_t *c = NULL;
    int rc = -1;
    CU_ASSERT_EQUAL(mq_connect(&c, &o, &rc, err), KIT_OK);
    CU_ASSERT_EQUAL(rc, 0);
    if (!c) fprintf(stderr, "connect: %s\n", err);
    return c;
}

static int subscribe(mq_client_t *c, const char *filter, int qos)
{
    char err[KIT_ERRLEN] = "";
    int granted = -1;
    int rc = mq_subscribe(c, filter, qos, 5000, &granted, err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    if (rc != KIT_OK) fprintf(stderr, "subscribe: %s\n", err);
    return granted;
}

static void publish(mq_client_t *c, const char *topic, const char *payload, int qos, int retain)
{
    char err[KIT_ERRLEN] = "";
    int mid = 0;
    int rc = mq_publish(c, topic, payload, (int)strlen(payload), qos, retain, 5000, &mid, err);
    CU_ASSERT_EQUAL(rc, KIT_OK);
    CU_ASSERT(mid > 0);
    if (rc != KIT_OK) fprintf(stderr, "publish: %s\n", err);
}

static void TEST_connect(void)
{
    mq_client_t *c = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(mq_is_connected(c));
    const char *id = mq_id(c);
    CU_ASSERT_EQUAL(strlen(id), 12);
    CU_ASSERT_EQUAL(strncmp(id, "mqlab-", 6), 0);
    CU_ASSERT_EQUAL(strspn(id + 6, "0123456789abcdef"), 6);

    mq_client_t *d = client("fixed-id");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_STRING_EQUAL(mq_id(d), "fixed-id");

    CU_ASSERT_EQUAL(mq_disconnect(c), KIT_OK);
    CU_ASSERT(!mq_is_connected(c));
    CU_ASSERT(mq_is_connected(d));
    CU_ASSERT_EQUAL(mq_disconnect(c), KIT_ENOTCONN);
    mq_free(c);
    mq_free(d);
}

static void TEST_connect_refused(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err; /* must be reset to NULL */
    int rc = -1;
    mq_opts_t o = { .port = port_closed, .clean = 1 };
    CU_ASSERT_EQUAL(mq_connect(&c, &o, &rc, err), KIT_EREFUSED);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(rc, 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not authorised"));

    /* MQTT 5 answers with a reason code instead. */
    o.protocol = 5;
    rc = -1;
    CU_ASSERT_EQUAL(mq_connect(&c, &o, &rc, err), KIT_EREFUSED);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(rc, 135);

    /* Nobody listening: an error, but not a CONNACK refusal. */
    int nobody = kit_free_port(NULL);
    CU_ASSERT_FATAL(nobody > 0);
    mq_opts_t p = { .port = nobody, .clean = 1 };
    rc = -1;
    CU_ASSERT_EQUAL(mq_connect(&c, &p, &rc, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(rc, -1);
}

static void TEST_connect_timeout(void)
{
    /* A socket that listens but never speaks MQTT: the kernel accepts
     * the TCP connection, no CONNACK ever comes. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(fd, 4) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &al) == 0);

    char err[KIT_ERRLEN] = "";
    mq_client_t *c = NULL;
    mq_opts_t o = { .port = ntohs(a.sin_port), .clean = 1, .timeout_ms = 300 };
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL(mq_connect(&c, &o, NULL, err), KIT_ETIMEOUT);
    int64_t took = kit_now_ms() - t0;
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT(took >= 290);
    CU_ASSERT(took < 10000);
    close(fd);
}

static void check_message(mq_message_t *m, const char *topic, const char *payload, int len, int qos, int retain)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->topic, topic);
    CU_ASSERT_EQUAL(m->len, len);
    CU_ASSERT(memcmp(m->payload, payload, (size_t)len) == 0);
    CU_ASSERT_EQUAL(m->payload[len], '\0');
    CU_ASSERT_EQUAL(m->qos, qos);
    CU_ASSERT_EQUAL(m->retain, retain);
    CU_ASSERT(m->t_ms > 0);
}

/* manual_ack: the PUBACK leaves only on mq_ack. A message never
 * acknowledged comes again to the same persistent session after a
 * kill; one acknowledged does not. */
static mq_client_t *manual_client(const char *id)
{
    char err[KIT_ERRLEN] = "";
    mq_opts_t o = { .port = port_open, .id = id, .clean = 0, .manual_ack = 1 };
    mq_client_t *c = NULL;
    int rc = -1;
    CU_ASSERT_EQUAL(mq_connect(&c, &o, &rc, err), KIT_OK);
    if (!c) fprintf(stderr, "connect: %s\n", err);
    return c;
}

static void TEST_manual_ack(void)
{
    char err[KIT_ERRLEN];
    int why = -1;
    mq_client_t *pub = client(NULL), *c = manual_client("ma-consumer");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(subscribe(c, "ma/#", 1), 1);
    publish(pub, "ma/x", "one", 1, 0);
    mq_message_t *m = mq_wait_message(c, NULL, 5000, &why);
    check_message(m, "ma/x", "one", 3, 1, 0);
    CU_ASSERT_EQUAL(mq_unacked(c), 1);
    mq_message_free(m);
    /* Not acknowledged, then the connection drops: the broker still owes it. */
    mq_kill(c);
    mq_free(c);
    c = manual_client("ma-consumer");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    m = mq_wait_message(c, NULL, 5000, &why);
    check_message(m, "ma/x", "one", 3, 1, 0);
    int mid = m ? m->mid : -1;
    mq_message_free(m);
    CU_ASSERT_EQUAL(mq_ack(c, mid, err), KIT_OK);
    CU_ASSERT_EQUAL(mq_unacked(c), 0);
    CU_ASSERT_EQUAL(mq_ack(c, mid, err), KIT_EINVAL);
    /* A SUBACK on the same connection: the broker has read the PUBACK. */
    CU_ASSERT_EQUAL(subscribe(c, "ma-sync", 1), 1);
    mq_kill(c);
    mq_free(c);
    c = manual_client("ma-consumer");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NULL(mq_wait_message(c, NULL, 300, &why));
    CU_ASSERT_EQUAL(why, KIT_ETIMEOUT);
    mq_free(c);
    /* A client that acknowledges by itself has nothing to ack. */
    CU_ASSERT_EQUAL(mq_ack(pub, 1, err), KIT_EINVAL);
    mq_free(pub);
}

static void TEST_roundtrip(void)
{
    mq_client_t *sub = client(NULL), *pub = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
    CU_ASSERT_EQUAL(subscribe(sub, "rt/#", 2), 2);
    CU_ASSERT_EQUAL(subscribe(sub, "rt1/#", 1), 1);

    static const char bin[] = { 'a', '\0', 'b', '\xff' };
    char err[KIT_ERRLEN];
    int why = -1;
    for (int qos = 0; qos <= 2; qos++) {
        char topic[32], payload[32];
        snprintf(topic, sizeof topic, "rt/q%d", qos);
        snprintf(payload, sizeof payload, "payload at qos %d", qos);
        publish(pub, topic, payload, qos, 0);
        mq_message_t *m = mq_wait_message(sub, NULL, 5000, &why);
        check_message(m, topic, payload, (int)strlen(payload), qos, 0);
        if (m && m->qos > 0) CU_ASSERT(m->mid > 0);
        mq_message_free(m);

        /* Binary payload, and the delivered QoS is the lower of the two. */
        int mid = 0;
        CU_ASSERT_EQUAL(mq_publish(pub, "rt1/bin", bin, sizeof bin, qos, 0, 5000, &mid, err), KIT_OK);
        m = mq_wait_message(sub, "rt1/bin", 5000, &why);
        check_message(m, "rt1/bin", bin, sizeof bin, qos < 1 ? qos : 1, 0);
        mq_message_free(m);
    }
    /* Empty payload. */
    int mid = 0;
    CU_ASSERT_EQUAL(mq_publish(pub, "rt/empty", NULL, 0, 1, 0, 5000, &mid, err), KIT_OK);
    mq_message_t *m = mq_wait_message(sub, NULL, 5000, &why);
    check_message(m, "rt/empty", "", 0, 1, 0);
    mq_message_free(m);

    /* Unsubscribed: nothing more arrives. */
    CU_ASSERT_EQUAL(mq_unsubscribe(sub, "rt/#", 5000, err), KIT_OK);
    publish(pub, "rt/after", "x", 1, 0);
    CU_ASSERT_PTR_NULL(mq_wait_message(sub, NULL, 300, &why));
    CU_ASSERT_EQUAL(why, KIT_ETIMEOUT);
    mq_free(sub);
    mq_free(pub);
}

static void TEST_retained(void)
{
    mq_client_t *pub = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
    publish(pub, "ret/a/state", "online", 1, 1);
    publish(pub, "ret/a/live", "not kept", 1, 0);

    mq_client_t *late = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(late);
    CU_ASSERT_EQUAL(subscribe(late, "ret/#", 1), 1);
    int why = -1;
    mq_message_t *m = mq_wait_message(late, NULL, 5000, &why);
    check_message(m, "ret/a/state", "online", 6, 1, 1);
    mq_message_free(m);
    CU_ASSERT_PTR_NULL(mq_wait_message(late, NULL, 200, &why));

    /* A live message on the same topic is not flagged retained. */
    publish(pub, "ret/a/state", "again", 1, 1);
    m = mq_wait_message(late, NULL, 5000, &why);
    check_message(m, "ret/a/state", "again", 5, 1, 0);
    mq_message_free(m);

    /* Clear it so it does not leak into other tests. */
    char err[KIT_ERRLEN];
    CU_ASSERT_EQUAL(mq_publish(pub, "ret/a/state", NULL, 0, 1, 1, 5000, NULL, err), KIT_OK);
    mq_free(late);
    mq_free(pub);
}

static void TEST_wait_filter(void)
{
    mq_client_t *sub = client(NULL), *pub = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
    CU_ASSERT_EQUAL(subscribe(sub, "wf/#", 1), 1);
    publish(pub, "wf/a", "1", 1, 0);
    publish(pub, "wf/b/x", "2", 1, 0);
    publish(pub, "wf/a", "3", 1, 0);
    publish(pub, "wf/c", "4", 1, 0);

    int why = -1;
    mq_message_t *m = mq_wait_message(sub, "wf/+/x", 5000, &why);
    check_message(m, "wf/b/x", "2", 1, 1, 0);
    mq_message_free(m);
    /* "1" came before "2" on the same connection, so it is queued. */
    CU_ASSERT(mq_pending(sub) >= 1);
    m = mq_wait_message(sub, "wf/c", 5000, &why);
    check_message(m, "wf/c", "4", 1, 1, 0);
    mq_message_free(m);
    CU_ASSERT_EQUAL(mq_pending(sub), 2);
    /* The others stayed, in order. */
    m = mq_wait_message(sub, NULL, 0, &why);
    check_message(m, "wf/a", "1", 1, 1, 0);
    mq_message_free(m);
    m = mq_wait_message(sub, "wf/#", 0, &why);
    check_message(m, "wf/a", "3", 1, 1, 0);
    mq_message_free(m);
    CU_ASSERT_EQUAL(mq_pending(sub), 0);
    mq_free(sub);
    mq_free(pub);
}

static void TEST_wait_timeout(void)
{
    mq_client_t *sub = client(NULL), *pub = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
    CU_ASSERT_EQUAL(subscribe(sub, "wt/#", 1), 1);
    publish(pub, "wt/other", "x", 1, 0);

    /* A queued message that does not match does not end the wait. */
    int why = -1;
    int64_t t0 = kit_now_ms();
    mq_message_t *m = mq_wait_message(sub, "wt/none", 400, &why);
    int64_t took = kit_now_ms() - t0;
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(why, KIT_ETIMEOUT);
    CU_ASSERT(took >= 390);
    CU_ASSERT(took < 10000);
    CU_ASSERT_EQUAL(mq_pending(sub), 1);

    /* Zero: a look, no wait. */
    why = -1;
    CU_ASSERT_PTR_NULL(mq_wait_message(sub, "wt/none", 0, &why));
    CU_ASSERT_EQUAL(why, KIT_ETIMEOUT);
    mq_free(sub);
    mq_free(pub);
}

static mq_client_t *client_with_will(const char *topic)
{
    char err[KIT_ERRLEN] = "";
    mq_opts_t o = { .port = port_open, .clean = 1, .will_topic = topic,
                    .will_payload = "offline", .will_len = 7, .will_qos = 1 };
    mq_client_t *c = NULL;
    CU_ASSERT_EQUAL(mq_connect(&c, &o, NULL, err), KIT_OK);
    return c;
}

static void TEST_will(void)
{
    mq_client_t *watch = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(watch);
    CU_ASSERT_EQUAL(subscribe(watch, "will/+/status", 1), 1);

    mq_client_t *a = client_with_will("will/a/status");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(mq_kill(a), KIT_OK);
    CU_ASSERT(!mq_is_connected(a));
    CU_ASSERT_EQUAL(mq_kill(a), KIT_OK);
    int why = -1;
    mq_message_t *m = mq_wait_message(watch, NULL, 5000, &why);
    check_message(m, "will/a/status", "offline", 7, 1, 0);
    mq_message_free(m);

    mq_client_t *b = client_with_will("will/b/status");
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(mq_disconnect(b), KIT_OK);
    CU_ASSERT(!mq_is_connected(b));
    /* c's will arriving shows the broker is past b's DISCONNECT; b's
     * will must not follow. */
    mq_client_t *c = client_with_will("will/c/status");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    mq_free(c);  /* still connected: freeing closes dirty */
    m = mq_wait_message(watch, NULL, 5000, &why);
    check_message(m, "will/c/status", "offline", 7, 1, 0);
    mq_message_free(m);
    CU_ASSERT_PTR_NULL(mq_wait_message(watch, "will/b/#", 500, &why));
    CU_ASSERT_EQUAL(why, KIT_ETIMEOUT);
    mq_free(a);
    mq_free(b);
    mq_free(watch);
}

static void TEST_invalid(void)
{
    mq_client_t *c = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char err[KIT_ERRLEN] = "";
    int granted = 7;
    CU_ASSERT_EQUAL(mq_subscribe(c, "a/#/b", 1, 1000, &granted, err), KIT_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "a/#/b"));
    CU_ASSERT_EQUAL(mq_subscribe(c, "a+/b", 1, 1000, &granted, err), KIT_EINVAL);
    CU_ASSERT_EQUAL(mq_subscribe(c, "", 1, 1000, &granted, err), KIT_EINVAL);
    CU_ASSERT_EQUAL(mq_subscribe(c, "a/b", 3, 1000, &granted, err), KIT_EINVAL);
    CU_ASSERT_EQUAL(mq_unsubscribe(c, "#/a", 1000, err), KIT_EINVAL);
    CU_ASSERT_EQUAL(mq_publish(c, "a/+", "x", 1, 0, 0, 1000, NULL, err), KIT_EINVAL);
    CU_ASSERT_EQUAL(mq_publish(c, "a/#", "x", 1, 1, 0, 1000, NULL, err), KIT_EINVAL);
    int why = -1;
    CU_ASSERT_PTR_NULL(mq_wait_message(c, "a/#/b", 0, &why));
    CU_ASSERT_EQUAL(why, KIT_EINVAL);
    /* Still usable afterwards. */
    CU_ASSERT(mq_is_connected(c));
    CU_ASSERT_EQUAL(subscribe(c, "a/+/b", 0), 0);
    mq_free(c);

    /* A will on a wildcard topic, an id that cannot be persistent. */
    int stdin_open = fcntl(0, F_GETFD) != -1;
    mq_opts_t o = { .port = port_open, .clean = 1, .will_topic = "w/#", .will_payload = "x", .will_len = 1 };
    mq_client_t *d = NULL;
    CU_ASSERT_EQUAL(mq_connect(&d, &o, NULL, err), KIT_EINVAL);
    CU_ASSERT_PTR_NULL(d);
    mq_opts_t p = { .port = port_open, .clean = 0, .id = "" };
    CU_ASSERT_EQUAL(mq_connect(&d, &p, NULL, err), KIT_EINVAL);
    CU_ASSERT_PTR_NULL(d);
    mq_opts_t q = { .port = port_open, .clean = 1, .id = "bad\xff" };
    CU_ASSERT_EQUAL(mq_connect(&d, &q, NULL, err), KIT_EINVAL);
    CU_ASSERT_PTR_NULL(d);
    /* libmosquitto's own refusal of such ids closes fd 0 on its way out. */
    if (stdin_open) CU_ASSERT(fcntl(0, F_GETFD) != -1);
}

/* A client on the broker's unix socket talks with one on its port. */
static void TEST_unix_socket(void)
{
    char err[KIT_ERRLEN] = "";
    mq_opts_t o = { .unix_path = sock_path, .id = "on-socket", .clean = 1 };
    mq_client_t *u = NULL;
    int rc = -1;
    CU_ASSERT_EQUAL(mq_connect(&u, &o, &rc, err), KIT_OK);
    if (!u) fprintf(stderr, "unix socket: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(mq_is_connected(u));
    mq_client_t *t = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(subscribe(u, "ux/to-socket", 1), 1);
    CU_ASSERT_EQUAL(subscribe(t, "ux/to-port", 1), 1);

    publish(t, "ux/to-socket", "from the port", 1, 0);
    int why = -1;
    mq_message_t *m = mq_wait_message(u, NULL, 5000, &why);
    check_message(m, "ux/to-socket", "from the port", 13, 1, 0);
    mq_message_free(m);
    publish(u, "ux/to-port", "from the socket", 1, 0);
    m = mq_wait_message(t, NULL, 5000, &why);
    check_message(m, "ux/to-port", "from the socket", 15, 1, 0);
    mq_message_free(m);

    /* The broker saw this client on its socket, not on a port. */
    char *log_path = kit_strdup_printf("%s/broker.log", dir);
    char *log = kit_read_file(log_path, NULL, NULL);
    char *want = kit_strdup_printf("New client connected from %s", sock_path);
    CU_ASSERT(log && strstr(log, want) && strstr(log, " as on-socket "));
    free(want);
    free(log);
    free(log_path);
    CU_ASSERT_EQUAL(mq_disconnect(u), KIT_OK);
    mq_free(u);
    mq_free(t);
}

static void TEST_unix_socket_errors(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;   /* must be reset to NULL */
    mq_opts_t both = { .unix_path = sock_path, .port = port_open, .clean = 1 };
    CU_ASSERT_EQUAL(mq_connect(&c, &both, NULL, err), KIT_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    mq_opts_t host = { .unix_path = sock_path, .host = "127.0.0.1", .clean = 1 };
    CU_ASSERT_EQUAL(mq_connect(&c, &host, NULL, err), KIT_EINVAL);
    mq_opts_t tls = { .unix_path = sock_path, .clean = 1, .cafile = "/nonexistent/ca.crt" };
    CU_ASSERT_EQUAL(mq_connect(&c, &tls, NULL, err), KIT_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS"));
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    mq_opts_t too_long = { .unix_path = longpath, .clean = 1 };
    CU_ASSERT_EQUAL(mq_connect(&c, &too_long, NULL, err), KIT_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "too long"));

    /* Nobody there: an error that names the socket. */
    char *none = kit_strdup_printf("%s/nobody.sock", dir);
    mq_opts_t gone = { .unix_path = none, .clean = 1 };
    int rc = -1;
    CU_ASSERT_EQUAL(mq_connect(&c, &gone, &rc, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, none));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
    free(none);
}

static void TEST_interleaved(void)
{
    enum { N = 200 };
    mq_client_t *sub = client(NULL), *pub = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
    CU_ASSERT_EQUAL(subscribe(sub, "il/#", 1), 1);

    char err[KIT_ERRLEN] = "";
    int ok = 0;
    for (int i = 0; i < N; i++) {
        char p[16];
        int n = snprintf(p, sizeof p, "%d", i);
        ok += mq_publish(pub, "il/seq", p, n, 1, 0, 5000, NULL, err) == KIT_OK;
    }
    CU_ASSERT_EQUAL(ok, N);
    /* The subscriber was read while the publisher waited. */
    CU_ASSERT(mq_pending(sub) > 0);

    int inorder = 0, why = -1;
    for (int i = 0; i < N; i++) {
        mq_message_t *m = mq_wait_message(sub, NULL, 5000, &why);
        if (!m) break;
        inorder += atoi(m->payload) == i && m->qos == 1;
        mq_message_free(m);
    }
    CU_ASSERT_EQUAL(inorder, N);
    CU_ASSERT_EQUAL(mq_pending(sub), 0);
    mq_free(sub);
    mq_free(pub);
}

static void TEST_lost(void)
{
    /* Taking over the client id makes the broker drop the first client:
     * it must notice, and stay disconnected. */
    mq_client_t *first = client("takeover-me");
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    CU_ASSERT_EQUAL(subscribe(first, "lost/#", 1), 1);
    mq_client_t *second = client("takeover-me");
    CU_ASSERT_PTR_NOT_NULL_FATAL(second);

    int why = -1;
    CU_ASSERT_PTR_NULL(mq_wait_message(first, NULL, 5000, &why));
    CU_ASSERT_EQUAL(why, KIT_ENOTCONN);
    CU_ASSERT(!mq_is_connected(first));
    CU_ASSERT(mq_is_connected(second));
    mq_pump(200);
    CU_ASSERT(!mq_is_connected(first));

    char err[KIT_ERRLEN] = "";
    CU_ASSERT_EQUAL(mq_publish(first, "lost/x", "x", 1, 1, 0, 1000, NULL, err), KIT_ENOTCONN);
    int granted;
    CU_ASSERT_EQUAL(mq_subscribe(first, "lost/y", 1, 1000, &granted, err), KIT_ENOTCONN);
    mq_free(first);
    mq_free(second);
}

static void TEST_keepalive(void)
{
    /* Nothing to send for longer than the keepalive: the pump must send
     * a PINGREQ on its own (the broker logs it) and stay connected. */
    char err[KIT_ERRLEN] = "";
    mq_opts_t o = { .port = port_open, .clean = 1, .keepalive = 5 };
    mq_client_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(mq_connect(&c, &o, NULL, err), KIT_OK);
    int why = -1;
    CU_ASSERT_PTR_NULL(mq_wait_message(c, NULL, 7000, &why));
    CU_ASSERT_EQUAL(why, KIT_ETIMEOUT);
    CU_ASSERT(mq_is_connected(c));

    char *want = kit_strdup_printf("Received PINGREQ from %s", mq_id(c));
    char *path = kit_strdup_printf("%s/broker.log", dir);
    int seen = 0;
    for (int i = 0; i < 20 && !seen; i++) {
        char *log = kit_read_file(path, NULL, NULL);
        seen = log && strstr(log, want);
        free(log);
        if (!seen) mq_pump(100);
    }
    CU_ASSERT(seen);
    free(want);
    free(path);
    mq_free(c);
}

static void TEST_interrupt(void)
{
    mq_client_t *c = client(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    cleanup_init();
    raise(SIGINT);
    int why = -1;
    int64_t t0 = kit_now_ms();
    CU_ASSERT_PTR_NULL(mq_wait_message(c, NULL, 5000, &why));
    CU_ASSERT_EQUAL(why, KIT_EINTR);
    CU_ASSERT(kit_now_ms() - t0 < 4000);
    char err[KIT_ERRLEN];
    CU_ASSERT_EQUAL(mq_publish(c, "int/x", "x", 1, 1, 0, 5000, NULL, err), KIT_EINTR);
    CU_ASSERT_EQUAL(mq_pump(1000), KIT_EINTR);
    cleanup_clear_interrupt();
    CU_ASSERT(mq_is_connected(c));
    mq_free(c);
}

/* ---- TLS ------------------------------------------------------------------ */

static char tdir[512];
static pid_t tls_pid;
/* TLS with server.crt; TLS with otherhost.crt (a name that is not ours);
 * TLS wanting a client certificate; plain; TLS with expired.crt. */
static int p_tls, p_otherhost, p_mutual, p_plain, p_expired;

static char *tpath(const char *name)
{
    return kit_strdup_printf("%s/%s", tdir, name);
}

static int tls_suite_clean(void);

static int tls_suite_init(void)
{
    char err[KIT_ERRLEN];
    if (mq_init() != KIT_OK) return -1;
    if (kit_mkdtemp(tdir, sizeof tdir, "mqlab-mqtt-tls-test", err) != KIT_OK) return -1;
    if (tls_pki_ensure(tdir, NULL, NULL, err) != KIT_OK) {
        fprintf(stderr, "mqtt-tls: cannot make the PKI: %s\n", err);
        tls_suite_clean();
        return -1;
    }
    int *ports[] = { &p_tls, &p_otherhost, &p_mutual, &p_plain, &p_expired };
    for (int i = 0; i < 5; i++) {
        /* Distinct ports: kit_free_port may hand out one twice. */
        for (int tries = 0; tries < 20; tries++) {
            int p = kit_free_port(NULL), dup = 0;
            for (int j = 0; j < i; j++) dup |= *ports[j] == p;
            if (p > 0 && !dup) { *ports[i] = p; break; }
        }
        if (!*ports[i]) { tls_suite_clean(); return -1; }
    }
    struct passwd *pw = getpwuid(geteuid());
    char *conf = kit_strdup_printf(
        "per_listener_settings false\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "user %s\n"
        "log_dest file %s/broker.log\n"
        "log_type all\n"
        "listener %d 127.0.0.1\n"
        "cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\ntls_version tlsv1.2\n"
        "listener %d 127.0.0.1\n"
        "cafile %s/ca.crt\ncertfile %s/otherhost.crt\nkeyfile %s/otherhost.key\n"
        "listener %d 127.0.0.1\n"
        "cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\nrequire_certificate true\n"
        "listener %d 127.0.0.1\n"
        "listener %d 127.0.0.1\n"
        "cafile %s/ca.crt\ncertfile %s/expired.crt\nkeyfile %s/expired.key\n",
        pw ? pw->pw_name : "root", tdir,
        p_tls, tdir, tdir, tdir,
        p_otherhost, tdir, tdir, tdir,
        p_mutual, tdir, tdir, tdir,
        p_plain,
        p_expired, tdir, tdir, tdir);
    char *path = tpath("mosquitto.conf");
    int rc = kit_write_file_atomic(path, conf, strlen(conf), 0600, err);
    free(conf);
    if (rc == KIT_OK) tls_pid = launch(path);
    free(path);
    if (rc != KIT_OK || tls_pid <= 0) { tls_pid = 0; tls_suite_clean(); return -1; }
    for (int i = 0; i < 5; i++) {
        if (kit_wait_port(*ports[i], 5000) != KIT_OK) {
            fprintf(stderr, "mqtt-tls: the TLS broker did not start (see %s/broker.log)\n", tdir);
            tls_suite_clean();
            return -1;
        }
    }
    return 0;
}

static int tls_suite_clean(void)
{
    stop(&tls_pid);
    if (tdir[0]) kit_rmdtemp(tdir);
    tdir[0] = '\0';
    return 0;
}

/* Connect with TLS options; returns mq_connect's code, the client (or
 * NULL) in *out, and the message in err. */
static int tls_connect(mq_client_t **out, const char *host, int port, const char *ca,
                       const char *cert, const char *key, const char *version, int timeout_ms,
                       char *err)
{
    char *cafile = ca ? tpath(ca) : NULL;
    char *certfile = cert ? tpath(cert) : NULL;
    char *keyfile = key ? tpath(key) : NULL;
    mq_opts_t o = { .host = host, .port = port, .clean = 1, .cafile = cafile, .certfile = certfile,
                    .keyfile = keyfile, .tls_version = version, .timeout_ms = timeout_ms };
    int rc = mq_connect(out, &o, NULL, err);
    free(cafile);
    free(certfile);
    free(keyfile);
    return rc;
}

static void TEST_tls_connect(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = NULL, *d = NULL;
    /* The certificate names both localhost and 127.0.0.1. */
    CU_ASSERT_EQUAL(tls_connect(&c, "localhost", p_tls, "ca.crt", NULL, NULL, NULL, 0, err), KIT_OK);
    if (!c) fprintf(stderr, "tls connect (localhost): %s\n", err);
    CU_ASSERT_EQUAL(tls_connect(&d, "127.0.0.1", p_tls, "ca.crt", NULL, NULL, "tlsv1.2", 0, err), KIT_OK);
    if (!d) fprintf(stderr, "tls connect (127.0.0.1): %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);

    /* The link carries MQTT both ways. */
    int granted = -1;
    CU_ASSERT_EQUAL(mq_subscribe(c, "tls/#", 1, 5000, &granted, err), KIT_OK);
    CU_ASSERT_EQUAL(granted, 1);
    CU_ASSERT_EQUAL(mq_publish(d, "tls/a", "over tls", 8, 1, 0, 5000, NULL, err), KIT_OK);
    mq_message_t *m = mq_wait_message(c, "tls/#", 5000, NULL);
    CU_ASSERT_PTR_NOT_NULL(m);
    if (m) CU_ASSERT_STRING_EQUAL(m->payload, "over tls");
    mq_message_free(m);
    CU_ASSERT_EQUAL(mq_disconnect(c), KIT_OK);
    mq_free(c);
    mq_free(d);

    /* A client certificate where one is required. */
    c = NULL;
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_mutual, "ca.crt", "client.crt", "client.key", NULL, 0, err), KIT_OK);
    if (!c) fprintf(stderr, "tls connect (client certificate): %s\n", err);
    CU_ASSERT(mq_is_connected(c));
    mq_free(c);
}

/* A CA that did not sign the broker's certificate: refused at once, and
 * the message says it is the certificate. */
static void TEST_tls_wrong_ca(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_tls, "impostor-ca.crt", NULL, NULL, NULL, 5000, err), KIT_ERR);
    CU_ASSERT(kit_now_ms() - t0 < 4500);   /* an answer, not the deadline */
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS handshake"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "certificate verify failed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not signed by the CA in cafile"));
}

/* Signed by the right CA, for the right name, but out of date. */
static void TEST_tls_expired(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;
    CU_ASSERT_EQUAL(tls_connect(&c, "localhost", p_expired, "ca.crt", NULL, NULL, NULL, 5000, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "expired"));
}

/* Signed by the right CA, but for another host name. */
static void TEST_tls_wrong_host(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;
    CU_ASSERT_EQUAL(tls_connect(&c, "localhost", p_otherhost, "ca.crt", NULL, NULL, NULL, 5000, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "host name"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "localhost"));
}

/* The broker wants a client certificate and gets none. */
static void TEST_tls_no_client_cert(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;
    int rc = tls_connect(&c, NULL, p_mutual, "ca.crt", NULL, NULL, NULL, 5000, err);
    /* The broker's alert, or (when our CONNECT meets the closed socket
     * first) just the close: either way the message says why. */
    CU_ASSERT(rc == KIT_ERR || rc == KIT_ENOTCONN);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS handshake"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "certificate"));
}

/* TLS to a plain listener, and plain to a TLS one. */
static void TEST_tls_plain_mixups(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_plain, "ca.crt", NULL, NULL, NULL, 5000, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "plain MQTT listener"));

    mq_opts_t o = { .port = p_tls, .clean = 1, .timeout_ms = 5000 };
    c = (mq_client_t *)&err;
    int rc = mq_connect(&c, &o, NULL, err);
    CU_ASSERT(rc == KIT_ENOTCONN || rc == KIT_ETIMEOUT);
    CU_ASSERT_PTR_NULL(c);
}

/* tls_version is the oldest version the client accepts (as in
 * libmosquitto). Mosquitto cannot be held to TLS 1.2, `openssl s_server
 * -tls1_2` can: a client that wants 1.3 fails the handshake there; one
 * that accepts 1.2 completes it and then waits for a CONNACK that a
 * non-MQTT server never sends. */
static void TEST_tls_version(void)
{
    int port = kit_free_port(NULL);
    CU_ASSERT_FATAL(port > 0);
    char *cert = tpath("server.crt"), *key = tpath("server.key");
    char accept[32];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    /* s_server ends a connection when its stdin ends: give it a pipe
     * that stays open until we stop it. */
    int in[2];
    CU_ASSERT_FATAL(pipe(in) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        int null = open("/dev/null", O_RDWR);
        dup2(in[0], 0);
        close(in[1]);
        if (null >= 0) { dup2(null, 1); dup2(null, 2); }
        execlp("openssl", "openssl", "s_server", "-quiet", "-accept", accept, "-tls1_2",
               "-cert", cert, "-key", key, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    cleanup_track_pgid(pid);
    close(in[0]);
    free(cert);
    free(key);
    CU_ASSERT_FATAL(kit_wait_port(port, 5000) == KIT_OK);

    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;
    CU_ASSERT_EQUAL(tls_connect(&c, "localhost", port, "ca.crt", NULL, NULL, "tlsv1.3", 5000, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS handshake"));
    c = (mq_client_t *)&err;
    CU_ASSERT_EQUAL(tls_connect(&c, "localhost", port, "ca.crt", NULL, NULL, "tlsv1.2", 500, err), KIT_ETIMEOUT);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no CONNACK"));
    stop(&pid);
    close(in[1]);
}

/* A listener that accepts TCP and never says a word: the handshake is
 * cut by the deadline instead of blocking the kit. */
static void TEST_tls_silent(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(fd, 4) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &al) == 0);

    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, ntohs(a.sin_port), "ca.crt", NULL, NULL, NULL, 300, err), KIT_ETIMEOUT);
    CU_ASSERT(kit_now_ms() - t0 < 10000);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS handshake"));
    close(fd);
}

static void TEST_tls_options(void)
{
    char err[KIT_ERRLEN] = "";
    mq_client_t *c = (mq_client_t *)&err;
    /* certfile without keyfile, and options without cafile */
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_tls, "ca.crt", "client.crt", NULL, NULL, 0, err), KIT_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "keyfile"));
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_tls, NULL, NULL, NULL, "tlsv1.2", 0, err), KIT_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cafile"));
    /* an unknown version */
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_tls, "ca.crt", NULL, NULL, "sslv3", 0, err), KIT_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "sslv3"));
    /* files that are not there */
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_tls, "missing-ca.crt", NULL, NULL, NULL, 0, err), KIT_ENOENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing-ca.crt"));
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_tls, "ca.crt", "client.crt", "nokey.key", NULL, 0, err), KIT_ENOENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "keyfile"));
    CU_ASSERT_PTR_NULL(c);
    /* A key that does not belong to the certificate: the handshake setup
     * fails, with a message, before anything is sent. */
    CU_ASSERT_EQUAL(tls_connect(&c, NULL, p_mutual, "ca.crt", "client.crt", "server.key", NULL, 5000, err), KIT_ERR);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT(err[0] != '\0');
}

int init_mqtt_tests(void)
{
    CU_pSuite s = CU_add_suite("mqtt", suite_init, suite_clean);
    if (!s) return 1;
    if (!CU_add_test(s, "connect", TEST_connect)
        || !CU_add_test(s, "connect refused", TEST_connect_refused)
        || !CU_add_test(s, "connect timeout", TEST_connect_timeout)
        || !CU_add_test(s, "publish/subscribe round trip", TEST_roundtrip)
        || !CU_add_test(s, "manual acknowledgement", TEST_manual_ack)
        || !CU_add_test(s, "retained", TEST_retained)
        || !CU_add_test(s, "wait with a filter", TEST_wait_filter)
        || !CU_add_test(s, "wait timeout", TEST_wait_timeout)
        || !CU_add_test(s, "will on kill, not on disconnect", TEST_will)
        || !CU_add_test(s, "invalid topics and filters", TEST_invalid)
        || !CU_add_test(s, "interleaved clients", TEST_interleaved)
        || !CU_add_test(s, "lost connection", TEST_lost)
        || !CU_add_test(s, "keepalive", TEST_keepalive)
        || !CU_add_test(s, "interrupt", TEST_interrupt)
        || !CU_add_test(s, "unix socket", TEST_unix_socket)
        || !CU_add_test(s, "unix socket errors", TEST_unix_socket_errors))
        return 1;

    CU_pSuite t = CU_add_suite("mqtt-tls", tls_suite_init, tls_suite_clean);
    if (!t) return 1;
    if (!CU_add_test(t, "connect over TLS", TEST_tls_connect)
        || !CU_add_test(t, "wrong CA", TEST_tls_wrong_ca)
        || !CU_add_test(t, "certificate for another host", TEST_tls_wrong_host)
        || !CU_add_test(t, "expired certificate", TEST_tls_expired)
        || !CU_add_test(t, "client certificate required", TEST_tls_no_client_cert)
        || !CU_add_test(t, "TLS and plain mixed up", TEST_tls_plain_mixups)
        || !CU_add_test(t, "TLS version", TEST_tls_version)
        || !CU_add_test(t, "silent listener", TEST_tls_silent)
        || !CU_add_test(t, "options", TEST_tls_options))
        return 1;
    return 0;
}
