#!/bin/sh
# Lab 06 reference collector in shell: mosquitto_sub does it all.
#   -i MQTT_CLIENT_ID -c   the same client id, and clean session 0: the
#                          broker keeps our session (subscription and queue)
#   -q 1                   a QoS 1 subscription: the broker queues for an
#                          absent client only what it delivers at QoS 1 or 2
#   -F '%t %p'             one line `TOPIC PAYLOAD` per message, flushed
# exec: mosquitto_sub itself gets the kit's SIGTERM, and answers it with a
# DISCONNECT and exit code 0 (a DISCONNECT does not end a persistent session).
exec mosquitto_sub -h "$MQTT_HOST" -p "$MQTT_PORT" -i "$MQTT_CLIENT_ID" -c -q 1 -k 30 \
  -t "$MQTT_TOPIC" -F '%t %p'
