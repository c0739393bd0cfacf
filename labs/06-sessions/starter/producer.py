# Lab 06 · producer.py - readings that survive a broker restart (paho-mqtt 1.6).
#
# The kit runs this with MQTT_HOST, MQTT_PORT, MQTT_CLIENT_ID, MQTT_TOPIC,
# LAB_COUNT and LAB_INTERVAL_MS in the environment, and restarts the broker
# while it runs. Read README.md (or `mqlab show 06`) for what it must do.
import json
import os
import sys
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


def reading(n):
    """The n-th reading as a JSON payload. Its id must be unique per reading
    and stay the same if the reading is sent again."""
    return json.dumps({"id": f"{client_id}-{n:04d}", "ts": int(time.time() * 1000), "v": 21.5})


client = mqtt.Client(client_id=client_id, clean_session=False)
# TODO 1: declare the Last Will (before connect()): "offline" on state_topic,
#         retained, so that a late subscriber sees it too.
client.connect(host, port, keepalive=10)
client.loop_start()   # paho's network thread: it reconnects, waiting 1 s, 2 s, 4 s...

# TODO 2: publish `count` readings on `topic`, one every `interval` seconds,
#         at a QoS that keeps them while the broker is away.
# TODO 3: count the acknowledgements in on_publish(client, userdata, mid)
#         and wait until every reading has one (with a deadline).
# TODO 4: then disconnect, stop the loop and exit with code 0.

print("producer.py is not written yet", file=sys.stderr)
client.disconnect()
client.loop_stop()
sys.exit(1)
