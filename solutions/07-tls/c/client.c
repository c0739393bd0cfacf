/*
 * Lab 07 reference solution in C (libmosquitto): one reading over TLS,
 * trusting only the CA in MQTT_CAFILE.
 *
 * mosquitto_tls_set() with a cafile turns TLS on and makes that file the
 * only trust anchor; peer verification is on (SSL_VERIFY_PEER), and
 * libmosquitto checks that the certificate names the host we dialled
 * unless mosquitto_tls_insecure_set(mosq, true) is called, which we never
 * do. A certificate that fails either check aborts the handshake inside
 * mosquitto_connect(): no CONNECT leaves the machine, and we exit 2.
 *
 * The kit builds it with: cc -O2 -Wall client.c -lmosquitto
 */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_S 5

struct state {
    int connack;    /* -1 until the CONNACK arrives, then its code */
    int acked;      /* the PUBACK of our reading arrived */
};

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "client: %s is not set (run me with mqlab check)\n", name);
        exit(2);
    }
    return v;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    ((struct state *)obj)->connack = rc;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    (void)mid;          /* we publish only once */
    ((struct state *)obj)->acked = 1;
}

/* libmosquitto reports OpenSSL's reason for a failed handshake here
 * ("certificate verify failed", ...): pass it on to stderr. */
static void on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
    (void)mosq;
    (void)obj;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) fprintf(stderr, "client: %s\n", str);
}

/* Service the connection until *flag changes from `from`, at most WAIT_S.
 * Returns MOSQ_ERR_SUCCESS, MOSQ_ERR_TLS when the handshake failed (the
 * socket is non-blocking, so a refused certificate can show up here
 * rather than in mosquitto_connect), another MOSQ_ERR_*, or -1 on time. */
static int loop_until(struct mosquitto *mosq, const int *flag, int from)
{
    time_t end = time(NULL) + WAIT_S;
    while (*flag == from) {
        if (time(NULL) > end) return -1;
        int rc = mosquitto_loop(mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS) return rc;
    }
    return MOSQ_ERR_SUCCESS;
}

/* Why we give up, and the exit status that goes with it. */
static int give_up(const char *host, int port, int rc, const char *waiting_for)
{
    if (rc == MOSQ_ERR_TLS) {
        fprintf(stderr, "client: refusing to talk to %s:%d: the TLS handshake failed "
                "(the certificate did not verify)\n", host, port);
        return 2;
    }
    if (rc == -1) fprintf(stderr, "client: no %s within %d s\n", waiting_for, WAIT_S);
    else fprintf(stderr, "client: connection to %s:%d lost: %s\n", host, port, mosquitto_strerror(rc));
    return 1;
}

int main(void)
{
    const char *host = need_env("MQTT_HOST");
    const char *cafile = need_env("MQTT_CAFILE");
    const char *id = need_env("MQTT_CLIENT_ID");
    const char *topic = need_env("MQTT_TOPIC");
    int port = atoi(need_env("MQTT_PORT"));
    struct state st = { -1, 0 };
    struct mosquitto *mosq = NULL;
    char payload[160];
    int rc, status = 1;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "client: bad MQTT_PORT\n");
        return 2;
    }
    mosquitto_lib_init();
    mosq = mosquitto_new(id, true, &st);
    if (!mosq) {
        perror("client: mosquitto_new");
        goto cleanup;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_log_callback_set(mosq, on_log);

    rc = mosquitto_tls_set(mosq, cafile, NULL, NULL, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_opts_set(mosq, 1, "tlsv1.2", NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "client: TLS setup with %s: %s\n", cafile, mosquitto_strerror(rc));
        goto cleanup;
    }

    rc = mosquitto_connect(mosq, host, port, 30);
    if (rc == MOSQ_ERR_SUCCESS) rc = loop_until(mosq, &st.connack, -1);
    if (rc != MOSQ_ERR_SUCCESS) {
        status = give_up(host, port, rc, "CONNACK");
        goto cleanup;
    }
    if (st.connack != 0) {
        fprintf(stderr, "client: connection refused: %s\n", mosquitto_connack_string(st.connack));
        goto cleanup;
    }

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long ts = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    snprintf(payload, sizeof payload, "{\"id\": \"%s-0001\", \"ts\": %lld, \"v\": %.2f}", id, ts, 21.0 + (ts % 300) / 100.0);
    rc = mosquitto_publish(mosq, NULL, topic, (int)strlen(payload), payload, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "client: publish: %s\n", mosquitto_strerror(rc));
        goto cleanup;
    }
    rc = loop_until(mosq, &st.acked, 0);
    if (rc != MOSQ_ERR_SUCCESS) {
        status = give_up(host, port, rc, "PUBACK");
        goto cleanup;
    }
    /* The PUBACK is in, so the DISCONNECT goes out on the next loop. */
    mosquitto_disconnect(mosq);
    mosquitto_loop(mosq, 100, 1);
    fprintf(stderr, "client: published %s-0001 on %s over TLS\n", id, topic);
    status = 0;

cleanup:
    if (mosq) mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return status;
}
