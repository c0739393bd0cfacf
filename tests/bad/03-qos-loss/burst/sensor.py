"""Known-bad lab 03 program: the reference solution, except that it publishes
all its readings at once, with no pause between them: LAB_INTERVAL_MS is
read and never used. paho keeps and re-sends everything, so every reading
arrives and it leaves once all have their PUBACK."""
import json
import os
import random
import sys
import threading
import time

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
topic = os.environ["MQTT_TOPIC"]
count = int(os.environ["LAB_COUNT"])
interval = int(os.environ["LAB_INTERVAL_MS"]) / 1000.0

acked = set()               # mids whose PUBACK has arrived
acked_lock = threading.Lock()


def log(msg):
    print(f"sensor: {msg}", file=sys.stderr, flush=True)


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        log(f"connection refused: {mqtt.connack_string(rc)}")
    else:
        log(f"connected (session present: {flags.get('session present', 0)})")


def on_disconnect(client, userdata, rc):
    if rc != 0:
        log("link lost; paho reconnects with back-off")


def on_publish(client, userdata, mid):
    with acked_lock:
        acked.add(mid)


client = mqtt.Client(client_id=client_id, clean_session=False)
client.on_connect = on_connect
client.on_disconnect = on_disconnect
client.on_publish = on_publish
client.reconnect_delay_set(min_delay=1, max_delay=8)
client.connect(host, port, keepalive=10)
client.loop_start()

mids = []
start = time.monotonic()
for i in range(count):
    reading = {
        "id": f"{client_id}-{i + 1:04d}",     # unique per reading, the same in every re-send
        "ts": int(time.time() * 1000),
        "v": round(21.0 + random.uniform(-1.5, 1.5), 2),
    }
    info = client.publish(topic, json.dumps(reading), qos=1)
    mids.append(info.mid)
    # The mistake: no pause at all, LAB_INTERVAL_MS is read but never used.

deadline = time.monotonic() + 20
while True:
    with acked_lock:
        missing = [m for m in mids if m not in acked]
    if not missing:
        break
    if time.monotonic() > deadline:
        log(f"{len(missing)} readings still unacknowledged; giving up")
        client.loop_stop()
        sys.exit(1)
    time.sleep(0.05)

client.disconnect()
client.loop_stop()
log(f"all {count} readings acknowledged")
