"""The watchdog pings systemd only while the loops are healthy (fake clock, real socket)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.policy import WatchdogConfig
from gateway.watchdog import (
    HealthCheck,
    Liveness,
    Notifier,
    Watchdog,
    watchdog_interval_s,
)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """What systemd listens on: a unix datagram socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify"))
    s.setblocking(False)
    yield s
    s.close()


def received(s: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(s.recv(4096).decode())
        except BlockingIOError:
            return out


def make(clock: FakeClock, sock: socket.socket) -> tuple[Watchdog, Liveness, dict[str, float]]:
    liveness = Liveness(clock)
    beats: dict[str, float] = {"rules.ticker": clock.monotonic()}
    health = HealthCheck(clock, WatchdogConfig(ingest_stuck_s=45, ticker_stuck_s=30), liveness,
                         beats)
    return Watchdog(Notifier(sock.getsockname()), health, clock, 5.0), liveness, beats


def test_notifier_speaks_the_sd_notify_datagram(notify_socket: socket.socket) -> None:
    n = Notifier(notify_socket.getsockname())
    assert n.send("READY=1", "STATUS=running")
    assert received(notify_socket) == ["READY=1\nSTATUS=running"]


def test_notifier_abstract_namespace_address() -> None:
    name = f"estate-gw-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(5)
        assert Notifier("@" + name).send("WATCHDOG=1")
        assert s.recv(100) == b"WATCHDOG=1"


def test_notifier_without_socket_is_silent() -> None:
    n = Notifier.from_env({})
    assert not n.enabled
    assert not n.send("READY=1")


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval_is_half_the_period(env: dict[str, str], expected: float | None
                                              ) -> None:
    assert watchdog_interval_s(env) == expected


def test_stuck_ingest_stops_the_pings_and_recovery_resumes_them(
        clock: FakeClock, notify_socket: socket.socket) -> None:
    wd, liveness, beats = make(clock, notify_socket)
    assert wd.step() == []
    assert received(notify_socket) == ["WATCHDOG=1"]
    with liveness.busy("ingest"):  # a batch enters the sink and does not come back
        for _ in range(9):  # 45 s: still within the limit
            clock.advance(5)
            beats["rules.ticker"] = clock.monotonic()
            wd.step()
        assert received(notify_socket) == ["WATCHDOG=1"] * 9
        clock.advance(1)
        beats["rules.ticker"] = clock.monotonic()
        assert wd.step() == ["ingest stuck in one batch for 46 s / 数据处理卡住"]
        for _ in range(20):
            clock.advance(5)
            beats["rules.ticker"] = clock.monotonic()
            wd.step()
        sent = received(notify_socket)
        assert sent == ["STATUS=unhealthy: ingest stuck in one batch for 46 s / 数据处理卡住"]
        assert not wd.healthy
    assert wd.step() == []
    assert received(notify_socket) == ["WATCHDOG=1", "STATUS=running / 运行中"]


def test_idle_ingest_is_healthy_but_a_silent_ticker_is_not(
        clock: FakeClock, notify_socket: socket.socket) -> None:
    wd, _, beats = make(clock, notify_socket)
    clock.advance(3600)  # no messages for an hour: nothing is stuck, but the ticker is
    assert wd.step() == ["rules ticker silent for 3600 s / 规则定时器无响应"]
    beats["rules.ticker"] = clock.monotonic()
    assert wd.step() == []
    assert received(notify_socket)[-2:] == ["WATCHDOG=1", "STATUS=running / 运行中"]


async def test_watched_sink_marks_busy_only_while_awaited(clock: FakeClock) -> None:
    liveness = Liveness(clock)
    gate = asyncio.Event()
    seen: list[float | None] = []

    async def sink(batch: list[int]) -> None:
        seen.append(liveness.busy_for("ingest"))
        await gate.wait()

    task = asyncio.create_task(liveness.watch("ingest", sink)([1]))
    await asyncio.sleep(0)
    clock.advance(7)
    assert liveness.busy_for("ingest") == 7
    gate.set()
    await task
    assert seen == [0.0]
    assert liveness.busy_for("ingest") is None
    counts, total = liveness.durations["ingest"]
    assert sum(counts) == 1 and total == [7.0]


async def test_run_sends_ready_then_stopping_on_cancel(clock: FakeClock,
                                                       notify_socket: socket.socket) -> None:
    wd, _, _ = make(clock, notify_socket)
    ready = asyncio.Event()
    task = asyncio.create_task(wd.run(ready))
    await asyncio.sleep(0)
    assert received(notify_socket) == []  # nothing before the gateway is ready
    ready.set()
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = received(notify_socket)
    assert sent[0] == "READY=1\nSTATUS=running / 运行中"
    assert "WATCHDOG=1" in sent[1:-1]
    assert sent[-1] == "STOPPING=1"


def test_two_drivers_sharing_the_sink_the_oldest_pass_counts(clock: FakeClock) -> None:
    liveness = Liveness(clock)
    with liveness.busy("ingest"):  # the MQTT driver's batch, stuck
        clock.advance(10)
        with liveness.busy("ingest"):  # a Modbus poll passes through meanwhile
            clock.advance(1)
        assert liveness.busy_for("ingest") == 11
    assert liveness.busy_for("ingest") is None
