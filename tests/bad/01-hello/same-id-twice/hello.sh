#!/bin/sh
# Known-bad lab 01 program: a subscriber and a publisher, both with
# MQTT_CLIENT_ID as the instructions say, but as two clients. The second
# CONNECT with the same client id makes the broker drop the first
# connection (a takeover), so the subscriber never gets "hola" over it.
#
# The subscriber prints its debug lines to a file; the script waits until
# the SUBACK is in before it publishes (a student would `sleep 1`), so
# the trace is the same on every run, however busy the machine.
out=/tmp/sub.out
: > "$out"
stdbuf -oL mosquitto_sub -d -h "$MQTT_HOST" -p "$MQTT_PORT" -i "$MQTT_CLIENT_ID" \
    -t "$MQTT_TOPIC" -q 1 -C 1 -v -W 5 > "$out" &
sub=$!
until grep -q 'received SUBACK' "$out"; do sleep 0.1; done
mosquitto_pub -h "$MQTT_HOST" -p "$MQTT_PORT" -i "$MQTT_CLIENT_ID" -t "$MQTT_TOPIC" -q 1 -m hola
wait "$sub"
rc=$?
grep -v '^Client ' "$out"
exit $rc
