"""The gateway's central vocabulary: plain, frozen values that flow one way through it.

Times are float seconds since the Unix epoch, UTC. A Reading is created for every
message on the hot path, and a float costs a fraction of an aware ``datetime`` to make,
compare and store; conversion to text (ISO 8601) happens only at the edges (API, journal,
console) and to nanoseconds only in the InfluxDB sink.

Every value here is ``frozen`` and ``slots``: hashable, cheap on a Pi, and impossible to
change behind another component's back. State changes are new values made with
``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "ACTIVE_STATES",
    "Alarm",
    "AlarmState",
    "AlarmTransition",
    "Command",
    "CommandResult",
    "Device",
    "DeviceKind",
    "DeviceStatus",
    "Event",
    "JournalEntry",
    "Location",
    "Observation",
    "Priority",
    "Quality",
    "Reading",
    "Value",
    "WorkOrder",
    "WorkOrderStatus",
]

Value = float | int | bool | str


class DeviceKind(StrEnum):
    """The four device kinds an estate's control room watches, plus a catch-all."""

    ACCESS_GATE = "access_gate"
    ELEVATOR = "elevator"
    WATER_TANK = "water_tank"
    PARKING_BARRIER = "parking_barrier"
    GENERIC = "generic"


class Quality(StrEnum):
    """How far a value can be trusted.

    ``UNAVAILABLE`` means the device could not be reached (no value at all), which is not
    ``BAD`` (it answered with something out of range or undecodable). Home Assistant's
    unavailable/unknown split.
    """

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a device is on the estate (栋 / 层 / 区域)."""

    building: str
    floor: str | None = None
    zone: str | None = None

    def __str__(self) -> str:
        parts = [self.building]
        if self.floor:
            parts.append(f"F{self.floor}")
        if self.zone:
            parts.append(self.zone)
        return "/".join(parts)


@dataclass(frozen=True, slots=True)
class Device:
    """A configured device: what it is, where it is, and which driver owns it."""

    id: str
    kind: DeviceKind
    location: Location
    transport: str
    profile: str
    name: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reading:
    """One sampled value of one metric of one device, already scaled, with its unit."""

    device_id: str
    metric: str
    value: Value
    at: float
    unit: str = ""
    quality: Quality = Quality.GOOD
    received_at: float = 0.0


# Readings are made three per message on the ingest path. A frozen dataclass's generated
# ``__init__`` sets each field with ``object.__setattr__(self, "name", value)``, which looks
# the slot up by name every time: 1.0 us per Reading on the test machine, a sixth of the
# codec. Setting the slots through their own descriptors does the same in 0.6 us. The
# class stays the frozen, slotted dataclass above (fields, eq, hash, repr, ``replace``);
# only its constructor is this hand-written one, with the same signature and defaults
# (tests/unit/test_types_reading.py holds it to the generated one).
_set_device_id = Reading.__dict__["device_id"].__set__
_set_metric = Reading.__dict__["metric"].__set__
_set_value = Reading.__dict__["value"].__set__
_set_at = Reading.__dict__["at"].__set__
_set_unit = Reading.__dict__["unit"].__set__
_set_quality = Reading.__dict__["quality"].__set__
_set_received_at = Reading.__dict__["received_at"].__set__


def _reading_init(self: Reading, device_id: str, metric: str, value: Value, at: float,
                  unit: str = "", quality: Quality = Quality.GOOD,
                  received_at: float = 0.0) -> None:
    _set_device_id(self, device_id)
    _set_metric(self, metric)
    _set_value(self, value)
    _set_at(self, at)
    _set_unit(self, unit)
    _set_quality(self, quality)
    _set_received_at(self, received_at)


Reading.__init__ = _reading_init  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class Event:
    """A discrete occurrence (a card denied, a door forced, a passenger trapped), not a level.

    ``kind`` comes from the closed vocabulary of the device's kind (``gateway.vocabulary``).
    ``event_id`` identifies the occurrence across redeliveries: the device's message id when
    it sends one, otherwise a hash of device, kind and device time, so a QoS 1 duplicate is
    stored once.
    """

    device_id: str
    kind: str
    at: float
    event_id: str
    attributes: Mapping[str, Value] = field(default_factory=dict)
    received_at: float = 0.0

    def __hash__(self) -> int:
        return hash(self.event_id)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device came online or went offline (reported by the device or by its driver)."""

    device_id: str
    online: bool
    at: float
    reason: str = ""


Observation = Reading | Event | DeviceStatus


@dataclass(frozen=True, slots=True)
class Command:
    """An authorised request to a device: open a barrier, release a door, start a pump."""

    command_id: str
    device_id: str
    action: str
    requested_by: str
    args: Mapping[str, Value] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(self.command_id)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What the driver reported after executing (or refusing) a command."""

    command_id: str
    ok: bool
    detail: str = ""


class Priority(IntEnum):
    """Alarm priority, 1 the most urgent (ISA-18.2 recommends three or four levels).

    - ``EMERGENCY`` (1, 紧急): life safety, act now: entrapment, medical button, door forced,
      fire-lane blocked by fire, flooding. Repeats its sound until acknowledged.
    - ``HIGH`` (2, 高): service lost or about to be: tank low-low, pump fault, elevator fault.
    - ``MEDIUM`` (3, 中): needs attention this shift: door held open, water quality drift.
    - ``LOW`` (4, 低): informational, maintenance due, device offline on a non-critical point.
    """

    EMERGENCY = 1
    HIGH = 2
    MEDIUM = 3
    LOW = 4


class AlarmState(StrEnum):
    """ISA-18.2 / IEC 62682 alarm states, as a control room sees them."""

    NORMAL = "normal"
    ACTIVE_UNACK = "active_unacknowledged"
    ACTIVE_ACK = "active_acknowledged"
    RTN_UNACK = "returned_unacknowledged"
    LATCHED = "latched"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


ACTIVE_STATES = frozenset(
    {AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK, AlarmState.RTN_UNACK, AlarmState.LATCHED}
)


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm per (rule, device): its current state and history counters."""

    alarm_id: str
    rule_id: str
    device_id: str
    state: AlarmState
    priority: Priority
    message: str
    first_raised_at: float
    last_raised_at: float
    updated_at: float
    count: int = 1
    condition_active: bool = True
    value: Value | None = None
    latching: bool = False
    acked_by: str | None = None
    acked_at: float | None = None
    shelved_until: float | None = None
    shelved_by: str | None = None
    shelve_reason: str | None = None
    active_since: float | None = None  # when this activation began (standing alarms)
    annunciated_at: float | None = None  # last (re-)annunciation, for re-alarm
    escalation: int = 0  # escalation steps taken since activation
    group: str = "console"  # recipient group (escalation may change it)
    suppressed_by: str | None = None  # why it is suppressed by design / inhibited

    def with_(self, **changes: Any) -> Alarm:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """One row per alarm state change: who, when, why."""

    alarm_id: str
    from_state: AlarmState
    to_state: AlarmState
    at: float
    by: str
    reason: str


class WorkOrderStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DISPATCHED = "dispatched"
    ON_SITE = "on_site"
    DONE = "done"
    FOLLOWED_UP = "followed_up"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """A job for engineering; ``id`` doubles as the idempotency key upstream."""

    id: str
    device_id: str
    category: str
    priority: Priority
    title: str
    location: str
    created_at: float
    due_at: float | None
    status: WorkOrderStatus = WorkOrderStatus.OPEN
    alarm_id: str | None = None
    team: str = ""
    description: str = ""
    source: str = "alarm"  # "alarm" or "schedule:<schedule id>"
    updated_at: float = 0.0
    count: int = 1  # alarm activations folded into this order
    revision: int = 1  # bumped on every change; the webhook's ordering key
    status_at: float = 0.0  # when the current status was entered
    breached: tuple[str, ...] = ()  # SLA stages already breached (each alarms once)

    def with_(self, **changes: Any) -> WorkOrder:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row of the ordered record the outside world consumes (CloudEvents 1.0 data)."""

    seq: int
    event_id: str
    type: str
    time: float
    subject: str
    data: Mapping[str, Any]
