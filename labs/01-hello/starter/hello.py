# Lab 01 · hello.py - your first MQTT client (paho-mqtt 1.6).
#
# The kit runs this with MQTT_HOST, MQTT_PORT, MQTT_CLIENT_ID and MQTT_TOPIC
# in the environment. Read README.md (or `mqlab show 01`) for what it must do.
import os
import sys

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
topic = os.environ["MQTT_TOPIC"]

# TODO 1: create the client with client_id, connect to host:port.
# TODO 2: subscribe to topic; when the SUBACK arrives, publish "hola" (QoS 1).
# TODO 3: on your own message, print "TOPIC PAYLOAD" (flush!), then disconnect.

print("hello.py is not written yet", file=sys.stderr)
sys.exit(1)
