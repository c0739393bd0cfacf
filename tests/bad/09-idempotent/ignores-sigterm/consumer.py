"""Lab 09, known bad: its SIGTERM handler commits and logs, but never stops
the main loop, so the program goes on running after SIGTERM until the kit
kills it.

Otherwise the same as solutions/09-idempotent/consumer.py.
"""
import json
import math
import os
import signal
import sqlite3
import sys
import threading

import paho.mqtt.client as mqtt

TOPIC = os.environ["MQTT_TOPIC"]

# The connection is used by paho's network thread only (on_message),
# after being opened here.
db = sqlite3.connect(os.environ["LAB_DB"], check_same_thread=False)
db.execute("""CREATE TABLE IF NOT EXISTS readings (
                  id    TEXT PRIMARY KEY,
                  topic TEXT NOT NULL,
                  ts    INTEGER NOT NULL,
                  value REAL NOT NULL)""")
db.commit()


def parse(payload):
    """The reading in payload as (id, ts, v), or None when it is not one."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    rid, ts, v = data.get("id"), data.get("ts"), data.get("v")
    if not isinstance(rid, str) or not rid:
        return None
    for x in (ts, v):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            return None
    return rid, ts, v


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        print(f"connection refused: {mqtt.connack_string(rc)}", file=sys.stderr, flush=True)
        return
    # Subscribing on every connection is harmless with a kept session,
    # and needed when the broker did not keep it.
    client.subscribe(TOPIC, qos=1)


def on_message(client, userdata, msg):
    reading = parse(msg.payload)
    if reading is None:
        print(f"skipped a malformed message on {msg.topic}: {msg.payload[:80]!r}", file=sys.stderr, flush=True)
        return
    rid, ts, v = reading
    cur = db.execute("INSERT OR IGNORE INTO readings (id, topic, ts, value) VALUES (?, ?, ?, ?)",
                     (rid, msg.topic, ts, v))
    db.commit()
    if cur.rowcount == 0:
        print(f"already stored: {rid}", file=sys.stderr, flush=True)


# paho's network thread runs the callbacks; the main thread only waits
# for SIGTERM, then leaves cleanly: DISCONNECT, stop the thread, close
# the database.
stop = threading.Event()
def on_term(signum, frame):
    db.commit()
    print("SIGTERM: everything is committed", file=sys.stderr, flush=True)


signal.signal(signal.SIGTERM, on_term)

client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=False)
client.on_connect = on_connect
client.on_message = on_message
client.reconnect_delay_set(min_delay=1, max_delay=4)
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=20)
client.loop_start()
while not stop.wait(1):
    pass
client.disconnect()
client.loop_stop()
db.close()
