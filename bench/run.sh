#!/bin/sh
# make bench: how long grading takes, and how fast the CLI starts.
#   - grading time of each lab's reference solution (median of N runs;
#     target <= 3 s each for labs 01 and 02, <= 10 s for 03 to 09)
#   - start time of `mqlab list` (median of 50 runs; target <= 20 ms)
#   - a QoS 1 stream through the proxy against direct (bench/proxy.sh)
#   - the load generator against mosquitto_pub and paho (bench/load.sh)
# Figures only: nothing here fails on a slow machine.
cd "$(dirname "$0")/.." || exit 2
N=${N:-5}
export NO_COLOR=1 MQLAB_LANG=en
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-bench-XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
export MQLAB_DB="$TMP/progress.db"

now_ns() { date +%s%N; }

# median of numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "mqlab bench on $(nproc) cores, $(uname -r)"
echo
printf '%-28s %10s %10s %10s\n' "grading (reference)" "median" "min" "max"
for dir in $(find solutions -mindepth 1 -type d ! -name ".*" ! -path "*/.*" ! -name "__*" | sort); do
    dir="$dir/"
    # a folder of files is one submission; one holding only folders is not
    ls -p "$dir" | grep -v / | grep -v '^README.md$' | grep -q . || continue
    lab=$(echo "$dir" | cut -d/ -f2)
    name=$(echo "$dir" | sed 's|^solutions/||; s|/$||')
    : > "$TMP/times"
    i=0
    while [ $i -lt "$N" ]; do
        t0=$(now_ns)
        ./mqlab check "$lab" "$dir" --no-record --format json > "$TMP/out" 2>&1
        rc=$?
        t1=$(now_ns)
        [ $rc -eq 0 ] || { echo "  $name: exit $rc (not full marks)"; cat "$TMP/out"; }
        echo $(( (t1 - t0) / 1000000 )) >> "$TMP/times"
        i=$((i + 1))
    done
    med=$(median < "$TMP/times")
    min=$(sort -n "$TMP/times" | head -1)
    max=$(sort -n "$TMP/times" | tail -1)
    printf '%-28s %8s ms %7s ms %7s ms\n' "$name" "$med" "$min" "$max"
done

echo
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
sh bench/proxy.sh

echo
sh bench/load.sh
