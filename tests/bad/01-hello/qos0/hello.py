"""Lab 01, known-bad: the reference solution, but "hola" goes out at QoS 0.

Step 3 asks for QoS 1. At QoS 0 the message still comes back (the broker
delivers at the lower of the two QoS), so only the PUBLISH on the wire
shows the mistake.
"""
import os
import sys

import paho.mqtt.client as mqtt

topic = os.environ["MQTT_TOPIC"]


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        print(f"connection refused: {mqtt.connack_string(rc)}", file=sys.stderr)
        client.disconnect()
        return
    client.subscribe(topic, qos=1)


def on_subscribe(client, userdata, mid, granted_qos):
    client.publish(topic, "hola", qos=0)


def on_message(client, userdata, msg):
    print(f"{msg.topic} {msg.payload.decode()}", flush=True)
    client.disconnect()


client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=True)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=30)
client.loop_forever()
