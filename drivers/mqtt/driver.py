"""The MQTT driver: the only module importing aiomqtt; subscribes, decodes, acks after storing.

Delivery guarantee: the client keeps a persistent session (fixed client id, clean session
off) and acknowledges each QoS 1 message only after the batch it belongs to has been
accepted by the sink (durably stored). A message received but not yet stored when the
process dies is therefore redelivered by the broker; the store ignores the duplicate by
its key. With the broker's ``max_inflight_messages`` raised (the shipped mosquitto.conf
does), batches grow with the load, so acking late costs no throughput.

Reconnects use jittered exponential backoff from ``reconnect_min_s`` to ``reconnect_max_s``;
an outage is logged once at ERROR and the recovery once at INFO.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiomqtt
import orjson

from drivers.base import Rejector, Sink
from drivers.mqtt.codec import MqttCodec
from gateway.clock import Clock
from gateway.errors import CommandRejected, DeviceUnavailable
from gateway.types import Command, CommandResult, Observation

__all__ = ["MqttDriver", "MqttSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    batch_max: int = 5_000


@dataclass
class MqttMetrics:
    messages_in: int = 0
    batches: int = 0
    connects: int = 0
    disconnects: int = 0
    published: int = 0
    publish_failures: int = 0
    skew_corrected: int = 0
    connected: bool = False
    last_batch_size: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class MqttDriver:
    """One connection to the estate broker, shared by ingest and the alarm publisher."""

    def __init__(self, settings: MqttSettings, codec: MqttCodec, sink: Sink, reject: Rejector,
                 clock: Clock, *, id: str = "mqtt",  # noqa: A002
                 on_connection: Callable[[bool], None] | None = None,
                 handlers: Mapping[str, Callable[[bytes], Awaitable[None]]] | None = None
                 ) -> None:
        self.id = id
        self.settings = settings
        self.codec = codec
        self.sink = sink
        self.reject = reject
        self.clock = clock
        self.metrics = MqttMetrics()
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._on_connection = on_connection
        # exact topic → handler, for the gateway's own inbound topics (work-order status);
        # awaited before the message is acknowledged, like the sink
        self._handlers = dict(handlers or {})
        self.heartbeat = 0.0  # monotonic time of the loop's last sign of life

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _tls(self) -> aiomqtt.TLSParameters | None:
        s = self.settings
        if not (s.ca_file or s.cert_file):
            return None
        return aiomqtt.TLSParameters(ca_certs=s.ca_file, certfile=s.cert_file,
                                     keyfile=s.key_file, cert_reqs=ssl.CERT_REQUIRED)

    def _client_for(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            s.host, s.port, identifier=s.client_id, username=s.username, password=s.password,
            clean_session=False, keepalive=s.keepalive_s, tls_params=self._tls(),
            tls_insecure=s.tls_insecure if self._tls() else None, timeout=10)

    async def run(self) -> None:
        delay = self.settings.reconnect_min_s
        outage_logged = False
        while True:
            try:
                async with self._client_for() as client:
                    client._client.manual_ack_set(True)  # ack only what is stored
                    await client.subscribe(self.codec.subscription, qos=1)
                    for topic in self._handlers:
                        await client.subscribe(topic, qos=1)
                    self._client = client
                    self._connected.set()
                    self.metrics.connects += 1
                    self.metrics.connected = True
                    if self._on_connection:
                        self._on_connection(True)
                    if outage_logged:
                        log.info("mqtt: reconnected to %s:%d / MQTT 已重新连接",
                                 self.settings.host, self.settings.port)
                    else:
                        log.info("mqtt: connected to %s:%d as %s", self.settings.host,
                                 self.settings.port, self.settings.client_id)
                    outage_logged = False
                    delay = self.settings.reconnect_min_s
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                if not outage_logged:
                    log.error("mqtt: broker %s:%d unreachable: %s; retrying with backoff "
                              "/ MQTT 连接中断", self.settings.host, self.settings.port, exc)
                    outage_logged = True
            finally:
                if self._connected.is_set():
                    self.metrics.disconnects += 1
                    if self._on_connection:
                        self._on_connection(False)
                self._connected.clear()
                self.metrics.connected = False
                self._client = None
            await self.clock.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _consume(self, client: aiomqtt.Client) -> None:
        messages = client.messages
        paho = client._client
        batch_max = self.settings.batch_max
        while True:
            first = await anext(messages)
            batch = [first]
            for _ in range(min(len(messages), batch_max - 1)):
                batch.append(await anext(messages))
            self.heartbeat = self.clock.monotonic()
            await self._handle(batch)
            for msg in batch:  # in receipt order, as MQTT requires
                if msg.qos > 0:
                    paho.ack(msg.mid, msg.qos)

    async def _handle(self, batch: list[aiomqtt.Message]) -> None:
        now = self.clock.now()
        observations: list[Observation] = []
        decode = self.codec.decode
        for msg in batch:
            topic = msg.topic.value
            payload = msg.payload if isinstance(msg.payload, bytes) else str(
                msg.payload).encode()
            handler = self._handlers.get(topic)
            if handler is not None:
                if observations:  # keep the order between a handler and earlier messages
                    await self.sink(observations)
                    observations = []
                await handler(payload)
                continue
            decoded = decode(topic, payload, now)
            observations.extend(decoded.observations)
            if decoded.skew_corrected:
                self.metrics.skew_corrected += 1
            for rej in decoded.rejections:
                self.reject(rej.reason, topic, payload, rej.detail)
        self.metrics.messages_in += len(batch)
        self.metrics.batches += 1
        self.metrics.last_batch_size = len(batch)
        if observations:
            await self.sink(observations)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                      retain: bool = False) -> None:
        """Publish and wait for the broker's PUBACK; raises DeviceUnavailable when offline."""
        client = self._client
        if client is None or not self._connected.is_set():
            raise DeviceUnavailable(self.id, "not connected to the broker")
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=10)
        except aiomqtt.MqttError as exc:
            self.metrics.publish_failures += 1
            raise DeviceUnavailable(self.id, f"publish to {topic} failed: {exc}") from exc
        self.metrics.published += 1

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def execute(self, command: Command) -> CommandResult:
        """Send a command on ``.../<device>/command``; the device answers on its event topic."""
        device = self.codec.devices.get(command.device_id)
        if device is None:
            raise CommandRejected(self.id, "not an MQTT device", device_id=command.device_id)
        topic = (f"{'/'.join(self.codec.prefix_parts)}/{self.codec.site}/"
                 f"{device.location.building}/{device.kind.value}/{device.id}/command")
        body = orjson.dumps({"id": command.command_id, "action": command.action,
                             "args": dict(command.args), "by": command.requested_by})
        await self.publish(topic, body)
        return CommandResult(command.command_id, ok=True, detail=f"published to {topic}")
