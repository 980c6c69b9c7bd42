"""Slaves that answer with garbage, over Modbus TCP and over RTU on a serial line, next to
healthy devices on the same bus: every bad answer fails its poll once, counted as
``bad_frame``; no wrong value and no made-up event gets through; the device goes offline
once while the fault lasts and online once when it answers properly again; the others on
the bus never miss a poll."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from drivers.modbus.config import ModbusBusConfig
from drivers.modbus.driver import ModbusDriver
from drivers.simulators.modbus_devices import elevator_monitor, shipped_map, water_tank_controller
from gateway.types import DeviceKind, Quality
from tests.integration.modbus_support import (  # noqa: F401 - no_leaked_tasks is a fixture
    Recorder,
    modbus_device,
    no_leaked_tasks,
    running,
)
from tests.support.modbus_faults import Fault, FaultySlave

TANK, LIFTS = "tank-1", ("lift-2", "lift-3")
BREAKER = {"failures_to_offline": 2, "backoff_min_s": 0.1, "backoff_max_s": 0.4}
INTERVAL_S = 0.5  # room for one timeout (0.2 s) and the lifts' own polls in every interval

TCP_FAULTS: list[tuple[Fault, str]] = [
    ("wrong_tid", "bad_frame"), ("wrong_unit", "bad_frame"), ("wrong_function", "bad_frame"),
    ("truncated", "bad_frame"), ("random", "bad_frame"), ("length_long", "bad_frame"),
    ("length_short", "bad_frame"), ("byte_count", "bad_frame"),
    # disappears mid-transaction: half an answer and silence, or the connection closed
    ("half", "bad_frame"), ("close", "disconnected")]
RTU_FAULTS: list[tuple[Fault, str]] = [
    ("bad_crc", "bad_frame"), ("truncated", "bad_frame"), ("random", "bad_frame"),
    ("wrong_unit", "bad_frame"), ("wrong_function", "bad_frame"), ("byte_count", "bad_frame"),
    # disappears mid-transaction: half a frame, then silence
    ("half", "bad_frame")]


def _slave() -> FaultySlave:
    return FaultySlave({1: water_tank_controller(), 2: elevator_monitor(floor=2),
                        3: elevator_monitor(floor=3)})


def _devices() -> list:
    return [modbus_device(TANK, DeviceKind.WATER_TANK, 1, shipped_map("water-tank-controller"),
                          INTERVAL_S)] + [
        modbus_device(lift, DeviceKind.ELEVATOR, int(lift[-1]), shipped_map("elevator-monitor"),
                      INTERVAL_S) for lift in LIFTS]


def _good_values(rec: Recorder, device_id: str) -> list[tuple[str, object]]:
    return [(r.metric, r.value) for r in rec.readings(device_id)
            if r.quality is not Quality.UNAVAILABLE]


async def _inject_each(driver: ModbusDriver, slave: FaultySlave, rec: Recorder,
                       faults: list[tuple[Fault, str]], transport: str) -> None:
    """Cycle the tank through every fault while the lifts are polled beside it."""
    await rec.wait_for(lambda r: all(r.good(d, "floor") for d in LIFTS)
                       and bool(r.good(TANK, "ph")))
    baseline = dict(_good_values(rec, TANK))
    lift_floor = {lift: rec.good(lift, "floor")[0].value for lift in LIFTS}
    injected = 0
    print(f"\n{transport}: tank (device 1) answers wrongly, lifts (devices 2, 3) answer "
          "properly on the same bus")
    for k, (fault, reason) in enumerate(faults, start=1):
        before = dict(driver.metrics()["failures"])
        slave.faults[1] = fault
        await rec.wait_for(lambda r, k=k: len(r.events("device.offline", TANK)) == k)
        # the fault persists: the tank is probed again, the lifts keep being polled (twice)
        polled = {lift: len(rec.good(lift, "floor")) for lift in LIFTS}
        probes = slave.sent[(fault, 1)]
        await rec.wait_for(lambda r, p=probes, f=fault: slave.sent[(f, 1)] >= p + 1 and all(
            len(r.good(lift, "floor")) >= polled[lift] + 2 for lift in LIFTS))
        slave.faults[1] = "ok"
        await rec.wait_for(lambda r, k=k: len(r.events("device.online", TANK)) == k)
        after = driver.metrics()["failures"]
        counted = {why: after[why] - before.get(why, 0) for why in after
                   if after[why] != before.get(why, 0)}
        sent = slave.sent[(fault, 1)]
        injected += sent
        lift_polls = sum(len(rec.good(lift, "floor")) - polled[lift] for lift in LIFTS)
        print(f"  {fault:15} {sent:2} bad answers -> failures {counted}; tank offline once, "
              f"online once; lifts polled {lift_polls} times meanwhile")
        # every bad answer failed exactly one poll, with its reason; no lift poll failed
        assert counted == {reason: sent}, (fault, counted)
        assert len(rec.events("device.offline", TANK)) == k
    metrics = driver.metrics()

    wrong = [(m, v) for m, v in _good_values(rec, TANK) if v != baseline[m]]
    made_up = [e.kind for e in rec.items if getattr(e, "device_id", None) == TANK
               and getattr(e, "kind", "device.").split(".")[0] != "device"]
    for lift in LIFTS:
        assert [s.online for s in rec.statuses(lift)] == [True], lift
        assert {v for m, v in _good_values(rec, lift) if m == "floor"} == {lift_floor[lift]}
    print(f"injected: {injected} bad answers of {len(faults)} kinds; survived: every one "
          f"failed its poll once ({metrics['failures']}), tank offline {len(faults)} / online "
          f"{len(faults)}, lifts never failed (schedule lag max "
          f"{metrics['schedule_lag_s']['max']:.3f} s, skipped polls "
          f"{metrics['skipped_polls']}); lost: 0 (wrong values stored {len(wrong)}, "
          f"made-up events {len(made_up)})")
    assert not wrong, wrong[:5]
    assert not made_up, made_up[:5]
    assert [s.online for s in rec.statuses(TANK)] == [True] + [False, True] * len(faults)


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r.getMessage()[:200] for r in caplog.records
             if r.exc_info or r.name == "asyncio" or "Traceback" in r.getMessage()]
    assert not noisy, noisy


async def test_tcp_garbage_answers_fail_cleanly_and_never_store_a_wrong_value(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    slave = _slave()
    port = await slave.start_tcp()
    bus = ModbusBusConfig.model_validate({"id": "tcp-gw", "transport": "tcp",
                                          "host": "127.0.0.1", "port": port, "timeout_s": 0.2,
                                          "breaker": BREAKER})
    rec = Recorder()
    try:
        async with running(bus, _devices(), rec) as driver:
            await _inject_each(driver, slave, rec, TCP_FAULTS, "Modbus TCP")
    finally:
        await slave.stop()
    _no_tracebacks(caplog)


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals (socat): what one end writes, the other reads."""
    if shutil.which("socat") is None:
        pytest.skip("needs socat for the pseudo-terminal pair (apt-get install socat)")
    proc = subprocess.Popen(["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],  # noqa: S607
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    paths: list[str] = []
    try:
        while len(paths) < 2:
            line = proc.stderr.readline()
            if not line:
                pytest.fail(f"socat exited early (code {proc.poll()})")
            if found := re.search(r"PTY is (\S+)", line):
                paths.append(found.group(1))
        yield paths[0], paths[1]
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stderr.close()


async def test_rtu_garbage_answers_fail_cleanly_and_never_store_a_wrong_value(
        pty_pair: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    slave = _slave()
    slave.start_serial(pty_pair[0])
    bus = ModbusBusConfig.model_validate({"id": "rs485-gw", "transport": "rtu",
                                          "serial_port": pty_pair[1], "baudrate": 115200,
                                          "timeout_s": 0.2, "breaker": BREAKER})
    rec = Recorder()
    try:
        async with running(bus, _devices(), rec) as driver:
            await _inject_each(driver, slave, rec, RTU_FAULTS, "Modbus RTU (serial line)")
    finally:
        await slave.stop()
    _no_tracebacks(caplog)
