# Lab 03 · sensor.py - readings that survive a failing link (paho-mqtt 1.6).
#
# The kit runs this with MQTT_HOST, MQTT_PORT, MQTT_CLIENT_ID, MQTT_TOPIC,
# LAB_COUNT and LAB_INTERVAL_MS in the environment, through a proxy that
# drops packets and cuts the connection. Read README.md (or `mqlab show 03`)
# for what it must do.
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


def reading(n):
    """The n-th reading as a JSON payload. Its id must be unique per reading
    and stay the same if the reading is sent again."""
    return json.dumps({"id": f"{client_id}-{n:04d}", "ts": int(time.time() * 1000), "v": 21.5})


client = mqtt.Client(client_id=client_id, clean_session=False)
client.connect(host, port, keepalive=10)
client.loop_start()   # paho's network thread: it also reconnects after a cut

# TODO 1: publish `count` readings on `topic`, one every `interval` seconds
#         (reading n is due at start + n * interval, also while the link is
#         down), at the QoS that survives a lost packet.
# TODO 2: count the acknowledgements in an on_publish(client, userdata, mid)
#         callback, and wait until every reading has one (no fixed sleep).
# TODO 3: then, at once, disconnect, stop the loop and exit with code 0.

print("sensor.py is not written yet", file=sys.stderr)
client.disconnect()
client.loop_stop()
sys.exit(1)
