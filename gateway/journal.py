"""Journal rows for the outside world: what each state change looks like as a CloudEvent.

The journal is the one ordered record of everything the cloud may consume. Rows are made
here (``JournalDraft``) and written by the state store in the same transaction as the
change they describe; ``to_cloudevent`` renders a stored row as CloudEvents 1.0 JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.store.state import JournalDraft
from gateway.types import Alarm, AlarmTransition, Event, JournalEntry

__all__ = ["alarm_draft", "event_draft", "iso", "to_cloudevent"]

ALARM_TYPE = "estate.alarm.transition"
EVENT_TYPE = "estate.device.event"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def alarm_dict(a: Alarm) -> dict[str, Any]:
    return {
        "alarm_id": a.alarm_id, "rule_id": a.rule_id, "device_id": a.device_id,
        "state": a.state.value, "priority": int(a.priority), "message": a.message,
        "first_raised_at": iso(a.first_raised_at), "last_raised_at": iso(a.last_raised_at),
        "updated_at": iso(a.updated_at), "count": a.count,
        "condition_active": a.condition_active, "value": a.value, "latching": a.latching,
        "acked_by": a.acked_by, "acked_at": iso(a.acked_at),
        "shelved_until": iso(a.shelved_until), "shelved_by": a.shelved_by,
        "shelve_reason": a.shelve_reason, "active_since": iso(a.active_since),
        "escalation": a.escalation, "group": a.group, "suppressed_by": a.suppressed_by,
    }


def alarm_draft(alarm: Alarm, t: AlarmTransition, extra: dict[str, Any] | None = None
                ) -> JournalDraft:
    data = {"alarm": alarm_dict(alarm), "from": t.from_state.value, "to": t.to_state.value,
            "by": t.by, "reason": t.reason, **(extra or {})}
    return JournalDraft(ALARM_TYPE, t.at, alarm.device_id, data)


def event_draft(e: Event, extra: dict[str, Any] | None = None) -> JournalDraft:
    data = {"device_id": e.device_id, "kind": e.kind, "at": iso(e.at),
            "attributes": dict(e.attributes), **(extra or {})}
    return JournalDraft(EVENT_TYPE, e.at, e.device_id, data, event_id=e.event_id)


def to_cloudevent(entry: JournalEntry, site: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": entry.event_id,
        "source": f"urn:estate:{site}:gateway",
        "type": entry.type,
        "subject": entry.subject,
        "time": iso(entry.time),
        "datacontenttype": "application/json",
        "seq": entry.seq,
        "data": entry.data,
    }
