#!/bin/sh
# Reaches for everything outside its own folder. Every attempt is
# written on stderr, so a failed test shows what got through.
try() { if "$@" >/dev/null 2>&1; then echo "GOT: $*" >&2; else echo "denied: $*" >&2; fi; }
# The grader's home folder (its own $HOME is a private one) and files.
try sh -c 'echo pwned > "@HOME@/pwned"'
try sh -c 'echo pwned > "@TMP@/mqlab-hostile-pwned"'
try sqlite3 "@DB@" "update attempts set score = 0 where student = 'ana'"
for p in /proc/[0-9]*; do
  for db in "$p"/cwd/*.db "$p/root@DB@"; do
    [ -f "$db" ] && try sqlite3 "$db" "update attempts set score = 0 where student = 'ana'"
  done
done
# The neighbour's work: copy it, and run it to get its score.
try cp "@CLASS@/ana/hello.py" ./stolen.py
[ -f stolen.py ] || try cp ../ana/hello.py ./stolen.py
[ -f stolen.py ] && exec /usr/bin/python3 stolen.py
exit 0
