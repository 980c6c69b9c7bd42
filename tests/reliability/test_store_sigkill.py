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

from gateway.store.chunks import decode_columns
from gateway.store.sqlite import dump_points

WRITER = Path(__file__).with_name("killed_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def rolled_up(conn: sqlite3.Connection, table: str) -> int:
    """Points counted by the buckets of a rollup chunk table."""
    return sum(sum(decode_columns(blob)[1][0]) for (blob,) in conn.execute(
        f"SELECT blob FROM {table}"))


def check(db: Path, committed: int) -> int:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        values = [v for _, _, _, v, _ in dump_points(db)]
        points, total = len(values), sum(values)
        # reading k has value k, so the stored values should be exactly 0 .. points-1; count
        # and sum together catch a gap, a duplicate, and nearly any mix of the two
        assert total == points * (points - 1) / 2, "a reading is missing or stored twice"
        assert points >= committed, f"lost {committed - points} committed readings"
        # at most one batch (max 2,000) committed after the last line reached us
        assert points <= committed + 2000
        # rollups were stored by the compactions that filled the chunks, in the same
        # transactions; the outbox rows were written with the head rows
        compacted = conn.execute("SELECT coalesce(sum(count), 0) FROM chunks").fetchone()[0]
        assert rolled_up(conn, "rollup_1m_chunks") == compacted
        assert rolled_up(conn, "rollup_1h_chunks") == compacted
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == points
        return points
    finally:
        conn.close()


def kill_cycles(tmp_path: Path, kills: int, seed: int) -> None:
    db = tmp_path / "telemetry.db"
    rng = random.Random(seed)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    committed = 0
    errors = tmp_path / "writer.stderr"
    for cycle in range(kills):
        with errors.open("wb") as err:
            proc = subprocess.Popen([sys.executable, str(WRITER), str(db), str(seed + cycle)],
                                    stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdout is not None
        wait_for = rng.randint(1, 12)
        lines = 0
        try:
            while lines < wait_for:
                line = proc.stdout.readline()
                if not line:
                    raise AssertionError(f"writer exited early: {errors.read_text()!r}")
                committed = int(line.split()[0])
                lines += 1
        finally:
            proc.send_signal(signal.SIGKILL)
            # read what is left through the same buffered reader (communicate() would read
            # the pipe's fd directly and miss lines already in this reader's buffer)
            rest = proc.stdout.read()
            proc.stdout.close()
            proc.wait()
        for line in rest.splitlines():  # commits reported between our last read and the kill
            committed = int(line.split()[0])
        assert proc.returncode == -signal.SIGKILL, f"cycle {cycle}: writer was not killed"
        check(db, committed)
    assert committed > kills  # the writer made progress across restarts
    conn = sqlite3.connect(db)
    try:  # kills landed on a store that had moved readings from the head many times
        watermark = conn.execute("SELECT value FROM meta WHERE key = "
                                 "'head.compacted_before_ms'").fetchone()[0]
        assert watermark > (1_767_225_600 + 20 * 300) * 1000
    finally:
        conn.close()


def test_sigkill_50_times_loses_no_committed_reading(tmp_path):
    kill_cycles(tmp_path, kills=50, seed=7)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_500_times_loses_no_committed_reading(tmp_path):
    kill_cycles(tmp_path, kills=500, seed=1234)
