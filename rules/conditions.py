"""Pure condition evaluators: given a condition's state, an observation (or none) and the time.

Nothing here reads a clock or does I/O; time is passed in, so each function is a small,
table-testable step. Each node of a rule's condition tree keeps a plain dict (``a``:
asserted, ``r``: the raw comparison, ``p``: on-delay running since, ``c``: off-delay
running since, plus what the leaf needs), so the engine can persist the tree as JSON;
``Context.changed`` says whether anything worth persisting moved. ``evaluate`` returns
whether the node is asserted and when it may change next without new input (the engine
keeps a timer heap of those deadlines).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.types import DeviceStatus, Event, Observation, Reading, Value
from rules.config import (
    WEEKDAYS,
    AbsenceCondition,
    AllCondition,
    AnyCondition,
    ConditionConfig,
    CountCondition,
    EventCondition,
    RateCondition,
    ScheduleCondition,
    StateCondition,
    ThresholdCondition,
    TimeWindow,
)

__all__ = [
    "Context",
    "evaluate",
    "held",
    "in_windows",
    "next_window_change",
    "threshold_breached",
    "threshold_cleared",
]

NodeStates = dict[str, dict[str, Any]]
RATE_SAMPLES_MAX = 120


@dataclass(slots=True)
class Context:
    """What a node may know besides its own state: the site's zone and the engine's start."""

    tz: ZoneInfo
    started_at: float
    pulse: bool = False  # set when an event leaf matched in this evaluation
    changed: bool = False  # set when persisted node state changed
    volatile: dict[str, Any] | None = None  # per-node data not worth persisting


def _set(st: dict[str, Any], key: str, value: Any, ctx: Context) -> None:
    if st.get(key, _MISSING) != value:
        st[key] = value
        ctx.changed = True


def _pop(st: dict[str, Any], key: str, ctx: Context) -> None:
    if key in st:
        del st[key]
        ctx.changed = True


_MISSING = object()


def _num(value: Value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def threshold_breached(cond: ThresholdCondition, value: float) -> bool:
    if cond.above is not None:
        return value > cond.above
    return value < (cond.below if cond.below is not None else float("-inf"))


def threshold_cleared(cond: ThresholdCondition, value: float) -> bool:
    """Past the clear level (hysteresis); without one, simply no longer breached."""
    level = cond.clear_level
    if level is None:
        return not threshold_breached(cond, value)
    if cond.above is not None:
        return value <= level
    return value >= level


def held(st: dict[str, Any], raw: bool, now: float, on_s: float, off_s: float,
         ctx: Context) -> tuple[bool, float | None]:
    """On-delay and off-delay: ``raw`` must hold ``on_s`` to assert and fail ``off_s`` to clear."""
    if not st.get("a"):
        _pop(st, "c", ctx)
        if not raw:
            _pop(st, "p", ctx)
            return False, None
        if "p" not in st:
            _set(st, "p", now, ctx)
        since = st["p"]
        if now - since >= on_s:
            _set(st, "a", True, ctx)
            _pop(st, "p", ctx)
            return True, None
        return False, since + on_s
    _pop(st, "p", ctx)
    if raw:
        _pop(st, "c", ctx)
        return True, None
    if "c" not in st:
        _set(st, "c", now, ctx)
    since = st["c"]
    if now - since >= off_s:
        _set(st, "a", False, ctx)
        _pop(st, "c", ctx)
        return False, None
    return True, since + off_s


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same sort: ``True`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _matches(event: Event, kind: str, match: dict[str, Any]) -> bool:
    if event.kind != kind:
        return False
    return all(k in event.attributes and _same(event.attributes[k], v)
               for k, v in match.items())


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def evaluate(cond: ConditionConfig, states: NodeStates, path: str, obs: Observation | None,
             now: float, ctx: Context) -> tuple[bool, float | None]:
    """Feed ``obs`` (``None`` on a timer) to the node at ``path``; return (asserted, due)."""
    st = states.get(path)
    if st is None:
        st = states[path] = {}
    if isinstance(cond, ThresholdCondition):
        # the persisted state is the comparison ("r"), not the value: a reading that does
        # not cross a limit changes nothing that needs writing
        if isinstance(obs, Reading) and obs.metric == cond.metric:
            v = _num(obs.value)
            if v is not None:
                _set(st, "r", threshold_breached(cond, v) if not st.get("a")
                     else not threshold_cleared(cond, v), ctx)
        return held(st, bool(st.get("r")), now, cond.for_s, cond.off_delay_s, ctx)
    if isinstance(cond, StateCondition):
        if isinstance(obs, Reading) and obs.metric == cond.metric:
            _set(st, "r", any(_same(obs.value, w) for w in cond.in_), ctx)
        return held(st, bool(st.get("r")), now, cond.for_s, cond.off_delay_s, ctx)
    if isinstance(cond, EventCondition):
        if isinstance(obs, Event):
            if _matches(obs, cond.event, cond.match):
                _set(st, "a", True, ctx)
                _set(st, "last", now, ctx)
                ctx.pulse = True
            elif cond.clear_event and obs.kind == cond.clear_event:
                _set(st, "a", False, ctx)
        if st.get("a") and cond.auto_clear_s:
            due = float(st["last"]) + cond.auto_clear_s
            if now >= due:
                _set(st, "a", False, ctx)
                return False, None
            return True, due
        return bool(st.get("a")), None
    if isinstance(cond, CountCondition):
        ts: list[float] = st.get("ts") or []
        n = len(ts)
        if isinstance(obs, Event) and _matches(obs, cond.event, cond.match):
            ts.append(now)
            del ts[:-cond.count]  # only the newest `count` can decide
            ctx.changed = True
        while ts and ts[0] <= now - cond.within_s:
            ts.pop(0)
        if len(ts) != n:
            ctx.changed = True
        if ts:
            st["ts"] = ts
        else:
            st.pop("ts", None)
        _set(st, "a", len(ts) >= cond.count, ctx)
        return st["a"], (ts[0] + cond.within_s if st["a"] else None)
    if isinstance(cond, AbsenceCondition):
        # the last-seen time is volatile: after a restart silence counts from the restart
        vol = ctx.volatile if ctx.volatile is not None else {}
        if isinstance(obs, DeviceStatus):
            if cond.offline_status:
                _set(st, "off", not obs.online, ctx)
            if obs.online:
                vol[path] = now
        elif isinstance(obs, Reading | Event) and (
                cond.metric is None or (isinstance(obs, Reading) and obs.metric == cond.metric)):
            vol[path] = now
            _pop(st, "off", ctx)
        last = max(float(vol.get(path, ctx.started_at)), ctx.started_at)
        silent = now - last >= cond.for_s
        _set(st, "a", bool(st.get("off")) or silent, ctx)
        return st["a"], None if silent else last + cond.for_s
    if isinstance(cond, RateCondition):
        samples: list[list[float]] = st.setdefault("s", [])
        if isinstance(obs, Reading) and obs.metric == cond.metric:
            v = _num(obs.value)
            if v is not None:
                samples.append([now, v])
                del samples[:-RATE_SAMPLES_MAX]
                ctx.changed = True
        while samples and samples[0][0] <= now - cond.window_s:
            samples.pop(0)
            ctx.changed = True
        raw = False
        if len(samples) >= 2 and samples[-1][0] - samples[0][0] >= cond.window_s / 2:
            per_min = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0]) * 60
            raw = bool((cond.falling_per_min is not None and per_min <= -cond.falling_per_min)
                       or (cond.rising_per_min is not None and per_min >= cond.rising_per_min))
        active, due = held(st, raw, now, cond.for_s, cond.off_delay_s, ctx)
        if samples:
            due = _min(due, samples[0][0] + cond.window_s)
        return active, due
    if isinstance(cond, ScheduleCondition):
        _set(st, "a", in_windows(cond.windows, now, ctx.tz), ctx)
        return st["a"], next_window_change(cond.windows, now, ctx.tz)
    if isinstance(cond, AllCondition | AnyCondition):
        results = [evaluate(child, states, f"{path}.{i}", obs, now, ctx)
                   for i, child in enumerate(cond.conditions)]
        combine = all if isinstance(cond, AllCondition) else any
        raw = combine(r[0] for r in results)
        active, due = held(st, raw, now, cond.for_s, cond.off_delay_s, ctx)
        for _, child_due in results:
            due = _min(due, child_due)
        return active, due
    raise TypeError(f"unknown condition {cond!r}")


# -- time windows ------------------------------------------------------------------------

def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _day_ok(w: TimeWindow, day: date) -> bool:
    if day.isoformat() in w.holidays:
        return False
    if w.working_days and day.weekday() >= 5:
        return False
    return w.days is None or WEEKDAYS[day.weekday()] in w.days


def _in_window(w: TimeWindow, local: datetime) -> bool:
    start, end = _minutes(w.start), _minutes(w.end)
    m = local.hour * 60 + local.minute + local.second / 60
    today = local.date()
    if start < end:
        return start <= m < end and _day_ok(w, today)
    if start > end:  # crosses midnight: belongs to the day it started on
        if m >= start:
            return _day_ok(w, today)
        return m < end and _day_ok(w, today - timedelta(days=1))
    return _day_ok(w, today)


def in_windows(windows: list[TimeWindow], now: float, tz: ZoneInfo) -> bool:
    local = datetime.fromtimestamp(now, tz)
    return any(_in_window(w, local) for w in windows)


def next_window_change(windows: list[TimeWindow], now: float, tz: ZoneInfo) -> float:
    """The next start or end of any window after ``now`` (midnight counts, for day rules)."""
    today = datetime.fromtimestamp(now, tz).date()
    best = now + 86_400
    for offset in (-1, 0, 1, 2):
        day = today + timedelta(days=offset)
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        marks = {0}
        for w in windows:
            marks.add(_minutes(w.start))
            marks.add(_minutes(w.end))
        for m in marks:
            t = (midnight + timedelta(minutes=m)).astimezone(UTC).timestamp()
            if now < t < best:
                best = t
    return best
