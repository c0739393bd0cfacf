"""Known-bad lab 01 program: publishes "hola" as soon as it is connected,
before it subscribes, instead of waiting for the SUBACK. The broker
routes the message before the subscription exists, so it never comes
back. After 3 s without it, the program gives up and leaves cleanly."""
import os
import sys
import threading

import paho.mqtt.client as mqtt

topic = os.environ["MQTT_TOPIC"]
got = threading.Event()


def on_connect(client, userdata, flags, rc):
    # The mistake: publish first, subscribe afterwards.
    client.publish(topic, "hola", qos=1)
    client.subscribe(topic, qos=1)


def on_message(client, userdata, msg):
    print(f"{msg.topic} {msg.payload.decode()}", flush=True)
    got.set()


client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=True)
client.on_connect = on_connect
client.on_message = on_message
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=30)
client.loop_start()
if not got.wait(3):
    print("hello: my message never came back", file=sys.stderr)
client.disconnect()
client.loop_stop()
