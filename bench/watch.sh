#!/bin/sh
# How fast `mqlab watch` reacts: lab 01's reference solution is watched,
# a line is appended to hello.py N times (each once the watch is idle),
# and for each change mqlab's own clock (MQLAB_WATCH_TIMES=1) tells
#   - change -> grading start: from the write (this script's clock) to the
#     worker's start; the debounce (300 ms) is most of it;
#   - grading end -> verdict: from the verdict complete in the worker to
#     the verdict printed (target: under 1000 ms);
#   - change -> verdict: the whole wait, grading included.
# Also once: a change during a grading (a program that sleeps), to the
# next grading's start: the cancel's cost. Figures only.
cd "$(dirname "$0")/.." || exit 2
N=${N:-5}
export NO_COLOR=1 MQLAB_LANG=en MQLAB_WATCH_TIMES=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-bench-watch-XXXXXX")
WATCH_PID=
cleanup() {
    [ -n "$WATCH_PID" ] && kill -INT "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

SUB="$TMP/sub"
mkdir "$SUB" "$TMP/tmp"
cp solutions/01-hello/hello.py solutions/01-hello/filters.txt "$SUB/"
now_ms() { date +%s%3N; }
. bench/lib.sh
ntimes() { grep -c '^mqlab watch: times' "$TMP/err"; }
# Wait until the watch has printed $1 verdicts and is idle again (30 s).
wait_verdicts() {
    tries=0
    while [ "$(ntimes)" -lt "$1" ] || [ "$(grep -c '^watching ' "$TMP/out")" -lt "$1" ]; do
        tries=$((tries + 1))
        [ $tries -gt 600 ] && { echo "watch bench: no verdict $1 in 30 s:"; tail -5 "$TMP/err"; exit 1; }
        sleep 0.05
    done
}
field() { grep '^mqlab watch: times' "$TMP/err" | tail -1 | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }

TMPDIR="$TMP/tmp" ./mqlab watch 01 "$SUB" --no-record --student reference > "$TMP/out" 2> "$TMP/err" &
WATCH_PID=$!
wait_verdicts 1
: > "$TMP/react"; : > "$TMP/show"; : > "$TMP/total"
k=1
while [ $k -le "$N" ]; do
    sleep 0.3
    t=$(now_ms)
    echo "# change $k" >> "$SUB/hello.py"
    k=$((k + 1))
    wait_verdicts $k
    echo $(( $(field start) - t )) >> "$TMP/react"
    echo $(( $(field verdict) - $(field end) )) >> "$TMP/show"
    echo $(( $(field verdict) - t )) >> "$TMP/total"
done

# A change during a grading: the stale one is cancelled, a new one starts.
cp "$SUB/hello.py" "$TMP/good.py"
printf 'import os\nos.execvp("sleep", ["sleep", "297"])\n' > "$SUB/hello.py"
tries=0
while ! pgrep -f "sleep 297" > /dev/null; do
    tries=$((tries + 1))
    [ $tries -gt 400 ] && { echo "watch bench: the slow grading did not start"; exit 1; }
    sleep 0.05
done
t=$(now_ms)
cp "$TMP/good.py" "$SUB/hello.py"
k=$((k + 1))
wait_verdicts $k
cancel=$(( $(field start) - t ))

row() {
    printf '%-28s %8s ms %7s ms %7s ms   (%s)\n' "$1" "$(median < "$2")" "$(sort -n "$2" | head -1)" \
        "$(sort -n "$2" | tail -1)" "$3"
}
printf '%-28s %10s %10s %10s\n' "mqlab watch ($N changes)" "median" "min" "max"
row "change -> grading start" "$TMP/react" "300 ms of it is the debounce"
row "grading end -> verdict" "$TMP/show" "target < 1000 ms"
row "change -> verdict" "$TMP/total" "a whole lab-01 grading included"
printf '%-28s %8s ms   (the stale grading cancelled, then the debounce)\n' "change in a grading -> start" "$cancel"
