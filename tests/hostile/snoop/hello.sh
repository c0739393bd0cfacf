#!/bin/sh
# Reaches for everything outside its own folder. Every attempt is
# written on stderr, so a failed test shows what got through.
try() { if "$@" >/dev/null 2>&1; then echo "GOT: $*" >&2; else echo "denied: $*" >&2; fi; }
# The grader's home folder (its own $HOME is a private one) and files.
try sh -c 'echo pwned > "@HOME@/pwned"'
try sh -c 'echo pwned > "@TMP@/mqlab-hostile-pwned"'
try sqlite3 "@DB@" "update attempts set score = 0 where student = 'ana'"
# Every database path any visible process names, in its working folder,
# its command line or its environment (as through /proc/$PPID).
for p in /proc/[0-9]*; do
  named=$(cat "$p/cmdline" "$p/environ" 2>/dev/null | tr '\0=' '\n\n' | grep '\.db$')
  for db in "$p"/cwd/*.db "$p/root@DB@" $named; do
    [ -f "$db" ] && try sqlite3 "$db" "update attempts set score = 0 where student = 'ana'"
  done
done
# The neighbour's work: copy it, and run it to get its score.
try cp "@CLASS@/ana/hello.py" ./stolen.py
[ -f stolen.py ] || try cp ../ana/hello.py ./stolen.py
[ -f stolen.py ] && exec /usr/bin/python3 stolen.py
exit 0
