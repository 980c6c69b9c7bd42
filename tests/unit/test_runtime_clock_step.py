"""The runtime finds a wall-clock step on its next rules step, shifts timers and stores them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.config import load_config
from gateway.metrics import render_metrics
from gateway.runtime import RULE_INSTANCE_KV, Runtime
from gateway.types import Reading
from tests.support.servers import write_config

HOUR = 3600.0
DEVICES = [{"id": "tank-1", "kind": "water_tank", "location": {"building": "B1"}}]
RULES = [{"id": "tank-low", "select": {"kind": "water_tank"},
          "when": {"type": "threshold", "metric": "level_pct", "below": 20, "for_s": 60}}]


@pytest.fixture
def runtime(tmp_path: Path, clock: FakeClock):
    cfg = write_config(tmp_path / "gw.yaml", broker_port=1883, data_dir=tmp_path / "data",
                       devices=DEVICES, rules=RULES)
    rt = Runtime(load_config(cfg), clock=clock, data_dir=tmp_path / "data")
    yield rt
    rt.close()


async def test_runtime_shifts_and_stores_rule_timers_on_a_step(
        runtime: Runtime, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    t0 = clock.now()
    await runtime.ingest([Reading("tank-1", "level_pct", 10.0, t0)])
    clock.advance(40)
    async with runtime._lock:
        await runtime._rules_now()
    clock.set_wall(clock.now() - HOUR)
    with caplog.at_level(logging.WARNING, logger="gateway.runtime"):
        async with runtime._lock:
            assert await runtime._rules_now() == clock.now()
            assert await runtime._rules_now() == clock.now()  # reported once
    assert [r.getMessage() for r in caplog.records] == [
        "wall clock stepped by -3600.0 s; rule timers shifted / 系统时间跳变"]
    assert runtime.metrics.clock_steps == 1
    body, _ = render_metrics(runtime)
    assert b"\ngateway_clock_steps_total 1.0\n" in body
    stored = runtime.state.load_kv_prefix_sync(RULE_INSTANCE_KV)
    assert stored["tank-low|tank-1"]["0"]["p"] == t0 - HOUR
