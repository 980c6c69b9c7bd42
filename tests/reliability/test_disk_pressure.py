"""Disk pressure with the real gateway process: heavy MQTT telemetry into a telemetry store
with a small ``store.max_bytes``, while alarm-raising events and readings arrive. The
telemetry policy (``prune_oldest`` or ``drop_new``) is applied and counted on /metrics,
``store.full`` is raised once (journal, alarm topic, API), every alarm and journal entry is
intact, both databases pass ``integrity_check``, and the gateway stays healthy.

Written against public behaviour only (config keys, /metrics, the API, the journal as the
API serves it, the alarm topic): the telemetry store's internal layout is free to change.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
import time
from pathlib import Path

import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.mqtt import Collector, wait_until
from tests.support.servers import GatewayProcess, gateway, write_config

pytestmark = pytest.mark.broker

BUDGET = 1_048_576  # the smallest store.max_bytes the config accepts
TANKS = ["tank-0", "tank-1"]
GATES = [f"gate-{i}" for i in range(6)]
METRICS = {"level_pct": (30, 90), "level_m": (0.5, 4), "inlet_pressure_mpa": (0.1, 0.3),
           "outlet_pressure_mpa": (0.3, 0.6), "vfd_frequency_hz": (30, 50),
           "turbidity_ntu": (0.1, 1), "free_chlorine_mgl": (0.1, 0.8), "ph": (6.5, 8.5)}
HISTORY_S = 36 * 3600.0  # the load starts this far back in device time, so there are old
STEP_S = 2.0  # hours to prune; 2 s of device time a message keeps one hour under the budget
MAX_MESSAGES = 60_000  # device time stays in the past: every reading is a new (point, time)
RULES = [
    {"id": "forced", "select": {"kind": "access_gate"}, "priority": "emergency", "latch": True,
     "when": {"type": "event", "event": "door.forced_open"}},
    {"id": "low", "select": {"kind": "water_tank"}, "priority": "high",
     "when": {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25}},
]


def _metric(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{name}(?:_total)?(?:{{{re.escape(labels)}}})? ([0-9.e+-]+)$", text,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _journal(gw: GatewayProcess) -> list[dict]:
    """Every journal entry, as the pull API serves it."""
    out: list[dict] = []
    after = 0
    while True:
        page = gw.get("/api/v1/events", after=after, limit=5000).json()
        out += page["events"]
        if not page["events"]:
            return out
        after = page["next_after"]


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.parametrize("on_full", ["prune_oldest", "drop_new"])
def test_store_full_applies_policy_and_keeps_alarms_and_journal(tmp_path: Path, broker,
                                                                 on_full: str) -> None:
    devices = [{"id": t, "kind": "water_tank", "location": {"building": "W"}}
               for t in [*TANKS, "tank-probe"]]
    devices += [{"id": g, "kind": "access_gate", "location": {"building": "G"}} for g in GATES]
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port, data_dir=tmp_path / "data",
                       devices=devices, rules=RULES,
                       extra={"store": {"path": str(tmp_path / "data"), "max_bytes": BUDGET,
                                        "on_full": on_full, "fill_alarm_pct": 90}})
    stop = threading.Event()
    sent = {"messages": 0, "readings": 0}
    probes: list[tuple[str, str]] = []  # (alarm id expected, what was sent)

    def load(pub: SimPublisher) -> None:
        rng = random.Random(4)
        start = time.time() - HISTORY_S
        i = 0
        while not stop.is_set() and i < MAX_MESSAGES:
            tank = TANKS[i % len(TANKS)]
            # device time walks forward from 36 hours ago, hours faster than the clock
            ts = start + i * STEP_S
            body = {"ts": ts} | {m: round(rng.uniform(lo, hi), 3) for m, (lo, hi) in METRICS.items()}
            pub.publish(f"estate/test-site/W/water_tank/{tank}/telemetry", orjson.dumps(body))
            sent["messages"] += 1
            sent["readings"] += len(METRICS)
            i += 1
            if i % 15 == 0:
                time.sleep(0.01)  # ~1,500 messages/s

    def probe(pub: SimPublisher, gates: list[str], level: float) -> None:
        for gate in gates:
            pub.publish(f"estate/test-site/G/access_gate/{gate}/event", orjson.dumps(
                {"ts": time.time(), "event": "door.forced_open", "id": f"probe-{gate}",
                 "attrs": {"door": "main"}}))
            probes.append((f"forced:{gate}", f"{gate}:probe-{gate}"))
        pub.publish("estate/test-site/W/water_tank/tank-probe/telemetry",
                    orjson.dumps({"ts": time.time(), "level_pct": level}))

    alarms_seen = Collector(broker.port, "estate/test-site/alarms", client_id="alarm-watch")
    try:
        with gateway(tmp_path, cfg) as gw:
            pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
            worker = threading.Thread(target=load, args=(pub,), name="telemetry-load")
            worker.start()
            try:
                wait_until(lambda: _metric(gw.get("/metrics").text, "gateway_store_used_bytes")
                           >= 0.9 * BUDGET, timeout=60, what="store filled to 90 %")
                probe(pub, GATES[:3], 12.0)  # while the store is full
                wait_until(lambda: any(a["alarm_id"] == "store.full:gateway"
                                       for a in gw.get("/api/v1/alarms").json()),
                           timeout=60, what="store.full raised")
                probe(pub, GATES[3:], 8.0)  # after the alarm, still under load
                wait_until(lambda: {a["alarm_id"] for a in gw.get("/api/v1/alarms").json()}
                           >= {alarm for alarm, _ in probes} | {"low:tank-probe"},
                           timeout=30, what="every probe alarm raised")
            finally:
                stop.set()
                worker.join()
                pub.flush()
                pub.close()
            readings_sent = sent["readings"] + 2  # and the two probe levels
            wait_until(lambda: _metric(gw.get("/metrics").text, "gateway_observations",
                                       'type="reading"') >= readings_sent, timeout=60,
                       what="every reading received")
            text = gw.get("/metrics").text
            health = gw.get("/healthz").json()
            alarms = {a["alarm_id"]: a for a in gw.get("/api/v1/alarms").json()}
            journal = _journal(gw)
            alarms_seen.wait_for(lambda msgs: any(
                m["data"]["alarm"]["rule_id"] == "store.full" for _, m in msgs), timeout=15)
    finally:
        alarms_seen.close()
    checks = {db.name: _integrity(db) for db in sorted((tmp_path / "data").glob("*.db"))}

    used = _metric(text, "gateway_store_used_bytes")
    pruned = _metric(text, "gateway_store_points_pruned_for_space")
    dropped = _metric(text, "gateway_store_points_dropped_full")
    written = _metric(text, "gateway_store_points_written")
    received = _metric(text, "gateway_observations", 'type="reading"')
    duplicates = _metric(text, "gateway_store_duplicates")
    seqs = [e["seq"] for e in journal]
    full_rows = [e for e in journal if e["type"] == "estate.alarm.transition"
                 and e["data"]["alarm"]["rule_id"] == "store.full"]
    full_published = [m for _, m in alarms_seen.messages
                      if m["data"]["alarm"]["rule_id"] == "store.full"]
    event_ids = [e["id"] for e in journal if e["type"] == "estate.device.event"]
    missing_alarms = [a for a, _ in probes if a not in alarms] + (
        [] if "low:tank-probe" in alarms else ["low:tank-probe"])
    missing_events = [eid for _, eid in probes if event_ids.count(eid) != 1]
    print(f"\n[{on_full}] injected: {sent['messages']} telemetry messages ({sent['readings']} "
          f"readings, device time from 36 h ago towards now) into a {BUDGET // 1024} KiB budget, "
          f"{len(probes)} forced-door events and 2 low-level readings while full; "
          f"survived: {received:.0f} readings received, {written:.0f} written, {pruned:.0f} "
          f"of them pruned for space later, {duplicates:.0f} duplicates, "
          f"{dropped:.0f} dropped (store at {100 * used / BUDGET:.0f} % of budget); store.full "
          f"raised {len(full_rows)}x (journal) / {len(full_published)}x (alarm topic); "
          f"{len(alarms)} alarms; journal seq {seqs[0]}..{seqs[-1]} ({len(seqs)} entries); "
          f"integrity {checks}; health {health['status']}; lost: "
          f"{len(missing_alarms)} alarms, {len(missing_events)} events, "
          f"{len(seqs) - len(set(seqs)) + (seqs[-1] - seqs[0] + 1 - len(set(seqs)))} journal "
          "entries")

    # every reading is either written or counted as refused; prune_oldest lets the newest in
    assert received == readings_sent
    assert duplicates == 0
    if on_full == "prune_oldest":
        assert pruned > 0 and dropped == 0 and written == received
    else:
        assert dropped > 0 and pruned == 0 and written + dropped == received
    assert [r["data"]["to"] for r in full_rows] == ["active_unacknowledged"]
    assert len(full_published) == 1
    assert alarms["store.full:gateway"]["state"] == "active_unacknowledged"
    assert not missing_alarms, missing_alarms
    assert not missing_events, missing_events
    assert seqs == list(range(1, len(seqs) + 1))  # continuous, nothing pruned or lost
    assert health["status"] == "ok"
    assert checks and set(checks.values()) == {"ok"}, checks
    assert "state.db" in checks
