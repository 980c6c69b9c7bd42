"""The command path: who may send what to which device, rate limits, and the audit row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.commands import CommandService
from gateway.errors import CommandDenied, CommandRejected
from gateway.policy import CommandsConfig
from gateway.store.state import StateStore
from gateway.types import Command, CommandResult, Device, DeviceKind, Location


class RecordingDriver:
    """Records commands; answers with ``result`` or raises ``error``."""

    id = "fake"

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.error: Exception | None = None

    async def run(self) -> None:
        pass

    async def execute(self, command: Command) -> CommandResult:
        self.commands.append(command)
        if self.error is not None:
            raise self.error
        return CommandResult(command.command_id, ok=True, detail="done")


DEVICES = {
    "barrier-1": Device("barrier-1", DeviceKind.PARKING_BARRIER, Location("P1"), "mqtt", "native"),
    "door-1": Device("door-1", DeviceKind.ACCESS_GATE, Location("B1"), "mqtt", "native"),
    "pump-1": Device("pump-1", DeviceKind.WATER_TANK, Location("B1"), "modbus", "native"),
}
CONFIG = CommandsConfig.model_validate({
    "per_device": {"count": 2, "per_s": 60},
    "per_user": {"count": 3, "per_s": 60},
    "rules_enabled": True,
    "devices": {
        "barrier-1": {"actions": ["open", "close"], "roles": ["operator"],
                      "rule_actions": ["close"]},
        "door-1": {"actions": ["release"]},
        "pump-1": {"actions": ["start"], "roles": ["engineer"]},
    },
})


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def driver() -> RecordingDriver:
    return RecordingDriver()


@pytest.fixture
def service(state: StateStore, driver: RecordingDriver, clock: FakeClock) -> CommandService:
    return CommandService(CONFIG, DEVICES, {"barrier-1": driver, "door-1": driver},
                          state.apply, clock)


async def test_operator_opens_a_barrier_the_config_allows(
        service: CommandService, driver: RecordingDriver, state: StateStore) -> None:
    out = await service.issue(actor="ann", role="operator", device_id="barrier-1",
                              action="open", args={"seconds": 5}, client="10.0.0.5")
    assert (out.outcome, out.result.detail) == ("ok", "done")
    [sent] = driver.commands
    assert (sent.device_id, sent.action, sent.requested_by, dict(sent.args)) == (
        "barrier-1", "open", "ann", {"seconds": 5})
    [(_, row)] = state.audit_sync()
    assert {k: row[k] for k in ("actor", "action", "target", "outcome", "client")} == {
        "actor": "ann", "action": "device.command", "target": "barrier-1", "outcome": "ok",
        "client": "10.0.0.5"}
    assert row["detail"]["result"] == {"ok": True, "detail": "done"}
    assert row["detail"]["command_id"] == sent.command_id
    [entry] = state.journal_sync(0, 10)
    assert entry.type == "estate.audit.device.command"
    assert entry.event_id == row["audit_id"]


@pytest.mark.parametrize(("role", "device", "action", "reason"), [
    ("operator", "door-1", "release", "not_allowed"),  # only admins for this door
    ("engineer", "barrier-1", "open", "not_allowed"),  # roles list operators only
    ("admin", "barrier-1", "explode", "not_allowed"),  # not in the allow-list
    ("admin", "lift-9", "open", "unknown_device"),
    ("admin", "tank-1", "open", "unknown_device"),
])
async def test_refused_commands_never_reach_the_driver_and_are_audited(
        service: CommandService, driver: RecordingDriver, state: StateStore, role: str,
        device: str, action: str, reason: str) -> None:
    with pytest.raises(CommandDenied) as info:
        await service.issue(actor="x", role=role, device_id=device,  # type: ignore[arg-type]
                            action=action)
    assert info.value.reason == reason
    assert driver.commands == []
    [(_, row)] = state.audit_sync()
    assert (row["outcome"], row["detail"]["reason"]) == ("denied", reason)
    assert service.results["denied"] == 1


async def test_admin_may_send_any_listed_action(service: CommandService) -> None:
    out = await service.issue(actor="root", role="admin", device_id="door-1", action="release")
    assert out.result.ok


async def test_rate_limit_per_device_then_per_user(service: CommandService,
                                                   clock: FakeClock) -> None:
    for _ in range(2):
        await service.issue(actor="ann", role="operator", device_id="barrier-1", action="open")
    with pytest.raises(CommandDenied) as info:
        await service.issue(actor="bob", role="operator", device_id="barrier-1", action="close")
    assert (info.value.reason, info.value.retry_after_s) == ("rate_limited", 60)
    clock.advance(60)
    await service.issue(actor="ann", role="admin", device_id="barrier-1", action="open")
    await service.issue(actor="ann", role="admin", device_id="door-1", action="release")
    await service.issue(actor="ann", role="admin", device_id="barrier-1", action="close")
    with pytest.raises(CommandDenied, match="too many"):  # ann's fourth within 60 s
        await service.issue(actor="ann", role="admin", device_id="door-1", action="release")
    # the door itself is not limited: someone else may still release it
    await service.issue(actor="bob", role="admin", device_id="door-1", action="release")
    assert service.results == {"ok": 6, "rate_limited": 2}


async def test_driver_failure_is_recorded_as_failed(service: CommandService,
                                                    driver: RecordingDriver,
                                                    state: StateStore) -> None:
    driver.error = CommandRejected("mqtt", "broker refused", device_id="barrier-1")
    out = await service.issue(actor="ann", role="operator", device_id="barrier-1",
                              action="open")
    assert (out.outcome, out.result.ok) == ("failed", False)
    assert "broker refused" in out.result.detail
    [(_, row)] = state.audit_sync()
    assert row["outcome"] == "failed"
    assert row["detail"]["result"]["ok"] is False


async def test_device_without_a_running_driver_fails_not_crashes(
        service: CommandService) -> None:
    out = await service.issue(actor="eve", role="engineer", device_id="pump-1", action="start")
    assert out.outcome == "failed"
    assert "no modbus driver" in out.result.detail


async def test_rule_gate(service: CommandService, state: StateStore,
                         driver: RecordingDriver) -> None:
    assert service.rule_may_issue("lot-full", "barrier-1", "close")
    assert not service.rule_may_issue("lot-full", "barrier-1", "open")
    assert not service.rule_may_issue("lot-full", "door-1", "release")
    out = await service.issue_for_rule("lot-full", "barrier-1", "close")
    assert out.result.ok and driver.commands[0].requested_by == "rule:lot-full"
    with pytest.raises(CommandDenied, match="rules may not"):
        await service.issue_for_rule("lot-full", "barrier-1", "open")


async def test_rule_gate_is_off_unless_enabled(state: StateStore, driver: RecordingDriver,
                                               clock: FakeClock) -> None:
    cfg = CONFIG.model_copy(update={"rules_enabled": False})
    svc = CommandService(cfg, DEVICES, {"barrier-1": driver}, state.apply, clock)
    assert not svc.rule_may_issue("lot-full", "barrier-1", "close")


def test_allowed_actions_for_the_console(service: CommandService) -> None:
    assert service.allowed_actions("operator", "barrier-1") == ["open", "close"]
    assert service.allowed_actions("viewer", "barrier-1") == []
    assert service.allowed_actions("operator", "door-1") == []
    assert service.allowed_actions("admin", "door-1") == ["release"]
    assert service.allowed_actions("admin", "tank-1") == []
