"""Duty shifts of the monitoring centre (值班) and their handovers (交接班), as pure decisions.

The centre is staffed 24 h and no shift may pass ``max_hours`` (8 h by default). A shift
ends only by a handover: the outgoing operator offers the open alarms and work orders they
have reviewed, the incoming operator accepts them, and the accepted handover starts the new
shift. An operator who finds a shift left open by someone else may take it over, with a
reason that is recorded.

``ShiftBook`` never writes anything: each method returns the next ``ShiftState`` and the
journal rows describing the change; the caller stores both in one transaction (the state
lives in the state database's ``kv`` table under ``SHIFT_KV``) and only then adopts the new
state, so a failed write changes nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError
from gateway.store.state import JournalDraft

__all__ = [
    "HISTORY_MAX",
    "SHIFT_KV",
    "Handover",
    "Shift",
    "ShiftBook",
    "ShiftError",
    "ShiftState",
]

SHIFT_KV = "shifts.state"
HISTORY_MAX = 100  # handovers kept in the state row; the journal keeps them all
STARTED = "estate.shift.started"
OFFERED = "estate.shift.handover_offered"
WITHDRAWN = "estate.shift.handover_withdrawn"
ACCEPTED = "estate.shift.handover_accepted"


class ShiftError(GatewayError):
    """A shift action that makes no sense now; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Shift:
    id: str
    operator: str
    started_at: float
    took_over_from: str | None = None
    takeover_reason: str = ""
    handover_id: str | None = None  # the handover that started it


@dataclass(frozen=True, slots=True)
class Handover:
    id: str
    shift_id: str
    from_operator: str
    offered_at: float
    alarms: tuple[str, ...]
    orders: tuple[str, ...]
    note: str = ""
    accepted_by: str | None = None
    accepted_at: float | None = None
    accept_note: str = ""


@dataclass(frozen=True, slots=True)
class ShiftState:
    current: Shift | None = None
    pending: Handover | None = None
    history: tuple[Handover, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"current": _dump(self.current), "pending": _dump(self.pending),
                "history": [_dump(h) for h in self.history]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ShiftState:
        if not data:
            return cls()
        return cls(current=_load(Shift, data.get("current")),
                   pending=_load(Handover, data.get("pending")),
                   history=tuple(h for h in (_load(Handover, d) for d in data.get("history", ()))
                                 if h is not None))


def _dump(obj: Shift | Handover | None) -> dict[str, Any] | None:
    return None if obj is None else dataclasses.asdict(obj)


def _load(cls: Any, data: Mapping[str, Any] | None) -> Any:
    if not data:
        return None
    d = dict(data)
    for key in ("alarms", "orders"):
        if key in d:
            d[key] = tuple(d[key])
    return cls(**d)


Result = tuple[ShiftState, list[JournalDraft]]


class ShiftBook:
    def __init__(self, state: ShiftState | None = None) -> None:
        self.state = state or ShiftState()

    def start(self, operator: str, at: float, takeover_reason: str = "") -> Result:
        """Start a shift; taking over someone else's open shift needs a reason."""
        cur = self.state.current
        if cur is not None and cur.operator == operator:
            raise ShiftError(f"{operator!r} is already on duty since this shift started"
                             " / 已在值班中")
        took_over = None
        if cur is not None:
            if not takeover_reason.strip():
                raise ShiftError(f"{cur.operator!r} is on duty: accept their handover, or give a "
                                 "reason to take the shift over / 当前有人值班，请接班或填写接管原因")
            took_over = cur.operator
        shift = Shift(_new_id(), operator, at, took_over, takeover_reason.strip())
        new = dataclasses.replace(self.state, current=shift, pending=None)
        data = {"shift": _dump(shift), "previous": _dump(cur),
                "withdrawn_handover": _dump(self.state.pending)}
        return new, [JournalDraft(STARTED, at, f"shift/{shift.id}", data)]

    def offer(self, operator: str, at: float, alarms: Iterable[str], orders: Iterable[str],
              open_alarms: Iterable[str], note: str = "") -> Result:
        """The outgoing operator hands over what they reviewed; it must be what is open now."""
        cur = self.state.current
        if cur is None or cur.operator != operator:
            raise ShiftError("only the operator on duty can hand the shift over"
                             " / 只有当班值班员可以交班", 403)
        reviewed, now_open = set(alarms), set(open_alarms)
        if reviewed != now_open:
            missing = sorted(now_open - reviewed)
            gone = sorted(reviewed - now_open)
            raise ShiftError("the open alarms changed while you reviewed them; review again"
                             f" (new: {', '.join(missing) or '-'}; closed: "
                             f"{', '.join(gone) or '-'}) / 未结报警已变化，请重新核对")
        handover = Handover(_new_id(), cur.id, operator, at, tuple(sorted(reviewed)),
                            tuple(sorted(set(orders))), note.strip())
        new = dataclasses.replace(self.state, pending=handover)
        return new, [JournalDraft(OFFERED, at, f"shift/{cur.id}", {"handover": _dump(handover)})]

    def withdraw(self, handover_id: str, operator: str, at: float) -> Result:
        pending = self._pending(handover_id)
        if pending.from_operator != operator:
            raise ShiftError("only the outgoing operator can withdraw a handover"
                             " / 只有交班人可以撤回", 403)
        new = dataclasses.replace(self.state, pending=None)
        return new, [JournalDraft(WITHDRAWN, at, f"shift/{pending.shift_id}",
                                  {"handover": _dump(pending), "by": operator})]

    def accept(self, handover_id: str, operator: str, at: float, note: str = "") -> Result:
        """The incoming operator accepts the handover; their shift starts now."""
        pending = self._pending(handover_id)
        if pending.from_operator == operator:
            raise ShiftError("the incoming operator must be someone else / 接班人不能是交班人",
                             403)
        done = dataclasses.replace(pending, accepted_by=operator, accepted_at=at,
                                   accept_note=note.strip())
        shift = Shift(_new_id(), operator, at, handover_id=done.id)
        history = (done, *self.state.history)[:HISTORY_MAX]
        new = ShiftState(current=shift, pending=None, history=history)
        return new, [JournalDraft(ACCEPTED, at, f"shift/{shift.id}",
                                  {"handover": _dump(done), "shift": _dump(shift),
                                   "previous": _dump(self.state.current)})]

    def _pending(self, handover_id: str) -> Handover:
        pending = self.state.pending
        if pending is None or pending.id != handover_id:
            raise ShiftError(f"handover {handover_id!r} is not pending / 交接记录不存在或已处理",
                             404)
        return pending


def _new_id() -> str:
    return uuid.uuid4().hex[:12]
