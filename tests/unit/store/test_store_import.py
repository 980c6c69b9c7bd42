"""Bulk import builds the very chunks and rollups the live path (write → head → compaction)
builds; it refuses to overlap the head and leaves the watermark past what it imported."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.errors import StoreError
from gateway.store.sqlite import SeriesRun
from gateway.types import Quality, Reading
from tests.unit.store.conftest import T0

N = 900  # 2.5 hours every 10 s: chunks of whole and partial hours


def data() -> dict[tuple[str, str], tuple[list[int], list]]:
    """Per series: instants (ms) and values of a sensor walk, a counter, a pump and a door."""
    ts = [round(T0 * 1000) + 10_000 * i for i in range(N)]
    walk, level = [], 2_000
    for i in range(N):
        level += (-2, -1, 0, 1, 2, 0, 1)[(i * 5) % 7]
        walk.append(level / 100)
    return {
        ("tank-a", "level_pct"): (ts, walk),
        ("meter-1", "kwh"): (ts, [i // 3 for i in range(N)]),
        ("pump-1", "running"): (ts, [(i // 100) % 2 == 1 for i in range(N)]),
        ("gate-1", "door_state"): (ts, ["open" if i % 50 < 5 else "closed" for i in range(N)]),
    }


def table_rows(path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY key").fetchall()
                for t in ("chunks", "rollup_1m_chunks", "rollup_1h_chunks")}
    finally:
        conn.close()


@pytest.mark.parametrize(("workers", "flush_every"), [(1, 1000), (2, 1000), (1, 1), (1, 3)])
async def test_import_builds_the_same_chunks_and_rollups_as_the_live_path(
        make_store, tmp_path, monkeypatch, workers, flush_every):
    # flush_every: the compaction writes its chunk rows every so many series (1 and 3: the
    # rows of one series' hour, or of a series' two hours, end up in separate flushes)
    monkeypatch.setattr("gateway.store.sqlite.COMPACT_FLUSH_SERIES", flush_every)
    series = data()
    live = make_store(name="live.db")
    for i in range(0, N, 30):  # five minutes of every series per batch, as the gateway would
        await live.write([Reading(dev, metric, values[k], ts[k] / 1000)
                          for (dev, metric), (ts, values) in series.items()
                          for k in range(i, i + 30)])
    await live.maintain(T0 + N * 10 + 3600)  # compact what is left in the head
    bulk = make_store(name="bulk.db")
    added = bulk.import_runs_sync([SeriesRun(dev, metric, ts, values)
                                   for (dev, metric), (ts, values) in series.items()],
                                  workers=workers)
    assert added == 4 * N
    live_rows, bulk_rows = table_rows(tmp_path / "live.db"), table_rows(tmp_path / "bulk.db")
    assert len(bulk_rows["chunks"]) == 4 * 3 and len(bulk_rows["rollup_1h_chunks"]) == 3
    assert live_rows == bulk_rows
    # and what they answer is the data
    got = bulk.history_sync("tank-a", "level_pct", T0, T0 + N * 10)
    assert [p.value for p in got] == series[("tank-a", "level_pct")][1]
    pump = bulk.history_sync("pump-1", "running", T0, T0 + N * 10)
    assert [p.value for p in pump][99:102] == [0, 1, 1]  # booleans as SQLite stores them


async def test_import_of_qualities_and_gaps_matches_written_readings(make_store):
    ts = [round(T0 * 1000) + 7_000 * i + (i % 3) for i in range(600)]
    values = [float(i % 17) / 4 for i in range(600)]
    qualities = [Quality.GOOD if i % 9 else Quality.UNCERTAIN for i in range(600)]
    store = make_store()
    store.import_runs_sync([SeriesRun("d", "m", ts, values, qualities)])
    got = store.history_sync("d", "m", T0, T0 + 7 * 600)
    assert [(round(p.at * 1000), p.value, p.quality) for p in got] == \
        list(zip(ts, values, qualities, strict=True))


async def test_import_refuses_points_not_older_than_the_head(make_store):
    store = make_store()
    await store.write([Reading("d", "m", 1.0, T0 + 100)])
    with pytest.raises(StoreError, match="head holds newer or equal points"):
        store.import_runs_sync([SeriesRun("d", "m", [round(T0 * 1000) + 100_000], [2.0])])
    assert store.import_runs_sync([SeriesRun("d", "m", [round(T0 * 1000)], [2.0])]) == 1


async def test_import_moves_the_watermark_so_a_redelivery_is_a_duplicate(make_store):
    store = make_store()
    ts = [round(T0 * 1000) + 10_000 * i for i in range(10)]
    store.import_runs_sync([SeriesRun("d", "m", ts, [1.0] * 10)])
    assert await store.write([Reading("d", "m", 1.0, T0 + 50)]) == 0  # already imported
    assert await store.write([Reading("d", "m", 1.0, T0 + 55)]) == 1  # a new instant
    assert store.count_sync() == 11
