#!/bin/sh
# Lab 07 reference solution in shell: one reading over TLS with
# mosquitto_pub, trusting only the CA in MQTT_CAFILE.
#
# With --cafile, mosquitto_pub speaks TLS, trusts that file alone (not the
# system's store) and checks that the broker's certificate names the host
# it dialled (MQTT_HOST). When either check fails the handshake is
# aborted: the CONNECT, with the client id, never leaves the machine, and
# mosquitto_pub says so on stderr and exits non-zero. Never add
# --insecure: it turns the name check off.
#
# mosquitto_pub connects, publishes at QoS 1, waits for the PUBACK, sends
# DISCONNECT and exits 0: the lab's three steps in one command.

: "${MQTT_HOST:?not set (run me with mqlab check)}"
: "${MQTT_PORT:?not set}"
: "${MQTT_CAFILE:?not set}"
: "${MQTT_CLIENT_ID:?not set}"
: "${MQTT_TOPIC:?not set}"

ts=$(date +%s%3N)                    # ms since 1970 (GNU date)
reading="{\"id\": \"$MQTT_CLIENT_ID-$ts\", \"ts\": $ts, \"v\": 21.4}"

if mosquitto_pub -h "$MQTT_HOST" -p "$MQTT_PORT" --cafile "$MQTT_CAFILE" \
                 -i "$MQTT_CLIENT_ID" -t "$MQTT_TOPIC" -q 1 -m "$reading"; then
    echo "client: published $MQTT_CLIENT_ID-$ts on $MQTT_TOPIC over TLS" >&2
else
    code=$?
    echo "client: refusing to talk to $MQTT_HOST:$MQTT_PORT: mosquitto_pub failed with code $code (the TLS error is above)" >&2
    exit 1
fi
