"""Simulated MQTT devices of the four kinds, speaking the native payload format.

Each simulator is a small state machine stepped with the time (``step(now, rng)``) and
returns the messages it would publish, so tests can script it without a broker and the
demo and load tools can publish its output. ``inject(fault)`` makes a device produce a
named fault on its next step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from gateway.types import Device, DeviceKind

__all__ = ["SIMULATORS", "SimMessage", "Simulator", "make_simulator"]


@dataclass(frozen=True, slots=True)
class SimMessage:
    channel: str  # telemetry | event | status
    body: dict[str, Any]


@dataclass
class Simulator:
    device: Device
    pending: list[str] = field(default_factory=list)
    seq: int = 0

    def inject(self, fault: str) -> None:
        self.pending.append(fault)

    def _event(self, now: float, kind: str, **attrs: Any) -> SimMessage:
        self.seq += 1
        return SimMessage("event", {"ts": now, "id": f"{self.device.id}-{self.seq}",
                                    "event": kind, "attrs": attrs})

    def step(self, now: float, rng: random.Random) -> list[SimMessage]:
        raise NotImplementedError


@dataclass
class WaterTankSim(Simulator):
    level: float = 70.0
    pump: bool = False
    draining_fast: bool = False

    def step(self, now: float, rng: random.Random) -> list[SimMessage]:
        out: list[SimMessage] = []
        for fault in self.pending:
            if fault == "low_level":
                self.draining_fast = True
            elif fault == "flooding":
                out.append(self._event(now, "pump_room.flooding"))
            elif fault == "pump_fault":
                out.append(self._event(now, "pump.fault", pump="P1"))
        self.pending.clear()
        if self.draining_fast:
            self.level = max(5.0, self.level - 8.0)
            if self.level <= 5.0:
                self.draining_fast = False
                self.pump = True
        else:
            self.level += (1.5 if self.pump else -0.4) + rng.uniform(-0.1, 0.1)
            self.level = min(max(self.level, 0.0), 100.0)
            if self.level < 40:
                self.pump = True
            elif self.level > 90:
                self.pump = False
        out.append(SimMessage("telemetry", {
            "ts": now, "level_pct": round(self.level, 2), "level_m": round(self.level * 0.03, 3),
            "pump_running": self.pump, "outlet_pressure_mpa": round(rng.uniform(0.28, 0.32), 3),
            "turbidity_ntu": round(rng.uniform(0.1, 0.4), 2),
            "free_chlorine_mgl": round(rng.uniform(0.3, 0.6), 2),
            "ph": round(rng.uniform(7.0, 7.6), 2)}))
        return out


@dataclass
class ElevatorSim(Simulator):
    floor: int = 1
    target: int = 1

    def step(self, now: float, rng: random.Random) -> list[SimMessage]:
        out: list[SimMessage] = []
        for fault in self.pending:
            if fault == "entrapment":
                out.append(self._event(now, "elevator.entrapment", floor=self.floor))
            elif fault == "overspeed":
                out.append(self._event(now, "elevator.overspeed", speed_mps=2.6))
        self.pending.clear()
        if self.floor == self.target:
            self.target = rng.randint(-1, 18) or 1
        direction = "up" if self.target > self.floor else "down" if self.target < self.floor \
            else "idle"
        self.floor += 1 if direction == "up" else -1 if direction == "down" else 0
        if self.floor == 0:
            self.floor += 1 if direction == "up" else -1
        out.append(SimMessage("telemetry", {
            "ts": now, "mode": "normal", "floor": self.floor, "direction": direction,
            "door_state": "closed" if direction != "idle" else "open",
            "car_speed_mps": 1.75 if direction != "idle" else 0.0,
            "load_pct": round(rng.uniform(0, 60), 1), "in_service": True}))
        return out


@dataclass
class AccessGateSim(Simulator):
    denied_share: float = 0.08

    def step(self, now: float, rng: random.Random) -> list[SimMessage]:
        out: list[SimMessage] = []
        for fault in self.pending:
            if fault == "forced_open":
                out.append(self._event(now, "door.forced_open"))
            elif fault == "denied_burst":
                for _ in range(6):
                    out.append(self._event(now, "access.denied", card="FFFF0000",
                                           card_class="unknown", reason="unknown_card"))
        self.pending.clear()
        if rng.random() < 0.3:
            card = f"{rng.randrange(16**8):08X}"
            if rng.random() < self.denied_share:
                out.append(self._event(now, "access.denied", card=card, card_class="visitor",
                                       reason=rng.choice(["expired", "unknown_card",
                                                          "wrong_card_class"])))
            else:
                out.append(self._event(now, "access.granted", card=card, card_class="owner"))
        out.append(SimMessage("telemetry", {"ts": now, "door_state": "closed",
                                            "lock_state": "locked"}))
        return out


@dataclass
class ParkingBarrierSim(Simulator):
    occupancy: int = 60
    capacity: int = 109
    open_s: float = 0.0

    def step(self, now: float, rng: random.Random) -> list[SimMessage]:
        out: list[SimMessage] = []
        for fault in self.pending:
            if fault == "open_too_long":
                self.open_s = 400.0
                out.append(self._event(now, "barrier.open_too_long", open_s=self.open_s))
            elif fault == "anti_smash":
                out.append(self._event(now, "barrier.anti_smash"))
        self.pending.clear()
        if rng.random() < 0.2:
            plate = f"沪A{rng.randrange(10**5):05d}"
            if rng.random() < 0.5 and self.occupancy < self.capacity:
                self.occupancy += 1
                out.append(self._event(now, "vehicle.entry", plate=plate,
                                       pass_type=rng.choice(["monthly", "temporary"])))
            elif self.occupancy > 0:
                self.occupancy -= 1
                out.append(self._event(now, "vehicle.exit", plate=plate, pass_type="monthly"))
        state = "open" if self.open_s > 0 else "closed"
        out.append(SimMessage("telemetry", {
            "ts": now, "barrier_state": state, "open_s": self.open_s,
            "zone_occupancy": self.occupancy, "zone_capacity": self.capacity,
            "loop_ok": True}))
        return out


SIMULATORS: dict[DeviceKind, type[Simulator]] = {
    DeviceKind.WATER_TANK: WaterTankSim,
    DeviceKind.ELEVATOR: ElevatorSim,
    DeviceKind.ACCESS_GATE: AccessGateSim,
    DeviceKind.PARKING_BARRIER: ParkingBarrierSim,
}


def make_simulator(device: Device) -> Simulator:
    cls = SIMULATORS.get(device.kind)
    if cls is None:
        raise ValueError(f"no simulator for {device.kind}")
    return cls(device)
