/* Lab 06 reference collector in C (libmosquitto): a persistent session
 * keeps what arrives while we are away.
 *
 * - A stable client id (MQTT_CLIENT_ID) and clean session false: the
 *   broker keeps our session (the subscription and a queue of QoS 1
 *   messages) after we leave, and hands it back when we return.
 * - The subscription is at QoS 1: the broker queues for an absent client
 *   only what it would deliver at QoS 1 or 2. We subscribe again on every
 *   connection; it costs nothing and covers a session the broker lost.
 * - Each message is printed as `TOPIC PAYLOAD` and flushed at once.
 * - SIGTERM: DISCONNECT (a persistent session survives it) and exit 0.
 *   libmosquitto's thread runs the network and the callbacks; the main
 *   thread waits for SIGTERM with sigwait().
 *
 * Built by the kit with: cc -O2 -Wall collector.c -lmosquitto */
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *topic;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "collector: %s is not set\n", name);
        exit(2);
    }
    return v;
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)obj;
    if (rc != 0) {
        fprintf(stderr, "collector: connection refused: %s\n", mosquitto_connack_string(rc));
        return;
    }
    mosquitto_subscribe(m, NULL, topic, 1);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m; (void)obj;
    printf("%s %.*s\n", msg->topic, msg->payloadlen, msg->payload ? (const char *)msg->payload : "");
    fflush(stdout);
}

int main(void)
{
    const char *host = env("MQTT_HOST");
    int port = atoi(env("MQTT_PORT"));
    const char *id = env("MQTT_CLIENT_ID");
    topic = env("MQTT_TOPIC");

    /* Block SIGTERM before libmosquitto starts its thread, so that only
     * sigwait() below takes it. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);

    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(id, false, NULL);
    if (!m) { fprintf(stderr, "collector: mosquitto_new failed\n"); return 1; }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_reconnect_delay_set(m, 1, 8, true);
    int rc = mosquitto_connect(m, host, port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "collector: cannot connect to %s:%d: %s\n", host, port, mosquitto_strerror(rc));
        return 1;
    }
    mosquitto_loop_start(m);

    int sig;
    sigwait(&term, &sig);

    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    fprintf(stderr, "collector: stopped\n");
    return 0;
}
