"""The MQTT driver's receive path: the PUBLISH tap under paho, one-write acks, and the paho
internals they rely on (pinned through aiomqtt <3)."""

from __future__ import annotations

import asyncio
import shutil
import selectors
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest

from drivers.mqtt.driver import _ack, _PublishTap
from drivers.mqtt.framing import Publish
from tests.unit.test_mqtt_framing import varint


class FakeSocket:
    """Hands out scripted chunks; BlockingIOError when empty, like a non-blocking socket."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.calls: list[int] = []

    def recv(self, n: int) -> bytes:
        self.calls.append(n)
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        head, rest = chunk[:n], chunk[n:]
        if rest:
            self.chunks.insert(0, rest)
        return head

    def fileno(self) -> int:
        return 7

    def setsockopt(self, *args: object) -> None:
        pass

    def close(self) -> None:
        pass


def publish(topic: str, payload: bytes, mid: int) -> bytes:
    body = struct.pack("!H", len(topic)) + topic.encode() + struct.pack("!H", mid) + payload
    return bytes((0x32,)) + varint(len(body)) + body


def puback(mid: int) -> bytes:
    return struct.pack("!BBH", 0x40, 2, mid)


PINGRESP = b"\xd0\x00"
SUBACK = b"\x90\x03\x00\x01\x01"


def tapped(chunks: list[bytes]) -> tuple[_PublishTap, paho.Client, FakeSocket]:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    opened: list[Any] = []
    client.on_socket_open = lambda c, u, s: opened.append(s)  # stands in for aiomqtt's
    tap = _PublishTap(client)
    sock = FakeSocket(chunks)
    client.on_socket_open(client, None, sock)  # what paho's connect does
    assert opened == [sock]
    assert client._sock is tap
    return tap, client, sock


def paho_reads(tap: _PublishTap) -> list[bytes]:
    """Read like paho: command byte, length byte(s), body; until the socket would block."""
    packets = []
    while True:
        try:
            first = tap.recv(1)
        except BlockingIOError:
            return packets
        if not first:
            packets.append(b"")  # EOF
            return packets
        length_byte = tap.recv(1)
        body = tap.recv(length_byte[0]) if length_byte[0] else b""
        packets.append(first + length_byte + body)


def test_tap_takes_publishes_and_hands_paho_only_the_other_packets() -> None:
    stream = (publish("a/1", b"x", 1) + SUBACK + publish("a/2", b"y", 2) + PINGRESP
              + publish("a/3", b"z", 3))
    tap, client, sock = tapped([stream])
    assert paho_reads(tap) == [SUBACK, PINGRESP]
    assert tap.inbox == [("a/1", b"x", puback(1)), ("a/2", b"y", puback(2)),
                         ("a/3", b"z", puback(3))]
    assert sock.calls == [65536, 65536]  # one gulp, then "would block"
    assert tap.fileno() == 7


def test_tap_raises_would_block_when_a_read_held_only_publishes() -> None:
    tap, client, sock = tapped([publish("a/1", b"x", 1) + publish("a/2", b"y", 2)])
    with pytest.raises(BlockingIOError):
        tap.recv(1)
    assert len(tap.inbox) == 2
    assert tap.pending() == 0


def test_tap_waits_for_the_rest_of_a_split_packet() -> None:
    stream = publish("a/1", b"hello", 1) + PINGRESP
    tap, client, sock = tapped([stream[:5], stream[5:]])
    with pytest.raises(BlockingIOError):
        tap.recv(1)
    assert tap.inbox == []
    assert paho_reads(tap) == [PINGRESP]
    assert tap.inbox == [("a/1", b"hello", puback(1))]


def test_tap_passes_the_end_of_the_stream_to_paho() -> None:
    class Closed(FakeSocket):
        def recv(self, n: int) -> bytes:
            return b""

    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_socket_open = lambda c, u, s: None
    tap = _PublishTap(client)
    tap.attach(Closed([]))
    assert tap.recv(1) == b""  # paho's "connection lost"


def test_tap_reports_bytes_held_for_paho_as_pending() -> None:
    tap, client, sock = tapped([SUBACK + PINGRESP])
    assert tap.recv(1) == SUBACK[:1]
    assert tap.pending() == len(SUBACK) + len(PINGRESP) - 1


def test_tap_counts_publishes_as_broker_traffic_for_paho_keepalive() -> None:
    tap, client, sock = tapped([publish("a/1", b"x", 1)])
    client._last_bytes_received = 0.0
    with pytest.raises(BlockingIOError):
        tap.recv(1)
    assert client._last_bytes_received > 0.0


async def test_tap_wakes_the_waiting_task_when_publishes_arrive() -> None:
    tap, client, sock = tapped([publish("a/1", b"x", 1)])
    tap.waiter = asyncio.get_running_loop().create_future()
    waiter = tap.waiter
    with pytest.raises(BlockingIOError):
        tap.recv(1)
    assert waiter.done()
    assert tap.waiter is None


def test_qos2_message_paho_delivers_is_queued_with_a_pubcomp() -> None:
    tap, client, sock = tapped([])
    msg = paho.MQTTMessage(mid=9, topic=b"a/q2")
    msg.qos = 2
    msg.payload = b"p"
    client.on_message(client, None, msg)
    assert tap.inbox == [("a/q2", b"p", struct.pack("!BBH", 0x70, 2, 9))]


def test_ack_queues_one_run_of_pubacks_in_receipt_order() -> None:
    queued: list[tuple[int, bytes, int, int]] = []

    class FakePaho:
        def _packet_queue(self, command: int, packet: bytes, mid: int, qos: int) -> None:
            queued.append((command, packet, mid, qos))

    batch: list[Publish] = [("a/b", b"{}", puback(7)), ("a/b", b"{}", b""),
                            ("a/b", b"{}", puback(3))]
    _ack(FakePaho(), batch)
    assert queued == [(0x40, puback(7) + puback(3), 0, 0)]
    queued.clear()
    _ack(FakePaho(), [("a/b", b"{}", b"")])  # QoS 0 only: nothing to send
    assert queued == []


async def test_pinned_paho_and_aiomqtt_still_have_the_internals_the_driver_uses() -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    for name in ("_packet_queue", "_sock", "_last_bytes_received", "on_socket_open"):
        assert hasattr(client, name), name
    wrapped = aiomqtt.Client("127.0.0.1")
    assert isinstance(wrapped._client, paho.Client)
    assert wrapped._client.on_socket_open is not None  # aiomqtt registers its reader there
    assert hasattr(wrapped, "_disconnected") or "_disconnected" in aiomqtt.Client.__aenter__.\
        __code__.co_names


# -- TLS: the tap over a real SSLSocket --------------------------------------------------

@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", "k.pem", "-out", "c.pem"], cwd=d,
                   check=True, capture_output=True, timeout=60)
    return d / "c.pem", d / "k.pem"


def test_tap_over_tls_socket_splits_the_decrypted_stream(cert: tuple[Path, Path]) -> None:
    """The tap reads from paho's SSLSocket: SSLWantReadError reaches paho's own handling,
    TLS records of 16 KiB split packets anywhere, and ``pending()`` keeps the reader going
    while the SSL socket holds decrypted bytes (aiomqtt's reader loop, reproduced)."""
    publishes = [publish(f"estate/s/B1/water_tank/t-{i}/telemetry", b"v" * (i % 150), i + 1)
                 for i in range(3_000)]
    stream = b"".join(p + (PINGRESP if i % 500 == 0 else b"") for i, p in enumerate(publishes))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*cert)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    a, b = socket.socketpair()

    def serve() -> None:
        with server_ctx.wrap_socket(a, server_side=True) as s:
            for i in range(0, len(stream), 7_001):  # writes that cut packets anywhere
                s.sendall(stream[i:i + 7_001])
            s.recv(1)  # until the client closes

    server = threading.Thread(target=serve)
    server.start()
    tls = client_ctx.wrap_socket(b, server_hostname="127.0.0.1")
    tls.setblocking(False)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_socket_open = lambda c, u, s: None
    tap = _PublishTap(client)
    client._call_socket_open(tls)  # as paho's connect does, the tap replaces the socket
    for_paho: list[tuple[int, bytes]] = []

    def handle() -> paho.MQTTErrorCode:  # paho's per-packet dispatch, recorded
        for_paho.append((client._in_packet["command"], bytes(client._in_packet["packet"])))
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    client._packet_handle = handle  # type: ignore[method-assign]
    sel = selectors.DefaultSelector()
    sel.register(tls.fileno(), selectors.EVENT_READ)
    try:
        while len(tap.inbox) < len(publishes):
            assert sel.select(timeout=10), "no data within 10 s"
            while True:  # aiomqtt's reader callback
                assert client._packet_read() in (paho.MQTTErrorCode.MQTT_ERR_SUCCESS,
                                                 paho.MQTTErrorCode.MQTT_ERR_AGAIN)
                if tap.pending() > 0:
                    continue
                break
    finally:
        sel.close()
        tls.close()
        server.join(10)
    assert [m[0] for m in tap.inbox] == [f"estate/s/B1/water_tank/t-{i}/telemetry"
                                         for i in range(3_000)]
    assert tap.inbox[-1] == ("estate/s/B1/water_tank/t-2999/telemetry", b"v" * (2999 % 150),
                             puback(3000))
    assert for_paho == [(0xD0, b"")] * 6  # the PINGRESPs, through paho's own reader


# -- the consumer: decode the next batch while the previous one is stored ------------------

class RecordingPaho:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def _packet_queue(self, command: int, packet: bytes, mid: int, qos: int) -> None:
        mids = [struct.unpack("!H", packet[i + 2:i + 4])[0] for i in range(0, len(packet), 4)]
        self.log.append(f"ack {mids}")


def make_driver(log: list[str], release: dict[int, asyncio.Event]) -> Any:
    from drivers.mqtt.codec import MqttCodec
    from drivers.mqtt.driver import MqttDriver, MqttSettings
    from drivers.profiles import builtin_profiles
    from gateway.clock import SystemClock
    from gateway.types import Device, DeviceKind, Location

    tank = Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native")
    codec = MqttCodec(prefix="estate", site="s", devices=[tank], profiles=builtin_profiles(),
                      max_payload_bytes=65536)
    decode_into = codec.decode_into

    def traced_decode(topic: str, payload: bytes, now: float, out: Any) -> None:
        log.append(f"decode {payload.decode()}")
        decode_into(topic, payload, now, out)

    codec.decode_into = traced_decode  # type: ignore[method-assign]
    calls = 0

    async def write(n: int) -> None:
        log.append(f"write {n} handed to the store's thread")
        await release[n].wait()

    async def sink(batch: list[Any]) -> None:
        """Shaped like Runtime.ingest: schedule the write, yield once, rules, await it."""
        nonlocal calls
        calls += 1
        n = calls
        log.append(f"sink {n} start")
        task = asyncio.ensure_future(write(n))
        await asyncio.sleep(0)
        await task
        log.append(f"sink {n} end")

    return MqttDriver(MqttSettings("127.0.0.1", 1, "t", batch_max=2), codec, sink,
                      lambda *a: None, SystemClock())



def start_consumer(driver: Any, log: list[str], inbox: Any
                   ) -> tuple[asyncio.Task[None], asyncio.Future[None]]:
    """The driver's consumer over a tap already holding ``inbox`` and a recording paho;
    returns its task and the future standing for the connection (set it: the link is gone)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_socket_open = lambda c, u, s: None
    tap = _PublishTap(client)
    tap.inbox.extend(inbox)

    class FakeClient:
        _client = RecordingPaho(log)
        _disconnected: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    task = asyncio.create_task(driver._consume(FakeClient(), tap))  # type: ignore[arg-type]
    return task, FakeClient._disconnected


async def test_consumer_keeps_two_batches_in_the_sink_and_acks_in_receipt_order() -> None:
    """Batch 2 enters the sink while batch 1's readings are still being written (its alarms
    need not wait for that write); batch 3 is decoded and waits for a place. Batch 2's
    sink returns first, but its acks go out only after batch 1's."""
    log: list[str] = []
    release = {n: asyncio.Event() for n in (1, 2, 3)}
    driver = make_driver(log, release)
    topic = "estate/s/B1/water_tank/tank-1/telemetry"
    task, connection = start_consumer(
        driver, log, [(topic, b'{"level_pct": %d}' % i, puback(i)) for i in range(1, 7)])

    async def settle() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    await settle()
    assert log == ['decode {"level_pct": 1}', 'decode {"level_pct": 2}', "sink 1 start",
                   "write 1 handed to the store's thread", 'decode {"level_pct": 3}',
                   'decode {"level_pct": 4}', "sink 2 start",
                   "write 2 handed to the store's thread", 'decode {"level_pct": 5}',
                   'decode {"level_pct": 6}']
    release[2].set()
    await settle()
    assert log[10:] == ["sink 2 end"]  # stored, not acked: batch 1 is not
    release[1].set()
    await settle()
    assert log[11:] == ["sink 1 end", "ack [1, 2]", "ack [3, 4]", "sink 3 start",
                        "write 3 handed to the store's thread"]
    release[3].set()
    await settle()
    assert log[16:] == ["sink 3 end", "ack [5, 6]"]
    connection.set_result(None)
    with pytest.raises(aiomqtt.MqttError):
        await task


async def test_consumer_acks_nothing_after_a_batch_whose_sink_failed() -> None:
    """Batch 1's write fails after batch 2 was stored: neither is acked (both come again)."""
    log: list[str] = []
    release = {n: asyncio.Event() for n in (1, 2, 3)}
    driver = make_driver(log, release)
    failing = driver.sink

    async def sink(batch: list[Any]) -> None:
        await failing(batch)
        if len([line for line in log if line.startswith("sink") and "end" in line]) == 2:
            raise RuntimeError("disk I/O error")  # the second to finish: batch 1

    driver.sink = sink
    topic = "estate/s/B1/water_tank/tank-1/telemetry"
    task, _ = start_consumer(
        driver, log, [(topic, b'{"level_pct": %d}' % i, puback(i)) for i in range(1, 5)])
    for _ in range(20):
        await asyncio.sleep(0)
    release[2].set()
    for _ in range(20):
        await asyncio.sleep(0)
    release[1].set()
    with pytest.raises(RuntimeError, match="disk I/O error"):
        await task
    assert log[-2:] == ["sink 2 end", "sink 1 end"]
    assert not [line for line in log if line.startswith("ack")]


async def test_consumer_cancelled_while_storing_cancels_the_store_and_sends_no_ack() -> None:
    log: list[str] = []
    release = {n: asyncio.Event() for n in (1, 2)}
    driver = make_driver(log, release)
    topic = "estate/s/B1/water_tank/tank-1/telemetry"
    task, _ = start_consumer(driver, log, [(topic, b'{"level_pct": 1}', puback(1))])
    for _ in range(10):
        await asyncio.sleep(0)
    assert log[-1] == "write 1 handed to the store's thread"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not [line for line in log if line.startswith("ack")]
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "driver[mqtt].store"]


async def test_consumer_lets_the_batches_in_hand_finish_when_the_connection_drops() -> None:
    """As before the pipelining: the batches in the sink are stored (their acks go nowhere;
    the broker redelivers and the store ignores the duplicates), not cancelled midway, and
    so is the batch already decoded; nothing after it is taken."""
    log: list[str] = []
    release = {n: asyncio.Event() for n in (1, 2, 3)}
    driver = make_driver(log, release)
    topic = "estate/s/B1/water_tank/tank-1/telemetry"
    task, connection = start_consumer(
        driver, log, [(topic, b'{"level_pct": %d}' % i, puback(i)) for i in range(1, 8)])
    for _ in range(10):
        await asyncio.sleep(0)
    connection.set_exception(ConnectionError("broker went away"))
    for n in (1, 2, 3):
        for _ in range(10):
            await asyncio.sleep(0)
        assert not task.done()  # waits for batch n in the sink rather than cancelling it
        release[n].set()
    with pytest.raises(aiomqtt.MqttError):
        await task
    assert log[-8:] == ["sink 1 end", "ack [1, 2]", "sink 3 start",
                        "write 3 handed to the store's thread", "sink 2 end", "ack [3, 4]",
                        "sink 3 end", "ack [5, 6]"]
    assert 'decode {"level_pct": 7}' not in log  # redelivered on the next session


async def test_handler_topics_keep_their_place_between_the_decoded_runs() -> None:
    """A batch with a handler topic: what came before it is handed on first, then the
    handler runs, then the rest; one batch is counted, every rejection reported."""
    from drivers.mqtt.codec import MqttCodec
    from drivers.mqtt.driver import MqttDriver, MqttSettings
    from drivers.profiles import builtin_profiles
    from gateway.clock import SystemClock
    from gateway.types import Device, DeviceKind, Location

    tank = Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native")
    codec = MqttCodec(prefix="estate", site="s", devices=[tank], profiles=builtin_profiles(),
                      max_payload_bytes=65536)
    log: list[Any] = []

    async def sink(observations: list[Any]) -> None:
        log.append(("sink", sorted(o.value for o in observations)))

    async def status(payload: bytes) -> None:
        log.append(("handler", payload))

    rejected: list[str] = []
    driver = MqttDriver(MqttSettings("127.0.0.1", 1, "t"), codec, sink,
                        lambda reason, *a: rejected.append(reason), SystemClock(),
                        handlers={"estate/s/workorders/status": status})
    tel = "estate/s/B1/water_tank/tank-1/telemetry"
    batch = [(tel, b'{"level_pct": 1}', b""), (tel, b"not json", b""),
             ("estate/s/workorders/status", b"wo-1", b""), (tel, b'{"level_pct": 2}', b""),
             ("estate/s/workorders/status", b"wo-2", b""), (tel, b'{"level_pct": 3}', b"")]
    await driver._handle(batch)  # type: ignore[arg-type]
    assert log == [("sink", [1]), ("handler", b"wo-1"), ("sink", [2]), ("handler", b"wo-2"),
                   ("sink", [3])]
    assert len(rejected) == 1
    assert (driver.metrics.batches, driver.metrics.messages_in) == (1, 6)
