"""A step of the gateway's own wall clock (NTP correction) neither sticks nor rushes timers.

Each test drives the pipeline the way ``Runtime._rules_now`` does: sample the wall and
monotonic clocks, feed the ``StepDetector``, shift the pipeline on a step, then tick.
``FakeClock.set_wall`` steps the wall clock without moving monotonic time.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.clock import FakeClock
from gateway.clockwatch import StepDetector
from gateway.types import AlarmState, Device, DeviceKind, Event, Location, Reading
from rules.config import AlarmHandlingConfig, RuleConfig
from rules.pipeline import AlarmPipeline, Outcome

S = AlarmState
TANK = Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native")
GATE = Device("gate-1", DeviceKind.ACCESS_GATE, Location("B1"), "mqtt", "native")
HOUR = 3600.0


def rule(rid: str, when: dict[str, Any], **extra: Any) -> RuleConfig:
    return RuleConfig.model_validate({"id": rid, "when": when, **extra})


LOW_60 = rule("low", {"type": "threshold", "metric": "level_pct", "below": 20, "for_s": 60})
LOW = rule("low", {"type": "threshold", "metric": "level_pct", "below": 20})
FORCED_3 = rule("forced", {"type": "count", "event": "gate.forced_open", "count": 3,
                           "within_s": 60})
SILENT = rule("silent", {"type": "absence", "for_s": 300, "offline_status": False})


def level(v: float) -> Reading:
    return Reading("tank-1", "level_pct", v, 0)


def forced(n: int) -> Event:
    return Event("gate-1", "gate.forced_open", 0, f"gate-1-forced-{n}")


class Driver:
    """The runtime's rules step on a fake clock; ``correct=False`` skips the shift."""

    def __init__(self, p: AlarmPipeline, clock: FakeClock, *, correct: bool = True) -> None:
        self.p, self.clock, self.correct = p, clock, correct
        self.detector = StepDetector()
        self.shifted: list[Outcome] = []
        self.now()

    def now(self) -> float:
        now = self.clock.now()
        delta = self.detector.feed(now, self.clock.monotonic())
        if delta is not None and self.correct:
            self.shifted.append(self.p.shift_time(delta, now))
        return now

    def tick(self) -> Outcome:
        return self.p.tick(self.now())

    def observe(self, *obs: Reading | Event) -> Outcome:
        return self.p.observe(list(obs), self.now())

    def state(self, alarm_id: str) -> AlarmState | None:
        alarm = self.p.book.alarms.get(alarm_id)
        return None if alarm is None else alarm.state


# -- detection ---------------------------------------------------------------------------

@pytest.mark.parametrize(("samples", "expected"), [
    pytest.param([(1000.0, 5.0)], [None], id="first-sample-sets-the-base"),
    pytest.param([(1000.0, 5.0), (1010.0, 15.0)], [None, None], id="steady"),
    pytest.param([(1000.0, 5.0), (-2590.0, 15.0)], [None, -3600.0], id="set-back-one-hour"),
    pytest.param([(1000.0, 5.0), (1310.0, 15.0)], [None, 300.0], id="set-forward"),
    pytest.param([(1000.0, 5.0), (1011.5, 15.0)], [None, None], id="slew-within-threshold"),
    pytest.param([(1000.0, 5.0), (1012.0, 15.0)], [None, None], id="exactly-threshold"),
    pytest.param([(1000.0, 5.0), (1012.5, 15.0)], [None, 2.5], id="just-over-threshold"),
    pytest.param([(1000.0, 5.0), (1010.0, 15.0), (1020.0, 15.0)], [None, None, 10.0],
                 id="wall-moves-monotonic-does-not"),
    pytest.param([(1000.0, 5.0), (-2590.0, 15.0), (-2580.0, 25.0)], [None, -3600.0, None],
                 id="rebased-after-a-step"),
    pytest.param([(1000.0, 0.0), (1001.5, 0.0), (1003.0, 0.0), (1004.5, 0.0)],
                 [None, None, None, None], id="small-drift-never-adds-up"),
])
def test_step_detector_reports_steps_over_threshold(
        samples: list[tuple[float, float]], expected: list[float | None]) -> None:
    d = StepDetector(threshold_s=2.0)
    assert [d.feed(w, m) for w, m in samples] == expected


def test_step_detector_refuses_a_threshold_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match=r"threshold_s must be positive \(0\)"):
        StepDetector(threshold_s=0)


# -- rule timers -------------------------------------------------------------------------

def test_on_delay_keeps_elapsed_time_when_clock_steps_back(clock: FakeClock) -> None:
    run = Driver(AlarmPipeline([LOW_60], [TANK]), clock)
    assert not run.observe(level(10)).changes  # pending since t0
    clock.advance(40)
    assert not run.tick().changes
    clock.set_wall(clock.now() - HOUR)  # NTP sets the clock back an hour
    assert not run.tick().changes
    assert len(run.shifted) == 1
    clock.advance(19)
    assert not run.tick().changes
    clock.advance(1)  # 60 s of real time since the level fell
    ((alarm, t),) = run.tick().changes
    assert (t.to_state, t.at) == (S.ACTIVE_UNACK, clock.now())


def test_without_the_shift_the_on_delay_would_stick_for_an_hour(clock: FakeClock) -> None:
    run = Driver(AlarmPipeline([LOW_60], [TANK]), clock, correct=False)
    run.observe(level(10))
    clock.advance(40)
    run.tick()
    clock.set_wall(clock.now() - HOUR)
    clock.advance(20)
    assert not run.tick().changes
    clock.advance(HOUR - 1)
    assert not run.tick().changes
    clock.advance(1)
    assert run.tick().changes  # 3,660 s after the level fell: the defect being fixed


def test_on_delay_does_not_fire_early_when_clock_steps_forward(clock: FakeClock) -> None:
    run = Driver(AlarmPipeline([LOW_60], [TANK]), clock)
    run.observe(level(10))
    clock.advance(40)
    run.tick()
    clock.set_wall(clock.now() + HOUR)
    assert not run.tick().changes
    clock.advance(19)
    assert not run.tick().changes
    clock.advance(1)
    assert run.tick().changes[0][1].to_state == S.ACTIVE_UNACK


def test_shift_marks_instances_for_persistence_and_rearms_deadlines(clock: FakeClock) -> None:
    p = AlarmPipeline([LOW_60], [TANK])
    t0 = clock.now()
    p.observe([level(10)], t0)
    p.persist(meta_key="meta", instance_prefix="i:")
    clock.set_wall(t0 - HOUR)
    out = p.shift_time(-HOUR, clock.now())
    assert not out.touched  # no alarm yet
    assert p.dirty
    rows = p.persist(meta_key="meta", instance_prefix="i:")
    assert rows["i:low|tank-1"]["0"]["p"] == t0 - HOUR
    assert "meta" in rows
    assert p.engine.next_due() == clock.now()  # re-evaluated, and re-armed, at the next tick
    p.tick(clock.now())
    assert p.engine.next_due() == t0 - HOUR + 60


def test_count_window_expires_in_real_time_after_a_step_back(clock: FakeClock) -> None:
    run = Driver(AlarmPipeline([FORCED_3], [GATE]), clock)
    run.observe(forced(1))
    clock.advance(10)
    run.observe(forced(2))
    clock.advance(10)
    clock.set_wall(clock.now() - HOUR)
    run.tick()
    clock.advance(50)  # the first two are 70 s and 60 s old: out of the 60 s window
    assert not run.observe(forced(3)).changes
    assert run.state("forced:gate-1") is None


def test_count_window_without_the_shift_would_count_stale_events(clock: FakeClock) -> None:
    run = Driver(AlarmPipeline([FORCED_3], [GATE]), clock, correct=False)
    run.observe(forced(1))
    clock.advance(10)
    run.observe(forced(2))
    clock.advance(10)
    clock.set_wall(clock.now() - HOUR)
    run.tick()
    clock.advance(50)
    assert run.observe(forced(3)).changes  # the defect: three "within" 60 s


def test_absence_fires_after_real_silence_when_clock_steps_back(clock: FakeClock) -> None:
    run = Driver(AlarmPipeline([SILENT], [TANK]), clock)
    run.observe(level(50))
    clock.advance(100)
    run.tick()
    clock.set_wall(clock.now() - HOUR)
    run.tick()
    clock.advance(199)
    assert not run.tick().changes
    clock.advance(1)  # 300 s of real silence
    assert run.tick().changes[0][1].to_state == S.ACTIVE_UNACK


# -- alarm timers ------------------------------------------------------------------------

def test_shelve_end_shifts_with_the_step(clock: FakeClock) -> None:
    run = Driver(AlarmPipeline([LOW], [TANK]), clock)
    run.observe(level(10))
    first = run.p.book.alarms["low:tank-1"]
    t0 = clock.now()
    run.p.book.shelve("low:tank-1", "op-li", t0, t0 + 600, "sensor being cleaned")
    clock.advance(100)
    run.tick()
    clock.set_wall(clock.now() - HOUR)
    run.tick()
    ((shelved,),) = [o.touched for o in run.shifted]  # the alarm to store
    assert shelved.shelved_until == t0 + 600 - HOUR
    assert shelved.first_raised_at == first.first_raised_at  # history stays
    assert shelved.active_since == first.active_since - HOUR  # a timer base moves
    clock.advance(499)
    assert not run.tick().changes
    assert run.state("low:tank-1") == S.SHELVED
    clock.advance(1)  # 600 s of real time after shelving
    ((alarm, t),) = run.tick().changes
    assert (t.from_state, t.to_state, t.reason) == (S.SHELVED, S.ACTIVE_UNACK,
                                                     "shelve expired")


def test_realarm_counts_real_time_across_a_step(clock: FakeClock) -> None:
    realarm = rule("low", {"type": "threshold", "metric": "level_pct", "below": 20},
                   realarm_s=300)
    run = Driver(AlarmPipeline([realarm], [TANK]), clock)
    run.observe(level(10))
    clock.advance(200)
    run.tick()
    clock.set_wall(clock.now() - HOUR)
    run.tick()
    clock.advance(99)
    assert not run.tick().changes
    clock.advance(1)
    assert run.tick().changes[0][1].reason.startswith("re-alarm")


def test_group_wait_counts_real_time_across_a_step(clock: FakeClock) -> None:
    handling = AlarmHandlingConfig.model_validate({"group_wait_s": 30})
    run = Driver(AlarmPipeline([LOW], [TANK], handling=handling), clock)
    assert not run.observe(level(10)).notifications  # held for the group wait
    clock.advance(10)
    run.tick()
    clock.set_wall(clock.now() - HOUR)
    run.tick()
    clock.advance(19)
    assert not run.tick().notifications
    clock.advance(1)
    ((note,),) = [run.tick().notifications]
    assert note.alarm_ids == ("low:tank-1",)
