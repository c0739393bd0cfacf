"""Known-bad lab 05 program: the reference solution without will_set().

Its CONNECT carries no Last Will, so when it dies without a word (SIGKILL,
a cut link) the broker has nothing to publish, and `online` stays the
retained state of a dead device. On SIGTERM it still says `offline` itself.
"""
import json
import os
import random
import signal
import sys
import time

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
root = os.environ["MQTT_TOPIC"]
interval = int(os.environ.get("LAB_INTERVAL_MS", "1000")) / 1000.0

STATE = f"{root}/estado"
TEMP = f"{root}/temp"
KEEPALIVE = 20

stopping = False


def log(msg):
    print(f"presence: {msg}", file=sys.stderr, flush=True)


def on_term(signum, frame):
    # Only set a flag: the main loop does the goodbye, outside the handler.
    global stopping
    stopping = True


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        log(f"connection refused: {mqtt.connack_string(rc)}")
        return
    # Every (re)connection: the will may have left `offline` behind.
    client.publish(STATE, "online", qos=1, retain=True)
    log("connected, online")


def on_disconnect(client, userdata, rc):
    if rc != 0:
        log("link lost; paho reconnects with back-off")


signal.signal(signal.SIGTERM, on_term)

client = mqtt.Client(client_id=client_id, clean_session=False)
client.on_connect = on_connect
client.on_disconnect = on_disconnect
client.reconnect_delay_set(min_delay=1, max_delay=8)
client.connect(host, port, keepalive=KEEPALIVE)
client.loop_start()

# Ids must stay unique across restarts of the program too: a counter
# alone would start again at 1, so each run adds its start time.
boot = int(time.time() * 1000)
n = 0
next_due = time.monotonic()
while not stopping:
    now = time.monotonic()
    if now >= next_due:
        n += 1
        reading = {
            "id": f"{client_id}-{boot}-{n:05d}",
            "ts": int(time.time() * 1000),
            "v": round(21.0 + random.uniform(-1.5, 1.5), 2),
        }
        client.publish(TEMP, json.dumps(reading), qos=1, retain=False)
        next_due += interval
    else:
        # Short naps, so SIGTERM is noticed within 50 ms.
        time.sleep(min(0.05, next_due - now))

# Goodbye: say `offline` ourselves, because the clean DISCONNECT below
# makes the broker discard the will.
info = client.publish(STATE, "offline", qos=1, retain=True)
if info.rc == mqtt.MQTT_ERR_SUCCESS:
    deadline = time.monotonic() + 3
    while not info.is_published() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not info.is_published():
        log("offline was not acknowledged in time")
else:
    # The link is down right now: the broker has already published the
    # will for us. (In paho 1.6, is_published() would raise here.)
    log("not connected; the will has said offline")
client.disconnect()
client.loop_stop()
log("offline, bye")
sys.exit(0)
