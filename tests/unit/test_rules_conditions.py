"""Every condition type on a fake clock: count, absence, state, rate, schedule, all/any, building."""

from __future__ import annotations

from typing import Any

from gateway.clock import FakeClock
from gateway.types import Device, DeviceKind, DeviceStatus, Event, Location, Reading
from rules.config import RuleConfig
from rules.engine import RuleEngine

DOOR = Device("door-1", DeviceKind.ACCESS_GATE, Location("B1"), "mqtt", "native")
DOOR2 = Device("door-2", DeviceKind.ACCESS_GATE, Location("B1"), "mqtt", "native")
DOOR3 = Device("door-3", DeviceKind.ACCESS_GATE, Location("B2"), "mqtt", "native")
TANK = Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native")


def rule(when: dict[str, Any], **extra: Any) -> RuleConfig:
    return RuleConfig.model_validate({"id": "r", "when": when, **extra})


def ev(device: str, kind: str, at: float, **attrs: Any) -> Event:
    return Event(device, kind, at, f"{device}-{kind}-{at}", attrs)


def actions(decisions: list[Any]) -> list[tuple[str, str]]:
    return [(d.action, d.device_id) for d in decisions]


def test_count_in_window_five_denied_swipes_in_two_minutes(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "count", "event": "access.denied", "count": 5,
                            "within_s": 120}, select={"kind": "access_gate"})], [DOOR, DOOR2])
    for _ in range(4):
        assert eng.evaluate([ev("door-1", "access.denied", clock.now())], clock.now()) == []
        clock.advance(20)
    # another door's denials do not add up with door-1's
    assert eng.evaluate([ev("door-2", "access.denied", clock.now())], clock.now()) == []
    # the 5th at 80 s: within 120 s of the first
    assert actions(eng.evaluate([ev("door-1", "access.denied", clock.now())], clock.now())) \
        == [("raise", "door-1")]
    # the first one leaves the window at 120 s: fewer than 5 remain, cleared by the timer
    clock.advance(39)
    assert eng.tick(clock.now()) == []
    clock.advance(1)
    assert actions(eng.tick(clock.now())) == [("clear", "door-1")]


def test_count_with_attribute_filter_ignores_other_reasons(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "count", "event": "access.denied", "count": 2,
                            "within_s": 60, "match": {"reason": "expired"}})], [DOOR])
    eng.evaluate([ev("door-1", "access.denied", 0, reason="unknown_card")], clock.now())
    assert eng.evaluate([ev("door-1", "access.denied", 0, reason="expired")], clock.now()) == []
    assert actions(eng.evaluate([ev("door-1", "access.denied", 1, reason="expired")],
                                clock.now())) == [("raise", "door-1")]


def test_absence_raises_after_silence_and_clears_on_data(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "absence", "for_s": 300})], [TANK])
    eng.start(clock.now())
    clock.advance(299)
    assert eng.tick(clock.now()) == []
    clock.advance(1)
    assert actions(eng.tick(clock.now())) == [("raise", "tank-1")]
    assert actions(eng.evaluate([Reading("tank-1", "level_pct", 50.0, clock.now())],
                                clock.now())) == [("clear", "tank-1")]
    clock.advance(200)
    eng.evaluate([Reading("tank-1", "ph", 7.0, clock.now())], clock.now())  # any metric
    clock.advance(299)
    assert eng.tick(clock.now()) == []


def test_absence_offline_status_raises_at_once(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "absence", "for_s": 300})], [TANK])
    eng.start(clock.now())
    clock.advance(5)
    assert actions(eng.evaluate([DeviceStatus("tank-1", False, clock.now())], clock.now())) \
        == [("raise", "tank-1")]
    assert actions(eng.evaluate([DeviceStatus("tank-1", True, clock.now())], clock.now())) \
        == [("clear", "tank-1")]


def test_state_held_too_long_door_open(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "state", "metric": "door_state", "in": ["open", "held_open"],
                            "for_s": 60})], [DOOR])
    eng.evaluate([Reading("door-1", "door_state", "open", clock.now())], clock.now())
    clock.advance(30)
    eng.evaluate([Reading("door-1", "door_state", "held_open", clock.now())], clock.now())
    clock.advance(29)
    assert eng.tick(clock.now()) == []
    clock.advance(1)
    assert actions(eng.tick(clock.now())) == [("raise", "door-1")]
    assert actions(eng.evaluate([Reading("door-1", "door_state", "closed", clock.now())],
                                clock.now())) == [("clear", "door-1")]


def test_state_bool_is_not_a_number(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "state", "metric": "pump_fault", "in": [True]})], [TANK])
    assert eng.evaluate([Reading("tank-1", "pump_fault", 1, 0)], clock.now()) == []
    assert actions(eng.evaluate([Reading("tank-1", "pump_fault", True, 0)], clock.now())) \
        == [("raise", "tank-1")]


def test_rate_of_change_tank_draining(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "rate", "metric": "level_pct", "falling_per_min": 5,
                            "window_s": 60, "off_delay_s": 30})], [TANK])

    def step(level: float) -> list[tuple[str, str]]:
        out = actions(eng.evaluate([Reading("tank-1", "level_pct", level, 0)], clock.now()))
        clock.advance(30)
        return out

    assert [step(v) for v in (80, 79.5, 79)] == [[], [], []]  # 1 %/min
    assert step(76) == [("raise", "tank-1")]  # 3 % in 30 s: 6 %/min
    assert step(76) == []  # steady, but the off-delay holds the alarm
    assert step(76) == [("clear", "tank-1")]


def test_rate_needs_half_a_window_of_samples(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "rate", "metric": "level_pct", "falling_per_min": 5,
                            "window_s": 120})], [TANK])
    eng.evaluate([Reading("tank-1", "level_pct", 80, 0)], clock.now())
    clock.advance(10)
    assert eng.evaluate([Reading("tank-1", "level_pct", 70, 0)], clock.now()) == []


def test_deadband_is_distance_to_clear_level(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "threshold", "metric": "level_pct", "above": 90,
                            "deadband": 5})], [TANK])
    assert actions(eng.evaluate([Reading("tank-1", "level_pct", 91, 0)], 0)) == [
        ("raise", "tank-1")]
    assert eng.evaluate([Reading("tank-1", "level_pct", 86, 0)], 0) == []
    assert actions(eng.evaluate([Reading("tank-1", "level_pct", 85, 0)], 0)) == [
        ("clear", "tank-1")]


def test_during_night_hours_in_site_timezone(clock: FakeClock) -> None:
    # clock starts 2026-01-01T00:00Z = 08:00 in Shanghai (a Thursday)
    r = rule({"type": "event", "event": "door.remote_open"},
             during=[{"start": "22:00", "end": "06:00"}])
    eng = RuleEngine([r], [DOOR], timezone="Asia/Shanghai")
    assert eng.evaluate([ev("door-1", "door.remote_open", 0)], clock.now()) == []
    # the event condition stays asserted (no auto-clear): at 22:00 local the rule fires
    clock.advance(14 * 3600 - 1)
    assert eng.tick(clock.now()) == []
    clock.advance(1)
    assert actions(eng.tick(clock.now())) == [("raise", "door-1")]
    clock.advance(8 * 3600)  # 06:00 local: out of the window
    assert actions(eng.tick(clock.now())) == [("clear", "door-1")]


def test_schedule_working_days_service_hours(clock: FakeClock) -> None:
    from zoneinfo import ZoneInfo

    from rules.conditions import in_windows
    from rules.config import TimeWindow

    w = [TimeWindow(working_days=True, start="08:00", end="18:00", holidays=["2026-01-02"])]
    tz = ZoneInfo("Asia/Shanghai")
    thu_0800 = clock.now()  # Thursday 08:00 local
    assert in_windows(w, thu_0800, tz)
    assert not in_windows(w, thu_0800 - 1, tz)
    assert not in_windows(w, thu_0800 + 10 * 3600, tz)  # 18:00
    assert not in_windows(w, thu_0800 + 86_400, tz)  # Friday, a holiday
    assert not in_windows(w, thu_0800 + 2 * 86_400, tz)  # Saturday
    assert in_windows(w, thu_0800 + 4 * 86_400 + 3600, tz)  # Monday 09:00


def test_all_and_any_combine_with_own_delay(clock: FakeClock) -> None:
    r = rule({"type": "all", "for_s": 10, "conditions": [
        {"type": "threshold", "metric": "level_pct", "below": 20},
        {"type": "state", "metric": "pump_running", "in": [False]}]})
    eng = RuleEngine([r], [TANK])
    eng.evaluate([Reading("tank-1", "level_pct", 10, 0)], clock.now())
    clock.advance(20)
    assert eng.tick(clock.now()) == []  # pump state unknown: not all true
    eng.evaluate([Reading("tank-1", "pump_running", False, 0)], clock.now())
    clock.advance(10)
    assert actions(eng.tick(clock.now())) == [("raise", "tank-1")]
    r2 = rule({"type": "any", "conditions": [
        {"type": "threshold", "metric": "ph", "below": 6.5},
        {"type": "threshold", "metric": "ph", "above": 8.5}]})
    eng2 = RuleEngine([r2], [TANK])
    assert actions(eng2.evaluate([Reading("tank-1", "ph", 9.0, 0)], 0)) == [("raise", "tank-1")]
    assert actions(eng2.evaluate([Reading("tank-1", "ph", 7.0, 0)], 0)) == [("clear", "tank-1")]
    assert actions(eng2.evaluate([Reading("tank-1", "ph", 6.0, 0)], 0)) == [("raise", "tank-1")]


def test_per_building_needs_min_devices(clock: FakeClock) -> None:
    r = rule({"type": "absence", "for_s": 60}, select={"kind": "access_gate"}, per="building",
             min_devices=2)
    eng = RuleEngine([r], [DOOR, DOOR2, DOOR3])
    eng.start(clock.now())
    out = eng.evaluate([DeviceStatus("door-1", False, clock.now()),
                        DeviceStatus("door-3", False, clock.now())], clock.now())
    assert out == []  # one door per building
    out = eng.evaluate([DeviceStatus("door-2", False, clock.now())], clock.now())
    assert actions(out) == [("raise", "building:B1")]
    assert out[0].value == 2
    out = eng.evaluate([DeviceStatus("door-2", True, clock.now())], clock.now())
    assert actions(out) == [("clear", "building:B1")]


def test_event_repeats_are_raise_decisions_marked_repeat(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "event", "event": "door.forced_open"})], [DOOR])
    (first,) = eng.evaluate([ev("door-1", "door.forced_open", 0)], clock.now())
    (second,) = eng.evaluate([ev("door-1", "door.forced_open", 1)], clock.now())
    assert (first.repeat, second.repeat) == (False, True)


def test_snapshot_keeps_counters_windows_and_silence(clock: FakeClock) -> None:
    rules = [rule({"type": "count", "event": "access.denied", "count": 3, "within_s": 60})]
    eng = RuleEngine(rules, [DOOR])
    eng.evaluate([ev("door-1", "access.denied", 0), ev("door-1", "access.denied", 1)],
                 clock.now())
    fresh = RuleEngine(rules, [DOOR])
    fresh.restore(eng.snapshot())
    clock.advance(10)
    assert actions(fresh.evaluate([ev("door-1", "access.denied", 2)], clock.now())) == [
        ("raise", "door-1")]


def test_old_snapshot_format_is_ignored_not_misread(clock: FakeClock) -> None:
    eng = RuleEngine([rule({"type": "threshold", "metric": "level_pct", "below": 20})], [TANK])
    eng.restore({"r|tank-1": {"active": True}})
    assert eng.state == {}
