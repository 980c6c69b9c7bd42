"""Overlapping ``Runtime.ingest`` calls are decided in call order.

The MQTT driver hands the next batch to the sink while the one before is still being
written, so two calls overlap. An earlier batch that holds an event first asks the state
store whether the event is known (a thread round trip); a later batch without events must
still wait for it, or its readings are decided before the earlier batch's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.clock import FakeClock
from gateway.metrics import render_metrics
from gateway.types import Event, Reading
from tests.support.runtime import runtime

RULES = [{"id": "tank-high", "select": {"kind": "water_tank"},
          "when": {"type": "threshold", "metric": "level_pct", "above": 95}}]


async def test_overlapping_batches_are_decided_in_call_order(tmp_path: Path) -> None:
    clock = FakeClock()
    t0 = clock.now()
    with runtime(tmp_path, clock=clock, rules=RULES) as rt:
        first = [Event("door-1", "door.forced_open", t0, "ev-1"),
                 Reading("tank-1", "level_pct", 97.0, t0)]
        second = [Reading("tank-1", "level_pct", 50.0, t0 + 1)]
        one = asyncio.create_task(rt.ingest(first))
        two = asyncio.create_task(rt.ingest(second))
        await asyncio.gather(one, two)
        (alarm,) = [a for a in rt.alarm_list() if a.rule_id == "tank-high"]
        # raised by the first batch, then its condition cleared by the second
        assert alarm.count == 1
        assert alarm.condition_active is False
        assert [e.kind for e in rt.state.events_sync(None)] == ["door.forced_open"]


async def test_alarms_are_committed_while_the_readings_wait_for_their_write_group(
        tmp_path: Path) -> None:
    """The readings of overlapping batches go in one telemetry transaction; each batch's
    alarm is committed (journal row) before that transaction, and ``ingest`` returns
    only once the readings are stored."""
    clock = FakeClock()
    t0 = clock.now()
    with runtime(tmp_path, clock=clock, rules=RULES, store={"batch_interval_ms": 200}) as rt:
        one = asyncio.create_task(rt.ingest([Reading("tank-1", "level_pct", 97.0, t0)]))
        two = asyncio.create_task(rt.ingest([Reading("tank-1", "level_pct", 98.0, t0 + 1)]))
        for _ in range(200):
            if rt.state.journal_sync(0, 10):
                break
            await asyncio.sleep(0.001)
        assert [e.type for e in rt.state.journal_sync(0, 10)] == ["estate.alarm.transition"]
        assert not one.done() and not two.done()  # their readings are still lingering
        assert rt.telemetry.history_sync("tank-1", "level_pct", t0 - 1, t0 + 2) == []
        await asyncio.gather(one, two)
        got = rt.telemetry.history_sync("tank-1", "level_pct", t0 - 1, t0 + 2)
        assert [p.value for p in got] == [97.0, 98.0]
        assert (rt.group_commit.batches, rt.group_commit.transactions) == (2, 1)
        body, _ = render_metrics(rt)
        for line in (b"gateway_store_write_transactions_total 1.0",
                     b"gateway_store_write_batches_total 2.0", b"gateway_store_write_waiting 0.0"):
            assert b"\n" + line + b"\n" in body
