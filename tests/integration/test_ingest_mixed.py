"""1,000 mixed valid and invalid messages: every valid one stored, every invalid one counted."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.mqtt import wait_until
from tests.support.servers import gateway, write_config

pytestmark = pytest.mark.broker

DEVICES = [
    {"id": "tank-1", "kind": "water_tank", "location": {"building": "B1"}},
    {"id": "lift-1", "kind": "elevator", "location": {"building": "B1"}},
    {"id": "gate-1", "kind": "access_gate", "location": {"building": "G"}},
]
T = "estate/test-site/B1/water_tank/tank-1/telemetry"
L = "estate/test-site/B1/elevator/lift-1/telemetry"
E = "estate/test-site/G/access_gate/gate-1/event"

# (topic, payload, reason or None): one template per case; ts filled in per message
INVALID = [
    (T, b"{not json", "malformed_json"),
    (T, b"[1, 2, 3]", "not_an_object"),
    (T, b'{"ts": %(ts)s, "level_pct": "high"}', "wrong_type"),
    (T, b'{"ts": %(ts)s, "level_pct": 1e999}', "malformed_json"),
    (T, b'{"ts": %(ts)s, "level_pct": 150}', "out_of_range"),
    (T, b'{"ts": %(ts)s, "levl_pct": 10}', "unknown_metric"),
    (T, b'{"ts": "yesterday", "level_pct": 10}', "bad_timestamp"),
    (T, b"{}", "no_values"),
    (T, b'{"ts": %(ts)s, "pad": "' + b"x" * 70_000 + b'"}', "oversize"),
    ("estate/test-site/B1/water_tank/tank-9/telemetry", b'{"level_pct": 1}', "unknown_device"),
    ("estate/test-site/B2/water_tank/tank-1/telemetry", b'{"level_pct": 1}', "topic_mismatch"),
    ("estate/test-site/B1/water_tank/tank-1/oops", b'{"level_pct": 1}', "unknown_topic"),
    (L, b'{"ts": %(ts)s, "mode": "dancing"}', "out_of_range"),
    (E, b'{"ts": %(ts)s, "event": "door.exploded", "id": "x%(i)s"}', "unknown_event"),
]


def test_thousand_mixed_messages_valid_stored_invalid_counted(tmp_path: Path, broker) -> None:
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port, data_dir=tmp_path / "data",
                       devices=DEVICES, rules=[])
    rng = random.Random(42)
    expected_rejects: Counter[str] = Counter()
    expected_points = 0
    expected_events = 0
    base = time.time() - 3600
    with gateway(tmp_path, cfg) as gw:
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        try:
            for i in range(1000):
                ts = base + i * 0.01
                if rng.random() < 0.4:
                    topic, template, reason = rng.choice(INVALID)
                    payload = template.replace(b"%(ts)s", repr(ts).encode()).replace(
                        b"%(i)s", str(i).encode())
                    expected_rejects[reason] += 1
                else:
                    choice = rng.randrange(3)
                    if choice == 0:
                        topic, payload = T, orjson.dumps({"ts": ts, "level_pct": rng.uniform(0, 100),
                                                          "pump_running": True})
                        expected_points += 2
                    elif choice == 1:
                        topic, payload = L, orjson.dumps({"ts": ts, "floor": rng.randint(1, 30)})
                        expected_points += 1
                    else:
                        topic, payload = E, orjson.dumps({"ts": ts, "event": "access.granted",
                                                          "id": f"swipe-{i}",
                                                          "attrs": {"card": "AB12"}})
                        expected_events += 1
                pub.publish(topic, payload)
            pub.flush()
        finally:
            pub.close()

        def counted() -> Counter[str]:
            text = gw.get("/metrics").text
            out: Counter[str] = Counter()
            for line in text.splitlines():
                if line.startswith("gateway_rejected_total{"):
                    reason = line.split('reason="')[1].split('"')[0]
                    out[reason] = int(float(line.rsplit(" ", 1)[1]))
            return +out

        wait_until(lambda: counted() == expected_rejects, what="every rejection counted")
        wait_until(lambda: gw.get("/metrics").text.count("gateway_store_points_written_total "
                                                           f"{float(expected_points)}") == 1,
                   what=f"{expected_points} points stored")
        health = gw.get("/healthz").json()
        assert health["status"] == "ok"
        wait_until(lambda: Counter(r["reason"] for r in gw.get(
            "/api/v1/rejections", limit=1000).json()) == expected_rejects,
            what="every rejection kept in the dead-letter table")
        page = gw.get("/api/v1/events", limit=5000).json()
        assert sum(1 for e in page["events"] if e["type"] == "estate.device.event") == \
            expected_events
        print(f"\nsent 1000: {expected_points} points, {expected_events} events stored; "
              f"rejected {sum(expected_rejects.values())} by reason {dict(expected_rejects)}")
