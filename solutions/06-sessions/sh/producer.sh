#!/bin/sh
# Lab 06 reference producer in shell. mosquitto_pub -l keeps one
# connection and publishes each line of its standard input as a message:
#   -i MQTT_CLIENT_ID -c   the same client id, and clean session 0
#   --will-*               a retained Last Will `offline`, QoS 1, on the
#                          device's estado topic, in every CONNECT
#   -q 1                   QoS 1: libmosquitto keeps each reading until its
#                          PUBACK and sends it again after a reconnection
# When the broker goes away, mosquitto_pub reconnects by itself, waiting
# between attempts, and meanwhile our lines wait in the pipe. At the end of
# its input it waits for the last PUBACK, disconnects and exits 0.
state="${MQTT_TOPIC%/*}/estado"
pause=$(awk -v ms="$LAB_INTERVAL_MS" 'BEGIN { printf "%.3f", ms / 1000 }')
i=0
while [ "$i" -lt "$LAB_COUNT" ]; do
  i=$((i + 1))
  # ts: milliseconds since 1970 (GNU date); the id is stable for each reading.
  printf '{"id": "%s-%04d", "ts": %s, "v": 21.%d}\n' "$MQTT_CLIENT_ID" "$i" "$(date +%s%3N)" "$((i % 10))"
  sleep "$pause"
done | mosquitto_pub -h "$MQTT_HOST" -p "$MQTT_PORT" -i "$MQTT_CLIENT_ID" -c -q 1 -k 10 \
  --will-topic "$state" --will-payload offline --will-qos 1 --will-retain \
  -t "$MQTT_TOPIC" -l
