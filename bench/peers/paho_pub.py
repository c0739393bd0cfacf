#!/usr/bin/python3
"""paho_pub.py - a paho-mqtt (Python) QoS 1 publisher, the comparison point
for `mqlab bench` in bench/load.sh.

Publishes --count messages of --size bytes on --topic as fast as paho
takes them, keeping at most --window unacknowledged (paho's own default
in-flight cap is 20), and prints one JSON line: sent, acked, seconds,
rate (acked messages per second). Works with paho-mqtt 1.x and 2.x.
"""
import argparse
import json
import sys
import time

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--topic", default="mqlab/bench/paho")
    ap.add_argument("--qos", type=int, default=1)
    ap.add_argument("--window", type=int, default=100)
    a = ap.parse_args()

    # paho 2 wants the callback API version; paho 1 has no such argument.
    if hasattr(mqtt, "CallbackAPIVersion"):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="mqlab-bench-paho")
    else:
        c = mqtt.Client(client_id="mqlab-bench-paho")
    c.max_inflight_messages_set(a.window)
    c.max_queued_messages_set(0)
    state = {"acked": 0}

    def on_publish(client, userdata, mid):
        state["acked"] += 1

    c.on_publish = on_publish
    try:
        c.connect(a.host, a.port, 60)
    except OSError as e:
        print(json.dumps({"error": str(e)}))
        return 1
    payload = b"x" * a.size
    t0 = time.monotonic()
    sent = 0
    deadline = t0 + 120
    # paho's network loop runs in this thread: publish while the window
    # has room, otherwise let it read PUBACKs.
    while state["acked"] < a.count and time.monotonic() < deadline:
        while sent < a.count and sent - state["acked"] < a.window:
            c.publish(a.topic, payload, qos=a.qos)
            sent += 1
        c.loop(timeout=0.01)
    dt = time.monotonic() - t0
    c.disconnect()
    print(json.dumps({"sent": sent, "acked": state["acked"], "seconds": round(dt, 3),
                      "rate": round(state["acked"] / dt, 1) if dt > 0 else 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
