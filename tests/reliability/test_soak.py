"""Soak: a steady estate load with periodic faults (gateway SIGKILL, broker restart): no memory
growth beyond a bound and no unhandled exception in the log (loss is proven by the crash,
broker-restart and power-loss tests).

CI runs a 40-second version; the full hour is
`SOAK_SECONDS=3600 bash scripts/test -m slow tests/reliability/test_soak.py`."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import orjson
import pytest

from drivers.simulators.mqtt_devices import make_simulator
from drivers.simulators.publisher import SimPublisher
from gateway.types import Device, DeviceKind, Location
from tests.support.mqtt import wait_until
from tests.support.servers import gateway, stored_points, write_config

pytestmark = pytest.mark.broker

KINDS = [DeviceKind.WATER_TANK, DeviceKind.ELEVATOR, DeviceKind.ACCESS_GATE,
         DeviceKind.PARKING_BARRIER]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _soak(tmp_path: Path, broker, seconds: float) -> None:
    devices = [Device(f"{k.value}-{i}", k, Location(f"B{i % 5}"), "mqtt", "native")
               for k in KINDS for i in range(25)]
    cfg = write_config(
        tmp_path / "gw.yaml", broker_port=broker.port, data_dir=tmp_path / "data",
        devices=[{"id": d.id, "kind": d.kind.value, "location": {"building": d.location.building}}
                 for d in devices],
        rules=[{"id": "low", "select": {"kind": "water_tank"}, "priority": "high",
                "when": {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25}},
               {"id": "trapped", "select": {"kind": "elevator"}, "priority": "emergency",
                "when": {"type": "event", "event": "elevator.entrapment", "auto_clear_s": 5}}])
    sims = [make_simulator(d) for d in devices]
    rng = random.Random(1)
    samples: list[int] = []
    faults: list[str] = []
    sent_telemetry = 0
    with gateway(tmp_path, cfg) as gw:
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        started = time.monotonic()
        next_fault = started + seconds / 4
        fault_cycle = ["kill", "broker", "kill"]
        try:
            while time.monotonic() - started < seconds:
                for sim in rng.sample(sims, 5):
                    sim.inject(rng.choice(["entrapment", "low_level", "forced_open"]))
                for sim in sims:
                    for msg in sim.step(time.time(), rng):
                        pub.publish(f"estate/test-site/{sim.device.location.building}/"
                                    f"{sim.device.kind.value}/{sim.device.id}/{msg.channel}",
                                    orjson.dumps(msg.body))
                        sent_telemetry += msg.channel == "telemetry"
                if gw.proc is not None:
                    samples.append(_rss_kb(gw.proc.pid))
                if fault_cycle and time.monotonic() >= next_fault:
                    fault = fault_cycle.pop(0)
                    faults.append(fault)
                    if fault == "kill":
                        gw.kill()
                        time.sleep(0.5)
                        gw.start()
                        samples.clear()  # a new process: measure its growth from here
                    else:
                        broker.stop()
                        time.sleep(1.0)
                        broker.start()
                    next_fault += seconds / 4
                time.sleep(0.1)  # 100 devices × 10 steps/s ≈ 1,000+ messages/s
        finally:
            pub.flush(60)
            pub.close()
        wait_until(lambda: len(stored_points(gw.data_dir / "telemetry.db")) > 0,
                   what="points stored")
        log = gw.log.read_text(errors="replace")
    half = max(1, len(samples) // 2)
    early = max(samples[:half]) if samples else 0
    late = max(samples[half:]) if samples[half:] else early
    growth = (late - early) / early if early else 0.0
    print(f"\nsoak {seconds:.0f} s: {len(devices)} devices, faults injected {faults}; "
          f"RSS {early / 1024:.1f} MB → {late / 1024:.1f} MB ({growth:+.1%}); "
          f"tracebacks in log: {log.count('Traceback')}")
    assert "Traceback" not in log
    assert growth < 0.25, "RSS of the last process grew more than 25 % in the second half"


def test_soak_short(tmp_path: Path, broker) -> None:
    _soak(tmp_path, broker, float(os.environ.get("SOAK_SHORT_SECONDS", "40")))


@pytest.mark.slow
def test_soak_hour(tmp_path: Path, broker) -> None:
    _soak(tmp_path, broker, float(os.environ.get("SOAK_SECONDS", "3600")))
