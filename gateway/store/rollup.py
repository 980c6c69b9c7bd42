"""Downsampled rollups (1-minute and 1-hour min/max/avg/count) and the choice of resolution.

Rollups are kept by SQLite triggers on ``points_head``, where new readings land (see
``sqlite.py``; moving rows on to ``points`` fires nothing): a trigger fires only for a row
that was really inserted (``INSERT OR IGNORE`` skipping a redelivered reading fires nothing), and it
runs inside the batch's transaction, so a rollup can never disagree with the raw points it
was built from, not even after a SIGKILL between two batches. Only numeric values of
quality good or uncertain are rolled up (booleans count as 0/1; text is skipped).

The tables keep ``sum`` rather than the average, so a bucket can keep growing; the average
is ``sum / count`` when read.

Rollups are keyed **time first**, ``(bucket_ms, series_id)``, unlike raw points: the
current minute's and hour's buckets of every series then sit side by side at the end of the
b-tree, so a batch dirties a handful of pages there instead of one page per series (on an
SD card that is the difference between ~1 and ~3 page writes per point). A query for one
series walks its bucket starts (a generated series of instants) and seeks each one, which
costs one b-tree lookup per bucket: about 360 for 15 days of hours. Retention deletes a
contiguous range.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ROLLUP_SCHEMA", "Bucket", "Resolution", "ResolutionPolicy", "buckets_sync",
           "choose_resolution"]


class Resolution(StrEnum):
    RAW = "raw"
    MINUTE = "1m"
    HOUR = "1h"


BUCKET_MS = {Resolution.MINUTE: 60_000, Resolution.HOUR: 3_600_000}
TABLE = {Resolution.MINUTE: "rollup_1m", Resolution.HOUR: "rollup_1h"}

# quality codes 0 (good) and 1 (uncertain) are rolled up; see sqlite.QUALITY_CODE
ROLLUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup_1m (
    bucket_ms INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (bucket_ms, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h (
    bucket_ms INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (bucket_ms, series_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS points_rollup AFTER INSERT ON points_head
WHEN NEW.quality <= 1 AND typeof(NEW.value) IN ('integer', 'real')
BEGIN
    INSERT INTO rollup_1m (series_id, bucket_ms, count, sum, min, max)
    VALUES (NEW.series_id, NEW.ts_ms - (NEW.ts_ms % 60000), 1, NEW.value, NEW.value, NEW.value)
    ON CONFLICT (bucket_ms, series_id) DO UPDATE SET
        count = count + 1, sum = sum + excluded.sum,
        min = min(min, excluded.min), max = max(max, excluded.max);
    INSERT INTO rollup_1h (series_id, bucket_ms, count, sum, min, max)
    VALUES (NEW.series_id, NEW.ts_ms - (NEW.ts_ms % 3600000), 1, NEW.value, NEW.value,
            NEW.value)
    ON CONFLICT (bucket_ms, series_id) DO UPDATE SET
        count = count + 1, sum = sum + excluded.sum,
        min = min(min, excluded.min), max = max(max, excluded.max);
END;
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One rollup bucket: ``start`` (epoch s) is the bucket's first instant."""

    start: float
    count: int
    min: float
    max: float
    avg: float


@dataclass(frozen=True, slots=True)
class ResolutionPolicy:
    """How ``choose_resolution`` trades detail against the number of rows returned.

    Raw points are used for spans up to ``raw_max_span_s``, 1-minute buckets up to
    ``minute_max_span_s``, 1-hour buckets beyond; a resolution whose data has already been
    removed by retention for part of the range is skipped for a coarser one.
    """

    raw_max_span_s: float = 6 * 3600.0
    minute_max_span_s: float = 2 * 86_400.0
    raw_keep_s: float = 15 * 86_400.0
    minute_keep_s: float = 90 * 86_400.0


def choose_resolution(start: float, end: float, now: float,
                      policy: ResolutionPolicy = ResolutionPolicy()) -> Resolution:
    """Pick the finest resolution that is both small enough for the span and still kept.

    Pure: ``now`` is passed in. Example: a 1-day range ending now gives ``1m``; a 15-day
    range gives ``1h``; the last hour gives ``raw``.
    """
    span = max(0.0, end - start)
    if span <= policy.raw_max_span_s and start >= now - policy.raw_keep_s:
        return Resolution.RAW
    if span <= policy.minute_max_span_s and start >= now - policy.minute_keep_s:
        return Resolution.MINUTE
    return Resolution.HOUR


def buckets_sync(conn: sqlite3.Connection, series_id: int, resolution: Resolution,
                 start: float, end: float, limit: int) -> list[Bucket]:
    """Buckets of one series whose start lies in [start aligned down, end]."""
    size = BUCKET_MS[resolution]
    lo = round(start * 1000)
    lo -= lo % size
    hi = round(end * 1000)
    if hi < lo:
        return []
    # one primary-key seek per bucket start (the table is keyed time first)
    cur = conn.execute(
        "WITH RECURSIVE b(t) AS (SELECT ? UNION ALL SELECT t + ? FROM b WHERE t + ? <= ?) "
        f"SELECT r.bucket_ms, r.count, r.sum, r.min, r.max FROM b "  # noqa: S608
        f"JOIN {TABLE[resolution]} r ON r.bucket_ms = b.t AND r.series_id = ? "
        "ORDER BY r.bucket_ms LIMIT ?",
        (lo, size, size, hi, series_id, limit))
    return [Bucket(b / 1000.0, n, lo_v, hi_v, s / n) for b, n, s, lo_v, hi_v in cur]
