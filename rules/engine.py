"""The rule engine: observations and time in, raise/clear decisions out.

Each (rule, device) pair is an *instance* whose condition tree keeps a small JSON-able
state (pending on-delays, counters, windows, last values). An instance is evaluated when
an observation it listens to arrives, or when its next deadline (kept in a timer heap)
comes. A rule with ``per: building`` evaluates per device and raises one alarm for the
building (device id ``building:<name>``) once ``min_devices`` of them assert.

The whole state is exported by ``snapshot()`` and persisted by the runtime in the same
transaction as the alarms it produced, so after a crash a 10-minute on-delay that had run
7 minutes fires 3 minutes after the restart, not 10.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.types import Device, Event, Observation, Priority, Quality, Reading, Value
from rules.conditions import Context, evaluate
from rules.config import (
    AbsenceCondition,
    AllCondition,
    ConditionConfig,
    CountCondition,
    EventCondition,
    RuleConfig,
    ScheduleCondition,
    Selector,
    iter_leaves,
)

__all__ = ["BUILDING_PREFIX", "Decision", "RuleEngine", "selects"]

SNAPSHOT_VERSION = 2
BUILDING_PREFIX = "building:"


@dataclass(frozen=True, slots=True)
class Decision:
    """``raise`` (also for each repeat of an event while active) or ``clear``."""

    action: Literal["raise", "clear"]
    rule_id: str
    device_id: str
    at: float
    priority: Priority
    message: str
    latching: bool
    value: Value | None = None
    repeat: bool = False


def selects(sel: Selector, device: Device) -> bool:
    if sel.kind is not None and device.kind != sel.kind:
        return False
    if sel.devices is not None and device.id not in sel.devices:
        return False
    if sel.building is not None and device.location.building != sel.building:
        return False
    return not (sel.tags is not None and not set(sel.tags) & set(device.tags))


def effective_condition(rule: RuleConfig) -> ConditionConfig:
    """The rule's condition, AND-ed with its ``during`` schedule when it has one."""
    if not rule.during:
        return rule.when
    return AllCondition(type="all", conditions=[
        rule.when, ScheduleCondition(type="schedule", windows=rule.during)])


class RuleEngine:
    def __init__(self, rules: Sequence[RuleConfig], devices: Sequence[Device], *,
                 timezone: str = "UTC") -> None:
        self.rules = {r.id: r for r in rules if r.enabled}
        self.devices = {d.id: d for d in devices}
        self.tz = ZoneInfo(timezone)
        self._cond: dict[str, ConditionConfig] = {}
        self._by_metric: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._by_event: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._by_device: dict[str, list[str]] = defaultdict(list)  # any observation
        self._always_timed: list[str] = []  # absence, schedule: due without any input
        self._group_of: dict[str, str] = {}  # member instance → building group key
        self._members: dict[str, list[str]] = defaultdict(list)
        self._suppress_metrics: set[tuple[str, str]] = set()
        by_kind: dict[Any, list[Device]] = defaultdict(list)
        for dev in devices:
            by_kind[dev.kind].append(dev)
        self._split: dict[str, tuple[str, str]] = {}
        for rule in self.rules.values():
            cond = effective_condition(rule)
            self._cond[rule.id] = cond
            leaves = [leaf for _, leaf in iter_leaves(cond)]
            listens_any = any(isinstance(leaf, AbsenceCondition) for leaf in leaves)
            timed = any(isinstance(leaf, AbsenceCondition | ScheduleCondition)
                        for leaf in leaves)
            metrics: set[str] = set()
            events: set[str] = set()
            for leaf in leaves:
                if isinstance(leaf, EventCondition):
                    events.add(leaf.event)
                    if leaf.clear_event:
                        events.add(leaf.clear_event)
                elif isinstance(leaf, CountCondition):
                    events.add(leaf.event)
                elif not isinstance(leaf, AbsenceCondition | ScheduleCondition):
                    metrics.add(leaf.metric)
            sel = rule.select
            candidates = by_kind[sel.kind] if sel.kind is not None else devices
            for dev in candidates:
                if not selects(sel, dev):
                    continue
                key = f"{rule.id}|{dev.id}"
                self._split[key] = (rule.id, dev.id)
                if rule.per == "building":
                    group = f"{rule.id}|{BUILDING_PREFIX}{dev.location.building}"
                    self._group_of[key] = group
                    self._members[group].append(key)
                if rule.suppress_when is not None:
                    self._suppress_metrics.add((dev.id, rule.suppress_when.metric))
                if timed:
                    self._always_timed.append(key)
                if listens_any:
                    self._by_device[dev.id].append(key)  # absence also hears status
                    continue
                for m in metrics:
                    self._by_metric[(dev.id, m)].append(key)
                for e in events:
                    self._by_event[(dev.id, e)].append(key)
        self.state: dict[str, dict[str, Any]] = {}
        self._volatile: dict[str, dict[str, Any]] = {}
        self._changed: set[str] = set()
        self.latest: dict[str, Value] = {}  # "device|metric" for suppress_when
        self.latest_version = 0
        self.started_at: float | None = None
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self.dirty = False
        self.evaluations = 0

    # -- persistence ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state (for tests and small sites); the runtime writes ``delta()``."""
        self.dirty = False
        self._changed.clear()
        return {"v": SNAPSHOT_VERSION, "instances": {k: v for k, v in self.state.items() if v},
                "latest": self.latest}

    def delta(self) -> dict[str, dict[str, Any]]:
        """Instances whose persisted state changed since the last call ({} = now empty)."""
        out = {k: self.state.get(k, {}) for k in self._changed}
        self._changed.clear()
        self.dirty = False
        return out

    def restore(self, snapshot: dict[str, Any] | None) -> None:
        if not snapshot or snapshot.get("v") != SNAPSHOT_VERSION:
            return  # an older format: start clean rather than misread it
        self.state = {k: v for k, v in snapshot.get("instances", {}).items()
                      if v and k.split("|", 1)[0] in self.rules}
        self.latest = dict(snapshot.get("latest", {}))

    def start(self, now: float) -> list[Decision]:
        """Arm timers: restored instances and the ones due without input (absence, schedule).

        Deadlines that passed while the gateway was down fire now.
        """
        self.started_at = now
        out: list[Decision] = []
        for key in dict.fromkeys([*self.state, *self._always_timed]):
            if key in self._split:
                self._run(key, None, now, out)
        return out

    def suppressed_value(self, device_id: str, metric: str) -> Value | None:
        return self.latest.get(f"{device_id}|{metric}")

    # -- evaluation -------------------------------------------------------------------

    def evaluate(self, observations: Iterable[Observation], now: float) -> list[Decision]:
        if self.started_at is None:
            out = self.start(now)
        else:
            out = []
        for obs in observations:
            if isinstance(obs, Reading):
                if obs.quality not in (Quality.GOOD, Quality.UNCERTAIN):
                    continue
                if (obs.device_id, obs.metric) in self._suppress_metrics:
                    k = f"{obs.device_id}|{obs.metric}"
                    if self.latest.get(k) != obs.value:
                        self.latest[k] = obs.value
                        self.latest_version += 1
                        self.dirty = True
                keys = self._by_metric.get((obs.device_id, obs.metric), ())
            elif isinstance(obs, Event):
                keys = self._by_event.get((obs.device_id, obs.kind), ())
            else:
                keys = ()
            for key in keys:
                self._run(key, obs, now, out)
            for key in self._by_device.get(obs.device_id, ()):
                self._run(key, obs, now, out)
        return out

    def tick(self, now: float) -> list[Decision]:
        """Fire deadlines that ran out without a new observation (delays, windows, silence)."""
        if self.started_at is None:
            return self.start(now)
        out: list[Decision] = []
        heap = self._heap
        ready: list[str] = []
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            if self._due.get(key) != due:
                continue  # superseded
            del self._due[key]
            ready.append(key)
        for key in ready:  # a deadline set during this tick waits for the next one
            self._run(key, None, now, out)
        return out

    def next_due(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _run(self, key: str, obs: Observation | None, now: float, out: list[Decision]) -> None:
        split = self._split.get(key)
        if split is None:
            return  # a restored instance of a device no longer selected
        rule_id, device_id = split
        rule = self.rules[rule_id]
        self.evaluations += 1
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = {}
        vol = self._volatile.get(key)
        if vol is None:
            vol = self._volatile[key] = {}
        ctx = Context(self.tz, self.started_at if self.started_at is not None else now,
                      volatile=vol)
        active, due = evaluate(self._cond[rule_id], st, "0", obs, now, ctx)
        if due is not None:
            if self._due.get(key) != due:
                self._due[key] = due
                heapq.heappush(self._heap, (due, key))
        else:
            self._due.pop(key, None)
        was = bool(st.get("out"))
        if active != was:
            st["out"] = active
            ctx.changed = True
        if ctx.changed:
            self._changed.add(key)
            self.dirty = True
        group = self._group_of.get(key)
        if group is not None:
            if active != was:
                self._group(rule, group, now, out)
            return
        value = obs.value if isinstance(obs, Reading) else (
            obs.attributes.get("value") if isinstance(obs, Event) else None)
        if active and not was:
            out.append(self._decision("raise", rule, device_id, now, value))
        elif active and ctx.pulse:
            out.append(self._decision("raise", rule, device_id, now, value, repeat=True))
        elif was and not active:
            out.append(self._decision("clear", rule, device_id, now, None))

    def _group(self, rule: RuleConfig, group: str, now: float, out: list[Decision]) -> None:
        n = sum(1 for m in self._members[group] if self.state.get(m, {}).get("out"))
        gst = self.state.setdefault(group, {})
        active = n >= rule.min_devices
        if active != bool(gst.get("out")):
            gst["out"] = active
            gst["n"] = n
            self._changed.add(group)
            self.dirty = True
            device_id = group.split("|", 1)[1]
            out.append(self._decision("raise" if active else "clear", rule, device_id, now, n))

    def _decision(self, action: Literal["raise", "clear"], rule: RuleConfig, device_id: str,
                  now: float, value: Value | None, *, repeat: bool = False) -> Decision:
        return Decision(action, rule.id, device_id, now, rule.priority_level,
                        rule.message or rule.name or rule.id, rule.latch, value, repeat)
