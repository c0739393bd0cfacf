"""Known-bad lab 01 program: publishes "hola" retained before it
subscribes. The broker keeps it and hands it over right after the
SUBACK, with retain=1, so the program prints a stored copy, not its own
message coming back live."""
import os

import paho.mqtt.client as mqtt

topic = os.environ["MQTT_TOPIC"]


def on_connect(client, userdata, flags, rc):
    # The mistake: a retained publish before subscribing "makes sure"
    # the message is there to receive.
    client.publish(topic, "hola", qos=1, retain=True)
    client.subscribe(topic, qos=1)


def on_message(client, userdata, msg):
    print(f"{msg.topic} {msg.payload.decode()}", flush=True)
    client.disconnect()


client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=True)
client.on_connect = on_connect
client.on_message = on_message
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=30)
client.loop_forever()
