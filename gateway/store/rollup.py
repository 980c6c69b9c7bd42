"""Downsampled rollups (1-minute and 1-hour min/max/avg/count) and the choice of resolution.

Rollups are kept by SQLite triggers on ``points``: a trigger fires only for a row that was
really inserted (``INSERT OR IGNORE`` skipping a redelivered reading fires nothing), and it
runs inside the batch's transaction, so a rollup can never disagree with the raw points it
was built from, not even after a SIGKILL between two batches. Only numeric values of
quality good or uncertain are rolled up (booleans count as 0/1; text is skipped).

The tables keep ``sum`` rather than the average, so a bucket can keep growing; the average
is ``sum / count`` when read.
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
    series_id INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (series_id, bucket_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h (
    series_id INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (series_id, bucket_ms)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS points_rollup AFTER INSERT ON points
WHEN NEW.quality <= 1 AND typeof(NEW.value) IN ('integer', 'real')
BEGIN
    INSERT INTO rollup_1m (series_id, bucket_ms, count, sum, min, max)
    VALUES (NEW.series_id, NEW.ts_ms - (NEW.ts_ms % 60000), 1, NEW.value, NEW.value, NEW.value)
    ON CONFLICT (series_id, bucket_ms) DO UPDATE SET
        count = count + 1, sum = sum + excluded.sum,
        min = min(min, excluded.min), max = max(max, excluded.max);
    INSERT INTO rollup_1h (series_id, bucket_ms, count, sum, min, max)
    VALUES (NEW.series_id, NEW.ts_ms - (NEW.ts_ms % 3600000), 1, NEW.value, NEW.value,
            NEW.value)
    ON CONFLICT (series_id, bucket_ms) DO UPDATE SET
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
    cur = conn.execute(
        f"SELECT bucket_ms, count, sum, min, max FROM {TABLE[resolution]} "  # noqa: S608
        "WHERE series_id = ? AND bucket_ms >= ? AND bucket_ms <= ? ORDER BY bucket_ms LIMIT ?",
        (series_id, lo, round(end * 1000), limit))
    return [Bucket(b / 1000.0, n, lo_v, hi_v, s / n) for b, n, s, lo_v, hi_v in cur]
