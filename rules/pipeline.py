"""The alarm pipeline, wired in one place: engine ► mute ► alarm book ► dispatch ► KPIs.

::

    observations, time ─► RuleEngine ─► decisions ─► AlarmBook.apply(mute=Mutes[
        Maintenance ► Design (suppress_when) ► Inhibit (root cause)]) ─► changes
    changes ─► Dispatcher (dedup, group, flood) ─► notifications, flood start/end
    changes ─► AlarmKpi (activation log)

Synchronous and free of I/O: the runtime calls it under its lock and writes the
``Outcome`` (alarms, transitions, journal rows, snapshots) in one transaction; the
``rules test`` runner calls the same code with a simulated clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.types import Alarm, Device, Observation
from rules.alarms import AlarmBook, Change, alarm_id_for
from rules.config import AlarmHandlingConfig, RuleConfig
from rules.dispatch import Dispatcher, FloodChange, Notification, is_activation
from rules.engine import Decision, RuleEngine
from rules.kpi import AlarmKpi
from rules.mute import DesignMuter, InhibitMuter, Maintenance, MaintenanceMuter, Mutes

__all__ = ["AlarmPipeline", "Outcome"]


@dataclass
class Outcome:
    """What one step changed: transitions to record, alarms to save, messages to journal."""

    changes: list[Change] = field(default_factory=list)
    touched: list[Alarm] = field(default_factory=list)  # changed without a transition
    notifications: list[Notification] = field(default_factory=list)
    floods: list[FloodChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes or self.touched or self.notifications or self.floods)


class _IndexedInhibit(InhibitMuter):
    """InhibitMuter over an index of root-cause alarms, rebuilt once per step (not per alarm)."""

    def __init__(self, rules: dict[str, RuleConfig], devices: dict[str, Device],
                 book: AlarmBook) -> None:
        super().__init__(rules, devices, {})
        self.book = book
        self.sources = {i.rule for r in rules.values() for i in r.inhibited_by}

    def refresh(self) -> None:
        if self.sources:
            self.alarms = {k: a for k, a in self.book.alarms.items() if a.rule_id in self.sources}


class AlarmPipeline:
    def __init__(self, rules: Sequence[RuleConfig], devices: Sequence[Device],
                 alarms: Iterable[Alarm] = (), *,
                 handling: AlarmHandlingConfig | None = None, timezone: str = "UTC") -> None:
        self.handling = handling or AlarmHandlingConfig()
        self.devices = {d.id: d for d in devices}
        self.engine = RuleEngine(rules, devices, timezone=timezone)
        self.rules = self.engine.rules
        self.book = AlarmBook(alarms, self.rules)
        self.maintenance = MaintenanceMuter()
        self._inhibit = _IndexedInhibit(self.rules, self.devices, self.book)
        self.mutes = Mutes(self.rules, self.maintenance, DesignMuter(self.rules, self.engine),
                           self._inhibit)
        self.dispatcher = Dispatcher(self.handling, self.devices)
        self.kpi = AlarmKpi(self.handling)
        self._meta_dirty = False
        self._mutable_rules = {r.id for r in self.rules.values()
                               if r.suppress_when is not None or r.inhibited_by}

    # -- persistence ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything, in one JSON value (tests, the ``rules test`` runner)."""
        return {"engine": self.engine.snapshot(), **self._meta()}

    def _meta(self) -> dict[str, Any]:
        return {"latest": self.engine.latest, "dispatch": self.dispatcher.snapshot(),
                "maintenance": {k: m.as_dict() for k, m in self.maintenance.devices.items()}}

    def persist(self, *, meta_key: str, instance_prefix: str) -> dict[str, Any]:
        """kv rows to write with this step: changed rule instances, and the small rest.

        Only instances whose state changed are written (a reading that crosses no limit
        writes nothing), so the cost does not grow with the number of rules and devices.
        """
        rows: dict[str, Any] = {f"{instance_prefix}{k}": v
                                for k, v in self.engine.delta().items()}
        if self._meta_dirty:
            rows[meta_key] = self._meta()
            self._meta_dirty = False
        return rows

    def restore(self, snap: dict[str, Any] | None,
                instances: dict[str, dict[str, Any]] | None = None) -> None:
        if not snap and not instances:
            return
        snap = snap or {}
        engine = snap.get("engine") or {"v": 2, "instances": instances or {}}
        self.engine.restore({**engine, "latest": snap.get("latest", engine.get("latest", {}))})
        self.dispatcher.restore(snap.get("dispatch"))
        self.maintenance.devices = {k: Maintenance(**m)
                                    for k, m in (snap.get("maintenance") or {}).items()}

    def load_history(self, activations: Iterable[tuple[str, float]]) -> None:
        positions = {aid: self.dispatcher.position_of(a) for aid, a in self.book.alarms.items()}
        self.kpi.load(activations, positions)

    @property
    def dirty(self) -> bool:
        return self.engine.dirty or self._meta_dirty

    # -- steps ------------------------------------------------------------------------

    def observe(self, observations: Sequence[Observation], now: float) -> Outcome:
        before = self.engine.latest_version
        decisions = self.engine.evaluate(observations, now)
        remute = self.engine.latest_version != before
        self._meta_dirty |= remute
        return self._decide(decisions, now, remute=remute)

    def tick(self, now: float) -> Outcome:
        out = self._decide(self.engine.tick(now), now, remute=False)
        for m in [m for m in self.maintenance.devices.values()
                  if m.until is not None and m.until <= now]:
            out.changes.extend(self._set_maintenance_changes(m.device_id, None, now))
        changes = self.book.tick(now)
        out.changes.extend(changes)
        notes, floods = self.dispatcher.observe(changes, now)
        out.notifications.extend(notes)
        out.floods.extend(floods)
        notes, floods = self.dispatcher.tick(now)
        out.notifications.extend(notes)
        out.floods.extend(floods)
        if out.notifications or out.floods:
            self._meta_dirty = True
        return out

    def _decide(self, decisions: list[Decision], now: float, *, remute: bool) -> Outcome:
        out = Outcome()
        if decisions:
            # root causes first, so what they inhibit is muted in the same step
            sources = self._inhibit.sources
            decisions.sort(key=lambda d: d.rule_id not in sources)
            self._inhibit.refresh()
            refreshed = False
            for d in decisions:
                if not refreshed and d.rule_id not in sources:
                    self._inhibit.refresh()
                    refreshed = True
                change = self.book.apply(d, self.mutes)
                if change is not None:
                    out.changes.append(change)
                    if d.rule_id in sources:
                        remute = True
                else:
                    alarm = self.book.alarms.get(alarm_id_for(d.rule_id, d.device_id))
                    if alarm is not None:
                        out.touched.append(alarm)
        if remute or (decisions and self._inhibit.sources):
            self._inhibit.refresh()
            out.changes.extend(self.book.remute(self.mutes, now, rules=self._mutable_rules))
        self._after(out.changes, now, out)
        return out

    def _after(self, changes: list[Change], now: float, out: Outcome) -> None:
        if changes:
            self._meta_dirty = True
        for alarm, t in changes:
            if is_activation(t):
                self.kpi.add(now, alarm.alarm_id, self.dispatcher.position_of(alarm))
        notes, floods = self.dispatcher.observe(changes, now)
        out.notifications.extend(notes)
        out.floods.extend(floods)

    def operator(self, change: Change, now: float) -> Outcome:
        """Route an operator's change (already applied to the book) through dispatch."""
        out = Outcome(changes=[change])
        self._after(out.changes, now, out)
        return out

    # -- maintenance ------------------------------------------------------------------

    def set_maintenance(self, device_id: str, m: Maintenance | None, now: float) -> Outcome:
        out = Outcome(changes=self._set_maintenance_changes(device_id, m, now))
        self._after(out.changes, now, out)
        return out

    def _set_maintenance_changes(self, device_id: str, m: Maintenance | None, now: float
                                 ) -> list[Change]:
        if m is None:
            self.maintenance.devices.pop(device_id, None)
        else:
            self.maintenance.devices[device_id] = m
        self._meta_dirty = True
        self._inhibit.refresh()
        return self.book.remute(self.mutes, now, rules=(), devices=[device_id])

    def kpis(self, now: float) -> dict[str, Any]:
        d = self.dispatcher
        out = self.kpi.compute(self.book.alarms.values(), now, floods_total=d.floods_total,
                               flooding=d.flooding)
        out["notifications_total"] = d.notifications_total
        return out
