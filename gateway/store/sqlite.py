"""The embedded time-series store: readings in SQLite, batched, compact, kept for 15 days.

Layout: ``series`` names each (device, metric) once; ``points`` is keyed by
(series_id, ts_ms) ``WITHOUT ROWID``, so a point costs its key and value and nothing else,
and a redelivered reading (same device time) is ignored instead of stored twice.

Durability: WAL with ``synchronous=NORMAL``. A commit is atomic and survives a process
crash (SIGKILL); after a *power* cut the last commits before the most recent WAL sync may be
lost, which for telemetry is the right trade against an fsync per batch on an SD card.
Alarms, events and the journal live in the state database (``gateway/store/state.py``)
with ``synchronous=FULL``.

All SQLite work happens on one dedicated writer thread (``Executor``), so the event loop
never blocks on disk; history queries use their own read-only connection (WAL readers
never block the writer).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.errors import StoreError
from gateway.types import Quality, Reading, Value

__all__ = ["HistoryPoint", "TelemetryStore"]

T = TypeVar("T")

QUALITY_CODE = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2, Quality.UNAVAILABLE: 3}
CODE_QUALITY = {v: k for k, v in QUALITY_CODE.items()}

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL DEFAULT '',
    UNIQUE (device_id, metric)
);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    value,
    quality INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (series_id, ts_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    at: float
    value: Value | None
    quality: Quality


def connect(path: Path, *, synchronous: str, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                               isolation_level=None, timeout=30)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SingleWriter:
    """One thread that owns a write connection; coroutines hand it work and await results."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.thread_ident: int | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run on the writer thread and wait (for start-up and CLI use, off the loop)."""
        return self._pool.submit(fn, *args).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class TelemetryStore:
    """Readings: batched inserts, retention, history. Safe to use from one event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = SingleWriter("store.telemetry")
        self._series: dict[tuple[str, str], int] = {}
        self._conn: sqlite3.Connection = self._writer.call(self._open)
        self._read_local = threading.local()
        self.points_written = 0
        self.batches_written = 0
        self.duplicates_ignored = 0
        self.last_write_s = 0.0

    def _open(self) -> sqlite3.Connection:
        try:
            conn = connect(self.path, synchronous="NORMAL")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open telemetry store: {exc}") from exc
        for sid, dev, metric in conn.execute("SELECT id, device_id, metric FROM series"):
            self._series[(dev, metric)] = sid
        return conn

    # -- writing ----------------------------------------------------------------------

    async def write(self, readings: Sequence[Reading]) -> int:
        """Commit a batch; returns the number of new points (duplicates are ignored)."""
        if not readings:
            return 0
        return await self._writer.run(self._write_sync, readings)

    def _write_sync(self, readings: Sequence[Reading]) -> int:
        started = time.perf_counter()
        conn = self._conn
        series = self._series
        rows = []
        try:
            conn.execute("BEGIN")
            for r in readings:
                key = (r.device_id, r.metric)
                sid = series.get(key)
                if sid is None:
                    cur = conn.execute(
                        "INSERT INTO series (device_id, metric, unit) VALUES (?, ?, ?) "
                        "ON CONFLICT (device_id, metric) DO UPDATE SET unit = excluded.unit "
                        "RETURNING id", (r.device_id, r.metric, r.unit))
                    sid = cur.fetchone()[0]
                    series[key] = sid
                value = r.value
                rows.append((sid, round(r.at * 1000), value, QUALITY_CODE[r.quality]))
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO points (series_id, ts_ms, value, quality) "
                "VALUES (?, ?, ?, ?)", rows)
            inserted = conn.total_changes - before
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._reload_series()  # series rows inserted in this batch were rolled back too
            raise StoreError(f"{self.path}: write of {len(readings)} readings failed: {exc}") \
                from exc
        self.points_written += inserted
        self.duplicates_ignored += len(rows) - inserted
        self.batches_written += 1
        self.last_write_s = time.perf_counter() - started
        return inserted

    def _reload_series(self) -> None:
        self._series = {(d, m): s for s, d, m in
                        self._conn.execute("SELECT id, device_id, metric FROM series")}

    async def prune(self, older_than: float) -> int:
        """Delete points older than ``older_than`` (epoch s), in chunks to keep locks short."""
        return await self._writer.run(self._prune_sync, older_than)

    def _prune_sync(self, older_than: float) -> int:
        cutoff = round(older_than * 1000)
        total = 0
        for (sid,) in self._conn.execute("SELECT id FROM series").fetchall():
            cur = self._conn.execute(
                "DELETE FROM points WHERE series_id = ? AND ts_ms < ?", (sid, cutoff))
            total += cur.rowcount
        return total

    # -- reading ----------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._read_local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous="NORMAL", readonly=True)
            self._read_local.conn = conn
        return conn

    def history_sync(self, device_id: str, metric: str, start: float, end: float,
                     limit: int = 10_000) -> list[HistoryPoint]:
        conn = self._reader()
        row = conn.execute("SELECT id FROM series WHERE device_id = ? AND metric = ?",
                           (device_id, metric)).fetchone()
        if row is None:
            return []
        cur = conn.execute(
            "SELECT ts_ms, value, quality FROM points WHERE series_id = ? "
            "AND ts_ms >= ? AND ts_ms <= ? ORDER BY ts_ms LIMIT ?",
            (row[0], round(start * 1000), round(end * 1000), limit))
        return [HistoryPoint(ts / 1000.0, v, CODE_QUALITY.get(q, Quality.BAD))
                for ts, v, q in cur]

    async def history(self, device_id: str, metric: str, start: float, end: float,
                      limit: int = 10_000) -> list[HistoryPoint]:
        return await asyncio.to_thread(self.history_sync, device_id, metric, start, end, limit)

    def count_sync(self) -> int:
        return int(self._reader().execute("SELECT count(*) FROM points").fetchone()[0])

    def close(self) -> None:
        try:
            self._writer.call(self._conn.close)
        finally:
            self._writer.close()
