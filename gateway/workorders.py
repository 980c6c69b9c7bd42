"""The work-order desk: open orders in memory, persisted in state.db with their journal rows.

The desk applies the pure policy of ``rules/workorders.py`` and turns each change into rows
of a ``Transaction`` (the order, a status-history row, a journal row), which the runtime
writes in one SQLite transaction with the alarm change that caused it. It also decides,
on each tick, which scheduled orders are due and which SLA alarms must be active.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from gateway.journal import iso
from gateway.store.state import JournalDraft, StateStore, Transaction
from gateway.types import Alarm, AlarmState, Device, Priority, WorkOrder, WorkOrderStatus
from rules.config import RuleConfig, Selector
from rules.engine import Decision, selects
from rules.workorder_config import Category, SlaTarget, WorkOrdersConfig
from rules.workorders import (
    WorkOrderChange,
    WorkOrderError,
    WorkingCalendar,
    advance,
    breached_keys,
    from_alarm,
    from_schedule,
    is_open,
    schedule_due,
)

__all__ = ["WORK_ORDER_TYPES", "StatusUpdateIn", "WorkOrderDesk", "WorkOrderError", "work_order_dict"]

log = logging.getLogger(__name__)

SCHEDULES_KV = "workorders.schedules"
WORK_ORDER_TYPES = {
    "created": "estate.workorder.created",
    "updated": "estate.workorder.updated",
    "status": "estate.workorder.status",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS work_orders (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    category TEXT NOT NULL,
    priority INTEGER NOT NULL,
    title TEXT NOT NULL,
    location TEXT NOT NULL,
    created_at REAL NOT NULL,
    due_at REAL,
    status TEXT NOT NULL,
    alarm_id TEXT,
    team TEXT NOT NULL,
    description TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at REAL NOT NULL,
    count INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    status_at REAL NOT NULL,
    breached TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS work_orders_status ON work_orders (status);
CREATE TABLE IF NOT EXISTS work_order_history (
    id INTEGER PRIMARY KEY,
    work_order_id TEXT NOT NULL,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    at REAL NOT NULL,
    by TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS work_order_history_wo ON work_order_history (work_order_id, id);
"""

COLUMNS = ("id", "device_id", "category", "priority", "title", "location", "created_at",
           "due_at", "status", "alarm_id", "team", "description", "source", "updated_at",
           "count", "revision", "status_at", "breached")


def _row(o: WorkOrder) -> tuple[Any, ...]:
    return (o.id, o.device_id, o.category, int(o.priority), o.title, o.location, o.created_at,
            o.due_at, o.status.value, o.alarm_id, o.team, o.description, o.source,
            o.updated_at, o.count, o.revision, o.status_at, orjson.dumps(o.breached).decode())


def _from_row(row: Iterable[Any]) -> WorkOrder:
    d = dict(zip(COLUMNS, row, strict=True))
    d["priority"] = Priority(d["priority"])
    d["status"] = WorkOrderStatus(d["status"])
    d["breached"] = tuple(orjson.loads(d["breached"]))
    return WorkOrder(**d)


def work_order_dict(o: WorkOrder) -> dict[str, Any]:
    return {
        "id": o.id, "revision": o.revision, "device_id": o.device_id, "category": o.category,
        "priority": int(o.priority), "title": o.title, "location": o.location,
        "description": o.description, "team": o.team, "source": o.source,
        "alarm_id": o.alarm_id, "status": o.status.value, "status_at": iso(o.status_at),
        "created_at": iso(o.created_at), "updated_at": iso(o.updated_at),
        "due_at": iso(o.due_at), "count": o.count, "sla_breached": list(o.breached),
    }


class WorkOrderDesk:
    def __init__(self, state: StateStore, config: WorkOrdersConfig,
                 rules: Mapping[str, RuleConfig], devices: Mapping[str, Device],
                 timezone: str) -> None:
        self.state = state
        self.config = config
        self.rules = rules
        self.devices = devices
        self.calendar = WorkingCalendar(config.calendar, timezone)
        state.ensure_schema_sync(SCHEMA)
        rows = state.query_sync(f"SELECT {', '.join(COLUMNS)} FROM work_orders "
                                "WHERE status != 'closed'")
        self.orders: dict[str, WorkOrder] = {o.id: o for o in map(_from_row, rows)}
        self._schedule_last: dict[str, float] = state.load_kv_sync(SCHEDULES_KV) or {}

    # -- views ------------------------------------------------------------------------

    def open_orders(self) -> list[WorkOrder]:
        """Every order not yet closed, most urgent first."""
        return sorted(self.orders.values(), key=lambda o: (int(o.priority), o.created_at))

    def get(self, order_id: str) -> WorkOrder | None:
        order = self.orders.get(order_id)
        if order is not None:
            return order
        rows = self.state.query_sync(
            f"SELECT {', '.join(COLUMNS)} FROM work_orders WHERE id = ?", (order_id,))
        return _from_row(rows[0]) if rows else None

    def history_sync(self, order_id: str) -> list[tuple[Any, ...]]:
        return self.state.query_sync(
            "SELECT action, from_status, to_status, at, by, note FROM work_order_history "
            "WHERE work_order_id = ? ORDER BY id", (order_id,))

    def _target(self, category: str) -> SlaTarget | None:
        return self.config.sla.get(Category(category))

    # -- changes ----------------------------------------------------------------------

    def _record(self, ch: WorkOrderChange, tx: Transaction, now: float) -> None:
        o = ch.order
        if o.status == WorkOrderStatus.CLOSED:
            self.orders.pop(o.id, None)
        else:
            self.orders[o.id] = o
        tx.statements.append((
            f"INSERT OR REPLACE INTO work_orders ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})", _row(o)))
        tx.statements.append((
            "INSERT INTO work_order_history (work_order_id, action, from_status, to_status, "
            "at, by, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (o.id, ch.action, ch.from_status.value if ch.from_status else None,
             o.status.value, now, ch.by, ch.note)))
        data = {"work_order": work_order_dict(o), "action": ch.action, "by": ch.by,
                "note": ch.note, "from": ch.from_status.value if ch.from_status else None}
        tx.journal.append(JournalDraft(WORK_ORDER_TYPES[ch.action], now, o.id, data))

    def on_alarm(self, alarm: Alarm, to_state: AlarmState, tx: Transaction, now: float) -> None:
        """An alarm changed: a raise of a rule with ``work_order:`` opens or updates one."""
        if not self.config.enabled or to_state != AlarmState.ACTIVE_UNACK:
            return
        rule = self.rules.get(alarm.rule_id)
        if rule is None or rule.work_order is None:
            return
        existing = next((o for o in self.orders.values()
                         if o.alarm_id == alarm.alarm_id and is_open(o)), None)
        dev = self.devices.get(alarm.device_id)
        ch = from_alarm(alarm, rule.work_order, rule.priority_level,
                        str(dev.location) if dev else "", existing, now,
                        self._target(rule.work_order.category), self.calendar)
        self._record(ch, tx, now)

    def set_status(self, order_id: str, status: WorkOrderStatus, by: str, note: str,
                   tx: Transaction, now: float) -> WorkOrder:
        """Apply a status update from the cloud or an engineer; raises WorkOrderError."""
        order = self.get(order_id)
        if order is None:
            raise WorkOrderError(f"work order {order_id!r} does not exist / 工单不存在")
        ch = advance(order, status, by, now, note, self._target(order.category), self.calendar)
        if ch is None:
            return order
        self._record(ch, tx, now)
        return ch.order

    def tick(self, now: float, alarms: Iterable[Alarm], tx: Transaction) -> list[Decision]:
        """Create due scheduled orders; return the SLA alarm raises and clears due now."""
        if not self.config.enabled:
            return []
        self._schedules(now, tx)
        return self._sla(now, alarms, tx)

    def _schedules(self, now: float, tx: Transaction) -> None:
        changed = False
        for sched in self.config.schedules:
            sel = Selector(kind=sched.kind, devices=sched.devices)
            for dev in self.devices.values():
                if not selects(sel, dev):
                    continue
                key = f"{sched.id}:{dev.id}"
                last = self._schedule_last.get(key)
                if last is None:  # first sight: the interval starts now
                    self._schedule_last[key] = now
                    changed = True
                    continue
                if not schedule_due(last, sched.every_days, now):
                    continue
                due = last + sched.every_days * 86_400
                while schedule_due(due, sched.every_days, now):  # box was off: one order
                    due += sched.every_days * 86_400
                self._schedule_last[key] = due
                changed = True
                self._record(from_schedule(sched, dev.id, str(dev.location), due, now,
                                           self._target(sched.category), self.calendar),
                             tx, now)
        if changed:
            tx.kv[SCHEDULES_KV] = dict(self._schedule_last)

    def _sla(self, now: float, alarms: Iterable[Alarm], tx: Transaction) -> list[Decision]:
        keys = breached_keys(self.orders.values(), self.config.sla, self.calendar, now)
        active = {(a.rule_id, a.device_id) for a in alarms
                  if a.rule_id.startswith("sla.") and a.condition_active}
        out: list[Decision] = []
        for key, orders in keys.items():
            for o in orders:  # note the breach on the order itself, once per stage
                if key.stage not in o.breached:
                    o2 = o.with_(breached=(*o.breached, key.stage), updated_at=now,
                                 revision=o.revision + 1)
                    self._record(WorkOrderChange(o2, "updated", "system",
                                                 f"SLA {key.stage} deadline missed / 工单超时"),
                                 tx, now)
            if (key.rule_id, key.device_id) in active:
                continue
            ids = ", ".join(sorted(o.id for o in orders))
            out.append(Decision(
                "raise", key.rule_id, key.device_id, now,
                min((o.priority for o in orders), default=Priority.HIGH),
                f"Work order {ids} missed its {key.stage.replace('_', '-')} deadline "
                f"({key.category}) / 工单超时: {ids}", latching=False))
        wanted = {(k.rule_id, k.device_id) for k in keys}
        for rule_id, device_id in active - wanted:
            out.append(Decision("clear", rule_id, device_id, now, Priority.HIGH, "",
                                latching=False))
        return out


class StatusUpdateIn(BaseModel):
    """A status update as the cloud sends it (HTTP body, or JSON on the MQTT status topic)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field("", max_length=200)  # the order; the HTTP route takes it from the path
    status: Literal["accepted", "dispatched", "on_site", "done", "followed_up", "closed"]
    by: str = Field("cloud", min_length=1, max_length=200)
    note: str = Field("", max_length=2000)
