/* Lab 05 reference solution in C (libmosquitto): a device that says whether
 * it is alive.
 *
 * - The Last Will (`offline`, retained, QoS 1) is set before connecting, so
 *   it travels in every CONNECT: if the device dies without a word (power
 *   cut, SIGKILL, a cable pulled) the broker publishes it for us.
 * - `online`, retained, is published in the connect callback, which runs on
 *   every connection: after a cut the broker has just published the will,
 *   and only a new `online` puts the state right.
 * - Readings go to MQTT_TOPIC/temp, not retained, every LAB_INTERVAL_MS;
 *   their ids hold the start time, so they stay unique across restarts.
 * - libmosquitto's thread (mosquitto_loop_start) reconnects by itself,
 *   waiting 1 s, 2 s, 4 s... up to 8 s between attempts.
 * - SIGTERM only sets a flag. The main thread then publishes `offline`
 *   (a clean DISCONNECT discards the will), waits for its PUBACK, sends
 *   DISCONNECT and exits 0.
 * - keepalive 20: the broker takes us for dead after 1.5 x 20 = 30 s.
 *
 * Built by the kit with: cc -O2 -Wall presence.c -lmosquitto */
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEEPALIVE 20

static volatile sig_atomic_t stopping;
static volatile int offline_mid = -1, offline_acked;
static char state_topic[512], temp_topic[512];

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "presence: %s is not set\n", name);
        exit(2);
    }
    return v;
}

static void on_term(int sig) { (void)sig; stopping = 1; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(double s)
{
    if (s <= 0) return;
    struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
    nanosleep(&ts, NULL);       /* SIGTERM cuts it short: fine */
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)obj;
    if (rc != 0) {
        fprintf(stderr, "presence: connection refused: %s\n", mosquitto_connack_string(rc));
        return;
    }
    /* Every (re)connection: the will may have left `offline` behind. */
    mosquitto_publish(m, NULL, state_topic, 6, "online", 1, true);
    fprintf(stderr, "presence: connected, online\n");
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m; (void)obj;
    if (mid == offline_mid) offline_acked = 1;
}

int main(void)
{
    const char *host = env("MQTT_HOST");
    int port = atoi(env("MQTT_PORT"));
    const char *id = env("MQTT_CLIENT_ID");
    const char *root = env("MQTT_TOPIC");
    const char *iv = getenv("LAB_INTERVAL_MS");
    double interval = (iv && atoi(iv) > 0 ? atoi(iv) : 1000) / 1000.0;
    snprintf(state_topic, sizeof state_topic, "%s/estado", root);
    snprintf(temp_topic, sizeof temp_topic, "%s/temp", root);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(id, false, NULL);
    if (!m) { fprintf(stderr, "presence: mosquitto_new failed\n"); return 1; }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_will_set(m, state_topic, 7, "offline", 1, true);
    mosquitto_reconnect_delay_set(m, 1, 8, true);
    int rc = mosquitto_connect(m, host, port, KEEPALIVE);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "presence: cannot connect to %s:%d: %s\n", host, port, mosquitto_strerror(rc));
        return 1;
    }
    mosquitto_loop_start(m);

    long long boot = wall_ms();
    int n = 0;
    double next_due = now_s();
    while (!stopping) {
        double t = now_s();
        if (t >= next_due) {
            char payload[256];
            n++;
            int len = snprintf(payload, sizeof payload, "{\"id\": \"%s-%lld-%05d\", \"ts\": %lld, \"v\": %.2f}",
                               id, boot, n, wall_ms(), 21.0 + (rand() % 300 - 150) / 100.0);
            /* While the link is down this is queued, or lost: a reading is a
             * moment, and the next one will come. */
            mosquitto_publish(m, NULL, temp_topic, len, payload, 1, false);
            next_due += interval;
        } else {
            nap(next_due - t < 0.05 ? next_due - t : 0.05);
        }
    }

    /* Goodbye: our own `offline`, since the clean DISCONNECT below makes
     * the broker discard the will. */
    int mid = 0;
    if (mosquitto_publish(m, &mid, state_topic, 7, "offline", 1, true) == MOSQ_ERR_SUCCESS) {
        offline_mid = mid;
        double deadline = now_s() + 3;
        while (!offline_acked && now_s() < deadline) nap(0.02);
        if (!offline_acked) fprintf(stderr, "presence: offline was not acknowledged in time\n");
    }
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    fprintf(stderr, "presence: offline, bye\n");
    return 0;
}
