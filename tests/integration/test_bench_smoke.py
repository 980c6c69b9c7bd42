"""Each benchmark runs end to end for a moment and writes its JSON (no timing is asserted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import alarm_latency, footprint, ingest

pytestmark = [
    pytest.mark.broker,
    pytest.mark.slow,  # about 30 s on the shared 2-core machine: over the 20 s CI budget
    pytest.mark.skipif(shutil.which("mosquitto") is None,
                       reason="Debian's mosquitto is not installed (apt-get install mosquitto)"),
]


def _read(out: Path, name: str) -> dict:
    data = json.loads((out / f"{name}.json").read_text())
    assert data["benchmark"] == name
    assert data["machine"]["nproc"] >= 1
    return data


def test_ingest_bench_writes_its_json(tmp_path: Path) -> None:
    ingest.main(["--devices", "8", "--rates", "300", "--duration", "1", "--refine", "0",
                 "--consumers", "paho,gateway", "--drain", "0", "--out", str(tmp_path)])
    data = _read(tmp_path, "ingest")
    gw = data["consumers"]["gateway (rules + store)"]
    assert gw["steps"][0]["expected"] == 300 * 3
    assert "gateway_vs_ceiling" in data["summary"]


def test_alarm_latency_bench_writes_its_json(tmp_path: Path) -> None:
    alarm_latency.main(["--devices", "8", "--background", "200", "--duration", "1",
                        "--idle", "0.5", "--processes", "1", "--out", str(tmp_path)])
    data = _read(tmp_path, "alarm_latency")
    assert data["summary"]["load_mqtt"]["n"] >= 1


def test_footprint_bench_writes_its_json(tmp_path: Path) -> None:
    footprint.main(["--devices", "50", "--minutes", "0.02", "--warmup", "0", "--rate", "100",
                    "--starts", "1", "--sample", "0.5", "--processes", "1",
                    "--out", str(tmp_path)])
    data = _read(tmp_path, "footprint")
    assert data["summary"]["startup_cold_s"] > 0
