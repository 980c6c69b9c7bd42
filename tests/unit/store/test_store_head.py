"""New readings land in the time-ordered head and are compacted into chunks; queries,
deduplication and the watermark hold across head and chunks."""

from __future__ import annotations

import sqlite3

from gateway.types import Reading
from tests.unit.store.conftest import T0


def tables(path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT coalesce(sum(count), 0) FROM chunks").fetchone()[0],
                conn.execute("SELECT count(*) FROM points_head").fetchone()[0])
    finally:
        conn.close()


def series(n: int, first: int = 0) -> list[Reading]:
    """Readings ``first`` .. ``first + n - 1``, 10 s apart from T0, valued by their number."""
    return [Reading("d", "m", float(i), T0 + 10 * i) for i in range(first, first + n)]


async def test_head_compacts_older_windows_into_chunks(make_store, tmp_path):
    store = make_store()
    # 25 minutes every 10 s with a 5-minute head: compactions leave 1-2 windows in the head
    for chunk in range(5):
        await store.write(series(30, first=30 * chunk))
    in_points, in_head = tables(tmp_path / "telemetry.db")
    assert in_points + in_head == 150
    assert in_points >= 60 and 30 <= in_head <= 60
    assert store.compactions >= 1
    got = store.history_sync("d", "m", T0, T0 + 1500)
    assert [p.value for p in got] == [float(i) for i in range(150)]


async def test_head_late_duplicate_older_than_watermark_is_ignored(make_store):
    store = make_store()
    await store.write(series(200))  # 2,000 s: the first windows are in chunks by now
    assert store.compactions >= 1
    assert await store.write(series(5)) == 0  # redelivered, already in a chunk
    assert store.duplicates_ignored == 5
    # a late reading that is new (gap filled) is accepted, once
    late = [Reading("d", "m", -1.0, T0 + 5)]
    assert await store.write(late) == 1
    assert await store.write(late) == 0
    got = store.history_sync("d", "m", T0, T0 + 20)
    assert [(p.at - T0, p.value) for p in got] == [(0, 0.0), (5, -1.0), (10, 1.0), (20, 2.0)]
    (b,) = store.history_auto_sync("d", "m", T0, T0 + 59, resolution="1m").buckets
    assert b.count == 7  # the rollup counted the late reading once, the duplicates never


async def test_head_watermark_survives_reopen(make_store):
    store = make_store(name="w.db")
    await store.write(series(200))
    store.close()
    again = make_store(name="w.db")
    assert await again.write(series(3)) == 0  # still known to be in a chunk
    assert again.count_sync() == 200


async def test_head_maintain_flushes_a_quiet_head(make_store, tmp_path):
    store = make_store()
    await store.write(series(20))
    assert tables(tmp_path / "telemetry.db") == (0, 20)
    await store.maintain(T0 + 3600)
    assert tables(tmp_path / "telemetry.db") == (20, 0)
    assert [p.value for p in store.history_sync("d", "m", T0, T0 + 3600)] == \
        [float(i) for i in range(20)]


async def test_head_compaction_merges_late_reading_into_its_chunk(make_store, tmp_path):
    store = make_store()
    await store.write(series(200))  # the first windows are compacted
    assert await store.write([Reading("d", "m", -1.0, T0 + 5)]) == 1  # late, new instant
    await store.maintain(T0 + 3 * 3600)  # compacts it into the existing chunk
    assert tables(tmp_path / "telemetry.db") == (201, 0)
    conn = sqlite3.connect(tmp_path / "telemetry.db")
    try:
        (count, first, last), = conn.execute("SELECT count, first_ms, last_ms FROM chunks")
    finally:
        conn.close()
    assert (count, first, last) == (201, round(T0 * 1000), round(T0 * 1000) + 1_990_000)
    got = store.history_sync("d", "m", T0, T0 + 20)
    assert [(p.at - T0, p.value) for p in got] == [(0, 0.0), (5, -1.0), (10, 1.0), (20, 2.0)]
    # the rollups now come from the chunks alone and count the late reading once
    (b,) = store.history_auto_sync("d", "m", T0, T0 + 59, resolution="1m").buckets
    assert (b.count, b.min) == (7, -1.0)
    assert await store.write([Reading("d", "m", -1.0, T0 + 5)]) == 0  # and only once


async def test_head_open_refuses_old_row_per_point_layout(tmp_path):
    import pytest

    from gateway.errors import StoreError
    from gateway.store.sqlite import TelemetryStore

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE points (series_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL, "
                 "value, quality INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (series_id, ts_ms)) "
                 "WITHOUT ROWID")
    conn.close()
    with pytest.raises(StoreError) as err:
        TelemetryStore(path)
    text = str(err.value)
    assert text.startswith(f"{path}: 这是旧版遥测存储格式")
    assert f"{path}: this telemetry database has the old layout" in text
    assert "move the file away" in text


async def test_compaction_streams_the_head_without_sorting_it(make_store):
    """Compaction must not ask SQLite to sort the head: at 2,000 devices that is millions of
    rows in a temporary b-tree (memory up to the cache size, then temporary files on the SD
    card, every compaction). Every statement it runs is checked for a temporary b-tree; the
    head holds several slots of interleaved series, written out of order, so a plain scan
    in key order would hand merge_series a series in pieces or out of time order."""
    store = make_store()
    statements: list[str] = []
    store._writer.call(lambda: store._conn.set_trace_callback(statements.append))
    readings = [Reading(f"d{d}", f"m{m}", float(i * 10 + d), T0 + 10 * i + d)
                for i in range(90) for d in range(3) for m in range(2)]
    await store.write(readings[::-1])  # newest first: the head's insert order does not matter
    await store.write([Reading("d0", "m0", 0.0, T0 + 1500)])  # moves the cutoff past them all
    store._writer.call(lambda: store._conn.set_trace_callback(None))
    assert store.compactions >= 1
    selects = {s for s in statements if s.lstrip().upper().startswith("SELECT")}
    assert any("points_head" in s for s in selects)
    plans = store._writer.call(lambda: {
        s: [row[3] for row in store._conn.execute("EXPLAIN QUERY PLAN " + s)] for s in selects})
    assert not [(s, p) for s, p in plans.items() if any("TEMP B-TREE" in step for step in p)]
    for d in range(3):
        for m in range(2):
            got = store.history_sync(f"d{d}", f"m{m}", T0, T0 + 1000)
            assert [p.value for p in got] == [float(i * 10 + d) for i in range(90)]
