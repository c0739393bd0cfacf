#!/bin/sh
# Goes around the proxy: every TCP port listening on this loopback other
# than MQTT_PORT may be the broker itself, where the kit would not see the
# packets. Then tries to take the proxy's own port. What succeeds is said
# on stderr, which the verdict quotes, since the program exits 1 without
# ever talking to the proxy.
ports=$(awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u)
for hex in $ports; do
  port=$(printf '%d' "0x$hex")
  [ "$port" = "$MQTT_PORT" ] && continue
  if timeout 3 mosquitto_pub -h 127.0.0.1 -p "$port" -i "$MQTT_CLIENT_ID" -t "$MQTT_TOPIC" -m hola -q 1 2>/dev/null; then
    echo "DETOUR: reached a broker directly on port $port" >&2
  fi
done
if /usr/bin/python3 -c "import socket, os; s = socket.socket(); s.bind(('127.0.0.1', int(os.environ['MQTT_PORT'])))" 2>/dev/null; then
  echo "DETOUR: bound the proxy's port $MQTT_PORT" >&2
fi
echo "looked at ports: $ports" >&2
exit 1
