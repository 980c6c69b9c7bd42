"""MQTT 3.1.1 framing: cuts a received byte stream into packets and takes PUBLISH packets out.

Pure, no I/O: the driver feeds it what the socket gave (``PacketSplitter.feed``); each
complete PUBLISH at QoS 0 or 1 becomes a ``Publish`` tuple and every other complete packet
(CONNACK, SUBACK, PUBACK for our own publishes, PINGRESP, and QoS 2 PUBLISH, which paho's
state machine must see) is returned as bytes, in stream order, for paho to read. A packet
cut off at the end of one read waits for the next.

Why this exists: paho decodes each PUBLISH with several Python calls, wraps it in an
``MQTTMessage`` and runs its callbacks, and aiomqtt wraps it again; that receive path was
about two thirds of the gateway's event loop under load (docs/performance.md). Here a
PUBLISH costs a few slices.

The packet layout (MQTT 3.1.1 §2.2, §3.3)::

    byte 0       0x3 (PUBLISH) << 4 | DUP << 3 | QoS << 1 | RETAIN
    1..4 bytes   remaining length, 7 bits a byte, least significant first, high bit = more
    2 + n bytes  topic: big-endian length, UTF-8
    2 bytes      packet id (QoS 1 and 2 only)
    the rest     payload (may be empty)

DUP and RETAIN are not carried: a redelivered (DUP) message is stored like any other (the
store ignores a duplicate by its key) and telemetry means the same whether or not the
broker retained it, which is how the driver treated both before this module existed.
"""

from __future__ import annotations

__all__ = ["MalformedStream", "PacketSplitter", "Publish", "PUBACK", "PUBCOMP"]

PUBACK = 0x40
PUBCOMP = 0x70
_PUBACK_HEAD = bytes((PUBACK, 2))

Publish = tuple[str, bytes, bytes]
"""(topic, payload, ack): ``ack`` is the PUBACK to send once the message is stored (4
bytes, its packet id inside), or ``b""`` for QoS 0. Acks are joined and written as they
are, so the driver never re-encodes a packet id."""


class MalformedStream(ValueError):
    """The stream is not MQTT (a remaining length longer than four bytes)."""


class PacketSplitter:
    """Keeps the unfinished tail of the stream between reads; one per connection.

    After a malformed remaining length the splitter stops splitting and hands everything,
    from that packet on, to paho, whose own reader reports the protocol error and drops
    the connection (a fresh connection gets a fresh splitter).
    """

    __slots__ = ("_broken", "_chunks", "_have", "_need")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []  # the unfinished packet so far, in pieces
        self._have = 0  # bytes in _chunks
        self._need = 0  # bytes the unfinished packet needs before it is worth parsing
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished packet held back until the rest arrives."""
        return self._have

    def feed(self, data: bytes, publishes: list[Publish]) -> bytes:
        """Split ``data`` (what the socket gave, after what was held back).

        Appends each complete QoS 0/1 PUBLISH to ``publishes``; returns the complete
        other packets, concatenated in stream order (``b""`` when there are none).
        """
        if self._broken:
            return data
        if self._chunks:
            # a large packet arrives over many reads: collect the pieces and join once
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return b""
            data = b"".join(self._chunks)
            self._chunks = []
            self._have = 0
        n = len(data)
        pos = 0
        others: list[bytes] = []
        append = publishes.append
        while pos < n:
            first = data[pos]
            i = pos + 1
            if i >= n:
                self._hold(data, pos, n - pos + 1)
                break
            length = data[i]
            i += 1
            if length > 127:  # remaining length of 2 to 4 bytes
                length &= 127
                shift = 7
                while True:
                    if i >= n:
                        length = -1
                        break
                    byte = data[i]
                    i += 1
                    length |= (byte & 127) << shift
                    if byte < 128:
                        break
                    shift += 7
                    if shift > 21:
                        self._broken = True
                        others.append(data[pos:])
                        return b"".join(others)
                if length < 0:  # the length's own bytes are not all here yet
                    self._hold(data, pos, n - pos + 1)
                    break
            end = i + length
            if end > n:
                self._hold(data, pos, end - pos)
                break
            qos = first & 0x06
            if first >> 4 == 3 and qos < 4 and length >= 2:  # PUBLISH at QoS 0 or 1
                topic_end = i + 2 + (data[i] << 8 | data[i + 1])
                if qos:
                    if topic_end + 2 <= end:
                        append((data[i + 2:topic_end].decode("utf-8", "replace"),
                                data[topic_end + 2:end],
                                _PUBACK_HEAD + data[topic_end:topic_end + 2]))
                        pos = end
                        continue
                elif topic_end <= end:
                    append((data[i + 2:topic_end].decode("utf-8", "replace"),
                            data[topic_end:end], b""))
                    pos = end
                    continue
                # a topic longer than the packet: paho reports the malformed packet
            others.append(data[pos:end])
            pos = end
        if not others:
            return b""
        return others[0] if len(others) == 1 else b"".join(others)

    def _hold(self, data: bytes, pos: int, need: int) -> None:
        """Keep ``data[pos:]``, the start of a packet of (at least) ``need`` bytes."""
        rest = data[pos:]
        self._chunks = [rest]
        self._have = len(rest)
        self._need = need
