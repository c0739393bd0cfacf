/*
 * Lab 01 reference solution in C (libmosquitto): connect with the kit's
 * client id, subscribe, publish "hola" once the SUBACK arrives, print our
 * own message back, then leave with a DISCONNECT and exit code 0.
 *
 * The kit builds it with: cc -O2 -Wall hello.c -lmosquitto
 */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>

struct state {
    const char *topic;
    int got;        /* our own message arrived and was printed */
    int acked;      /* the PUBACK for our "hola" arrived */
    int failed;     /* something went wrong inside a callback */
};

/* Leave only when both our message and the PUBACK for it are in. With
 * libmosquitto 2.0.11, a PUBACK that arrives after mosquitto_disconnect()
 * makes the library drop the connection without sending the DISCONNECT. */
static void maybe_leave(struct mosquitto *mosq, const struct state *st)
{
    if (st->got && st->acked) mosquitto_disconnect(mosq);
}

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "hello: %s is not set (run me with mqlab check)\n", name);
        exit(2);
    }
    return v;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    struct state *st = obj;
    if (rc != 0) {
        fprintf(stderr, "hello: connection refused: %s\n", mosquitto_connack_string(rc));
        st->failed = 1;
        mosquitto_disconnect(mosq);
        return;
    }
    /* Subscribe only once the CONNACK has accepted us. */
    rc = mosquitto_subscribe(mosq, NULL, st->topic, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "hello: subscribe: %s\n", mosquitto_strerror(rc));
        st->failed = 1;
        mosquitto_disconnect(mosq);
    }
}

/* The SUBACK: only now is the broker sure to send our own message back. */
static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted)
{
    struct state *st = obj;
    (void)mid;
    if (qos_count < 1 || granted[0] > 2) {
        fprintf(stderr, "hello: the broker refused the subscription to %s\n", st->topic);
        st->failed = 1;
        mosquitto_disconnect(mosq);
        return;
    }
    int rc = mosquitto_publish(mosq, NULL, st->topic, 4, "hola", 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "hello: publish: %s\n", mosquitto_strerror(rc));
        st->failed = 1;
        mosquitto_disconnect(mosq);
    }
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    struct state *st = obj;
    (void)mid;          /* we publish only once */
    st->acked = 1;
    maybe_leave(mosq, st);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    struct state *st = obj;
    /* The payload is not NUL-terminated: print it with its length. */
    printf("%s %.*s\n", msg->topic, msg->payloadlen, (const char *)msg->payload);
    /* Flush before leaving: stdout is a pipe here, so fully buffered. */
    fflush(stdout);
    st->got = 1;
    maybe_leave(mosq, st);   /* its DISCONNECT makes mosquitto_loop_forever return */
}

int main(void)
{
    struct state st = { need_env("MQTT_TOPIC"), 0, 0, 0 };
    const char *host = need_env("MQTT_HOST");
    const char *id = need_env("MQTT_CLIENT_ID");
    int port = atoi(need_env("MQTT_PORT"));
    struct mosquitto *mosq = NULL;
    int rc, status = 1;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "hello: bad MQTT_PORT\n");
        return 2;
    }
    mosquitto_lib_init();
    mosq = mosquitto_new(id, true, &st);
    if (!mosq) {
        perror("hello: mosquitto_new");
        goto cleanup;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_message_callback_set(mosq, on_message);

    rc = mosquitto_connect(mosq, host, port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "hello: cannot connect to %s:%d: %s\n", host, port, mosquitto_strerror(rc));
        goto cleanup;
    }
    /* Returns MOSQ_ERR_SUCCESS once our own mosquitto_disconnect() is done;
     * anything else is a lost connection. */
    rc = mosquitto_loop_forever(mosq, -1, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "hello: connection lost: %s\n", mosquitto_strerror(rc));
        goto cleanup;
    }
    status = st.got && !st.failed ? 0 : 1;

cleanup:
    if (mosq) mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return status;
}
