"""The ISA-18.2 lifecycle through the whole pipeline on a fake clock (no sleeps)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.clock import FakeClock
from gateway.types import (
    AlarmState,
    Device,
    DeviceKind,
    DeviceStatus,
    Event,
    Location,
    Priority,
    Reading,
)
from rules.alarms import AlarmActionError
from rules.config import AlarmHandlingConfig, RuleConfig
from rules.mute import Maintenance
from rules.pipeline import AlarmPipeline

S = AlarmState
LIFT = Device("lift-1", DeviceKind.ELEVATOR, Location("B1"), "mqtt", "native")
TANK = Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native")
DOORS = [Device(f"door-{i}", DeviceKind.ACCESS_GATE, Location("B3"), "mqtt", "native")
         for i in range(40)]
POWER = Device("power-b3", DeviceKind.GENERIC, Location("B3"), "mqtt", "native")


def rule(rid: str, when: dict[str, Any], **extra: Any) -> RuleConfig:
    return RuleConfig.model_validate({"id": rid, "when": when, **extra})


LOW = rule("low", {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25})
FAULT = rule("overspeed", {"type": "event", "event": "elevator.overspeed", "auto_clear_s": 60},
             priority="high", suppress_when={"metric": "mode", "in": ["inspection"]})
TRAPPED = rule("trapped", {"type": "event", "event": "elevator.entrapment"},
               priority="emergency", latch=True, suppressible=False)


def ev(device: str, kind: str, n: int = 0) -> Event:
    return Event(device, kind, 0, f"{device}-{kind}-{n}")


def level(v: float) -> Reading:
    return Reading("tank-1", "level_pct", v, 0)


def states(p: AlarmPipeline) -> dict[str, str]:
    return {a: x.state.value for a, x in p.book.alarms.items()}


def test_every_transition_of_a_threshold_alarm(clock: FakeClock) -> None:
    p = AlarmPipeline([LOW], [TANK])
    out = p.observe([level(10)], clock.now())
    ((alarm, t),) = out.changes
    assert (t.from_state, t.to_state, alarm.count) == (S.NORMAL, S.ACTIVE_UNACK, 1)
    clock.advance(5)
    assert p.observe([level(30)], clock.now()).changes[0][0].state == S.RTN_UNACK
    alarm, t = p.book.acknowledge(alarm.alarm_id, "op-li", clock.now())
    assert (t.from_state, t.to_state, t.by) == (S.RTN_UNACK, S.NORMAL, "op-li")
    p.observe([level(10)], clock.now())
    assert p.book.alarms["low:tank-1"].count == 2  # one alarm per (rule, device), counted
    p.book.acknowledge("low:tank-1", "op", clock.now())
    assert states(p) == {"low:tank-1": "active_acknowledged"}
    out = p.observe([level(30)], clock.now())
    assert out.changes[0][1].to_state == S.NORMAL
    with pytest.raises(AlarmActionError, match="nothing to acknowledge"):
        p.book.acknowledge("low:tank-1", "op", clock.now())


def test_latched_needs_reset_and_is_never_suppressed(clock: FakeClock) -> None:
    p = AlarmPipeline([TRAPPED], [LIFT])
    p.maintenance.devices["lift-1"] = Maintenance("lift-1", "eng", 0, "annual inspection")
    p.observe([ev("lift-1", "elevator.entrapment")], clock.now())
    assert states(p) == {"trapped:lift-1": "active_unacknowledged"}
    p.observe([ev("lift-1", "elevator.entrapment", 2)], clock.now())
    assert p.book.alarms["trapped:lift-1"].count == 2  # a repeat occurrence is counted
    with pytest.raises(AlarmActionError, match="not latched"):
        p.book.reset("trapped:lift-1", "eng", clock.now())


def test_inspection_mode_suppresses_fault_by_design_then_releases(clock: FakeClock) -> None:
    p = AlarmPipeline([FAULT], [LIFT])
    p.observe([Reading("lift-1", "mode", "inspection", 0)], clock.now())
    out = p.observe([ev("lift-1", "elevator.overspeed")], clock.now())
    ((alarm, t),) = out.changes
    assert (t.to_state, alarm.suppressed_by) == (S.SUPPRESSED, "mode = inspection")
    assert out.notifications == []
    clock.advance(10)
    out = p.observe([Reading("lift-1", "mode", "normal", 0)], clock.now())
    ((alarm, t),) = out.changes
    assert (t.from_state, t.to_state, t.reason) == (S.SUPPRESSED, S.ACTIVE_UNACK,
                                                    "suppression ended")
    # an active alarm becomes suppressed when the mode goes back to inspection
    out = p.observe([Reading("lift-1", "mode", "inspection", 0)], clock.now())
    assert out.changes[0][1].to_state == S.SUPPRESSED
    clock.advance(60)  # the condition clears while suppressed: back to normal, unannounced
    out = p.tick(clock.now())
    assert [t.to_state for _, t in out.changes] == [S.NORMAL]


def test_maintenance_suppresses_and_releases(clock: FakeClock) -> None:
    p = AlarmPipeline([LOW], [TANK])
    p.observe([level(10)], clock.now())
    out = p.set_maintenance("tank-1", Maintenance("tank-1", "eng-wang", clock.now(),
                                                  "cleaning", clock.now() + 600), clock.now())
    ((alarm, t),) = out.changes
    assert t.to_state == S.SUPPRESSED and "eng-wang" in (alarm.suppressed_by or "")
    clock.advance(600)  # the maintenance window ends by itself
    out = p.tick(clock.now())
    assert [t.to_state for _, t in out.changes] == [S.ACTIVE_UNACK]
    assert "tank-1" not in p.maintenance.devices


def test_power_failure_inhibits_forty_doors_offline(clock: FakeClock) -> None:
    power = rule("power-failure", {"type": "state", "metric": "power_ok", "in": [False]},
                 select={"devices": ["power-b3"]}, priority="high")
    offline = rule("offline", {"type": "absence", "for_s": 300},
                   select={"kind": "access_gate"}, priority="low",
                   inhibited_by=[{"rule": "power-failure", "equal": "building"}])
    p = AlarmPipeline([power, offline], [*DOORS, POWER])
    p.observe([Reading("power-b3", "power_ok", True, 0)], clock.now())
    batch = [Reading("power-b3", "power_ok", False, 0),
             *(DeviceStatus(d.id, False, 0) for d in DOORS)]
    out = p.observe(batch, clock.now())
    by_state: dict[S, int] = {}
    for alarm in p.book.alarms.values():
        by_state[alarm.state] = by_state.get(alarm.state, 0) + 1
    assert by_state == {S.ACTIVE_UNACK: 1, S.SUPPRESSED: 40}
    assert all(a.suppressed_by == "inhibited by power-failure:power-b3"
               for a in p.book.alarms.values() if a.rule_id == "offline")
    clock.advance(10)
    out = p.tick(clock.now())  # group wait: one notification, for the root cause only
    assert [n.alarm_ids for n in out.notifications] == [("power-failure:power-b3",)]
    # power back, doors still offline: the doors' alarms now annunciate, as one notification
    p.observe([Reading("power-b3", "power_ok", True, 0)], clock.now())
    clock.advance(10)
    out = p.tick(clock.now())
    assert [len(n.alarm_ids) for n in out.notifications] == [40]


def test_out_of_service_ignores_the_condition(clock: FakeClock) -> None:
    p = AlarmPipeline([LOW], [TANK])
    p.observe([level(10)], clock.now())
    alarm, t = p.book.remove_from_service("low:tank-1", "eng", clock.now(), "sensor replaced")
    assert t.to_state == S.OUT_OF_SERVICE
    p.observe([level(30)], clock.now())
    p.observe([level(10)], clock.now())
    assert states(p) == {"low:tank-1": "out_of_service"}
    alarm, t = p.book.return_to_service("low:tank-1", "eng", clock.now())
    assert (t.from_state, t.to_state, t.by) == (S.OUT_OF_SERVICE, S.ACTIVE_UNACK, "eng")


def test_realarm_and_escalation_while_unacknowledged(clock: FakeClock) -> None:
    r = rule("low", LOW.when.model_dump(), priority="medium", realarm_s=600, escalate=[
        {"after_s": 300, "group": "duty-officer"},
        {"after_s": 900, "priority": "emergency"}])
    p = AlarmPipeline([r], [TANK])
    p.observe([level(10)], clock.now())
    clock.advance(299)
    assert p.tick(clock.now()).changes == []
    clock.advance(1)
    ((alarm, t),) = p.tick(clock.now()).changes
    assert (alarm.group, alarm.priority, alarm.escalation) == ("duty-officer", Priority.MEDIUM, 1)
    assert t.reason.startswith("escalated after 300 s")
    clock.advance(599)
    assert p.tick(clock.now()).changes == []  # re-alarm counts from the last annunciation
    clock.advance(1)
    out = p.tick(clock.now())
    reasons = [t.reason.split(":")[0] for _, t in out.changes]
    assert reasons == ["escalated after 900 s unacknowledged", "re-alarm"] or \
        reasons == ["escalated after 900 s unacknowledged"]
    assert p.book.alarms["low:tank-1"].priority == Priority.EMERGENCY
    p.book.acknowledge("low:tank-1", "op", clock.now())
    clock.advance(3600)
    assert p.tick(clock.now()).changes == []  # acknowledged: no more re-alarms


def test_realarm_repeats_every_interval(clock: FakeClock) -> None:
    r = rule("low", LOW.when.model_dump(), realarm_s=600)
    p = AlarmPipeline([r], [TANK])
    p.observe([level(10)], clock.now())
    seen = []
    for _ in range(4):
        clock.advance(300)
        seen += [t.reason for _, t in p.tick(clock.now()).changes]
    assert seen == ["re-alarm: still active and unacknowledged after 600 s"] * 2


def test_shelve_unshelve_and_comment(clock: FakeClock) -> None:
    p = AlarmPipeline([LOW], [TANK])
    p.observe([level(10)], clock.now())
    alarm, t = p.book.comment("low:tank-1", "op-li", clock.now(), "called the plumber")
    assert (t.from_state, t.to_state, t.reason) == (S.ACTIVE_UNACK, S.ACTIVE_UNACK,
                                                    "comment: called the plumber")
    p.book.shelve("low:tank-1", "op", clock.now(), clock.now() + 60, "sensor drift")
    p.observe([level(30)], clock.now())
    assert states(p) == {"low:tank-1": "shelved"}
    alarm, t = p.book.unshelve("low:tank-1", "op", clock.now())
    assert t.to_state == S.NORMAL  # the condition cleared meanwhile


def test_grouping_dedup_and_flood(clock: FakeClock) -> None:
    offline = rule("offline", {"type": "absence", "for_s": 60}, select={"kind": "access_gate"})
    p = AlarmPipeline([offline], DOORS, handling=AlarmHandlingConfig(group_wait_s=5))
    out = p.observe([DeviceStatus(d.id, False, 0) for d in DOORS], clock.now())
    assert out.notifications == []  # held for the group wait
    assert [(f.position, f.started) for f in out.floods] == [("console", True)]
    clock.advance(5)
    out = p.tick(clock.now())
    ((note,),) = [out.notifications]
    assert (len(note.alarm_ids), note.flood) == (40, True)
    # chatter: back online and offline again within the repeat interval → not re-notified
    p.observe([DeviceStatus("door-0", True, 0)], clock.now())
    p.book.acknowledge("offline:door-0", "op", clock.now())
    p.observe([DeviceStatus("door-0", False, 0)], clock.now())
    clock.advance(5)
    assert p.tick(clock.now()).notifications == []
    clock.advance(600)
    out = p.tick(clock.now())
    assert [(f.position, f.started) for f in out.floods] == [("console", False)]
    kpi = p.kpis(clock.now())
    assert (kpi["floods_total"], kpi["activations_24h"], kpi["flooding_positions"]) == (
        1, 41, [])


def test_kpi_chattering_and_standing(clock: FakeClock) -> None:
    p = AlarmPipeline([LOW], [TANK])
    for _ in range(3):
        p.observe([level(10)], clock.now())
        p.observe([level(30)], clock.now())
        p.book.acknowledge("low:tank-1", "op", clock.now())
        clock.advance(15)
    kpi = p.kpis(clock.now())
    assert kpi["chattering"] == ["low:tank-1"]
    assert kpi["top10"] == [{"alarm_id": "low:tank-1", "activations_24h": 3}]
    p.observe([level(10)], clock.now())
    clock.advance(86_401)
    kpi = p.kpis(clock.now())
    assert (kpi["standing"], kpi["chattering"]) == (["low:tank-1"], [])


def test_pipeline_snapshot_survives_restart(clock: FakeClock) -> None:
    r = rule("low", LOW.when.model_dump() | {"for_s": 600})
    p = AlarmPipeline([r], [TANK], handling=AlarmHandlingConfig(group_wait_s=30))
    p.observe([level(10)], clock.now())
    p.set_maintenance("tank-1", Maintenance("tank-1", "eng", 0, "x"), clock.now())
    clock.advance(420)
    snap = p.snapshot()
    q = AlarmPipeline([r], [TANK], p.book.alarms.values(),
                      handling=AlarmHandlingConfig(group_wait_s=30))
    q.restore(snap)
    assert "tank-1" in q.maintenance.devices
    q.set_maintenance("tank-1", None, clock.now())
    clock.advance(179)
    assert q.tick(clock.now()).changes == []
    clock.advance(1)
    assert [t.to_state for _, t in q.tick(clock.now()).changes] == [S.ACTIVE_UNACK]


def test_persist_writes_only_changed_instances_and_restores_from_rows(clock: FakeClock) -> None:
    r = rule("low", LOW.when.model_dump() | {"for_s": 600})
    p = AlarmPipeline([r], [TANK, Device("tank-2", DeviceKind.WATER_TANK, Location("B2"),
                                         "mqtt", "native")])
    p.observe([level(50), Reading("tank-2", "level_pct", 60.0, 0)], clock.now())
    rows: dict[str, Any] = {}
    rows.update(p.persist(meta_key="meta", instance_prefix="i:"))
    p.observe([level(55)], clock.now())  # crosses nothing: nothing to write
    assert p.persist(meta_key="meta", instance_prefix="i:") == {}
    p.observe([level(10)], clock.now())  # the on-delay starts: that instance only
    delta = p.persist(meta_key="meta", instance_prefix="i:")
    assert list(delta) == ["i:low|tank-1"]
    rows.update(delta)
    clock.advance(400)
    q = AlarmPipeline([r], list(p.devices.values()))
    q.restore(rows.get("meta"), {k.removeprefix("i:"): v for k, v in rows.items()
                                 if k.startswith("i:")})
    clock.advance(199)
    assert q.tick(clock.now()).changes == []
    clock.advance(1)
    assert [t.to_state for _, t in q.tick(clock.now()).changes] == [S.ACTIVE_UNACK]
