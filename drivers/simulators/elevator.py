"""A simulated elevator (电梯) with its IoT monitor: calls over the day, the car travelling
between floors at rated speed, door cycles at each stop, and the GB/T 24476 fault set."""

from __future__ import annotations

import random
from typing import ClassVar

from drivers.simulators.base import Simulator, hour_of_day, poisson, rush
from gateway.types import DeviceKind, Value
from gateway.vocabulary import CarDoorState, Direction, ElevatorMode

__all__ = ["ElevatorSim"]

Events = list[tuple[str, dict[str, Value]]]

# door phases and how long each lasts (s)
DOOR_TIMES = {CarDoorState.OPENING: 1.5, CarDoorState.OPEN: 4.0, CarDoorState.CLOSING: 1.5}
NEXT_DOOR = {CarDoorState.OPENING: CarDoorState.OPEN, CarDoorState.OPEN: CarDoorState.CLOSING,
             CarDoorState.CLOSING: CarDoorState.CLOSED}
STOPPING_FAULTS = ("elevator.entrapment", "elevator.entrapment_suspected",
                   "elevator.stop_outside_door_zone", "elevator.overrun_top",
                   "elevator.overrun_bottom", "elevator.power_failure",
                   "elevator.unintended_movement", "elevator.safety_circuit_open")


class ElevatorSim(Simulator):
    kind: ClassVar[DeviceKind] = DeviceKind.ELEVATOR
    scenarios: ClassVar[tuple[str, ...]] = (
        "entrapment", "overspeed", "release", *(f"mode:{m.value}" for m in ElevatorMode))

    lowest = -2
    top = 18
    floor_height_m = 3.0
    rated_speed_mps = 1.75
    calls_per_hour = 60.0

    def setup(self) -> None:
        self.pos_m = 0.0  # floor 1 is at 0 m; floor 0 does not exist (1 → -1)
        self.target: int | None = None
        self.speed = 0.0
        self.door = CarDoorState.CLOSED
        self.door_t = 0.0
        self.mode = ElevatorMode.NORMAL
        self.load = 0.0
        self.stuck = False
        self.in_service = True
        self.door_open_running = False

    # floors ↔ metres, skipping floor 0 as Chinese buildings do
    def _floor_at(self, pos: float) -> int:
        n = round(pos / self.floor_height_m)
        return n + 1 if n >= 0 else n

    def _pos_of(self, floor: int) -> float:
        return (floor - 1 if floor > 0 else floor) * self.floor_height_m

    @property
    def floor(self) -> int:
        return self._floor_at(self.pos_m)

    @property
    def direction(self) -> Direction:
        if self.target is None or self.speed == 0:
            return Direction.IDLE
        return Direction.UP if self._pos_of(self.target) > self.pos_m else Direction.DOWN

    def _call(self, now: float, rng: random.Random) -> None:
        hour = hour_of_day(now)
        here = self.floor
        if 7 <= hour < 9 and here != 1:
            target = 1  # morning: down to the lobby
        elif 17 <= hour < 20 and here == 1:
            target = rng.randint(2, self.top)  # evening: home from the lobby
        else:
            target = rng.choice([f for f in range(self.lowest, self.top + 1) if f not in (0, here)])
        self.target = target
        self.load = rng.uniform(8, 75 if rush(hour) > 1 else 40)

    def advance(self, now: float, dt: float, rng: random.Random) -> Events:
        if self.stuck or not self.in_service:
            self.speed = 0.0
            return []
        if self.door != CarDoorState.CLOSED:
            self.door_t += dt
            while self.door != CarDoorState.CLOSED and self.door_t >= DOOR_TIMES[self.door]:
                self.door_t -= DOOR_TIMES[self.door]
                self.door = NEXT_DOOR[self.door]
            if self.door == CarDoorState.CLOSED:
                self.door_t = 0.0
                if self.target is None:
                    self.load = 0.0
            return []
        if self.target is None:
            if self.mode == ElevatorMode.NORMAL and poisson(
                    rng, self.calls_per_hour * rush(hour_of_day(now)) * dt / 3600.0):
                self._call(now, rng)
            return []
        goal = self._pos_of(self.target)
        step = self.rated_speed_mps * dt
        self.speed = self.rated_speed_mps
        if abs(goal - self.pos_m) <= step:
            self.pos_m = goal
            self.speed = 0.0
            self.target = None
            self.door = CarDoorState.OPENING
            self.door_t = 0.0
        else:
            self.pos_m += step if goal > self.pos_m else -step
        return []

    def values(self) -> dict[str, Value]:
        door = CarDoorState.OPEN if self.door_open_running else self.door
        self.door_open_running = False
        return {"mode": self.mode.value, "floor": self.floor,
                "direction": self.direction.value, "door_state": door.value,
                "car_speed_mps": round(self.speed, 2), "load_pct": round(self.load, 1),
                "in_service": self.in_service and not self.stuck,
                "occupied": self.load > 0}

    def trigger(self, name: str, now: float, rng: random.Random) -> Events:
        here = {"floor": self.floor}
        if name.startswith("mode:"):
            self.mode = ElevatorMode(name.removeprefix("mode:"))
            self.in_service = self.mode in (ElevatorMode.NORMAL, ElevatorMode.DRIVER)
            if self.mode == ElevatorMode.FIRE:
                self.target = 1  # fire service: home to the lobby
                self.in_service = True
            return []
        if name in ("entrapment", "elevator.entrapment", "elevator.entrapment_suspected"):
            event = "elevator.entrapment" if name == "entrapment" else name
            if self.target is None:  # trapped between floors, just after leaving
                self.pos_m += 1.2 if self.floor < self.top else -1.2
            self.stuck = True
            self.door = CarDoorState.CLOSED
            self.load = max(self.load, 12.0)
            return [(event, {"floor": self.floor})]
        if name in ("release", "elevator.entrapment_released"):
            floor = self.floor
            self.stuck = False
            self.in_service = True
            self.pos_m = self._pos_of(floor)
            self.target = None
            self.door = CarDoorState.OPENING
            return [("elevator.entrapment_released", {"floor": floor})]
        if name in ("overspeed", "elevator.overspeed"):
            speed = round(self.rated_speed_mps * 1.3, 2)
            self.speed = speed
            return [("elevator.overspeed", {"speed_mps": speed})]
        if name == "elevator.overrun_top":
            self.pos_m = self._pos_of(self.top) + 0.4
        elif name == "elevator.overrun_bottom":
            self.pos_m = self._pos_of(self.lowest) - 0.4
        elif name == "elevator.stop_outside_door_zone":
            self.pos_m += 0.6
        elif name == "elevator.door_open_while_running":
            self.door_open_running = True
            self.speed = self.rated_speed_mps
            return [(name, here)]
        if name in STOPPING_FAULTS:
            self.stuck = True
            self.speed = 0.0
            if name in ("elevator.power_failure", "elevator.safety_circuit_open"):
                self.in_service = False
            floor_attr = name == "elevator.stop_outside_door_zone"
            return [(name, {"floor": self.floor} if floor_attr else {})]
        if name in ("elevator.alarm_bell", "elevator.door_cycling",
                    "elevator.door_open_failure"):
            return [(name, here)]
        return super().trigger(name, now, rng)
