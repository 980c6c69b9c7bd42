"""Per-device circuit breaker: when a device counts as offline and when to try it again.

Pure: times are passed in (monotonic seconds), randomness is injected, so it is tested
without sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Breaker", "Transition"]


class Transition(StrEnum):
    """What a poll result changed; the driver logs and emits only on these."""

    NONE = "none"
    FIRST_ONLINE = "first_online"  # first answer since start: no recovery to announce
    OFFLINE = "offline"
    RECOVERED = "recovered"


@dataclass(slots=True)
class Breaker:
    """Counts consecutive failures; after ``failures_to_offline`` the device is offline and
    is retried after a capped exponential backoff (full delay at most ``backoff_max_s``,
    jittered down by up to 20 % so devices that failed together do not retry together)."""

    failures_to_offline: int
    backoff_min_s: float
    backoff_max_s: float
    rng: random.Random

    failures: int = 0
    online: bool | None = None  # None: no answer yet and not yet declared offline
    retry_at: float = 0.0
    _attempt: int = 0

    def success(self) -> Transition:
        was = self.online
        self.failures = 0
        self._attempt = 0
        self.online = True
        if was is None:
            return Transition.FIRST_ONLINE
        return Transition.RECOVERED if was is False else Transition.NONE

    def failure(self, now: float) -> Transition:
        """Record one failed poll at monotonic time ``now``."""
        self.failures += 1
        if self.online is False:
            self._schedule(now)
            return Transition.NONE
        if self.failures >= self.failures_to_offline:
            self.online = False
            self._attempt = 0
            self._schedule(now)
            return Transition.OFFLINE
        return Transition.NONE

    def delay(self) -> float:
        full = min(self.backoff_max_s, self.backoff_min_s * (2 ** self._attempt))
        return full * (1.0 - 0.2 * self.rng.random())

    def _schedule(self, now: float) -> None:
        self.retry_at = now + self.delay()
        self._attempt = min(self._attempt + 1, 30)
