"""Alarm-system KPIs (EEMUA 191 / ISA-18.2): rate per 10 min, floods, chattering, standing, top 10.

Fed with activations as they happen (and, at start, with the last 24 h from the store);
computed on request from that log and the alarm book. Pure: time is passed in.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.types import ACTIVE_STATES, Alarm, AlarmState
from rules.config import AlarmHandlingConfig

__all__ = ["AlarmKpi"]

DAY_S = 86_400.0
LOG_MAX = 200_000


class AlarmKpi:
    def __init__(self, config: AlarmHandlingConfig) -> None:
        self.config = config
        self.log: deque[tuple[float, str, str]] = deque(maxlen=LOG_MAX)  # at, alarm, position

    def add(self, at: float, alarm_id: str, position: str) -> None:
        self.log.append((at, alarm_id, position))

    def load(self, rows: Iterable[tuple[str, float]], position_of: Mapping[str, str]) -> None:
        for alarm_id, at in rows:
            self.add(at, alarm_id, position_of.get(alarm_id, self.config.default_position))

    def _trim(self, now: float) -> None:
        while self.log and self.log[0][0] < now - DAY_S:
            self.log.popleft()

    def compute(self, alarms: Iterable[Alarm], now: float, *, floods_total: int,
                flooding: Mapping[str, float]) -> dict[str, Any]:
        self._trim(now)
        c = self.config
        last10 = [(at, a, p) for at, a, p in self.log if at > now - 600]
        per_position = Counter(p for _, _, p in last10)
        recent: dict[str, list[float]] = {}
        for at, a, _ in self.log:
            if at > now - 3600:
                recent.setdefault(a, []).append(at)
        chattering = sorted(a for a, times in recent.items()
                            if _max_in_window(times, c.chatter_window_s) >= c.chatter_activations)
        standing = sorted(
            a.alarm_id for a in alarms
            if (a.state in ACTIVE_STATES or a.state == AlarmState.SHELVED)
            and a.condition_active and a.active_since is not None
            and now - a.active_since > c.standing_s)
        top = Counter(a for _, a, _ in self.log).most_common(10)
        return {
            "activations_10min": len(last10),
            "activations_10min_by_position": dict(sorted(per_position.items())),
            "activations_24h": len(self.log),
            "flood_threshold": c.flood_alarms,
            "floods_total": floods_total,
            "flooding_positions": sorted(flooding),
            "chattering": chattering,
            "standing": standing,
            "top10": [{"alarm_id": a, "activations_24h": n} for a, n in top],
        }


def _max_in_window(times: list[float], window: float) -> int:
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
