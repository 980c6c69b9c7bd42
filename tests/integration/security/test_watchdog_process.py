"""The real gateway process under a fake systemd: READY=1, then WATCHDOG=1 only while healthy.

The ingest loop is made stuck the way an SD card or a runaway reader would: another
process holds the telemetry database's write lock while a reading arrives, so the batch
sits in the store. The pings must stop (with one STATUS= saying why) and come back when
the lock is released.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.servers import REPO, free_port, write_config

pytestmark = pytest.mark.broker

TANK = {"id": "tank-1", "kind": "water_tank", "location": {"building": "B1"}}
TOPIC = "estate/test-site/B1/water_tank/tank-1/telemetry"


class FakeSystemd:
    """The NOTIFY_SOCKET end of sd_notify: a unix datagram socket we read from."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sdn-")  # short: unix socket paths are < 108 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.log: list[str] = []

    def next(self, timeout: float) -> str | None:
        self.sock.settimeout(timeout)
        try:
            msg = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        self.log.append(msg)
        return msg

    def wait_for(self, prefix: str, timeout: float = 20.0) -> list[str]:
        """Datagrams up to and including the first that starts with ``prefix``."""
        seen = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.next(left)
            if msg is None:
                break
            seen.append(msg)
            if msg.startswith(prefix):
                return seen
        raise TimeoutError(f"no {prefix!r} within {timeout}s; got {seen[-5:]}")

    def during(self, seconds: float) -> list[str]:
        """Everything sent within the next ``seconds``."""
        seen = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.next(left)
            if msg is not None:
                seen.append(msg)
        return seen

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self.dir)


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    s = FakeSystemd()
    yield s
    s.close()


def test_watchdog_pings_stop_while_ingest_is_stuck_and_resume_after(
        tmp_path: Path, broker, systemd: FakeSystemd) -> None:
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port, data_dir=data,
                       devices=[TANK], rules=[],
                       extra={"watchdog": {"ingest_stuck_s": 1.0}})
    env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": systemd.path,
           "WATCHDOG_USEC": "400000"}  # ping every 0.2 s while healthy
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-format", "json", "run", "--config", str(cfg),
         "--api-port", str(free_port())], stdout=log, stderr=subprocess.STDOUT, env=env,
        cwd=REPO)
    pub = None
    try:
        assert systemd.wait_for("READY=1")[-1] == "READY=1\nSTATUS=running / 运行中"
        systemd.wait_for("WATCHDOG=1")
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        lock = sqlite3.connect(data / "telemetry.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # hold the write lock: the next batch cannot commit
        try:
            pub.publish(TOPIC, orjson.dumps({"ts": time.time(), "level_pct": 50.0}), wait=True)
            before = systemd.wait_for("STATUS=unhealthy")
            assert before[-1].startswith("STATUS=unhealthy: ingest stuck in one batch")
            # ten ping periods with the batch still stuck: not one ping
            assert "WATCHDOG=1" not in systemd.during(2.0)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        after = systemd.wait_for("STATUS=running")
        assert after[-2:] == ["WATCHDOG=1", "STATUS=running / 运行中"]
        systemd.wait_for("WATCHDOG=1")
        lines = [orjson.loads(ln) for ln in (tmp_path / "gateway.log").read_bytes().splitlines()
                 if ln.startswith(b"{")]
        stuck = [ln for ln in lines if ln["logger"] == "gateway.watchdog"]
        assert [ln["level"] for ln in stuck] == ["error", "info"]  # once down, once up
        assert stuck[0]["task"] == "service.watchdog"
    finally:
        if pub is not None:
            pub.close()
        proc.terminate()
        proc.wait(20)
        log.close()
    systemd.during(0.5)
    assert "STOPPING=1" in systemd.log
