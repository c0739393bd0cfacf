# Lab 09 · consumer.py - store each reading exactly once (paho-mqtt 1.6 + sqlite3).
#
# The kit runs this with MQTT_HOST, MQTT_PORT, MQTT_CLIENT_ID, MQTT_TOPIC (a
# filter) and LAB_DB (the path of your SQLite database) in the environment.
# It repeats readings, reorders them, sends one malformed message, and kills
# this program with SIGKILL half-way. Read README.md (or `mqlab show 09`) for
# what it must do.
import json
import os
import sqlite3
import sys

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
topic_filter = os.environ["MQTT_TOPIC"]

# paho's callbacks may run on another thread than this one.
db = sqlite3.connect(os.environ["LAB_DB"], check_same_thread=False)
# TODO 1: create the table readings(id, topic, ts, value) if it is not there.
#         Which column decides that a reading is already stored?


def on_connect(client, userdata, flags, rc):
    # TODO 2: subscribe to topic_filter here (it runs on every connection),
    #         at the QoS that makes the broker wait for your acknowledgement.
    pass


def on_message(client, userdata, msg):
    # TODO 3: read the JSON payload {"id", "ts", "v"}; skip (and log on
    #         stderr) anything that is not a valid reading, without crashing.
    # TODO 4: store it once: a copy of a stored reading must change nothing,
    #         even after this process was killed and started again.
    #         Commit before returning: paho sends the PUBACK after this.
    print(msg.topic, msg.payload.decode(errors="replace"), flush=True)


client = mqtt.Client(client_id=client_id, clean_session=False)
client.on_connect = on_connect
client.on_message = on_message
client.connect(host, port, keepalive=20)

# TODO 5: run until SIGTERM, then disconnect and close the database.
print("consumer.py is not written yet", file=sys.stderr)
client.disconnect()
sys.exit(1)
