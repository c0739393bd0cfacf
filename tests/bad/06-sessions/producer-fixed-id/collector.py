"""Lab 06 reference collector: a persistent session keeps what arrives while
we are away.

- A stable client id (MQTT_CLIENT_ID) and clean_session=False: the broker
  keeps our session (the subscription and a queue of QoS 1 messages) after
  we disconnect, and hands it back when we connect again with the same id.
- The subscription is at QoS 1. A message is delivered at the lower of its
  own QoS and the subscription's, and the broker queues for an offline
  client only what is delivered at QoS 1 or 2.
- We subscribe again in on_connect. With a persistent session it is not
  needed (the broker remembers), but it costs nothing and also covers the
  day the session is gone (first run, or the broker lost it).
- Each message is printed as `TOPIC PAYLOAD` and flushed at once.
- SIGTERM ends us cleanly: DISCONNECT, then exit 0. A clean DISCONNECT
  does not end a persistent session: only clean_session=True does.
"""
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
