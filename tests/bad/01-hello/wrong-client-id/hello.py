"""Known-bad lab 01 program: everything right except the client id, which
is made up instead of read from MQTT_CLIENT_ID."""
import os

import paho.mqtt.client as mqtt

topic = os.environ["MQTT_TOPIC"]


def on_connect(client, userdata, flags, rc):
    client.subscribe(topic, qos=1)


def on_subscribe(client, userdata, mid, granted_qos):
    client.publish(topic, "hola", qos=1)


def on_message(client, userdata, msg):
    print(f"{msg.topic} {msg.payload.decode()}", flush=True)
    client.disconnect()


# The mistake: a hard-coded id (the broker would kick out another device
# using the same one).
client = mqtt.Client(client_id="mi-cliente-hello", clean_session=True)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=30)
client.loop_forever()
