/* Known-bad lab 01 program: a missing semicolon, so it does not compile. */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *topic = getenv("MQTT_TOPIC")
    struct mosquitto *mosq;

    mosquitto_lib_init();
    mosq = mosquitto_new(getenv("MQTT_CLIENT_ID"), true, NULL);
    if (!mosq) return 1;
    if (mosquitto_connect(mosq, getenv("MQTT_HOST"), atoi(getenv("MQTT_PORT")), 30) != MOSQ_ERR_SUCCESS) return 1;
    mosquitto_subscribe(mosq, NULL, topic, 1);
    mosquitto_loop_forever(mosq, -1, 1);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return 0;
}
