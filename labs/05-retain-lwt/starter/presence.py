# Lab 05 · presence.py - a device that says whether it is alive (paho-mqtt 1.6).
#
# The kit runs this with MQTT_HOST, MQTT_PORT (its proxy), MQTT_CLIENT_ID,
# MQTT_TOPIC (the device's root) and LAB_INTERVAL_MS in the environment,
# and stops it with SIGTERM. Read README.md (or `mqlab show 05`) for what
# it must do.
#
# As it is, it runs: it says `online` once and sends readings until it is
# killed. The kit will show you what a dashboard would believe then.
import json
import os
import random
import time

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
root = os.environ["MQTT_TOPIC"]
interval = int(os.environ["LAB_INTERVAL_MS"]) / 1000.0

STATE = f"{root}/estado"
TEMP = f"{root}/temp"

client = mqtt.Client(client_id=client_id, clean_session=False)

# TODO 1: leave a Last Will with the broker before connecting, so that it
#         says `offline` on STATE for you if you die without a word.
#         Should a late subscriber see it too?

# TODO 2: how long would the broker wait before it noticed a silent death?
#         (paho's default keepalive is 60 s; the broker waits 1.5 times that)
client.connect(host, port)
client.loop_start()   # paho's network thread: it also reconnects after a cut

# TODO 3: a subscriber that arrives later should see `online` too. And
#         after a cut the broker will have published your will: where do
#         you say `online` again? (on_connect runs on every connection)
client.publish(STATE, "online", qos=1)

# TODO 4: on SIGTERM, say `offline` yourself, disconnect and exit 0. Why
#         does the will not cover this case?
n = 0
while True:
    n += 1
    reading = {"id": f"{client_id}-{n:05d}", "ts": int(time.time() * 1000),
               "v": round(21.0 + random.uniform(-1.5, 1.5), 2)}
    # TODO 5: should a reading be retained?
    client.publish(TEMP, json.dumps(reading), qos=1)
    time.sleep(interval)
