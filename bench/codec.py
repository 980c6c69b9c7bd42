"""Micro-benchmark of the MQTT codec alone: microseconds per telemetry message decoded.

    python -m bench.codec [--messages 200000]

In-process, no broker: the bench's telemetry payloads for 200 devices are decoded by
``MqttCodec.decode`` as the driver calls it. Used to give a before/after figure for codec
changes without the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import orjson

from bench import harness as h
from bench.loadgen import body
from drivers.mqtt.codec import MqttCodec
from drivers.profiles import builtin_profiles
from gateway.config import GatewayConfig


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device_list = h.devices(args.devices)
    cfg = GatewayConfig.model_validate({"site": {"id": h.SITE}, "devices": device_list})
    devs = cfg.device_list()
    codec = MqttCodec(prefix=h.PREFIX, site=h.SITE, devices=devs, profiles=builtin_profiles(),
                      max_payload_bytes=65536)
    rng = random.Random(1)
    now = time.time()
    msgs = [(f"{h.PREFIX}/{h.SITE}/{d['location']['building']}/{d['kind']}/{d['id']}/telemetry",
             orjson.dumps(body(d["kind"], now, rng))) for d in device_list]
    n = len(msgs)
    decode = codec.decode
    best = float("inf")
    for _ in range(7):
        t0 = time.process_time()
        for i in range(args.messages):
            topic, payload = msgs[i % n]
            decode(topic, payload, now)
        best = min(best, time.process_time() - t0)
    us = 1e6 * best / args.messages
    print(f"codec: {us:.2f} us per telemetry message (3 metrics), CPU time, best of 7 x {args.messages:,}")
    return {"us_per_message": us}


if __name__ == "__main__":
    main()
