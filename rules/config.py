"""Rule models as written in YAML: which devices a rule watches, its condition, its handling.

Conditions form a small tree (``all`` / ``any`` of leaves); every leaf is one of threshold,
state, event, count, absence, rate or schedule. Nothing here is evaluated with ``eval``:
the tree is data, walked by ``rules.conditions``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.types import DeviceKind, Priority

__all__ = [
    "AbsenceCondition",
    "AlarmHandlingConfig",
    "AllCondition",
    "AnyCondition",
    "ConditionConfig",
    "CountCondition",
    "EscalationStep",
    "EventCondition",
    "InhibitRule",
    "RateCondition",
    "RuleConfig",
    "ScheduleCondition",
    "Selector",
    "StateCondition",
    "SuppressWhen",
    "ThresholdCondition",
    "TimeWindow",
    "iter_leaves",
]

Scalar = str | int | float | bool
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(_Strict):
    """Devices a rule applies to; every given criterion must hold (an empty selector: all)."""

    kind: DeviceKind | None = None
    devices: list[str] | None = None
    building: str | None = None
    tags: list[str] | None = None


class _Delays(_Strict):
    """On-delay (``for_s``: true that long before it counts) and off-delay (false that long)."""

    for_s: float = Field(0.0, ge=0)
    off_delay_s: float = Field(0.0, ge=0)


class ThresholdCondition(_Delays):
    """A metric above or below a limit for ``for_s`` seconds; clears past ``clear``.

    ``clear`` is the hysteresis (deadband) level: an alarm raised below 20 % with
    ``clear: 25`` returns to normal only once the level is back at 25 % or more, so a
    level hovering around 20 % does not chatter. ``deadband`` says the same as a distance
    (``below: 20, deadband: 5``). ``off_delay_s`` holds the clear for that long.
    """

    type: Literal["threshold"]
    metric: str
    above: float | None = None
    below: float | None = None
    clear: float | None = None
    deadband: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_direction(self) -> ThresholdCondition:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        if self.clear is not None and self.deadband is not None:
            raise ValueError("give 'clear' or 'deadband', not both")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(
                    f"'clear' ({self.clear}) must be at or below 'above' ({self.above})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(
                    f"'clear' ({self.clear}) must be at or above 'below' ({self.below})")
        return self

    @property
    def clear_level(self) -> float | None:
        if self.clear is not None:
            return self.clear
        if self.deadband is None:
            return None
        return self.above - self.deadband if self.above is not None else (
            (self.below or 0.0) + self.deadband)


class StateCondition(_Delays):
    """A state metric (``door_state``, ``barrier_state``, ``mode``) held in one of ``in``."""

    type: Literal["state"]
    metric: str
    in_: list[Scalar] = Field(alias="in", min_length=1)


class EventCondition(_Strict):
    """An event of a kind (with attribute filters) raises the alarm; every repeat is counted.

    It returns to normal on ``clear_event``, after ``auto_clear_s`` without a repeat, or,
    for a latching rule, only when an operator resets it after inspection.
    """

    type: Literal["event"]
    event: str
    match: dict[str, Scalar] = Field(default_factory=dict)
    clear_event: str | None = None
    auto_clear_s: float | None = Field(None, gt=0)


class CountCondition(_Strict):
    """At least ``count`` matching events within ``within_s`` (5 denied swipes in 2 min)."""

    type: Literal["count"]
    event: str
    match: dict[str, Scalar] = Field(default_factory=dict)
    count: int = Field(ge=2, le=10_000)
    within_s: float = Field(gt=0)


class AbsenceCondition(_Strict):
    """No data for ``for_s`` seconds (any metric, or ``metric``), or the device reported offline.

    After a gateway restart the silence is measured from the restart: the gateway being
    down is not the device being silent.
    """

    type: Literal["absence"]
    for_s: float = Field(gt=0)
    metric: str | None = None
    offline_status: bool = True


class RateCondition(_Delays):
    """A metric changing faster than a rate, in its unit per minute, over ``window_s``.

    ``falling_per_min: 5`` on ``level_pct`` is a tank draining faster than 5 %/min. The
    rate is taken between the oldest and newest sample in the window, once they span at
    least half of it (one noisy step is not a trend).
    """

    type: Literal["rate"]
    metric: str
    rising_per_min: float | None = Field(None, gt=0)
    falling_per_min: float | None = Field(None, gt=0)
    window_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _direction(self) -> RateCondition:
        if self.rising_per_min is None and self.falling_per_min is None:
            raise ValueError("give 'rising_per_min' or 'falling_per_min' (or both)")
        return self


class TimeWindow(_Strict):
    """A daily window in the site's time zone; ``start`` after ``end`` crosses midnight.

    ``days`` are the days the window *starts* on; ``working_days: true`` keeps Monday to
    Friday minus ``holidays`` (dates, ``2026-10-01``).
    """

    days: list[Weekday] | None = None
    working_days: bool = False
    start: str = "00:00"
    end: str = "24:00"
    holidays: list[str] = Field(default_factory=list)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"time {v!r} must be HH:MM (00:00 to 24:00)")
        return v

    @field_validator("holidays")
    @classmethod
    def _dates(cls, v: list[str]) -> list[str]:
        for d in v:
            if not re.match(r"^\d{4}-\d{2}-\d{2}$", d):
                raise ValueError(f"holiday {d!r} must be YYYY-MM-DD")
        return v


class ScheduleCondition(_Strict):
    """True inside any of ``windows`` (night hours, working days, 08:00–18:00 service hours)."""

    type: Literal["schedule"]
    windows: list[TimeWindow] = Field(min_length=1)


class AllCondition(_Delays):
    type: Literal["all"]
    conditions: list[ConditionConfig] = Field(min_length=1)


class AnyCondition(_Delays):
    type: Literal["any"]
    conditions: list[ConditionConfig] = Field(min_length=1)


ConditionConfig = Annotated[
    ThresholdCondition | StateCondition | EventCondition | CountCondition | AbsenceCondition
    | RateCondition | ScheduleCondition | AllCondition | AnyCondition,
    Field(discriminator="type")]
AllCondition.model_rebuild()
AnyCondition.model_rebuild()

Leaf = (ThresholdCondition | StateCondition | EventCondition | CountCondition
        | AbsenceCondition | RateCondition | ScheduleCondition)


def iter_leaves(cond: ConditionConfig, path: str = "0") -> Iterator[tuple[str, Leaf]]:
    """Every leaf with its path in the tree (``0``, ``0.1``, ``0.1.0``)."""
    if isinstance(cond, AllCondition | AnyCondition):
        for i, child in enumerate(cond.conditions):
            yield from iter_leaves(child, f"{path}.{i}")
    else:
        yield path, cond


PriorityName = Literal["emergency", "high", "medium", "low"]


class SuppressWhen(_Strict):
    """Suppress by design while the device's ``metric`` is in ``in`` (elevator inspection)."""

    metric: str
    in_: list[Scalar] = Field(alias="in", min_length=1)


class InhibitRule(_Strict):
    """Mute this rule's alarm while an alarm of ``rule`` is active on a device sharing ``equal``.

    ``{rule: estate-power-failure, equal: building}``: a power failure in building B3 mutes
    "device offline" for B3's devices; ``equal: site`` mutes it everywhere.
    """

    rule: str
    equal: Literal["building", "device", "site"] = "building"


class EscalationStep(_Strict):
    """Unacknowledged ``after_s`` after activation: raise the priority and/or change the group."""

    after_s: float = Field(gt=0)
    priority: PriorityName | None = None
    group: str | None = None

    @model_validator(mode="after")
    def _something(self) -> EscalationStep:
        if self.priority is None and self.group is None:
            raise ValueError("an escalation step needs 'priority' or 'group'")
        return self


class RuleConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = ""
    select: Selector = Field(default_factory=Selector)
    when: ConditionConfig
    during: list[TimeWindow] | None = None
    per: Literal["device", "building"] = "device"
    min_devices: int = Field(1, ge=1)
    priority: PriorityName = "medium"
    latch: bool = False
    message: str = ""
    enabled: bool = True
    group: str = "console"
    suppressible: bool = True
    suppress_when: SuppressWhen | None = None
    inhibited_by: list[InhibitRule] = Field(default_factory=list)
    realarm_s: float | None = Field(None, gt=0)
    escalate: list[EscalationStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _escalation_order(self) -> RuleConfig:
        after = [s.after_s for s in self.escalate]
        if after != sorted(after) or len(set(after)) != len(after):
            raise ValueError("escalation steps must have increasing 'after_s'")
        return self

    @property
    def priority_level(self) -> Priority:
        return Priority[self.priority.upper()]


class AlarmHandlingConfig(_Strict):
    """Notification hygiene: grouping, repeat and flood limits, operator positions.

    ``positions`` maps a building to the operator position (console) that handles it;
    buildings not listed go to ``default_position``. A position with more than
    ``flood_alarms`` activations in ``flood_window_s`` is in flood (EEMUA 191: 10 in 10 min).
    """

    group_by: list[Literal["rule", "building", "kind", "priority", "group"]] = Field(
        default_factory=lambda: ["rule", "building"])
    group_wait_s: float = Field(10.0, ge=0, le=3600)
    repeat_interval_s: float = Field(4 * 3600.0, gt=0)
    flood_alarms: int = Field(10, ge=1)
    flood_window_s: float = Field(600.0, gt=0)
    chatter_activations: int = Field(3, ge=2)
    chatter_window_s: float = Field(60.0, gt=0)
    standing_s: float = Field(86_400.0, gt=0)
    default_position: str = "console"
    positions: dict[str, str] = Field(default_factory=dict)
