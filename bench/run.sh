#!/bin/sh
# make bench: how long grading takes, and how fast the CLI starts.
#   - grading time of each lab's reference solution (median of N runs;
#     target <= 3 s each for labs 01 and 02, <= 10 s for 03 to 09)
#   - the same with --no-sandbox, and the ratio (target <= 1.10)
#   - the sandbox's start cost: prog_start of /bin/true, 200 times each
#     way (target: median <= 20 ms more than without)
#   - start time of `mqlab list` (median of 50 runs; target <= 20 ms)
#   - how fast `mqlab watch` reacts to a change, and prints the verdict
#     once the grading ends (bench/watch.sh; target < 1 s)
#   - a QoS 1 stream through the proxy against direct (bench/proxy.sh)
#   - mqtt.js's QoS 1 stream through the proxy's WebSocket port against
#     its plain port (bench/ws.sh; target >= 0.7)
#   - the load generator against mosquitto_pub and paho (bench/load.sh)
#   - the generator's CPU against the broker's in every mode (bench/limit.sh)
#   - coordinated omission: steady through the proxy with one known
#     stall; corrected p99/p99.9 against the prediction (bench/co.sh;
#     target within 5%), raw far below
#   - a class of 40 students x 10 labs, --jobs 1 against the default
#     (bench/class.sh; target <= 5 min with the default on 2 cores)
# Figures only: nothing here fails on a slow machine.
cd "$(dirname "$0")/.." || exit 2
N=${N:-5}
export NO_COLOR=1 MQLAB_LANG=en
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-bench-XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
export MQLAB_DB="$TMP/progress.db"

now_ns() { date +%s%N; }

. bench/lib.sh

echo "mqlab bench on $(nproc) cores, $(uname -r)"
echo
printf '%-28s %10s %10s %10s %12s %7s\n' "grading (reference)" "median" "min" "max" "unsandboxed" "ratio"
for dir in $(find solutions -mindepth 1 -type d ! -name ".*" ! -path "*/.*" ! -name "__*" | sort); do
    dir="$dir/"
    # a folder of files is one submission; one holding only folders is not
    ls -p "$dir" | grep -v / | grep -v '^README.md$' | grep -q . || continue
    lab=$(echo "$dir" | cut -d/ -f2)
    name=$(echo "$dir" | sed 's|^solutions/||; s|/$||')
    : > "$TMP/times"
    : > "$TMP/free"
    i=0
    # Sandboxed and unsandboxed runs alternate, so a change of load hits
    # both alike; the ratio of the medians is the sandbox's cost.
    while [ $i -lt "$N" ]; do
        for how in sandbox free; do
            flag=""
            [ $how = free ] && flag="--no-sandbox"
            t0=$(now_ns)
            ./mqlab check "$lab" "$dir" --no-record --format json $flag > "$TMP/out" 2>"$TMP/err"
            rc=$?
            t1=$(now_ns)
            [ $rc -eq 0 ] || { echo "  $name ($how): exit $rc (not full marks)"; cat "$TMP/out" "$TMP/err"; }
            if [ $how = sandbox ]; then echo $(( (t1 - t0) / 1000000 )) >> "$TMP/times"
            else echo $(( (t1 - t0) / 1000000 )) >> "$TMP/free"; fi
        done
        i=$((i + 1))
    done
    med=$(median < "$TMP/times")
    min=$(sort -n "$TMP/times" | head -1)
    max=$(sort -n "$TMP/times" | tail -1)
    free=$(median < "$TMP/free")
    ratio=$(awk -v a="$med" -v b="$free" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-28s %8s ms %7s ms %7s ms %9s ms %7s\n' "$name" "$med" "$min" "$max" "$free" "$ratio"
done

echo
if [ -x "${UNIT_TESTS:-build/unit-tests}" ]; then
    "${UNIT_TESTS:-build/unit-tests}" --start-cost 200 | sed -n '/start cost/,/sandbox off/p'
    echo
fi
: > "$TMP/times"
i=0
while [ $i -lt 50 ]; do
    t0=$(now_ns)
    ./mqlab list > /dev/null 2>&1
    t1=$(now_ns)
    echo $(( (t1 - t0) / 1000 )) >> "$TMP/times"
    i=$((i + 1))
done
med=$(median < "$TMP/times")
min=$(sort -n "$TMP/times" | head -1)
printf '%-28s %8s us %7s us   (50 runs; target <= 20000 us)\n' "mqlab list start" "$med" "$min"

echo
sh bench/watch.sh

echo
sh bench/proxy.sh

echo
sh bench/ws.sh

echo
sh bench/load.sh
echo
sh bench/limit.sh

echo
sh bench/co.sh

# A whole class (40 students x 10 labs), sequential against the default
# --jobs: about half an hour, most of it the sequential run.
echo
sh bench/class.sh
