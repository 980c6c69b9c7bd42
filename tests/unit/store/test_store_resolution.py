"""Which resolution a history query uses: by span, by what retention kept, or as asked."""

from __future__ import annotations

import pytest

from gateway.store.retention import TelemetryPolicy
from gateway.store.rollup import Resolution, ResolutionPolicy, choose_resolution
from gateway.types import Reading
from tests.unit.store.conftest import T0

HOUR = 3600.0
DAY = 86_400.0


@pytest.mark.parametrize(("start", "end", "expected"), [
    (T0 - HOUR, T0, Resolution.RAW),
    (T0 - 6 * HOUR, T0, Resolution.RAW),
    (T0 - 6 * HOUR - 1, T0, Resolution.MINUTE),
    (T0 - DAY, T0, Resolution.MINUTE),
    (T0 - 2 * DAY, T0, Resolution.MINUTE),
    (T0 - 2 * DAY - 1, T0, Resolution.HOUR),
    (T0 - 15 * DAY, T0, Resolution.HOUR),
    # short spans whose raw points retention has already removed
    (T0 - 20 * DAY, T0 - 20 * DAY + HOUR, Resolution.MINUTE),
    (T0 - 100 * DAY, T0 - 100 * DAY + HOUR, Resolution.HOUR),
])
def test_choose_resolution_by_span_and_retention(start, end, expected):
    assert choose_resolution(start, end, now=T0) is expected


def test_choose_resolution_follows_policy():
    policy = ResolutionPolicy(raw_max_span_s=DAY, minute_max_span_s=10 * DAY)
    assert choose_resolution(T0 - DAY, T0, T0, policy) is Resolution.RAW
    assert choose_resolution(T0 - 10 * DAY, T0, T0, policy) is Resolution.MINUTE


def test_policy_from_config_carries_retention_into_resolution():
    from gateway.config import StoreConfig
    cfg = StoreConfig.model_validate({"retention": {"readings_days": 3, "rollup_1m_days": 7},
                                      "max_bytes": 2_000_000, "on_full": "drop_new"})
    p = TelemetryPolicy.from_config(cfg)
    assert (p.raw_keep_s, p.minute_keep_s, p.hour_keep_s) == (3 * DAY, 7 * DAY, 730 * DAY)
    assert (p.max_bytes, p.on_full) == (2_000_000, "drop_new")
    assert p.resolution.raw_keep_s == 3 * DAY
    assert choose_resolution(T0 - 4 * DAY, T0 - 4 * DAY + HOUR, T0, p.resolution) \
        is Resolution.MINUTE


async def test_history_auto_picks_raw_minute_hour(make_store):
    store = make_store()
    # one reading every 10 minutes for 3 days, ending at T0
    await store.write([Reading("tank-a", "level_pct", float(i), T0 - 3 * DAY + 600 * i)
                       for i in range(3 * 144 + 1)])
    raw = await store.history_auto("tank-a", "level_pct", T0 - HOUR, T0, now=T0)
    assert raw.resolution is Resolution.RAW
    assert [p.at for p in raw.points] == [T0 - HOUR + 600 * k for k in range(7)]
    assert raw.buckets == ()
    day = await store.history_auto("tank-a", "level_pct", T0 - DAY, T0, now=T0)
    assert day.resolution is Resolution.MINUTE
    assert len(day.buckets) == 145 and day.points == ()
    three = await store.history_auto("tank-a", "level_pct", T0 - 3 * DAY, T0, now=T0)
    assert three.resolution is Resolution.HOUR
    assert len(three.buckets) == 73
    assert sum(b.count for b in three.buckets) == 3 * 144 + 1


async def test_history_auto_explicit_resolution_overrides(make_store):
    store = make_store()
    await store.write([Reading("tank-a", "level_pct", 1.0, T0 - 10 * DAY)])
    forced = await store.history_auto("tank-a", "level_pct", T0 - 15 * DAY, T0,
                                      resolution="raw", now=T0)
    assert forced.resolution is Resolution.RAW and len(forced.points) == 1


async def test_history_auto_unknown_series_is_empty(make_store):
    store = make_store()
    res = await store.history_auto("nope", "level_pct", T0 - DAY, T0, now=T0)
    assert res.resolution is Resolution.MINUTE and res.buckets == ()
