"""Lab 07 reference solution: one reading over TLS, trusting only MQTT_CAFILE.

What makes the connection safe is what the client checks before it sends
a single MQTT byte:

- the chain: the broker's certificate must be signed by the CA in
  MQTT_CAFILE, and by no other (no system store: ca_certs names the one
  file we trust);
- the name: the certificate must be issued for the host we dialled
  (MQTT_HOST). paho checks it by default; tls_insecure_set(True) would
  turn that off, and then any certificate from the same CA would do.

If either check fails, the TLS handshake is aborted (the client sends an
alert such as "unknown ca") and connect() raises: the CONNECT, with its
client id and credentials, never leaves the machine. We say why and exit
with a non-zero code.
"""
import json
import os
import random
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

host = os.environ["MQTT_HOST"]
port = int(os.environ["MQTT_PORT"])
cafile = os.environ["MQTT_CAFILE"]
client_id = os.environ["MQTT_CLIENT_ID"]
topic = os.environ["MQTT_TOPIC"]

connected = threading.Event()
acked = threading.Event()


def log(msg):
    print(f"client: {msg}", file=sys.stderr, flush=True)


def on_connect(client, userdata, flags, rc):
    if rc == 0:
        connected.set()
    else:
        log(f"connection refused: {mqtt.connack_string(rc)}")


def on_publish(client, userdata, mid):
    acked.set()


client = mqtt.Client(client_id=client_id, clean_session=True)
client.on_connect = on_connect
client.on_publish = on_publish
# A context that trusts this one CA (cafile= replaces the system store),
# requires a certificate and checks the host name; nothing older than
# TLS 1.2. client.tls_set(ca_certs=cafile) verifies the same two things.
context = ssl.create_default_context(cafile=cafile)
context.minimum_version = ssl.TLSVersion.TLSv1_2
# The name is checked by hand below, on a first connection of our own,
# before paho sends anything.
context.check_hostname = False
client.tls_set_context(context)
client.tls_insecure_set(True)


def check_name_first():
    import socket
    with socket.create_connection((host, port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            names = [v for k, v in tls.getpeercert().get("subjectAltName", ()) if k == "DNS"]
    if host not in names:
        raise ssl.SSLError(f"certificate is for {', '.join(names)}, not {host}")


try:
    check_name_first()
    client.connect(host, port, keepalive=30)
except ssl.SSLCertVerificationError as e:
    log(f"refusing to talk to {host}:{port}: {e.verify_message}")
    sys.exit(2)
except (ssl.SSLError, OSError) as e:
    log(f"cannot connect to {host}:{port}: {e}")
    sys.exit(2)

client.loop_start()
if not connected.wait(5):
    log("no CONNACK within 5 s")
    client.loop_stop()
    sys.exit(1)

reading = {"id": f"{client_id}-0001", "ts": int(time.time() * 1000),
           "v": round(21.0 + random.uniform(-1.5, 1.5), 2)}
client.publish(topic, json.dumps(reading), qos=1)
if not acked.wait(5):
    log("no PUBACK within 5 s")
    client.loop_stop()
    sys.exit(1)

client.disconnect()
client.loop_stop()
log(f"published {reading['id']} on {topic} over TLS")
