/*
 * Lab 03 reference solution in C (libmosquitto): LAB_COUNT readings at
 * QoS 1 through a link that drops packets and is cut several times.
 *
 * - libmosquitto's network thread (mosquitto_loop_start) reconnects by
 *   itself after a cut, with the back-off set by
 *   mosquitto_reconnect_delay_set: it waits 1 s, then 2 s, 3 s... (at
 *   most 8 s) until a connection is accepted, and starts again at 1 s.
 * - At QoS 1 the library keeps each message until its PUBACK arrives and
 *   sends the unacknowledged ones again (DUP=1) once reconnected.
 * - mosquitto_publish() returns MOSQ_ERR_NO_CONN while the link is down,
 *   but a QoS 1 message is queued before that answer: it is not lost, and
 *   it goes out after the reconnect. So NO_CONN is not an error here.
 * - We leave once every reading has its PUBACK (counted in on_publish).
 *
 * The kit builds it with: cc -O2 -Wall sensor.c -lmosquitto
 */
#include <mosquitto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_int acked;    /* PUBACKs received; the library reports each mid once */

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "sensor: %s is not set (run me with mqlab check)\n", name);
        exit(2);
    }
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    (void)obj;
    if (rc != 0) fprintf(stderr, "sensor: connection refused: %s\n", mosquitto_connack_string(rc));
    else fprintf(stderr, "sensor: connected\n");
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    (void)obj;
    if (rc != 0) fprintf(stderr, "sensor: link lost; reconnecting with back-off\n");
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    (void)obj;
    (void)mid;
    atomic_fetch_add(&acked, 1);
}

int main(void)
{
    const char *host = need_env("MQTT_HOST");
    const char *id = need_env("MQTT_CLIENT_ID");
    const char *topic = need_env("MQTT_TOPIC");
    int port = atoi(need_env("MQTT_PORT"));
    int count = atoi(need_env("LAB_COUNT"));
    double interval = atoi(need_env("LAB_INTERVAL_MS")) / 1000.0;
    struct mosquitto *mosq = NULL;
    int rc, status = 1, looping = 0;

    if (port <= 0 || port > 65535 || count <= 0 || interval <= 0) {
        fprintf(stderr, "sensor: bad MQTT_PORT, LAB_COUNT or LAB_INTERVAL_MS\n");
        return 2;
    }
    mosquitto_lib_init();
    srand((unsigned)epoch_ms());
    /* A persistent session (clean = false), as a production sensor has. */
    mosq = mosquitto_new(id, false, NULL);
    if (!mosq) {
        perror("sensor: mosquitto_new");
        goto cleanup;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_disconnect_callback_set(mosq, on_disconnect);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_reconnect_delay_set(mosq, 1, 8, false);

    rc = mosquitto_connect(mosq, host, port, 10);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "sensor: cannot connect to %s:%d: %s\n", host, port, mosquitto_strerror(rc));
        goto cleanup;
    }
    rc = mosquitto_loop_start(mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "sensor: loop_start: %s\n", mosquitto_strerror(rc));
        goto cleanup;
    }
    looping = 1;

    double start = now_s();
    for (int i = 0; i < count; i++) {
        char payload[160];
        double v = 21.0 + (rand() % 300 - 150) / 100.0;
        /* The id is unique per reading and the same in every re-send. */
        int len = snprintf(payload, sizeof payload, "{\"id\": \"%s-%04d\", \"ts\": %lld, \"v\": %.2f}",
                           id, i + 1, epoch_ms(), v);
        if (len < 0 || (size_t)len >= sizeof payload) {
            fprintf(stderr, "sensor: the client id is too long for a payload\n");
            goto cleanup;
        }
        rc = mosquitto_publish(mosq, NULL, topic, len, payload, 1, false);
        if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
            fprintf(stderr, "sensor: publish: %s\n", mosquitto_strerror(rc));
            goto cleanup;
        }
        /* Keep the schedule whatever the link does meanwhile. */
        sleep_s(start + (i + 1) * interval - now_s());
    }

    double deadline = now_s() + 20;
    while (atomic_load(&acked) < count) {
        if (now_s() > deadline) {
            fprintf(stderr, "sensor: %d readings still unacknowledged; giving up\n", count - atomic_load(&acked));
            goto cleanup;
        }
        sleep_s(0.05);
    }
    fprintf(stderr, "sensor: all %d readings acknowledged\n", count);
    mosquitto_disconnect(mosq);
    status = 0;

cleanup:
    if (looping) mosquitto_loop_stop(mosq, status != 0);
    if (mosq) mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return status;
}
