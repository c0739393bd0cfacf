"""Known-bad lab 06 collector: the reference solution without a SIGTERM
handler. SIGTERM's default action kills it on the spot: no DISCONNECT, and
the exit is by the signal, not code 0. Its session survives anyway
(clean session 0), so it still gets the queued messages on its return."""
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
    client.subscribe(topic, qos=1)


def on_disconnect(client, userdata, rc):
    if rc != 0:
        log("link lost; paho reconnects with back-off")


def on_message(client, userdata, msg):
    print(f"{msg.topic} {msg.payload.decode('utf-8', 'replace')}", flush=True)



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
