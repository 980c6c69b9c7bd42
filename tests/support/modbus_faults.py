"""A Modbus slave that answers wrongly on purpose, over TCP or on a serial line (one end of a
socat pty pair), for the reliability tests.

It speaks just enough Modbus to be wrong in a chosen way: read requests (function codes 1-4)
are answered from ``SimulatedDevice`` images, one per device address, and each address can be
given a ``Fault`` that bends its answer (wrong transaction id, another unit, the other
table's function code and values, a short PDU, random bytes, a lying length or byte count,
a bad CRC, half a frame, a closed connection). Anything else is answered with exception 01.
It deliberately does not use pymodbus, whose server would refuse to send such frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import struct
import termios
import tty
from collections import Counter
from collections.abc import Mapping
from typing import Literal

from drivers.simulators.modbus_devices import SimulatedDevice

__all__ = ["Fault", "FaultySlave", "crc16"]

Fault = Literal[
    "ok",  # a correct answer
    "silent",  # no answer at all
    "wrong_tid",  # TCP: the transaction id of another request
    "wrong_unit",  # the answer names another device address (RTU: with a valid CRC)
    "wrong_function",  # 03 answered as 04 (and 04 as 03, 01 as 02, 02 as 01) with that
    #                    table's values: well-formed, plausible, and wrong
    "truncated",  # the data cut short; TCP: MBAP length consistent; RTU: CRC valid
    "random",  # random bytes instead of a frame
    "length_long",  # TCP: the MBAP length claims 20 bytes more than are sent
    "length_short",  # TCP: the MBAP length claims the PDU ends after its byte count
    "byte_count",  # the byte count says one register (or coil byte) less than sent
    "bad_crc",  # RTU: a correct frame with its CRC flipped
    "half",  # the first half of a correct frame, then nothing
    "close",  # TCP: read the request, close the connection without answering
]

_OTHER_TABLE = {1: 2, 2: 1, 3: 4, 4: 3}


def crc16(frame: bytes) -> bytes:
    """Modbus RTU CRC of ``frame``, as the two bytes that follow it on the wire."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


class FaultySlave:
    """Serves the devices by address; ``faults[address]`` bends that device's answers.

    Counts what it did per fault in ``sent`` (``("wrong_tid", 1)`` answers to device 1).
    """

    def __init__(self, devices: Mapping[int, SimulatedDevice], *, seed: int = 10) -> None:
        self.devices = dict(devices)
        self.faults: dict[int, Fault] = {}
        self.sent: Counter[tuple[Fault, int]] = Counter()
        self.reading = asyncio.Event()  # cleared: a TCP link stops reading (half-open)
        self.reading.set()
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._serial_fd: int | None = None
        self._rx = b""
        self.port: int | None = None

    # -- what is answered -------------------------------------------------------------

    def _pdu(self, fc: int, address: int, count: int, device: SimulatedDevice) -> bytes:
        values = device.getValues(fc, address, count)
        if not isinstance(values, list):  # the device refuses: a Modbus exception
            return bytes([fc | 0x80, int(values)])
        if fc in (1, 2):
            packed = bytearray((count + 7) // 8)
            for i, bit in enumerate(values):
                if bit:
                    packed[i // 8] |= 1 << (i % 8)
            return bytes([fc, len(packed)]) + bytes(packed)
        data = b"".join(struct.pack(">H", int(v) & 0xFFFF) for v in values)
        return bytes([fc, len(data)]) + data

    def _answer(self, unit: int, fc: int, address: int, count: int
                ) -> tuple[Fault, int, bytes] | None:
        """(fault, unit to name, PDU) for one request, or None when nobody answers."""
        device = self.devices.get(unit)
        if device is None:
            return None
        fault = self.faults.get(unit, "ok")
        self.sent[(fault, unit)] += 1
        if fault == "silent":
            return None
        if fc not in (1, 2, 3, 4):
            return fault, unit, bytes([fc | 0x80, 1])
        if fault == "wrong_function":
            return fault, unit, self._pdu(_OTHER_TABLE[fc], address, count, device)
        pdu = self._pdu(fc, address, count, device)
        if fault == "wrong_unit":
            return fault, (unit % 247) + 1, pdu
        if fault == "truncated":
            return fault, unit, pdu[: 2 + max(0, (len(pdu) - 2) // 2 - 1)]
        if fault == "byte_count" and pdu[0] < 0x80:
            less = 1 if fc in (1, 2) else 2
            return fault, unit, bytes([fc, pdu[1] - less]) + pdu[2:]
        return fault, unit, pdu

    # -- Modbus TCP -------------------------------------------------------------------

    async def start_tcp(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port`` 0: a free one; pass the old one to restart)."""
        self._server = await asyncio.start_server(self._serve_tcp, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                await self.reading.wait()
                header = await reader.readexactly(7)
                tid, _, length, unit = struct.unpack(">HHHB", header)
                body = await reader.readexactly(max(0, length - 1))
                if len(body) < 5:
                    continue
                fc, address, count = body[0], *struct.unpack(">HH", body[1:5])
                answer = self._answer(unit, fc, address, count)
                if answer is None:
                    continue
                fault, named, pdu = answer
                if fault == "close":
                    break
                writer.write(self._tcp_frame(fault, tid, named, pdu))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _tcp_frame(self, fault: Fault, tid: int, unit: int, pdu: bytes) -> bytes:
        if fault == "random":
            return self._rng.randbytes(self._rng.randint(3, 40))
        if fault == "wrong_tid":
            tid = (tid + 1) % 0x10000 or 1
        length = len(pdu) + 1
        if fault == "length_long":
            length += 20
        elif fault == "length_short":
            length = 3  # unit + function code + byte count: the data is left over
        frame = struct.pack(">HHHB", tid, 0, length, unit) + pdu
        return frame[: len(frame) // 2] if fault == "half" else frame

    # -- Modbus RTU on a serial line ----------------------------------------------------

    def start_serial(self, path: str) -> None:
        """Answer on ``path`` (one end of a pty pair; the driver opens the other end)."""
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._serial_fd = fd
        asyncio.get_running_loop().add_reader(fd, self._serial_readable)

    def _serial_readable(self) -> None:
        assert self._serial_fd is not None
        try:
            self._rx += os.read(self._serial_fd, 1024)
        except BlockingIOError:
            return
        except OSError:  # the other end is gone
            self._rx = b""
            return
        while len(self._rx) >= 8:
            frame, self._rx = self._rx[:8], self._rx[8:]
            if crc16(frame[:6]) != frame[6:]:
                self._rx = b""  # out of step: drop what is buffered and wait for silence
                return
            unit, fc, address, count = frame[0], frame[1], *struct.unpack(">HH", frame[2:6])
            answer = self._answer(unit, fc, address, count)
            if answer is not None:
                os.write(self._serial_fd, self._rtu_frame(*answer))

    def _rtu_frame(self, fault: Fault, unit: int, pdu: bytes) -> bytes:
        if fault == "random":
            return self._rng.randbytes(self._rng.randint(3, 40))
        body = bytes([unit]) + pdu
        frame = body + crc16(body)
        if fault == "bad_crc":
            return frame[:-2] + bytes([frame[-2] ^ 0xFF, frame[-1] ^ 0x5A])
        if fault == "half":
            return frame[: len(frame) // 2]
        return frame

    # -- stopping ---------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop listening and drop every connection (as a powered-off converter does)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._conns):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None
        if self._serial_fd is not None:
            asyncio.get_running_loop().remove_reader(self._serial_fd)
            os.close(self._serial_fd)
            self._serial_fd = None
        self.reading.set()
        await asyncio.sleep(0)
