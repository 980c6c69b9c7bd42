"""InfluxSink's delivery logic against a recording writer (the wire test is integration)."""

from __future__ import annotations

import pytest

from gateway.clock import FakeClock
from gateway.config import InfluxConfig
from gateway.errors import StoreError
from gateway.store.influx import InfluxSink, InfluxWriteError
from gateway.types import Device, DeviceKind, Location, Reading
from tests.unit.store.conftest import T0

DEVICES = {"tank-a": Device("tank-a", DeviceKind.WATER_TANK, Location("B3"), "modbus", "p")}
CONFIG = InfluxConfig(url="http://127.0.0.1:9", bucket="b", batch_size=4,
                      retry_initial_s=1, retry_max_s=8)


class RecordingWriter:
    """Accepts lines, or fails with the queued errors first."""

    def __init__(self, failures=()) -> None:
        self.failures = list(failures)
        self.batches: list[list[str]] = []
        self.closed = False

    def write(self, lines: list[str]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(lines)

    def close(self) -> None:
        self.closed = True


class SleepLog(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


def down() -> InfluxWriteError:
    return InfluxWriteError("http://x", "no answer", status=None, retryable=True)


async def test_sink_delivers_in_batches_and_acks(make_store):
    store = make_store(outbox=True)
    await store.write([Reading("tank-a", "level_pct", float(i), T0 + i) for i in range(10)])
    writer = RecordingWriter()
    sink = InfluxSink(store, CONFIG, site="s", devices=DEVICES, writer=writer, clock=SleepLog())
    assert [await sink.flush_once() for _ in range(4)] == [4, 4, 2, 0]
    assert [len(b) for b in writer.batches] == [4, 4, 2]
    assert writer.batches[0][0] == \
        f"water_tank,building=B3,device=tank-a,site=s level_pct=0.0 {int(T0 * 1000)}"
    assert sink.metrics["written"] == 10 and sink.metrics["backlog"] == 0
    assert store.outbox_cursor_sync() == 10


async def test_sink_retries_with_capped_exponential_backoff(make_store):
    store = make_store(outbox=True)
    await store.write([Reading("tank-a", "level_pct", 1.0, T0)])
    writer = RecordingWriter([down() for _ in range(6)])
    clock = SleepLog()
    sink = InfluxSink(store, CONFIG, site="s", devices=DEVICES, writer=writer, clock=clock,
                      jitter=lambda: 1.0)
    assert await sink.flush_once() == 1
    assert clock.sleeps == [1, 2, 4, 8, 8, 8]
    assert sink.metrics["retries"] == 6 and sink.metrics["connected"] is True
    assert "no answer" in sink.metrics["last_error"]
    assert len(writer.batches) == 1


async def test_sink_backoff_jitter_stays_within_half_to_full(make_store):
    store = make_store(outbox=True)
    sink = InfluxSink(store, CONFIG, site="s", devices=DEVICES, writer=RecordingWriter(),
                      jitter=lambda: 0.0)
    assert [sink._backoff(a) for a in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


async def test_sink_rejected_batch_is_counted_and_skipped(make_store):
    store = make_store(outbox=True)
    await store.write([Reading("tank-a", "level_pct", float(i), T0 + i) for i in range(6)])
    bad = InfluxWriteError("http://x", "HTTP 400: bad", status=400, retryable=False)
    writer = RecordingWriter([bad])
    sink = InfluxSink(store, CONFIG, site="s", devices=DEVICES, writer=writer, clock=SleepLog())
    assert await sink.flush_once() == 4
    assert await sink.flush_once() == 2
    assert sink.metrics["rejected"] == 4 and sink.metrics["written"] == 2


async def test_sink_halves_batch_on_413(make_store):
    store = make_store(outbox=True)
    await store.write([Reading("tank-a", "level_pct", float(i), T0 + i) for i in range(4)])
    big = InfluxWriteError("http://x", "HTTP 413", status=413, retryable=False)
    writer = RecordingWriter([big])
    sink = InfluxSink(store, CONFIG, site="s", devices=DEVICES, writer=writer, clock=SleepLog())
    assert await sink.flush_once() == 2
    assert [len(b) for b in writer.batches] == [2]


async def test_sink_refuses_store_without_outbox(make_store):
    store = make_store(outbox=False)
    with pytest.raises(StoreError, match="outbox=True"):
        InfluxSink(store, CONFIG, site="s", devices=DEVICES, writer=RecordingWriter())
