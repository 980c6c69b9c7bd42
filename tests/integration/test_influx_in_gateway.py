"""The gateway process feeds a real InfluxDB-v2-write server (victoria-metrics) from its store."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.integration.victoria import BINARY, Victoria
from tests.support.mqtt import wait_until
from tests.support.servers import gateway, write_config

pytestmark = [pytest.mark.broker, pytest.mark.skipif(
    BINARY is None, reason="Debian's victoria-metrics is not installed")]


def test_gateway_readings_reach_influx_with_tags(tmp_path: Path, broker,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    vm = Victoria(tmp_path / "vm")
    vm.start()
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "not-checked-by-victoria")
    cfg = write_config(
        tmp_path / "gw.yaml", broker_port=broker.port, data_dir=tmp_path / "data",
        devices=[{"id": "tank-1", "kind": "water_tank", "location": {"building": "B1"}}],
        rules=[], extra={"influx": {"url": vm.url, "org": "estate", "bucket": "telemetry",
                                    "token_env": "TEST_INFLUX_TOKEN", "poll_interval_s": 0.1,
                                    "retry_initial_s": 0.1, "retry_max_s": 1}})
    base = time.time() - 60
    try:
        with gateway(tmp_path, cfg) as gw:
            pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
            try:
                for i in range(50):
                    pub.publish("estate/test-site/B1/water_tank/tank-1/telemetry",
                                orjson.dumps({"ts": base + i, "level_pct": 40.0 + i}))
                pub.flush()
            finally:
                pub.close()

            def exported() -> dict[int, float]:
                got: dict[int, float] = {}
                for series in vm.export('{site="test-site"}'):
                    if series["metric"].get("device") == "tank-1":
                        got.update(zip(series["timestamps"], series["values"], strict=True))
                return got

            wait_until(lambda: len(exported()) == 50, timeout=60, what="50 points in influx")
            assert "gateway_influx_written_total 50.0" in gw.get("/metrics").text
        series = vm.export('{site="test-site"}')[0]["metric"]
        assert (series["__name__"], series["building"], series["device"]) == (
            "water_tank_level_pct", "B1", "tank-1")
        assert exported() == {round((base + i) * 1000): 40.0 + i for i in range(50)}
    finally:
        vm.stop()
