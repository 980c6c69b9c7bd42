"""Detect steps of the wall clock (NTP corrections) by comparing it with the monotonic clock."""

from __future__ import annotations

__all__ = ["STEP_THRESHOLD_S", "StepDetector"]

STEP_THRESHOLD_S = 2.0


class StepDetector:
    """Fed (wall, monotonic) pairs; reports how far the wall clock jumped between two pairs.

    Between two samples the wall clock should move as much as the monotonic clock. The
    difference, ``wall - (last_wall + (mono - last_mono))``, is the step: negative when the
    clock was set back, positive when set forward. Differences within ``threshold_s`` are
    slew and scheduling noise and are not reported (they still re-base the detector, so
    slow drift never adds up to a reported step).

    Example::

        d = StepDetector()
        d.feed(1000.0, 5.0)        # None: the first sample only sets the base
        d.feed(-2590.0, 15.0)      # -3600.0: set back one hour
    """

    def __init__(self, threshold_s: float = STEP_THRESHOLD_S) -> None:
        if threshold_s <= 0:
            raise ValueError(f"threshold_s must be positive ({threshold_s!r})")
        self.threshold_s = threshold_s
        self._last: tuple[float, float] | None = None

    def feed(self, wall: float, mono: float) -> float | None:
        """Take one sample; return the step in seconds, or ``None`` when there was none."""
        last, self._last = self._last, (wall, mono)
        if last is None:
            return None
        delta = wall - (last[0] + (mono - last[1]))
        return delta if abs(delta) > self.threshold_s else None
