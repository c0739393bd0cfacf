# Lab 06 · collector.py - a collector that keeps its session (paho-mqtt 1.6).
#
# The kit runs this with MQTT_HOST, MQTT_PORT, MQTT_CLIENT_ID and MQTT_TOPIC
# (a filter) in the environment. It stops it with SIGTERM, publishes while
# it is away, and starts it again. Read README.md (or `mqlab show 06`) for
# what it must do.
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
signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())


def on_message(client, userdata, msg):
    # TODO 3: print one line "TOPIC PAYLOAD" on stdout, and flush it.
    pass


# TODO 1: a session the broker keeps while we are away: which client id,
#         and what should clean_session be?
client = mqtt.Client()
client.on_message = on_message
# TODO 2: subscribe to `topic` in an on_connect(client, userdata, flags, rc)
#         callback, at the QoS the broker keeps for a client that is away.
client.connect(host, port, keepalive=30)
client.loop_start()   # paho's network thread: it also reconnects after a cut

# TODO 4: wait here until SIGTERM (stop.wait(...)), then disconnect,
#         stop the loop and exit with code 0.

print("collector.py is not written yet", file=sys.stderr)
client.disconnect()
client.loop_stop()
sys.exit(1)
