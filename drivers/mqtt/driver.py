"""The MQTT driver: the only module importing aiomqtt; subscribes, decodes, acks after storing.

Delivery guarantee: the client keeps a persistent session (fixed client id, clean session
off) and acknowledges each QoS 1 message only after the batch it belongs to has been
accepted by the sink (durably stored). A message received but not yet stored when the
process dies is therefore redelivered by the broker; the store ignores the duplicate by
its key. With the broker's ``max_inflight_messages`` raised (the shipped mosquitto.conf
does), batches grow with the load, so acking late costs no throughput.

Receive path: aiomqtt/paho keep the connection (CONNECT, SUBSCRIBE, keepalive, TLS, our
own publishes), but PUBLISH packets never reach them. ``_PublishTap`` sits between paho and
its socket, reads what has arrived in one gulp, takes the PUBLISH packets out
(``drivers.mqtt.framing``) into the driver's inbox as (topic, payload, ack) tuples and lets
paho read only the other packets. paho's per-message decoding, ``MQTTMessage``, callbacks
and aiomqtt's ``Message`` and queue cost about two thirds of the event loop before.

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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
from paho.mqtt.client import MQTT_ERR_SUCCESS as mqtt_success

from drivers.base import Rejector, Sink
from drivers.mqtt.codec import Decoded, MqttCodec
from drivers.mqtt.framing import PUBACK, PUBCOMP, PacketSplitter, Publish
from gateway.clock import Clock
from gateway.errors import CommandRejected, DeviceUnavailable
from gateway.types import Command, CommandResult, Observation

__all__ = ["MqttDriver", "MqttSettings"]

_GULP = 65536  # bytes asked of the socket per read
_SINK_START_YIELDS = 2  # loop turns for a sink to start before the next batch is decoded
# Batches in the sink at once: each is decided as soon as the one before it is, and then
# waits for its readings' write group (``store.batch_interval_ms``); bounded in messages too.
_IN_FLIGHT = 64

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
        self._tap: _PublishTap | None = None
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
        tap = self._tap
        return len(tap.inbox) if tap is not None else 0

    def _tls(self) -> aiomqtt.TLSParameters | None:
        s = self.settings
        if not (s.ca_file or s.cert_file):
            return None
        return aiomqtt.TLSParameters(ca_certs=s.ca_file, certfile=s.cert_file,
                                     keyfile=s.key_file, cert_reqs=ssl.CERT_REQUIRED)

    def _client_for(self) -> aiomqtt.Client:
        s = self.settings
        # MQTT 3.1.1: the framing module parses its PUBLISH layout (v5 adds properties)
        return aiomqtt.Client(
            s.host, s.port, identifier=s.client_id, username=s.username, password=s.password,
            clean_session=False, keepalive=s.keepalive_s, tls_params=self._tls(),
            tls_insecure=s.tls_insecure if self._tls() else None, timeout=10,
            protocol=aiomqtt.ProtocolVersion.V311)

    async def run(self) -> None:
        delay = self.settings.reconnect_min_s
        outage_logged = False
        while True:
            try:
                client = self._client_for()
                client._client.manual_ack_set(True)  # ack only what is stored
                # before connecting: the broker sends the session's queued messages right
                # after CONNACK, so the tap must see the stream from its first byte
                tap = self._tap = _PublishTap(client._client)
                async with client:
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
                    await self._consume(client, tap)
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
                self._tap = None  # what it still holds is redelivered on the next session
            await self.clock.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _consume(self, client: aiomqtt.Client, tap: _PublishTap) -> None:
        """Take what the tap has collected in batches: decode, store, then acknowledge.

        Up to ``_IN_FLIGHT`` batches (and ``2 × batch_max`` messages) are in the sink at a
        time, and the next is decoded meanwhile: the sink decides a batch's alarms as soon
        as the batch before it is decided, while the readings of both still wait for their
        write group on the store's thread (``Runtime.ingest`` decides overlapping calls in
        call order), so an alarm does not wait for a telemetry write. A batch is acknowledged once its sink
        call has returned and the batch before it has been acknowledged: acks stay in
        receipt order and after the store.
        """
        inbox = tap.inbox  # filled by the tap in place; taken from here in place
        paho = client._client
        disconnected = client._disconnected  # aiomqtt's: done when the connection ends
        disconnected.add_done_callback(lambda _: tap.wake())
        loop = asyncio.get_running_loop()
        batch_max = self.settings.batch_max
        handlers = self._handlers
        storing: deque[asyncio.Task[None]] = deque()  # sink then ack, oldest first
        sizes: deque[int] = deque()  # messages in each of them
        held = 0  # messages in the sink

        def finished(_: object) -> None:
            tap.wake()  # a waiting loop reaps it and sees what the sink raised

        try:
            while True:
                while storing and storing[0].done():
                    held -= sizes.popleft()
                    storing.popleft().result()  # raises what the sink raised
                if not inbox and not disconnected.done():
                    tap.waiter = loop.create_future()
                    await tap.waiter
                    continue
                if disconnected.done():
                    while storing:  # let the batches in the sink finish, as before
                        sizes.popleft()
                        await storing.popleft()
                    cause = None if disconnected.cancelled() else disconnected.exception()
                    raise aiomqtt.MqttError("Disconnected during message iteration") from cause
                batch = inbox[:batch_max]
                del inbox[:batch_max]
                self.heartbeat = self.clock.monotonic()
                if handlers and not handlers.keys().isdisjoint([m[0] for m in batch]):
                    # a handler topic is awaited in order with the sink calls around it
                    while storing:
                        sizes.popleft()
                        await storing.popleft()
                    held = 0
                    await self._handle(batch)
                    _ack(paho, batch)
                    continue
                observations = self._decode(batch)
                while storing and (len(storing) >= _IN_FLIGHT
                                   or held + len(batch) > 2 * batch_max):
                    held -= sizes.popleft()
                    await storing.popleft()
                task = loop.create_task(
                    self._store(paho, batch, observations, storing[-1] if storing else None),
                    name="driver[mqtt].store")
                task.add_done_callback(finished)
                storing.append(task)
                sizes.append(len(batch))
                held += len(batch)
                # Let the sink start before decoding the next batch: it hands its readings
                # to the store's write group, takes its turn and, when the sink is free,
                # decides the batch's alarms before this thread decodes more. Only the
                # overlap depends on the count; order and acks do not.
                for _ in range(_SINK_START_YIELDS):
                    await asyncio.sleep(0)
        finally:
            if storing:
                # cancelled (shutdown) or failed: the batches being stored are cancelled
                # like one in the sink was before, and redelivered unacked
                for task in storing:
                    task.cancel()
                await asyncio.wait(storing)
                # a failed batch fails the ones after it (they await it): log each cause once
                failed = {id(e): e for t in storing if not t.cancelled()
                          for e in [t.exception()] if e is not None}
                for exc in failed.values():
                    log.error("mqtt: storing a batch failed while the driver stopped: %s", exc)

    async def _store(self, paho: Any, batch: list[Publish], observations: list[Observation],
                     before: asyncio.Task[None] | None) -> None:
        if observations:
            await self.sink(observations)
        if before is not None:
            await before  # acks in receipt order; nothing is acked after a failed batch
        _ack(paho, batch)

    def _decode(self, batch: list[Publish]) -> list[Observation]:
        """A batch without handler topics, decoded into one list of observations."""
        # one accumulator for the batch: the codec appends every message's observations to
        # one list (no per-message result objects); rejections are reported per message
        out = Decoded()
        self._count(batch, self._decode_into(batch, self.clock.now(), out))
        return out.observations

    def _decode_into(self, msgs: list[Publish], now: float, out: Decoded) -> int:
        """Decode ``msgs`` into ``out``, reporting each rejection; returns how many had their
        device time corrected for skew."""
        rejections = out.rejections
        decode_into = self.codec.decode_into
        skewed = 0
        for topic, payload, _ in msgs:
            decode_into(topic, payload, now, out)
            if out.skew_corrected:
                skewed += 1
            if rejections:
                for rej in rejections:
                    self.reject(rej.reason, topic, payload, rej.detail)
                rejections.clear()
        return skewed

    def _count(self, batch: list[Publish], skewed: int) -> None:
        m = self.metrics
        m.skew_corrected += skewed
        m.messages_in += len(batch)
        m.batches += 1
        m.last_batch_size = len(batch)

    async def _handle(self, batch: list[Publish]) -> None:
        """A batch with handler topics: the runs between handler messages are decoded and
        handed on before each handler runs, so the order between them is kept."""
        now = self.clock.now()
        out = Decoded()
        handlers = self._handlers
        skewed = 0
        start = 0
        for i, (topic, payload, _) in enumerate(batch):
            handler = handlers.get(topic)
            if handler is None:
                continue
            skewed += self._decode_into(batch[start:i], now, out)
            if out.observations:
                await self.sink(out.observations)
                out.observations = []
            await handler(payload)
            start = i + 1
        skewed += self._decode_into(batch[start:], now, out)
        self._count(batch, skewed)
        if out.observations:
            await self.sink(out.observations)

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


def _ack(paho: Any, batch: list[Publish]) -> None:
    """Acknowledge a stored batch, in receipt order as MQTT requires, in one socket write.

    Each message carries its own PUBACK (4 bytes, from the framing module; ``b""`` for QoS
    0); one queued run of them (paho writes queued bytes as they are, and a run of PUBACKs
    is what paho would have written) costs one write and one writer registration per
    batch, where ``paho.ack()`` per message cost them per message.
    """
    acks = b"".join([msg[2] for msg in batch])
    if acks:
        paho._packet_queue(PUBACK, acks, 0, 0)  # paho-mqtt 2.x; pinned through aiomqtt <3


class _PublishTap:
    """paho's socket, with PUBLISH packets taken out before paho reads them.

    Installed on a fresh paho client before it connects (``on_socket_open``), so it sees
    the stream from its first byte. When paho wants a byte and none is buffered for it,
    the tap reads what has arrived (up to 64 KiB) and splits it: PUBLISH packets go to
    ``inbox`` (and wake the driver's task), complete other packets are buffered for paho,
    an unfinished packet waits for the next read. If nothing in a read is for paho, it
    raises ``BlockingIOError``, which paho takes as "nothing more now"; ``b""`` reaches
    paho only when the socket returned it (the broker closed). The TLS socket's
    ``SSLWantReadError``/``SSLWantWriteError`` pass through to paho unchanged, as before.

    Bytes held for paho are not visible to the event loop's readiness check, so
    ``pending()`` reports them, with the TLS socket's own (the decrypted rest of a record,
    paho issue #131): aiomqtt's reader keeps calling ``loop_read`` while it is non-zero.
    One readiness callback reads about one gulp and then lets the driver's task run.
    """

    __slots__ = ("_buf", "_paho", "_pos", "_sock", "_splitter", "inbox", "waiter")

    def __init__(self, paho: Any) -> None:
        self.inbox: list[Publish] = []
        self.waiter: asyncio.Future[None] | None = None
        self._paho = paho
        self._sock: Any = None
        self._splitter = PacketSplitter()
        self._buf = b""
        self._pos = 0
        opened = paho.on_socket_open  # aiomqtt's: registers the reader with the event loop

        def on_socket_open(client: Any, userdata: Any, sock: Any) -> None:
            self.attach(sock)
            opened(client, userdata, sock)

        paho.on_socket_open = on_socket_open
        paho.on_message = self._on_paho_message

    def attach(self, sock: Any) -> None:
        """Stand in for ``sock`` as paho's socket (called in paho's connect, before CONNECT)."""
        # No Nagle: paho leaves it on, so an alarm published right after a batch's PUBACK
        # waited for the broker's delayed TCP ACK (~40 ms on Linux). Acks already go out
        # one write per batch, so small-segment coalescing buys nothing here.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._splitter = PacketSplitter()
        self._buf = b""
        self._pos = 0
        self._paho._sock = self  # paho-mqtt 2.x; pinned through aiomqtt <3

    def recv(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            data = self._sock.recv(_GULP)  # BlockingIOError and SSL errors reach paho
            if not data:
                return data  # the broker closed the connection: paho sees it as before
            inbox = self.inbox
            had = len(inbox)
            buf = self._splitter.feed(data, inbox)
            # broker traffic, for paho's keepalive (it counts only the bytes it reads)
            self._paho._last_bytes_received = time.monotonic()
            if len(inbox) > had:
                self.wake()
            if not buf:
                self._buf = b""
                self._pos = 0
                raise BlockingIOError  # every packet was a PUBLISH: nothing for paho
            pos = 0
            self._buf = buf
        self._pos = pos + n  # the buffer holds whole packets: paho never asks past one
        return buf[pos:pos + n]

    def send(self, data: bytes) -> int:
        return int(self._sock.send(data))

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return max(0, len(self._buf) - self._pos) + inner

    def wake(self) -> None:
        """Resume the driver's task if it waits for messages."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _on_paho_message(self, client: Any, userdata: Any, msg: Any) -> None:
        """A PUBLISH paho handled itself: QoS 2 (never sent to a QoS 1 subscription by a
        conforming broker). Queued like the others; acked with PUBCOMP once stored."""
        qos = msg.qos
        ack = struct.pack("!BBH", PUBCOMP if qos == 2 else PUBACK, 2, msg.mid) if qos else b""
        self.inbox.append((msg._topic.decode("utf-8", "replace"), bytes(msg.payload), ack))
        self.wake()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
