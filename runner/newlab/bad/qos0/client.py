"""Known-bad: publishes the greeting at QoS 0 (no PUBACK, no guarantee)."""
import os
import sys

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
topic = os.environ["MQTT_TOPIC"]
greeting = "hola " + os.environ["MQTT_CLIENT_ID"]

client = mqtt.Client(client_id=os.environ["MQTT_CLIENT_ID"], clean_session=True)
client.connect(host, port)
client.loop_start()
info = client.publish(topic, greeting, qos=0)
info.wait_for_publish(5)
client.disconnect()
client.loop_stop()
sys.exit(0 if info.is_published() else 1)
