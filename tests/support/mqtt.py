"""A small paho-based subscriber for tests that need to see what the gateway publishes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import orjson
import paho.mqtt.client as paho


class Collector:
    def __init__(self, port: int, topic: str, client_id: str = "test-collector") -> None:
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("collector did not subscribe")

    def _on_message(self, client: object, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, orjson.loads(msg.payload)))

    def wait_for(self, pred: Callable[[list[tuple[str, dict]]], bool], timeout: float = 15
                 ) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if pred(self.messages):
                    return list(self.messages)
            time.sleep(0.05)
        with self._lock:
            raise TimeoutError(f"condition not met; got {self.messages[-5:]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(pred: Callable[[], bool], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met within {timeout}s")
