"""Work orders on a fake clock: one per alarm, status flow, SLA breach alarms, schedules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import FakeClock
from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.types import AlarmState, Event, WorkOrderStatus
from gateway.workorders import WorkOrderError
from gateway.yamlsource import SourceMap
from rules.workorder_config import CalendarConfig
from rules.workorders import WorkingCalendar

SH = ZoneInfo("Asia/Shanghai")


def _runtime(tmp_path: Path, clock: FakeClock, **extra: Any) -> Runtime:
    data = {
        "site": {"id": "t"}, "store": {"path": str(tmp_path)},
        "devices": [{"id": "lift-1", "kind": "elevator", "location": {"building": "B3"}},
                    {"id": "tank-1", "kind": "water_tank", "location": {"building": "B1"}}],
        "rules": [{"id": "trapped", "select": {"kind": "elevator"}, "priority": "emergency",
                   "when": {"type": "event", "event": "elevator.entrapment",
                            "clear_event": "device.online"},
                   "work_order": {"category": "entrapment", "team": "elevator-contractor"}}],
        **extra,
    }
    return Runtime(parse_config(data, SourceMap(), "test.yaml"), clock=clock)


def _trapped(rt: Runtime, clock: FakeClock, n: int) -> Event:
    return Event("lift-1", "elevator.entrapment", clock.now(), f"ev-{n}", {"floor": 7})


async def test_sla_breach_raises_alarm_at_fifteen_minutes_not_before(tmp_path, clock) -> None:
    rt = _runtime(tmp_path, clock)
    try:
        await rt.ingest([_trapped(rt, clock, 1)])
        (order,) = rt.work_orders.open_orders()
        assert (order.category, order.team, order.due_at) == (
            "entrapment", "elevator-contractor", clock.now() + 900)
        clock.advance(899)
        await rt.tick_work_orders()
        assert "sla.entrapment.on_site:lift-1" not in rt.book.alarms
        clock.advance(1)
        await rt.tick_work_orders()
        sla = rt.book.alarms["sla.entrapment.on_site:lift-1"]
        assert sla.state == AlarmState.ACTIVE_UNACK
        assert order.id in sla.message
        assert rt.work_orders.get(order.id).breached == ("on_site",)
        # the engineer arrives: the SLA alarm's condition clears
        await rt.work_order_status(order.id, WorkOrderStatus.ON_SITE, "cloud")
        assert rt.book.alarms["sla.entrapment.on_site:lift-1"].condition_active is False
        types = [e.type for e in rt.state.journal_sync(0, 100)]
        assert types.count("estate.workorder.created") == 1
        assert "estate.workorder.status" in types
        assert types.count("estate.alarm.transition") >= 3  # trapped, sla raise, sla clear
    finally:
        rt.close()


async def test_repeating_alarm_updates_its_open_work_order(tmp_path, clock) -> None:
    rt = _runtime(tmp_path, clock)
    try:
        await rt.ingest([_trapped(rt, clock, 1)])
        await rt.ingest([Event("lift-1", "device.online", clock.now(), "ev-c", {})])
        alarm_id = "trapped:lift-1"
        await rt.operator_change(rt.book.acknowledge(alarm_id, "op", clock.now()))
        clock.advance(60)
        await rt.ingest([_trapped(rt, clock, 2)])
        assert rt.book.alarms[alarm_id].count == 2
        (order,) = rt.work_orders.open_orders()
        assert order.count == 2
        # once done, a new activation opens a new order
        await rt.work_order_status(order.id, WorkOrderStatus.DONE, "cloud")
        await rt.ingest([Event("lift-1", "device.online", clock.now(), "ev-c2", {})])
        await rt.operator_change(rt.book.acknowledge(alarm_id, "op", clock.now()))
        clock.advance(60)
        await rt.ingest([_trapped(rt, clock, 3)])
        assert len([o for o in rt.work_orders.open_orders()
                    if o.status == WorkOrderStatus.OPEN]) == 1
        assert len(rt.work_orders.open_orders()) == 2
    finally:
        rt.close()


async def test_status_moves_forward_only_and_repeats_are_no_ops(tmp_path, clock) -> None:
    rt = _runtime(tmp_path, clock)
    try:
        await rt.ingest([_trapped(rt, clock, 1)])
        (order,) = rt.work_orders.open_orders()
        await rt.work_order_status(order.id, WorkOrderStatus.DISPATCHED, "cloud")
        before = rt.state.last_seq
        again = await rt.work_order_status(order.id, WorkOrderStatus.DISPATCHED, "cloud")
        assert again.status == WorkOrderStatus.DISPATCHED and rt.state.last_seq == before
        with pytest.raises(WorkOrderError, match="cannot go back to accepted"):
            await rt.work_order_status(order.id, WorkOrderStatus.ACCEPTED, "cloud")
        with pytest.raises(WorkOrderError, match="does not exist"):
            await rt.work_order_status("wo-nope", WorkOrderStatus.DONE, "cloud")
        history = rt.work_orders.history_sync(order.id)
        assert [h[2] for h in history] == ["open", "dispatched"]
    finally:
        rt.close()


async def test_follow_up_sla_runs_from_done(tmp_path, clock) -> None:
    rt = _runtime(tmp_path, clock)
    try:
        await rt.ingest([_trapped(rt, clock, 1)])
        (order,) = rt.work_orders.open_orders()
        await rt.work_order_status(order.id, WorkOrderStatus.ON_SITE, "cloud")
        clock.advance(3600)
        await rt.work_order_status(order.id, WorkOrderStatus.DONE, "cloud")
        clock.advance(48 * 3600 - 1)
        await rt.tick_work_orders()
        assert "sla.entrapment.follow_up:lift-1" not in rt.book.alarms
        clock.advance(1)
        await rt.tick_work_orders()
        assert rt.book.alarms["sla.entrapment.follow_up:lift-1"].condition_active
    finally:
        rt.close()


async def test_schedule_creates_elevator_maintenance_every_fifteen_days(tmp_path, clock
                                                                         ) -> None:
    rt = _runtime(tmp_path, clock)
    try:
        await rt.tick_work_orders()  # first sight: intervals start now
        assert rt.work_orders.open_orders() == []
        clock.advance(15 * 86_400 - 1)
        await rt.tick_work_orders()
        assert rt.work_orders.open_orders() == []
        clock.advance(1)
        await rt.tick_work_orders()
        (order,) = rt.work_orders.open_orders()
        assert (order.device_id, order.category, order.source) == (
            "lift-1", "maintenance", "schedule:elevator-maintenance")
        await rt.tick_work_orders()
        assert len(rt.work_orders.open_orders()) == 1
    finally:
        rt.close()
    # the schedule survives a restart: nothing new until the next interval
    rt = _runtime(tmp_path, clock)
    try:
        clock.advance(86_400)
        await rt.tick_work_orders()
        assert len(rt.work_orders.open_orders()) == 1
    finally:
        rt.close()


def _ts(y: int, m: int, d: int, h: int = 10) -> float:
    return dt.datetime(y, m, d, h, tzinfo=SH).timestamp()


@pytest.mark.parametrize(("created", "days", "due"), [
    (_ts(2026, 3, 2), 3, _ts(2026, 3, 5)),  # Monday + 3 working days = Thursday
    (_ts(2026, 3, 5), 3, _ts(2026, 3, 10)),  # Thursday → Tuesday, over the weekend
    (_ts(2026, 9, 30), 2, _ts(2026, 10, 10)),  # National Day holidays; Sat 10-10 swapped in
    (_ts(2026, 3, 7), 1, _ts(2026, 3, 10, 0)),  # Saturday: Monday counts as day one
])
def test_working_day_deadlines(created: float, days: int, due: float) -> None:
    cal = WorkingCalendar(CalendarConfig(
        holidays=[dt.date(2026, 10, d) for d in range(1, 9)],
        extra_working_days=[dt.date(2026, 10, 10)]), "Asia/Shanghai")
    assert cal.add_working_days(created, days) == due


async def test_common_area_repair_breaches_after_three_working_days(tmp_path) -> None:
    clock = FakeClock(start=_ts(2026, 3, 6, 10))  # Friday 10:00 in Shanghai
    rt = _runtime(tmp_path, clock, rules=[{
        "id": "lock-fault", "select": {"kind": "elevator"}, "priority": "medium",
        "when": {"type": "event", "event": "elevator.door_cycling"},
        "work_order": {"category": "common_area"}}])
    try:
        await rt.ingest([Event("lift-1", "elevator.door_cycling", clock.now(), "d1", {})])
        (order,) = rt.work_orders.open_orders()
        assert order.due_at == _ts(2026, 3, 11, 10)  # Wednesday: the weekend does not count
        clock.set_wall(_ts(2026, 3, 11, 10) - 1)
        await rt.tick_work_orders()
        assert "sla.common_area.complete:lift-1" not in rt.book.alarms
        clock.set_wall(_ts(2026, 3, 11, 10))
        await rt.tick_work_orders()
        assert rt.book.alarms["sla.common_area.complete:lift-1"].condition_active
    finally:
        rt.close()
