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
import contextlib
import logging
import random
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
from paho.mqtt.client import MQTT_ERR_SUCCESS as mqtt_success

from drivers.base import Rejector, Sink
from drivers.mqtt.codec import MqttCodec
from gateway.clock import Clock
from gateway.errors import CommandRejected, DeviceUnavailable
from gateway.types import Command, CommandResult, Observation

__all__ = ["MqttDriver", "MqttSettings"]

_PUBACK = 0x40

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
    reconnect_max_s: float = 5.0
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

    @property
    def queued(self) -> int:
        """Messages received from the broker and not yet taken into a batch."""
        client = self._client
        return len(client.messages) if client is not None else 0

    def _tls(self) -> aiomqtt.TLSParameters | None:
        s = self.settings
        if not (s.ca_file or s.cert_file):
            return None
        return aiomqtt.TLSParameters(ca_certs=s.ca_file, certfile=s.cert_file,
                                     keyfile=s.key_file, cert_reqs=ssl.CERT_REQUIRED)

    def _client_for(self) -> aiomqtt.Client:
        s = self.settings
        client = aiomqtt.Client(
            s.host, s.port, identifier=s.client_id, username=s.username, password=s.password,
            clean_session=False, keepalive=s.keepalive_s, tls_params=self._tls(),
            tls_insecure=s.tls_insecure if self._tls() else None, timeout=10)
        # ack only what is stored: set before connecting, as the broker sends the session's
        # backlog right after the CONNACK, before ``async with`` hands the client over
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        delay = self.settings.reconnect_min_s
        outage_logged = False
        while True:
            try:
                async with self._client_for() as client:
                    _buffer_reads(client._client)
                    _skip_filtered_callbacks(client._client)
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
        queue = client._queue  # aiomqtt's incoming queue: drained directly, see below
        paho = client._client
        batch_max = self.settings.batch_max
        while True:
            batch = [await anext(messages)]
            # What is already queued is taken without awaiting: ``anext`` costs a task and
            # an ``asyncio.wait`` per message, a third of the driver's time under load.
            for _ in range(min(queue.qsize(), batch_max - 1)):
                batch.append(queue.get_nowait())
            self.heartbeat = self.clock.monotonic()
            await self._handle(batch)
            _ack(paho, batch)

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


class MqttPublisher:
    """A publish-only connection with its own persistent session (the upstream bridge's link).

    Kept here so this stays the only module that imports aiomqtt. ``publish_many`` hands a
    batch to the client in order and returns once the broker has acknowledged all of it
    (QoS 1); up to ``max_inflight`` messages are on the wire at once, so a backlog drains at
    link speed rather than one round trip per message. Reconnects use the same jittered
    backoff as ``MqttDriver``, logged once per outage.
    """

    def __init__(self, settings: MqttSettings, clock: Clock, *, id: str = "upstream",  # noqa: A002
                 max_inflight: int = 500) -> None:
        self.id = id
        self.settings = settings
        self.clock = clock
        self.max_inflight = max_inflight
        self.metrics = MqttMetrics()
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self.connects = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def _client_for(self) -> aiomqtt.Client:
        s = self.settings
        tls = None
        if s.ca_file or s.cert_file:
            tls = aiomqtt.TLSParameters(ca_certs=s.ca_file, certfile=s.cert_file,
                                        keyfile=s.key_file, cert_reqs=ssl.CERT_REQUIRED)
        return aiomqtt.Client(
            s.host, s.port, identifier=s.client_id, username=s.username, password=s.password,
            clean_session=False, keepalive=s.keepalive_s, tls_params=tls,
            tls_insecure=s.tls_insecure if tls else None, timeout=30,
            max_inflight_messages=self.max_inflight, max_queued_outgoing_messages=0)

    async def run(self) -> None:
        s = self.settings
        delay = s.reconnect_min_s
        outage_logged = False
        while True:
            try:
                client = self._client_for()
                client.pending_calls_threshold = 2 * self.max_inflight + 10_000  # batches
                async with client:
                    self._client = client
                    self.connects += 1
                    self.metrics.connects += 1
                    self.metrics.connected = True
                    self._connected.set()
                    log.log(logging.INFO, "%s: connected to %s:%d as %s%s", self.id, s.host,
                            s.port, s.client_id, " / 上行链路已恢复" if outage_logged else "")
                    outage_logged = False
                    delay = s.reconnect_min_s
                    async for _ in client.messages:  # nothing subscribed: ends on disconnect
                        pass
            except aiomqtt.MqttError as exc:
                if not outage_logged:
                    log.error("%s: broker %s:%d unreachable: %s; retrying with backoff "
                              "/ 上行链路中断", self.id, s.host, s.port, exc)
                    outage_logged = True
            finally:
                if self._connected.is_set():
                    self.metrics.disconnects += 1
                self._connected.clear()
                self.metrics.connected = False
                self._client = None
            await self.clock.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            delay = min(delay * 2, s.reconnect_max_s)

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        """Publish in order, QoS 1; returns when all are acknowledged.

        Raises:
            DeviceUnavailable: not connected, or the link failed before every PUBACK came
                back (some of the batch may have arrived: the caller republishes it all).
        """
        client = self._client
        if client is None or not self._connected.is_set():
            raise DeviceUnavailable(self.id, "not connected to the upstream broker")
        # Hand the batch to paho in order, keeping at most max_inflight unacknowledged, and
        # count the PUBACKs. aiomqtt's own publish() costs a task, a timeout and an
        # O(pending) scan per message, which caps a backlog near 2,000/s on a desktop; this
        # path registers one counter in aiomqtt's pending-publish table instead (its
        # _on_publish calls .set() on whatever it finds there for the mid).
        paho = client._client  # noqa: SLF001 - see above; aiomqtt is pinned <3
        pending = client._pending_publishes  # noqa: SLF001
        disconnected = client._disconnected  # noqa: SLF001
        acked = asyncio.Event()
        counter = _AckCounter(acked)
        mids: list[int] = []
        # a sliding window, not the whole batch at once: paho scans its whole outgoing queue
        # on every PUBACK, so a long queue makes acknowledgements quadratic
        window = self.max_inflight
        try:
            sent = 0
            while counter.acked < len(items):
                while sent < len(items) and sent - counter.acked < window:
                    topic, payload = items[sent]
                    info = paho.publish(topic, payload, qos=1)
                    if info.rc != mqtt_success:
                        raise DeviceUnavailable(self.id, f"publish to {topic} refused by the "
                                                         f"client: rc={info.rc}")
                    sent += 1
                    if info.is_published():
                        counter.set()
                    else:
                        pending[info.mid] = counter  # type: ignore[assignment]
                        mids.append(info.mid)
                if counter.acked >= len(items):
                    break
                acked.clear()
                waiter = asyncio.ensure_future(acked.wait())
                try:
                    await asyncio.wait({waiter, disconnected}, timeout=60,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if not acked.is_set():
                    raise DeviceUnavailable(self.id, f"{len(items) - counter.acked} of "
                                                     f"{len(items)} publishes not acknowledged")
        except DeviceUnavailable:
            self.metrics.publish_failures += 1
            raise
        finally:
            for mid in mids:
                if pending.get(mid) is counter:
                    del pending[mid]
        self.metrics.published += len(items)


class _AckCounter:
    """Stands in for aiomqtt's per-publish ``asyncio.Event``: counts PUBACKs for a batch."""

    def __init__(self, acked: asyncio.Event) -> None:
        self.acked = 0
        self.event = acked

    def set(self) -> None:
        self.acked += 1
        self.event.set()


def _ack(paho: Any, batch: list[aiomqtt.Message]) -> None:
    """Acknowledge a stored batch, in receipt order as MQTT requires, in one socket write.

    ``paho.ack()`` per message queues one 4-byte packet, wakes the loop and registers the
    socket for writing each time; one queued run of PUBACK packets (paho writes any
    queued bytes as they are, and a run of PUBACKs is what paho would have written)
    costs that once per batch.
    """
    mids = [msg.mid for msg in batch if msg.qos == 1]  # subscribed at QoS 1: never 2
    if not mids:
        return
    body = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)
    paho._packet_queue(_PUBACK, body, 0, 0)  # paho-mqtt 2.x; pinned through aiomqtt <3


class _ReadBuffer:
    """paho's socket, read in 64 KiB gulps instead of one ``recv`` per header byte.

    paho reads a PUBLISH with three or four ``recv`` calls (command byte, length bytes,
    body); under load those syscalls were a fifth of the event loop's time. This wrapper
    serves paho's small reads from one large read. Bytes it holds are not visible to the
    event loop's readiness check, so it reports them through ``pending()``, the hook
    aiomqtt already polls (for TLS sockets) to keep reading until nothing is left. It
    reads a new gulp only for a packet's first byte, never to finish a packet, so one
    readiness callback handles about one gulp and then lets the driver's task run.
    """

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            if n > 1:  # the rest of a packet: read just that, so the loop gets a turn
                return self._sock.recv(n)  # BlockingIOError reaches paho as before
            data = self._sock.recv(65536)  # a packet's first byte: take what has arrived
            if len(data) <= 1:
                return data
            self._buf, self._pos = data, 1
            return data[:1]
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        self._buf, self._pos = b"", 0
        rest = buf[pos:]
        try:
            return rest + self._sock.recv(n - len(rest))
        except BlockingIOError:
            return rest

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _buffer_reads(paho: Any) -> None:
    sock = paho._sock  # paho-mqtt 2.x; pinned through aiomqtt <3
    if sock is not None and not isinstance(sock, _ReadBuffer):
        # No Nagle: paho leaves it on, so an alarm published right after a batch's PUBACK
        # waited for the broker's delayed TCP ACK (~40 ms on Linux). Acks already go out
        # one write per batch, so small-segment coalescing buys nothing here.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        paho._sock = _ReadBuffer(sock)


class _NoFilteredCallbacks:
    """Stands in for paho's per-topic callback table, which this driver never fills.

    paho walks that table (``MQTTMatcher.iter_match``, a recursive generator over the
    topic's levels) for every incoming message even when it is empty: a sixth of the
    event loop's time under load. aiomqtt does not use per-topic callbacks either.
    """

    def iter_match(self, topic: str) -> tuple[()]:
        return ()

    def __setitem__(self, key: str, value: object) -> None:
        raise RuntimeError("the MQTT driver does not use per-topic callbacks")

    def __delitem__(self, key: str) -> None:
        raise KeyError(key)


def _skip_filtered_callbacks(paho: Any) -> None:
    paho._on_message_filtered = _NoFilteredCallbacks()  # paho-mqtt 2.x; a fresh client
