"""A simulated access gate (门禁): card swipes over the day, a realistic denied share, doors
that close on their own unless held, pre-alarm and alarm when held open."""

from __future__ import annotations

import random
from typing import ClassVar

from drivers.simulators.base import Simulator, hour_of_day, poisson, rush
from gateway.types import DeviceKind, Value
from gateway.vocabulary import CardClass, DenyReason, DoorState, LockState

__all__ = ["AccessGateSim"]

Events = list[tuple[str, dict[str, Value]]]

CARD_CLASSES = ([CardClass.OWNER, CardClass.TENANT, CardClass.VISITOR,
                 CardClass.TEMPORARY_PARKING, CardClass.STAFF], [60, 22, 8, 5, 5])
DENY_REASONS = ([DenyReason.UNKNOWN_CARD, DenyReason.EXPIRED, DenyReason.WRONG_CARD_CLASS,
                 DenyReason.ARREARS_BLOCKED], [40, 35, 15, 10])


class AccessGateSim(Simulator):
    kind: ClassVar[DeviceKind] = DeviceKind.ACCESS_GATE
    scenarios: ClassVar[tuple[str, ...]] = ("forced_open", "held_open", "denied_burst")

    swipes_per_hour = 40.0  # at an ordinary hour; more at rush hours
    denied_share = 0.04  # plus parking cards at floor doors: about 8 % of swipes denied
    pre_alarm_s = 30.0
    alarm_s = 60.0

    def setup(self) -> None:
        self.door = DoorState.CLOSED
        self.lock = LockState.LOCKED
        self.open_s = 0.0
        self.close_at: float | None = None
        self.battery = 97.0
        self.pre_sent = False
        self.alarm_sent = False

    def _card(self, rng: random.Random) -> str:
        return f"{rng.randrange(16**8):08X}"

    def _open(self, now: float, for_s: float) -> None:
        if self.door == DoorState.CLOSED:
            self.open_s = 0.0
            self.pre_sent = self.alarm_sent = False
        self.door = DoorState.OPEN
        if self.lock != LockState.FAULT:
            self.lock = LockState.UNLOCKED
        self.close_at = now + for_s

    def swipe(self, now: float, rng: random.Random, *, granted: bool | None = None) -> Events:
        card = self._card(rng)
        card_class = rng.choices(*CARD_CLASSES)[0]
        if granted is None:
            granted = rng.random() >= self.denied_share and card_class != \
                CardClass.TEMPORARY_PARKING
        if not granted:
            if card_class == CardClass.TEMPORARY_PARKING:
                reason = DenyReason.WRONG_CARD_CLASS  # a parking card may not open floor doors
            else:
                reason = rng.choices(*DENY_REASONS)[0]
            if reason == DenyReason.UNKNOWN_CARD:
                card_class = CardClass.UNKNOWN
            return [("access.denied", {"card": card, "card_class": card_class.value,
                                       "reason": reason.value})]
        held = rng.random() < 0.005  # someone props the door open
        self._open(now, 90.0 if held else rng.uniform(3.0, 8.0))
        return [("access.granted", {"card": card, "card_class": card_class.value})]

    def advance(self, now: float, dt: float, rng: random.Random) -> Events:
        out: Events = []
        lam = self.swipes_per_hour * rush(hour_of_day(now)) * dt / 3600.0
        for _ in range(poisson(rng, lam)):
            out += self.swipe(now, rng)
        self.battery = max(5.0, self.battery - dt * 1e-6)
        if self.door != DoorState.CLOSED:
            self.open_s += dt
            if self.open_s >= self.pre_alarm_s and not self.pre_sent:
                self.pre_sent = True
                out.append(("door.open_too_long_pre", {"open_s": round(self.open_s, 1)}))
            if self.open_s >= self.alarm_s and not self.alarm_sent:
                self.alarm_sent = True
                self.door = DoorState.HELD_OPEN
                out.append(("door.open_too_long", {"open_s": round(self.open_s, 1)}))
            if self.close_at is not None and now >= self.close_at:
                self.door = DoorState.CLOSED
                self.open_s = 0.0
                self.close_at = None
                if self.lock != LockState.FAULT:
                    self.lock = LockState.LOCKED
        return out

    def values(self) -> dict[str, Value]:
        return {"door_state": self.door.value, "lock_state": self.lock.value,
                "door_open_s": round(self.open_s, 1), "battery_pct": round(self.battery, 1)}

    def trigger(self, name: str, now: float, rng: random.Random) -> Events:
        if name == "access.granted":
            return self.swipe(now, rng, granted=True)
        if name == "access.denied":
            return self.swipe(now, rng, granted=False)
        if name in ("door.forced_open", "forced_open"):
            self._open(now, 20.0)
            self.door = DoorState.FORCED_OPEN
            return [("door.forced_open", {})]
        if name == "held_open":
            self._open(now, self.alarm_s + 30.0)
            return []
        if name == "denied_burst":  # someone trying cards at the door
            return [("access.denied", {"card": "FFFF0000", "card_class": "unknown",
                                       "reason": "unknown_card"})] * 6
        if name in ("door.open_too_long_pre", "door.open_too_long"):
            self._open(now, self.alarm_s + 30.0)
            self.pre_sent = True
            self.open_s = max(self.open_s, self.pre_alarm_s)
            if name == "door.open_too_long":
                self.alarm_sent = True
                self.door = DoorState.HELD_OPEN
                self.open_s = max(self.open_s, self.alarm_s)
            return [(name, {"open_s": round(self.open_s, 1)})]
        if name == "door.lock_fault":
            self.lock = LockState.FAULT
            return [(name, {})]
        if name == "door.remote_open":
            self._open(now, 5.0)
            return [(name, {"by": "control-room"})]
        return super().trigger(name, now, rng)
