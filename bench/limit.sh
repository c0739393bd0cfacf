#!/bin/sh
# bench/limit.sh (part of `make bench`): is the load generator the
# bottleneck, or the broker? For every mode, `mqlab bench` runs against
# ONE mosquitto (broker-config/bench.conf, plus a TLS listener on the
# kit's certificates), and the CPU seconds of each side are read from
# /proc during the run:
#   - burst at QoS 0, 1 and 2, plain and TLS (no subscriber: the
#     publishers against the broker);
#   - steady with CLIENTS_STEADY publishers at RATE msg/s in total (below
#     the knee, so the broker is not saturated), counted at that rate
#     only, once every client has connected;
#   - conn: CONNS connections.
# Prints, per mode: the rate, the broker's share of one core over the
# run, and the generator's CPU as a share of the broker's. The goals (see
# the README's Load section): in burst the broker at >= 90% of a core and
# the generator at <= 15% of the broker's CPU (<= 30% with TLS, where it
# does its own crypto); in steady and conn the generator at <= 15%.
# Figures only: nothing here fails on a slow machine.
cd "$(dirname "$0")/.." || exit 2
N=${N:-200000}
# QoS 0 is cheap for the broker (over TLS, a fortieth of QoS 1): more
# messages, so that the CPU figures (counted in 10 ms ticks) mean something.
N0=${N0:-1000000}
N0TLS=${N0TLS:-5000000}
CLIENTS=${CLIENTS:-10}
CLIENTS_STEADY=${CLIENTS_STEADY:-10000}
RATE=${RATE:-5000}
DURATION=${DURATION:-12}
CONNS=${CONNS:-10000}
PY=/usr/bin/python3
MQLAB=${MQLAB:-./mqlab}
command -v mosquitto > /dev/null 2>&1 || { echo "limit: mosquitto is not installed, skipped"; exit 0; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-limit-XXXXXX")
BPID=
cleanup() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null

CERTS=$TMP/certs
"$MQLAB" certs "$CERTS" > /dev/null 2>&1 || { echo "limit: cannot make certificates"; exit 0; }
free_port() { $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
TPORT=$(free_port)
sed -e "s|@PORT@|$PORT|g" -e "s|@USER@|$(id -un)|g" -e "s|@LOG@|$TMP/broker.log|g" -e "s|@DIR@|$TMP|g" \
    broker-config/bench.conf > "$TMP/mosquitto.conf"
cat >> "$TMP/mosquitto.conf" <<CONF
listener $TPORT 127.0.0.1
cafile $CERTS/ca.crt
certfile $CERTS/server.crt
keyfile $CERTS/server.key
tls_version tlsv1.2
CONF
mosquitto -c "$TMP/mosquitto.conf" > "$TMP/broker.out" 2>&1 &
BPID=$!
i=0
until $PY -c "import socket; socket.create_connection(('127.0.0.1', $TPORT), 0.2)" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 50 ] || { echo "limit: the broker did not start:"; cat "$TMP/broker.out" "$TMP/broker.log" 2>/dev/null; exit 0; }
    sleep 0.1
done
TICK=$(getconf CLK_TCK)
# CPU ticks (user + system) of process $1 so far.
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
broker_cpu() { awk -v t="$TICK" -v c="$(cpu_of "$BPID")" 'BEGIN { printf "%.3f", c / t }'; }
now() { date +%s.%N; }
# Until the broker has stopped working: a QoS 0 burst is written long
# before the broker has read it, so its CPU is counted up to then, and
# the run's time with it.
settle() {
    prev=$(broker_cpu)
    while :; do
        sleep 0.2
        cur=$(broker_cpu)
        [ "$cur" = "$prev" ] && break
        prev=$cur
    done
}

printf '%-22s %12s %10s %12s %10s\n' "mode" "rate" "wall s" "broker core" "gen/broker"
echo "(rate and wall: from the start of the run until the broker has stopped working)"
# one LABEL ARGS...: a bench run; prints its row.
one() {
    label=$1; shift
    settle
    b0=$(broker_cpu)
    t0=$(now)
    /usr/bin/time -f "%e %U %S" -o "$TMP/time" "$MQLAB" bench "$@" --host 127.0.0.1 --format json \
        > "$TMP/out.json" 2> "$TMP/err" || { echo "$label: failed: $(tail -1 "$TMP/err")"; return; }
    settle
    b1=$(broker_cpu)
    # the 0.2 s the last sample waited for nothing is not the broker's
    t1=$(awk -v a="$(now)" 'BEGIN { printf "%.3f", a - 0.2 }')
    sent=$(sed -n 's/.*"\(sent\|connected\)":\([0-9]*\).*/\2/p' "$TMP/out.json" | head -1)
    awk -v l="$label" -v n="${sent:-0}" -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" '{
        wall = t1 - t0; gen = $2 + $3; b = b1 - b0; r = wall > 0 ? n / wall : 0
        printf "%-22s %10.0f/s %10.2f %11.0f%% %9.0f%%   (generator %.2f CPU-s, broker %.2f)\n", l, r, wall,
               (wall > 0 ? 100 * b / wall : 0), (b > 0 ? 100 * gen / b : 0), gen, b }' "$TMP/time"
}
# tcp_count STATE [any]: sockets in TCP state STATE (01 established, 06
# TIME_WAIT) whose local port is the broker's plain port (its side of the
# connections), or with "any" whose local or remote port is.
tcp_count() {
    awk -v p="$(printf '%04X' "$PORT")" -v st="$1" -v any="${2:-}" 'NR > 1 && $4 == st &&
        (substr($2, length($2) - 3) == p || (any != "" && substr($3, length($3) - 3) == p)) { n++ }
        END { print n + 0 }' /proc/net/tcp
}
# The last run's closed connections linger in TIME_WAIT for a minute, and
# ten thousand of them lengthen the kernel's lookup of every segment on
# both sides (measured: the broker's and the generator's CPU in steady up
# by a fifth, run after run). Before a run of many clients, wait them out.
time_wait_gone() {
    i=0
    while [ "$(tcp_count 06 any)" -gt 100 ] && [ $i -lt 90 ]; do
        sleep 1
        i=$((i + 1))
    done
}
# steady LABEL ARGS...: a steady run measured at its rate only: from a
# second after every client has connected to two seconds before the load
# ends (connecting ten thousand clients is the conn row's business).
steady_row() {
    label=$1; clients=$2; shift 2
    settle
    "$MQLAB" bench steady --clients "$clients" --duration "$DURATION" "$@" --host 127.0.0.1 --format json \
        > "$TMP/out.json" 2> "$TMP/err" &
    g=$!
    i=0
    while [ "$(tcp_count 01)" -le "$clients" ] && kill -0 $g 2>/dev/null && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    sleep 1
    g0=$(cpu_of $g); b0=$(cpu_of "$BPID"); t0=$(now)
    sleep $((DURATION - 3))
    g1=$(cpu_of $g); b1=$(cpu_of "$BPID"); t1=$(now)
    wait $g || { echo "$label: failed: $(tail -1 "$TMP/err")"; return; }
    awk -v l="$label" -v g0="$g0" -v g1="$g1" -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" -v k="$TICK" \
        -v r="$RATE" 'BEGIN {
        wall = t1 - t0; gen = (g1 - g0) / k; b = (b1 - b0) / k
        printf "%-22s %10.0f/s %10.2f %11.0f%% %9.0f%%   (generator %.2f CPU-s, broker %.2f; at the rate only)\n",
               l, r, wall, (wall > 0 ? 100 * b / wall : 0), (b > 0 ? 100 * gen / b : 0), gen, b }'
}
time_wait_gone
for q in 0 1 2; do
    n=$N; [ $q -eq 0 ] && n=$N0
    one "burst QoS $q" burst --port "$PORT" --clients "$CLIENTS" --qos $q --messages "$n" --no-subscriber
done
for q in 0 1 2; do
    n=$N; [ $q -eq 0 ] && n=$N0TLS
    one "burst QoS $q TLS" burst --port "$TPORT" --cafile "$CERTS/ca.crt" --clients "$CLIENTS" --qos $q \
        --messages "$n" --no-subscriber
done
time_wait_gone
steady_row "steady $CLIENTS_STEADY cl. ${RATE}/s" "$CLIENTS_STEADY" --port "$PORT" --rate "$RATE" --qos 1
time_wait_gone
one "conn $CONNS" conn --port "$PORT" --clients "$CONNS" --hold 1
echo "(on loopback the generator's writes also run the broker's side of TCP, and its"
echo " connect() and close() both ends of the handshakes: see the README's Load section)"
