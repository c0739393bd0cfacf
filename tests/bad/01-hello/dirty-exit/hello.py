"""Known-bad lab 01 program: does everything right, then leaves with
os._exit(3): no DISCONNECT, and a non-zero exit code."""
import os

import paho.mqtt.client as mqtt

topic = os.environ["MQTT_TOPIC"]


def on_connect(client, userdata, flags, rc):
    client.subscribe(topic, qos=1)


def on_subscribe(client, userdata, mid, granted_qos):
    client.publish(topic, "hola", qos=1)


def on_message(client, userdata, msg):
    print(f"{msg.topic} {msg.payload.decode()}", flush=True)
    # The mistake: leave at once, without client.disconnect(), and with 3.
    os._exit(3)


client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=True)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=30)
client.loop_forever()
