"""A simulated generic estate device: car-park CO with its exhaust fan, mains and standby
generator, a sump pump cycling, leak and temperature; alarms (medical button, perimeter, fire
panel trouble...) come only when injected, as they do in life: rarely."""

from __future__ import annotations

import random
from typing import ClassVar

from drivers.simulators.base import Simulator, hour_of_day, rush
from gateway.types import DeviceKind, Value

__all__ = ["GenericSim"]

Events = list[tuple[str, dict[str, Value]]]


class GenericSim(Simulator):
    kind: ClassVar[DeviceKind] = DeviceKind.GENERIC
    scenarios: ClassVar[tuple[str, ...]] = ("power_cut", "medical")

    fan_on_ppm = 50.0
    generator_start_s = 10.0
    sump_fill_s = 600.0
    sump_pump_s = 60.0

    def setup(self) -> None:
        self.co = 8.0
        self.fan = False
        self.power_ok = True
        self.generator = False
        self.outage_s = 0.0
        self.sump_t = 0.0
        self.sump_pump = False
        self.leak = False
        self.temp = 21.0

    def _household(self) -> str:
        loc = self.device.location
        return "-".join(p for p in (loc.building, loc.floor, loc.zone) if p)

    def advance(self, now: float, dt: float, rng: random.Random) -> Events:
        out: Events = []
        traffic = rush(hour_of_day(now))
        target = 5.0 + 10.0 * traffic
        self.co += (target - self.co) * min(1.0, dt / 120.0) + rng.uniform(-0.3, 0.3)
        if self.fan:
            self.co -= 0.5 * dt
        self.co = max(0.0, self.co)
        self.fan = self.co > self.fan_on_ppm or (self.fan and self.co > self.fan_on_ppm * 0.6)
        if not self.power_ok:
            self.outage_s += dt
            if self.outage_s >= self.generator_start_s and not self.generator:
                self.generator = True
                out.append(("generator.started", {}))
        self.sump_t += dt
        cycle = self.sump_fill_s + self.sump_pump_s
        self.sump_pump = (self.sump_t % cycle) >= self.sump_fill_s
        self.temp += rng.uniform(-0.05, 0.05)
        return out

    def values(self) -> dict[str, Value]:
        return {"value": round(self.co, 2), "co_ppm": round(self.co, 1),
                "fan_running": self.fan, "leak": self.leak, "power_ok": self.power_ok,
                "generator_running": self.generator, "pump_running": self.sump_pump,
                "temperature_c": round(self.temp, 1)}

    def trigger(self, name: str, now: float, rng: random.Random) -> Events:
        if name in ("medical", "medical.button"):
            return [("medical.button", {"household": self._household()})]
        if name in ("power_cut", "power.outage"):
            self.power_ok = False
            self.outage_s = 0.0
            return [("power.outage", {})]
        if name == "power.restored":
            self.power_ok = True
            self.generator = False
            return [(name, {})]
        if name == "generator.started":
            self.generator = True
            return [(name, {})]
        if name == "generator.fault":
            self.generator = False
            return [(name, {})]
        if name == "leak.detected":
            self.leak = True
            return [(name, {})]
        if name == "co.high":
            self.co = 150.0
            self.fan = True
            return [(name, {"co_ppm": 150.0})]
        if name == "perimeter.alarm":
            return [(name, {"zone": self.device.location.zone or "perimeter"})]
        if name in ("fire_panel.trouble", "sump_pump.fault", "sump.high_level"):
            return [(name, {})]
        return super().trigger(name, now, rng)
