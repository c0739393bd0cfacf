/* Lab 04 reference solution in C (libmosquitto): dose commands exactly once.
 *
 * QoS 2 with a persistent session (clean_session false, the stable client
 * id): after a cut, libmosquitto finishes each half-done exchange where it
 * stopped, re-sending the PUBREL rather than the PUBLISH. Its network
 * thread reconnects by itself; the program only counts completions. */
#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int connected, completed;

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)m; (void)ud;
    if (rc != 0) {
        fprintf(stderr, "connection refused: %s\n", mosquitto_connack_string(rc));
        return;
    }
    pthread_mutex_lock(&lock);
    connected = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* At QoS 2, called when the PUBCOMP arrives. */
static void on_publish(struct mosquitto *m, void *ud, int mid)
{
    (void)m; (void)ud; (void)mid;
    pthread_mutex_lock(&lock);
    completed++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set\n", name);
        exit(2);
    }
    return v;
}

int main(void)
{
    const char *topic = env("MQTT_TOPIC");
    int count = atoi(env("LAB_COUNT"));
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(env("MQTT_CLIENT_ID"), false, NULL);
    if (!m) { perror("mosquitto_new"); return 1; }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_reconnect_delay_set(m, 1, 4, false);
    int rc = mosquitto_connect(m, env("MQTT_HOST"), atoi(env("MQTT_PORT")), 20);
    if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "connect: %s\n", mosquitto_strerror(rc)); return 1; }
    mosquitto_loop_start(m);

    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (!connected && pthread_cond_timedwait(&changed, &lock, &until) == 0) {}
    int ok = connected;
    pthread_mutex_unlock(&lock);
    if (!ok) { fprintf(stderr, "no CONNACK within 10 s\n"); return 1; }

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    /* The run's own prefix keeps ids unique from one run to the next. */
    unsigned batch = (unsigned)(ms ^ ((long long)getpid() << 16));
    for (int n = 1; n <= count; n++) {
        char payload[128];
        snprintf(payload, sizeof payload, "{\"id\": \"%08x-%d\", \"ts\": %lld, \"v\": %.1f}", batch, n, ms, 2.5 * (1 + n % 3));
        /* While disconnected libmosquitto keeps the message and sends it
         * on reconnection, so only a real error stops us. */
        rc = mosquitto_publish(m, NULL, topic, (int)strlen(payload), payload, 2, false);
        if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
            fprintf(stderr, "publish %d: %s\n", n, mosquitto_strerror(rc));
            return 1;
        }
    }

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&lock);
    while (completed < count && pthread_cond_timedwait(&changed, &lock, &until) == 0) {}
    int done = completed;
    pthread_mutex_unlock(&lock);

    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    if (done < count) { fprintf(stderr, "%d of %d commands not complete\n", count - done, count); return 1; }
    return 0;
}
