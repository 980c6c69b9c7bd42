"""The rule engine: observations and time in, raise/clear decisions out.

Each (rule, device) pair is an *instance* with a small JSON-able state (pending on-delay,
off-delay, last event). The whole state is exported by ``snapshot()`` whenever it changed
and persisted by the runtime in the same transaction as the alarms it produced, so after
a crash a 10-minute on-delay that had run 7 minutes fires 3 minutes after the restart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.types import Device, DeviceStatus, Event, Observation, Priority, Quality, Reading, Value
from rules.conditions import threshold_step, timer_due
from rules.config import EventCondition, RuleConfig, Selector, ThresholdCondition

__all__ = ["Decision", "RuleEngine"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Literal["raise", "clear"]
    rule_id: str
    device_id: str
    at: float
    priority: Priority
    message: str
    latching: bool
    value: Value | None = None


def selects(sel: Selector, device: Device) -> bool:
    if sel.kind is not None and device.kind != sel.kind:
        return False
    if sel.devices is not None and device.id not in sel.devices:
        return False
    if sel.building is not None and device.location.building != sel.building:
        return False
    return not (sel.tags is not None and not set(sel.tags) & set(device.tags))


class RuleEngine:
    def __init__(self, rules: Sequence[RuleConfig], devices: Sequence[Device]) -> None:
        self.rules = {r.id: r for r in rules if r.enabled}
        self.devices = {d.id: d for d in devices}
        self._by_metric: dict[tuple[str, str], list[RuleConfig]] = defaultdict(list)
        self._by_event: dict[tuple[str, str], list[RuleConfig]] = defaultdict(list)
        self._clear_event: dict[tuple[str, str], list[RuleConfig]] = defaultdict(list)
        self._timed: list[tuple[RuleConfig, str]] = []
        for rule in self.rules.values():
            for dev in devices:
                if not selects(rule.select, dev):
                    continue
                cond = rule.when
                if isinstance(cond, ThresholdCondition):
                    self._by_metric[(dev.id, cond.metric)].append(rule)
                    if cond.for_s > 0 or cond.off_delay_s > 0:
                        self._timed.append((rule, dev.id))
                elif isinstance(cond, EventCondition):
                    self._by_event[(dev.id, cond.event)].append(rule)
                    if cond.clear_event:
                        self._clear_event[(dev.id, cond.clear_event)].append(rule)
                    if cond.auto_clear_s:
                        self._timed.append((rule, dev.id))
        self.state: dict[str, dict[str, Any]] = {}
        self.dirty = False
        self.evaluations = 0

    # -- persistence ------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        self.dirty = False
        return {k: dict(v) for k, v in self.state.items() if v}

    def restore(self, snapshot: dict[str, dict[str, Any]] | None) -> None:
        self.state = {k: dict(v) for k, v in (snapshot or {}).items()}

    def _st(self, rule_id: str, device_id: str) -> dict[str, Any]:
        key = f"{rule_id}|{device_id}"
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = {}
        return st

    # -- evaluation -------------------------------------------------------------------

    def evaluate(self, observations: Iterable[Observation], now: float) -> list[Decision]:
        out: list[Decision] = []
        for obs in observations:
            if isinstance(obs, Reading):
                rules = self._by_metric.get((obs.device_id, obs.metric))
                if rules and obs.quality in (Quality.GOOD, Quality.UNCERTAIN):
                    for rule in rules:
                        self._threshold(rule, obs, now, out)
            elif isinstance(obs, Event):
                for rule in self._by_event.get((obs.device_id, obs.kind), ()):
                    self._event(rule, obs, now, out)
                for rule in self._clear_event.get((obs.device_id, obs.kind), ()):
                    st = self._st(rule.id, obs.device_id)
                    if st.get("active"):
                        st["active"] = False
                        self.dirty = True
                        out.append(self._decision("clear", rule, obs.device_id, now, None))
            elif isinstance(obs, DeviceStatus):
                pass  # offline/online rules arrive with the rule-engine issue
        return out

    def _threshold(self, rule: RuleConfig, r: Reading, now: float, out: list[Decision]) -> None:
        self.evaluations += 1
        cond = rule.when
        assert isinstance(cond, ThresholdCondition)
        st = self._st(rule.id, r.device_id)
        before = dict(st)
        action = threshold_step(cond, st, r.value, now)
        if st != before:
            self.dirty = True
        if action is not None:
            out.append(self._decision(action, rule, r.device_id, now, r.value))

    def _event(self, rule: RuleConfig, e: Event, now: float, out: list[Decision]) -> None:
        self.evaluations += 1
        cond = rule.when
        assert isinstance(cond, EventCondition)
        for key, want in cond.match.items():
            if e.attributes.get(key) != want:
                return
        st = self._st(rule.id, e.device_id)
        st["active"] = True
        st["last_at"] = now
        self.dirty = True
        value = e.attributes.get("value") if e.attributes else None
        out.append(self._decision("raise", rule, e.device_id, now, value))

    def tick(self, now: float) -> list[Decision]:
        """Fire timers that ran out without a new observation (on/off delays, auto-clear)."""
        out: list[Decision] = []
        for rule, device_id in self._timed:
            st = self.state.get(f"{rule.id}|{device_id}")
            if not st:
                continue
            cond = rule.when
            if isinstance(cond, ThresholdCondition):
                action = timer_due(cond, st, now)
                if action is not None:
                    self.dirty = True
                    out.append(self._decision(action, rule, device_id, now, None))
            elif isinstance(cond, EventCondition) and cond.auto_clear_s and st.get("active") \
                    and now - float(st.get("last_at", now)) >= cond.auto_clear_s:
                st["active"] = False
                self.dirty = True
                out.append(self._decision("clear", rule, device_id, now, None))
        return out

    def _decision(self, action: Literal["raise", "clear"], rule: RuleConfig, device_id: str,
                  now: float, value: Value | None) -> Decision:
        return Decision(action, rule.id, device_id, now, rule.priority_level,
                        rule.message or rule.name or rule.id, rule.latch, value)
