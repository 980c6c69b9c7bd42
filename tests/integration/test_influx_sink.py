"""InfluxSink against a real VictoriaMetrics on loopback: all points, right tags and times,
and nothing missing after the server was down while readings kept coming."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import InfluxConfig
from gateway.store.influx import InfluxSink
from gateway.store.sqlite import TelemetryStore
from gateway.types import Device, DeviceKind, Location, Quality, Reading
from tests.integration.victoria import BINARY, Victoria

pytestmark = pytest.mark.skipif(
    BINARY is None, reason="Debian's victoria-metrics is not installed (apt install "
    "victoria-metrics)")

SITE = "itest-estate"
DEVICES = {
    "tank-a": Device("tank-a", DeviceKind.WATER_TANK, Location("B3"), "modbus", "p"),
    "lift-1": Device("lift-1", DeviceKind.ELEVATOR, Location("T2"), "mqtt", "p"),
}


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    server = Victoria(tmp_path / "vm-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    s = TelemetryStore(tmp_path / "telemetry.db", outbox=True)
    yield s
    s.close()


def readings(start_s: int, n: int) -> list[Reading]:
    """``n`` instants 10 s apart: tank level and pump, lift speed, an unconfigured meter."""
    out = []
    for i in range(n):
        at = start_s + 10 * i
        out += [Reading("tank-a", "level_pct", 40 + (i % 50) / 4, at),
                Reading("tank-a", "pump_on", i % 3 == 0, at),
                Reading("lift-1", "car_speed_mps", round(i * 0.01, 2), at,
                        quality=Quality.GOOD if i % 7 else Quality.UNCERTAIN),
                Reading("meter-9", "kwh", float(i), at)]
    return out


def expected(rs: list[Reading]) -> dict[tuple, dict[int, float]]:
    kinds = {"tank-a": ("water_tank", "B3"), "lift-1": ("elevator", "T2"),
             "meter-9": ("generic", "")}
    out: dict[tuple, dict[int, float]] = {}
    for r in rs:
        kind, building = kinds[r.device_id]
        quality = "" if r.quality is Quality.GOOD else r.quality.value
        key = (f"{kind}_{r.metric}", r.device_id, building, quality)
        out.setdefault(key, {})[round(r.at * 1000)] = float(r.value)
    return out


def exported(server: Victoria) -> dict[tuple, dict[int, float]]:
    out: dict[tuple, dict[int, float]] = {}
    for series in server.export(f'{{site="{SITE}"}}'):
        m = series["metric"]
        key = (m["__name__"], m["device"], m.get("building", ""), m.get("quality", ""))
        got = out.setdefault(key, {})
        for ts, v in zip(series["timestamps"], series["values"], strict=True):
            got[ts] = v
    return out


async def until(check: Callable[[], bool], what: str, within_s: float = 60.0) -> None:
    """Wait for a condition (not a duration): fails only if it never comes true."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def config(server: Victoria, **kw) -> InfluxConfig:
    base = {"url": server.url, "org": "estate", "bucket": "telemetry", "batch_size": 250,
            "timeout_s": 5, "poll_interval_s": 0.02, "retry_initial_s": 0.02,
            "retry_max_s": 0.2}
    return InfluxConfig.model_validate(base | kw)


async def test_influx_sink_delivers_every_point_with_tags_and_time(victoria, store):
    start = int(time.time()) - 3 * 3600
    rs = readings(start, 300)  # 1,200 points
    await store.write(rs)
    sink = InfluxSink(store, config(victoria), site=SITE, devices=DEVICES)
    task = asyncio.create_task(sink.run(), name="store.influx")
    try:
        await until(lambda: store.outbox_backlog_sync() == 0, "outbox drained")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.metrics["written"] == 1200 and sink.metrics["retries"] == 0
    assert exported(victoria) == expected(rs)


async def test_influx_sink_replays_backlog_after_outage(victoria, store):
    start = int(time.time()) - 3 * 3600
    first = readings(start, 100)
    await store.write(first)
    sink = InfluxSink(store, config(victoria), site=SITE, devices=DEVICES)
    task = asyncio.create_task(sink.run(), name="store.influx")
    try:
        await until(lambda: store.outbox_backlog_sync() == 0, "first batch delivered")
        victoria.stop()
        # readings keep coming while the server is down
        during = readings(start + 1000, 400)
        for i in range(0, len(during), 200):
            await store.write(during[i:i + 200])
        await until(lambda: sink.metrics["retries"] >= 5, "the sink to retry")
        assert sink.metrics["connected"] is False
        assert store.outbox_backlog_sync() == len(during)  # nothing acked while down
        victoria.start()
        later = readings(start + 5000, 50)
        await store.write(later)
        await until(lambda: store.outbox_backlog_sync() == 0, "backlog replayed", 120)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.metrics["connected"] is True
    assert sink.metrics["written"] == len(first) + len(during) + len(later)
    assert exported(victoria) == expected(first + during + later)


async def test_influx_sink_backlog_survives_gateway_restart(victoria, tmp_path):
    """Written while the server is unreachable, the gateway restarts, then it delivers."""
    path = tmp_path / "restart.db"
    start = int(time.time()) - 3 * 3600
    rs = readings(start, 120)
    store = TelemetryStore(path, outbox=True)
    try:
        await store.write(rs)
        dead = InfluxConfig(url="http://127.0.0.1:9", bucket="b", retry_initial_s=0.01,
                            retry_max_s=0.02, timeout_s=2)
        sink = InfluxSink(store, dead, site=SITE, devices=DEVICES)
        task = asyncio.create_task(sink.run())
        await until(lambda: sink.metrics["retries"] >= 2, "failed attempts")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        store.close()
    store = TelemetryStore(path, outbox=True)
    try:
        assert store.outbox_backlog_sync() == len(rs)
        sink = InfluxSink(store, config(victoria), site=SITE, devices=DEVICES)
        task = asyncio.create_task(sink.run())
        try:
            await until(lambda: store.outbox_backlog_sync() == 0, "backlog delivered")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        store.close()
    assert exported(victoria) == expected(rs)
