"""Work-order policy, pure: alarm changes, schedules, status updates and time in; decisions out.

Nothing here reads a clock or writes anything: the desk (``gateway/workorders.py``) passes
``now`` in and stores what comes back, with its journal row, in one transaction.

- One open work order per alarm: an alarm raised again while its order is still open
  updates that order (``count`` + 1) instead of opening another.
- Status moves only forward (open → accepted → dispatched → on_site → done → followed_up →
  closed; skipping steps is allowed, the cloud may not report each one). Repeating the
  current status is a no-op, so a redelivered update changes nothing.
- SLA stages: ``on_site`` (creation → on site), ``complete`` (creation → done, in hours or
  working days) and ``follow_up`` (done → followed up). A stage is breached when its
  deadline has passed and the order has not reached it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.errors import RuleError
from gateway.types import Alarm, Priority, WorkOrder, WorkOrderStatus
from rules.workorder_config import CalendarConfig, Category, ScheduleConfig, SlaTarget, \
    WorkOrderAction

__all__ = [
    "STATUS_ORDER",
    "SlaKey",
    "WorkOrderChange",
    "WorkOrderError",
    "WorkingCalendar",
    "advance",
    "breached_keys",
    "deadlines",
    "from_alarm",
    "from_schedule",
    "is_open",
    "schedule_due",
]

W = WorkOrderStatus
STATUS_ORDER = (W.OPEN, W.ACCEPTED, W.DISPATCHED, W.ON_SITE, W.DONE, W.FOLLOWED_UP, W.CLOSED)
_RANK = {s: i for i, s in enumerate(STATUS_ORDER)}
Stage = Literal["on_site", "complete", "follow_up"]


class WorkOrderError(RuleError):
    """A status update that cannot apply (unknown order, or a step backwards)."""


@dataclass(frozen=True, slots=True)
class WorkOrderChange:
    """A work order after a change, and what happened to it (for the journal and history)."""

    order: WorkOrder
    action: Literal["created", "updated", "status"]
    by: str
    note: str = ""
    from_status: WorkOrderStatus | None = None


@dataclass(frozen=True, slots=True)
class SlaKey:
    """One SLA alarm: a stage of a category missed on a device."""

    category: str
    stage: Stage
    device_id: str

    @property
    def rule_id(self) -> str:
        return f"sla.{self.category}.{self.stage}"


def is_open(order: WorkOrder) -> bool:
    """Open means nobody has finished the job yet (not done, followed up or closed)."""
    return _RANK[order.status] < _RANK[W.DONE]


def _id(*parts: object) -> str:
    return "wo-" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


class WorkingCalendar:
    """Working days in the site's timezone, for deadlines written in working days."""

    def __init__(self, config: CalendarConfig, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self.weekdays = frozenset(config.working_weekdays)
        self.holidays = frozenset(config.holidays)
        self.extra = frozenset(config.extra_working_days)

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.extra:
            return True
        return day.isoweekday() in self.weekdays and day not in self.holidays

    def add_working_days(self, at: float, days: int) -> float:
        """The same local time of day ``days`` working days later.

        Created on a non-working day, the clock starts at the next working day's midnight.
        """
        local = dt.datetime.fromtimestamp(at, self.tz)
        day = local.date()
        if not self.is_working_day(day):
            while not self.is_working_day(day):
                day += dt.timedelta(days=1)
            local = dt.datetime.combine(day, dt.time(0), self.tz)
            days -= 1  # the start day counts as the first working day
            if days == 0:
                end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.tz)
                return end.timestamp()
        counted = 0
        while counted < days:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return dt.datetime.combine(day, local.timetz().replace(tzinfo=None), self.tz).timestamp()


def deadlines(order: WorkOrder, target: SlaTarget | None, calendar: WorkingCalendar
              ) -> dict[Stage, float]:
    """Every SLA deadline that applies to ``order`` now (a stage already met is left out)."""
    if target is None:
        return {}
    out: dict[Stage, float] = {}
    rank = _RANK[order.status]
    if target.on_site_s is not None and rank < _RANK[W.ON_SITE]:
        out["on_site"] = order.created_at + target.on_site_s
    if rank < _RANK[W.DONE]:
        if target.complete_working_days is not None:
            out["complete"] = calendar.add_working_days(order.created_at,
                                                        target.complete_working_days)
        elif target.complete_s is not None:
            out["complete"] = order.created_at + target.complete_s
    if target.follow_up_s is not None and order.status == W.DONE:
        out["follow_up"] = order.status_at + target.follow_up_s
    return out


def next_due(order: WorkOrder, target: SlaTarget | None, calendar: WorkingCalendar
             ) -> float | None:
    due = deadlines(order, target, calendar)
    return min(due.values()) if due else None


def breached_keys(orders: Iterable[WorkOrder], targets: Mapping[Category, SlaTarget],
                  calendar: WorkingCalendar, now: float) -> dict[SlaKey, list[WorkOrder]]:
    """The SLA alarms that should be active at ``now``, with the orders that cause each."""
    out: dict[SlaKey, list[WorkOrder]] = {}
    for order in orders:
        for stage, due in deadlines(order, targets.get(Category(order.category)),
                                    calendar).items():
            if due <= now:
                out.setdefault(SlaKey(order.category, stage, order.device_id), []).append(order)
    return out


def from_alarm(alarm: Alarm, action: WorkOrderAction, rule_priority: Priority, location: str,
               existing: WorkOrder | None, now: float, target: SlaTarget | None,
               calendar: WorkingCalendar) -> WorkOrderChange:
    """An alarm was raised: open its work order, or fold the repeat into the open one."""
    if existing is not None and is_open(existing):
        note = f"alarm raised again ({alarm.count} activations) / 报警再次触发"
        order = existing.with_(count=existing.count + 1, updated_at=now,
                               revision=existing.revision + 1)
        return WorkOrderChange(order, "updated", "system", note)
    priority = Priority[action.priority.upper()] if action.priority else rule_priority
    order = WorkOrder(
        id=_id("alarm", alarm.alarm_id, alarm.last_raised_at), device_id=alarm.device_id,
        category=action.category.value, priority=priority,
        title=alarm.message or f"{alarm.rule_id} on {alarm.device_id}", location=location,
        created_at=now, due_at=None, alarm_id=alarm.alarm_id, team=action.team,
        description=action.description, source="alarm", updated_at=now, status_at=now)
    order = order.with_(due_at=next_due(order, target, calendar))
    return WorkOrderChange(order, "created", "system", f"from alarm {alarm.alarm_id}")


def schedule_due(last_at: float, every_days: float, now: float) -> bool:
    return now >= last_at + every_days * 86_400


def from_schedule(schedule: ScheduleConfig, device_id: str, location: str, due: float,
                  now: float, target: SlaTarget | None, calendar: WorkingCalendar
                  ) -> WorkOrderChange:
    order = WorkOrder(
        id=_id("schedule", schedule.id, device_id, round(due)), device_id=device_id,
        category=schedule.category.value, priority=Priority[schedule.priority.upper()],
        title=schedule.title, location=location, created_at=now, due_at=None,
        team=schedule.team, source=f"schedule:{schedule.id}", updated_at=now, status_at=now)
    order = order.with_(due_at=next_due(order, target, calendar))
    return WorkOrderChange(order, "created", "system", f"scheduled every {schedule.every_days:g} d")


def advance(order: WorkOrder, to: WorkOrderStatus, by: str, now: float, note: str,
            target: SlaTarget | None, calendar: WorkingCalendar) -> WorkOrderChange | None:
    """Move ``order`` to ``to``; None when it is already there (a redelivered update)."""
    if to == order.status:
        return None
    if _RANK[to] < _RANK[order.status]:
        raise WorkOrderError(
            f"work order {order.id!r} is {order.status.value}; cannot go back to {to.value}"
            " / 工单状态不可回退")
    moved = order.with_(status=to, status_at=now, updated_at=now, revision=order.revision + 1)
    moved = moved.with_(due_at=next_due(moved, target, calendar))
    return WorkOrderChange(moved, "status", by, note, from_status=order.status)
