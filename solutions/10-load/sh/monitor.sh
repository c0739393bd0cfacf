#!/bin/sh
# Lab 10 reference monitor in POSIX sh: mosquitto_sub does the MQTT, this
# loop the two alarms, with the same rules as monitor.py.
#
# - mosquitto_sub subscribes to MQTT_TOPIC ($SYS/broker/#) with our client
#   id; -R leaves out retained messages (the last value the broker reported
#   before we subscribed, not a new report), and -F prints, per message,
#   the time in seconds, the topic and the payload on one line, flushed.
# - ALERT clients: clients/connected falls to half or less of the highest
#   count of the last 10 s, and by at least 10 clients; once per drop.
# - ALERT backlog: store/messages/count went up in 3 reports in a row, by
#   at least 100 in all; a report that does not go up starts the count
#   again; once per growth.
# - echo writes each line straight to the pipe: nothing waits in a buffer.
# - SIGTERM reaches the whole process group (mosquitto_sub and this loop).

: "${MQTT_HOST:?not set}" "${MQTT_PORT:?not set}" "${MQTT_CLIENT_ID:?not set}"
TOPIC=${MQTT_TOPIC:-'$SYS/broker/#'}
WINDOW=10 MIN_DROP=10 RISES=3 MIN_GROWTH=100

recent=""          # "time:count time:count ..." over the last WINDOW s
clients_alerted=0
last_stored="" rises=0 growth=0 backlog_alerted=0

mosquitto_sub -h "$MQTT_HOST" -p "$MQTT_PORT" -i "$MQTT_CLIENT_ID" -k 30 -q 0 -R \
    -t "$TOPIC" -F '%U %t %p' |
while read -r when topic value; do
    now=${when%%[!0-9]*}        # whole seconds are enough for a 10 s window
    case $value in ''|*[!0-9]*) continue ;; esac
    case $topic in
    '$SYS/broker/clients/connected')
        # Keep the newest entry older than the window (still in force when
        # it began: $SYS only speaks on a change) and everything after it.
        kept="" prev=""
        for e in $recent; do
            if [ "${e%%:*}" -le $((now - WINDOW)) ]; then prev=$e; else kept="$kept $e"; fi
        done
        recent="$prev$kept $now:$value"
        peak=0
        for e in $recent; do
            [ "${e#*:}" -gt "$peak" ] && peak=${e#*:}
        done
        if [ $((value * 2)) -le "$peak" ] && [ $((peak - value)) -ge $MIN_DROP ]; then
            if [ $clients_alerted -eq 0 ]; then
                echo "ALERT clients $peak -> $value connected (fell $((peak - value)) in under $WINDOW s)"
                clients_alerted=1
            fi
        elif [ $((value * 2)) -gt "$peak" ]; then
            clients_alerted=0
        fi
        ;;
    '$SYS/broker/store/messages/count')
        if [ -n "$last_stored" ] && [ "$value" -gt "$last_stored" ]; then
            rises=$((rises + 1)) growth=$((growth + value - last_stored))
        else
            rises=0 growth=0 backlog_alerted=0
        fi
        last_stored=$value
        if [ $rises -ge $RISES ] && [ $growth -ge $MIN_GROWTH ] && [ $backlog_alerted -eq 0 ]; then
            echo "ALERT backlog $value messages stored, +$growth over the last $rises reports"
            backlog_alerted=1
        fi
        ;;
    esac
done
