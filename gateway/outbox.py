"""The journal as a bounded outbox: consumers' acknowledgements and retention by age and size.

A consumer is anything that reads the journal in order and says how far it got: a pull
client (``POST /api/v1/events/ack``), the upstream MQTT bridge, the webhook. Retention never
prunes an entry a registered consumer has not acknowledged, except when the journal
exceeds ``max_entries`` (the hard bound on disk): then the oldest go, the loss is counted
and logged, and a reader whose cursor points before the oldest entry gets 410. Long before
that, at ``fill_alarm_pct`` of the bound, the ``journal.buffer_filling`` alarm is raised.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from gateway.errors import StoreError
from gateway.store.retention import FillWatch
from gateway.store.state import StateStore, Transaction
from gateway.types import Priority
from gateway.upstream.config import JournalRetentionConfig
from rules.engine import Decision

__all__ = ["FILL_RULE", "Outbox", "PruneResult"]

log = logging.getLogger(__name__)

FILL_RULE = "journal.buffer_filling"
FILL_DEVICE = "gateway"

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_consumers (
    name TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""


PRUNE_CHUNK = 5_000


def _in_tx(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        n = conn.execute(sql, params).rowcount
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise
    return n


@dataclass(frozen=True, slots=True)
class PruneResult:
    pruned: int
    forced: int  # entries pruned before every consumer had acknowledged them
    entries: int  # left in the journal


class Outbox:
    def __init__(self, state: StateStore, config: JournalRetentionConfig,
                 consumers: list[str]) -> None:
        self.state = state
        self.config = config
        state.ensure_schema_sync(SCHEMA)
        self.acks: dict[str, int] = {n: int(s) for n, s in state.query_sync(
            "SELECT name, acked_seq FROM journal_consumers")}
        for name in consumers:
            self.acks.setdefault(name, 0)
        self.forced_total = 0
        self.pruned_total = 0
        self.entries = 0
        self._fill = FillWatch(self.config.max_entries, self.config.fill_alarm_pct)

    def register(self, name: str, tx: Transaction, seq: int = 0) -> None:
        """Make retention wait for ``name`` (the built-in pushers call this at start)."""
        if name not in self.acks:
            self.ack(name, seq, tx, 0.0)

    def ack(self, name: str, seq: int, tx: Transaction, now: float) -> int:
        """Record that ``name`` has everything up to ``seq``; acks never move backwards."""
        seq = max(seq, self.acks.get(name, 0))
        self.acks[name] = seq
        tx.statements.append((
            "INSERT OR REPLACE INTO journal_consumers (name, acked_seq, updated_at) "
            "VALUES (?, ?, ?)", (name, seq, now)))
        return seq

    def prune_floor(self) -> int | None:
        """The highest seq every consumer has acknowledged (None: nobody is registered)."""
        return min(self.acks.values()) if self.acks else None

    async def prune(self, now: float) -> PruneResult:
        floor = self.prune_floor()
        cutoff = now - self.config.max_age_days * 86_400
        try:
            result: PruneResult = await self.state.run_write(
                self._prune_sync, floor, cutoff, self.config.max_entries)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.state.path}: journal prune failed: {exc}") from exc
        self.pruned_total += result.pruned
        self.forced_total += result.forced
        self.entries = result.entries
        if result.forced:
            log.warning("journal over %d entries: pruned %d entries not yet acknowledged by "
                        "every consumer (their cursors now get 410) / 日志缓冲已满, 已丢弃 %d 条",
                        self.config.max_entries, result.forced, result.forced)
        return result

    @staticmethod
    def _prune_sync(conn: sqlite3.Connection, floor: int | None, cutoff: float,
                    max_entries: int) -> PruneResult:
        """Prune in chunks of ``PRUNE_CHUNK`` rows, one short transaction each, so ingest
        (same writer thread) never waits long behind a prune of millions of rows."""
        lo, hi = conn.execute("SELECT min(seq), max(seq) FROM journal").fetchone()
        if lo is None:
            return PruneResult(0, 0, 0)
        limit = hi if floor is None else min(floor, hi)
        pruned = 0
        while True:  # by age, oldest first, never past the slowest consumer's ack
            n = _in_tx(conn, "DELETE FROM journal WHERE seq IN (SELECT seq FROM journal "
                             "WHERE seq <= ? ORDER BY seq LIMIT ?) AND time < ?",
                       (limit, PRUNE_CHUNK, cutoff))
            pruned += n
            if n < PRUNE_CHUNK:
                break
        lo = conn.execute("SELECT min(seq) FROM journal").fetchone()[0] or hi + 1
        forced = 0
        if hi - lo + 1 > max_entries:  # the hard bound: acknowledged or not
            keep_from = hi - max_entries + 1
            if floor is not None:  # how many of them were not yet acknowledged
                forced = max(0, keep_from - 1 - max(floor, lo - 1))
            for start in range(lo, keep_from, PRUNE_CHUNK):
                pruned += _in_tx(conn, "DELETE FROM journal WHERE seq >= ? AND seq < ?",
                                 (start, min(start + PRUNE_CHUNK, keep_from)))
            lo = keep_from
        return PruneResult(pruned, forced, max(0, hi - lo + 1))

    def fill_decision(self, now: float) -> Decision | None:
        """Raise ``journal.buffer_filling`` at ``fill_alarm_pct``; clear 5 points below."""
        verdict = self._fill.check(self.entries)
        if verdict is None:
            return None
        action, pct = verdict
        if action == "raise":
            return Decision("raise", FILL_RULE, FILL_DEVICE, now, Priority.HIGH,
                            f"Event journal {pct:.0f}% full: the cloud link is not keeping up; "
                            f"oldest entries will be dropped at 100% / 事件缓冲区已用 {pct:.0f}%",
                            latching=False, value=round(pct, 1))
        return Decision("clear", FILL_RULE, FILL_DEVICE, now, Priority.HIGH, "",
                        latching=False, value=round(pct, 1))
