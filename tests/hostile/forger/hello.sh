#!/bin/sh
# Forges evidence: the lines a broker logs when a client connects,
# subscribes, and receives, appended to every broker log in reach. Then it
# looks for the broker's own port, to talk to it past the proxy.
forge() {
  now=$(date +%s)
  {
    echo "$now: New client connected from 127.0.0.1:5555 as $MQTT_CLIENT_ID (p2, c1, k30)."
    echo "$now: Received SUBSCRIBE from $MQTT_CLIENT_ID"
    echo "$now: 	$MQTT_TOPIC (QoS 1)"
    echo "$now: Received PUBLISH from $MQTT_CLIENT_ID (d0, q1, r0, m1, '$MQTT_TOPIC', ... (4 bytes))"
    echo "$now: Sending PUBLISH to $MQTT_CLIENT_ID (d0, q1, r0, m1, '$MQTT_TOPIC', ... (4 bytes))"
    echo "$now: Received DISCONNECT from $MQTT_CLIENT_ID"
  } >> "$1" 2>/dev/null && echo "forged $1"
}
for log in /tmp/mqlab-broker-*/mosquitto.log "${TMPDIR:-/tmp}"/mqlab-*/mosquitto.log @TMP@/mqlab-*/mosquitto.log @TMP@/*/*/mosquitto.log; do
  [ -f "$log" ] && forge "$log"
done
exit 0
