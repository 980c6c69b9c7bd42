"""The ceiling: a bare paho-mqtt subscriber that only parses each message's JSON.

QoS 1 subscription, paho's automatic PUBACK, ``orjson.loads`` per message and nothing else.
Prints the running message count on stdout every 20 ms so the benchmark can follow it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import orjson
import paho.mqtt.client as paho


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--topic", default="estate/#")
    ap.add_argument("--client-id", default=None, help="fixed id: keeps a persistent session")
    args = ap.parse_args()
    count = 0
    ready = threading.Event()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        nonlocal count
        orjson.loads(msg.payload)
        count += 1

    c = paho.Client(paho.CallbackAPIVersion.VERSION2,
                    client_id=args.client_id or f"bench-bare-{time.time_ns()}",
                    clean_session=args.client_id is None)
    c.max_inflight_messages_set(1000)
    c.on_connect = lambda cl, *a: cl.subscribe(args.topic, qos=1)
    c.on_subscribe = lambda *a: ready.set()
    c.on_message = on_message
    c.connect("127.0.0.1", args.port)
    c.loop_start()
    ready.wait(10)
    print("ready", flush=True)
    print(count, flush=True)
    try:
        while True:
            time.sleep(0.02)
            sys.stdout.write(f"{count}\n")
            sys.stdout.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        pass


if __name__ == "__main__":
    main()
