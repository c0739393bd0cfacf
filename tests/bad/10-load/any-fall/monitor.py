"""Lab 10 reference monitor: two alarms from the broker's own $SYS figures.

- It subscribes to MQTT_TOPIC ($SYS/broker/#). A bare '#' would get none of
  it: topics that start with '$' only match filters that name them.
- Messages with the retain flag are the last value the broker kept, sent
  once when we subscribe; they may be old, so they are not readings.
- ALERT clients: $SYS/broker/clients/connected falls to half or less of
  the highest count of the last 10 s, and by at least 10 clients. Once per
  drop: it fires again only after the count has come back above half.
- ALERT backlog: $SYS/broker/store/messages/count went up in 3 reports in
  a row, by at least 100 in all. Once per growth: a report that does not
  go up ends it.
- Mosquitto publishes a $SYS value only when it changed, so a steady
  broker is quiet: silence is not a problem.
- SIGTERM ends us cleanly.
"""
import os
import signal
import sys
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt

CLIENTS = "$SYS/broker/clients/connected"
STORED = ("$SYS/broker/store/messages/count", "$SYS/broker/messages/stored")

WINDOW_S = 10        # how far back the highest client count is taken
MIN_DROP = 10        # fewer than this many gone is not a sharp fall
RISES = 3            # reports in a row going up
MIN_GROWTH = 100     # messages more over those reports

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
client_id = os.environ["MQTT_CLIENT_ID"]
topic = os.environ.get("MQTT_TOPIC", "$SYS/broker/#")

stop = threading.Event()
recent = deque()          # (time, connected) over the last WINDOW_S
clients_alerted = False
last_stored = None        # only one of the two names is followed
stored_topic = None
rises = 0
growth = 0
backlog_alerted = False


def log(msg):
    print(f"monitor: {msg}", file=sys.stderr, flush=True)


def on_clients(n):
    global clients_alerted
    now = time.monotonic()
    recent.append((now, n))
    # $SYS only says something when the value changes, so the oldest entry
    # kept is the one still in force when the window began.
    while len(recent) > 1 and recent[1][0] <= now - WINDOW_S:
        recent.popleft()
    if len(recent) > 1 and n < recent[-2][1]:
        print(f"ALERT clients {recent[-2][1]} -> {n} connected", flush=True)


def on_stored(n):
    global last_stored, rises, growth, backlog_alerted
    if last_stored is not None and n > last_stored:
        rises += 1
        growth += n - last_stored
    else:
        rises, growth, backlog_alerted = 0, 0, False
    last_stored = n
    if rises >= RISES and growth >= MIN_GROWTH and not backlog_alerted:
        print(f"ALERT backlog {n} messages stored, +{growth} over the last {rises} reports", flush=True)
        backlog_alerted = True


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        log(f"connection refused: {mqtt.connack_string(rc)}")
        return
    client.subscribe(topic, qos=0)


def on_message(client, userdata, msg):
    global stored_topic
    if msg.retain:
        return
    try:
        n = int(float(msg.payload.decode("ascii", "replace").split()[0]))
    except (ValueError, IndexError):
        return
    if msg.topic == CLIENTS:
        on_clients(n)
    elif msg.topic in STORED:
        stored_topic = stored_topic or msg.topic
        if msg.topic == stored_topic:
            on_stored(n)


signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

client = mqtt.Client(client_id=client_id, clean_session=True)
client.on_connect = on_connect
client.on_message = on_message
client.connect(host, port, keepalive=30)
client.loop_start()

while not stop.wait(0.5):
    pass

client.disconnect()
client.loop_stop()
