"""Device → broker → gateway → store → rule → alarm, against a real mosquitto and process."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.mqtt import Collector, wait_until
from tests.support.servers import gateway, write_config

pytestmark = pytest.mark.broker

TANK = {"id": "tank-1", "kind": "water_tank", "location": {"building": "B1"}}
LOW_RULE = {"id": "tank-low", "select": {"kind": "water_tank"}, "priority": "high",
            "when": {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25,
                     "for_s": 1.0}}
TOPIC = "estate/test-site/B1/water_tank/tank-1/telemetry"


def _level(pub: SimPublisher, level: float) -> None:
    # readings are keyed by device time (ms): a real tank reports every few seconds
    time.sleep(0.002)
    pub.publish(TOPIC, orjson.dumps({"ts": time.time(), "level_pct": level}), wait=True)


def test_tank_low_raises_one_alarm_published_and_listed_then_clears(tmp_path: Path, broker) -> None:
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port, data_dir=tmp_path / "data",
                       devices=[TANK], rules=[LOW_RULE])
    alarms_seen = Collector(broker.port, "estate/test-site/alarms")
    with gateway(tmp_path, cfg) as gw:
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        try:
            _level(pub, 50.0)
            wait_until(lambda: gw.get("/api/v1/devices/tank-1").json()["latest"]
                       .get("level_pct", {}).get("value") == 50.0, what="reading stored")
            # below the limit, but not yet for 1 s: no alarm
            _level(pub, 15.0)
            time.sleep(0.3)
            assert gw.get("/api/v1/alarms").json() == []
            # stays below: the on-delay runs out (the ticker fires it without a new reading)
            wait_until(lambda: len(gw.get("/api/v1/alarms").json()) == 1, what="alarm raised")
            for level in (14.0, 13.0, 12.0):  # still low: the same alarm, not new ones
                _level(pub, level)
            alarms = gw.get("/api/v1/alarms").json()
            assert [(a["alarm_id"], a["state"], a["count"]) for a in alarms] == [
                ("tank-low:tank-1", "active_unacknowledged", 1)]
            msgs = alarms_seen.wait_for(lambda m: len(m) >= 1)
            assert msgs[0][1]["type"] == "estate.alarm.transition"
            assert msgs[0][1]["data"]["to"] == "active_unacknowledged"
            assert msgs[0][1]["specversion"] == "1.0"
            # above the limit but below the clear level: hysteresis keeps it active
            _level(pub, 22.0)
            time.sleep(0.3)
            assert gw.get("/api/v1/alarms").json()[0]["condition_active"] is True
            # back past the clear level: returned to normal (unacknowledged)
            _level(pub, 30.0)
            wait_until(lambda: gw.get("/api/v1/alarms").json()[0]["state"]
                       == "returned_unacknowledged", what="alarm returned to normal")
            assert gw.post("/api/v1/alarms/tank-low:tank-1/ack").status_code == 200
            assert gw.get("/api/v1/alarms").json() == []
            msgs = alarms_seen.wait_for(lambda m: len(m) >= 3)
            assert [m[1]["data"]["to"] for m in msgs] == [
                "active_unacknowledged", "returned_unacknowledged", "normal"]
            hist = gw.get("/api/v1/devices/tank-1/history", metric="level_pct",
                          **{"from": time.time() - 60}).json()
            assert [p["value"] for p in hist["points"]] == [50.0, 15.0, 14.0, 13.0, 12.0, 22.0,
                                                            30.0]
        finally:
            pub.close()
            alarms_seen.close()
