"""Vendor payloads of every kind through a real mosquitto and the gateway process, and
`estate-gateway simulate` driving a gateway configured by its own --write-config."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from drivers.mqtt.codec import topic_for
from drivers.profiles import builtin_profiles
from drivers.simulators.mqtt_devices import make_simulator
from drivers.simulators.publisher import SimPublisher
from gateway.config import load_config
from gateway.types import Device, DeviceKind, Location
from gateway.vocabulary import METRICS
from tests.support.mqtt import wait_until
from tests.support.servers import REPO, gateway, write_config

pytestmark = pytest.mark.broker

# one device per shipped vendor profile, and the event each is asked to produce
INJECT = {
    "access_gate": "access.denied",
    "elevator": "elevator.entrapment",
    "water_tank": "pump.fault",
    "parking_barrier": "vehicle.entry_refused",
    "generic": "medical.button",
}
CUSTOM = """
id: acme-gate
kind: access_gate
timestamp_unit: ms
values_at: d
fields:
  door: {metric: door_state, map: {0: closed, 1: open, 2: held_open, 3: forced_open, 4: unknown}}
  lock: {metric: lock_state, map: {0: locked, 1: unlocked, 2: fault}}
  open: {metric: door_open_s}
  bat: {metric: battery_pct}
events:
  code_field: d.ev
  codes: {F: door.forced_open}
"""


def test_vendor_payloads_of_every_kind_reach_store_events_and_alarms(tmp_path: Path,
                                                                     broker) -> None:
    vendors = sorted(k for k, p in builtin_profiles().items() if p.id != "native")
    devices = [{"id": f"d{i}-{key.split('.')[1]}", "kind": key.split(".")[0],
                "location": {"building": f"B{i}"}, "profile": key.split(".")[1]}
               for i, key in enumerate(vendors)]
    (tmp_path / "vendors").mkdir()
    (tmp_path / "vendors" / "acme.yaml").write_text(CUSTOM)
    devices.append({"id": "gate-acme", "kind": "access_gate", "location": {"building": "G"},
                    "profile": "acme-gate"})
    rules = [{"id": "trapped", "select": {"kind": "elevator"}, "priority": "emergency",
              "latch": True, "when": {"type": "event", "event": "elevator.entrapment"}}]
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port,
                       data_dir=tmp_path / "data", devices=devices, rules=rules,
                       extra={"profile_dirs": ["vendors"]})
    parsed = load_config(cfg)
    profiles = builtin_profiles([cfg.parent / d for d in parsed.profile_dirs])
    sims = [make_simulator(d.to_device(), profile=profiles[f"{d.kind.value}.{d.profile}"])
            for d in parsed.devices]
    rng = random.Random(3)
    with gateway(tmp_path, cfg) as gw:
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        try:
            now = time.time()
            for sim in sims:
                sim.inject(INJECT[sim.device.kind.value] if sim.device.id != "gate-acme"
                           else "door.forced_open")
                for msg in sim.step(now, rng) + sim.step(now + 1, rng):
                    pub.publish(topic_for("estate", "test-site", sim.device, msg.channel),
                                orjson.dumps(msg.body))
            pub.flush()
        finally:
            pub.close()

        def complete(dev: dict) -> bool:
            latest = gw.get(f"/api/v1/devices/{dev['id']}").json()["latest"]
            return set(latest) == set(METRICS[DeviceKind(dev["kind"])])
        for dev in devices:
            wait_until(lambda dev=dev: complete(dev), what=f"every metric of {dev['id']}")
        wait_until(lambda: len(gw.get("/api/v1/events", limit=1000).json()["events"])
                   >= len(devices), what="events journalled")
        events = [e["data"] for e in gw.get("/api/v1/events", limit=1000).json()["events"]
                  if e["type"] == "estate.device.event"]
        by_device = {}
        for e in events:
            by_device.setdefault(e["device_id"], []).append(e)
        for dev in devices:
            want = INJECT[dev["kind"]] if dev["id"] != "gate-acme" else "door.forced_open"
            got = [e for e in by_device.get(dev["id"], []) if e["kind"] == want]
            assert got, f"{dev['id']} ({dev['profile']}): no {want}; got {by_device.get(dev['id'])}"
        refused = [e for e in events if e["kind"] == "vehicle.entry_refused"]
        assert {e["attributes"]["reason"] for e in refused} == {"pass_expired"}
        denied = [e for e in events if e["kind"] == "access.denied"]
        assert all(e["attributes"]["reason"] in ("unknown_card", "expired", "wrong_card_class",
                                                  "arrears_blocked") for e in denied)
        assert gw.get("/api/v1/rejections").json() == []
        alarms = gw.get("/api/v1/alarms").json()
        assert sorted(a["device_id"] for a in alarms) == sorted(
            d["id"] for d in devices if d["kind"] == "elevator")


def test_simulate_drives_a_gateway_configured_by_its_own_write_config(tmp_path: Path,
                                                                      broker) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cfg = tmp_path / "gw.yaml"
    common = ["--port", str(broker.port), "--site", "load-test", "--devices", "40"]
    subprocess.run([sys.executable, "-m", "gateway", "simulate", *common, "--write-config",
                    str(cfg)], check=True, env=env, cwd=tmp_path, capture_output=True)
    assert len(load_config(cfg).devices) == 40
    with gateway(tmp_path, cfg) as gw:
        out = subprocess.run([sys.executable, "-m", "gateway", "simulate", *common, "--rate",
                              "400", "--seconds", "2"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        sent = int(out.stdout.split("sent ")[1].split(" ")[0])
        assert sent >= 400

        def counter(prefix: str) -> int:
            return sum(int(float(line.rsplit(" ", 1)[1]))
                       for line in gw.get("/metrics").text.splitlines()
                       if line.startswith(prefix))
        # every message published was received: nothing lost, nothing rejected
        wait_until(lambda: counter("gateway_mqtt_messages_in_total") >= sent,
                   what=f"{sent} messages received")
        assert counter("gateway_rejected_total{") == 0
        assert counter('gateway_observations_total{type="reading"}') > sent
        devices = gw.get("/api/v1/devices").json()
        assert sum(1 for d in devices if d["last_seen"]) >= 30


def test_plan_estate_is_stable_and_covers_every_profile() -> None:
    from gateway.loadgen import plan_estate

    a, b = plan_estate(60), plan_estate(60)
    assert a == b
    assert {d.kind for d in a} == set(DeviceKind)
    used = {f"{d.kind.value}.{d.profile}" for d in a}
    assert used == set(builtin_profiles())
    assert isinstance(a[0], Device) and isinstance(a[0].location, Location)
