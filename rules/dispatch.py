"""Notification hygiene: dedup, grouping with a wait, and flood detection per operator position.

Alarm transitions that an operator must hear about (activation, re-alarm, escalation,
unshelve into an active state) are collected into groups (by rule and building unless
configured otherwise) and sent as one ``Notification`` after ``group_wait_s``: 40 doors
going offline in a power failure make one notification listing 40 alarms, not 40.
Emergency alarms are never held back. An alarm already notified is not notified again for
a plain re-activation within ``repeat_interval_s`` (dedup); re-alarms and escalations
always are. A position with more than ``flood_alarms`` activations within
``flood_window_s`` is in flood (EEMUA 191): its notifications carry ``flood: true`` and
the start and end of each flood are reported once.

No I/O and no clock: the runtime feeds changes and the time, and journals what comes out.
The whole state is JSON (``snapshot``/``restore``) and persisted with the alarms.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.types import Alarm, AlarmState, AlarmTransition, Device, Priority
from rules.config import AlarmHandlingConfig
from rules.engine import BUILDING_PREFIX

__all__ = ["Dispatcher", "FloodChange", "Notification", "is_activation"]

S = AlarmState
ACTIVATION_FROM = frozenset({S.NORMAL, S.RTN_UNACK, S.LATCHED})


def is_activation(t: AlarmTransition) -> bool:
    """An annunciated raise (the unit of alarm rates): not a re-alarm, unshelve or comment."""
    return t.to_state == S.ACTIVE_UNACK and t.from_state in ACTIVATION_FROM


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to a recipient group about one or more alarms."""

    key: str
    group: str
    position: str
    at: float
    alarm_ids: tuple[str, ...]
    priority: Priority
    flood: bool
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "group": self.group, "position": self.position,
                "alarm_ids": list(self.alarm_ids), "count": len(self.alarm_ids),
                "priority": int(self.priority), "flood": self.flood,
                "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class FloodChange:
    position: str
    at: float
    started: bool
    count: int


@dataclass
class _Pending:
    group: str
    position: str
    due: float
    alarm_ids: list[str] = field(default_factory=list)
    priority: int = 4
    reasons: list[str] = field(default_factory=list)


class Dispatcher:
    def __init__(self, config: AlarmHandlingConfig, devices: Mapping[str, Device]) -> None:
        self.config = config
        self.devices = devices
        self._pending: dict[str, _Pending] = {}
        self._notified: dict[str, float] = {}
        self._window: dict[str, deque[float]] = {}
        self.flooding: dict[str, float] = {}  # position → flood start
        self.floods_total = 0
        self.notifications_total = 0
        self.grouped_total = 0

    def building_of(self, device_id: str) -> str | None:
        if device_id.startswith(BUILDING_PREFIX):
            return device_id.removeprefix(BUILDING_PREFIX)
        dev = self.devices.get(device_id)
        return dev.location.building if dev else None

    def position_of(self, alarm: Alarm) -> str:
        building = self.building_of(alarm.device_id)
        return self.config.positions.get(building or "", self.config.default_position)

    def _key(self, alarm: Alarm, position: str) -> str:
        parts = [position]
        dev = self.devices.get(alarm.device_id)
        for g in self.config.group_by:
            if g == "rule":
                parts.append(alarm.rule_id)
            elif g == "building":
                parts.append(self.building_of(alarm.device_id) or "-")
            elif g == "kind":
                parts.append(dev.kind.value if dev else "-")
            elif g == "priority":
                parts.append(str(int(alarm.priority)))
            else:
                parts.append(alarm.group)
        return "/".join(parts)

    # -- input ------------------------------------------------------------------------

    def observe(self, changes: Sequence[tuple[Alarm, AlarmTransition]], now: float
                ) -> tuple[list[Notification], list[FloodChange]]:
        floods: list[FloodChange] = []
        for alarm, t in changes:
            activation = is_activation(t)
            renotify = (t.to_state == S.ACTIVE_UNACK and t.from_state in (
                S.SHELVED, S.SUPPRESSED, S.OUT_OF_SERVICE)) or (
                t.from_state == t.to_state and t.reason.startswith(("re-alarm", "escalated")))
            if not (activation or renotify):
                continue
            position = self.position_of(alarm)
            if activation:
                floods.extend(self._count(position, now))
                last = self._notified.get(alarm.alarm_id)
                if last is not None and now - last < self.config.repeat_interval_s:
                    continue  # dedup: a chattering alarm is told once per repeat interval
            key = self._key(alarm, position)
            p = self._pending.get(key)
            if p is None:
                wait = 0.0 if alarm.priority == Priority.EMERGENCY else self.config.group_wait_s
                p = self._pending[key] = _Pending(alarm.group, position, now + wait)
            if alarm.priority == Priority.EMERGENCY:
                p.due = now
            if alarm.alarm_id not in p.alarm_ids:
                p.alarm_ids.append(alarm.alarm_id)
            else:
                self.grouped_total += 1
            p.priority = min(p.priority, int(alarm.priority))
            if t.reason not in p.reasons:
                p.reasons.append(t.reason)
        return self.flush(now), floods

    def _count(self, position: str, now: float) -> list[FloodChange]:
        w = self._window.setdefault(position, deque())
        w.append(now)
        self._trim(w, now)
        if len(w) > self.config.flood_alarms and position not in self.flooding:
            self.flooding[position] = now
            self.floods_total += 1
            return [FloodChange(position, now, started=True, count=len(w))]
        return []

    def _trim(self, w: deque[float], now: float) -> None:
        limit = now - self.config.flood_window_s
        while w and w[0] <= limit:
            w.popleft()
        while len(w) > 10 * self.config.flood_alarms + 100:
            w.popleft()  # only "more than the limit" matters; keep it bounded in a flood

    # -- time -------------------------------------------------------------------------

    def flush(self, now: float) -> list[Notification]:
        out: list[Notification] = []
        for key, p in list(self._pending.items()):
            if p.due > now:
                continue
            del self._pending[key]
            out.append(Notification(key, p.group, p.position, now, tuple(p.alarm_ids),
                                    Priority(p.priority), p.position in self.flooding,
                                    tuple(p.reasons)))
            for aid in p.alarm_ids:
                self._notified[aid] = now
            self.notifications_total += 1
        return out

    def tick(self, now: float) -> tuple[list[Notification], list[FloodChange]]:
        floods: list[FloodChange] = []
        for position, w in self._window.items():
            self._trim(w, now)
            if position in self.flooding and len(w) <= self.config.flood_alarms:
                del self.flooding[position]
                floods.append(FloodChange(position, now, started=False, count=len(w)))
        horizon = now - self.config.repeat_interval_s
        if len(self._notified) > 10_000:
            self._notified = {k: v for k, v in self._notified.items() if v > horizon}
        return self.flush(now), floods

    def next_due(self) -> float | None:
        return min((p.due for p in self._pending.values()), default=None)

    # -- persistence ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "pending": {k: [p.group, p.position, p.due, p.alarm_ids, p.priority, p.reasons]
                        for k, p in self._pending.items()},
            "notified": self._notified,
            "window": {k: list(w) for k, w in self._window.items()},
            "flooding": self.flooding,
            "floods_total": self.floods_total,
        }

    def restore(self, snap: dict[str, Any] | None) -> None:
        if not snap:
            return
        self._pending = {k: _Pending(g, pos, due, list(ids), prio, list(reasons))
                         for k, (g, pos, due, ids, prio, reasons) in snap["pending"].items()}
        self._notified = dict(snap["notified"])
        self._window = {k: deque(v) for k, v in snap["window"].items()}
        self.flooding = dict(snap["flooding"])
        self.floods_total = int(snap.get("floods_total", 0))
