"""The MQTT packet splitter: PUBLISH packets out of the byte stream, everything else to paho."""

from __future__ import annotations

import random
import struct

import pytest

from drivers.mqtt.framing import PacketSplitter, Publish


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, *, qos: int = 1, mid: int = 1, dup: bool = False,
            retain: bool = False) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", mid) if qos else b"") + payload
    first = 0x30 | (8 if dup else 0) | qos << 1 | (1 if retain else 0)
    return bytes((first,)) + varint(len(body)) + body


def puback(mid: int) -> bytes:
    return struct.pack("!BBH", 0x40, 2, mid)


CONNACK = b"\x20\x02\x01\x00"
SUBACK = b"\x90\x04\x00\x05\x01\x01"
PINGRESP = b"\xd0\x00"

# (name, stream, the publishes expected, the bytes expected for paho)
CASES: list[tuple[str, bytes, list[Publish], bytes]] = [
    ("qos1", publish("a/b", b'{"x":1}', mid=7),
     [("a/b", b'{"x":1}', puback(7))], b""),
    ("qos0: nothing to ack", publish("a/b", b"1", qos=0),
     [("a/b", b"1", b"")], b""),
    ("dup and retain flags", publish("a/b", b"2", mid=65535, dup=True, retain=True),
     [("a/b", b"2", puback(65535))], b""),
    ("qos0 with dup and retain", publish("a", b"3", qos=0, dup=True, retain=True),
     [("a", b"3", b"")], b""),
    ("zero-length payload", publish("a/b", b"", mid=3),
     [("a/b", b"", puback(3))], b""),
    ("zero-length payload qos0", publish("a/b", b"", qos=0),
     [("a/b", b"", b"")], b""),
    ("remaining length 1 byte (127)", publish("t", b"x" * 122, mid=1),
     [("t", b"x" * 122, puback(1))], b""),
    ("remaining length 2 bytes (128)", publish("t", b"y" * 123, mid=2),
     [("t", b"y" * 123, puback(2))], b""),
    ("remaining length 3 bytes", publish("t", b"z" * 20_000, mid=4),
     [("t", b"z" * 20_000, puback(4))], b""),
    ("remaining length 4 bytes", publish("t", b"w" * 2_100_000, mid=5),
     [("t", b"w" * 2_100_000, puback(5))], b""),
    ("non-ASCII topic", publish("estate/大楼/a", b"{}", mid=9),
     [("estate/大楼/a", b"{}", puback(9))], b""),
    ("connack alone goes to paho", CONNACK, [], CONNACK),
    ("mixed with other packets, order kept",
     CONNACK + publish("a/1", b"p1", mid=1) + SUBACK + publish("a/2", b"p2", qos=0)
     + puback(40) + PINGRESP + publish("a/3", b"p3", mid=2),
     [("a/1", b"p1", puback(1)), ("a/2", b"p2", b""), ("a/3", b"p3", puback(2))],
     CONNACK + SUBACK + puback(40) + PINGRESP),
    ("qos2 publish is paho's (PUBREC/PUBREL/PUBCOMP)", publish("a/q2", b"x", qos=2, mid=8),
     [], publish("a/q2", b"x", qos=2, mid=8)),
    ("topic longer than the packet goes to paho (malformed)", b"\x32\x04\x00\x09ab",
     [], b"\x32\x04\x00\x09ab"),
    ("qos1 without room for a packet id goes to paho", b"\x32\x03\x00\x01a",
     [], b"\x32\x03\x00\x01a"),
]


def feed_all(pieces: list[bytes]) -> tuple[list[Publish], bytes, int]:
    splitter = PacketSplitter()
    got: list[Publish] = []
    to_paho = b"".join(splitter.feed(p, got) for p in pieces)
    return got, to_paho, splitter.buffered


@pytest.mark.parametrize(("name", "stream", "publishes", "to_paho"), CASES,
                         ids=[c[0] for c in CASES])
def test_splitter_whole_stream_in_one_read(name: str, stream: bytes, publishes: list[Publish],
                                           to_paho: bytes) -> None:
    assert feed_all([stream]) == (publishes, to_paho, 0)


@pytest.mark.parametrize(("name", "stream", "publishes", "to_paho"),
                         [c for c in CASES if len(c[1]) < 30_000], ids=lambda v: v
                         if isinstance(v, str) else "")
def test_splitter_split_across_two_reads_at_every_byte(name: str, stream: bytes,
                                                       publishes: list[Publish],
                                                       to_paho: bytes) -> None:
    for cut in range(1, len(stream)):
        assert feed_all([stream[:cut], stream[cut:]]) == (publishes, to_paho, 0), cut


@pytest.mark.parametrize(("name", "stream", "publishes", "to_paho"),
                         [c for c in CASES if len(c[1]) < 1_000], ids=lambda v: v
                         if isinstance(v, str) else "")
def test_splitter_one_byte_per_read(name: str, stream: bytes, publishes: list[Publish],
                                    to_paho: bytes) -> None:
    assert feed_all([stream[i:i + 1] for i in range(len(stream))]) == (publishes, to_paho, 0)


def test_splitter_huge_message_over_many_reads_is_joined_once_complete() -> None:
    payload = bytes(range(256)) * 9_000  # 2.3 MB: a 4-byte remaining length
    stream = publish("big/one", payload, mid=77) + publish("small", b"s", mid=78)
    rng = random.Random(11)
    pieces, pos = [], 0
    while pos < len(stream):
        step = rng.randint(1, 70_000)
        pieces.append(stream[pos:pos + step])
        pos += step
    splitter = PacketSplitter()
    got: list[Publish] = []
    for piece in pieces[:-1]:
        assert splitter.feed(piece, got) == b""
    assert got == [] or got == [("big/one", payload, puback(77))]
    assert splitter.feed(pieces[-1], got) == b""
    assert got == [("big/one", payload, puback(77)), ("small", b"s", puback(78))]
    assert splitter.buffered == 0


def test_splitter_holds_a_partial_packet_until_the_rest_arrives() -> None:
    stream = publish("a/b", b"payload", mid=5)
    splitter = PacketSplitter()
    got: list[Publish] = []
    assert splitter.feed(stream[:6], got) == b""
    assert got == []
    assert splitter.buffered == 6
    assert splitter.feed(stream[6:] + PINGRESP, got) == PINGRESP
    assert got == [("a/b", b"payload", puback(5))]
    assert splitter.buffered == 0


def test_splitter_many_packets_in_random_reads_keeps_receipt_order() -> None:
    rng = random.Random(5)
    packets, want = [], []
    for mid in range(1, 2_001):
        qos = rng.choice((0, 1))
        payload = b"v" * rng.choice((0, 5, 120, 130, 400, 17_000))
        topic = f"estate/site/B{mid % 7}/water_tank/t-{mid}/telemetry"
        packets.append(publish(topic, payload, qos=qos, mid=mid, dup=rng.random() < 0.1))
        want.append((topic, payload, puback(mid) if qos else b""))
        if mid % 97 == 0:
            packets.append(PINGRESP)
    stream = b"".join(packets)
    pieces, pos = [], 0
    while pos < len(stream):
        step = rng.choice((1, 2, 3, 100, 4_096, 65_536))
        pieces.append(stream[pos:pos + step])
        pos += step
    got, to_paho, held = feed_all(pieces)
    assert got == want
    assert to_paho == PINGRESP * (2_000 // 97)
    assert held == 0


def test_splitter_hands_everything_to_paho_after_a_remaining_length_over_four_bytes() -> None:
    bad = b"\x30\xff\xff\xff\xff\x01"
    splitter = PacketSplitter()
    got: list[Publish] = []
    first = publish("ok", b"1", mid=1)
    assert splitter.feed(first + bad, got) == bad
    assert got == [("ok", b"1", puback(1))]
    later = publish("after", b"2", mid=2)
    assert splitter.feed(later, got) == later  # paho reports the protocol error
    assert len(got) == 1
