"""A simulated car-park barrier (道闸): rush-hour arrivals (out in the morning, in in the
evening), monthly / temporary / private-space vehicles, refusals, a queue that blocks the lane,
and the barrier cycling opening → open → closing → closed for each vehicle."""

from __future__ import annotations

import random
from collections import deque
from typing import ClassVar

from drivers.simulators.base import Simulator, hour_of_day, poisson, rush
from gateway.types import DeviceKind, Value
from gateway.vocabulary import BarrierState, PassType, RefuseReason

__all__ = ["ParkingBarrierSim"]

Events = list[tuple[str, dict[str, Value]]]

PASS_TYPES = ([PassType.MONTHLY, PassType.TEMPORARY, PassType.PRIVATE_SPACE], [65, 30, 5])
PHASE_S = {BarrierState.OPENING: 2.0, BarrierState.CLOSING: 2.0}
PROVINCES = "沪苏浙京粤"


class ParkingBarrierSim(Simulator):
    kind: ClassVar[DeviceKind] = DeviceKind.PARKING_BARRIER
    scenarios: ClassVar[tuple[str, ...]] = ("open_too_long", "anti_smash", "rush")

    capacity = 109  # residential spaces (DOMAIN.md)
    vehicles_per_hour = 30.0
    expired_share = 0.03
    open_too_long_s = 300.0
    queue_blocks_at = 4

    def setup(self) -> None:
        zone = (self.device.location.zone or "").lower()
        self.lanes = ("exit",) if "exit" in zone else ("entry",) if (
            "entr" in zone or zone.endswith("in")) else ("entry", "exit")
        self.occupancy = 60
        self.state = BarrierState.CLOSED
        self.phase_t = 0.0
        self.open_s = 0.0
        self.pass_left = 0.0  # seconds until the vehicle under the barrier has passed
        self.stuck_open = False
        self.queue: deque[str] = deque()
        self.loop_ok = True
        self.blocked = False
        self.full_sent = False
        self.too_long_sent = False
        self.surge = 1.0

    def _plate(self, rng: random.Random) -> str:
        return f"{rng.choice(PROVINCES)}{rng.choice('ABCDE')}{rng.randrange(10**5):05d}"

    def _arrive(self, lane: str, rng: random.Random, *, refuse: bool = False) -> Events:
        plate = self._plate(rng)
        pass_type = rng.choices(*PASS_TYPES)[0]
        if lane == "exit":
            if self.occupancy > 0:
                self.queue.append(f"exit|{plate}|{pass_type.value}")
            return []
        reason = None
        if refuse or (pass_type == PassType.MONTHLY and rng.random() < self.expired_share):
            pass_type, reason = PassType.MONTHLY, RefuseReason.PASS_EXPIRED
        elif pass_type == PassType.TEMPORARY and self.occupancy >= self.capacity:
            reason = RefuseReason.NO_SPACE
        if reason is not None:
            return [("vehicle.entry_refused", {"plate": plate, "pass_type": pass_type.value,
                                               "reason": reason.value})]
        self.queue.append(f"entry|{plate}|{pass_type.value}")
        return []

    def advance(self, now: float, dt: float, rng: random.Random) -> Events:
        out: Events = []
        hour = hour_of_day(now)
        for lane in ("entry", "exit"):
            mult = rush(hour, morning=0.8, evening=3.0) if lane == "entry" else rush(
                hour, morning=3.0, evening=0.8)
            n = poisson(rng, self.vehicles_per_hour * mult * self.surge * dt / 3600)
            if lane in self.lanes:
                for _ in range(n):
                    out += self._arrive(lane, rng)
            else:  # the estate's other barrier: the zone fills and empties through it too
                delta = n if lane == "entry" else -n
                self.occupancy = min(self.capacity, max(0, self.occupancy + delta))
        out += self._barrier(dt)
        blocked = len(self.queue) >= self.queue_blocks_at
        if blocked and not self.blocked:
            out.append(("lane.blocked", {}))
        self.blocked = blocked
        if self.occupancy >= self.capacity and not self.full_sent:
            self.full_sent = True
            out.append(("zone.full", {"zone": self.device.location.zone or "P"}))
        elif self.occupancy < self.capacity - 2:
            self.full_sent = False
        return out

    def _barrier(self, dt: float) -> Events:
        out: Events = []
        if self.state != BarrierState.CLOSED:
            self.open_s += dt
        if self.state == BarrierState.FAULT:
            return out
        if self.stuck_open:
            self.state = BarrierState.OPEN
            if self.open_s >= self.open_too_long_s and not self.too_long_sent:
                self.too_long_sent = True
                out.append(("barrier.open_too_long", {"open_s": round(self.open_s, 1)}))
            return out
        if self.state == BarrierState.CLOSED and self.queue:
            self.state, self.phase_t = BarrierState.OPENING, 0.0
        elif self.state in PHASE_S:
            self.phase_t += dt
            if self.phase_t >= PHASE_S[self.state]:
                if self.state == BarrierState.OPENING:
                    self.state, self.pass_left = BarrierState.OPEN, 4.0
                    out += self._pass()
                else:
                    self.state, self.open_s = BarrierState.CLOSED, 0.0
        elif self.state == BarrierState.OPEN:
            self.pass_left -= dt
            if self.pass_left <= 0:
                self.state, self.phase_t = BarrierState.CLOSING, 0.0
        return out

    def _pass(self) -> Events:
        if not self.queue:
            return []
        lane, plate, pass_type = self.queue.popleft().split("|")
        if lane == "entry":
            self.occupancy = min(self.capacity, self.occupancy + 1)
            return [("vehicle.entry", {"plate": plate, "pass_type": pass_type})]
        self.occupancy = max(0, self.occupancy - 1)
        return [("vehicle.exit", {"plate": plate, "pass_type": pass_type})]

    def values(self) -> dict[str, Value]:
        return {"barrier_state": self.state.value, "open_s": round(self.open_s, 1),
                "zone_occupancy": self.occupancy, "zone_capacity": self.capacity,
                "loop_ok": self.loop_ok, "lane_blocked": self.blocked}

    def trigger(self, name: str, now: float, rng: random.Random) -> Events:
        if name in ("open_too_long", "barrier.open_too_long"):
            self.stuck_open = True
            self.state = BarrierState.OPEN
            self.open_s = max(self.open_s, self.open_too_long_s + 100.0)
            self.too_long_sent = True
            return [("barrier.open_too_long", {"open_s": round(self.open_s, 1)})]
        if name in ("anti_smash", "barrier.anti_smash"):
            self.state, self.pass_left = BarrierState.OPEN, 4.0  # reverses to open
            return [("barrier.anti_smash", {})]
        if name == "rush":
            self.surge = 20.0
            return []
        if name in ("vehicle.entry", "vehicle.exit"):
            lane = "entry" if name == "vehicle.entry" else "exit"
            plate, pass_type = self._plate(rng), PassType.MONTHLY.value
            self.occupancy = min(self.capacity, max(0, self.occupancy + (
                1 if lane == "entry" else -1)))
            return [(name, {"plate": plate, "pass_type": pass_type})]
        if name == "vehicle.entry_refused":
            return self._arrive("entry", rng, refuse=True)
        if name == "barrier.loop_fault":
            self.loop_ok = False
            return [(name, {})]
        if name == "barrier.fault":
            self.state = BarrierState.FAULT
            return [(name, {})]
        if name == "lane.blocked":
            self.blocked = True
            return [(name, {})]
        if name == "zone.full":
            self.occupancy = self.capacity
            self.full_sent = True
            return [(name, {"zone": self.device.location.zone or "P"})]
        if name == "vehicle.in_fire_lane":
            return [(name, {"plate": self._plate(rng)})]
        if name == "vehicle.on_private_space":
            return [(name, {"plate": self._plate(rng), "space": f"B2-{rng.randint(1, 109):03d}"})]
        return super().trigger(name, now, rng)
