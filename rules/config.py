"""Rule models as written in YAML: which devices a rule watches, its condition, its priority."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.types import DeviceKind, Priority
from rules.workorder_config import WorkOrderAction

__all__ = [
    "ConditionConfig",
    "EventCondition",
    "RuleConfig",
    "Selector",
    "ThresholdCondition",
]

Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(_Strict):
    """Devices a rule applies to; every given criterion must hold (an empty selector: all)."""

    kind: DeviceKind | None = None
    devices: list[str] | None = None
    building: str | None = None
    tags: list[str] | None = None


class ThresholdCondition(_Strict):
    """A metric above or below a limit for ``for_s`` seconds; clears past ``clear``.

    ``clear`` is the hysteresis (deadband) level: an alarm raised below 20 % with
    ``clear: 25`` returns to normal only once the level is back at 25 % or more, so a
    level hovering around 20 % does not chatter. ``off_delay_s`` holds the clear for that
    long before the alarm returns to normal.
    """

    type: Literal["threshold"]
    metric: str
    above: float | None = None
    below: float | None = None
    clear: float | None = None
    for_s: float = Field(0.0, ge=0)
    off_delay_s: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _one_direction(self) -> ThresholdCondition:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(
                    f"'clear' ({self.clear}) must be at or below 'above' ({self.above})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(
                    f"'clear' ({self.clear}) must be at or above 'below' ({self.below})")
        return self


class EventCondition(_Strict):
    """An event of a kind (with attribute filters) raises the alarm.

    It returns to normal on ``clear_event``, after ``auto_clear_s`` without a repeat, or,
    for a latching rule, only when an operator resets it after inspection.
    """

    type: Literal["event"]
    event: str
    match: dict[str, Scalar] = Field(default_factory=dict)
    clear_event: str | None = None
    auto_clear_s: float | None = Field(None, gt=0)


ConditionConfig = Annotated[ThresholdCondition | EventCondition, Field(discriminator="type")]

PriorityName = Literal["emergency", "high", "medium", "low"]


class RuleConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = ""
    select: Selector = Field(default_factory=Selector)
    when: ConditionConfig
    priority: PriorityName = "medium"
    latch: bool = False
    message: str = ""
    enabled: bool = True
    work_order: WorkOrderAction | None = None

    @property
    def priority_level(self) -> Priority:
        return Priority[self.priority.upper()]
