"""Known-bad lab 06 collector: the reference solution subscribing at QoS 0.
Its session survives (session present = 1), but a QoS 0 subscription gets
its messages at QoS 0, and Mosquitto queues none of those for a client that
is away: nothing arrives after the restart."""
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


def log(msg):
    print(f"collector: {msg}", file=sys.stderr, flush=True)


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        log(f"connection refused: {mqtt.connack_string(rc)}")
        return
    log(f"connected (session present: {flags.get('session present', 0)})")
    client.subscribe(topic, qos=0)


def on_disconnect(client, userdata, rc):
    if rc != 0:
        log("link lost; paho reconnects with back-off")


def on_message(client, userdata, msg):
    print(f"{msg.topic} {msg.payload.decode('utf-8', 'replace')}", flush=True)


signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

client = mqtt.Client(client_id=client_id, clean_session=False)
client.on_connect = on_connect
client.on_disconnect = on_disconnect
client.on_message = on_message
client.connect(host, port, keepalive=30)
client.loop_start()

while not stop.wait(0.5):
    pass

client.disconnect()
client.loop_stop()
log("stopped")
