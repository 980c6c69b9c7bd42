"""A Modbus water-tank controller polled by the gateway process: readings stored, alarm raised,
device offline on silence, Modbus counters on /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from drivers.simulators.modbus_devices import ModbusSimulator, water_tank_controller
from tests.support.mqtt import wait_until
from tests.support.servers import gateway, write_config

pytestmark = pytest.mark.broker


async def test_gateway_polls_modbus_tank_and_raises_alarm(tmp_path: Path, broker) -> None:
    tank = water_tank_controller()
    tank.set_metric("level_pct", 55.0)
    sim = ModbusSimulator({1: tank})
    port = await sim.start_tcp()
    cfg = write_config(
        tmp_path / "gw.yaml", broker_port=broker.port, data_dir=tmp_path / "data",
        devices=[{"id": "tank-m1", "kind": "water_tank", "location": {"building": "B7"},
                  "transport": "modbus",
                  "modbus": {"bus": "pump-room", "device_address": 1,
                             "register_map": "water-tank-controller", "poll_interval_s": 0.5}}],
        rules=[{"id": "low", "select": {"kind": "water_tank"}, "priority": "high",
                "when": {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25}}],
        extra={"modbus_buses": [{"id": "pump-room", "transport": "tcp", "host": "127.0.0.1",
                                 "port": port, "timeout_s": 0.3}]})

    def scenario() -> None:
        with gateway(tmp_path, cfg) as gw:
            def level() -> float | None:
                latest = gw.get("/api/v1/devices/tank-m1").json()["latest"]
                return latest.get("level_pct", {}).get("value")

            wait_until(lambda: level() == pytest.approx(55.0, abs=0.1), what="level polled")
            tank.set_metric("level_pct", 12.0)
            wait_until(lambda: [a["alarm_id"] for a in gw.get("/api/v1/alarms").json()]
                       == ["low:tank-m1"], what="alarm raised from a Modbus reading")
            metrics = gw.get("/metrics").text
            assert 'gateway_modbus_polls_total{bus="pump-room",outcome="ok"}' in metrics
            sim.silence(1)
            wait_until(lambda: gw.get("/api/v1/devices/tank-m1").json()["status"] in
                       ("offline", "alarm") and gw.get("/api/v1/events", limit=500).status_code
                       == 200 and any(e["data"].get("kind") == "device.offline" for e in
                                      gw.get("/api/v1/events", limit=500).json()["events"]),
                       timeout=20, what="device.offline journaled")
            sim.answer(1)
            wait_until(lambda: any(e["data"].get("kind") == "device.online" for e in
                                   gw.get("/api/v1/events", limit=500).json()["events"]),
                       timeout=20, what="device.online journaled")
            hist = gw.get("/api/v1/devices/tank-m1/history", metric="level_pct",
                          **{"from": time.time() - 120}).json()["points"]
            assert {round(p["value"]) for p in hist if p["quality"] == "good"} >= {55, 12}

    try:
        await asyncio.to_thread(scenario)
    finally:
        await sim.stop()
