"""Login limits, user management, audit, CORS and commands through the real ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api.app import create_app
from gateway.clock import FakeClock
from gateway.metrics import render_metrics
from gateway.runtime import Runtime
from gateway.types import Command, CommandResult, Priority
from rules.engine import Decision
from tests.support.runtime import runtime

PASSWORD = "correct horse battery"
COMMANDS = {"devices": {"barrier-1": {"actions": ["open"], "roles": ["operator"]}}}


@pytest.fixture
def rt(tmp_path: Path, clock: FakeClock) -> Iterator[Runtime]:
    with runtime(tmp_path, clock=clock, commands=COMMANDS,
                 api={"auth": {"login_max_failures": 3, "login_lockout_s": 300}}) as r:
        r.auth.add_user("root", "admin", PASSWORD)
        r.auth.add_user("olga", "operator", PASSWORD)
        yield r


async def _client(rt: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt)),
                             base_url="http://gw")


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(rt) as c:
        yield c


async def login(client: httpx.AsyncClient, user: str, password: str = PASSWORD
                ) -> dict[str, str]:
    r = await client.post("/api/v1/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def audit(client: httpx.AsyncClient, admin: dict[str, str], **params: Any
                ) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/audit", headers=admin, params=params)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def metric(rt: Runtime, line_start: str) -> float:
    text = render_metrics(rt)[0].decode()
    [line] = [ln for ln in text.splitlines() if ln.startswith(line_start + " ")]
    return float(line.split()[-1])


async def test_login_lockout_is_counted_logged_audited_and_expires(
        rt: Runtime, client: httpx.AsyncClient, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        r = await client.post("/api/v1/login", json={"username": "olga", "password": "guess"})
        assert r.status_code == 401
    # locked: even the right password is not checked now
    r = await client.post("/api/v1/login", json={"username": "olga", "password": PASSWORD})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "300"
    assert "login lockout" in caplog.text
    assert metric(rt, "gateway_login_failures_total") == 3
    assert metric(rt, "gateway_login_lockouts_total") == 2  # the user and the address
    clock.advance(300)
    admin = await login(client, "root")
    rows = await audit(client, admin)
    assert [(e["action"], e["actor"], e["outcome"]) for e in rows] == [
        ("auth.login", "root", "ok"),
        ("auth.lockout", "olga", "denied"),
        ("auth.lockout", "olga", "denied"),
        ("auth.login_failed", "olga", "denied"),
        ("auth.login_failed", "olga", "denied"),
        ("auth.login_failed", "olga", "denied"),
    ]
    assert {e["target"] for e in rows if e["action"] == "auth.lockout"} == {
        "user:olga", "addr:127.0.0.1"}
    assert all(e["client"] == "127.0.0.1" for e in rows)
    journal = rt.state.journal_sync(0, 100)
    assert [e.type for e in journal].count("estate.audit.auth.login_failed") == 3


async def test_admin_manages_users_and_a_disabled_user_is_out_at_once(
        rt: Runtime, client: httpx.AsyncClient) -> None:
    admin = await login(client, "root")
    olga = await login(client, "olga")
    r = await client.post("/api/v1/users", headers=admin,
                          json={"name": "vic", "role": "viewer", "password": PASSWORD})
    assert r.status_code == 201 and r.json()["role"] == "viewer"
    r = await client.post("/api/v1/users", headers=admin,
                          json={"name": "vic", "role": "admin", "password": PASSWORD})
    assert r.status_code == 409
    assert (await client.post("/api/v1/users", headers=olga, json={
        "name": "x", "role": "admin", "password": PASSWORD})).status_code == 403
    r = await client.post("/api/v1/users/olga/disable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert (await client.get("/api/v1/alarms", headers=olga)).status_code == 401
    assert (await client.post("/api/v1/users/root/disable", headers=admin)).status_code == 409
    assert (await client.post("/api/v1/users/nobody/disable", headers=admin)).status_code == 404
    users = (await client.get("/api/v1/users", headers=admin)).json()
    assert [(u["name"], u["role"], u["disabled"]) for u in users] == [
        ("olga", "operator", True), ("root", "admin", False), ("vic", "viewer", False)]
    rows = await audit(client, admin, actor="root")
    assert [(e["action"], e["target"]) for e in rows][:2] == [("user.disable", "olga"),
                                                              ("user.add", "vic")]


async def test_alarm_actions_are_audited_in_the_same_transaction(
        rt: Runtime, client: httpx.AsyncClient, clock: FakeClock) -> None:
    change = rt.book.apply(Decision("raise", "tank-low", "tank-1", clock.now(), Priority.HIGH,
                                    "low", False, 10.0))
    assert change is not None
    await rt.operator_change(change)
    olga = await login(client, "olga")
    r = await client.post("/api/v1/alarms/tank-low:tank-1/ack", headers=olga,
                          json={"note": "on my way"})
    assert r.status_code == 200
    r = await client.post("/api/v1/alarms/tank-low:tank-1/shelve", headers=olga,
                          json={"reason": "sensor being replaced", "minutes": 30})
    assert r.status_code == 200
    admin = await login(client, "root")
    rows = await audit(client, admin, actor="olga")
    assert [(e["action"], e["target"], e["detail"]["to"]) for e in rows
            if e["action"].startswith("alarm.")] == [
        ("alarm.shelve", "tank-low:tank-1", "shelved"),
        ("alarm.acknowledge", "tank-low:tank-1", "active_acknowledged")]
    types = [e.type for e in rt.state.journal_sync(0, 100)]
    ack = types.index("estate.audit.alarm.acknowledge")
    assert types[ack - 1] == "estate.alarm.transition"  # same transaction, adjacent rows


class RecordingDriver:
    id = "mqtt"

    def __init__(self) -> None:
        self.commands: list[Command] = []

    async def run(self) -> None:
        pass

    async def execute(self, command: Command) -> CommandResult:
        self.commands.append(command)
        return CommandResult(command.command_id, ok=True, detail="published")


async def test_command_route_authorises_limits_and_records_the_result(
        rt: Runtime, client: httpx.AsyncClient) -> None:
    driver = RecordingDriver()
    rt.command_drivers["barrier-1"] = driver
    olga = await login(client, "olga")
    r = await client.get("/api/v1/devices/barrier-1/commands", headers=olga)
    assert r.json() == {"device_id": "barrier-1", "actions": ["open"]}
    r = await client.post("/api/v1/devices/barrier-1/commands", headers=olga,
                          json={"action": "open", "args": {"seconds": 5}})
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["outcome"] == "ok"
    assert driver.commands[0].requested_by == "olga"
    assert (await client.post("/api/v1/devices/door-1/commands", headers=olga,
                              json={"action": "release"})).status_code == 403
    assert (await client.post("/api/v1/devices/nope/commands", headers=olga,
                              json={"action": "open"})).status_code == 404
    for _ in range(5):  # default: 6 per device per minute
        await client.post("/api/v1/devices/barrier-1/commands", headers=olga,
                          json={"action": "open"})
    r = await client.post("/api/v1/devices/barrier-1/commands", headers=olga,
                          json={"action": "open"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert len(driver.commands) == 6
    assert metric(rt, 'gateway_commands_total{result="ok"}') == 6
    assert metric(rt, 'gateway_commands_total{result="rate_limited"}') == 1
    assert metric(rt, 'gateway_commands_total{result="denied"}') == 2
    admin = await login(client, "root")
    rows = await audit(client, admin, action="device.command")
    assert rows[-1]["detail"]["result"] == {"ok": True, "detail": "published"}
    assert [e["outcome"] for e in rows].count("denied") == 3


async def test_cors_is_closed_by_default(client: httpx.AsyncClient) -> None:
    r = await client.options("/api/v1/alarms", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers
    r = await client.get("/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_cors_allow_list_admits_only_listed_origins(tmp_path: Path) -> None:
    with runtime(tmp_path, api={"cors_allow_origins": ["https://console.estate.lan"]}) as rt:
        async with await _client(rt) as c:
            ok = await c.options("/api/v1/alarms", headers={
                "Origin": "https://console.estate.lan", "Access-Control-Request-Method": "GET"})
            assert ok.headers["access-control-allow-origin"] == "https://console.estate.lan"
            bad = await c.options("/api/v1/alarms", headers={
                "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
            assert "access-control-allow-origin" not in bad.headers
