"""The console's HTTP surface in-process (no broker): static files, labels, stream tickets,
the live feed's messages, and the shift API with its journal rows and restart survival."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.api.app import create_app
from gateway.api.stream import QUEUE_MAX, Subscriber, Tickets
from gateway.auth import Principal
from gateway.config import GatewayConfig
from gateway.runtime import Runtime
from gateway.types import Event

CONFIG = {
    "site": {"id": "t", "name": "阳光花园", "timezone": "Asia/Shanghai"},
    "devices": [{"id": "lift-1", "kind": "elevator", "location": {"building": "B3"}},
                {"id": "gate-1", "kind": "access_gate", "location": {"building": "B1"}}],
    "rules": [{"id": "trapped", "name": "电梯困人 / Passenger trapped",
               "select": {"kind": "elevator"}, "priority": "emergency",
               "when": {"type": "event", "event": "elevator.entrapment"}},
              {"id": "forced", "select": {"kind": "access_gate"}, "priority": "emergency",
               "when": {"type": "event", "event": "door.forced_open"}}],
    "console": {"flood_alarms": 1, "flood_window_s": 600},
}


class Gw:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client
        self.tokens: dict[str, str] = {}


    async def call(self, method: str, path: str, user: str = "op1", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.request(method, path, headers=headers, **kw)

    async def trap(self, device: str = "lift-1", kind: str = "elevator.entrapment") -> None:
        now = self.runtime.clock.now()
        await self.runtime.ingest([Event(device, kind, now, f"{device}-{now}")])


def make_runtime(data: Path) -> Runtime:
    rt = Runtime(GatewayConfig.model_validate(CONFIG), data_dir=data)
    return rt


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gw]:
    rt = make_runtime(tmp_path)
    app = create_app(rt)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        g = Gw(rt, client)
        for name, role in (("op1", "operator"), ("op2", "operator"), ("guard", "viewer")):
            g.tokens[name] = rt.auth.add_token(name, role)  # API tokens: no argon2 per test
        yield g
    await app.state.console_hub.stop()
    rt.close()


async def test_console_page_is_served_with_a_strict_policy(gw: Gw) -> None:
    r = await gw.client.get("/")
    assert r.status_code == 307 and r.headers["location"] == "/console/"
    r = await gw.client.get("/console/")
    assert r.status_code == 200 and '<script type="module" src="js/app.js">' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    for asset in ("js/app.js", "js/chart.js", "js/sound.js", "css/console.css"):
        assert (await gw.client.get(f"/console/{asset}")).status_code == 200, asset
    assert (await gw.client.get("/console/../auth.db")).status_code == 404


async def test_config_and_vocabulary_need_a_login_and_carry_labels(gw: Gw) -> None:
    assert (await gw.client.get("/api/v1/console/config")).status_code == 401
    cfg = (await gw.call("GET", "/api/v1/console/config", "guard")).json()
    assert cfg == {"site_id": "t", "site_name": "阳光花园", "timezone": "Asia/Shanghai",
                   "shift_max_hours": 8.0, "flood_alarms": 1, "flood_window_s": 600.0}
    vocab = (await gw.call("GET", "/api/v1/vocabulary", "guard")).json()
    assert vocab["metrics"]["water_tank"]["level_pct"] == {
        "zh": "水位", "en": "Level", "unit": "%", "kind": "float", "states": []}
    assert vocab["events"]["elevator"]["elevator.entrapment"]["zh"] == "困人"


async def test_stream_tickets_are_single_use_and_expire() -> None:
    tickets = Tickets(ttl_s=30)
    who = Principal("op1", "operator")
    t = tickets.issue(who)
    assert tickets.redeem(t) == who
    assert tickets.redeem(t) is None  # used
    assert tickets.redeem("forged") is None
    short = Tickets(ttl_s=0.01)
    t = short.issue(who)
    await asyncio.sleep(0.05)
    assert short.redeem(t) is None  # expired


async def test_stream_refuses_a_missing_or_reused_ticket(gw: Gw) -> None:
    assert (await gw.client.get("/api/v1/stream?ticket=nope")).status_code == 401
    assert (await gw.client.post("/api/v1/stream/ticket")).status_code == 401
    r = await gw.call("POST", "/api/v1/stream/ticket", "guard")
    assert r.status_code == 200 and r.json()["expires_in_s"] == 30


async def test_hub_pushes_the_current_alarm_and_the_flood_count(gw: Gw) -> None:
    hub = gw.client._transport.app.state.console_hub  # type: ignore[attr-defined]
    sub = await hub.subscribe()
    frames = hub.frames(sub, max_s=5)
    first = await anext(frames)
    assert b"event: snapshot" in first and orjson.loads(first.split(b"data: ")[1])["alarms"] == []
    await gw.trap()
    events: dict[str, Any] = {}
    while "alarm" not in events or "flood" not in events:
        frame = await asyncio.wait_for(anext(frames), 3)
        name = frame.split(b"event: ")[1].split(b"\n")[0].decode()
        events[name] = orjson.loads(frame.split(b"data: ")[1])
    assert events["alarm"]["alarm_id"] == "trapped:lift-1"
    assert events["alarm"]["building"] == "B3"
    assert events["alarm"]["state"] == "active_unacknowledged"
    assert events["flood"]["count"] == 1 and events["flood"]["active"] is False
    await gw.trap("gate-1", "door.forced_open")
    while True:
        frame = await asyncio.wait_for(anext(frames), 3)
        if b"event: flood" in frame:
            assert orjson.loads(frame.split(b"data: ")[1])["active"] is True  # 2 > 1
            break
    await frames.aclose()
    assert hub.subscribers == 0
    # a restarted hub counts the window from the stored transitions
    await hub.stop()
    await hub.start()
    assert hub.flood()["count"] == 2


def test_a_slow_subscriber_is_resynced_instead_of_buffering_without_bound() -> None:
    sub = Subscriber()
    for i in range(QUEUE_MAX + 3):
        sub.put({"event": "alarm", "data": i})
    # the backlog is replaced by one resync marker; what came after it is kept
    assert sub.queue.get_nowait() == {"event": "resync"}
    assert [sub.queue.get_nowait()["data"] for _ in range(2)] == [QUEUE_MAX + 1, QUEUE_MAX + 2]
    assert sub.dropped == 1


async def test_shift_api_records_handover_in_the_journal_and_survives_restart(
        gw: Gw, tmp_path: Path) -> None:
    assert (await gw.call("POST", "/api/v1/shifts/start", "guard")).status_code == 403
    r = await gw.call("POST", "/api/v1/shifts/start", "op1")
    assert r.status_code == 200 and r.json()["current"]["operator"] == "op1"
    r = await gw.call("POST", "/api/v1/shifts/start", "op2")
    assert r.status_code == 409 and "reason" in r.json()["detail"]
    await gw.trap()
    r = await gw.call("POST", "/api/v1/shifts/handover", "op1", json={"alarm_ids": []})
    assert r.status_code == 409 and "trapped:lift-1" in r.json()["detail"]
    r = await gw.call("POST", "/api/v1/shifts/handover", "op1",
                      json={"alarm_ids": ["trapped:lift-1"], "note": "lift 1 trapped, 119 called"})
    assert r.status_code == 200
    pending = r.json()["pending"]
    r = await gw.call("POST", f"/api/v1/shifts/handover/{pending['id']}/accept", "op1")
    assert r.status_code == 403
    r = await gw.call("POST", f"/api/v1/shifts/handover/{pending['id']}/accept", "op2",
                      json={"note": "taken"})
    assert r.status_code == 200 and r.json()["current"]["operator"] == "op2"
    hist = (await gw.call("GET", "/api/v1/shifts/history", "guard")).json()
    assert [(h["from_operator"], h["accepted_by"], h["alarms"]) for h in hist] == [
        ("op1", "op2", ["trapped:lift-1"])]
    entries = gw.runtime.state.journal_sync(0, 100)
    assert [e.type for e in entries if e.type.startswith("estate.shift.")] == [
        "estate.shift.started", "estate.shift.handover_offered",
        "estate.shift.handover_accepted"]
    again = make_runtime(tmp_path)
    try:
        app = create_app(again)
        assert app.state.shifts.state.current.operator == "op2"
        assert app.state.shifts.state.history[0].accepted_by == "op2"
    finally:
        again.close()
