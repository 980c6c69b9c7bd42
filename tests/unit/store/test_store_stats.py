"""``store stats`` text: bytes per point, rows per table, time range, room left."""

from __future__ import annotations

from gateway.store.retention import TelemetryPolicy
from gateway.store.stats import collect_stats, store_stats_text
from gateway.types import Reading
from tests.unit.store.conftest import T0


async def test_stats_counts_rows_range_and_room(make_store, tmp_path):
    store = make_store(policy=TelemetryPolicy(max_bytes=10_000_000), outbox=True)
    await store.write([Reading(f"d{d}", "m", float(i), T0 + 10 * i)
                       for i in range(360) for d in range(5)])
    await store.outbox_ack(100)
    s = collect_stats(tmp_path / "telemetry.db", max_bytes=10_000_000)
    rows = {t.name: t.rows for t in s.tables}
    assert s.points == s.chunk_points + rows["points_head"] == 1800 and rows["series"] == 5
    assert s.chunk_points > 0 and rows["points_head"] > 0
    # one chunk per series for the hour, and one of its minutes, one of its day's hours
    assert rows["chunks"] == rows["rollup_1m_chunks"] == rows["rollup_1h_chunks"] == 5
    assert s.outbox_backlog == 1700
    assert (s.raw_oldest, s.raw_newest) == (T0, T0 + 3590)
    assert s.rollup_1h_oldest == T0
    assert s.left_bytes == 10_000_000 - s.used_bytes
    assert s.bytes_per_point is not None and 0 < s.bytes_per_point < 100
    assert s.bytes_per_point_all == s.used_bytes / 1800


async def test_stats_text_is_bilingual(make_store, tmp_path):
    store = make_store()
    await store.write([Reading("d", "m", 1.0, T0)])
    text = store_stats_text(tmp_path / "telemetry.db", tmp_path / "missing-state.db")
    for heading in ("存储统计 / Store statistics", "每点字节 / bytes per point", "其中已压缩 / of which in chunks",
                    "各表行数 / Rows per table", "时间范围 / Time range",
                    "上限前剩余 / left before the limit", "2026-01-01 00:00:00 UTC"):
        assert heading in text
    assert "容量上限 / configured limit:             无 / none" in text
