"""Rollups: stored by compaction for the points it adds, aggregated from the head when
asked, only for numeric good/uncertain points, and right against the raw points."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.chunks import decode_columns
from gateway.store.rollup import Resolution
from gateway.types import Quality, Reading
from tests.unit.store.conftest import T0


def r(value, at, metric="level_pct", device="tank-a", quality=Quality.GOOD) -> Reading:
    return Reading(device, metric, value, at, quality=quality)


async def test_rollup_minute_and_hour_min_max_avg_count(make_store):
    store = make_store()
    # 0..11 every 10 s: minute 0 holds 0..5, minute 1 holds 6..11
    await store.write([r(float(i), T0 + 10 * i) for i in range(12)])
    m = store.history_auto_sync("tank-a", "level_pct", T0, T0 + 3600, resolution="1m")
    assert m.resolution is Resolution.MINUTE
    assert [(b.start, b.count, b.min, b.max, b.avg) for b in m.buckets] == [
        (T0, 6, 0.0, 5.0, 2.5), (T0 + 60, 6, 6.0, 11.0, 8.5)]
    h = store.history_auto_sync("tank-a", "level_pct", T0, T0 + 3600, resolution="1h")
    assert [(b.start, b.count, b.min, b.max, b.avg) for b in h.buckets] == [
        (T0, 12, 0.0, 11.0, 5.5)]


async def test_rollup_grows_across_batches(make_store):
    store = make_store()
    await store.write([r(10.0, T0 + 1)])
    await store.write([r(-4.0, T0 + 2), r(30, T0 + 3)])  # an int counts like a float
    (b,) = store.history_auto_sync("tank-a", "level_pct", T0, T0 + 59, resolution="1m").buckets
    assert (b.count, b.min, b.max, b.avg) == (3, -4.0, 30.0, 12.0)


async def test_rollup_ignores_redelivered_reading(make_store):
    store = make_store()
    batch = [r(1.0, T0), r(3.0, T0 + 10)]
    assert await store.write(batch) == 2
    assert await store.write(batch) == 0  # QoS 1 redelivery: same device time
    assert store.duplicates_ignored == 2
    (b,) = store.history_auto_sync("tank-a", "level_pct", T0, T0 + 59, resolution="1m").buckets
    assert (b.count, b.avg) == (2, 2.0)


async def test_rollup_skips_text_bad_and_unavailable(make_store):
    store = make_store()
    await store.write([
        r("open", T0, metric="door_state"),
        r(50.0, T0 + 1), r(99.0, T0 + 2, quality=Quality.BAD),
        r(0.0, T0 + 3, quality=Quality.UNAVAILABLE), r(52.0, T0 + 4, quality=Quality.UNCERTAIN),
        r(True, T0 + 5, metric="pump_on"),
    ])
    (b,) = store.history_auto_sync("tank-a", "level_pct", T0, T0 + 59, resolution="1m").buckets
    assert (b.count, b.min, b.max) == (2, 50.0, 52.0)
    assert store.history_auto_sync("tank-a", "door_state", T0, T0 + 59,
                                   resolution="1m").buckets == ()
    (p,) = store.history_auto_sync("tank-a", "pump_on", T0, T0 + 59, resolution="1m").buckets
    assert (p.count, p.max) == (1, 1.0)


async def test_rollup_write_returns_point_count_not_trigger_rows(make_store):
    store = make_store(outbox=True)
    assert await store.write([r(float(i), T0 + i) for i in range(100)]) == 100
    assert store.points_written == 100


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7200), st.floats(-1e6, 1e6, allow_nan=False)),
                min_size=1, max_size=60))
def test_rollup_matches_recomputation_from_raw(tmp_path_factory, samples):
    from gateway.store.sqlite import TelemetryStore
    store = TelemetryStore(tmp_path_factory.mktemp("h") / "t.db")
    try:
        import asyncio
        asyncio.run(store.write([r(v, T0 + s) for s, v in samples]))
        kept: dict[int, float] = {}
        for s, v in samples:
            kept.setdefault(s, v)  # the first reading of a timestamp wins (INSERT OR IGNORE)
        for res, size in ((Resolution.MINUTE, 60), (Resolution.HOUR, 3600)):
            expect: dict[float, list[float]] = {}
            for s, v in kept.items():
                expect.setdefault(T0 + s - s % size, []).append(v)
            got = store.history_auto_sync("tank-a", "level_pct", T0, T0 + 7200,
                                          resolution=res).buckets
            assert [b.start for b in got] == sorted(expect)
            for b in got:
                vals = expect[b.start]
                assert (b.count, b.min, b.max) == (len(vals), min(vals), max(vals))
                assert abs(b.avg - sum(vals) / len(vals)) <= 1e-6 * max(1.0, *map(abs, vals))
    finally:
        store.close()


def rolled_up(conn: sqlite3.Connection, table: str) -> int:
    """Points counted by the buckets of a rollup chunk table (decoded)."""
    return sum(sum(decode_columns(blob)[1][0]) for (blob,) in conn.execute(
        f"SELECT blob FROM {table}"))


async def test_rollup_consistent_with_points_in_database(make_store, tmp_path):
    store = make_store()
    await store.write([r(float(i), T0 + 7 * i, device=f"d{i % 3}") for i in range(3000)])
    conn = sqlite3.connect(tmp_path / "telemetry.db")
    try:
        compacted = conn.execute("SELECT sum(count) FROM chunks").fetchone()[0]
        head = conn.execute("SELECT count(*) FROM points_head").fetchone()[0]
        m1 = rolled_up(conn, "rollup_1m_chunks")
        h1 = rolled_up(conn, "rollup_1h_chunks")
    finally:
        conn.close()
    # compaction stored the rollups of exactly the points it moved into chunks
    assert compacted > 0 and compacted + head == 3000
    assert m1 == h1 == compacted
    # and the head's points are counted when a query asks
    day = store.history_auto_sync("d0", "level_pct", T0, T0 + 86_400, resolution="1h")
    assert sum(b.count for b in day.buckets) == 1000
