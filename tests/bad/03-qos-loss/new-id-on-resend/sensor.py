"""Known-bad lab 03 program: the reference solution, except that each reading's
id comes from the clock, and after every reconnection the program publishes
again, built anew, each reading that had no PUBACK yet. paho re-sends its
own copy too (DUP=1, old id), so those readings reach the subscriber under
two ids."""
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


def reading(n):
    # The mistake, part 1: the id comes from the clock, so building the
    # same reading again gives it a new id.
    return json.dumps({"id": f"{client_id}-{time.time_ns() // 1000}", "ts": int(time.time() * 1000),
                       "v": round(21.0 + random.uniform(-1.5, 1.5), 2)})


mids_of = {}                # reading number -> the mids it was published under
connections = 0


def send(n):
    info = client.publish(topic, reading(n), qos=1)
    mids_of.setdefault(n, []).append(info.mid)


def on_connect(client, userdata, flags, rc):
    global connections
    if rc != 0:
        log(f"connection refused: {mqtt.connack_string(rc)}")
        return
    connections += 1
    log(f"connected (session present: {flags.get('session present', 0)})")
    if connections > 1:
        # The mistake, part 2: "make sure" by publishing again every
        # reading without a PUBACK, built anew (and so with a new id).
        with acked_lock:
            for n in list(mids_of):
                if not any(m in acked for m in mids_of[n]):
                    send(n)


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

start = time.monotonic()
for i in range(count):
    with acked_lock:
        send(i + 1)
    delay = start + (i + 1) * interval - time.monotonic()
    if delay > 0:
        time.sleep(delay)

deadline = time.monotonic() + 20
while True:
    with acked_lock:
        missing = [n for n, ms in mids_of.items() if not any(m in acked for m in ms)]
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
