"""Lab @NN@: publish the greeting that `mqlab show @NN@` gives you."""
import os
import sys

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
topic = os.environ["MQTT_TOPIC"]

# TODO: connect, publish the greeting at QoS 1, wait for its PUBACK, disconnect.
print("client.py is not written yet", file=sys.stderr)
sys.exit(1)
