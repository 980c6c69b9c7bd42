"""SIGKILL the telemetry writer during heavy writing, again and again: every restart finds
an intact database holding every reading whose commit had returned before the kill."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

WRITER = Path(__file__).with_name("killed_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def check(db: Path, committed: int) -> int:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        points = conn.execute("SELECT count(*) FROM points").fetchone()[0]
        # every reading 0..committed-1 is there (values are the reading numbers, unique)
        present = conn.execute("SELECT count(*) FROM points WHERE value < ?",
                               (committed,)).fetchone()[0]
        assert present == committed, f"lost {committed - present} committed readings"
        # at most one batch (max 2,000) committed after the last line reached us
        assert committed <= points <= committed + 2000
        # rollups and outbox were written in the same transactions as the points
        assert conn.execute("SELECT sum(count) FROM rollup_1m").fetchone()[0] == points
        assert conn.execute("SELECT sum(count) FROM rollup_1h").fetchone()[0] == points
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == points
        return points
    finally:
        conn.close()


def kill_cycles(tmp_path: Path, kills: int, seed: int) -> None:
    db = tmp_path / "telemetry.db"
    rng = random.Random(seed)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    committed = 0
    for cycle in range(kills):
        proc = subprocess.Popen([sys.executable, str(WRITER), str(db), str(seed + cycle)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        wait_for = rng.randint(1, 12)
        lines = 0
        try:
            while lines < wait_for:
                line = proc.stdout.readline()
                if not line:
                    raise AssertionError(f"writer exited early: {proc.stderr.read()!r}")
                committed = int(line.split()[0])
                lines += 1
        finally:
            proc.send_signal(signal.SIGKILL)
            rest, _err = proc.communicate()
        for line in rest.splitlines():  # commits reported between our last read and the kill
            committed = int(line.split()[0])
        assert proc.returncode == -signal.SIGKILL, f"cycle {cycle}: writer was not killed"
        check(db, committed)
    assert committed > kills  # the writer made progress across restarts


def test_sigkill_50_times_loses_no_committed_reading(tmp_path):
    kill_cycles(tmp_path, kills=50, seed=7)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_500_times_loses_no_committed_reading(tmp_path):
    kill_cycles(tmp_path, kills=500, seed=1234)
