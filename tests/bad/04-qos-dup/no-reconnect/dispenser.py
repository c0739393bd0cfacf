"""Known-bad lab 04 program: the reference solution, except that it gives up
(exit code 1) as soon as the link is lost, instead of reconnecting and
finishing the exchanges left half done."""
import json
import os
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt

QOS = 2
TOPIC = os.environ["MQTT_TOPIC"]
COUNT = int(os.environ.get("LAB_COUNT", "6"))
DEADLINE_S = 30

connected = threading.Event()
lock = threading.Condition()
complete = set()  # mids whose exchange finished (on_publish)


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        print(f"connection refused: {mqtt.connack_string(rc)}", file=sys.stderr, flush=True)
        return
    connected.set()


def on_disconnect(client, userdata, rc):
    # The mistake: treat a lost link as the end of the job.
    if rc != 0:
        print("link lost; giving up", file=sys.stderr, flush=True)
        os._exit(1)


def on_publish(client, userdata, mid):
    # At QoS 2 this is the PUBCOMP. It may come before publish() has
    # returned the mid to the main thread, hence the shared set.
    with lock:
        complete.add(mid)
        lock.notify_all()


client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=False)
client.on_connect = on_connect
client.on_publish = on_publish
client.on_disconnect = on_disconnect
client.reconnect_delay_set(min_delay=1, max_delay=4)
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=20)
client.loop_start()

if not connected.wait(10):
    print("no CONNACK within 10 s", file=sys.stderr)
    client.loop_stop()
    sys.exit(1)

batch = uuid.uuid4().hex[:8]
mids = []
for n in range(1, COUNT + 1):
    payload = json.dumps({"id": f"{batch}-{n}", "ts": int(time.time() * 1000), "v": 2.5 * (1 + n % 3)})
    info = client.publish(TOPIC, payload, qos=QOS)
    # MQTT_ERR_NO_CONN is fine here: paho keeps the message and sends it
    # when it reconnects. A full queue is not.
    if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
        print(f"command {n}: paho's queue is full", file=sys.stderr)
        sys.exit(1)
    mids.append(info.mid)

with lock:
    done = lock.wait_for(lambda: complete.issuperset(mids), timeout=DEADLINE_S)

client.disconnect()
client.loop_stop()
if not done:
    with lock:
        print(f"{len(set(mids) - complete)} of {COUNT} commands not complete", file=sys.stderr)
    sys.exit(1)
