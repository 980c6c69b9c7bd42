"""Links that go away under the Modbus driver: a TCP link that stops reading (half-open), a
serial converter (RTU over TCP) that reboots, a serial port that disappears and comes back
at the same path. Polling resumes by itself; each device goes offline once and online once;
the log says so in one line each way, in both languages, without a traceback; other links
keep polling."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.modbus.config import ModbusBusConfig
from drivers.simulators.modbus_devices import (
    ModbusSimulator,
    elevator_monitor,
    shipped_map,
    water_tank_controller,
)
from gateway.types import DeviceKind
from tests.integration.modbus_support import (  # noqa: F401 - no_leaked_tasks is a fixture
    Recorder,
    modbus_device,
    no_leaked_tasks,
    running,
)
from tests.support.modbus_faults import FaultySlave

BREAKER = {"failures_to_offline": 2, "backoff_min_s": 0.1, "backoff_max_s": 0.5}
LIFT_MAP = shipped_map("elevator-monitor")


def _lifts(addresses: range, interval: float = 0.3) -> list:
    return [modbus_device(f"lift-{a}", DeviceKind.ELEVATOR, a, LIFT_MAP, interval)
            for a in addresses]


def _driver_lines(caplog: pytest.LogCaptureFixture, level: str, start: str) -> list[str]:
    """The driver's log lines at ``level`` that start with ``start`` (the bus's own lines,
    not the per-device ones that quote a cause)."""
    return [r.getMessage() for r in caplog.records if r.name == "drivers.modbus.driver"
            and r.levelname == level and r.getMessage().startswith(start)]


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r.getMessage()[:200] for r in caplog.records
             if r.exc_info or r.name == "asyncio" or "Traceback" in r.getMessage()]
    assert not noisy, noisy


def _once_each(rec: Recorder, device_ids: list[str]) -> None:
    for device_id in device_ids:
        assert [s.online for s in rec.statuses(device_id)] == [True, False, True], device_id
        assert len(rec.events("device.offline", device_id)) == 1, device_id
        assert len(rec.events("device.online", device_id)) == 1, device_id


async def test_half_open_tcp_link_is_rebuilt_while_another_link_keeps_polling(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    stuck = FaultySlave({1: elevator_monitor(floor=1), 2: elevator_monitor(floor=2)})
    stuck_port = await stuck.start_tcp()
    other = ModbusSimulator({1: water_tank_controller()})
    other_port = await other.start_tcp()

    def bus(name: str, port: int, timeout_s: float) -> ModbusBusConfig:
        return ModbusBusConfig.model_validate({"id": name, "transport": "tcp",
                                               "host": "127.0.0.1", "port": port,
                                               "timeout_s": timeout_s, "breaker": BREAKER})
    rec = Recorder()
    tank = modbus_device("tank-9", DeviceKind.WATER_TANK, 1,
                         shipped_map("water-tank-controller"), 0.3)
    lifts = ["lift-1", "lift-2"]
    try:
        # the healthy link gets a generous timeout: its polls must not fail on a busy machine
        async with running(bus("stuck", stuck_port, 0.2), _lifts(range(1, 3)), rec) as driver, \
                running(bus("other", other_port, 1.0), [tank], rec) as other_driver:
            await rec.wait_for(lambda r: all(r.good(d, "floor") for d in lifts)
                               and bool(r.good("tank-9", "ph")))
            stuck.reading.clear()  # the far end stops reading: requests pile up unanswered
            tank_before = len(rec.good("tank-9", "ph"))
            await rec.wait_for(lambda r: all(r.events("device.offline", d) for d in lifts))
            await rec.wait_for(lambda _: driver.metrics()["reconnect_attempts"] >= 1)
            unanswered = driver.metrics()["failures"]["timeout"]
            stuck.reading.set()
            await rec.wait_for(lambda r: all(r.events("device.online", d) for d in lifts))
            tank_during = len(rec.good("tank-9", "ph")) - tank_before
            metrics, other_metrics = driver.metrics(), other_driver.metrics()
    finally:
        await stuck.stop()
        await other.stop()
    print(f"\ninjected: a Modbus TCP link that stops reading (half-open); {unanswered} requests "
          f"went unanswered; survived: link rebuilt ({metrics['reconnect_attempts']} "
          f"reconnects), both devices offline once / online once, the tank on another link "
          f"polled {tank_during} times meanwhile with {sum(other_metrics['failures'].values())} "
          "failures; lost: 0")
    _once_each(rec, lifts)
    assert _driver_lines(caplog, "WARNING", "modbus.stuck: "), caplog.messages
    assert sum(other_metrics["failures"].values()) == 0
    assert tank_during >= 1
    assert [s.online for s in rec.statuses("tank-9")] == [True]
    _no_tracebacks(caplog)


async def test_serial_converter_reboot_resumes_polling_by_itself(
        caplog: pytest.LogCaptureFixture) -> None:
    """An RTU-over-TCP converter with three devices behind it goes away (power cycle) and
    comes back on the same port."""
    caplog.set_level(logging.INFO)
    converter = ModbusSimulator({a: elevator_monitor(floor=a) for a in range(1, 4)})
    port = await converter.start_tcp(framing="rtu")
    bus = ModbusBusConfig.model_validate({"id": "conv-1", "transport": "rtu_over_tcp",
                                          "host": "127.0.0.1", "port": port,
                                          "baudrate": 115200, "timeout_s": 0.2,
                                          "breaker": BREAKER})
    rec = Recorder()
    lifts = ["lift-1", "lift-2", "lift-3"]
    try:
        async with running(bus, _lifts(range(1, 4)), rec) as driver:
            await rec.wait_for(lambda r: all(r.good(d, "floor") for d in lifts))
            await converter.stop()
            await rec.wait_for(lambda r: all(r.events("device.offline", d) for d in lifts))
            # stays away while the driver keeps trying to connect
            await rec.wait_for(lambda _: driver.metrics()["reconnect_attempts"] >= 3)
            attempts_down = driver.metrics()["reconnect_attempts"]
            await converter.start_tcp(port=port, framing="rtu")
            await rec.wait_for(lambda r: all(r.events("device.online", d) for d in lifts))
            await rec.wait_for(lambda r: all(
                r.good(d, "floor")[-1].at >= r.events("device.online", d)[0].at for d in lifts))
            metrics = driver.metrics()
    finally:
        await converter.stop()
    where = f"127.0.0.1:{port}"
    lost_lines = _driver_lines(caplog, "ERROR", "modbus.conv-1: ")
    back_lines = _driver_lines(caplog, "INFO", "modbus.conv-1: ")
    print(f"\ninjected: RTU-over-TCP converter off, {attempts_down} connects refused, then back "
          f"on port {port}; survived: 3 of 3 devices offline once / online once, polling "
          f"resumed by itself ({metrics['failures']}); log: {lost_lines[:1]} / "
          f"{back_lines[:1]}; lost: 0")
    _once_each(rec, lifts)
    assert lost_lines == [f"modbus.conv-1: cannot connect to {where}; retrying with backoff "
                          f"up to 0.5 s / 无法连接 {where}，自动重试中"]
    assert back_lines == [f"modbus.conv-1: connected to {where} again / 已重新连接 {where}"]
    _no_tracebacks(caplog)


def _socat_link(tmp: Path) -> subprocess.Popen[bytes]:
    """A pty pair whose ends are the symlinks tmp/ttyGW (driver) and tmp/ttySIM (devices),
    as udev names a USB-RS485 adapter; they disappear when socat stops."""
    proc = subprocess.Popen(  # noqa: S603
        [shutil.which("socat") or "socat", f"pty,raw,echo=0,link={tmp / 'ttyGW'}",
         f"pty,raw,echo=0,link={tmp / 'ttySIM'}"], stderr=subprocess.DEVNULL)
    return proc


@pytest.fixture
def serial_dir(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("socat") is None:
        pytest.skip("needs socat for the pseudo-terminal pair (apt-get install socat)")
    yield tmp_path


async def _appeared(path: Path) -> None:
    async with asyncio.timeout(10):
        while not path.exists():
            await asyncio.sleep(0.02)


async def test_serial_port_that_disappears_and_reappears_is_reopened(
        serial_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The USB-RS485 adapter is unplugged (its device node goes away) and plugged in again
    at the same path."""
    caplog.set_level(logging.INFO)
    gw_end, sim_end = serial_dir / "ttyGW", serial_dir / "ttySIM"
    socat = _socat_link(serial_dir)
    sim = ModbusSimulator({a: elevator_monitor(floor=a) for a in (1, 2)})
    bus = ModbusBusConfig.model_validate({"id": "rs485-b", "transport": "rtu",
                                          "serial_port": str(gw_end), "baudrate": 115200,
                                          "timeout_s": 0.2, "breaker": BREAKER})
    rec = Recorder()
    lifts = ["lift-1", "lift-2"]
    try:
        await _appeared(sim_end)
        await sim.start_serial(str(sim_end), baudrate=115200)
        async with running(bus, _lifts(range(1, 3)), rec) as driver:
            await rec.wait_for(lambda r: all(r.good(d, "floor") for d in lifts))
            socat.terminate()  # unplugged: both ends close, the symlinks go
            socat.wait(5)
            await sim.stop()
            await rec.wait_for(lambda r: all(r.events("device.offline", d) for d in lifts))
            await rec.wait_for(lambda _: driver.metrics()["reconnect_attempts"] >= 3)
            attempts_down = driver.metrics()["reconnect_attempts"]
            gone = not gw_end.exists()
            socat = _socat_link(serial_dir)  # plugged in again: the same path
            await _appeared(sim_end)
            await sim.start_serial(str(sim_end), baudrate=115200)
            await rec.wait_for(lambda r: all(r.events("device.online", d) for d in lifts))
            metrics = driver.metrics()
    finally:
        await sim.stop()
        socat.terminate()
        socat.wait(5)
    lost_lines = _driver_lines(caplog, "ERROR", "modbus.rs485-b: ")
    back_lines = _driver_lines(caplog, "INFO", "modbus.rs485-b: ")
    print(f"\ninjected: serial port {gw_end.name} removed ({attempts_down} opens failed), then "
          f"back at the same path; survived: 2 of 2 devices offline once / online once, "
          f"polling resumed by itself ({metrics['failures']}); lost: 0")
    assert gone
    _once_each(rec, lifts)
    assert lost_lines == [f"modbus.rs485-b: cannot connect to {gw_end}; retrying with backoff "
                          f"up to 0.5 s / 无法连接 {gw_end}，自动重试中"]
    assert back_lines == [f"modbus.rs485-b: connected to {gw_end} again / 已重新连接 {gw_end}"]
    _no_tracebacks(caplog)
