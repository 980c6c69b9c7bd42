"""Self-metrics of one Modbus bus: polls, failures by reason, poll latency, schedule lag.

Plain counters and bounded windows (the last ``WINDOW`` samples) kept by the driver;
``snapshot()`` is the dict the API puts on ``/metrics``.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAILURE_REASONS", "WINDOW", "BusMetrics", "percentile"]

WINDOW = 4096
FAILURE_REASONS = ("timeout", "disconnected", "exception_response", "bad_frame", "decode",
                   "protocol")
"""Why a poll failed; every reason is a /metrics label (zero when it never happened)."""


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0.0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(slots=True)
class BusMetrics:
    bus_id: str
    polls: int = 0
    polls_ok: int = 0
    requests: int = 0
    reconnect_attempts: int = 0  # connects tried after the first success
    skipped_polls: int = 0  # a poll still running when the next was due: that slot is skipped
    failures: Counter[str] = field(default_factory=Counter)
    latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    lag_s: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    max_lag_s: float = 0.0

    def record_lag(self, lag: float) -> None:
        self.lag_s.append(lag)
        self.max_lag_s = max(self.max_lag_s, lag)

    def snapshot(self, *, online: int = 0, offline: int = 0) -> dict[str, Any]:
        lat, lag = list(self.latency_s), list(self.lag_s)
        return {
            "bus": self.bus_id,
            "polls": self.polls,
            "polls_ok": self.polls_ok,
            "requests": self.requests,
            "reconnect_attempts": self.reconnect_attempts,
            "skipped_polls": self.skipped_polls,
            "failures": {reason: self.failures.get(reason, 0) for reason in FAILURE_REASONS},
            "poll_latency_s": {"p50": percentile(lat, 50), "p99": percentile(lat, 99),
                               "max": max(lat, default=0.0)},
            "schedule_lag_s": {"p50": percentile(lag, 50), "p99": percentile(lag, 99),
                               "max": self.max_lag_s},
            "devices_online": online,
            "devices_offline": offline,
        }
