"""Disk pressure: the telemetry store nearing store.max_bytes raises store.full, once, and
clears it when pruning has made room; the alarm is journaled like any other."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.config import load_config
from gateway.runtime import Runtime
from gateway.store.retention import FillWatch
from gateway.types import AlarmState
from tests.support.servers import write_config

MIB = 1_048_576


@pytest.mark.parametrize(("used", "filling", "expected"), [
    (80 * MIB, False, None), (90 * MIB, False, "raise"), (99 * MIB, True, None),
    (86 * MIB, True, None), (84 * MIB, True, "clear"), (84 * MIB, False, None)])
def test_fill_watch_raises_at_level_and_clears_with_hysteresis(
        used: int, filling: bool, expected: str | None) -> None:
    watch = FillWatch(100 * MIB, 90.0, filling)
    verdict = watch.check(used)
    assert (verdict[0] if verdict else None) == expected


def _runtime_with_budget(tmp_path: Path, clock: FakeClock) -> Runtime:
    """A runtime whose telemetry store has a 100 MiB budget and the default 90 % alarm level."""
    cfg = write_config(tmp_path / "gw.yaml", broker_port=1883, data_dir=tmp_path / "data",
                       devices=[], rules=[],
                       extra={"store": {"path": str(tmp_path / "data"), "max_bytes": 100 * MIB,
                                        "fill_alarm_pct": 90}})
    return Runtime(load_config(cfg), clock=clock, data_dir=tmp_path / "data")


async def test_runtime_raises_and_clears_store_full(tmp_path: Path, clock: FakeClock) -> None:
    rt = _runtime_with_budget(tmp_path, clock)
    try:
        rt.telemetry.used_bytes = 95 * MIB
        await rt.check_store_fill()
        await rt.check_store_fill()  # still full: the same alarm, not a new one
        alarm = rt.book.alarms["store.full:gateway"]
        assert (alarm.state, alarm.count) == (AlarmState.ACTIVE_UNACK, 1)
        rt.telemetry.used_bytes = 70 * MIB  # pruned to its low-water mark
        await rt.check_store_fill()
        assert rt.book.alarms["store.full:gateway"].state == AlarmState.RTN_UNACK
        types = [e.type for e in rt.state.journal_sync(0, 100)]
        assert types.count("estate.alarm.transition") == 2
    finally:
        rt.close()


async def test_runtime_raises_store_full_when_pruning_acted_though_under_the_level(
        tmp_path: Path, clock: FakeClock) -> None:
    """prune_oldest leaves the store at its low-water mark (90 %, the default alarm level):
    looked at just after a prune it reads 88 %, yet the budget was reached and readings were
    pruned; that is what store.full is for."""
    rt = _runtime_with_budget(tmp_path, clock)
    try:
        rt.telemetry.used_bytes = 88 * MIB
        await rt.check_store_fill()
        assert "store.full:gateway" not in rt.book.alarms  # nothing pruned yet: not full
        rt.telemetry.points_pruned_for_space += 5_000
        await rt.check_store_fill()
        assert rt.book.alarms["store.full:gateway"].state == AlarmState.ACTIVE_UNACK
        await rt.check_store_fill()  # still 88 %, nothing pruned since: stays raised
        assert rt.book.alarms["store.full:gateway"].count == 1
    finally:
        rt.close()
