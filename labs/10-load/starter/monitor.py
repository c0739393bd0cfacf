# Lab 10 · monitor.py - alarms from the broker's $SYS figures (paho-mqtt 1.6).
#
# The kit runs this with MQTT_HOST, MQTT_PORT, MQTT_CLIENT_ID and MQTT_TOPIC
# ($SYS/broker/#) in the environment, through its proxy, while its load
# generator connects, drops and floods the broker. Read README.md (or
# `mqlab show 10`) for what it must do.
import os
import signal
import sys
import threading

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
topic = os.environ["MQTT_TOPIC"]

stop = threading.Event()


def on_connect(client, userdata, flags, rc):
    client.subscribe(topic)


def on_message(client, userdata, msg):
    # msg.topic is e.g. "$SYS/broker/clients/connected"; msg.payload is the
    # number as text. msg.retain is True for the stored value you get once
    # on subscribing, which may be old.
    # TODO 1: follow $SYS/broker/clients/connected and print a line starting
    #         with "ALERT clients" (and flush) when it falls sharply.
    # TODO 2: follow $SYS/broker/store/messages/count and print a line
    #         starting with "ALERT backlog" when it keeps growing.
    pass


signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

client = mqtt.Client(client_id=client_id, clean_session=True)
client.on_connect = on_connect
client.on_message = on_message
client.connect(host, port, keepalive=30)
client.loop_start()

print("monitor.py does not raise any alert yet", file=sys.stderr, flush=True)
while not stop.wait(0.5):
    pass

client.disconnect()
client.loop_stop()
