#!/bin/sh
# A class graded whole: STUDENTS students (default 40) x all ten labs, made
# from solutions/ and the known-bad submissions in tests/bad/, with a few
# labs not handed in and a few programs misnamed. The data-file answers in
# solutions/ fit only the student `reference`, so most of the class does
# not score full marks: the class is mixed and deterministic, not perfect.
#
# It is graded twice in one run, with --jobs 1 and with the default jobs,
# and reports for each: wall time, CPU % (user + system of every process
# over the wall time), the peak memory the machine had in use above what
# it used before, and whether the verdicts are identical.
#   STUDENTS=8 sh bench/class.sh      a quicker look
#   SEQUENTIAL=0 sh bench/class.sh    only the default jobs
cd "$(dirname "$0")/.." || exit 2
STUDENTS=${STUDENTS:-40}
SEQUENTIAL=${SEQUENTIAL:-1}
export NO_COLOR=1 MQLAB_LANG=en
unset MQLAB_STUDENT
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqlab-class-XXXXXX")
trap '[ -n "$KEEP" ] || rm -rf "$TMP"' EXIT INT TERM
CLASS="$TMP/class"
mkdir -p "$CLASS"

# The submissions of one lab: every folder of files under solutions/LAB
# and tests/bad/LAB.
candidates() {
    for d in "solutions/$1" solutions/"$1"/* tests/bad/"$1"/*; do
        [ -d "$d" ] || continue
        ls -p "$d" | grep -v / | grep -v -e '^EXPECT$' -e '^README.md$' | grep -q . && echo "$d"
    done
}

labs=$(ls labs)
i=1
while [ "$i" -le "$STUDENTS" ]; do
    s=$(printf 's%02d' "$i")
    mkdir -p "$CLASS/$s"
    l=0
    for lab in $labs; do
        l=$((l + 1))
        # about one lab in eleven is not handed in
        [ $(( (i + l) % 11 )) -eq 0 ] && continue
        set -- $(candidates "$lab")
        k=$(( (i * 7 + l * 3) % $# + 1 ))
        eval "src=\${$k}"
        dst="$CLASS/$s/$lab"
        mkdir -p "$dst"
        for f in "$src"/*; do
            [ -f "$f" ] || continue
            case "$(basename "$f")" in EXPECT|README.md) continue ;; esac
            cp -p "$f" "$dst/"
        done
        # and about one in seventeen has its program misnamed
        if [ $(( (i * l) % 17 )) -eq 5 ]; then
            for f in "$dst"/*.py; do
                [ -f "$f" ] && mv "$f" "$dst/$(basename "$f" .py)_final.py"
            done
        fi
    done
    i=$((i + 1))
done
echo "mqlab class bench on $(nproc) cores: $STUDENTS students x $(echo $labs | wc -w) labs" \
     "($(find "$CLASS" -mindepth 2 -maxdepth 2 -type d | wc -l) lab folders)"

mem_used_kb() {
    awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print t - a}' /proc/meminfo
}

# grade NAME ARGS...: one graded run, its figures on one line.
grade() {
    name=$1
    shift
    base=$(mem_used_kb)
    : > "$TMP/mem"
    ( while :; do mem_used_kb >> "$TMP/mem"; sleep 1; done ) &
    sampler=$!
    /usr/bin/time -f "%e %U %S" -o "$TMP/time-$name" \
        ./mqlab grade all "$CLASS" --format json --db "$TMP/$name.db" "$@" > "$TMP/$name.json" 2> "$TMP/$name.err"
    rc=$?
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null
    peak=$(sort -n "$TMP/mem" | tail -1)
    read -r wall user sys < "$TMP/time-$name"
    awk -v n="$name" -v w="$wall" -v u="$user" -v s="$sys" -v b="$base" -v p="${peak:-0}" -v rc="$rc" 'BEGIN {
        printf "%-16s wall %7.1f s   CPU %5.0f %%   peak memory +%5.0f MB   exit %d\n",
               n, w, (u + s) * 100 / w, (p - b) / 1024, rc }'
}

# 30 submissions of lab 03 (the reference's sensor.py), default jobs.
L03="$TMP/lab03"
for k in $(seq -w 1 30); do mkdir -p "$L03/s$k"; cp -p solutions/03-qos-loss/sensor.py "$L03/s$k/"; done
/usr/bin/time -f "%e %U %S" -o "$TMP/time-03" ./mqlab grade 03 "$L03" --format csv --db "$TMP/l03.db" > "$TMP/l03.csv" 2>&1
read -r wall user sys < "$TMP/time-03"
awk -v w="$wall" -v u="$user" -v s="$sys" -v n="$(grep -c '^s[0-9]*,11,' "$TMP/l03.csv")" 'BEGIN {
    printf "%-16s wall %7.1f s   CPU %5.0f %%   %d of 30 at full marks\n", "lab 03 x 30", w, (u + s) * 100 / w, n }'

grade "default-jobs"
[ "$SEQUENTIAL" = 1 ] && grade "jobs-1" --jobs 1

/usr/bin/python3 - "$TMP" "$SEQUENTIAL" <<'EOF'
import json, sys
tmp, seq = sys.argv[1], sys.argv[2] == "1"
def load(name):
    with open(f"{tmp}/{name}.json") as f:
        doc = json.load(f)
    return doc, [(v["student"], v["lab"], v["score"], v.get("incomplete", False), "missing" in v,
                  tuple((c["id"], c["passed"], c["skipped"]) for c in v["checks"])) for v in doc["verdicts"]]
doc, par = load("default-jobs")
full = sum(1 for v in doc["verdicts"] if "missing" not in v and not v.get("incomplete") and v["score"] == v["max_score"])
missing = sum(1 for v in doc["verdicts"] if "missing" in v)
incomplete = sum(1 for v in doc["verdicts"] if v.get("incomplete"))
print(f"verdicts: {len(par)}; {full} at full marks, {missing} missing, {incomplete} did not finish")
if seq:
    _, one = load("jobs-1")
    diff = [(a, b) for a, b in zip(par, one) if a != b]
    print("verdicts identical to --jobs 1:", "yes" if par == one else f"NO ({len(diff)} differ)")
    for a, b in diff[:10]:
        print("  default:", a[:5], [c for c in a[5] if not c[1]])
        print("  jobs 1: ", b[:5], [c for c in b[5] if not c[1]])
EOF
