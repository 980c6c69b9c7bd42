"""`estate-gateway demo` from a fresh virtualenv with only the package installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)  # the fresh venv's pip install dominates
def test_demo_in_fresh_venv_raises_an_alarm_of_each_kind(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", str(REPO)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    demo = subprocess.run(
        [venv / "bin/estate-gateway", "demo", "--duration", "40", "--speed", "2",
         "--api-port", "0", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    print(demo.stdout[-2000:])
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    summary = orjson.loads(demo.stdout.split("Demo summary / 演示小结: ")[1].splitlines()[0])
    assert set(summary) == {"access_gate", "elevator", "water_tank", "parking_barrier"}
    assert all(summary.values())
    assert "Traceback" not in demo.stderr
