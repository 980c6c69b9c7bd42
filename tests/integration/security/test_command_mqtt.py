"""A device command end to end: API → command gate → MQTT driver → the device's command topic,
with the driver's result in the response and in the audit log (real mosquitto and process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mqtt import Collector
from tests.support.servers import gateway, write_config

pytestmark = pytest.mark.broker

BARRIER = {"id": "barrier-1", "kind": "parking_barrier", "location": {"building": "P1"}}
COMMANDS = {"devices": {"barrier-1": {"actions": ["open"], "roles": ["operator"]}}}


def test_operator_command_is_published_on_the_command_topic_and_audited(
        tmp_path: Path, broker) -> None:
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port,
                       data_dir=tmp_path / "data", devices=[BARRIER], rules=[],
                       extra={"commands": COMMANDS})
    device = Collector(broker.port, "estate/test-site/P1/parking_barrier/barrier-1/command",
                       client_id="barrier-1")
    try:
        with gateway(tmp_path, cfg) as gw:
            operator = gw.make_token("operator")
            viewer = gw.make_token("viewer")
            r = gw.post("/api/v1/devices/barrier-1/commands",
                        {"action": "open", "args": {"seconds": 5}}, token=operator)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["ok"] is True and out["outcome"] == "ok"
            assert "published to estate/test-site/P1/parking_barrier/barrier-1/command" in (
                out["detail"])
            [(topic, body)] = device.wait_for(lambda m: len(m) >= 1)
            assert body == {"id": out["command_id"], "action": "open", "args": {"seconds": 5},
                            "by": "test-operator"}
            r = gw.post("/api/v1/devices/barrier-1/commands", {"action": "open"},
                        token=viewer)
            assert r.status_code == 403
            entries = gw.get("/api/v1/audit", action="device.command").json()["entries"]
            # the viewer was stopped by the route's role gate, before the command path
            assert [(e["actor"], e["outcome"]) for e in entries] == [("test-operator", "ok")]
            assert entries[-1]["detail"]["result"] == {"ok": True, "detail": out["detail"]}
            assert entries[-1]["detail"]["command_id"] == out["command_id"]
    finally:
        device.close()
