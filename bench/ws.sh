#!/bin/sh
# The proxy's WebSocket port against its plain port: a QoS 1 stream from
# mqtt.js in Node (one connection, a window of 20 messages in flight, as
# libmosquitto's default) through the SAME proxy in front of one broker,
# to mqtt://127.0.0.1:PLAIN and to ws://127.0.0.1:WS/mqtt, alternating,
# in one run. mqtt.js has two ways to speak WebSockets in Node, and both
# are measured (see ws_bench.js): its Node path (the ws library) and its
# browser path (Node's own WebSocket), which is what a dashboard runs.
# Prints the median messages/s of each and the ratios (target: ws >= 0.7
# x plain). Figures only: nothing here fails on a slow
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

. bench/lib.sh

# Node 20 has its WebSocket behind a flag; Node 22 has it by default.
NODE_FLAGS=
NATIVE=1
node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null ||
    if node --experimental-websocket --no-warnings -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
        NODE_FLAGS="--experimental-websocket --no-warnings"
    else
        NATIVE=
    fi
one() { # LABEL URL MODE
    rate=$(MQLAB_MQTTJS_DIR="$MQTTJS" node $NODE_FLAGS bench/ws_bench.js "$2" "$3" "$MSGS") || {
        echo "ws bench: a stream failed ($1)"; exit 1; }
    echo "$1 $rate" >> "$TMP/rates"
}
: > "$TMP/rates"
r=0
while [ $r -lt "$ROUNDS" ]; do
    one plain "mqtt://127.0.0.1:$PLAIN" lib
    one ws "ws://127.0.0.1:$WS/mqtt" lib
    [ -n "$NATIVE" ] && one native "ws://127.0.0.1:$WS/mqtt" native
    r=$((r + 1))
done
p=$(sed -n 's/^plain //p' "$TMP/rates" | median)
w=$(sed -n 's/^ws //p' "$TMP/rates" | median)
n=$(sed -n 's/^native //p' "$TMP/rates" | median)
row() { printf '%-40s %8s msg/s   (%s)\n' "$1" "$2" "$(sed -n "s/^$3 //p" "$TMP/rates" | tr '\n' ' ' | sed 's/ $//')"; }
row "mqtt.js QoS 1, plain port" "$p" plain
row "mqtt.js QoS 1, ws port (ws library)" "$w" ws
[ -n "$n" ] && row "mqtt.js QoS 1, ws port (browser path)" "$n" native
awk -v p="$p" -v w="$w" 'BEGIN { printf "%-40s %8.2f x   (median of '"$ROUNDS"' rounds of '"$MSGS"' messages; target >= 0.70)\n", "ws (ws library) / plain", w / p }'
[ -n "$n" ] && awk -v p="$p" -v n="$n" 'BEGIN { printf "%-40s %8.2f x\n", "ws (browser path) / plain", n / p }'
