"""Sliding-window rate limits and the login lockout; pure logic on an injected clock.

State is kept in memory: a restart clears it. That is acceptable for a box whose API
listens on loopback or the estate LAN behind a proxy; the audit log keeps every attempt.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gateway.clock import Clock

__all__ = ["Locked", "LoginLimiter", "SlidingWindow"]


class SlidingWindow:
    """At most ``count`` hits per key within any ``per_s`` seconds (monotonic time)."""

    def __init__(self, count: int, per_s: float, clock: Clock, *, max_keys: int = 10_000
                 ) -> None:
        self.count = count
        self.per_s = per_s
        self.clock = clock
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def _window(self, key: str) -> deque[float]:
        now = self.clock.monotonic()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:  # bounded: forget keys with no recent hits
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.per_s]:
                    del self._hits[k]
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.per_s:
            hits.popleft()
        return hits

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may hit again; 0 when it may now."""
        hits = self._window(key)
        if len(hits) < self.count:
            return 0.0
        return max(0.0, hits[0] + self.per_s - self.clock.monotonic())

    def hit(self, key: str) -> float:
        """Record a hit if allowed and return 0; otherwise return the seconds to wait."""
        wait = self.retry_after(key)
        if wait == 0.0:
            self._hits[key].append(self.clock.monotonic())
        return wait

    def clear(self, key: str) -> None:
        self._hits.pop(key, None)


@dataclass(frozen=True, slots=True)
class Locked:
    """A login refused without checking the password: ``key`` is locked for ``retry_after_s``."""

    key: str
    retry_after_s: float


@dataclass(slots=True)
class LoginLimiter:
    """Locks a user name, and separately a client address, after repeated failures.

    ``max_failures`` failures within ``window_s`` lock the key for ``lockout_s``. A success
    clears the user's failures (not the address's: one address guessing many users stays
    counted). ``lockouts`` counts lockouts started, for /metrics.
    """

    clock: Clock
    max_failures: int = 5
    window_s: float = 900.0
    lockout_s: float = 900.0
    lockouts: int = 0
    failures: int = 0
    _windows: SlidingWindow = field(init=False)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._windows = SlidingWindow(self.max_failures, self.window_s, self.clock)

    @staticmethod
    def keys(user: str, address: str) -> tuple[str, str]:
        return f"user:{user.casefold()}", f"addr:{address}"

    def check(self, user: str, address: str) -> Locked | None:
        now = self.clock.monotonic()
        for key in self.keys(user, address):
            until = self._locked_until.get(key)
            if until is not None:
                if until > now:
                    return Locked(key, until - now)
                del self._locked_until[key]
        return None

    def failure(self, user: str, address: str) -> list[str]:
        """Count one failed attempt; returns the keys this failure locked."""
        self.failures += 1
        locked = []
        for key in self.keys(user, address):
            self._windows.hit(key)
            if self._windows.retry_after(key) > 0.0:  # the window is full: lock
                self._locked_until[key] = self.clock.monotonic() + self.lockout_s
                self._windows.clear(key)
                self.lockouts += 1
                locked.append(key)
        return locked

    def success(self, user: str, address: str) -> None:
        self._windows.clear(self.keys(user, address)[0])
