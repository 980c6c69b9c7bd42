"""What every simulated device shares: time stepping, injected events, vendor encoding.

A simulator is a small state machine advanced with the time (``step(now, rng)``); it returns
the messages the device would publish, so tests script it without a broker and the demo and
``estate-gateway simulate`` publish its output. ``inject(name)`` makes the device produce any
event of its kind's vocabulary (or a named scenario) on its next step, with the state change
that goes with it (a forced door reads ``forced_open``, a trapped car stops between floors).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from drivers.profiles import Profile
from drivers.simulators.vendor import VendorEncoder
from gateway.types import Device, DeviceKind, Value
from gateway.vocabulary import EVENTS

__all__ = ["SimMessage", "Simulator", "hour_of_day", "poisson", "rush"]


@dataclass(frozen=True, slots=True)
class SimMessage:
    channel: str  # telemetry | event | status
    body: dict[str, Any]


def hour_of_day(now: float, utc_offset_h: float = 8.0) -> float:
    """Local hour (0–24) at the estate; Beijing time by default."""
    return ((now + utc_offset_h * 3600.0) % 86_400.0) / 3600.0


def rush(hour: float, *, morning: float = 3.0, evening: float = 3.0) -> float:
    """Traffic multiplier over a day: quiet at night, peaks at 07–09 and 17–20."""
    if 7 <= hour < 9:
        return morning
    if 17 <= hour < 20:
        return evening
    if hour < 6 or hour >= 23:
        return 0.15
    return 1.0


def poisson(rng: random.Random, lam: float) -> int:
    """How many arrivals in an interval with ``lam`` expected (Knuth; normal when large)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


_KINDS: dict[DeviceKind, type[Simulator]] = {}


class Simulator:
    """Base of the per-kind simulators; subclasses implement ``advance`` and ``trigger``."""

    kind: ClassVar[DeviceKind]
    scenarios: ClassVar[tuple[str, ...]] = ()

    def __init__(self, device: Device, *, profile: Profile | None = None) -> None:
        if profile is not None and profile.kind != device.kind:
            raise ValueError(f"profile {profile.key} is not for {device.kind.value}")
        self.device = device
        self.profile = profile
        self.encoder = VendorEncoder(profile) if profile is not None and profile.id != "native" \
            else None
        self.pending: list[str] = []
        self.seq = 0
        self.last: float | None = None
        self.unencodable = 0  # events this vendor's format has no code for (not sent)
        self.ignored = 0  # injected names that belong to another kind
        self.setup()

    @property
    def injectable(self) -> tuple[str, ...]:
        return self.injectable_names()

    @classmethod
    def injectable_names(cls) -> tuple[str, ...]:
        return (*EVENTS[cls.kind], *cls.scenarios)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _KINDS[cls.kind] = cls

    def inject(self, name: str) -> None:
        """Produce event ``name`` (or run scenario ``name``) on the next step.

        A name only another kind knows (a fault sprayed over a whole estate) is ignored and
        counted in ``ignored``; a name no simulator knows is a mistake and raises ValueError.
        """
        if name not in self.injectable:
            if any(name in sim.injectable_names() for sim in _KINDS.values()):
                self.ignored += 1
                return
            raise ValueError(f"{self.device.id}: cannot inject {name!r}; known: "
                             f"{', '.join(self.injectable)} / 无法注入该事件")
        self.pending.append(name)

    def step(self, now: float, rng: random.Random) -> list[SimMessage]:
        """Advance to ``now``; the messages in the device's profile format."""
        native = self.step_native(now, rng)
        if self.encoder is None:
            return native
        out: list[SimMessage] = []
        for msg in native:
            body = dict(msg.body)
            at = float(body.pop("ts"))
            if msg.channel == "telemetry":
                out.append(SimMessage("telemetry", self.encoder.telemetry(at, body)))
                continue
            encoded = self.encoder.event(at, body["event"], body["id"], body.get("attrs", {}))
            if encoded is None:
                self.unencodable += 1
            else:
                out.append(SimMessage("event", encoded))
        return out

    def step_native(self, now: float, rng: random.Random) -> list[SimMessage]:
        """Advance to ``now``; the messages in the gateway's native format."""
        dt = 0.0 if self.last is None else max(0.0, now - self.last)
        self.last = now
        out: list[SimMessage] = []
        pending, self.pending = self.pending, []
        for name in pending:
            for event, attrs in self.trigger(name, now, rng):
                out.append(self.event(now, event, attrs))
        for event, attrs in self.advance(now, dt, rng):
            out.append(self.event(now, event, attrs))
        out.append(SimMessage("telemetry", {"ts": now, **self.values()}))
        return out

    def event(self, now: float, name: str, attrs: Mapping[str, Value]) -> SimMessage:
        self.seq += 1
        return SimMessage("event", {"ts": now, "id": f"{self.device.id}-{self.seq}",
                                    "event": name, "attrs": dict(attrs)})

    # -- what each kind implements --------------------------------------------------------

    def setup(self) -> None:
        """Set the device's initial state."""

    def advance(self, now: float, dt: float, rng: random.Random
                ) -> list[tuple[str, dict[str, Value]]]:
        """Move the device's state on by ``dt`` seconds; the events that happened."""
        raise NotImplementedError

    def values(self) -> dict[str, Value]:
        """The telemetry the device reports now (vocabulary metric → value)."""
        raise NotImplementedError

    def trigger(self, name: str, now: float, rng: random.Random
                ) -> list[tuple[str, dict[str, Value]]]:
        """Apply an injected event or scenario; the events it produces."""
        if name == "device.offline":
            return [(name, {"reason": "network"})]
        if name in ("device.online", "device.tamper"):
            return [(name, {})]
        raise NotImplementedError(name)
