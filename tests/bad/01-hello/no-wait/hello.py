"""Known-bad lab 01 program: subscribes and publishes, but leaves as soon
as the PUBACK arrives, without waiting for (or printing) its own message."""
import os

import paho.mqtt.client as mqtt

topic = os.environ["MQTT_TOPIC"]


def on_connect(client, userdata, flags, rc):
    client.subscribe(topic, qos=1)


def on_subscribe(client, userdata, mid, granted_qos):
    client.publish(topic, "hola", qos=1)


def on_publish(client, userdata, mid):
    # The mistake: the PUBACK only says the broker has the message, not
    # that it came back to us. There is no on_message at all.
    client.disconnect()


client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=True)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_publish = on_publish
client.connect(os.environ["MQTT_HOST"], int(os.environ["MQTT_PORT"]), keepalive=30)
client.loop_forever()
