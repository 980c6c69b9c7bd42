"""The MQTT driver's fast path: buffered reads, one-write acks, and the paho internals they use."""

from __future__ import annotations

import struct

import aiomqtt
import paho.mqtt.client as paho

from drivers.mqtt.driver import _ack, _NoFilteredCallbacks, _ReadBuffer


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


def test_read_buffer_serves_small_reads_from_one_large_read() -> None:
    sock = FakeSocket([b"\x30\x05hello\x30\x03abc"])
    buf = _ReadBuffer(sock)
    assert [buf.recv(1), buf.recv(1), buf.recv(5), buf.recv(1), buf.recv(1)] == [
        b"\x30", b"\x05", b"hello", b"\x30", b"\x03"]
    assert buf.pending() == 3
    assert buf.recv(3) == b"abc"
    assert buf.pending() == 0
    assert sock.calls == [65536]
    assert buf.fileno() == 7


def test_read_buffer_finishes_a_packet_without_reading_ahead() -> None:
    sock = FakeSocket([b"\x30\x05he", b"llo\x30\x01x"])
    buf = _ReadBuffer(sock)
    assert buf.recv(1) == b"\x30"
    assert buf.recv(1) == b"\x05"
    assert buf.recv(5) == b"hello"  # two buffered bytes plus exactly the three missing
    assert buf.pending() == 0
    assert sock.calls == [65536, 3]
    assert buf.recv(1) == b"\x30"


def test_read_buffer_passes_would_block_through_when_empty() -> None:
    buf = _ReadBuffer(FakeSocket([]))
    try:
        buf.recv(1)
    except BlockingIOError:
        pass
    else:
        raise AssertionError("expected BlockingIOError")


def test_ack_queues_one_run_of_pubacks_in_receipt_order() -> None:
    queued: list[tuple[int, bytes, int, int]] = []

    class FakePaho:
        def _packet_queue(self, command: int, packet: bytes, mid: int, qos: int) -> None:
            queued.append((command, packet, mid, qos))

    batch = [aiomqtt.Message("a/b", b"{}", qos=q, retain=False, mid=m, properties=None)
             for q, m in ((1, 7), (0, 0), (1, 3))]
    _ack(FakePaho(), batch)
    assert queued == [(0x40, struct.pack("!BBH", 0x40, 2, 7) + struct.pack("!BBH", 0x40, 2, 3),
                       0, 0)]


def test_no_filtered_callbacks_matches_nothing() -> None:
    assert list(_NoFilteredCallbacks().iter_match("estate/a/b")) == []


async def test_pinned_paho_and_aiomqtt_still_have_the_internals_the_driver_uses() -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    assert hasattr(client, "_packet_queue")
    assert hasattr(client, "_on_message_filtered")
    assert hasattr(client, "_sock")
    wrapped = aiomqtt.Client("127.0.0.1")
    assert hasattr(wrapped, "_queue")
    assert isinstance(wrapped._client, paho.Client)
