"""Alarm API on the real process: filters, comment, out of service, maintenance, roles, KPIs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.mqtt import wait_until
from tests.support.servers import gateway, write_config

pytestmark = pytest.mark.broker

DEVICES = [
    {"id": "lift-1", "kind": "elevator", "location": {"building": "B1"}},
    {"id": "lift-3", "kind": "elevator", "location": {"building": "B3"}},
    {"id": "door-1", "kind": "access_gate", "location": {"building": "B1"}},
]


def _event(pub: SimPublisher, dev: dict, kind: str, n: int) -> None:
    topic = f"estate/test-site/{dev['location']['building']}/{dev['kind']}/{dev['id']}/event"
    pub.publish(topic, orjson.dumps({"ts": time.time(), "id": f"{dev['id']}-{n}",
                                     "event": kind}), wait=True)


def test_alarm_api_filters_comments_service_and_maintenance(tmp_path: Path, broker) -> None:
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port,
                       data_dir=tmp_path / "data", devices=DEVICES, rules=[],
                       extra={"include": ["pack:elevator", "pack:access_gate"]})
    with gateway(tmp_path, cfg) as gw:
        operator = gw.make_token("operator")
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        try:
            _event(pub, DEVICES[0], "elevator.door_open_failure", 1)
            _event(pub, DEVICES[1], "elevator.overspeed", 2)
            _event(pub, DEVICES[2], "door.forced_open", 3)
            wait_until(lambda: len(gw.get("/api/v1/alarms").json()) == 3, what="3 alarms")
            ids = lambda **q: sorted(a["alarm_id"] for a in gw.get("/api/v1/alarms", **q).json())  # noqa: E731
            assert ids(building="B3") == ["elevator.overspeed:lift-3"]
            assert ids(kind="access_gate") == ["door.forced_open:door-1"]
            assert ids(priority=2) == ["elevator.door_open_failure:lift-1"]
            assert ids(priority=1, building="B1") == ["door.forced_open:door-1"]

            aid = "elevator.door_open_failure:lift-1"
            r = gw.post(f"/api/v1/alarms/{aid}/comment", {"text": "维保单位已通知 / contractor called"},
                        token=operator)
            assert r.status_code == 200 and r.json()["state"] == "active_unacknowledged"
            # out of service is an engineer's decision
            assert gw.post(f"/api/v1/alarms/{aid}/out-of-service", {"reason": "x"},
                           token=operator).status_code == 403
            assert gw.post(f"/api/v1/alarms/{aid}/out-of-service",
                           {"reason": "door operator replaced"}).json()["state"] == "out_of_service"
            assert gw.post(f"/api/v1/alarms/{aid}/return-to-service").json()["state"] == \
                "active_unacknowledged"
            reasons = [t["reason"] for t in gw.get(f"/api/v1/alarms/{aid}").json()["transitions"]]
            assert reasons == ["condition raised", "comment: 维保单位已通知 / contractor called",
                               "out of service: door operator replaced",
                               "returned to service, condition active"]

            # maintenance (engineer): the lift's active fault alarm is suppressed, then back
            assert gw.put("/api/v1/devices/lift-3/maintenance", {"reason": "annual"},
                          token=operator).status_code == 403
            r = gw.put("/api/v1/devices/lift-3/maintenance", {"reason": "annual", "minutes": 60})
            assert r.status_code == 200 and r.json()["until"] is not None
            overspeed = gw.get("/api/v1/alarms/elevator.overspeed:lift-3").json()
            assert overspeed["state"] == "suppressed"
            assert overspeed["suppressed_by"].startswith("device in maintenance")
            assert gw.get("/api/v1/devices/lift-3").json()["status"] == "maintenance"
            assert gw.put("/api/v1/devices/nope/maintenance", {"reason": "x"}).status_code == 404
            r = httpx.delete(f"{gw.url}/api/v1/devices/lift-3/maintenance",
                             headers={"Authorization": f"Bearer {gw.token}"}, timeout=10)
            assert r.status_code == 204
            assert gw.get("/api/v1/alarms/elevator.overspeed:lift-3").json()["state"] in (
                "active_unacknowledged", "latched")

            kpi = gw.get("/api/v1/kpi/alarms", token=operator).json()
            assert kpi["activations_10min"] >= 3
            assert {r["alarm_id"] for r in kpi["top10"]} >= {"door.forced_open:door-1"}
            assert "gateway_alarm_activations_10min" in gw.get("/metrics").text
        finally:
            pub.close()
