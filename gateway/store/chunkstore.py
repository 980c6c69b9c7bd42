"""The chunk tables of the telemetry database: compacted points and rollups, one compressed
blob per series per hour (per day for 1-hour rollups); merging rows into them, reading them.

Layout (all three tables alike)::

    chunks           (key INTEGER PRIMARY KEY, series_id, start_ms, first_ms, last_ms, count, blob)
    rollup_1m_chunks (key INTEGER PRIMARY KEY, series_id, start_ms, count, blob)  -- an hour of minutes
    rollup_1h_chunks (key INTEGER PRIMARY KEY, series_id, start_ms, count, blob)  -- a day of hours

``key`` is ``(start_ms // span) << 24 | series_id``: **time first**, so the chunks being
filled right now, of every series, sit together at the end of the b-tree (a compaction
rewrites a few thousand adjacent pages, not one page per series all over the file),
retention deletes one contiguous range, and a one-series query seeks one key per hour.
It is the rowid of an ordinary table rather than a ``WITHOUT ROWID`` key because a rowid
table keeps a record of up to ~4 KB on its page, where an index b-tree spills anything over
~1 KB to a whole overflow page (a noisy series' hour is 1-3 KB). ``count`` is the number of
points (buckets) in the blob, so retention and ``store stats`` count without decoding.

Blobs are ``chunks.encode_columns``: points as (time, [value, quality code]); rollups as
(bucket start, [count, sum, min, max]).

``merge_series`` is the one way rows get in: live compaction of the head and
``TelemetryStore.import_runs_sync`` (bulk import) both call it, so both build identical
chunks and rollups from identical points. It writes through a ``ChunkBatch``, which holds
the transaction's rows and writes them at the end **in key order**: the rows of one hour go
in as an append to the end of the b-tree (full pages), not as inserts between existing rows
(half-full pages after splits).
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from gateway.errors import StoreError
from gateway.store.chunks import decode_columns, encode_columns
from gateway.store.rollup import (
    BucketColumns,
    Resolution,
    bucketize,
    merge_buckets,
    numeric_run,
)

__all__ = ["CHUNK_MS", "ChunkBatch", "encode_fresh", "span_is_empty", "CHUNK_SCHEMA", "DAY_MS", "SERIES_BITS", "chunk_key", "merge_series",
           "points_in", "rollup_buckets_in", "ts_in_chunk"]

CHUNK_MS = 3_600_000
DAY_MS = 86_400_000
SERIES_BITS = 24
MAX_SERIES = (1 << SERIES_BITS) - 1

CHUNK_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    key INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_1m_chunks (
    key INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_1h_chunks (
    key INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    blob BLOB NOT NULL
);
"""

# rollup resolution → (table, span of one chunk, bucket size)
ROLLUP_TABLES = {Resolution.MINUTE: ("rollup_1m_chunks", CHUNK_MS, 60_000),
                 Resolution.HOUR: ("rollup_1h_chunks", DAY_MS, 3_600_000)}


def chunk_key(start_ms: int, span_ms: int, series_id: int) -> int:
    """The rowid of a series' chunk that starts at ``start_ms`` (a multiple of ``span_ms``)."""
    if not 0 < series_id <= MAX_SERIES:
        raise StoreError(f"series id {series_id} does not fit a chunk key")
    return (start_ms // span_ms) << SERIES_BITS | series_id


def _merge_points(old_ts: list[int], old_cols: list[list[Any]], ts: Sequence[int],
                  values: Sequence[Any], qualities: Sequence[int]
                  ) -> tuple[list[int], list[Any], list[int], list[int], list[Any], list[int]]:
    """The chunk's points plus the new ones (a new point at an instant the chunk already
    holds is dropped: the stored one wins), and the new points actually added."""
    old_v, old_q = old_cols
    if ts[0] > old_ts[-1]:  # the usual case: appending
        return (old_ts + list(ts), old_v + list(values), old_q + list(qualities),
                list(ts), list(values), list(qualities))
    known = set(old_ts)
    keep = [i for i, t in enumerate(ts) if t not in known]
    add_t = [ts[i] for i in keep]
    add_v = [values[i] for i in keep]
    add_q = [qualities[i] for i in keep]
    rows = sorted(zip(old_ts + add_t, old_v + add_v, old_q + add_q, strict=True),
                  key=itemgetter(0))
    mt, mv, mq = (list(c) for c in zip(*rows, strict=True))
    return mt, mv, mq, add_t, add_v, add_q


Rows = dict[str, dict[int, tuple[Any, ...]]]


class ChunkBatch:
    """The chunk rows one transaction writes, kept in memory and written in key order by
    ``flush``; ``blob`` sees rows put earlier in the same batch. Without a connection it
    starts from empty tables (what a bulk import into an empty span does in a worker
    process; ``rows`` is then its whole result)."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn
        self.rows: Rows = {"chunks": {}, "rollup_1m_chunks": {}, "rollup_1h_chunks": {}}

    def blob(self, table: str, key: int) -> bytes | None:
        row = self.rows[table].get(key)
        if row is not None:
            return row[-1]  # type: ignore[no-any-return]
        if self.conn is None:
            return None
        got = self.conn.execute(f"SELECT blob FROM {table} WHERE key = ?",  # noqa: S608
                                (key,)).fetchone()
        return None if got is None else got[0]  # type: ignore[no-any-return]

    def absorb(self, rows: Rows) -> bool:
        """Take another batch's rows, unless one has a key this batch holds (False)."""
        if any(not self.rows[t].keys().isdisjoint(r) for t, r in rows.items()):
            return False
        for table, got in rows.items():
            self.rows[table].update(got)
        return True

    def put(self, table: str, row: tuple[Any, ...]) -> None:
        """``row`` is the table's columns in order, key first and blob last."""
        self.rows[table][row[0]] = row

    def flush(self) -> None:
        assert self.conn is not None, "a batch without a connection cannot be flushed"  # noqa: S101
        for table, rows in self.rows.items():
            if rows:
                marks = ", ".join("?" * len(next(iter(rows.values()))))
                self.conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})",  # noqa: S608
                                      [rows[k] for k in sorted(rows)])
                rows.clear()


def _merge_rollups(batch: ChunkBatch, series_id: int, new: BucketColumns,
                   table: str, span_ms: int) -> None:
    i = 0
    n = len(new)
    while i < n:
        start = new.starts[i] - new.starts[i] % span_ms
        j = bisect_left(new.starts, start + span_ms, i)
        part = BucketColumns(new.starts[i:j], new.counts[i:j], new.sums[i:j], new.mins[i:j],
                             new.maxs[i:j])
        key = chunk_key(start, span_ms, series_id)
        old = batch.blob(table, key)
        if old is not None:
            starts, cols = decode_columns(old)
            part = merge_buckets(BucketColumns(starts, *cols), part)
        blob = encode_columns(part.starts, [part.counts, part.sums, part.mins, part.maxs])
        batch.put(table, (key, series_id, start, len(part), blob))
        i = j


def merge_series(batch: ChunkBatch, series_id: int, ts: Sequence[int],
                 values: Sequence[Any], qualities: Sequence[int]) -> int:
    """Merge one series' points (``ts`` strictly increasing, ms) into its hour chunks, and
    what they add into its 1-minute and 1-hour rollups; returns the points added.

    Runs inside the caller's transaction (compaction deletes the head rows in the same one);
    the caller flushes ``batch`` before committing.
    """
    n = len(ts)
    bounds = [0]
    while bounds[-1] < n:
        i = bounds[-1]
        bounds.append(bisect_left(ts, ts[i] - ts[i] % CHUNK_MS + CHUNK_MS, i))
    hours = list(zip(bounds[:-1], bounds[1:]))
    keys = [chunk_key(ts[i] - ts[i] % CHUNK_MS, CHUNK_MS, series_id) for i, _ in hours]
    olds = [batch.blob("chunks", key) for key in keys]
    if not any(olds):
        # the usual case, and a bulk import's: every point is new; the rollups' scaling of
        # the values is reused for the chunks
        run = numeric_run(ts, values, qualities)
        fresh = run.exact is not None and run.ts is ts and type(values[0]) is float
        for (i, j), key in zip(hours, keys, strict=True):
            hint = {0: (run.scale, run.exact[i:j])} if fresh else None  # type: ignore[index]
            start = ts[i] - ts[i] % CHUNK_MS
            batch.put("chunks", (key, series_id, start, ts[i], ts[j - 1], j - i, encode_columns(
                ts[i:j], [values[i:j], qualities[i:j]], scaled=hint)))
        added = n
    else:
        added_t: list[int] = []
        added_v: list[Any] = []
        added_q: list[int] = []
        for (i, j), key, old in zip(hours, keys, olds, strict=True):
            start = ts[i] - ts[i] % CHUNK_MS
            if old is None:
                mt, mv, mq = list(ts[i:j]), list(values[i:j]), list(qualities[i:j])
                at, av, aq = mt, mv, mq
            else:
                old_ts, old_cols = decode_columns(old)
                mt, mv, mq, at, av, aq = _merge_points(old_ts, old_cols, ts[i:j], values[i:j],
                                                       qualities[i:j])
            if at:
                batch.put("chunks", (key, series_id, start, mt[0], mt[-1], len(mt),
                                     encode_columns(mt, [mv, mq])))
                added_t += at
                added_v += av
                added_q += aq
        run = numeric_run(added_t, added_v, added_q)
        added = len(added_t)
    if run.ts:
        for table, span, size in ROLLUP_TABLES.values():
            _merge_rollups(batch, series_id, bucketize(run, size), table, span)
    return added


def _blobs(conn: sqlite3.Connection, table: str, series_id: int, span_ms: int, lo_ms: int,
           hi_ms: int) -> list[bytes]:
    """Blobs of the series' chunks that start in [``lo_ms`` aligned down, ``hi_ms``]."""
    first = chunk_key(lo_ms - lo_ms % span_ms, span_ms, series_id)
    last = chunk_key(hi_ms - hi_ms % span_ms, span_ms, series_id)
    # one rowid seek per chunk the range could hold (an hour or a day each)
    cur = conn.execute(
        "WITH RECURSIVE k(v) AS (SELECT ? UNION ALL SELECT v + ? FROM k WHERE v + ? <= ?) "
        f"SELECT c.blob FROM k JOIN {table} c ON c.key = k.v ORDER BY c.key",  # noqa: S608
        (first, 1 << SERIES_BITS, 1 << SERIES_BITS, last))
    return [b for (b,) in cur]


def points_in(conn: sqlite3.Connection, series_id: int, lo_ms: int, hi_ms: int
              ) -> tuple[list[int], list[Any], list[int]]:
    """The compacted points of one series with ``lo_ms <= ts <= hi_ms``, in time order."""
    if hi_ms < lo_ms:
        return [], [], []
    ts: list[int] = []
    values: list[Any] = []
    quals: list[int] = []
    for blob in _blobs(conn, "chunks", series_id, CHUNK_MS, lo_ms, hi_ms):
        t, (v, q) = decode_columns(blob)
        a = bisect_left(t, lo_ms) if t[0] < lo_ms else 0
        b = bisect_right(t, hi_ms) if t[-1] > hi_ms else len(t)
        ts += t[a:b]
        values += v[a:b]
        quals += q[a:b]
    return ts, values, quals


def rollup_buckets_in(conn: sqlite3.Connection, series_id: int, resolution: Resolution,
                      lo_ms: int, hi_ms: int) -> BucketColumns:
    """Compacted buckets of one series whose start lies in [``lo_ms``, ``hi_ms``]."""
    table, span, _ = ROLLUP_TABLES[resolution]
    out = BucketColumns([], [], [], [], [])
    if hi_ms < lo_ms:
        return out
    for blob in _blobs(conn, table, series_id, span, lo_ms, hi_ms):
        starts, (c, s, mn, mx) = decode_columns(blob)
        a = bisect_left(starts, lo_ms)
        b = bisect_right(starts, hi_ms)
        out.starts.extend(starts[a:b])
        out.counts.extend(c[a:b])
        out.sums.extend(s[a:b])
        out.mins.extend(mn[a:b])
        out.maxs.extend(mx[a:b])
    return out


def ts_in_chunk(conn: sqlite3.Connection, series_id: int, start_ms: int) -> frozenset[int]:
    """The instants the chunk of ``series_id`` starting at ``start_ms`` holds (for the
    duplicate check of a late reading)."""
    row = conn.execute("SELECT blob FROM chunks WHERE key = ?",
                       (chunk_key(start_ms, CHUNK_MS, series_id),)).fetchone()
    return frozenset() if row is None else frozenset(decode_columns(row[0])[0])


def encode_fresh(series_id: int, ts: Sequence[int], values: Sequence[Any],
                 qualities: Sequence[int]) -> tuple[int, Rows]:
    """``merge_series`` into empty tables: the rows a series' points make on their own.
    Picklable, so a bulk import can run it in worker processes."""
    batch = ChunkBatch(None)
    added = merge_series(batch, series_id, ts, values, qualities)
    return added, batch.rows


def span_is_empty(conn: sqlite3.Connection, first_ms: int, last_ms: int) -> bool:
    """No chunk of any series, of any table, covers an instant in [first_ms, last_ms]."""
    for table, span in (("chunks", CHUNK_MS), ("rollup_1m_chunks", CHUNK_MS),
                        ("rollup_1h_chunks", DAY_MS)):
        lo = (first_ms // span) << SERIES_BITS
        hi = (last_ms // span + 1) << SERIES_BITS
        if conn.execute(f"SELECT 1 FROM {table} WHERE key >= ? AND key < ? "  # noqa: S608
                        "LIMIT 1", (lo, hi)).fetchone() is not None:
            return False
    return True
