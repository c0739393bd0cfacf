"""Known-bad lab 06 producer: the reference solution with "ts" in seconds
since 1970 instead of milliseconds."""
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

# acme/v1/planta-1/norte/sensor-07/temp -> acme/v1/planta-1/norte/sensor-07/estado
state_topic = topic.rsplit("/", 1)[0] + "/estado"

acked = set()               # mids whose PUBACK has arrived
acked_lock = threading.Lock()


def log(msg):
    print(f"producer: {msg}", file=sys.stderr, flush=True)


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        log(f"connection refused: {mqtt.connack_string(rc)}")
        return
    log(f"connected (session present: {flags.get('session present', 0)})")
    client.publish(state_topic, "online", qos=1, retain=True)


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
client.will_set(state_topic, "offline", qos=1, retain=True)
client.reconnect_delay_set(min_delay=1, max_delay=30)
client.connect(host, port, keepalive=10)
client.loop_start()

mids = []
start = time.monotonic()
for i in range(count):
    reading = {
        "id": f"{client_id}-{i + 1:04d}",     # unique per reading, the same in every re-send
        "ts": int(time.time()),           # seconds, not milliseconds
        "v": round(21.0 + random.uniform(-1.5, 1.5), 2),
    }
    info = client.publish(topic, json.dumps(reading), qos=1)
    mids.append(info.mid)
    # Keep the schedule, whatever happens to the broker meanwhile.
    delay = start + (i + 1) * interval - time.monotonic()
    if delay > 0:
        time.sleep(delay)

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

# Leaving on purpose: say so, since the DISCONNECT below discards the will.
bye = client.publish(state_topic, "offline", qos=1, retain=True)
try:
    bye.wait_for_publish(timeout=2)
except (RuntimeError, ValueError):
    pass
client.disconnect()
client.loop_stop()
log(f"all {count} readings acknowledged")
