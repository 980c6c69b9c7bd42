"""Retention by age per kind of telemetry, and the size budget's two policies."""

from __future__ import annotations

import random
import sqlite3

from gateway.store.retention import TelemetryPolicy
from gateway.types import Reading
from tests.unit.store.conftest import T0

DAY = 86_400.0
HOUR = 3600.0


def hourly(days: int, device: str = "tank-a") -> list[Reading]:
    """One reading an hour for ``days`` days, the last one at T0."""
    n = days * 24
    return [Reading(device, "level_pct", float(i), T0 - (n - 1 - i) * HOUR) for i in range(n)]


def rows(path, table: str) -> int:
    """Points (buckets, outbox rows) of a kind: ``points`` counts the chunks' points and the
    head's rows, ``rollup_1m``/``rollup_1h`` the buckets in their chunks."""
    conn = sqlite3.connect(path)
    try:
        if table == "outbox":
            return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        chunks = {"points": "chunks"}.get(table, f"{table}_chunks")
        n = conn.execute(f"SELECT coalesce(sum(count), 0) FROM {chunks}").fetchone()[0]
        if table == "points":
            n += conn.execute("SELECT count(*) FROM points_head").fetchone()[0]
        return n
    finally:
        conn.close()


async def test_retention_keeps_each_kind_for_its_own_time(make_store, tmp_path):
    policy = TelemetryPolicy(raw_keep_s=2 * DAY, minute_keep_s=5 * DAY, hour_keep_s=8 * DAY)
    store = make_store(policy=policy, outbox=True)
    await store.write(hourly(10))
    report = await store.maintain(T0)
    # raw points at T0-2d exactly are kept (strictly older ones go): 49 of 240 stay
    assert report.points_expired == 240 - 49
    assert report.rollup_1m_expired == 240 - 121
    assert report.rollup_1h_expired == 240 - 193
    assert report.outbox_expired == 240 - 49
    db = tmp_path / "telemetry.db"
    # the newest reading (at T0) is still in the head: its buckets are aggregated when
    # asked, not stored yet
    assert (rows(db, "points"), rows(db, "rollup_1m"), rows(db, "rollup_1h"),
            rows(db, "outbox")) == (49, 120, 192, 49)
    minutes = store.history_auto_sync("tank-a", "level_pct", T0 - 6 * DAY, T0, resolution="1m")
    hours = store.history_auto_sync("tank-a", "level_pct", T0 - 9 * DAY, T0, resolution="1h")
    assert (len(minutes.buckets), len(hours.buckets)) == (121, 193)
    # the history that is left still answers from the rollups beyond raw retention
    old = store.history_auto_sync("tank-a", "level_pct", T0 - 4 * DAY, T0 - 4 * DAY + HOUR,
                                  now=T0)
    assert old.resolution.value == "1m" and len(old.buckets) == 2


async def test_retention_is_idempotent(make_store):
    store = make_store(policy=TelemetryPolicy(raw_keep_s=DAY))
    await store.write(hourly(3))
    first = await store.maintain(T0)
    second = await store.maintain(T0)
    assert first.points_expired == 72 - 25
    assert second.points_expired == 0


def many(start: float, n: int, devices: int = 20) -> list[Reading]:
    """``n`` instants 10 s apart, ``devices`` devices × 2 metrics each; the values are
    white noise (full float64), the worst case for the chunks' compression (~8 bytes a
    point), so a small budget fills in a few hours."""
    rng = random.Random(start)
    return [Reading(f"dev-{d}", m, rng.random(), start + 10 * i)
            for i in range(n) for d in range(devices) for m in ("a", "b")]


async def test_space_prune_oldest_keeps_database_under_budget(make_store):
    budget = 3 * 1_048_576
    store = make_store(policy=TelemetryPolicy(max_bytes=budget, on_full="prune_oldest"))
    start = T0 - 2 * DAY
    total = 0
    for hour in range(24):
        batch = many(start + hour * HOUR, 360)
        total += await store.write(batch)
        assert store.used_bytes <= budget  # checked after every commit
    assert store.points_pruned_for_space > 0
    # nothing lost silently: what is there plus what was pruned is what was written
    assert store.count_sync() + store.points_pruned_for_space == total
    # oldest first: what is left is one contiguous run of the newest hours
    newest = start + 23 * HOUR + 10 * 359
    left = store.history_sync("dev-0", "a", start, newest, limit=100_000)
    assert left[-1].at == newest
    assert left[0].at > start
    assert len(left) == (newest - left[0].at) / 10 + 1
    assert len(left) >= 360
    # rollups of pruned hours stay: they are what the long range view shows
    h = store.history_auto_sync("dev-0", "a", start, start + 24 * HOUR, resolution="1h")
    assert len(h.buckets) == 24


async def test_space_drop_new_refuses_batches_and_counts_them(make_store):
    budget = 1_048_576
    store = make_store(policy=TelemetryPolicy(max_bytes=budget, on_full="drop_new"))
    written = refused = 0
    hour = 0
    while refused == 0:
        batch = many(T0 + hour * HOUR, 360)
        n = await store.write(batch)
        written += n
        if n == 0:
            refused = len(batch)
        hour += 1
        assert hour < 100, "the budget was never reached"
    assert store.points_dropped_full == refused
    assert store.points_pruned_for_space == 0
    assert store.count_sync() == written  # history untouched
    # retention by age frees room and writes are accepted again
    await store.maintain(T0 + hour * HOUR + 15 * DAY - 2 * HOUR)
    assert await store.write(many(T0 + (hour + 1) * HOUR, 1)) == 40


async def test_space_prune_counts_outbox_rows_it_drops(make_store):
    store = make_store(policy=TelemetryPolicy(max_bytes=1_048_576), outbox=True)
    for hour in range(12):
        await store.write(many(T0 + hour * HOUR, 360))
    assert store.outbox_pruned_for_space > 0
    assert store.outbox_pruned_for_space == store.points_pruned_for_space  # nothing acked
    assert store.outbox_backlog_sync() == store.count_sync()


async def test_space_prune_never_removes_the_newest_hour(make_store):
    # a budget far too small: everything but the newest hour goes, the newest hour stays
    store = make_store(policy=TelemetryPolicy(max_bytes=1_048_576))
    for hour in range(6):
        await store.write(many(T0 + hour * HOUR, 360, devices=60))
    newest = T0 + 5 * HOUR
    assert len(store.history_sync("dev-0", "a", newest, newest + HOUR)) == 360
    assert store.history_sync("dev-0", "a", T0, newest - 1) == []
