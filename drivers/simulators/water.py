"""A simulated secondary-water-supply tank (二次供水): demand over the day drawn by a VFD
booster pump, an inlet valve refilling from the mains, water quality near GB 5749 values."""

from __future__ import annotations

import random
from typing import ClassVar

from drivers.simulators.base import Simulator, hour_of_day, rush
from gateway.types import DeviceKind, Value

__all__ = ["WaterTankSim"]

Events = list[tuple[str, dict[str, Value]]]


class WaterTankSim(Simulator):
    kind: ClassVar[DeviceKind] = DeviceKind.WATER_TANK
    scenarios: ClassVar[tuple[str, ...]] = ("low_level", "flooding", "pump_fault", "repair")

    height_m = 3.0
    demand_pct_s = 0.02  # outflow at an ordinary hour, % of the tank per second
    inlet_pct_s = 0.08  # refill through the float valve
    valve_open_below = 60.0
    valve_close_above = 95.0
    low_low_pct = 8.0  # the booster stops below this (dry-run protection)

    def setup(self) -> None:
        self.level = 70.0
        self.valve_open = False
        self.pump = True
        self.pump_fault = False
        self.freq = 38.0
        self.inlet_failed_until: float | None = None
        self.burst = 1.0  # demand multiplier (a burst main, a scenario)
        self.flooded = False
        self.door_open_until: float | None = None
        self.chlorine = 0.45
        self.low_low_sent = False
        self.high_high_sent = False
        self._noise = (0.0, 0.0, 0.0)

    def advance(self, now: float, dt: float, rng: random.Random) -> Events:
        out: Events = []
        demand = self.demand_pct_s * rush(hour_of_day(now), morning=2.5, evening=2.0) * self.burst
        inlet_ok = self.inlet_failed_until is None or now >= self.inlet_failed_until
        if inlet_ok and self.inlet_failed_until is not None:
            self.inlet_failed_until = None
            self.burst = 1.0
        if self.level < self.valve_open_below:
            self.valve_open = True
        elif self.level > self.valve_close_above:
            self.valve_open = False
        inflow = self.inlet_pct_s if self.valve_open and inlet_ok else 0.0
        outflow = demand if self.pump else 0.0
        self.level = min(100.0, max(0.0, self.level + (inflow - outflow) * dt))
        if self.level < self.low_low_pct:
            if self.pump:
                self.pump = False
            if not self.low_low_sent:
                self.low_low_sent = True
                out.append(("level.low_low", {}))
        elif self.level > self.low_low_pct + 5 and not self.pump_fault:
            self.pump = True
            self.low_low_sent = False
        if self.level >= 99.0 and not self.high_high_sent:
            self.high_high_sent = True
            out.append(("level.high_high", {}))
        elif self.level < 97.0:
            self.high_high_sent = False
        self.freq = min(50.0, 25.0 + demand * 800.0) if self.pump else 0.0
        # chlorine decays in the tank and is refreshed by fresh inflow
        self.chlorine += (-0.00002 + (0.0004 if inflow else 0.0)) * dt
        self.chlorine = min(0.8, max(0.05, self.chlorine))
        if self.door_open_until is not None and now >= self.door_open_until:
            self.door_open_until = None
        self._noise = (rng.uniform(-0.005, 0.005), rng.uniform(-0.05, 0.05),
                       rng.uniform(-0.05, 0.05))
        return out

    def values(self) -> dict[str, Value]:
        n_p, n_t, n_ph = self._noise
        outlet = 0.12 + 0.005 * self.freq if self.pump else 0.05
        return {
            "level_pct": round(self.level, 2),
            "level_m": round(self.level / 100.0 * self.height_m, 3),
            "inlet_pressure_mpa": round(0.22 + n_p, 3),
            "outlet_pressure_mpa": round(outlet + n_p, 3),
            "pump_running": self.pump,
            "pump_fault": self.pump_fault,
            "vfd_frequency_hz": round(self.freq, 1),
            "turbidity_ntu": round(0.25 + n_t, 2),
            "free_chlorine_mgl": round(self.chlorine, 3),
            "ph": round(7.3 + n_ph, 2),
            "flooded": self.flooded,
            "door_open": self.door_open_until is not None,
        }

    def trigger(self, name: str, now: float, rng: random.Random) -> Events:
        if name == "low_level":  # the inlet fails while demand is high: the tank drains
            self.inlet_failed_until = now + 600.0
            self.burst = 300.0  # 6 %/s: seconds, not hours, so the demo shows it
            return []
        if name in ("pump_fault", "pump.fault"):
            self.pump_fault = True
            self.pump = False
            return [("pump.fault", {"pump": "P1"})]
        if name == "repair":
            self.pump_fault = False
            self.flooded = False
            self.pump = self.level > self.low_low_pct
            return []
        if name == "level.low_low":
            self.level = self.low_low_pct - 3.0
            self.pump = False
            self.low_low_sent = True
            return [(name, {})]
        if name == "level.high_high":
            self.level = 99.5
            self.high_high_sent = True
            return [(name, {})]
        if name in ("flooding", "pump_room.flooding"):
            self.flooded = True
            return [("pump_room.flooding", {})]
        if name == "pump_room.intrusion":
            self.door_open_until = now + 60.0
            return [(name, {})]
        return super().trigger(name, now, rng)
