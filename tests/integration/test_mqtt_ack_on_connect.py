"""A backlog queued for the driver's persistent session is acknowledged only once stored, even
the messages the broker sends the moment the connection is accepted (found by the soak: a
gateway killed right after it came back lost the first message of its backlog)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence

import orjson
import paho.mqtt.client as paho
import pytest

from drivers.mqtt.codec import MqttCodec
from drivers.mqtt.driver import MqttDriver, MqttSettings
from drivers.profiles import builtin_profiles
from gateway.clock import SystemClock
from gateway.types import Device, DeviceKind, Location, Observation
from tests.support.servers import Mosquitto

pytestmark = pytest.mark.broker

TANK = Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native")
TOPIC = "estate/test-site/B1/water_tank/tank-1/telemetry"
BACKLOG = 3_000


def _client(port: int, client_id: str, *, clean: bool) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    return c


async def _driver_until_first_batch(settings: MqttSettings, *, store: bool) -> None:
    """Run the driver until its sink sees a batch; the sink stores (returns) only if ``store``."""
    first = asyncio.Event()

    async def sink(batch: Sequence[Observation]) -> None:
        first.set()
        if not store:
            await asyncio.Event().wait()  # never stored: nothing may be acknowledged

    codec = MqttCodec(prefix="estate", site="test-site", devices=[TANK],
                      profiles=builtin_profiles(), max_payload_bytes=65536)
    driver = MqttDriver(settings, codec, sink, lambda *a: None, SystemClock())
    task = asyncio.create_task(driver.run(), name="driver[mqtt]")
    try:
        async with asyncio.timeout(20):
            await (first.wait() if not store else driver.wait_connected())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_backlog_sent_on_connect_is_not_acked_before_it_is_stored(broker: Mosquitto
                                                                        ) -> None:
    settings = MqttSettings("127.0.0.1", broker.port, client_id="gw-ack")
    await _driver_until_first_batch(settings, store=True)  # the persistent session exists
    # a backlog queues for the offline session
    dev = _client(broker.port, "devices", clean=True)
    dev.connect("127.0.0.1", broker.port)
    dev.loop_start()
    infos = [dev.publish(TOPIC, orjson.dumps({"ts": time.time() + i * 0.001, "level_pct": 50}),
                         qos=1) for i in range(BACKLOG)]
    for info in infos:
        info.wait_for_publish(10)
    dev.disconnect()
    dev.loop_stop()
    # the driver connects, receives the backlog, stores none of it, goes away; a few times,
    # as the broker's first messages race the driver's first step after the CONNACK
    for _ in range(10):
        await _driver_until_first_batch(settings, store=False)
    # every message must still be in the session: the broker sends them all again
    got: set[int] = set()
    done = threading.Event()

    def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        got.add(round(orjson.loads(msg.payload)["ts"] * 1000))
        if len(got) >= BACKLOG:
            done.set()

    again = _client(broker.port, "gw-ack", clean=False)
    again.on_message = on_message
    again.connect("127.0.0.1", broker.port)
    again.loop_start()
    try:
        await asyncio.to_thread(done.wait, 20)
    finally:
        again.disconnect()
        again.loop_stop()
    print(f"\nbacklog {BACKLOG}; redelivered after the driver left without storing: "
          f"{len(got)}")
    assert len(got) == BACKLOG
