"""The Modbus driver over RTU on a serial line: a socat pseudo-terminal pair, the pymodbus
serial server on one end and the driver's serial client on the other."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from drivers.modbus.config import ModbusBusConfig
from drivers.simulators.modbus_devices import ModbusSimulator, elevator_monitor, shipped_map
from gateway.types import DeviceKind
from tests.integration.modbus_support import (  # noqa: F401 - no_leaked_tasks is a fixture
    Recorder,
    all_types_setup,
    first_values,
    modbus_device,
    no_leaked_tasks,
    running,
)

pytestmark = pytest.mark.skipif(shutil.which("socat") is None,
                                reason="needs socat for the pseudo-terminal pair "
                                       "(apt-get install socat)")


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals: what one end writes, the other reads."""
    proc = subprocess.Popen(  # noqa: S603
        [shutil.which("socat") or "socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    paths: list[str] = []
    try:
        while len(paths) < 2:
            line = proc.stderr.readline()
            if not line:
                pytest.fail(f"socat exited early (code {proc.poll()})")
            found = re.search(r"PTY is (\S+)", line)
            if found:
                paths.append(found.group(1))
        yield paths[0], paths[1]
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stderr.close()


def _bus(path: str, **extra: object) -> ModbusBusConfig:
    data = {"id": "rs485-a", "transport": "rtu", "serial_port": path, "baudrate": 115200,
            "timeout_s": 0.15,
            "breaker": {"failures_to_offline": 2, "backoff_min_s": 0.5, "backoff_max_s": 2.0}}
    return ModbusBusConfig.model_validate(data | extra)


async def test_rtu_decodes_every_data_type_and_order(pty_pair: tuple[str, str]) -> None:
    sims, devices, expected = all_types_setup()
    sim = ModbusSimulator(sims)
    await sim.start_serial(pty_pair[0], baudrate=115200)
    rec = Recorder()
    try:
        async with running(_bus(pty_pair[1]), devices, rec):
            await rec.wait_for(lambda r: all(
                len(first_values(r, d)) == len(v) for d, v in expected.items()))
    finally:
        await sim.stop()
    for device_id, values in expected.items():
        assert first_values(rec, device_id) == {
            k: float(v) if isinstance(v, int) and v >= 2**63 else v for k, v in values.items()}


async def test_rtu_three_dead_devices_do_not_stall_the_other_seven(
        pty_pair: tuple[str, str]) -> None:
    interval = 1.0
    sim = ModbusSimulator({a: elevator_monitor(floor=a) for a in range(1, 11)})
    await sim.start_serial(pty_pair[0], baudrate=115200)
    lift_map = shipped_map("elevator-monitor")
    devices = [modbus_device(f"lift-{a}", DeviceKind.ELEVATOR, a, lift_map, interval)
               for a in range(1, 11)]
    dead, alive = ["lift-2", "lift-5", "lift-9"], [f"lift-{a}" for a in (1, 3, 4, 6, 7, 8, 10)]
    rec = Recorder()
    try:
        async with running(_bus(pty_pair[1]), devices, rec) as driver:
            await rec.wait_for(lambda r: all(r.statuses(d) for d in dead + alive))
            for address in (2, 5, 9):
                sim.silence(address)
            silenced_at = len(rec.items)
            await rec.wait_for(lambda r: all(r.events("device.offline", d) for d in dead))
            # keep watching the live seven for three more polls each while the dead are probed
            counts = {d: len(rec.readings(d, "floor")) for d in alive}
            await rec.wait_for(lambda r: all(len(r.readings(d, "floor")) >= counts[d] + 3
                                             for d in alive))
            during = driver.metrics()
            for address in (2, 5, 9):
                sim.answer(address)
            await rec.wait_for(lambda r: all(r.events("device.online", d) for d in dead))
            await rec.wait_for(lambda r: all(
                r.good(d, "floor")[-1].at > r.events("device.online", d)[0].at - 1e-9
                for d in dead))
    finally:
        await sim.stop()

    for device_id in dead:
        assert len(rec.events("device.offline", device_id)) == 1, device_id
        assert len(rec.events("device.online", device_id)) == 1, device_id
        assert [s.online for s in rec.statuses(device_id)] == [True, False, True]
    for device_id in alive:
        assert [s.online for s in rec.statuses(device_id)] == [True], device_id
        times = [r.at for r in rec.readings(device_id, "floor")]
        after = [t for t in times if t >= rec.items[silenced_at - 1].at]  # type: ignore[union-attr]
        gaps = [b - a for a, b in zip(after, after[1:], strict=False)]
        # on a fixed-rate schedule a gap over two intervals means a poll started more than
        # one interval late
        assert gaps and max(gaps) < 2 * interval, (device_id, gaps)
    assert during["schedule_lag_s"]["max"] < interval, during
    assert during["skipped_polls"] == 0, during
    assert during["devices_offline"] == 3
