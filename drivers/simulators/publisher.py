"""Publishes simulator output to a real broker (paho-mqtt in its own network thread).

Used by the demo, ``estate-gateway simulate`` and the tests; not by the gateway itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import orjson
import paho.mqtt.client as paho

from drivers.mqtt.codec import topic_for
from drivers.simulators.mqtt_devices import Simulator

__all__ = ["SimPublisher"]


class SimPublisher:
    def __init__(self, host: str, port: int, *, prefix: str, site: str,
                 client_id: str = "estate-simulator", qos: int = 1) -> None:
        self.prefix = prefix
        self.site = site
        self.qos = qos
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=True)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self.client.on_connect = lambda *a: self._connected.set()
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise ConnectionError(f"simulator could not connect to {host}:{port}")
        self.published = 0

    def publish(self, topic: str, payload: bytes, *, wait: bool = False
                ) -> paho.MQTTMessageInfo:
        """Hand one message to paho; its info says when the broker has acknowledged it."""
        info = self.client.publish(topic, payload, qos=self.qos)
        self.published += 1
        if wait:
            info.wait_for_publish(10)
        return info

    def publish_sim(self, sims: Sequence[Simulator], now: float, rng: random.Random) -> int:
        n = 0
        for sim in sims:
            for msg in sim.step(now, rng):
                self.publish(topic_for(self.prefix, self.site, sim.device, msg.channel),
                             orjson.dumps(msg.body))
                n += 1
        return n

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every QoS 1 message has its PUBACK."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.client._out_messages:  # paho's in-flight/queued table
                return
            time.sleep(0.01)
        raise TimeoutError("broker did not acknowledge every message in time")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
