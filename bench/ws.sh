#!/bin/sh
# The proxy's WebSocket port against its plain port: a QoS 1 stream from
# mqtt.js in Node (one connection, a window of 20 messages in flight, as
# libmosquitto's default) through the SAME proxy in front of one broker,
# to mqtt://127.0.0.1:PLAIN and to ws://127.0.0.1:WS/mqtt, alternating,
# in one run. Prints the median messages/s of each and the ratio
# (target: ws >= 0.7 x plain). Figures only: nothing here fails on a slow
# machine, except a run that cannot deliver at all.
cd "$(dirname "$0")/.." || exit 2
MSGS=${MSGS:-20000}
ROUNDS=${ROUNDS:-5}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-bench-ws-XXXXXX")
RUN_PID=
cleanup() {
    [ -n "$RUN_PID" ] && kill -INT "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

command -v node >/dev/null || { echo "ws bench: node is missing (apt-get install nodejs)"; exit 3; }
MQTTJS=${MQLAB_MQTTJS_DIR:-build/npm/node_modules/mqtt}
[ -f "$MQTTJS/package.json" ] || { echo "ws bench: mqtt.js is missing (make deps, or set MQLAB_MQTTJS_DIR to a node_modules/mqtt folder)"; exit 3; }
MQTTJS=$(cd "$MQTTJS" && pwd)

NO_COLOR=1 ./mqlab run bench/ws_proxy.lua > "$TMP/banner" 2>&1 &
RUN_PID=$!
tries=0
while ! grep -q "^ports " "$TMP/banner" 2>/dev/null; do
    tries=$((tries + 1))
    [ $tries -gt 200 ] && { echo "ws bench: the proxy did not start:"; cat "$TMP/banner"; exit 1; }
    sleep 0.05
done
PLAIN=$(sed -n 's/^ports \([0-9]*\) \([0-9]*\)$/\1/p' "$TMP/banner")
WS=$(sed -n 's/^ports \([0-9]*\) \([0-9]*\)$/\2/p' "$TMP/banner")

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

MQLAB_MQTTJS_DIR="$MQTTJS" node bench/ws_bench.js "mqtt://127.0.0.1:$PLAIN" "ws://127.0.0.1:$WS/mqtt" \
    "$MSGS" "$ROUNDS" > "$TMP/rates" || { echo "ws bench: a stream failed"; cat "$TMP/rates"; exit 1; }
p=$(sed -n 's/^plain //p' "$TMP/rates" | median)
w=$(sed -n 's/^ws //p' "$TMP/rates" | median)
printf '%-28s %8s msg/s   (%s)\n' "mqtt.js QoS 1, plain port" "$p" "$(sed -n 's/^plain //p' "$TMP/rates" | tr '\n' ' ' | sed 's/ $//')"
printf '%-28s %8s msg/s   (%s)\n' "mqtt.js QoS 1, ws port" "$w" "$(sed -n 's/^ws //p' "$TMP/rates" | tr '\n' ' ' | sed 's/ $//')"
awk -v p="$p" -v w="$w" 'BEGIN { printf "%-28s %8.2f x   (median of '"$ROUNDS"' rounds of '"$MSGS"' messages; target >= 0.70)\n", "ws / plain", w / p }'
