"""The embedded time-series store: readings in SQLite, batched, compressed, kept for 15 days.

Layout: ``series`` names each (device, metric) once. New readings land in ``points_head``, a
row per point keyed (slot, series_id, ts_ms) where ``slot`` is the reading's 10-second slot:
a batch fills a few dozen pages at the end of that b-tree, and a redelivered reading (same
device time) is ignored instead of stored twice. Once the head holds more than two
``head_s`` windows, the rows older than the newest window are **compacted**: each series'
rows are merged into its hour chunk (``chunkstore.py``: one compressed blob per series per
hour, ~0.5-2 bytes a point instead of ~35 for a row) and into its 1-minute and 1-hour
rollup chunks, and deleted from the head, in one transaction. Queries read both. Everything
older than the persisted watermark ``meta['head.compacted_before_ms']`` has been through a
compaction; a late reading older than the watermark is checked against its chunk before it
is accepted, so deduplication holds across head and chunks.

Durability: WAL with ``synchronous=NORMAL``. A commit is atomic and survives a process
crash (SIGKILL); after a *power* cut the last commits before the most recent WAL sync may be
lost, which for telemetry is the right trade against an fsync per batch on an SD card.
Alarms, events and the journal live in the state database (``gateway/store/state.py``)
with ``synchronous=FULL``.

All SQLite work happens on one dedicated writer thread (``Executor``), so the event loop
never blocks on disk; history queries use their own read-only connection (WAL readers
never block the writer).

When an InfluxDB sink is configured, the database also holds an ``outbox``: every point
newly inserted into the head is appended there by a trigger, in the same transaction, with a
monotonic ``seq`` (AUTOINCREMENT: never reused, not even after the rows are deleted). The
sink reads the outbox in ``seq`` order and acknowledges with ``outbox_ack(seq)``, which
advances the persisted cursor (``meta['outbox.acked']``) and deletes the delivered rows in
one transaction. Retention and the size budget are in ``retention.py``.

A database of the first layout (a row per point in ``points``, rollup rows kept by
triggers) is refused with a bilingual error that names the file (``OLD_LAYOUT``).
"""

from __future__ import annotations

import asyncio
import ctypes
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from heapq import merge
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.errors import StoreError
from gateway.store.retention import (
    MaintenanceReport,
    TelemetryPolicy,
    apply_retention,
    prune_for_space,
    used_bytes,
)
from gateway.store.chunks import decode_columns
from gateway.store.chunkstore import (
    CHUNK_MS,
    CHUNK_SCHEMA,
    ChunkBatch,
    encode_fresh,
    merge_series,
    points_in,
    rollup_buckets_in,
    span_is_empty,
    ts_in_chunk,
)
from gateway.store.rollup import (
    BUCKET_MS,
    Bucket,
    BucketColumns,
    Resolution,
    choose_resolution,
    merge_buckets,
)
from gateway.types import Quality, Reading, Value

__all__ = ["HistoryPoint", "HistoryResult", "OutboxRow", "SeriesRun", "TelemetryStore",
           "dump_points"]

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
CREATE TABLE IF NOT EXISTS points_head (
    slot INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    value,
    quality INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (slot, series_id, ts_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    series_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    value,
    quality INTEGER NOT NULL
);
"""

OUTBOX_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS points_outbox AFTER INSERT ON points_head
BEGIN
    INSERT INTO outbox (series_id, ts_ms, value, quality)
    VALUES (NEW.series_id, NEW.ts_ms, NEW.value, NEW.quality);
END;
"""

OUTBOX_CURSOR = "outbox.acked"
HEAD_WATERMARK = "head.compacted_before_ms"
SLOT_MS = 10_000  # points_head's first key: ts_ms // SLOT_MS
# 8 MiB: the live path at 2,000 devices ran as fast as with 32 MiB (bench/store.py: 76,444
# vs 72,746 points/s), and the gateway's RSS no longer grows by ~25 MB while the cache fills
WRITER_CACHE_KIB = 8 * 1024
COMPACT_FLUSH_SERIES = 1000  # series whose new chunk rows a compaction holds before writing
_SERIES_TIME = itemgetter(0, 1)  # a head row's (series_id, ts_ms)
IMPORT_JOBS = 256  # runs handed to the worker processes at a time by a bulk import
OLD_LAYOUT = ("{path}: 这是旧版遥测存储格式（每个读数一行的 points 表），本版本不再读取；"
              "请停止网关，将该文件移走（或删除，其中的历史读数将不再可查），再启动网关，"
              "网关会新建压缩格式的存储。 / "
              "{path}: this telemetry database has the old layout (a row per reading in "
              "table 'points') and this version no longer reads it; stop the gateway, move "
              "the file away (or delete it: its history will no longer be queryable) and "
              "start again, and the gateway creates a store in the compressed layout.")


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    at: float
    value: Value | None
    quality: Quality


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """A history answer: raw ``points`` when ``resolution`` is raw, otherwise ``buckets``."""

    resolution: Resolution
    points: tuple[HistoryPoint, ...] = ()
    buckets: tuple[Bucket, ...] = ()


@dataclass(frozen=True, slots=True)
class SeriesRun:
    """Points of one series for ``TelemetryStore.import_runs_sync``: instants in ms, strictly
    increasing; values as SQLite stores them (a boolean becomes 0/1); ``qualities`` None
    means all good."""

    device_id: str
    metric: str
    ts_ms: Sequence[int]
    values: Sequence[Value | None]
    qualities: Sequence[Quality] | None = None
    unit: str = ""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One point waiting for the InfluxDB sink, in insertion order (``seq``)."""

    seq: int
    device_id: str
    metric: str
    ts_ms: int
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


def _malloc_trim() -> Callable[[], object]:
    """glibc's ``malloc_trim(0)``, or nothing where there is none (musl, macOS).

    A compaction allocates and frees tens of MB on the writer thread (decoded chunks, zlib
    state); glibc keeps freed memory in that thread's arena, so the gateway's RSS rose by
    the compaction's working set and stayed there. Trimming after each compaction hands it
    back to the system (a millisecond or two, every few minutes)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


_release_freed_memory = _malloc_trim()


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
    """Readings: batched inserts, rollups, retention, size budget, history, Influx outbox.

    Safe to use from one event loop.

    Args:
        path: the SQLite file (created with its folder).
        policy: retention per kind, size budget and ``on_full``; defaults keep 15 days raw,
            90 days of 1-minute and 730 days of 1-hour rollups, with no size limit.
        outbox: append every new point to the outbox for the InfluxDB sink. Turning it off
            drops the trigger but keeps undelivered rows for when it is turned on again.
        head_s: the window (seconds of device time) new readings spend in ``points_head``
            before they are moved to ``points``; longer means fewer page writes per point
            and a longer scan of the head for a recent-history query.
    """

    def __init__(self, path: Path, *, policy: TelemetryPolicy | None = None,
                 outbox: bool = False, head_s: float = 300.0) -> None:
        self.path = path
        self.head_ms = max(1, round(head_s * 1000))
        self._watermark = 0
        self._newest_ms = 0
        self.policy = policy or TelemetryPolicy()
        self.outbox_enabled = outbox
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = SingleWriter("store.telemetry")
        self._series: dict[tuple[str, str], int] = {}
        try:
            self._conn: sqlite3.Connection = self._writer.call(self._open)
        except BaseException:
            self._writer.close()
            raise
        self._read_local = threading.local()
        self.points_written = 0
        self.batches_written = 0
        self.duplicates_ignored = 0
        self.last_write_s = 0.0
        self.points_dropped_full = 0       # refused by on_full=drop_new
        self.points_pruned_for_space = 0   # deleted by on_full=prune_oldest
        self.outbox_pruned_for_space = 0
        self.rollups_pruned_for_space = 0
        self.compactions = 0
        self.last_compaction_s = 0.0
        self.used_bytes = self._writer.call(used_bytes, self._conn)

    def _open(self) -> sqlite3.Connection:
        try:
            conn = connect(self.path, synchronous="NORMAL")
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                            "'points'").fetchone() is not None:
                conn.close()
                raise StoreError(OLD_LAYOUT.format(path=self.path))
            # the head's newest pages and the chunks being filled stay in SQLite's cache
            conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            conn.executescript(SCHEMA)
            conn.executescript(CHUNK_SCHEMA)
            if self.outbox_enabled:
                conn.executescript(OUTBOX_TRIGGER)
            else:
                conn.execute("DROP TRIGGER IF EXISTS points_outbox")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open telemetry store: {exc}") from exc
        for sid, dev, metric in conn.execute("SELECT id, device_id, metric FROM series"):
            self._series[(dev, metric)] = sid
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_WATERMARK,)).fetchone()
        self._watermark = int(row[0]) if row else 0
        row = conn.execute("SELECT max(ts_ms) FROM points_head WHERE slot = "
                           "(SELECT max(slot) FROM points_head)").fetchone()
        self._newest_ms = int(row[0]) if row[0] is not None else self._watermark
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
        budget = self.policy.max_bytes
        if budget is not None and self.policy.on_full == "drop_new":
            self.used_bytes = used_bytes(conn)
            if self.used_bytes >= budget:
                self.points_dropped_full += len(readings)
                return 0
        series = self._series
        rows = []
        try:
            conn.execute("BEGIN")
            for r in readings:
                sid = series.get((r.device_id, r.metric))
                if sid is None:
                    sid = self._series_id(r.device_id, r.metric, r.unit)
                ts = round(r.at * 1000)
                rows.append((ts // SLOT_MS, sid, ts, r.value, QUALITY_CODE[r.quality]))
            watermark = self._watermark
            if rows and min(row[2] for row in rows) < watermark:
                # older than the last compaction: may already be in a chunk
                rows = self._not_in_chunks(rows, watermark)
            # rowcount sums sqlite3_changes(), which leaves out the rows the outbox trigger
            # writes (total_changes would count them too)
            inserted = conn.executemany(
                "INSERT OR IGNORE INTO points_head (slot, series_id, ts_ms, value, quality) "
                "VALUES (?, ?, ?, ?, ?)", rows).rowcount if rows else 0
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._reload_series()  # series rows inserted in this batch were rolled back too
            raise StoreError(f"{self.path}: write of {len(readings)} readings failed: {exc}") \
                from exc
        self.points_written += inserted
        self.duplicates_ignored += len(readings) - inserted
        self.batches_written += 1
        if rows:
            self._newest_ms = max(self._newest_ms, max(row[2] for row in rows))
        if self._newest_ms - self._watermark >= 2 * self.head_ms:
            self._compact_sync(self._newest_ms - self._newest_ms % self.head_ms - self.head_ms)
        if budget is not None and self.policy.on_full == "prune_oldest":
            self.used_bytes = used_bytes(conn)
            if self.used_bytes > budget:
                self._count(prune_for_space(conn, self.policy))
        self.last_write_s = time.perf_counter() - started
        return inserted

    def _not_in_chunks(self, rows: list[tuple[int, int, int, Any, int]], watermark: int
                       ) -> list[tuple[int, int, int, Any, int]]:
        """``rows`` without the late ones (older than ``watermark``) their chunk already has."""
        seen: dict[tuple[int, int], frozenset[int]] = {}
        out = []
        for row in rows:
            ts = row[2]
            if ts < watermark:
                key = (row[1], ts - ts % CHUNK_MS)
                known = seen.get(key)
                if known is None:
                    known = seen[key] = ts_in_chunk(self._conn, *key)
                if ts in known:
                    continue
            out.append(row)
        return out

    def _compact_sync(self, cutoff_ms: int) -> int:
        """Merge head rows older than ``cutoff_ms`` into chunks and rollups, delete them from
        the head and advance the watermark, in one transaction."""
        if cutoff_ms <= self._watermark:
            return 0
        started = time.perf_counter()
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            moved = 0
            batch = ChunkBatch(conn)
            # Streamed, series by series, without sorting: the head holds minutes of the
            # whole estate (millions of rows at 2,000 devices). ``fetchall`` held them at
            # once (a 340 MB peak in bench.footprint) and ``ORDER BY series_id`` over
            # several slots made SQLite sort them in a temporary b-tree (cache-sized
            # memory, then temporary files: another ~40 MB peak and tens of MB written per
            # compaction). Each slot's rows come in key order (series_id, ts_ms), and a
            # slot is a span of time, so merging the slots' cursors yields every series'
            # rows together and in time order. Only the encoded chunks wait for the commit.
            series = groupby(merge(*self._head_cursors(cutoff_ms), key=_SERIES_TIME),
                             key=itemgetter(0))
            for n, (sid, group) in enumerate(series, 1):
                _, ts, values, quals = zip(*group, strict=True)
                moved += merge_series(batch, sid, ts, values, quals)
                if n % COMPACT_FLUSH_SERIES == 0:
                    # written as they come (series in ascending order: still an append in
                    # key order) rather than all at the end: at 2,000 devices the encoded
                    # chunks of every series were ~8 MB that the gateway's RSS kept after
                    batch.flush()
            batch.flush()
            conn.execute("DELETE FROM points_head WHERE slot <= ? AND ts_ms < ?",
                         (cutoff_ms // SLOT_MS, cutoff_ms))
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value", (HEAD_WATERMARK, cutoff_ms))
            conn.execute("COMMIT")
        except (sqlite3.Error, StoreError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: compacting readings from the head failed: {exc}") \
                from exc
        self._watermark = cutoff_ms
        self.compactions += 1
        self.last_compaction_s = time.perf_counter() - started
        _release_freed_memory()
        return moved

    def _head_cursors(self, cutoff_ms: int) -> list[sqlite3.Cursor]:
        """A cursor per head slot that holds rows older than ``cutoff_ms``, each in key
        order (series_id, ts_ms); a few dozen slots per compaction."""
        conn = self._conn
        cursors = []
        slot = conn.execute("SELECT min(slot) FROM points_head").fetchone()[0]
        while slot is not None and slot <= cutoff_ms // SLOT_MS:
            cursors.append(conn.execute(
                "SELECT series_id, ts_ms, value, quality FROM points_head "
                "WHERE slot = ? AND ts_ms < ?", (slot, cutoff_ms)))
            slot = conn.execute("SELECT min(slot) FROM points_head WHERE slot > ?",
                                (slot,)).fetchone()[0]
        return cursors

    def import_runs_sync(self, runs: Iterable[SeriesRun], *, workers: int = 1) -> int:
        """Bulk import: merge runs of points straight into chunks and rollups, in one
        transaction, with the code compaction uses (so the chunks are the same as if the
        points had come through ``write``). Returns the points added. ``runs`` may be a
        generator: only the encoded chunks are kept until the commit. With ``workers`` > 1
        the runs into a span that holds no chunk yet are encoded by ``chunkstore.encode_fresh``
        (``merge_series`` into empty tables) in that many worker processes; the rows are
        the same.

        For loading history (the benchmark's earlier days, a migration): the points do
        **not** go to the InfluxDB outbox. Every point must be older than everything in the
        head; the watermark moves past the newest one, so a reading written later for an
        imported instant is recognised as a duplicate.

        Raises:
            StoreError: a point not older than the head's oldest row, or a database error.
        """
        if workers <= 1:
            return self._writer.call(self._import_sync, runs, None)
        with ProcessPoolExecutor(workers) as pool:
            return self._writer.call(self._import_sync, runs, pool)

    def _import_sync(self, runs: Iterable[SeriesRun], pool: ProcessPoolExecutor | None) -> int:
        conn = self._conn
        row = conn.execute("SELECT min(ts_ms) FROM points_head WHERE slot = "
                           "(SELECT min(slot) FROM points_head)").fetchone()
        head_oldest = row[0]
        added = 0
        newest = -1
        count = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            batch = ChunkBatch(conn)
            pending: list[tuple[int, Sequence[int], Sequence[Any], list[int]]] = []
            empty: dict[tuple[int, int], bool] = {}

            def drain() -> int:
                n = 0
                assert pool is not None  # noqa: S101
                jobs = [pool.submit(encode_fresh, *args) for args in pending]
                for args, job in zip(pending, jobs, strict=True):
                    got, rows = job.result()
                    if batch.absorb(rows):
                        n += got
                    else:  # the same series twice in this import: merge in order
                        n += merge_series(batch, *args)
                pending.clear()
                return n

            for run in runs:
                count += 1
                if not run.ts_ms:
                    continue
                last = run.ts_ms[-1]
                if head_oldest is not None and last >= head_oldest:
                    raise StoreError(f"{self.path}: import of {run.device_id}/{run.metric} up "
                                     f"to {last} ms refused: the head holds newer or equal "
                                     f"points from {head_oldest} ms")
                newest = max(newest, last)
                sid = self._series_id(run.device_id, run.metric, run.unit)
                values = run.values
                if bool in set(map(type, values)):  # stored as SQLite stores it: 0/1
                    values = [int(v) if type(v) is bool else v for v in values]
                quals = ([0] * len(values) if run.qualities is None
                         else [QUALITY_CODE[q] for q in run.qualities])
                span = (run.ts_ms[0], last)
                if pool is not None and empty.setdefault(span, span_is_empty(conn, *span)):
                    pending.append((sid, run.ts_ms, values, quals))
                    if len(pending) >= IMPORT_JOBS:
                        added += drain()
                else:
                    added += merge_series(batch, sid, run.ts_ms, values, quals)
            if pending:
                added += drain()
            batch.flush()
            watermark = max(self._watermark, newest + 1)
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value", (HEAD_WATERMARK, watermark))
            conn.execute("COMMIT")
        except (sqlite3.Error, StoreError, ValueError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._reload_series()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{self.path}: import of {count} series runs failed: {exc}") \
                from exc
        self._watermark = watermark
        self._newest_ms = max(self._newest_ms, watermark)
        return added

    def _series_id(self, device_id: str, metric: str, unit: str) -> int:
        key = (device_id, metric)
        sid = self._series.get(key)
        if sid is None:
            cur = self._conn.execute(
                "INSERT INTO series (device_id, metric, unit) VALUES (?, ?, ?) "
                "ON CONFLICT (device_id, metric) DO UPDATE SET unit = excluded.unit "
                "RETURNING id", (device_id, metric, unit))
            sid = cur.fetchone()[0]
            self._series[key] = sid
        return int(sid)

    def _count(self, report: MaintenanceReport) -> None:
        self.points_pruned_for_space += report.points_pruned_for_space
        self.outbox_pruned_for_space += report.outbox_pruned_for_space
        self.rollups_pruned_for_space += report.rollups_pruned_for_space
        self.used_bytes = report.used_bytes

    def _reload_series(self) -> None:
        self._series = {(d, m): s for s, d, m in
                        self._conn.execute("SELECT id, device_id, metric FROM series")}

    async def maintain(self, now: float) -> MaintenanceReport:
        """Apply retention by age, then the size budget; run it every few minutes.

        ``now`` is epoch seconds (pass ``clock.now()``), so tests drive it with a FakeClock.
        Returns the age-based deletions plus whatever the size budget removed.
        """
        return await self._writer.run(self._maintain_sync, now)

    def maintain_sync(self, now: float) -> MaintenanceReport:
        return self._writer.call(self._maintain_sync, now)

    def _maintain_sync(self, now: float) -> MaintenanceReport:
        try:
            # readings stopped or are sparse: do not leave them in the head for ever
            now_ms = round(now * 1000)
            self._compact_sync(now_ms - now_ms % self.head_ms - self.head_ms)
            aged = apply_retention(self._conn, self.policy, now)
            space = prune_for_space(self._conn, self.policy)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: maintenance failed: {exc}") from exc
        self._count(space)
        return MaintenanceReport(
            points_expired=aged.points_expired, rollup_1m_expired=aged.rollup_1m_expired,
            rollup_1h_expired=aged.rollup_1h_expired, outbox_expired=aged.outbox_expired,
            points_pruned_for_space=space.points_pruned_for_space,
            outbox_pruned_for_space=space.outbox_pruned_for_space,
            rollups_pruned_for_space=space.rollups_pruned_for_space,
            used_bytes=space.used_bytes)

    # -- the InfluxDB outbox ------------------------------------------------------------

    def outbox_cursor_sync(self) -> int:
        """The last ``seq`` the sink acknowledged (0 before the first)."""
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?",
                                     (OUTBOX_CURSOR,)).fetchone()
        return int(row[0]) if row else 0

    def outbox_read_sync(self, limit: int) -> list[OutboxRow]:
        """The oldest ``limit`` undelivered points, in insertion order."""
        cur = self._reader().execute(
            "SELECT o.seq, s.device_id, s.metric, o.ts_ms, o.value, o.quality FROM outbox o "
            "JOIN series s ON s.id = o.series_id WHERE o.seq > ? ORDER BY o.seq LIMIT ?",
            (self.outbox_cursor_sync(), limit))
        return [OutboxRow(seq, d, m, ts, v, CODE_QUALITY.get(q, Quality.BAD))
                for seq, d, m, ts, v, q in cur]

    async def outbox_read(self, limit: int) -> list[OutboxRow]:
        return await asyncio.to_thread(self.outbox_read_sync, limit)

    def outbox_backlog_sync(self) -> int:
        """Points waiting for the sink (an upper bound if the size budget pruned some)."""
        row = self._reader().execute("SELECT (SELECT min(seq) FROM outbox), "
                                     "(SELECT max(seq) FROM outbox)").fetchone()
        if row[0] is None:
            return 0
        return int(row[1]) - max(int(row[0]) - 1, self.outbox_cursor_sync())

    async def outbox_ack(self, seq: int) -> None:
        """Persist that everything up to ``seq`` was delivered, and delete those rows."""
        await self._writer.run(self._outbox_ack_sync, seq)

    def _outbox_ack_sync(self, seq: int) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = max(value, excluded.value)", (OUTBOX_CURSOR, seq))
            conn.execute("DELETE FROM outbox WHERE seq <= ?", (seq,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: outbox ack of seq {seq} failed: {exc}") from exc

    # -- reading ----------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._read_local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous="NORMAL", readonly=True)
            self._read_local.conn = conn
        return conn

    def _series_of(self, conn: sqlite3.Connection, device_id: str, metric: str) -> int | None:
        row = conn.execute("SELECT id FROM series WHERE device_id = ? AND metric = ?",
                           (device_id, metric)).fetchone()
        return None if row is None else int(row[0])

    def _head_slots(self, conn: sqlite3.Connection, lo: int, hi: int) -> tuple[int, int]:
        # two subqueries: SQLite answers a lone min() or max() from the index, both at once
        # would scan the table
        first, last = conn.execute("SELECT (SELECT min(slot) FROM points_head), "
                                   "(SELECT max(slot) FROM points_head)").fetchone()
        if first is None:
            return 0, -1
        return max(first, lo // SLOT_MS), min(last, hi // SLOT_MS)

    def history_sync(self, device_id: str, metric: str, start: float, end: float,
                     limit: int = 10_000) -> list[HistoryPoint]:
        conn = self._reader()
        sid = self._series_of(conn, device_id, metric)
        if sid is None:
            return []
        lo, hi = round(start * 1000), round(end * 1000)
        # one read transaction, so a compaction in between cannot show a point twice or not
        # at all
        conn.execute("BEGIN")
        try:
            ts, values, quals = points_in(conn, sid, lo, hi)
            # the head is keyed slot first: seek (slot, series) for each slot of the range
            # that the head holds at all (a few dozen), instead of scanning every series' rows
            first, last = self._head_slots(conn, lo, hi)
            head = conn.execute(
                "WITH RECURSIVE s(t) AS (SELECT ? UNION ALL SELECT t + 1 FROM s WHERE t < ?) "
                "SELECT h.ts_ms, h.value, h.quality FROM s JOIN points_head h ON h.slot = s.t "
                "AND h.series_id = ? AND h.ts_ms >= ? AND h.ts_ms <= ? ORDER BY h.ts_ms",
                (first, last, sid, lo, hi)).fetchall()
        finally:
            conn.execute("COMMIT")
        rows = list(zip(ts, values, quals))
        if head:
            if rows and head[0][0] < rows[-1][0]:  # late readings not compacted yet
                rows = sorted(rows + head, key=itemgetter(0))
            else:
                rows += head
        code = CODE_QUALITY
        return [HistoryPoint(t / 1000.0, v, code.get(q, Quality.BAD))
                for t, v, q in rows[:limit]]

    def _head_buckets(self, conn: sqlite3.Connection, sid: int, size: int, lo: int,
                      hi: int) -> BucketColumns:
        """Buckets of the points still in the head (aggregated now; compaction stores them)."""
        first, last = self._head_slots(conn, lo, hi)
        cur = conn.execute(
            "WITH RECURSIVE s(t) AS (SELECT ? UNION ALL SELECT t + 1 FROM s WHERE t < ?) "
            "SELECT h.ts_ms - h.ts_ms % ? AS b, count(*), sum(h.value), min(h.value), "
            "max(h.value) FROM s JOIN points_head h ON h.slot = s.t AND h.series_id = ? "
            "AND h.ts_ms >= ? AND h.ts_ms <= ? WHERE h.quality <= 1 AND "
            "typeof(h.value) IN ('integer', 'real') GROUP BY b ORDER BY b",
            (first, last, size, sid, lo, hi + size - 1))
        return BucketColumns.from_rows(cur.fetchall())

    def buckets_sync(self, device_id: str, metric: str, resolution: Resolution,
                     start: float, end: float, limit: int = 10_000) -> list[Bucket]:
        """Rollup buckets of one series whose start lies in [start aligned down, end]."""
        conn = self._reader()
        sid = self._series_of(conn, device_id, metric)
        if sid is None:
            return []
        size = BUCKET_MS[resolution]
        lo = round(start * 1000)
        lo -= lo % size
        hi = round(end * 1000)
        conn.execute("BEGIN")
        try:
            stored = rollup_buckets_in(conn, sid, resolution, lo, hi)
            head = self._head_buckets(conn, sid, size, lo, hi)
        finally:
            conn.execute("COMMIT")
        # a bucket's head part counts only what compaction has not added yet
        head = BucketColumns.from_rows([r for r in head.rows() if r[0] <= hi])
        merged = merge_buckets(stored, head)
        return [Bucket(b / 1000.0, n, float(lo_v), float(hi_v), s / n)
                for b, n, s, lo_v, hi_v in merged.rows()[:limit]]

    async def history(self, device_id: str, metric: str, start: float, end: float,
                      limit: int = 10_000) -> list[HistoryPoint]:
        return await asyncio.to_thread(self.history_sync, device_id, metric, start, end, limit)

    def history_auto_sync(
        self, device_id: str, metric: str, start: float, end: float, *,
        resolution: Literal["auto", "raw", "1m", "1h"] | Resolution = "auto",
        now: float | None = None, limit: int = 10_000,
    ) -> HistoryResult:
        """History at the resolution that suits the range, or the one asked for.

        Args:
            start, end: epoch seconds, inclusive.
            resolution: ``auto`` asks ``choose_resolution`` (raw up to 6 h, 1-minute buckets
                up to 2 days, 1-hour buckets beyond, skipping what retention removed);
                ``raw``, ``1m`` or ``1h`` force one.
            now: epoch seconds used by ``auto`` to judge retention (default: wall clock).
        """
        if resolution == "auto":
            res = choose_resolution(start, end, time.time() if now is None else now,
                                    self.policy.resolution)
        else:
            res = Resolution(resolution)
        if res is Resolution.RAW:
            return HistoryResult(res, points=tuple(
                self.history_sync(device_id, metric, start, end, limit)))
        return HistoryResult(res, buckets=tuple(
            self.buckets_sync(device_id, metric, res, start, end, limit)))

    async def history_auto(
        self, device_id: str, metric: str, start: float, end: float, *,
        resolution: Literal["auto", "raw", "1m", "1h"] | Resolution = "auto",
        now: float | None = None, limit: int = 10_000,
    ) -> HistoryResult:
        return await asyncio.to_thread(
            lambda: self.history_auto_sync(device_id, metric, start, end,
                                           resolution=resolution, now=now, limit=limit))

    def count_sync(self) -> int:
        """Raw points stored: in chunks and in the head (reads every chunk row's count)."""
        conn = self._reader()
        return int(conn.execute("SELECT (SELECT coalesce(sum(count), 0) FROM chunks) + "
                                "(SELECT count(*) FROM points_head)").fetchone()[0])

    def close(self) -> None:
        """Close the write connection and stop the writer thread (a second call is a no-op)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.call(self._conn.close)
        finally:
            self._writer.close()


def dump_points(path: Path) -> Iterator[tuple[str, str, int, Value | None, int]]:
    """Every raw point of a telemetry database as (device, metric, ts_ms, value, quality
    code): the chunks' and then the head's, unsorted; for tests and diagnostics (a point
    stored twice comes out twice)."""
    conn = connect(path, synchronous="NORMAL", readonly=True)
    try:
        conn.execute("BEGIN")
        names = {sid: (d, m) for sid, d, m in conn.execute(
            "SELECT id, device_id, metric FROM series")}
        for sid, blob in conn.execute("SELECT series_id, blob FROM chunks"):
            device, metric = names[sid]
            ts, (values, quals) = decode_columns(blob)
            for t, v, q in zip(ts, values, quals, strict=True):
                yield device, metric, t, v, q
        for sid, t, v, q in conn.execute("SELECT series_id, ts_ms, value, quality "
                                         "FROM points_head"):
            device, metric = names[sid]
            yield device, metric, t, v, q
        conn.execute("COMMIT")
    finally:
        conn.close()
