"""The Modbus driver against real pymodbus servers on 127.0.0.1 (Modbus TCP and RTU framing
over TCP, as a serial-to-Ethernet converter speaks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from drivers.modbus.config import ModbusBusConfig
from drivers.modbus.driver import build_drivers
from drivers.modbus.mapfile import load_maps
from drivers.simulators.modbus_devices import (
    ModbusSimulator,
    barrier_controller,
    elevator_monitor,
    shipped_map,
    water_tank_controller,
)
from gateway.config import load_config
from gateway.types import Command, DeviceKind, Quality
from tests.integration.modbus_support import (  # noqa: F401 - no_leaked_tasks is a fixture
    Recorder,
    all_types_setup,
    first_values,
    modbus_device,
    no_leaked_tasks,
    running,
)


def _bus(port: int, **extra: object) -> ModbusBusConfig:
    data = {"id": "tcp-test", "transport": "tcp", "host": "127.0.0.1", "port": port,
            "timeout_s": 0.2,
            "breaker": {"failures_to_offline": 2, "backoff_min_s": 0.1, "backoff_max_s": 0.5}}
    return ModbusBusConfig.model_validate(data | extra)


def _as_expected(value: object) -> object:
    return float(value) if isinstance(value, int) and value >= 2**63 else value


async def test_tcp_decodes_every_data_type_and_order() -> None:
    sims, devices, expected = all_types_setup()
    sim = ModbusSimulator(sims)
    port = await sim.start_tcp()
    rec = Recorder()
    try:
        async with running(_bus(port), devices, rec):
            await rec.wait_for(lambda r: all(
                len(first_values(r, d)) == len(v) for d, v in expected.items()))
    finally:
        await sim.stop()
    for device_id, values in expected.items():
        assert first_values(rec, device_id) == {k: _as_expected(v) for k, v in values.items()}
    # out of the vocabulary's range: decoded, delivered, and marked BAD
    (level,) = rec.readings("tank-big-big", "level_pct")[:1]
    assert (level.value, level.quality) == (-2, Quality.BAD)


async def test_tcp_server_restart_polling_resumes_without_help() -> None:
    sim = ModbusSimulator({1: water_tank_controller()})
    port = await sim.start_tcp()
    rec = Recorder()
    tank = modbus_device("tank-1", DeviceKind.WATER_TANK, 1, shipped_map("water-tank-controller"),
                         0.25)
    try:
        async with running(_bus(port), [tank], rec) as driver:
            await rec.wait_for(lambda r: len(r.good("tank-1", "ph")) >= 2)
            await sim.stop()
            await rec.wait_for(lambda r: any(not s.online for s in r.statuses("tank-1")))
            down_at = len(rec.items)
            await sim.start_tcp(port=port)
            await rec.wait_for(lambda r: len(r.events("device.online", "tank-1")) == 1)
            await rec.wait_for(lambda r: len([x for x in r.items[down_at:]
                                              if getattr(x, "metric", "") == "ph"
                                              and x.quality is Quality.GOOD]) >= 2)
            metrics = driver.metrics()
    finally:
        await sim.stop()
    assert [s.online for s in rec.statuses("tank-1")] == [True, False, True]
    assert len(rec.events("device.offline", "tank-1")) == 1
    offline_batch = [r for r in rec.readings("tank-1") if r.quality is Quality.UNAVAILABLE]
    assert sorted(r.metric for r in offline_batch) == sorted(
        p.metric for p in shipped_map("water-tank-controller").points)
    assert metrics["failures"]["disconnected"] >= 2
    assert metrics["reconnect_attempts"] >= 1
    assert metrics["devices_online"] == 1


async def test_tcp_fault_bit_raises_its_event_once_per_rising_edge() -> None:
    lift = elevator_monitor(floor=7)
    sim = ModbusSimulator({5: lift})
    port = await sim.start_tcp()
    rec = Recorder()
    device = modbus_device("lift-1", DeviceKind.ELEVATOR, 5, shipped_map("elevator-monitor"), 0.1)
    try:
        async with running(_bus(port), [device], rec):
            await rec.wait_for(lambda r: len(r.good("lift-1", "floor")) >= 1)
            lift.set_event_bits(0, 0b1)  # entrapment
            await rec.wait_for(lambda r: len(r.events("elevator.entrapment")) == 1)
            polls = len(rec.readings("lift-1", "floor"))
            await rec.wait_for(lambda r: len(r.readings("lift-1", "floor")) >= polls + 3)
            assert len(rec.events("elevator.entrapment")) == 1  # still set: no repeat
            lift.set_event_bits(0, 0)
            polls = len(rec.readings("lift-1", "floor"))
            await rec.wait_for(lambda r: len(r.readings("lift-1", "floor")) >= polls + 2)
            lift.set_event_bits(0, 0b1)
            await rec.wait_for(lambda r: len(r.events("elevator.entrapment")) == 2)
    finally:
        await sim.stop()
    first, second = rec.events("elevator.entrapment")
    assert first.attributes == {"floor": 7, "speed_mps": 0.0}
    assert first.event_id != second.event_id


async def test_tcp_command_pulses_the_barrier_coil_and_reads_it_back() -> None:
    barrier = barrier_controller()
    sim = ModbusSimulator({3: barrier})
    port = await sim.start_tcp()
    rec = Recorder()
    device = modbus_device("gate-1", DeviceKind.PARKING_BARRIER, 3,
                           shipped_map("barrier-controller"), 1.0)
    try:
        async with running(_bus(port), [device], rec) as driver:
            result = await driver.execute(Command("cmd-1", "gate-1", "open", "operator:li"))
            unknown = await driver.execute(Command("cmd-2", "gate-1", "lift", "operator:li"))
            stranger = await driver.execute(Command("cmd-3", "gate-9", "open", "operator:li"))
    finally:
        await sim.stop()
    assert result.ok, result.detail
    assert result.detail == "coil 0 written, read back, released after 0.5 s"
    assert barrier.writes == [("c", 0, [True]), ("c", 0, [False])]
    assert (unknown.ok, unknown.detail) == (
        False, "modbus.tcp-test/gate-1: unknown action 'lift'; known: open, close")
    assert (stranger.ok, stranger.detail) == (
        False, "modbus.tcp-test: device 'gate-9' is not on this bus")


async def test_tcp_command_to_a_silent_device_fails_with_the_reason() -> None:
    sim = ModbusSimulator({1: water_tank_controller()})
    port = await sim.start_tcp()
    sim.silence(1)
    device = modbus_device("tank-1", DeviceKind.WATER_TANK, 1,
                           shipped_map("water-tank-controller"), 5.0)
    try:
        async with running(_bus(port), [device], Recorder()) as driver:
            result = await driver.execute(Command("cmd-1", "tank-1", "start_pump", "rule:x"))
    finally:
        await sim.stop()
    assert not result.ok
    assert result.detail.startswith("modbus.tcp-test/tank-1: write coil 0: no answer within 0.2 s")


async def test_rtu_over_tcp_converter_is_polled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.modbus.driver")
    sim = ModbusSimulator({1: water_tank_controller(level_pct=71.3), 2: elevator_monitor()})
    port = await sim.start_tcp(framing="rtu")
    rec = Recorder()
    devices = [
        modbus_device("tank-1", DeviceKind.WATER_TANK, 1, shipped_map("water-tank-controller"),
                      0.3),
        modbus_device("lift-1", DeviceKind.ELEVATOR, 2, shipped_map("elevator-monitor"), 0.3),
    ]
    try:
        async with running(_bus(port, transport="rtu_over_tcp", trace_frames=True), devices,
                           rec):
            await rec.wait_for(lambda r: r.good("tank-1", "level_pct")
                               and r.good("lift-1", "mode"))
    finally:
        await sim.stop()
    assert rec.good("tank-1", "level_pct")[0].value == 71.3
    assert rec.good("lift-1", "mode")[0].value == "normal"
    # RTU frame to device 1, read input registers (4) from 0, count 10, then the CRC
    assert any(m.startswith("modbus.tcp-test >> 01 04 00 00 00 0a ")
               for m in caplog.messages), caplog.messages[:5]


async def test_tcp_exception_answers_take_a_device_offline_with_that_reason() -> None:
    tank = water_tank_controller()
    sim = ModbusSimulator({1: tank})
    port = await sim.start_tcp()
    rec = Recorder()
    device = modbus_device("tank-1", DeviceKind.WATER_TANK, 1,
                           shipped_map("water-tank-controller"), 0.1)
    try:
        async with running(_bus(port), [device], rec) as driver:
            await rec.wait_for(lambda r: bool(r.good("tank-1", "ph")))
            tank.refuse()
            await rec.wait_for(lambda r: bool(r.events("device.offline", "tank-1")))
            tank.refuse(None)
            await rec.wait_for(lambda r: bool(r.events("device.online", "tank-1")))
            metrics = driver.metrics()
    finally:
        await sim.stop()
    (offline,) = rec.events("device.offline", "tank-1")
    assert offline.attributes == {"reason": "exception_response"}
    assert metrics["failures"]["exception_response"] >= 2
    assert metrics["failures"]["timeout"] == 0


async def test_build_drivers_from_a_gateway_config_file(tmp_path: Path) -> None:
    sim = ModbusSimulator({4: barrier_controller(zone_occupancy=97)})
    port = await sim.start_tcp()
    (tmp_path / "gateway.yaml").write_text(f"""\
site: {{id: estate-a}}
modbus_buses:
  - {{id: car-park, transport: tcp, host: 127.0.0.1, port: {port}, timeout_s: 0.2}}
devices:
  - id: gate-1
    kind: parking_barrier
    location: {{building: P1}}
    transport: modbus
    modbus: {{bus: car-park, device_address: 4, register_map: barrier-controller,
             poll_interval_s: 0.5}}
""", encoding="utf-8")
    cfg = load_config(tmp_path / "gateway.yaml")
    rec = Recorder()
    drivers = build_drivers(
        cfg.modbus_buses,
        [(d.to_device(), d.modbus) for d in cfg.devices if d.modbus is not None],
        load_maps([tmp_path / d for d in cfg.modbus_map_dirs]),
        rec,
    )
    assert [(d.id, d.device_ids) for d in drivers] == [("modbus.car-park", ["gate-1"])]
    task = asyncio.create_task(drivers[0].run(), name="driver[modbus.car-park]")
    try:
        await rec.wait_for(lambda r: bool(r.good("gate-1", "zone_occupancy")))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sim.stop()
    assert rec.good("gate-1", "zone_occupancy")[0].value == 97


async def test_tcp_link_that_answers_nothing_is_rebuilt(caplog: pytest.LogCaptureFixture) -> None:
    """A converter that keeps the TCP link but passes no answers (half-open after a reboot)
    gets a fresh client once a whole round of requests went unanswered."""
    sim = ModbusSimulator({1: water_tank_controller()})
    port = await sim.start_tcp()
    rec = Recorder()
    device = modbus_device("tank-1", DeviceKind.WATER_TANK, 1,
                           shipped_map("water-tank-controller"), 0.3)
    bus = _bus(port, breaker={"failures_to_offline": 3, "backoff_min_s": 0.1,
                              "backoff_max_s": 0.5})
    try:
        async with running(bus, [device], rec) as driver:
            await rec.wait_for(lambda r: bool(r.good("tank-1", "ph")))
            sim.silence(1)
            # the third unanswered request both takes the device offline and drops the link
            await rec.wait_for(lambda r: bool(r.events("device.offline", "tank-1")))
            sim.answer(1)
            await rec.wait_for(lambda r: bool(r.events("device.online", "tank-1")))
            metrics = driver.metrics()
    finally:
        await sim.stop()
    assert metrics["reconnect_attempts"] == 1
    assert metrics["failures"]["timeout"] >= 3
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "drivers.modbus.driver" and r.levelname == "WARNING"]
    assert warnings == [f"modbus.tcp-test: 3 requests in a row unanswered on 127.0.0.1:{port}; "
                        "reconnecting"]
