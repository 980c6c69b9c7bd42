"""A cloud-side MQTT subscriber with a persistent session that records arrival order and time."""

from __future__ import annotations

import threading
import time

import orjson
import paho.mqtt.client as paho


class CloudCollector:
    """Subscribes QoS 1 with ``clean_session=False``: the broker queues for it while it is away."""

    def __init__(self, port: int, topic: str, client_id: str = "cloud-collector") -> None:
        self.arrivals: list[tuple[float, dict]] = []  # (monotonic time, CloudEvent)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("cloud collector did not subscribe")

    def _on_message(self, client: object, userdata: object, msg: paho.MQTTMessage) -> None:
        event = orjson.loads(msg.payload)
        with self._lock:
            self.arrivals.append((time.monotonic(), event))

    def snapshot(self) -> list[tuple[float, dict]]:
        with self._lock:
            return list(self.arrivals)

    def count(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
