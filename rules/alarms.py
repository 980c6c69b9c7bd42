"""The alarm book: one alarm per (rule, device) and its ISA-18.2 lifecycle.

States (``gateway.types.AlarmState``)::

    normal ──raise──► active_unack ──ack──► active_ack ──clear──► normal
       ▲                  │ clear               │ clear (latching)
       │ ack              ▼                     ▼
       └──────────── rtn_unack            latched ──reset (condition gone)──► normal
    any active ──shelve──► shelved ──unshelve / expiry──► active_unack | normal
    raise while muted ──► suppressed ──mute ends──► active_unack | normal
    any ──remove from service──► out_of_service ──return──► active_unack | normal

Every method returns the changes (alarm, ``AlarmTransition``) and never writes anything
itself: the runtime stores both and the journal row in one transaction. Operator actions
that make no sense in the current state raise ``AlarmActionError`` with a message an
operator can read. ``tick`` handles what time alone changes: shelve expiry, re-alarm of
alarms left unacknowledged, escalation steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from gateway.errors import RuleError
from gateway.types import ACTIVE_STATES, Alarm, AlarmState, AlarmTransition, Priority
from rules.config import RuleConfig
from rules.engine import Decision

__all__ = ["AlarmActionError", "AlarmBook", "Change", "MuteFn", "alarm_id_for"]

S = AlarmState
Change = tuple[Alarm, AlarmTransition]
MuteFn = Callable[[Alarm], str | None]

STATE_LABELS: dict[AlarmState, tuple[str, str]] = {
    S.NORMAL: ("正常", "Normal"),
    S.ACTIVE_UNACK: ("报警未确认", "Active, unacknowledged"),
    S.ACTIVE_ACK: ("报警已确认", "Active, acknowledged"),
    S.RTN_UNACK: ("已恢复未确认", "Returned to normal, unacknowledged"),
    S.LATCHED: ("锁存待复位", "Latched (reset needed)"),
    S.SHELVED: ("已搁置", "Shelved"),
    S.SUPPRESSED: ("设计抑制", "Suppressed by design"),
    S.OUT_OF_SERVICE: ("停用", "Out of service"),
}


class AlarmActionError(RuleError):
    pass


def alarm_id_for(rule_id: str, device_id: str) -> str:
    return f"{rule_id}:{device_id}"


def _no_mute(_: Alarm) -> str | None:
    return None


class AlarmBook:
    def __init__(self, alarms: Iterable[Alarm] = (), rules: Mapping[str, RuleConfig] | None = None
                 ) -> None:
        self.alarms: dict[str, Alarm] = {a.alarm_id: a for a in alarms}
        self.rules: Mapping[str, RuleConfig] = rules or {}
        # alarm ids by rule and by device, so re-muting looks only where a mute can apply
        self.by_rule: dict[str, set[str]] = {}
        self.by_device: dict[str, set[str]] = {}
        for a in self.alarms.values():
            self._index(a)

    def _index(self, a: Alarm) -> None:
        self.by_rule.setdefault(a.rule_id, set()).add(a.alarm_id)
        self.by_device.setdefault(a.device_id, set()).add(a.alarm_id)

    def active(self) -> list[Alarm]:
        return [a for a in self.alarms.values() if a.state != S.NORMAL]

    def _move(self, alarm: Alarm, to: AlarmState, at: float, by: str, reason: str,
              **changes: object) -> Change:
        new = alarm.with_(state=to, updated_at=at, **changes)
        self.alarms[new.alarm_id] = new
        return new, AlarmTransition(alarm.alarm_id, alarm.state, to, at, by, reason)

    def _activate(self, alarm: Alarm, at: float, reason: str, **changes: object) -> Change:
        rule = self.rules.get(alarm.rule_id)
        fields: dict[str, object] = {
            "acked_by": None, "acked_at": None, "active_since": at, "annunciated_at": at,
            "escalation": 0, "suppressed_by": None,
            "group": rule.group if rule else alarm.group,
            "priority": rule.priority_level if rule else alarm.priority}
        fields.update(changes)
        return self._move(alarm, S.ACTIVE_UNACK, at, "system", reason, **fields)

    # -- from the rule engine ---------------------------------------------------------

    def apply(self, d: Decision, mute: MuteFn = _no_mute) -> Change | None:
        """Apply one engine decision; ``mute`` says why a new activation is suppressed."""
        aid = alarm_id_for(d.rule_id, d.device_id)
        alarm = self.alarms.get(aid)
        if d.action == "raise":
            if alarm is None:
                rule = self.rules.get(d.rule_id)
                alarm = Alarm(aid, d.rule_id, d.device_id, S.NORMAL, d.priority, d.message,
                              d.at, d.at, d.at, 0, False, d.value, d.latching,
                              group=rule.group if rule else "console")
                self._index(alarm)
            counted = alarm.count + (1 if d.repeat or not alarm.condition_active else 0)
            if alarm.state in (S.NORMAL, S.RTN_UNACK) or (
                    alarm.state == S.LATCHED and not alarm.condition_active):
                why = mute(alarm)
                if why is not None:
                    return self._move(alarm, S.SUPPRESSED, d.at, "system",
                                      f"condition raised while suppressed: {why}",
                                      condition_active=True, count=counted,
                                      last_raised_at=d.at, value=d.value, suppressed_by=why,
                                      active_since=d.at, message=d.message,
                                      latching=d.latching)
                reason = ("condition raised again while latched" if alarm.state == S.LATCHED
                          else "condition raised")
                return self._activate(alarm, d.at, reason, condition_active=True,
                                      count=counted, last_raised_at=d.at, value=d.value,
                                      message=d.message, latching=d.latching)
            # already active, shelved, suppressed or out of service: counted, remembered
            self.alarms[aid] = alarm.with_(condition_active=True, last_raised_at=d.at,
                                           value=d.value, updated_at=d.at, count=counted)
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
        if alarm.state == S.SUPPRESSED:
            return self._move(alarm, S.NORMAL, d.at, "system",
                              "condition cleared while suppressed", condition_active=False,
                              suppressed_by=None)
        self.alarms[aid] = alarm.with_(condition_active=False, updated_at=d.at)
        return None

    def remute(self, mute: MuteFn, now: float, *, rules: Iterable[str] | None = None,
               devices: Iterable[str] = ()) -> list[Change]:
        """Re-check suppression after maintenance, device states or root-cause alarms moved.

        ``rules`` and ``devices`` narrow the alarms looked at (``None``: all).
        """
        out: list[Change] = []
        if rules is None:
            candidates = list(self.alarms.values())
        else:
            ids: set[str] = set()
            for r in rules:
                ids |= self.by_rule.get(r, set())
            for d in devices:
                ids |= self.by_device.get(d, set())
            candidates = [self.alarms[i] for i in sorted(ids)]
        for alarm in candidates:
            if alarm.state == S.SUPPRESSED:
                why = mute(alarm)
                if why is None:
                    if alarm.condition_active:
                        out.append(self._activate(alarm, now, "suppression ended",
                                                  active_since=alarm.active_since or now))
                    else:
                        out.append(self._move(alarm, S.NORMAL, now, "system",
                                              "suppression ended", suppressed_by=None))
                elif why != alarm.suppressed_by:
                    self.alarms[alarm.alarm_id] = alarm.with_(suppressed_by=why)
            elif alarm.state in (S.ACTIVE_UNACK, S.ACTIVE_ACK) and alarm.condition_active:
                why = mute(alarm)
                if why is not None:
                    out.append(self._move(alarm, S.SUPPRESSED, now, "system",
                                          f"suppressed: {why}", suppressed_by=why))
        return out

    # -- what time alone changes ------------------------------------------------------

    def tick(self, now: float) -> list[Change]:
        """Shelve expiry, re-alarm of unacknowledged alarms, escalation steps.

        Both apply while the operator has not acknowledged: active, or latched and not yet
        acknowledged (a trapped passenger released by the firemen still needs the console).
        """
        out = self.expire_shelves(now)
        for alarm in list(self.alarms.values()):
            # unacknowledged and still needing the operator: active, or latched (not reset)
            if not (alarm.state == S.ACTIVE_UNACK
                    or (alarm.state == S.LATCHED and alarm.acked_at is None)):
                continue
            rule = self.rules.get(alarm.rule_id)
            if rule is None:
                continue
            since = alarm.active_since or alarm.last_raised_at
            while alarm.escalation < len(rule.escalate) and \
                    now - since >= rule.escalate[alarm.escalation].after_s:
                step = rule.escalate[alarm.escalation]
                prio = Priority[step.priority.upper()] if step.priority else alarm.priority
                group = step.group or alarm.group
                reason = (f"escalated after {step.after_s:g} s unacknowledged: priority "
                          f"{int(alarm.priority)}→{int(prio)}, group {alarm.group}→{group}")
                alarm, t = self._move(alarm, alarm.state, now, "system", reason,
                                      priority=prio, group=group,
                                      escalation=alarm.escalation + 1, annunciated_at=now)
                out.append((alarm, t))
            if rule.realarm_s is not None:
                last = alarm.annunciated_at or since
                if now - last >= rule.realarm_s:
                    out.append(self._move(
                        alarm, alarm.state, now, "system",
                        f"re-alarm: still active and unacknowledged after "
                        f"{rule.realarm_s:g} s", annunciated_at=now))
        return out

    def expire_shelves(self, now: float) -> list[Change]:
        return [self.unshelve(a.alarm_id, "system", now, "shelve expired")
                for a in list(self.alarms.values())
                if a.state == S.SHELVED and a.shelved_until is not None
                and a.shelved_until <= now]

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
        cleared = {"shelved_until": None, "shelved_by": None, "shelve_reason": None}
        if alarm.condition_active:
            return self._move(alarm, S.ACTIVE_UNACK, at, by, reason, acked_by=None,
                              acked_at=None, annunciated_at=at, **cleared)
        return self._move(alarm, S.NORMAL, at, by, reason, **cleared)

    def comment(self, alarm_id: str, by: str, at: float, text: str) -> Change:
        """A note on the alarm's record; the state does not change."""
        alarm = self._get(alarm_id)
        if not text.strip():
            raise AlarmActionError("a comment needs text / 备注不能为空")
        return self._move(alarm, alarm.state, at, by, f"comment: {text.strip()}")

    def remove_from_service(self, alarm_id: str, by: str, at: float, reason: str) -> Change:
        alarm = self._get(alarm_id)
        if alarm.state == S.OUT_OF_SERVICE:
            raise AlarmActionError(f"alarm {alarm_id!r} is already out of service / 报警已停用")
        if not reason.strip():
            raise AlarmActionError("a reason is required / 停用需要填写原因")
        return self._move(alarm, S.OUT_OF_SERVICE, at, by, f"out of service: {reason}")

    def return_to_service(self, alarm_id: str, by: str, at: float,
                          mute: MuteFn = _no_mute) -> Change:
        alarm = self._get(alarm_id)
        if alarm.state != S.OUT_OF_SERVICE:
            raise AlarmActionError(f"alarm {alarm_id!r} is not out of service / 报警未停用")
        if alarm.condition_active:
            why = mute(alarm)
            if why is not None:
                return self._move(alarm, S.SUPPRESSED, at, by, f"returned to service; {why}",
                                  suppressed_by=why)
            change = self._activate(alarm, at, "returned to service, condition active")
            return change[0], change[1].__class__(alarm_id, S.OUT_OF_SERVICE, S.ACTIVE_UNACK,
                                                  at, by, "returned to service, condition active")
        return self._move(alarm, S.NORMAL, at, by, "returned to service")
