# Lab 04 · dispenser.py - dose commands that must happen exactly once (paho-mqtt 1.6).
#
# The kit runs this with MQTT_HOST, MQTT_PORT (its proxy, which breaks the
# link on purpose), MQTT_CLIENT_ID, MQTT_TOPIC and LAB_COUNT in the
# environment. Read README.md (or `mqlab show 04`) for what it must do.
#
# As it is, it runs: it sends every command once at QoS 0 and leaves.
# The kit will show you what that costs.
import json
import os
import time
import uuid

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
topic = os.environ["MQTT_TOPIC"]
count = int(os.environ["LAB_COUNT"])

# TODO 1: a session that survives a cut (what does clean_session do?).
client = mqtt.Client(client_id=client_id, clean_session=True)
client.connect(host, port, keepalive=20)
client.loop_start()  # a background thread that also reconnects after a cut

batch = uuid.uuid4().hex[:8]
for n in range(1, count + 1):
    payload = json.dumps({"id": f"{batch}-{n}", "ts": int(time.time() * 1000), "v": 5.0})
    # TODO 2: the right QoS for a command that must happen exactly once.
    client.publish(topic, payload, qos=0)

# TODO 3: wait until every command is complete (on_publish tells you,
# per mid) before leaving; a fixed sleep is not enough after a cut.
time.sleep(1)
client.disconnect()
client.loop_stop()
