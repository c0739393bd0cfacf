# Lab 07 · client.py - one reading over TLS (paho-mqtt 1.6).
#
# The kit runs this with MQTT_HOST, MQTT_PORT, MQTT_CAFILE, MQTT_CLIENT_ID
# and MQTT_TOPIC in the environment: first against its own TLS broker,
# then against impostors that must be refused. Read README.md (or
# `mqlab show 07`) for what it must do.
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
cafile = os.environ["MQTT_CAFILE"]
client_id = os.environ["MQTT_CLIENT_ID"]
topic = os.environ["MQTT_TOPIC"]

connected = threading.Event()


def on_connect(client, userdata, flags, rc):
    if rc == 0:
        connected.set()


client = mqtt.Client(client_id=client_id, clean_session=True)
client.on_connect = on_connect

# TODO 1: turn TLS on before connect(), trusting the CA in `cafile` and
#         nothing else, with the certificate and the host name verified.
# TODO 2: if the broker's certificate does not verify, connect() raises:
#         say why on stderr and exit with a non-zero code.

client.connect(host, port, keepalive=30)
client.loop_start()
if not connected.wait(5):
    print("no CONNACK: is this a TLS port? (TODO 1)", file=sys.stderr)
    client.loop_stop()
    sys.exit(1)

# TODO 3: publish one reading at QoS 1, wait for its PUBACK, then leave.
reading = {"id": f"{client_id}-0001", "ts": int(time.time() * 1000), "v": 21.5}
print("not publishing yet:", json.dumps(reading), file=sys.stderr)

client.disconnect()
client.loop_stop()
sys.exit(1)
