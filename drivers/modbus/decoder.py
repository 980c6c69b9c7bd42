"""One device's register image → Readings and Events: scaling, states, range, deadband and
rising-edge event bits. No I/O; the driver hands it what it read and emits what it returns.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from drivers.modbus.codec import (
    BIT_FUNCTIONS,
    Block,
    ReadRequest,
    decode_registers,
    plan_reads,
)
from drivers.modbus.registermap import EventWord, Point, RegisterMap
from gateway.types import Event, Observation, Quality, Reading, Value

__all__ = ["DeviceDecoder", "Image", "event_id"]

Image = Mapping[ReadRequest, Sequence[int] | Sequence[bool]]
"""What one poll read: the values of each planned request, in request order."""


def event_id(device_id: str, kind: str, at: float) -> str:
    """Deterministic id of one occurrence: the same device, kind and time give the same id."""
    digest = hashlib.blake2b(f"{device_id}|{kind}|{at!r}".encode(), digest_size=10)
    return f"{device_id}:{digest.hexdigest()}"


class DeviceDecoder:
    """Decodes the polls of one device and remembers what deadband and edges need."""

    def __init__(self, device_id: str, rmap: RegisterMap, *, max_registers: int = 125,
                 max_gap: int = 0) -> None:
        self.device_id = device_id
        self.map = rmap
        blocks = [Block(p.function, p.address, p.count) for p in rmap.points]
        blocks += [Block(e.function, e.address, e.count) for e in rmap.events]
        self.plan: list[ReadRequest] = (
            plan_reads(blocks, max_registers=max_registers, max_gap=max_gap) if blocks else [])
        self._where = {id(x): self._request_for(Block(x.function, x.address, x.count))
                       for x in (*rmap.points, *rmap.events)}
        self._last_emitted: dict[str, tuple[Value, float, Quality]] = {}
        self._last_good: dict[str, Value] = {}
        self._last_bits: dict[int, int] = {}
        self.decode_errors = 0

    def _request_for(self, block: Block) -> ReadRequest:
        return next(r for r in self.plan if r.covers(block))

    def _slice(self, item: Point | EventWord, image: Image) -> Sequence[int] | Sequence[bool]:
        request = self._where[id(item)]
        values = image[request]
        start = item.address - request.address
        return values[start:start + item.count]

    def decode(self, image: Image, at: float) -> list[Observation]:
        """Readings (after deadband) and rising-edge events of one successful poll."""
        out: list[Observation] = []
        current: dict[str, Value] = {}
        for point in self.map.points:
            decoded = self._value(point, self._slice(point, image))
            if decoded is None:
                continue
            value, quality = decoded
            current[point.metric] = value
            if quality is Quality.GOOD:
                self._last_good[point.metric] = value
            if self._passes_deadband(point, value, quality, at):
                out.append(Reading(self.device_id, point.metric, value, at, point.unit,
                                   quality, at))
        for index, word in enumerate(self.map.events):
            raw = decode_registers(list(self._slice(word, image)), word.data_type,  # type: ignore[arg-type]
                                   byte_order=word.byte_order, word_order=word.word_order)
            bits = int(raw)
            rising = bits & ~self._last_bits.get(index, 0)
            self._last_bits[index] = bits
            if not rising:
                continue
            attrs = {name: current[metric] for name, metric in word.attributes
                     if metric in current}
            for bit, kind in word.bits:
                if rising >> bit & 1:
                    out.append(Event(self.device_id, kind, at,
                                     event_id(self.device_id, kind, at), attrs, at))
        return out

    def unavailable(self, at: float) -> list[Reading]:
        """One UNAVAILABLE reading per metric; ``value`` is the last good value (or the
        metric's zero) and must not be trusted: the quality says so."""
        self._last_emitted.clear()  # after recovery every metric is sent again
        zero: dict[str, Value] = {"bool": False, "str": "", "int": 0}
        return [
            Reading(self.device_id, p.metric,
                    self._last_good.get(p.metric, zero.get(p.spec.kind, 0.0)), at, p.unit,
                    Quality.UNAVAILABLE, at)
            for p in self.map.points
        ]

    def _value(self, point: Point, regs: Sequence[int] | Sequence[bool]
               ) -> tuple[Value, Quality] | None:
        spec = point.spec
        if point.function in BIT_FUNCTIONS:
            return bool(regs[0]), Quality.GOOD
        try:
            raw = decode_registers(list(regs), point.data_type,  # type: ignore[arg-type]
                                   byte_order=point.byte_order, word_order=point.word_order,
                                   bit=point.bit)
        except ValueError:
            self.decode_errors += 1
            return None
        if isinstance(raw, bool):
            return raw, Quality.GOOD
        if isinstance(raw, str):
            ok = not spec.states or raw in spec.states
            return raw, Quality.GOOD if ok else Quality.BAD
        if point.states:
            state = dict(point.states).get(int(raw))
            return (state, Quality.GOOD) if state is not None else (str(raw), Quality.BAD)
        if isinstance(raw, float) and not math.isfinite(raw):
            self.decode_errors += 1
            return None
        value: int | float
        if point.scale == 1 and point.offset == 0 and isinstance(raw, int):
            value = raw
        else:
            value = raw * point.scale + point.offset
        if isinstance(value, int) and not -2**63 <= value < 2**63:
            value = float(value)  # a uint64 above int64 cannot be stored as an integer
        if spec.kind == "int":
            value = round(value)
        elif spec.kind == "float" and isinstance(value, float):
            value = round(value, 9)  # 0.1 * 123 is 12.3, not 12.300000000000001
        bad = ((spec.low is not None and value < spec.low)
               or (spec.high is not None and value > spec.high))
        return value, Quality.BAD if bad else Quality.GOOD

    def _passes_deadband(self, point: Point, value: Value, quality: Quality, at: float) -> bool:
        last = self._last_emitted.get(point.metric)
        send = (
            last is None
            or point.deadband is None
            or last[2] is not quality
            or at - last[1] >= self.map.deadband_refresh_s
            or not isinstance(value, int | float) or not isinstance(last[0], int | float)
            or abs(value - last[0]) >= point.deadband
        )
        if send:
            self._last_emitted[point.metric] = (value, at, quality)
        return send
