"""Modbus polling benchmark: many TCP devices at a fixed interval, and one RTU line flat out.

TCP run: ``--tcp-devices`` simulated water-tank controllers (default 200), each its own
Modbus TCP server on 127.0.0.1 in a separate simulator process, each polled by the gateway's
driver every ``--interval`` seconds (default 1 s) for ``--seconds`` (default 60). Prints
polls/s, schedule lag p50/p99 (how late a poll's first request went out versus its slot),
poll latency, and the CPU seconds of this process only (the gateway side; the simulators
run in their own process).

RTU run: ``--rtu-devices`` elevator monitors (default 10) on one serial line made with a
socat pty pair, polled as fast as the bus lock allows for ``--rtu-seconds``. Prints the
achieved transactions/s beside the wire-time ceiling computed from the frame sizes and the
baud rate. A pty does not pace bytes at the baud rate, so the achieved figure can exceed
the ceiling: it measures the gateway's own cost per transaction, the ceiling says what a
real RS-485 line at that baud rate would allow.

Writes everything to ``bench/results/modbus.json``.

    python bench/modbus_poll.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.modbus.config import ModbusBusConfig  # noqa: E402
from drivers.modbus.decoder import DeviceDecoder  # noqa: E402
from drivers.modbus.driver import ModbusDevice, ModbusDriver  # noqa: E402
from drivers.modbus.metrics import percentile  # noqa: E402
from drivers.modbus.mapfile import load_maps  # noqa: E402
from drivers.modbus.registermap import compile_map  # noqa: E402
from gateway.types import Device, DeviceKind, Location, Observation  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "modbus.json"


class CountingSink:
    def __init__(self) -> None:
        self.batches = 0
        self.observations = 0

    async def __call__(self, batch: list[Observation]) -> None:
        self.batches += 1
        self.observations += len(batch)


def _simulator(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "drivers.simulators.modbus_devices", *args],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"simulator exited (code {proc.wait()})")
    return proc, json.loads(line)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _run_for(drivers: list[ModbusDriver], seconds: float) -> float:
    start = time.monotonic()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds), asyncio.TaskGroup() as tg:
            for driver in drivers:
                tg.create_task(driver.run(), name=f"driver[{driver.id}]")
    return time.monotonic() - start


async def tcp_run(count: int, interval: float, seconds: float) -> dict[str, Any]:
    proc, info = _simulator("--count", str(count), "--kind", "water_tank")
    try:
        rmap = compile_map(load_maps()["water-tank-controller"])
        sink = CountingSink()
        rng = random.Random(1)
        drivers = []
        for i, port in enumerate(info["ports"]):
            bus = ModbusBusConfig(id=f"tcp-{i}", transport="tcp", host=info["host"], port=port,
                                  timeout_s=min(1.0, interval / 2))
            device = ModbusDevice(Device(f"tank-{i}", DeviceKind.WATER_TANK, Location("B"),
                                         "modbus", rmap.id), 1, interval, rmap)
            drivers.append(ModbusDriver(bus, [device], sink, rng=rng))
        cpu0 = time.process_time()
        elapsed = await _run_for(drivers, seconds)
        cpu = time.process_time() - cpu0
    finally:
        _stop(proc)
    # each device's first poll also waits for its TCP connect (and pymodbus's fixed 100 ms
    # pause after connecting): reported apart from the steady-state schedule lag
    lags = [x for d in drivers for x in list(d.bus_metrics.lag_s)[1:]]
    first = [d.bus_metrics.lag_s[0] for d in drivers if d.bus_metrics.lag_s]
    lat = [x for d in drivers for x in d.bus_metrics.latency_s]
    polls = sum(d.bus_metrics.polls for d in drivers)
    ok = sum(d.bus_metrics.polls_ok for d in drivers)
    requests = sum(d.bus_metrics.requests for d in drivers)
    failures: dict[str, int] = {}
    for d in drivers:
        for reason, n in d.bus_metrics.failures.items():
            failures[reason] = failures.get(reason, 0) + n
    return {
        "devices": count, "interval_s": interval, "seconds": round(elapsed, 2),
        "polls": polls, "polls_ok": ok, "requests": requests, "failures": failures,
        "polls_per_s": round(ok / elapsed, 1),
        "expected_polls_per_s": round(count / interval, 1),
        "schedule_lag_ms": {"p50": round(percentile(lags, 50) * 1000, 2),
                            "p99": round(percentile(lags, 99) * 1000, 2),
                            "max": round(max(lags, default=0.0) * 1000, 2)},
        "first_poll_lag_ms": {"p50": round(percentile(first, 50) * 1000, 2),
                              "max": round(max(first, default=0.0) * 1000, 2)},
        "poll_latency_ms": {"p50": round(percentile(lat, 50) * 1000, 2),
                            "p99": round(percentile(lat, 99) * 1000, 2)},
        "skipped_polls": sum(d.bus_metrics.skipped_polls for d in drivers),
        "observations": sink.observations,
        "cpu_s": round(cpu, 2),
        "cpu_pct_of_one_core": round(100 * cpu / elapsed, 1),
    }


def wire_limit(bus: ModbusBusConfig, registers: int) -> dict[str, float]:
    """Transactions/s one RTU line can carry for a read of ``registers`` registers.

    Request: address, function, start (2), count (2), CRC (2) = 8 characters. Response:
    address, function, byte count, 2 per register, CRC (2) = 5 + 2n. Each frame is followed
    by the 3.5-character silence RTU requires, plus the configured inter-frame gap. The
    device's own turnaround time is not included, so a real line does worse.
    """
    request, response = 8, 5 + 2 * registers
    chars = request + response + 2 * 3.5
    seconds = chars * bus.char_time_s + bus.gap_s
    return {"request_chars": request, "response_chars": response,
            "bits_per_char": round(bus.char_time_s * bus.baudrate),
            "seconds_per_transaction": round(seconds, 6),
            "max_transactions_per_s": round(1.0 / seconds, 1)}


async def rtu_run(count: int, seconds: float, baudrate: int, *, pace: bool) -> dict[str, Any]:
    socat = shutil.which("socat")
    if socat is None:
        return {"skipped": "socat is not installed"}
    pair = subprocess.Popen([socat, "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],  # noqa: S603
                            stderr=subprocess.PIPE, text=True)
    assert pair.stderr is not None
    paths: list[str] = []
    while len(paths) < 2:
        found = re.search(r"PTY is (\S+)", pair.stderr.readline())
        if found:
            paths.append(found.group(1))
    proc, _ = _simulator("--serial", paths[0], "--count", str(count), "--kind", "elevator",
                         "--baudrate", str(baudrate), *(["--pace"] if pace else []))
    try:
        rmap = compile_map(load_maps()["elevator-monitor"])
        bus = ModbusBusConfig(id="rtu", transport="rtu", serial_port=paths[1],
                              baudrate=baudrate, timeout_s=0.5)
        devices = [ModbusDevice(Device(f"lift-{a}", DeviceKind.ELEVATOR, Location("B"),
                                       "modbus", rmap.id), a, 0.001, rmap)
                   for a in range(1, count + 1)]
        driver = ModbusDriver(bus, devices, CountingSink(), rng=random.Random(1))
        cpu0 = time.process_time()
        elapsed = await _run_for([driver], seconds)
        cpu = time.process_time() - cpu0
    finally:
        _stop(proc)
        _stop(pair)  # type: ignore[arg-type]
    registers = sum(r.count for r in DeviceDecoder("x", rmap).plan)
    m = driver.bus_metrics
    return {
        "devices": count, "baudrate": baudrate, "seconds": round(elapsed, 2),
        "simulator_paced": pace,
        "registers_per_read": registers,
        "inter_frame_gap_ms": round(bus.gap_s * 1000, 3),
        "transactions": m.requests,
        "achieved_transactions_per_s": round(m.requests / elapsed, 1),
        "wire_limit": wire_limit(bus, registers),
        "failures": dict(m.failures),
        "cpu_s": round(cpu, 2),
        "note": ("the simulator answers only after the frames' time at this baud rate, so "
                 "achieved vs wire_limit shows the gateway's overhead on a line this fast"
                 if pace else
                 "a pty does not pace bytes at the baud rate; achieved is the gateway's own "
                 "ceiling, wire_limit is the line's"),
    }


def _table(tcp: dict[str, Any], rtu: dict[str, Any], paced: dict[str, Any]) -> str:
    rows = [
        ("TCP devices x interval", f"{tcp['devices']} x {tcp['interval_s']} s "
                                   f"for {tcp['seconds']} s"),
        ("polls/s (ok)", f"{tcp['polls_per_s']} (expected {tcp['expected_polls_per_s']})"),
        ("schedule lag p50 / p99 / max", f"{tcp['schedule_lag_ms']['p50']} / "
                                         f"{tcp['schedule_lag_ms']['p99']} / "
                                         f"{tcp['schedule_lag_ms']['max']} ms"),
        ("first poll lag p50 / max", f"{tcp['first_poll_lag_ms']['p50']} / "
                                     f"{tcp['first_poll_lag_ms']['max']} ms (includes connect)"),
        ("poll latency p50 / p99", f"{tcp['poll_latency_ms']['p50']} / "
                                   f"{tcp['poll_latency_ms']['p99']} ms"),
        ("failures, skipped polls", f"{sum(tcp['failures'].values())}, {tcp['skipped_polls']}"),
        ("gateway CPU", f"{tcp['cpu_s']} s ({tcp['cpu_pct_of_one_core']} % of one core)"),
    ]
    if "skipped" in rtu:
        rows.append(("RTU", rtu["skipped"]))
    else:
        rows += [
            ("RTU devices @ baud", f"{rtu['devices']} @ {rtu['baudrate']} "
                                   f"({rtu['registers_per_read']} registers per read)"),
            ("RTU achieved transactions/s, pty", f"{rtu['achieved_transactions_per_s']} "
                                                 "(bytes not paced by the pty)"),
            ("RTU achieved transactions/s, paced", f"{paced['achieved_transactions_per_s']} "
                                                   "(simulator answers after the wire time)"),
            ("RTU wire-time limit /s", f"{rtu['wire_limit']['max_transactions_per_s']} "
                                       f"({rtu['wire_limit']['seconds_per_transaction'] * 1000:.2f}"
                                       " ms per transaction)"),
        ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tcp-devices", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rtu-devices", type=int, default=10)
    parser.add_argument("--rtu-seconds", type=float, default=15.0)
    parser.add_argument("--baudrate", type=int, default=9600)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    tcp = asyncio.run(tcp_run(args.tcp_devices, args.interval, args.seconds))
    rtu = asyncio.run(rtu_run(args.rtu_devices, args.rtu_seconds, args.baudrate, pace=False))
    paced = asyncio.run(rtu_run(args.rtu_devices, args.rtu_seconds, args.baudrate, pace=True))
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "processor": platform.processor() or "?",
                    # other work on the machine shows up as lag: record how busy it was
                    "loadavg_1m_before": round(load_before[0], 2),
                    "loadavg_1m_after": round(os.getloadavg()[0], 2)},
        "tcp": tcp, "rtu": rtu, "rtu_paced": paced,
    }
    print(_table(tcp, rtu, paced))
    print(f"load average (1 min) before / after: {result['machine']['loadavg_1m_before']} / "
          f"{result['machine']['loadavg_1m_after']} on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
