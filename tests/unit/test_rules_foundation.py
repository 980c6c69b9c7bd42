"""Threshold with on-delay and hysteresis, event match, and the alarm book, on a fake clock."""

from __future__ import annotations

from gateway.clock import FakeClock
from gateway.types import AlarmState, Device, DeviceKind, Event, Location, Reading
from rules.alarms import AlarmBook
from rules.config import RuleConfig
from rules.engine import RuleEngine

TANK = Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native")
LIFT = Device("lift-1", DeviceKind.ELEVATOR, Location("B1"), "mqtt", "native")
LOW = RuleConfig.model_validate({
    "id": "low", "select": {"kind": "water_tank"}, "priority": "high",
    "when": {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25,
             "for_s": 60}})
TRAPPED = RuleConfig.model_validate({
    "id": "trapped", "select": {"kind": "elevator"}, "priority": "emergency", "latch": True,
    "when": {"type": "event", "event": "elevator.entrapment", "auto_clear_s": 300}})


def level(v: float, at: float) -> Reading:
    return Reading("tank-1", "level_pct", v, at)


def test_threshold_on_delay_fires_after_for_s_not_before(clock: FakeClock) -> None:
    eng = RuleEngine([LOW], [TANK])
    assert eng.evaluate([level(15, clock.now())], clock.now()) == []
    clock.advance(59)
    assert eng.tick(clock.now()) == []
    clock.advance(1)
    (d,) = eng.tick(clock.now())
    assert (d.action, d.rule_id, d.device_id) == ("raise", "low", "tank-1")


def test_threshold_on_delay_resets_when_level_recovers(clock: FakeClock) -> None:
    eng = RuleEngine([LOW], [TANK])
    eng.evaluate([level(15, clock.now())], clock.now())
    clock.advance(30)
    eng.evaluate([level(21, clock.now())], clock.now())
    clock.advance(40)
    assert eng.tick(clock.now()) == []


def test_threshold_hysteresis_needs_clear_level(clock: FakeClock) -> None:
    eng = RuleEngine([LOW.model_copy(update={"when": LOW.when.model_copy(update={"for_s": 0})})],
                     [TANK])
    assert [d.action for d in eng.evaluate([level(19, 0)], clock.now())] == ["raise"]
    assert eng.evaluate([level(22, 0)], clock.now()) == []
    assert eng.evaluate([level(19.5, 0)], clock.now()) == []
    assert [d.action for d in eng.evaluate([level(25, 0)], clock.now())] == ["clear"]


def test_pending_timer_survives_snapshot_restore(clock: FakeClock) -> None:
    """A 60 s on-delay that ran 42 s before a restart fires 18 s after it, not 60."""
    eng = RuleEngine([LOW], [TANK])
    eng.evaluate([level(10, clock.now())], clock.now())
    clock.advance(42)
    snap = eng.snapshot()
    fresh = RuleEngine([LOW], [TANK])
    fresh.restore(snap)
    clock.advance(17)
    assert fresh.tick(clock.now()) == []
    clock.advance(1)
    assert [d.action for d in fresh.tick(clock.now())] == ["raise"]


def test_alarm_book_lifecycle_threshold(clock: FakeClock) -> None:
    eng = RuleEngine([LOW.model_copy(update={"when": LOW.when.model_copy(update={"for_s": 0})})],
                     [TANK])
    book = AlarmBook()
    (d,) = eng.evaluate([level(10, 0)], clock.now())
    alarm, t = book.apply(d)
    assert (alarm.state, t.from_state, t.by) == (AlarmState.ACTIVE_UNACK, AlarmState.NORMAL,
                                                 "system")
    clock.advance(5)
    alarm, _ = book.acknowledge(alarm.alarm_id, "op-li", clock.now())
    assert (alarm.state, alarm.acked_by) == (AlarmState.ACTIVE_ACK, "op-li")
    (d,) = eng.evaluate([level(30, 0)], clock.now())
    alarm, _ = book.apply(d)
    assert alarm.state == AlarmState.NORMAL


def test_latched_event_alarm_needs_reset_after_clear(clock: FakeClock) -> None:
    eng = RuleEngine([TRAPPED], [LIFT])
    book = AlarmBook()
    (d,) = eng.evaluate([Event("lift-1", "elevator.entrapment", 0, "e1")], clock.now())
    alarm, _ = book.apply(d)
    assert alarm.state == AlarmState.ACTIVE_UNACK and alarm.latching
    clock.advance(300)
    (d,) = eng.tick(clock.now())
    alarm, _ = book.apply(d)
    assert alarm.state == AlarmState.LATCHED
    alarm, _ = book.acknowledge(alarm.alarm_id, "op", clock.now())
    assert alarm.state == AlarmState.LATCHED
    alarm, t = book.reset(alarm.alarm_id, "engineer-wang", clock.now(), "car inspected")
    assert (alarm.state, t.reason) == (AlarmState.NORMAL, "car inspected")


def test_shelve_expires_back_to_active(clock: FakeClock) -> None:
    eng = RuleEngine([TRAPPED], [LIFT])
    book = AlarmBook()
    (d,) = eng.evaluate([Event("lift-1", "elevator.entrapment", 0, "e1")], clock.now())
    alarm, _ = book.apply(d)
    alarm, _ = book.shelve(alarm.alarm_id, "op", clock.now(), clock.now() + 600, "tech on site")
    assert alarm.state == AlarmState.SHELVED
    clock.advance(599)
    assert book.expire_shelves(clock.now()) == []
    clock.advance(1)
    ((alarm, t),) = book.expire_shelves(clock.now())
    assert (alarm.state, t.reason) == (AlarmState.ACTIVE_UNACK, "shelve expired")
