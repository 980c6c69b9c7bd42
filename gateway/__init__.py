"""Estate edge gateway: devices in, alarms, work orders and an event feed out."""

from gateway.types import (
    Alarm,
    AlarmState,
    AlarmTransition,
    Command,
    Device,
    DeviceKind,
    Event,
    JournalEntry,
    Priority,
    Quality,
    Reading,
    WorkOrder,
)

__version__ = "0.1.0"

__all__ = [
    "Alarm",
    "AlarmState",
    "AlarmTransition",
    "Command",
    "Device",
    "DeviceKind",
    "Event",
    "JournalEntry",
    "Priority",
    "Quality",
    "Reading",
    "WorkOrder",
    "__version__",
]
