#!/bin/sh
# The cost of the proxy: a QoS 1 stream (mosquitto_pub -l, one connection,
# libmosquitto's default window of 20 messages in flight) sent straight to
# a broker and through `mqlab trace --quiet` in front of the same broker,
# alternating, in one run. Prints messages/s for each and the ratio
# (target: proxied >= 0.7 x direct). Figures only: nothing here fails on a
# slow machine, except a run that cannot deliver at all.
cd "$(dirname "$0")/.." || exit 2
MSGS=${MSGS:-20000}
ROUNDS=${ROUNDS:-5}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-bench-proxy-XXXXXX")
TRACE_PID=
cleanup() {
    [ -n "$TRACE_PID" ] && kill -INT "$TRACE_PID" 2>/dev/null && wait "$TRACE_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

command -v mosquitto_pub >/dev/null || { echo "proxy bench: mosquitto_pub is missing (apt-get install mosquitto-clients)"; exit 3; }

i=0
while [ $i -lt "$MSGS" ]; do echo "{\"id\":\"r-$i\",\"ts\":1700000000000,\"v\":21.5}"; i=$((i + 1)); done > "$TMP/lines"

NO_COLOR=1 ./mqlab trace --port 0 --quiet --lang en > "$TMP/banner" 2>&1 &
TRACE_PID=$!
tries=0
while ! grep -q "proxy on" "$TMP/banner" 2>/dev/null; do
    tries=$((tries + 1))
    [ $tries -gt 100 ] && { echo "proxy bench: mqlab trace did not start:"; cat "$TMP/banner"; exit 1; }
    sleep 0.05
done
PROXY=$(sed -n 's/.*proxy on 127\.0\.0\.1:\([0-9]*\) -> broker 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/banner")
BROKER=$(sed -n 's/.*proxy on 127\.0\.0\.1:\([0-9]*\) -> broker 127\.0\.0\.1:\([0-9]*\).*/\2/p' "$TMP/banner")

now_ns() { date +%s%N; }
. bench/lib.sh

# One stream of N messages; prints messages/s.
stream() {
    t0=$(now_ns)
    mosquitto_pub -h 127.0.0.1 -p "$1" -q 1 -t acme/v1/bench/temp -i "bench-$1" -l < "$TMP/lines" || return 1
    t1=$(now_ns)
    echo $(( MSGS * 1000000000 / (t1 - t0) ))
}

: > "$TMP/direct"; : > "$TMP/proxied"
r=0
while [ $r -lt "$ROUNDS" ]; do
    stream "$BROKER" >> "$TMP/direct" || { echo "proxy bench: direct stream failed"; exit 1; }
    stream "$PROXY" >> "$TMP/proxied" || { echo "proxy bench: proxied stream failed"; exit 1; }
    r=$((r + 1))
done
d=$(median < "$TMP/direct")
p=$(median < "$TMP/proxied")
printf '%-28s %8s msg/s\n' "QoS 1 stream, direct" "$d"
printf '%-28s %8s msg/s\n' "QoS 1 stream, via proxy" "$p"
awk -v d="$d" -v p="$p" 'BEGIN { printf "%-28s %8.2f x   (median of '"$ROUNDS"' rounds of '"$MSGS"' messages; target >= 0.70)\n", "proxy / direct", p / d }'
kill -INT "$TRACE_PID" 2>/dev/null
wait "$TRACE_PID" 2>/dev/null
TRACE_PID=
tail -n 1 "$TMP/banner" | sed 's/^/  trace: /'
