"""The simulated devices of every kind, and ``make_simulator`` to build one for a device.

The state machines live one kind per module (``access``, ``elevator``, ``water``,
``parking``, ``generic``) and think in the normalised vocabulary; each simulator writes its
messages in the device's payload profile (``drivers/simulators/vendor.py``), so one
simulator speaks the native format or any vendor's. ``inject(name)`` takes any event name of
the kind's vocabulary or one of its scenarios (``forced_open``, ``low_level``,
``entrapment``, ``open_too_long``, ...).
"""

from __future__ import annotations

from functools import cache

from drivers.profiles import Profile, builtin_profiles, profile_key
from drivers.simulators.access import AccessGateSim
from drivers.simulators.base import SimMessage, Simulator
from drivers.simulators.elevator import ElevatorSim
from drivers.simulators.generic import GenericSim
from drivers.simulators.parking import ParkingBarrierSim
from drivers.simulators.water import WaterTankSim
from gateway.types import Device, DeviceKind

__all__ = [
    "SIMULATORS",
    "AccessGateSim",
    "ElevatorSim",
    "GenericSim",
    "ParkingBarrierSim",
    "SimMessage",
    "Simulator",
    "WaterTankSim",
    "make_simulator",
]

SIMULATORS: dict[DeviceKind, type[Simulator]] = {
    DeviceKind.ACCESS_GATE: AccessGateSim,
    DeviceKind.ELEVATOR: ElevatorSim,
    DeviceKind.WATER_TANK: WaterTankSim,
    DeviceKind.PARKING_BARRIER: ParkingBarrierSim,
    DeviceKind.GENERIC: GenericSim,
}


@cache
def _shipped() -> dict[str, Profile]:
    return builtin_profiles()


def make_simulator(device: Device, *, profile: Profile | None = None) -> Simulator:
    """A simulator for ``device`` speaking ``profile`` (default: the device's own, shipped)."""
    if profile is None:
        key = profile_key(device.kind, device.profile)
        profile = _shipped().get(key)
        if profile is None:
            raise ValueError(f"{device.id}: no shipped profile {key!r}; pass profile=")
    return SIMULATORS[device.kind](device, profile=profile)
