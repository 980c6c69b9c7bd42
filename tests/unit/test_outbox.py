"""Journal retention: waits for the slowest consumer, prunes by age, bounded by size (counted)."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.outbox import FILL_RULE, Outbox
from gateway.store.state import StateStore, Transaction
from gateway.upstream.config import JournalRetentionConfig
from tests.support.journal import fill_journal

DAY = 86_400


def _store(tmp_path: Path, n: int, age_days: float) -> StateStore:
    state = StateStore(tmp_path / "state.db")
    fill_journal(tmp_path / "state.db", n, start=time.time() - age_days * DAY)
    return state


async def test_age_pruning_never_passes_the_slowest_consumer(tmp_path: Path) -> None:
    state = _store(tmp_path, 3_000, age_days=30)
    try:
        outbox = Outbox(state, JournalRetentionConfig(max_age_days=15), ["cloud-a", "cloud-b"])
        assert (await outbox.prune(time.time())).pruned == 0  # nobody has acked
        tx = Transaction()
        outbox.ack("cloud-a", 2_000, tx, 0.0)
        outbox.ack("cloud-b", 1_200, tx, 0.0)
        outbox.ack("cloud-b", 900, tx, 0.0)  # acks never move backwards
        await state.apply(tx)
        result = await outbox.prune(time.time())
        assert (result.pruned, result.forced) == (1_200, 0)
        assert state.journal_bounds_sync() == (1_201, 3_000)
        # acks survive a restart
        assert Outbox(state, JournalRetentionConfig(), []).prune_floor() == 1_200
    finally:
        state.close()


async def test_young_entries_stay_even_when_acknowledged(tmp_path: Path) -> None:
    state = _store(tmp_path, 1_000, age_days=1)
    try:
        outbox = Outbox(state, JournalRetentionConfig(max_age_days=15), ["cloud-a"])
        tx = Transaction()
        outbox.ack("cloud-a", 1_000, tx, 0.0)
        await state.apply(tx)
        assert (await outbox.prune(time.time())).pruned == 0
    finally:
        state.close()


async def test_size_bound_prunes_unacknowledged_counted_and_alarms(tmp_path: Path) -> None:
    state = _store(tmp_path, 3_000, age_days=1)
    try:
        cfg = JournalRetentionConfig(max_entries=2_000, fill_alarm_pct=80)
        outbox = Outbox(state, cfg, ["cloud-a"])
        tx = Transaction()
        outbox.ack("cloud-a", 400, tx, 0.0)
        await state.apply(tx)
        result = await outbox.prune(time.time())
        assert (result.pruned, result.forced, result.entries) == (1_000, 600, 2_000)
        assert state.journal_bounds_sync() == (1_001, 3_000)
        assert outbox.forced_total == 600
        raise_ = outbox.fill_decision(time.time())
        assert raise_ is not None and (raise_.action, raise_.rule_id) == ("raise", FILL_RULE)
        assert outbox.fill_decision(time.time()) is None  # raised once
        tx = Transaction()
        outbox.ack("cloud-a", 3_000, tx, 0.0)
        await state.apply(tx)
        outbox.entries = 1_400  # 70 %: below the level minus the 5-point deadband
        clear = outbox.fill_decision(time.time())
        assert clear is not None and clear.action == "clear"
    finally:
        state.close()
