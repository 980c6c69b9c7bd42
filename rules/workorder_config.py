"""Work-order configuration as written in YAML: rule actions, SLA targets, calendar, schedules.

Defaults are the estate service standard's figures (docs/DOMAIN.md); every one can be
changed in the ``work_orders:`` section of the gateway file.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.types import DeviceKind

__all__ = [
    "CalendarConfig",
    "Category",
    "ScheduleConfig",
    "SlaTarget",
    "WorkOrderAction",
    "WorkOrdersConfig",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(StrEnum):
    """What kind of job a work order is (工单类别); picks its SLA target."""

    WATER = "water"  # 停水/漏水: urgent
    POWER = "power"  # 停电: urgent
    GAS = "gas"  # urgent
    ENTRAPMENT = "entrapment"  # 困人: urgent
    REPAIR = "repair"  # other repairs
    COMMON_AREA = "common_area"  # 共用部位 repairs, completed in working days
    GLASS_DOOR_LIGHTING = "glass_door_lighting"  # common-area glass/doors/lighting
    SECURITY = "security"  # door forced, perimeter: staff to the spot
    MAINTENANCE = "maintenance"  # scheduled: elevator half-monthly maintenance
    INSPECTION = "inspection"  # scheduled: elevator annual inspection
    CLEANING = "cleaning"  # scheduled: water-tank cleaning
    CALIBRATION = "calibration"  # scheduled: sensor calibration


PriorityName = Literal["emergency", "high", "medium", "low"]


class WorkOrderAction(_Strict):
    """``work_order:`` on a rule: raising the alarm opens (or updates) a work order."""

    category: Category
    priority: PriorityName | None = None  # default: the rule's priority
    team: str = "engineering"
    description: str = ""


class SlaTarget(_Strict):
    """Deadlines for one category. Unset means the stage has no deadline.

    ``on_site_s`` runs from creation to ``on_site``; ``complete_working_days`` from creation
    to ``done`` counted on the working-day calendar; ``follow_up_s`` from ``done`` to
    ``followed_up``; ``complete_s`` from creation to ``done`` in plain hours.
    """

    on_site_s: float | None = Field(None, gt=0)
    complete_s: float | None = Field(None, gt=0)
    complete_working_days: int | None = Field(None, ge=1, le=60)
    follow_up_s: float | None = Field(172_800, gt=0)


def _default_sla() -> dict[Category, SlaTarget]:
    urgent = SlaTarget(on_site_s=900)
    return {
        Category.WATER: urgent, Category.POWER: urgent, Category.GAS: urgent,
        Category.ENTRAPMENT: urgent,
        Category.REPAIR: SlaTarget(on_site_s=1800),
        Category.SECURITY: SlaTarget(on_site_s=900),
        Category.COMMON_AREA: SlaTarget(complete_working_days=3),
        Category.GLASS_DOOR_LIGHTING: SlaTarget(complete_working_days=2),
        Category.MAINTENANCE: SlaTarget(complete_s=3 * 86_400, follow_up_s=None),
        Category.INSPECTION: SlaTarget(complete_working_days=10, follow_up_s=None),
        Category.CLEANING: SlaTarget(complete_working_days=5, follow_up_s=None),
        Category.CALIBRATION: SlaTarget(complete_working_days=5, follow_up_s=None),
    }


class CalendarConfig(_Strict):
    """Working days in the site's timezone: Monday–Friday minus ``holidays`` plus
    ``extra_working_days`` (China's swapped weekend days, 调休)."""

    working_weekdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    holidays: list[dt.date] = Field(default_factory=list)
    extra_working_days: list[dt.date] = Field(default_factory=list)

    @field_validator("working_weekdays")
    @classmethod
    def _iso_weekdays(cls, v: list[int]) -> list[int]:
        bad = [d for d in v if not 1 <= d <= 7]
        if bad:
            raise ValueError(f"weekday {bad[0]} is not 1 (Monday) to 7 (Sunday)")
        return v


class ScheduleConfig(_Strict):
    """A recurring work order for every selected device (maintenance, inspection...)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: DeviceKind | None = None
    devices: list[str] | None = None
    category: Category
    every_days: float = Field(gt=0)
    title: str
    priority: PriorityName = "low"
    team: str = "engineering"


def _default_schedules() -> list[ScheduleConfig]:
    return [
        ScheduleConfig(id="elevator-maintenance", kind=DeviceKind.ELEVATOR,
                       category=Category.MAINTENANCE, every_days=15,
                       title="Elevator half-monthly maintenance / 电梯半月维保"),
        ScheduleConfig(id="elevator-inspection", kind=DeviceKind.ELEVATOR,
                       category=Category.INSPECTION, every_days=365,
                       title="Elevator annual inspection / 电梯年检"),
        ScheduleConfig(id="tank-cleaning", kind=DeviceKind.WATER_TANK,
                       category=Category.CLEANING, every_days=182,
                       title="Water tank cleaning and lab test / 水箱清洗及水质化验"),
        ScheduleConfig(id="tank-calibration", kind=DeviceKind.WATER_TANK,
                       category=Category.CALIBRATION, every_days=365,
                       title="Level and quality sensor calibration / 传感器检测校准"),
    ]


class WorkOrdersConfig(_Strict):
    """The ``work_orders:`` section."""

    enabled: bool = True
    sla: dict[Category, SlaTarget] = Field(default_factory=_default_sla)
    calendar: CalendarConfig = Field(default_factory=CalendarConfig)
    schedules: list[ScheduleConfig] = Field(default_factory=_default_schedules)
    check_interval_s: float = Field(5.0, gt=0, le=3600)
