#!/bin/sh
# Leaves children behind in every way a shell can, then exits at once.
# One of them waits for the grading to end and rewrites the gradebook.
setsid sh -c 'sleep 4105' </dev/null >/dev/null 2>&1 &
nohup sleep 4105 </dev/null >/dev/null 2>&1 &
( ( sleep 4105 </dev/null >/dev/null 2>&1 & ) & )
setsid sh -c 'sleep 3; sqlite3 "@DB@" "update attempts set score = 999 where student = '"'"'escape'"'"'"; echo x > "@TMP@/mqlab-hostile-late"' \
  </dev/null >/dev/null 2>&1 &
exit 0
