"""The audit log: who did what, to what, when, from where, and how it ended.

Every operator action (acknowledge, shelve, unshelve, reset, device command, maintenance
toggle), every login (success, failure, lockout) and every user change is an
``AuditEntry``. ``record(tx, entry)`` adds it to a state ``Transaction`` twice: as a row of
the ``audit`` table (read by admins, ``GET /api/v1/audit``) and as a journal row of type
``estate.audit.<action>`` (read by the cloud). Both are written in the same transaction as
the action's own state change, so an action is never stored without its audit row.

Usage for a module that changes state (e.g. maintenance mode)::

    tx = Transaction()
    ...  # the state change itself
    record(tx, AuditEntry.now(runtime.clock, actor=who.name, action="device.maintenance",
                              target=device_id, detail={"on": True}, client=addr))
    await runtime.state.apply(tx)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.clock import Clock
from gateway.store.state import JournalDraft, Transaction

__all__ = ["AUDIT_TYPE_PREFIX", "AuditAction", "AuditEntry", "Outcome", "audit_draft",
           "record"]

AUDIT_TYPE_PREFIX = "estate.audit."

AuditAction = Literal[
    "alarm.acknowledge",
    "alarm.reset",
    "alarm.shelve",
    "alarm.unshelve",
    "alarm.comment",
    "device.command",
    "device.maintenance",
    "auth.login",
    "auth.login_failed",
    "auth.lockout",
    "user.add",
    "user.disable",
    "user.enable",
    "token.add",
]
Outcome = Literal["ok", "denied", "failed"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    actor: str
    action: AuditAction
    target: str
    outcome: Outcome = "ok"
    client: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    audit_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def now(cls, clock: Clock, *, actor: str, action: AuditAction, target: str,
            outcome: Outcome = "ok", client: str = "",
            detail: Mapping[str, Any] | None = None) -> AuditEntry:
        return cls(clock.now(), actor, action, target, outcome, client, dict(detail or {}))

    def as_dict(self) -> dict[str, Any]:
        return {"audit_id": self.audit_id, "at": self.at, "actor": self.actor,
                "action": self.action, "target": self.target, "outcome": self.outcome,
                "client": self.client, "detail": dict(self.detail)}


def audit_draft(entry: AuditEntry) -> JournalDraft:
    """The journal row for the cloud; its ``event_id`` is the audit id (idempotent)."""
    from gateway.journal import iso  # journal imports the state store; keep this lazy

    data = {**entry.as_dict(), "at": iso(entry.at)}
    return JournalDraft(AUDIT_TYPE_PREFIX + entry.action, entry.at, entry.target or entry.actor,
                        data, event_id=entry.audit_id)


def record(tx: Transaction, entry: AuditEntry) -> Transaction:
    """Add ``entry`` to ``tx`` (audit table and journal); returns ``tx`` for chaining."""
    tx.audit.append(entry)
    tx.journal.append(audit_draft(entry))
    return tx
