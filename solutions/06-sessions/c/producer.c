/* Lab 06 reference producer in C (libmosquitto): LAB_COUNT readings that
 * survive a broker restart.
 *
 * - A stable client id and clean session false: after a reconnection the
 *   broker finds our session again (on disk, so even across its restart).
 * - A Last Will in the CONNECT: `offline`, retained, QoS 1, on the
 *   device's `estado` topic. We publish `online` there on every connection,
 *   and `offline` ourselves before the clean DISCONNECT (which discards the
 *   will).
 * - QoS 1 readings: libmosquitto keeps each one until its PUBACK, queues
 *   what is published while the broker is away, and sends again (DUP=1)
 *   what was not acknowledged once it is back. Each reading carries its own
 *   id, the same in every re-send, so a duplicate does no harm.
 * - mosquitto_loop_start: its thread reconnects by itself, waiting 1 s,
 *   2 s, 4 s... (mosquitto_reconnect_delay_set), never hammering a broker
 *   that is restarting.
 * - We exit 0 only once every reading has its PUBACK (counted in the
 *   publish callback).
 *
 * Built by the kit with: cc -O2 -Wall producer.c -lmosquitto */
#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char state_topic[512];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char acked[65536];   /* acked[mid]: that message has its PUBACK */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "producer: %s is not set\n", name);
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
    nanosleep(&ts, NULL);
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)obj;
    if (rc != 0) {
        fprintf(stderr, "producer: connection refused: %s\n", mosquitto_connack_string(rc));
        return;
    }
    mosquitto_publish(m, NULL, state_topic, 6, "online", 1, true);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m; (void)obj;
    pthread_mutex_lock(&lock);
    acked[mid & 0xffff] = 1;
    pthread_mutex_unlock(&lock);
}

int main(void)
{
    const char *host = env("MQTT_HOST");
    int port = atoi(env("MQTT_PORT"));
    const char *id = env("MQTT_CLIENT_ID");
    const char *topic = env("MQTT_TOPIC");
    int count = atoi(env("LAB_COUNT"));
    double interval = atoi(env("LAB_INTERVAL_MS")) / 1000.0;
    if (count <= 0) { fprintf(stderr, "producer: LAB_COUNT must be a positive number\n"); return 2; }

    /* acme/v1/planta-1/norte/sensor-07/temp -> acme/v1/planta-1/norte/sensor-07/estado */
    const char *slash = strrchr(topic, '/');
    snprintf(state_topic, sizeof state_topic, "%.*s/estado", (int)(slash ? slash - topic : 0), topic);

    int *mids = calloc((size_t)count, sizeof *mids);

    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(id, false, NULL);
    if (!m) { fprintf(stderr, "producer: mosquitto_new failed\n"); return 1; }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_will_set(m, state_topic, 7, "offline", 1, true);
    mosquitto_reconnect_delay_set(m, 1, 30, true);
    int rc = mosquitto_connect(m, host, port, 10);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "producer: cannot connect to %s:%d: %s\n", host, port, mosquitto_strerror(rc));
        return 1;
    }
    mosquitto_loop_start(m);

    double start = now_s();
    for (int i = 0; i < count; i++) {
        char payload[256];
        int len = snprintf(payload, sizeof payload, "{\"id\": \"%s-%04d\", \"ts\": %lld, \"v\": %.2f}",
                           id, i + 1, wall_ms(), 21.0 + (rand() % 300 - 150) / 100.0);
        rc = mosquitto_publish(m, &mids[i], topic, len, payload, 1, false);
        if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
            fprintf(stderr, "producer: reading %d: %s\n", i + 1, mosquitto_strerror(rc));
        /* Keep the schedule, whatever happens to the broker meanwhile. */
        nap(start + (i + 1) * interval - now_s());
    }

    double deadline = now_s() + 20;
    int missing = count;
    while (now_s() < deadline) {
        missing = 0;
        pthread_mutex_lock(&lock);
        for (int i = 0; i < count; i++) missing += !acked[mids[i] & 0xffff];
        pthread_mutex_unlock(&lock);
        if (!missing) break;
        nap(0.05);
    }
    if (missing) {
        fprintf(stderr, "producer: %d readings still unacknowledged; giving up\n", missing);
        mosquitto_loop_stop(m, true);
        return 1;
    }

    /* Leaving on purpose: say so, since the DISCONNECT discards the will. */
    int bye = 0, bye_acked = 0;
    if (mosquitto_publish(m, &bye, state_topic, 7, "offline", 1, true) == MOSQ_ERR_SUCCESS) {
        for (deadline = now_s() + 2; !bye_acked && now_s() < deadline; nap(0.02)) {
            pthread_mutex_lock(&lock);
            bye_acked = acked[bye & 0xffff];
            pthread_mutex_unlock(&lock);
        }
    }
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    fprintf(stderr, "producer: all %d readings acknowledged\n", count);
    return 0;
}
