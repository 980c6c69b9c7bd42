"""Report by exception: keep a reading for storage only when it says something new.

A pure filter the pipeline applies to readings before ``TelemetryStore.write`` (rules still
see every reading). Per metric it keeps a reading when

* it is the first of its (device, metric) since start-up,
* its quality differs from the last one kept, or it is a text value that changed,
* a numeric value moved by more than ``deadband`` from the last value kept (the
  comparison is with the last *kept* value, so a slow drift is still stored once it adds
  up to more than the deadband), or
* ``max_silence_s`` or more passed (device time) since the last kept reading, so a flat
  line still shows up in history as alive.

Metrics without a policy pass unchanged. Booleans count as changed when they change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.types import Quality, Reading, Value

if TYPE_CHECKING:
    from gateway.config import ReportByExceptionConfig

__all__ = ["ExceptionPolicy", "ReportByException", "policies_from_config"]


@dataclass(frozen=True, slots=True)
class ExceptionPolicy:
    """``deadband`` in the metric's unit (0 = any change); ``max_silence_s`` in seconds."""

    deadband: float = 0.0
    max_silence_s: float = 900.0

    def __post_init__(self) -> None:
        if self.deadband < 0:
            raise ValueError(f"deadband must be >= 0, not {self.deadband}")
        if self.max_silence_s <= 0:
            raise ValueError(f"max_silence_s must be > 0, not {self.max_silence_s}")


@dataclass(frozen=True, slots=True)
class _Kept:
    value: Value
    at: float
    quality: Quality


def _is_number(v: Value) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class ReportByException:
    """Stateful per (device, metric), but no I/O and no clock: time is the readings' ``at``.

    Example::

        rbe = ReportByException({"level_pct": ExceptionPolicy(deadband=0.5)})
        await store.write(rbe.filter(readings))
    """

    def __init__(self, policies: Mapping[str, ExceptionPolicy]) -> None:
        self.policies = dict(policies)
        self._kept: dict[tuple[str, str], _Kept] = {}
        self.passed = 0
        self.suppressed = 0

    def keep(self, reading: Reading) -> bool:
        """Decide one reading (and remember it if kept)."""
        policy = self.policies.get(reading.metric)
        if policy is None:
            self.passed += 1
            return True
        key = (reading.device_id, reading.metric)
        last = self._kept.get(key)
        if last is None or self._changed(last, reading, policy):
            self._kept[key] = _Kept(reading.value, reading.at, reading.quality)
            self.passed += 1
            return True
        self.suppressed += 1
        return False

    @staticmethod
    def _changed(last: _Kept, r: Reading, policy: ExceptionPolicy) -> bool:
        if r.quality != last.quality:
            return True
        if r.at - last.at >= policy.max_silence_s or r.at < last.at:
            # silence reached, or device time went backwards (clock reset): store it
            return True
        if _is_number(r.value) and _is_number(last.value):
            delta = abs(float(r.value) - float(last.value))  # type: ignore[arg-type]
            return delta > policy.deadband if policy.deadband > 0 else delta != 0
        return r.value != last.value

    def filter(self, readings: Iterable[Reading]) -> list[Reading]:
        """The readings worth storing, in their original order."""
        return [r for r in readings if self.keep(r)]

    def forget(self, device_id: str) -> None:
        """Drop the remembered values of a device (e.g. when it is removed from config)."""
        for key in [k for k in self._kept if k[0] == device_id]:
            del self._kept[key]


def policies_from_config(section: Mapping[str, ReportByExceptionConfig]) -> \
        dict[str, ExceptionPolicy]:
    """``store.report_by_exception`` from the config file → policies per metric."""
    return {metric: ExceptionPolicy(c.deadband, c.max_silence_s) for metric, c in section.items()}
