"""Shared pieces of the Modbus wire tests: a recording sink, test maps, a running driver."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from drivers.modbus.config import ModbusBusConfig
from drivers.modbus.driver import ModbusDevice, ModbusDriver
from drivers.modbus.mapfile import parse_map
from drivers.modbus.registermap import RegisterMap, compile_map
from drivers.simulators.modbus_devices import SimulatedDevice
from gateway.types import (
    Device,
    DeviceKind,
    DeviceStatus,
    Event,
    Location,
    Observation,
    Quality,
    Reading,
)
from tests.modbus_vectors import VECTORS

ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]


class Recorder:
    """The driver's sink: keeps every observation and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.items: list[Observation] = []
        self._changed = asyncio.Condition()

    async def __call__(self, batch: Sequence[Observation]) -> None:
        async with self._changed:
            self.items.extend(batch)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 15.0
                       ) -> None:
        """Return as soon as ``predicate(self)`` holds; fail after ``timeout`` seconds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    def readings(self, device_id: str, metric: str | None = None) -> list[Reading]:
        return [o for o in self.items if isinstance(o, Reading) and o.device_id == device_id
                and (metric is None or o.metric == metric)]

    def good(self, device_id: str, metric: str) -> list[Reading]:
        return [r for r in self.readings(device_id, metric) if r.quality is not Quality.UNAVAILABLE]

    def events(self, kind: str, device_id: str | None = None) -> list[Event]:
        return [o for o in self.items if isinstance(o, Event) and o.kind == kind
                and (device_id is None or o.device_id == device_id)]

    def statuses(self, device_id: str) -> list[DeviceStatus]:
        return [o for o in self.items if isinstance(o, DeviceStatus) and o.device_id == device_id]


def test_map(data: dict[str, Any]) -> RegisterMap:
    """Validate a map given as data exactly as a file would be, and compile it."""
    return compile_map(parse_map(data, {}, f"<{data['id']}>"), source=data["id"])


_NUMERIC_POINTS = [  # (metric, data_type, address) of the all-types map
    ("level_pct", "int16", 0), ("level_m", "uint16", 1), ("inlet_pressure_mpa", "int32", 2),
    ("outlet_pressure_mpa", "uint32", 4), ("vfd_frequency_hz", "float32", 6),
    ("turbidity_ntu", "int64", 8), ("free_chlorine_mgl", "uint64", 12), ("ph", "float64", 16),
]


def _vector(data_type: str, byte_order: str, word_order: str) -> tuple[list[int], object]:
    for dtype, b, w, regs, value in VECTORS:
        if dtype == data_type and b == byte_order and (w == word_order or len(regs) == 1
                                                       or dtype == "string"):
            return regs, value
    raise LookupError(f"no vector for {data_type} {byte_order}/{word_order}")


def all_types_device(byte_order: str, word_order: str
                     ) -> tuple[RegisterMap, SimulatedDevice, dict[str, object]]:
    """A water-tank map reading every numeric type in one order, plus bool/bit/coil points;
    the simulated device holds the hand-written vectors; returns the expected values."""
    points: list[dict[str, Any]] = [
        {"metric": m, "function": "input", "address": a, "data_type": t}
        for m, t, a in _NUMERIC_POINTS
    ]
    points += [
        {"metric": "pump_fault", "function": "holding", "address": 0, "data_type": "bit",
         "bit": 1},
        {"metric": "flooded", "function": "holding", "address": 1, "data_type": "bool"},
        {"metric": "pump_running", "function": "coil", "address": 0, "data_type": "bool"},
    ]
    rmap = test_map({"id": f"all-{byte_order}-{word_order}", "kind": "water_tank",
                     "byte_order": byte_order, "word_order": word_order, "points": points})
    device = SimulatedDevice(rmap)
    expected: dict[str, object] = {}
    for metric, dtype, address in _NUMERIC_POINTS:
        regs, value = _vector(dtype, byte_order, word_order)
        device.set_registers("input", address, regs)
        expected[metric] = value
    device.set_registers("holding", 0, [0b10])
    device.set_registers("holding", 1, [0x0100])
    device.set_bits("coil", 0, [True])
    expected |= {"pump_fault": True, "flooded": True, "pump_running": True}
    return rmap, device, expected


def string_device(byte_order: str) -> tuple[RegisterMap, SimulatedDevice, dict[str, object]]:
    """An elevator map with a string point and a discrete input."""
    rmap = test_map({"id": f"str-{byte_order}", "kind": "elevator", "byte_order": byte_order,
                     "points": [
                         {"metric": "door_state", "function": "input", "address": 0,
                          "data_type": "string", "length": 2},
                         {"metric": "in_service", "function": "discrete_input", "address": 0,
                          "data_type": "bool"},
                     ]})
    device = SimulatedDevice(rmap)
    regs, value = _vector("string", byte_order, "big")
    device.set_registers("input", 0, regs)
    device.set_bits("discrete_input", 0, [True])
    return rmap, device, {"door_state": value, "in_service": True}


def modbus_device(device_id: str, kind: DeviceKind, address: int, rmap: RegisterMap,
                  interval: float) -> ModbusDevice:
    return ModbusDevice(Device(device_id, kind, Location("T1"), "modbus", rmap.id), address,
                        interval, rmap)


@contextlib.asynccontextmanager
async def running(bus: ModbusBusConfig, devices: Sequence[ModbusDevice], sink: Recorder,
                  seed: int = 7) -> AsyncIterator[ModbusDriver]:
    driver = ModbusDriver(bus, devices, sink, rng=random.Random(seed))
    task = asyncio.create_task(driver.run(), name=f"driver[{driver.id}]")
    try:
        yield driver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def all_types_setup(interval: float = 0.3) -> tuple[dict[int, SimulatedDevice],
                                                   list[ModbusDevice],
                                                   dict[str, dict[str, object]]]:
    sims: dict[int, SimulatedDevice] = {}
    devices: list[ModbusDevice] = []
    expected: dict[str, dict[str, object]] = {}
    address = 1
    for byte_order, word_order in ORDERS:
        rmap, sim, values = all_types_device(byte_order, word_order)
        device_id = f"tank-{byte_order}-{word_order}"
        sims[address] = sim
        devices.append(modbus_device(device_id, DeviceKind.WATER_TANK, address, rmap, interval))
        expected[device_id] = values
        address += 1
    for byte_order in ("big", "little"):
        rmap, sim, values = string_device(byte_order)
        device_id = f"lift-{byte_order}"
        sims[address] = sim
        devices.append(modbus_device(device_id, DeviceKind.ELEVATOR, address, rmap, interval))
        expected[device_id] = values
        address += 1
    return sims, devices, expected


def first_values(rec: Recorder, device_id: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for r in rec.readings(device_id):
        out.setdefault(r.metric, r.value)
    return out


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (a driver, a reconnect, a server handler),
    as pymodbus's own suite does; import it into a test module to apply it there."""
    before = asyncio.all_tasks()
    yield
    for _ in range(3):  # let cancelled tasks and closed transports finish their callbacks
        await asyncio.sleep(0)
    leaked = [t.get_name() for t in asyncio.all_tasks() - before
              if t is not asyncio.current_task() and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"
