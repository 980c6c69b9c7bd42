"""Why an alarm is suppressed: maintenance, design states, root-cause inhibition (one ``Muter``).

Silences by design and inhibitions are the same abstraction (Alertmanager's ``Muter``): a
function of the alarm that returns the reason it is muted, or ``None``. Rules marked
``suppressible: false`` (entrapment, medical button) are never muted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.types import Alarm, AlarmState, Device
from rules.config import RuleConfig
from rules.engine import BUILDING_PREFIX, RuleEngine

__all__ = ["DesignMuter", "InhibitMuter", "MaintenanceMuter", "Maintenance", "Muter", "Mutes"]


class Muter(Protocol):
    def mutes(self, alarm: Alarm) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A device put in maintenance (检修) by an engineer."""

    device_id: str
    by: str
    at: float
    reason: str
    until: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "by": self.by, "at": self.at,
                "reason": self.reason, "until": self.until}


class MaintenanceMuter:
    def __init__(self) -> None:
        self.devices: dict[str, Maintenance] = {}

    def mutes(self, alarm: Alarm) -> str | None:
        m = self.devices.get(alarm.device_id)
        return None if m is None else f"device in maintenance ({m.by}: {m.reason})"


class DesignMuter:
    """``suppress_when``: the device's own state says the alarm is expected (inspection mode)."""

    def __init__(self, rules: Mapping[str, RuleConfig], engine: RuleEngine) -> None:
        self.rules = rules
        self.engine = engine

    def mutes(self, alarm: Alarm) -> str | None:
        rule = self.rules.get(alarm.rule_id)
        if rule is None or rule.suppress_when is None:
            return None
        sw = rule.suppress_when
        value = self.engine.suppressed_value(alarm.device_id, sw.metric)
        if value is not None and any(value == v and isinstance(value, bool) == isinstance(v, bool)
                                     for v in sw.in_):
            return f"{sw.metric} = {value}"
        return None


class InhibitMuter:
    """``inhibited_by``: a root-cause alarm active on the same building, device or site."""

    def __init__(self, rules: Mapping[str, RuleConfig], devices: Mapping[str, Device],
                 alarms: Mapping[str, Alarm]) -> None:
        self.rules = rules
        self.devices = devices
        self.alarms = alarms

    def _building(self, device_id: str) -> str | None:
        if device_id.startswith(BUILDING_PREFIX):
            return device_id.removeprefix(BUILDING_PREFIX)
        dev = self.devices.get(device_id)
        return dev.location.building if dev else None

    def mutes(self, alarm: Alarm) -> str | None:
        rule = self.rules.get(alarm.rule_id)
        if rule is None or not rule.inhibited_by:
            return None
        for inh in rule.inhibited_by:
            for src in self.alarms.values():
                if src.rule_id != inh.rule or src.alarm_id == alarm.alarm_id:
                    continue
                if not src.condition_active or src.state == AlarmState.OUT_OF_SERVICE:
                    continue  # a root cause inhibits while its condition holds
                if inh.equal == "site" or (
                        inh.equal == "device" and src.device_id == alarm.device_id) or (
                        inh.equal == "building"
                        and self._building(src.device_id) is not None
                        and self._building(src.device_id) == self._building(alarm.device_id)):
                    return f"inhibited by {src.alarm_id}"
        return None


class Mutes:
    """All muters in order; the first reason wins. Rules not ``suppressible`` pass through."""

    def __init__(self, rules: Mapping[str, RuleConfig], *muters: Muter) -> None:
        self.rules = rules
        self.muters = muters

    def __call__(self, alarm: Alarm) -> str | None:
        rule = self.rules.get(alarm.rule_id)
        if rule is not None and not rule.suppressible:
            return None
        for m in self.muters:
            why = m.mutes(alarm)
            if why is not None:
                return why
        return None
