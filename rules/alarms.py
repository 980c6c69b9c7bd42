"""The alarm book: one alarm per (rule, device) and its ISA-18.2 lifecycle.

Every method returns the changed alarm and its ``AlarmTransition`` (or nothing when the
request changes nothing), and never writes anything itself: the runtime stores both and
the journal row in one transaction. Operator actions that make no sense in the current
state raise ``AlarmActionError`` with a message an operator can read.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.errors import RuleError
from gateway.types import ACTIVE_STATES, Alarm, AlarmState, AlarmTransition
from rules.engine import Decision

__all__ = ["AlarmActionError", "AlarmBook", "Change"]

S = AlarmState
Change = tuple[Alarm, AlarmTransition]


class AlarmActionError(RuleError):
    pass


def alarm_id_for(rule_id: str, device_id: str) -> str:
    return f"{rule_id}:{device_id}"


class AlarmBook:
    def __init__(self, alarms: Iterable[Alarm] = ()) -> None:
        self.alarms: dict[str, Alarm] = {a.alarm_id: a for a in alarms}

    def active(self) -> list[Alarm]:
        return [a for a in self.alarms.values() if a.state != S.NORMAL]

    def _move(self, alarm: Alarm, to: AlarmState, at: float, by: str, reason: str,
              **changes: object) -> Change:
        new = alarm.with_(state=to, updated_at=at, **changes)
        self.alarms[new.alarm_id] = new
        return new, AlarmTransition(alarm.alarm_id, alarm.state, to, at, by, reason)

    # -- from the rule engine ---------------------------------------------------------

    def apply(self, d: Decision) -> Change | None:
        aid = alarm_id_for(d.rule_id, d.device_id)
        alarm = self.alarms.get(aid)
        if d.action == "raise":
            if alarm is None:
                alarm = Alarm(aid, d.rule_id, d.device_id, S.NORMAL, d.priority, d.message,
                              d.at, d.at, d.at, 0, False, d.value, d.latching)
            if alarm.state in (S.NORMAL, S.RTN_UNACK):
                return self._move(alarm, S.ACTIVE_UNACK, d.at, "system", "condition raised",
                                  condition_active=True, count=alarm.count + 1,
                                  last_raised_at=d.at, value=d.value, priority=d.priority,
                                  message=d.message, acked_by=None, acked_at=None)
            if alarm.state in (S.SHELVED, S.SUPPRESSED, S.OUT_OF_SERVICE, S.LATCHED,
                               S.ACTIVE_ACK, S.ACTIVE_UNACK):
                # still counted and remembered; state is the operator's or the design's
                new = alarm.with_(condition_active=True, last_raised_at=d.at, value=d.value,
                                  updated_at=d.at,
                                  count=alarm.count + (0 if alarm.condition_active else 1))
                self.alarms[aid] = new
                if alarm.state == S.LATCHED and not alarm.condition_active:
                    return self._move(alarm, S.ACTIVE_UNACK, d.at, "system",
                                      "condition raised again while latched",
                                      condition_active=True, count=alarm.count + 1,
                                      last_raised_at=d.at, value=d.value, acked_by=None,
                                      acked_at=None)
                return None
            return None
        if alarm is None or not alarm.condition_active:
            return None
        if alarm.state == S.ACTIVE_UNACK:
            to = S.LATCHED if alarm.latching else S.RTN_UNACK
            return self._move(alarm, to, d.at, "system", "condition cleared",
                              condition_active=False)
        if alarm.state == S.ACTIVE_ACK:
            to = S.LATCHED if alarm.latching else S.NORMAL
            return self._move(alarm, to, d.at, "system", "condition cleared",
                              condition_active=False)
        new = alarm.with_(condition_active=False, updated_at=d.at)
        self.alarms[aid] = new
        return None

    # -- operator actions -------------------------------------------------------------

    def _get(self, alarm_id: str) -> Alarm:
        alarm = self.alarms.get(alarm_id)
        if alarm is None:
            raise AlarmActionError(f"alarm {alarm_id!r} does not exist / 报警不存在")
        return alarm

    def acknowledge(self, alarm_id: str, by: str, at: float, note: str = "") -> Change:
        alarm = self._get(alarm_id)
        if alarm.state == S.ACTIVE_UNACK:
            return self._move(alarm, S.ACTIVE_ACK, at, by, note or "acknowledged",
                              acked_by=by, acked_at=at)
        if alarm.state == S.RTN_UNACK:
            return self._move(alarm, S.NORMAL, at, by, note or "acknowledged",
                              acked_by=by, acked_at=at)
        if alarm.state == S.LATCHED and alarm.acked_at is None:
            return self._move(alarm, S.LATCHED, at, by, note or "acknowledged (still latched)",
                              acked_by=by, acked_at=at)
        raise AlarmActionError(
            f"alarm {alarm_id!r} is {alarm.state.value}; nothing to acknowledge / 无需确认")

    def reset(self, alarm_id: str, by: str, at: float, note: str = "") -> Change:
        alarm = self._get(alarm_id)
        if alarm.state != S.LATCHED:
            raise AlarmActionError(
                f"alarm {alarm_id!r} is {alarm.state.value}, not latched / 报警未锁存")
        if alarm.condition_active:
            raise AlarmActionError(
                f"alarm {alarm_id!r}: condition still active; inspect before reset / 条件仍存在")
        return self._move(alarm, S.NORMAL, at, by, note or "reset after inspection",
                          acked_by=alarm.acked_by or by, acked_at=alarm.acked_at or at)

    def shelve(self, alarm_id: str, by: str, at: float, until: float, reason: str) -> Change:
        alarm = self._get(alarm_id)
        if alarm.state not in ACTIVE_STATES:
            raise AlarmActionError(
                f"alarm {alarm_id!r} is {alarm.state.value}; only an active alarm can be shelved"
                " / 只能搁置活动报警")
        if not reason.strip():
            raise AlarmActionError("a reason is required to shelve / 搁置需要填写原因")
        if until <= at:
            raise AlarmActionError("shelve end must be in the future / 搁置结束时间须晚于当前")
        return self._move(alarm, S.SHELVED, at, by, reason, shelved_until=until, shelved_by=by,
                          shelve_reason=reason)

    def unshelve(self, alarm_id: str, by: str, at: float, reason: str = "unshelved") -> Change:
        alarm = self._get(alarm_id)
        if alarm.state != S.SHELVED:
            raise AlarmActionError(f"alarm {alarm_id!r} is not shelved / 报警未搁置")
        to = S.ACTIVE_UNACK if alarm.condition_active else S.NORMAL
        return self._move(alarm, to, at, by, reason, shelved_until=None, shelved_by=None,
                          shelve_reason=None, acked_by=None, acked_at=None)

    def expire_shelves(self, now: float) -> list[Change]:
        return [self.unshelve(a.alarm_id, "system", now, "shelve expired")
                for a in list(self.alarms.values())
                if a.state == S.SHELVED and a.shelved_until is not None
                and a.shelved_until <= now]
