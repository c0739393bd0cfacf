#!/bin/sh
# A change to the network layer must not make the proxy or the load
# generator slower. This runs an older mqlab (OLD=path) and this one
# side by side, alternating, in one run, against the same broker:
#   - a QoS 1 stream (mosquitto_pub -l) direct, through the old proxy
#     (`mqlab trace`) and through the new one, and each proxy's ratio;
#   - `mqlab bench burst` at QoS 1 and QoS 2, and `bench conn`, with each
#     binary: msg/s (conn/s) and the generator's CPU seconds. (QoS 0
#     is left out: a burst at QoS 0 measures how fast the generator fills
#     its sockets, and how much the broker drops, not a rate to compare.)
# Prints medians of ROUNDS rounds. Figures only: nothing here fails on a
# slow machine.
#   OLD=/tmp/mqlab-old sh bench/before-after.sh
cd "$(dirname "$0")/.." || exit 2
OLD=${OLD:?set OLD to the older mqlab binary}
NEW=${NEW:-./mqlab}
MSGS=${MSGS:-20000}
ROUNDS=${ROUNDS:-5}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-bench-ba-XXXXXX")
PIDS=
cleanup() {
    for p in $PIDS; do kill -INT "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
export NO_COLOR=1 MQLAB_LANG=en HOME="$TMP/home" MQLAB_DB="$TMP/db"
mkdir -p "$HOME"

now_ns() { date +%s%N; }
. bench/lib.sh
wait_for() { # FILE PATTERN
    n=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        n=$((n + 1)); [ $n -gt 200 ] && { echo "before-after: no '$2' in $1:"; cat "$1"; exit 1; }
        sleep 0.05
    done
}

"$NEW" broker bench --ws-port none --no-record > "$TMP/broker" 2>&1 &
PIDS="$!"
wait_for "$TMP/broker" "listening on"
BROKER=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/broker" | head -1)
for which in old new; do
    bin=$OLD; [ $which = new ] && bin=$NEW
    "$bin" trace --to "127.0.0.1:$BROKER" --port 0 --quiet > "$TMP/trace-$which" 2>&1 &
    PIDS="$PIDS $!"
    wait_for "$TMP/trace-$which" "proxy on"
    eval "PX_$which=\$(sed -n 's/.*proxy on 127\\.0\\.0\\.1:\\([0-9]*\\).*/\\1/p' \"\$TMP/trace-$which\")"
done

i=0
while [ $i -lt "$MSGS" ]; do echo "{\"id\":\"r-$i\",\"ts\":1700000000000,\"v\":21.5}"; i=$((i + 1)); done > "$TMP/lines"
stream() {
    t0=$(now_ns)
    mosquitto_pub -h 127.0.0.1 -p "$1" -q 1 -t acme/v1/bench/temp -i "ba-$1" -l < "$TMP/lines" || return 1
    t1=$(now_ns)
    echo $(( MSGS * 1000000000 / (t1 - t0) ))
}
# One bench run; prints "RATE CPU_S" (CPU of the generator: user+sys of the child).
benchrun() { # BIN ARGS...
    bin=$1; shift
    /usr/bin/time -f "%U %S" -o "$TMP/time" "$bin" bench "$@" --host 127.0.0.1 --port "$BROKER" --format json \
        > "$TMP/bench.json" 2> "$TMP/bench.err" || { echo "0 0"; return; }
    rate=$(sed -n 's/.*"\(rate_received\|connect_rate\|rate\)": *\([0-9.]*\).*/\2/p' "$TMP/bench.json" | head -1)
    cpu=$(awk '{print $1 + $2}' "$TMP/time")
    echo "${rate:-0} $cpu"
}

for f in direct old new; do : > "$TMP/s-$f"; done
for m in q1 q2 conn; do for w in old new; do : > "$TMP/b-$m-$w"; : > "$TMP/c-$m-$w"; done; done
r=0
while [ $r -lt "$ROUNDS" ]; do
    stream "$BROKER" >> "$TMP/s-direct" || exit 1
    stream "$PX_old" >> "$TMP/s-old" || exit 1
    stream "$PX_new" >> "$TMP/s-new" || exit 1
    for w in old new; do
        bin=$OLD; [ $w = new ] && bin=$NEW
        set -- $(benchrun "$bin" burst --qos 1 --messages 50000); echo "$1" >> "$TMP/b-q1-$w"; echo "$2" >> "$TMP/c-q1-$w"
        set -- $(benchrun "$bin" burst --qos 2 --messages 20000); echo "$1" >> "$TMP/b-q2-$w"; echo "$2" >> "$TMP/c-q2-$w"
        set -- $(benchrun "$bin" conn --clients 2000 --hold 0); echo "$1" >> "$TMP/b-conn-$w"; echo "$2" >> "$TMP/c-conn-$w"
    done
    r=$((r + 1))
done
d=$(median < "$TMP/s-direct"); o=$(median < "$TMP/s-old"); n=$(median < "$TMP/s-new")
echo "QoS 1 stream ($MSGS messages, median of $ROUNDS rounds, msg/s)"
printf '  %-22s %8s\n' direct "$d"
awk -v d="$d" -v o="$o" -v n="$n" 'BEGIN {
    printf "  %-22s %8s   %.2f x direct\n", "through the old proxy", o, o / d
    printf "  %-22s %8s   %.2f x direct\n", "through the new proxy", n, n / d
    printf "  %-22s %8.2f\n", "new / old", n / o }'
echo "mqlab bench (median of $ROUNDS rounds): rate, generator CPU s"
for m in q1 q2 conn; do
    ro=$(median < "$TMP/b-$m-old"); rn=$(median < "$TMP/b-$m-new")
    co=$(median < "$TMP/c-$m-old"); cn=$(median < "$TMP/c-$m-new")
    awk -v m="$m" -v ro="$ro" -v rn="$rn" -v co="$co" -v cn="$cn" 'BEGIN {
        printf "  %-5s old %9.0f/s %5.2f s   new %9.0f/s %5.2f s   rate new/old %.2f\n", m, ro, co, rn, cn, (ro > 0 ? rn / ro : 0) }'
done
