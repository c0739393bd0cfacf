/* Lab 10 reference monitor in C (libmosquitto): two alarms from the
 * broker's own $SYS figures, the same rules as monitor.py.
 *
 * - It subscribes to MQTT_TOPIC ($SYS/broker/#); a bare '#' would get
 *   nothing from $SYS.
 * - Retained messages are the last value the broker reported before we
 *   subscribed, not a new report: they are skipped.
 * - ALERT clients: $SYS/broker/clients/connected falls to half or less of
 *   the highest count of the last 10 s, and by at least 10 clients. Once
 *   per drop: it fires again only after the count is back above half.
 * - ALERT backlog: $SYS/broker/store/messages/count went up in 3 reports
 *   in a row, by at least 100 in all. A report that does not go up starts
 *   the count again; once per growth.
 * - Every line is flushed at once: stdout is a pipe, and a buffered line
 *   would reach the kit only when we end.
 * - libmosquitto's thread runs the network and the callbacks; the main
 *   thread waits for SIGTERM with sigwait() and then leaves cleanly.
 *
 * Built by the kit with: cc -O2 -Wall monitor.c -lmosquitto */
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WINDOW_S 10.0     /* how far back the highest client count is taken */
#define MIN_DROP 10       /* fewer than this many gone is not a sharp fall */
#define RISES 3           /* reports in a row going up */
#define MIN_GROWTH 100    /* messages more over those reports */
#define MAX_RECENT 256

static const char *CLIENTS = "$SYS/broker/clients/connected";
static const char *STORE = "$SYS/broker/store/messages/count";
static const char *STORED = "$SYS/broker/messages/stored";

static const char *topic_filter;

/* (time, count) pairs over the last WINDOW_S. */
static struct { double t; long n; } recent[MAX_RECENT];
static int nrecent;
static int clients_alerted;

static const char *stored_topic;   /* only one of the two names is followed */
static long last_stored = -1;
static int rises;
static long growth;
static int backlog_alerted;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set\n", name);
        exit(2);
    }
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_clients(long n)
{
    double now = now_s();
    if (nrecent == MAX_RECENT) {
        memmove(recent, recent + 1, sizeof recent[0] * (MAX_RECENT - 1));
        nrecent--;
    }
    recent[nrecent].t = now;
    recent[nrecent].n = n;
    nrecent++;
    /* $SYS only speaks when the value changes, so the oldest entry kept is
     * the one still in force when the window began. */
    while (nrecent > 1 && recent[1].t <= now - WINDOW_S) {
        memmove(recent, recent + 1, sizeof recent[0] * (nrecent - 1));
        nrecent--;
    }
    long peak = 0;
    for (int i = 0; i < nrecent; i++)
        if (recent[i].n > peak) peak = recent[i].n;
    if (n * 2 <= peak && peak - n >= MIN_DROP) {
        if (!clients_alerted) {
            printf("ALERT clients %ld -> %ld connected (fell %ld in under %.0f s)\n", peak, n, peak - n, WINDOW_S);
            fflush(stdout);
            clients_alerted = 1;
        }
    } else if (n * 2 > peak) {
        clients_alerted = 0;
    }
}

static void on_stored(long n)
{
    if (last_stored >= 0 && n > last_stored) {
        rises++;
        growth += n - last_stored;
    } else {
        rises = 0;
        growth = 0;
        backlog_alerted = 0;
    }
    last_stored = n;
    if (rises >= RISES && growth >= MIN_GROWTH && !backlog_alerted) {
        printf("ALERT backlog %ld messages stored, +%ld over the last %d reports\n", n, growth, rises);
        fflush(stdout);
        backlog_alerted = 1;
    }
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)ud;
    if (rc != 0) {
        fprintf(stderr, "connection refused: %s\n", mosquitto_connack_string(rc));
        return;
    }
    mosquitto_subscribe(m, NULL, topic_filter, 0);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m; (void)ud;
    if (msg->retain || msg->payloadlen <= 0 || msg->payloadlen > 63) return;
    char buf[64];
    memcpy(buf, msg->payload, (size_t)msg->payloadlen);
    buf[msg->payloadlen] = '\0';
    char *end;
    long n = strtol(buf, &end, 10);
    if (end == buf) return;
    if (strcmp(msg->topic, CLIENTS) == 0) {
        on_clients(n);
    } else if (strcmp(msg->topic, STORE) == 0 || strcmp(msg->topic, STORED) == 0) {
        if (!stored_topic) stored_topic = strcmp(msg->topic, STORE) == 0 ? STORE : STORED;
        if (strcmp(msg->topic, stored_topic) == 0) on_stored(n);
    }
}

int main(void)
{
    const char *host = env("MQTT_HOST");
    int port = atoi(env("MQTT_PORT"));
    const char *id = env("MQTT_CLIENT_ID");
    topic_filter = getenv("MQTT_TOPIC") && *getenv("MQTT_TOPIC") ? getenv("MQTT_TOPIC") : "$SYS/broker/#";

    /* SIGTERM is taken by sigwait() below: block it before any thread
     * starts, so that libmosquitto's thread inherits the mask. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);

    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(id, true, NULL);
    if (!m) {
        perror("mosquitto_new");
        return 1;
    }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_message_callback_set(m, on_message);
    int rc = mosquitto_connect(m, host, port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "connect to %s:%d: %s\n", host, port, mosquitto_strerror(rc));
        return 1;
    }
    mosquitto_loop_start(m);

    int sig = 0;
    sigwait(&term, &sig);

    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return 0;
}
