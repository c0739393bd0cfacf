#!/bin/sh
# bench/load.sh (part of `make bench`): the load generator against the
# usual clients, all on ONE broker (broker-config/bench.conf) in one run.
#   - N QoS 1 messages from one connection: `mqlab bench burst` vs
#     `mosquitto_pub -l` vs paho-python (bench/peers/paho_pub.py); the
#     rate of each, mqlab's ratio to the others, and the CPU seconds of
#     the client and of the broker during each run
#   - `mqlab bench conn --clients 10000 --hold 2`: connected, connect
#     rate, mqlab's peak RSS
# Figures only: nothing here fails on a slow machine.
cd "$(dirname "$0")/.." || exit 2
N=${N:-50000}
SIZE=${SIZE:-64}
CONNS=${CONNS:-10000}
PY=/usr/bin/python3
command -v mosquitto > /dev/null 2>&1 || { echo "load: mosquitto is not installed, skipped"; exit 0; }
MQLAB=${MQLAB:-./mqlab}
"$MQLAB" bench --help > /dev/null 2>&1 || { echo "load: $MQLAB has no bench command, skipped"; exit 0; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-load-XXXXXX")
BPID=
cleanup() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Thousands of connections: as many fds as we may (the broker inherits).
ulimit -n "$(ulimit -Hn)" 2>/dev/null

PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s|@PORT@|$PORT|g" -e "s|@USER@|$(id -un)|g" -e "s|@LOG@|$TMP/broker.log|g" -e "s|@DIR@|$TMP|g" \
    broker-config/bench.conf > "$TMP/mosquitto.conf"
mosquitto -c "$TMP/mosquitto.conf" > "$TMP/broker.out" 2>&1 &
BPID=$!
i=0
until $PY -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 50 ] || { echo "load: the broker did not start:"; cat "$TMP/broker.out" "$TMP/broker.log" 2>/dev/null; exit 0; }
    sleep 0.1
done

TICK=$(getconf CLK_TCK)
# CPU seconds (user + system) the broker has used so far.
broker_cpu() { awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$BPID/stat"; }

# run NAME CMD...: time CMD with /usr/bin/time; leaves wall, client CPU
# and broker CPU in $TMP/NAME.{wall,cpu,bcpu}, stdout in $TMP/NAME.out
run() {
    name=$1; shift
    b0=$(broker_cpu)
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "%e %U %S" -o "$TMP/$name.time" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
    else
        t0=$(date +%s%N); "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"; t1=$(date +%s%N)
        echo "$(( (t1 - t0) / 1000000 ))e-3 0 0" > "$TMP/$name.time"
    fi
    b1=$(broker_cpu)
    awk '{ printf "%.3f", $1 }' "$TMP/$name.time" > "$TMP/$name.wall"
    awk '{ printf "%.2f", $2 + $3 }' "$TMP/$name.time" > "$TMP/$name.cpu"
    awk -v a="$b0" -v b="$b1" 'BEGIN { printf "%.2f", b - a }' > "$TMP/$name.bcpu"
}

echo "load: $N QoS 1 messages of $SIZE B from one connection, one broker (mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'), port $PORT)"
run mqlab "$MQLAB" bench burst --host 127.0.0.1 --port "$PORT" --clients 1 --qos 1 --size "$SIZE" \
    --messages "$N" --no-subscriber --topic mqlab/load/mqlab --format json
seq "$N" | awk -v s="$SIZE" '{ printf "%0" s "d\n", $1 }' > "$TMP/lines"
run mospub sh -c "mosquitto_pub -h 127.0.0.1 -p $PORT -q 1 -t mqlab/load/pub -l < '$TMP/lines'"
if $PY -c 'import paho.mqtt.client' 2>/dev/null; then
    run paho $PY bench/peers/paho_pub.py --port "$PORT" --count "$N" --size "$SIZE" --topic mqlab/load/paho
else
    echo "0 0 0" > "$TMP/paho.time"; echo 0 > "$TMP/paho.wall"; echo 0 > "$TMP/paho.cpu"; echo 0 > "$TMP/paho.bcpu"
fi

rate() { awk -v n="$N" -v w="$(cat "$TMP/$1.wall")" 'BEGIN { if (w > 0) printf "%.0f", n / w; else print 0 }'; }
printf '%-24s %10s %10s %12s %12s\n' "client" "msg/s" "wall s" "client CPU s" "broker CPU s"
for c in mqlab mospub paho; do
    case $c in mqlab) label="mqlab bench burst";; mospub) label="mosquitto_pub -l";; paho) label="paho-python";; esac
    printf '%-24s %10s %10s %12s %12s\n' "$label" "$(rate $c)" "$(cat "$TMP/$c.wall")" "$(cat "$TMP/$c.cpu")" "$(cat "$TMP/$c.bcpu")"
done
m=$(rate mqlab); p=$(rate mospub); y=$(rate paho)
awk -v m="$m" -v p="$p" -v y="$y" 'BEGIN {
    printf "ratio mqlab / mosquitto_pub: %s   mqlab / paho: %s\n",
        (p > 0 ? sprintf("%.2f", m / p) : "n/a"), (y > 0 ? sprintf("%.2f", m / y) : "n/a") }'
grep -h '"errors":[1-9]' "$TMP/mqlab.out" && cat "$TMP/mqlab.err"

echo
echo "load: mqlab bench conn --clients $CONNS --hold 2 (open files limit $(ulimit -n))"
"$MQLAB" bench conn --host 127.0.0.1 --port "$PORT" --clients "$CONNS" --hold 2 --format json > "$TMP/conn.out" 2> "$TMP/conn.err"
$PY - "$TMP/conn.out" <<'PYEOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    print("  connected %d of %d, failed %d, connect_rate %.0f/s, rss_mb %.1f"
          % (r["connected"], r["clients"], r["failed"], r["connect_rate"], r["rss_mb"]))
except Exception as e:
    print("  no figures (%s)" % e)
PYEOF
sed 's/^/  /' "$TMP/conn.err"
exit 0
