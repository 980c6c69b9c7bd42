"""The pull side against a real gateway: paging while entries are written, long-poll,
snapshot then follow, consumer acks, and work-order status from the cloud (API and MQTT)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.journal import fill_journal, journal_ids
from tests.support.mqtt import wait_until
from tests.support.servers import gateway, write_config

pytestmark = pytest.mark.broker

LIFT = {"id": "lift-1", "kind": "elevator", "location": {"building": "B3", "floor": 1}}
TRAPPED = {"id": "trapped", "select": {"kind": "elevator"}, "priority": "emergency",
           "when": {"type": "event", "event": "elevator.entrapment"},
           "work_order": {"category": "entrapment", "team": "elevator-contractor"}}


def _cfg(tmp_path: Path, broker) -> Path:
    return write_config(tmp_path / "gw.yaml", broker_port=broker.port,
                        data_dir=tmp_path / "data", devices=[LIFT], rules=[TRAPPED],
                        extra={"cloud": {"consumers": ["cloud-main"]}})


def test_pull_consumer_sees_every_entry_once_while_entries_are_written(tmp_path, broker
                                                                        ) -> None:
    with gateway(tmp_path, _cfg(tmp_path, broker)) as gw:
        cloud = gw.make_token("cloud")
        db = gw.data_dir / "state.db"
        done = threading.Event()

        def writer() -> None:
            for _ in range(30):  # 30 commits of 500, interleaved with the reader's pages
                fill_journal(db, 500, chunk=500)
            done.set()

        t = threading.Thread(target=writer)
        t.start()
        seen: list[dict] = []
        after = 0
        try:
            with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {cloud}"},
                              timeout=10) as http:
                while not (done.is_set() and after >= journal_ids(db)[-1][0]):
                    r = http.get("/api/v1/events", params={"after": after, "limit": 700,
                                                           "wait_s": 0.5})
                    assert r.status_code == 200, r.text
                    page = r.json()
                    seen.extend(page["events"])
                    after = page["next_after"]
        finally:
            t.join()
    expected = journal_ids(tmp_path / "data" / "state.db")
    assert [e["seq"] for e in seen] == [s for s, _, _ in expected]  # all, once, in order
    assert [e["id"] for e in seen] == [eid for _, eid, _ in expected]


def test_long_poll_answers_when_an_entry_is_written(tmp_path, broker) -> None:
    with gateway(tmp_path, _cfg(tmp_path, broker)) as gw:
        cloud = gw.make_token("cloud")
        newest = gw.get("/api/v1/events", cloud).json()["newest_seq"]
        result: dict = {}

        def poll() -> None:
            result["r"] = httpx.get(f"{gw.url}/api/v1/events", params={
                "after": newest, "wait_s": 20}, headers={"Authorization": f"Bearer {cloud}"},
                timeout=30).json()

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.5)  # the poll is parked (not a timing assertion: it may be later)
        assert t.is_alive()
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        try:
            pub.publish("estate/test-site/B3/elevator/lift-1/event", orjson.dumps(
                {"ts": time.time(), "event": "elevator.entrapment", "id": "e1"}), wait=True)
        finally:
            pub.close()
        t.join(30)
        assert [e["type"] for e in result["r"]["events"]][0] == "estate.device.event"


def test_snapshot_then_follow_ack_and_work_order_status(tmp_path, broker) -> None:
    with gateway(tmp_path, _cfg(tmp_path, broker)) as gw:
        cloud = gw.make_token("cloud")
        viewer = gw.make_token("viewer")
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        try:
            pub.publish("estate/test-site/B3/elevator/lift-1/event", orjson.dumps(
                {"ts": time.time(), "event": "elevator.entrapment", "id": "e1"}), wait=True)
            wait_until(lambda: gw.get("/api/v1/snapshot", cloud).json()["work_orders"],
                       what="work order opened")
            snap = gw.get("/api/v1/snapshot", cloud).json()
            (alarm,) = snap["alarms"]
            (order,) = snap["work_orders"]
            assert alarm["alarm_id"] == "trapped:lift-1"
            assert (order["category"], order["alarm_id"], order["location"]) == (
                "entrapment", "trapped:lift-1", "B3/F1")
            # the snapshot's seq covers the alarm and the order: following from it shows
            # nothing older
            follow = gw.get("/api/v1/events", cloud, after=snap["seq"]).json()["events"]
            assert all(e["seq"] > snap["seq"] for e in follow)
            assert snap["seq"] >= 3  # device event, alarm transition, work order created
            # status from the cloud over HTTP, then over MQTT
            r = gw.post(f"/api/v1/work-orders/{order['id']}/status",
                        {"status": "accepted", "note": "on our way / 已派单"}, cloud)
            assert r.status_code == 200 and r.json()["status"] == "accepted"
            assert gw.post(f"/api/v1/work-orders/{order['id']}/status",
                           {"status": "done"}, viewer).status_code == 403
            pub.publish("estate/test-site/work-orders/status", orjson.dumps(
                {"id": order["id"], "status": "dispatched", "by": "cloud-dispatch"}), wait=True)
            wait_until(lambda: gw.get(f"/api/v1/work-orders/{order['id']}", viewer)
                       .json()["status"] == "dispatched", what="status over MQTT")
            r = gw.post(f"/api/v1/work-orders/{order['id']}/status", {"status": "accepted"},
                        cloud)
            assert r.status_code == 409 and "cannot go back" in r.json()["detail"]
            detail = gw.get(f"/api/v1/work-orders/{order['id']}", viewer).json()
            assert [(h["to"], h["by"]) for h in detail["history"]] == [
                ("open", "system"), ("accepted", "test-cloud"),
                ("dispatched", "cloud-dispatch")]
            types = [e["type"] for e in gw.get("/api/v1/events", cloud).json()["events"]]
            assert types.count("estate.workorder.status") == 2
            # a consumer acknowledges: retention may now prune up to there
            newest = gw.get("/api/v1/events", cloud).json()["newest_seq"]
            r = gw.post("/api/v1/events/ack", {"consumer": "cloud-main", "seq": newest}, cloud)
            assert r.status_code == 200
            assert r.json()["acked_seq"] == newest
            assert gw.post("/api/v1/events/ack", {"consumer": "cloud-main",
                                                  "seq": newest + 100}, cloud).status_code == 422
        finally:
            pub.close()
