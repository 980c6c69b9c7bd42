"""500 alarms in under a minute: grouped into a few notifications, flagged as a flood, none lost."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.mqtt import Collector, wait_until
from tests.support.servers import gateway, write_config

pytestmark = pytest.mark.broker

N = 500
BUILDINGS = [f"B{i}" for i in range(1, 6)]
DEVICES = [{"id": f"door-{i}", "kind": "access_gate",
            "location": {"building": BUILDINGS[i % len(BUILDINGS)]}} for i in range(N)]
RULES = [{"id": "door-remote-open", "select": {"kind": "access_gate"}, "priority": "medium",
          "when": {"type": "event", "event": "door.remote_open"}}]


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_500_alarms_in_a_minute_grouped_flagged_none_lost(tmp_path: Path, broker) -> None:
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port,
                       data_dir=tmp_path / "data", devices=DEVICES, rules=RULES,
                       extra={"alarms": {"group_wait_s": 3}})
    db = tmp_path / "data" / "state.db"
    heard = Collector(broker.port, "estate/test-site/alarms/notifications", "test-notes")
    with gateway(tmp_path, cfg) as gw:
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        try:
            for i, dev in enumerate(DEVICES):
                topic = (f"estate/test-site/{dev['location']['building']}/access_gate/"
                         f"{dev['id']}/event")
                pub.publish(topic, orjson.dumps({"ts": time.time(), "id": f"r{i}",
                                                 "event": "door.remote_open"}))
                if i % 50 == 0:  # the console keeps answering while the flood comes in
                    assert gw.get("/healthz").status_code == 200
                    assert gw.get("/api/v1/alarms", priority=3).status_code == 200
            pub.flush()
            wait_until(lambda: len(gw.get("/api/v1/alarms").json()) == N, timeout=60,
                       what="all alarms raised")
            wait_until(lambda: _rows(db, "SELECT count(*) FROM journal WHERE type = "
                                         "'estate.alarm.notification'")[0][0] > 0
                       and sum(orjson.loads(d)["count"] for (d,) in _rows(
                           db, "SELECT data FROM journal WHERE type = "
                               "'estate.alarm.notification'")) == N,
                       timeout=30, what="notifications sent")
            kpi = gw.get("/api/v1/kpi/alarms").json()
            metrics = gw.get("/metrics").text
            # a guard's screen hears the flood and a few grouped notifications, not 500
            msgs = heard.wait_for(lambda m: sum(
                x[1]["data"].get("count", 0) for x in m) == N)
        finally:
            pub.close()
            heard.close()
    types = [m[1]["type"] for m in msgs]
    assert types.count("estate.alarm.flood") == 1
    assert types.count("estate.alarm.notification") <= 3 * len(BUILDINGS)
    # none lost: every alarm, its transition and its journal row are in the store
    assert _rows(db, "SELECT count(*) FROM alarms")[0][0] == N
    assert _rows(db, "SELECT count(DISTINCT alarm_id) FROM alarm_transitions")[0][0] == N
    assert _rows(db, "SELECT count(*) FROM journal WHERE type = "
                     "'estate.alarm.transition'")[0][0] == N
    # grouped: by rule and building, a few notifications instead of 500
    notes = [orjson.loads(d) for (d,) in _rows(
        db, "SELECT data FROM journal WHERE type = 'estate.alarm.notification'")]
    print(f"\n{N} alarms → {len(notes)} notifications: {[n['count'] for n in notes]}")
    assert len(notes) <= 3 * len(BUILDINGS)
    assert sorted(a for n in notes for a in n["alarm_ids"]) == sorted(
        f"door-remote-open:door-{i}" for i in range(N))
    assert all(n["flood"] for n in notes)
    # flagged: one flood started at the console position
    floods = [orjson.loads(d) for (d,) in _rows(
        db, "SELECT data FROM journal WHERE type = 'estate.alarm.flood'")]
    assert [(f["position"], f["state"]) for f in floods] == [("console", "start")]
    assert kpi["floods_total"] == 1 and kpi["flooding_positions"] == ["console"]
    assert kpi["activations_10min"] == N
    assert "gateway_alarm_floods_total 1.0" in metrics
