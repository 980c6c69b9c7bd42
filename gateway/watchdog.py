"""systemd integration: ``sd_notify`` over ``NOTIFY_SOCKET``, and a watchdog that pings only
while the gateway's loops are healthy.

The unit runs with ``Type=notify`` and ``WatchdogSec=``: systemd passes ``NOTIFY_SOCKET``
(a unix datagram socket; a leading ``@`` means the abstract namespace) and ``WATCHDOG_USEC``.
The process sends ``READY=1`` once the broker is connected, then ``WATCHDOG=1`` every half
watchdog period *only while* ``HealthCheck`` finds nothing stuck. A stuck ingest loop (one
batch held in the sink longer than ``watchdog.ingest_stuck_s``) or a silent rules ticker
stops the pings; systemd then kills the process (SIGABRT) and ``Restart=on-failure``
starts a fresh one. ``STATUS=`` lines say why, for ``systemctl status``.

No dependency: the protocol is one ``sendto`` of ``KEY=VALUE`` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from gateway.clock import Clock
    from gateway.policy import WatchdogConfig

__all__ = ["BUCKETS_S", "HealthCheck", "Liveness", "Notifier", "Watchdog", "watchdog_interval_s"]

log = logging.getLogger(__name__)

T = TypeVar("T")
TICKER = "rules.ticker"
INGEST = "ingest"


class Notifier:
    """Sends ``sd_notify`` datagrams; does nothing when ``address`` is None."""

    def __init__(self, address: str | None) -> None:
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            self.failed += 1
            log.warning("sd_notify to %r failed: %s", self.address, exc)
            return False
        self.sent += 1
        return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of systemd's watchdog period, or None when no watchdog is asked for."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        period = int(usec) / 1e6
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; watchdog off", usec)
        return None
    return period / 2 if period > 0 else None


BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Liveness:
    """Marks when a loop enters and leaves a section that must not take long (the sink),
    and keeps a histogram of how long each pass took (``durations[name]``: bucket counts,
    with ``+Inf`` last, and the sum), for /metrics."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # name → start times of the passes in progress (two drivers may share one sink)
        self._since: dict[str, list[float]] = {}
        self.durations: dict[str, tuple[list[int], list[float]]] = {}

    @contextlib.contextmanager
    def busy(self, name: str) -> Iterator[None]:
        start = self.clock.monotonic()
        self._since.setdefault(name, []).append(start)
        try:
            yield
        finally:
            self._since[name].remove(start)
            took = self.clock.monotonic() - start
            counts, total = self.durations.setdefault(name, ([0] * (len(BUCKETS_S) + 1), [0.0]))
            counts[next((i for i, b in enumerate(BUCKETS_S) if took <= b), len(BUCKETS_S))] += 1
            total[0] += took

    def watch(self, name: str, fn: Callable[[T], Awaitable[None]]
              ) -> Callable[[T], Awaitable[None]]:
        """Wrap an async one-argument callable (a driver sink) in ``busy(name)``."""

        async def watched(arg: T) -> None:
            with self.busy(name):
                await fn(arg)

        return watched

    def busy_for(self, name: str) -> float | None:
        """How long the oldest pass in progress has taken; None when none is."""
        since = self._since.get(name)
        return self.clock.monotonic() - min(since) if since else None


class HealthCheck:
    """What is stuck right now; an empty list means the watchdog may be pinged."""

    def __init__(self, clock: Clock, config: WatchdogConfig, liveness: Liveness,
                 heartbeats: Mapping[str, float]) -> None:
        self.clock = clock
        self.config = config
        self.liveness = liveness
        self.heartbeats = heartbeats

    def problems(self) -> list[str]:
        out = []
        busy = self.liveness.busy_for(INGEST)
        if busy is not None and busy > self.config.ingest_stuck_s:
            out.append(f"ingest stuck in one batch for {busy:.0f} s / 数据处理卡住")
        beat = self.heartbeats.get(TICKER)
        if beat is None:
            out.append("rules ticker has not run / 规则定时器未运行")
        else:
            age = self.clock.monotonic() - beat
            if age > self.config.ticker_stuck_s:
                out.append(f"rules ticker silent for {age:.0f} s / 规则定时器无响应")
        return out


class Watchdog:
    """The ``service.watchdog`` task: READY=1 once ready, WATCHDOG=1 while healthy."""

    def __init__(self, notifier: Notifier, health: HealthCheck, clock: Clock,
                 interval_s: float | None) -> None:
        self.notifier = notifier
        self.health = health
        self.clock = clock
        self.interval_s = interval_s
        self.healthy = True
        self.pings = 0

    def step(self) -> list[str]:
        """One check: ping if healthy; on a change of health, log once and send STATUS."""
        problems = self.health.problems()
        if not problems:
            if self.interval_s is not None:
                self.notifier.send("WATCHDOG=1")
                self.pings += 1
            if not self.healthy:
                log.info("watchdog: loops healthy again / 运行恢复正常")
                self.notifier.send("STATUS=running / 运行中")
        elif self.healthy:
            log.error("watchdog: %s; no longer pinging systemd", "; ".join(problems))
            self.notifier.send("STATUS=unhealthy: " + "; ".join(problems))
        self.healthy = not problems
        return problems

    async def run(self, ready: asyncio.Event) -> None:
        await ready.wait()
        self.notifier.send("READY=1", "STATUS=running / 运行中")
        try:
            while True:
                self.step()
                await self.clock.sleep(self.interval_s or 5.0)
        finally:
            self.notifier.send("STOPPING=1")
