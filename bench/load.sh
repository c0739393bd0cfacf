#!/bin/sh
# bench/load.sh (part of `make bench`): the load generator against the
# usual clients, all on ONE broker (broker-config/bench.conf) in one run.
#   - N QoS 1 messages of SIZE bytes from one connection: `mqlab bench
#     burst` vs `mosquitto_pub -l` vs paho-python (bench/peers/paho_pub.py);
#     for each, the messages the broker really received (its $SYS
#     counter), the delivered rate (received / wall time of the client,
#     start to exit), mqlab's ratio to the others, and the CPU seconds of
#     the client and of the broker during the run. RUNS=n repeats the
#     three (interleaved) and shows each client's median run.
#   - `mqlab bench conn --clients CONNS --hold 2`: connected, connect
#     rate, mqlab's peak RSS
# Figures only: nothing here fails on a slow machine.
#
# Why count at the broker: `mosquitto_pub -l` may quit before its queue
# is out (with N=200000 it sends a few thousand and exits), which would
# pass for a very high rate.
cd "$(dirname "$0")/.." || exit 2
N=${N:-50000}
SIZE=${SIZE:-64}
CONNS=${CONNS:-10000}
RUNS=${RUNS:-1}
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

# PUBLISH packets the broker has received so far, from its $SYS tree
# (bench.conf: sys_interval 1; mosquitto counts it in whole seconds, so
# a value may be two seconds old: callers wait for it to settle). The
# value is retained for 60 s after it last changed. Empty when it cannot
# be read.
HAVE_SUB=
command -v mosquitto_sub > /dev/null 2>&1 && HAVE_SUB=1
sys_received() {
    [ -n "$HAVE_SUB" ] || return 0
    mosquitto_sub -h 127.0.0.1 -p "$PORT" -t '$SYS/broker/publish/messages/received' -C 1 -W 5 2>/dev/null
}
# The counter once it has stopped moving for longer than an update takes.
settled_received() {
    [ -n "$HAVE_SUB" ] || return 0
    prev=$(sys_received)
    k=0
    while [ $k -lt 10 ]; do
        sleep 2.2
        cur=$(sys_received)
        [ "$cur" = "$prev" ] && break
        prev=$cur
        k=$((k + 1))
    done
    echo "$prev"
}

# run NAME CMD...: time CMD with /usr/bin/time; appends "rate wall cpu
# bcpu received" for this run to $TMP/NAME.runs, stdout in $TMP/NAME.out
run() {
    name=$1; shift
    r0=$(settled_received)
    b0=$(broker_cpu)
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "%e %U %S" -o "$TMP/$name.time" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
    else
        t0=$(date +%s%N); "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"; t1=$(date +%s%N)
        echo "$(( (t1 - t0) / 1000000 ))e-3 0 0" > "$TMP/$name.time"
    fi
    b1=$(broker_cpu)
    r1=$(settled_received)
    awk -v n="$N" -v b0="$b0" -v b1="$b1" -v r0="$r0" -v r1="$r1" '{
        got = (r0 != "" && r1 != "") ? r1 - r0 : n
        printf "%.0f %.3f %.2f %.2f %d\n", ($1 > 0 ? got / $1 : 0), $1, $2 + $3, b1 - b0, got
    }' "$TMP/$name.time" >> "$TMP/$name.runs"
}

HAVE_PAHO=
$PY -c 'import paho.mqtt.client' 2>/dev/null && HAVE_PAHO=1
seq "$N" | awk -v s="$SIZE" '{ printf "%0" s "d\n", $1 }' > "$TMP/lines"

echo "load: $N QoS 1 messages of $SIZE B from one connection, one broker (mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'), port $PORT, $(nproc) cores)"
r=0
while [ $r -lt "$RUNS" ]; do
    run mqlab "$MQLAB" bench burst --host 127.0.0.1 --port "$PORT" --clients 1 --qos 1 --size "$SIZE" \
        --messages "$N" --no-subscriber --topic mqlab/load/mqlab --format json
    run mospub sh -c "mosquitto_pub -h 127.0.0.1 -p $PORT -q 1 -t mqlab/load/pub -l < '$TMP/lines'"
    [ -n "$HAVE_PAHO" ] && run paho $PY bench/peers/paho_pub.py --port "$PORT" --count "$N" --size "$SIZE" --topic mqlab/load/paho
    r=$((r + 1))
done

# The run with the median rate (the upper one of two middles).
pick() { [ -s "$TMP/$1.runs" ] && sort -n "$TMP/$1.runs" | awk '{ a[NR] = $0 } END { print a[int(NR / 2) + 1] }'; }
for c in mqlab mospub paho; do pick $c > "$TMP/$c.pick"; done

[ "$RUNS" -gt 1 ] && echo "(each row: the median of $RUNS runs by rate)"
[ -n "$HAVE_SUB" ] || echo "(mosquitto_sub is missing: received = N, not counted at the broker)"
printf '%-22s %10s %10s %9s %13s %13s\n' "client" "received" "msg/s" "wall s" "client CPU s" "broker CPU s"
for c in mqlab mospub paho; do
    case $c in mqlab) label="mqlab bench burst";; mospub) label="mosquitto_pub -l";; paho) label="paho-python";; esac
    if [ -s "$TMP/$c.pick" ]; then
        read -r rate wall cpu bcpu got < "$TMP/$c.pick"
        printf '%-22s %10s %10s %9s %13s %13s%s\n' "$label" "$got" "$rate" "$wall" "$cpu" "$bcpu" \
            "$([ "$got" -lt "$N" ] && echo "   (only $got of $N)")"
    else
        printf '%-22s %10s\n' "$label" "not run"
    fi
done
# A ratio only between runs that each delivered all N messages.
rate_of() { [ -s "$TMP/$1.pick" ] && awk -v n="$N" '{ print ($5 >= n ? $1 : 0) }' "$TMP/$1.pick"; }
m=$(rate_of mqlab); p=$(rate_of mospub); y=$(rate_of paho)
awk -v m="${m:-0}" -v p="${p:-0}" -v y="${y:-0}" 'BEGIN {
    printf "ratio mqlab / mosquitto_pub: %s   mqlab / paho: %s\n",
        (m > 0 && p > 0 ? sprintf("%.2f", m / p) : "n/a"), (m > 0 && y > 0 ? sprintf("%.2f", m / y) : "n/a") }'
read -r rate wall cpu bcpu got < "$TMP/mqlab.pick"
awk -v c="$cpu" -v b="$bcpu" -v w="$wall" 'BEGIN {
    printf "mqlab burst: generator %.2f CPU s, broker %.2f CPU s (%.0f%% of one core over the whole run)\n", c, b, (w > 0 ? 100 * b / w : 0) }'
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
