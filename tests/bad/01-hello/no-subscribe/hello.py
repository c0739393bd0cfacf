"""Known-bad lab 01 program: publishes "hola" but never subscribes, so it
cannot receive its own message. It leaves once the PUBACK arrives."""
import os

import paho.mqtt.client as mqtt

topic = os.environ["MQTT_TOPIC"]


def on_connect(client, userdata, flags, rc):
    # The mistake: no client.subscribe(topic) before publishing.
    client.publish(topic, "hola", qos=1)


def on_publish(client, userdata, mid):
    client.disconnect()


client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=True)
client.on_connect = on_connect
client.on_publish = on_publish
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=30)
client.loop_forever()
