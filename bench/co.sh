#!/bin/sh
# Coordinated omission: `mqlab bench steady` through `mqlab trace` with one
# known stall, and where the corrected p99 and p99.9 must land (target:
# within 5% of the prediction) against the raw ones (far below).
# Figures only: nothing here fails on a slow machine, except a run that
# cannot deliver at all.
#
# The set-up: one publisher, QoS 1, R msg/s for T s, so N = R x T
# messages, the k-th (from 0) due at (k+1)/R (bench.c: publish_one). The
# proxy holds the PUBLISH number N/2 (up:publish:N/2) for D ms, and, as
# TCP keeps order, everything behind it on that connection.
#
# Where the stall puts the corrected latency (receive - due). The stall
# starts at s = 0, the due time of the held PUBLISH. The messages due at
# s in [0, D) all reach the broker at about D: the first W (the window,
# 100 at QoS 1) were written on time and sit behind the held one; the
# rest wait in the generator, whose window is full until the acks come
# back at D, and then go out in one catch-up burst. Either way the one
# due at s arrives at about D, so its corrected latency is D - s (plus
# the normal latency, about 1 ms, and how long the burst takes to reach
# it: a fraction R/C of s for a catch-up rate C, measured here above
# 8000 msg/s, so a few percent of s at most). That is R x D messages
# spread evenly over (0, D]; every other message has about 1 ms. So
#     P(corrected > x) = R (D - x) / N = (D - x) / T     for x in (1 ms, D]
# and the percentile q (as a fraction) lands at
#     x_q = D - (1 - q) T
# With R = 2000, T = 60 s, D = 5000 ms: p99 = 5000 - 600 = 4400 ms,
# p99.9 = 5000 - 60 = 4940 ms.
#
# Raw latency (receive - sent) sees only the W messages written before
# the window filled: W = 100 of N = 120000, 0.083%, fewer than the 0.1%
# above p99.9, so raw p99 and p99.9 stay at the normal latency (a few ms,
# the catch-up burst included): the stall is invisible in them. Hence
# N >= 1000 x W here; a shorter run puts raw p99.9 inside the stall too.
cd "$(dirname "$0")/.." || exit 2
R=${R:-2000}
T=${T:-60}
D=${D:-5000}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-bench-co-XXXXXX")
TRACE_PID=
cleanup() {
    [ -n "$TRACE_PID" ] && kill -INT "$TRACE_PID" 2>/dev/null && wait "$TRACE_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
export NO_COLOR=1
N=$(awk -v r="$R" -v t="$T" 'BEGIN { printf "%d", r * t }')
NTH=$((N / 2))

./mqlab trace --port 0 --quiet --profile bench --lang en --delay "up:publish:$NTH:$D" > "$TMP/banner" 2>&1 &
TRACE_PID=$!
tries=0
while ! grep -q "proxy on" "$TMP/banner" 2>/dev/null; do
    tries=$((tries + 1))
    [ $tries -gt 100 ] && { echo "co bench: mqlab trace did not start:"; cat "$TMP/banner"; exit 1; }
    sleep 0.05
done
PROXY=$(sed -n 's/.*proxy on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$TMP/banner")

./mqlab bench steady --host 127.0.0.1 --port "$PROXY" --clients 1 --qos 1 --rate "$R" --duration "$T" \
    --format json --lang en > "$TMP/out" 2> "$TMP/err"
rc=$?
kill -INT "$TRACE_PID" 2>/dev/null
wait "$TRACE_PID" 2>/dev/null
TRACE_PID=
[ $rc -eq 0 ] || { echo "co bench: mqlab bench failed (exit $rc):"; cat "$TMP/out" "$TMP/err"; exit 1; }

# latency_ms (raw) and latency_corrected_ms from the one JSON line
field() { sed -n "s/.*\"$1\":{\([^}]*\)}.*/\1/p" "$TMP/out" | tr ',' '\n' | sed -n "s/\"$2\":\(.*\)/\1/p"; }
echo "coordinated omission: mqlab bench steady --clients 1 --qos 1 --rate $R --duration $T through"
echo "  mqlab trace --delay up:publish:$NTH:$D (one stall of $D ms in $N messages)"
printf '  %-8s %12s %12s %12s %8s\n' "" "predicted" "corrected" "raw" "off by"
for q in p99:0.99 p999:0.999; do
    k=${q%%:*}
    f=${q#*:}
    c=$(field latency_corrected_ms "$k")
    w=$(field latency_ms "$k")
    awk -v k="$k" -v f="$f" -v d="$D" -v t="$T" -v c="$c" -v w="$w" 'BEGIN {
        x = d - (1 - f) * t * 1000
        printf "  %-8s %9.1f ms %9.1f ms %9.1f ms %7.1f%%   (target: within 5%%)\n", k, x, c, w, (c - x) / x * 100 }'
done
printf '  %-8s %12s %9s ms %9s ms\n' "p50" "" "$(field latency_corrected_ms p50)" "$(field latency_ms p50)"
sed -n 's/.*"sent":\([0-9]*\),"acked":\([0-9]*\),"received":\([0-9]*\),"lost":\([0-9]*\).*/  sent \1, acked \2, received \3, lost \4/p' "$TMP/out"
