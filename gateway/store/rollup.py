"""Downsampled rollups (1-minute and 1-hour min/max/avg/count): how buckets are computed
from points and merged, and the choice of resolution; pure (the tables are in
``chunkstore.py``).

Rollups are computed when the head is compacted into chunks, from exactly the points that
compaction adds (a duplicate that compaction drops is not counted), in the same transaction
(``chunkstore.merge_series``): a rollup can never disagree with the chunks it was built
from, not even after a SIGKILL. Points still in the head are aggregated when a query asks
(``TelemetryStore.history_auto_sync``). Only numeric values of quality good or uncertain are
rolled up (booleans count as 0/1; text is skipped).

Buckets keep the ``sum`` rather than the average, so a bucket can keep growing; the
average is ``sum / count`` when read. When every value is a short decimal (what sensors
send), sums are added as scaled integers, so a bucket's sum is the exact decimal sum
(``0.1 + 0.2`` is stored as ``0.3``): that keeps the sum column as compressible as the
values themselves.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from gateway.store.chunks import decimal_scale

__all__ = ["BUCKET_MS", "Bucket", "BucketColumns", "NumericRun", "Resolution",
           "ResolutionPolicy", "add_sums", "bucketize", "choose_resolution", "merge_buckets",
           "numeric_run"]

Number = int | float


class Resolution(StrEnum):
    RAW = "raw"
    MINUTE = "1m"
    HOUR = "1h"


BUCKET_MS = {Resolution.MINUTE: 60_000, Resolution.HOUR: 3_600_000}


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


@dataclass(frozen=True, slots=True)
class NumericRun:
    """The points of one series a rollup counts, in time order.

    ``exact`` holds ``values`` × 10**``scale`` as integers when every value is a short
    decimal (or an integer, scale 0), else None.
    """

    ts: Sequence[int]
    values: Sequence[Number]
    exact: Sequence[int] | None
    scale: int


@dataclass(frozen=True, slots=True)
class BucketColumns:
    """Buckets as parallel columns (the shape a rollup chunk stores): bucket start (ms),
    count, sum, min, max."""

    starts: list[int]
    counts: list[int]
    sums: list[Number]
    mins: list[Number]
    maxs: list[Number]

    def __len__(self) -> int:
        return len(self.starts)

    def rows(self) -> list[tuple[int, int, Number, Number, Number]]:
        return list(zip(self.starts, self.counts, self.sums, self.mins, self.maxs, strict=True))

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, int, Number, Number, Number]]) \
            -> BucketColumns:
        if not rows:
            return cls([], [], [], [], [])
        s, c, t, lo, hi = map(list, zip(*rows, strict=True))
        return cls(s, c, t, lo, hi)


def numeric_run(ts: Sequence[int], values: Sequence[object],
                qualities: Sequence[int]) -> NumericRun:
    """The points a rollup counts: numbers (booleans as 0/1) of quality code 0 or 1."""
    kinds = set(map(type, values))
    if kinds <= {int, float} and (not qualities or max(qualities) <= 1):
        t, v = ts, values
    else:
        keep = [i for i, (x, q) in enumerate(zip(values, qualities, strict=True))
                if q <= 1 and type(x) in (int, float, bool)]
        t = [ts[i] for i in keep]
        v = [int(x) if type(x) is bool else x for x in (values[i] for i in keep)]
        kinds = set(map(type, v))
    if kinds == {int}:
        return NumericRun(t, v, v, 0)  # type: ignore[arg-type]
    floats = v if kinds == {float} else list(map(float, v))  # type: ignore[arg-type]
    found = decimal_scale(floats)  # type: ignore[arg-type]
    if found is None:
        return NumericRun(t, floats, None, 0)  # type: ignore[arg-type]
    return NumericRun(t, floats, found[1], found[0])  # type: ignore[arg-type]


def _bounds(ts: Sequence[int], size_ms: int) -> list[int]:
    """Indexes where each bucket starts in ``ts`` (sorted), and ``len(ts)`` at the end."""
    n = len(ts)
    step = ts[1] - ts[0] if n > 1 else size_ms
    if n > 1 and 0 < step <= size_ms and size_ms % step == 0 \
            and ts[-1] - ts[0] == step * (n - 1) \
            and list(ts) == list(range(ts[0], ts[-1] + 1, step)):
        # a regular cadence that divides the bucket: buckets are fixed strides of indexes
        per = size_ms // step
        first = -(-(size_ms - ts[0] % size_ms) // step)  # points before the next boundary
        return [0, *range(min(first, n), n, per), n] if first < n else [0, n]
    out = [0]
    i = 0
    while i < n:
        start = ts[i] - ts[i] % size_ms
        i = bisect_left(ts, start + size_ms, i)
        out.append(i)
    return out


def bucketize(run: NumericRun, size_ms: int) -> BucketColumns:
    """Aligned buckets of ``size_ms`` over ``run`` (a few C-level calls per bucket)."""
    ts, values, exact = run.ts, run.values, run.exact
    if not ts:
        return BucketColumns([], [], [], [], [])
    bounds = _bounds(ts, size_ms)
    slices = list(map(slice, bounds[:-1], bounds[1:]))
    segs = list(map(values.__getitem__, slices))
    starts = [ts[i] - ts[i] % size_ms for i in bounds[:-1]]
    counts = list(map(operator.sub, bounds[1:], bounds[:-1]))
    if exact is None:
        sums: list[Number] = list(map(sum, segs))
    else:
        totals = list(map(sum, map(exact.__getitem__, slices)))
        if run.scale == 0 and type(values[0]) is int:
            sums = totals  # type: ignore[assignment]
        else:
            sums = list(map(float(10 ** run.scale).__rtruediv__, totals))
    return BucketColumns(starts, counts, sums, list(map(min, segs)), list(map(max, segs)))


def add_sums(a: Number, b: Number) -> Number:
    """``a + b``, exact for integers, and for short decimals the decimal sum (so that
    0.1 + 0.2 stays 0.3 and the sum column stays compressible)."""
    if type(a) is int and type(b) is int:
        return a + b
    return float(Decimal(repr(float(a))) + Decimal(repr(float(b))))


def merge_buckets(old: BucketColumns, new: BucketColumns) -> BucketColumns:
    """Buckets of both, by start; a bucket in both adds counts and sums, keeps min/max."""
    if not len(old):
        return new
    if not len(new):
        return old
    if new.starts[0] > old.starts[-1]:
        return BucketColumns(old.starts + new.starts, old.counts + new.counts,
                             old.sums + new.sums, old.mins + new.mins, old.maxs + new.maxs)
    merged = {row[0]: row for row in old.rows()}
    for s, c, t, lo, hi in new.rows():
        got = merged.get(s)
        merged[s] = (s, c, t, lo, hi) if got is None else \
            (s, got[1] + c, add_sums(got[2], t), min(got[3], lo), max(got[4], hi))
    return BucketColumns.from_rows([merged[s] for s in sorted(merged)])
