"""HTTP request and response models, mapped from internal types (never exported directly)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from gateway.journal import iso
from gateway.types import Alarm

if TYPE_CHECKING:
    from gateway.runtime import DeviceState, Runtime


class Problem(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    mqtt_connected: bool
    uptime_s: float
    journal_seq: int


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


class LoginResult(BaseModel):
    token: str
    user: str
    role: str


class NoteIn(BaseModel):
    note: str = Field("", max_length=2000)


class ShelveIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    minutes: float = Field(gt=0, le=7 * 24 * 60)


class AlarmOut(BaseModel):
    alarm_id: str
    rule_id: str
    device_id: str
    building: str | None
    device_kind: str | None
    state: str
    priority: int
    message: str
    first_raised_at: str
    last_raised_at: str
    updated_at: str
    count: int
    condition_active: bool
    value: float | int | bool | str | None
    latching: bool
    acked_by: str | None
    acked_at: str | None
    shelved_until: str | None
    shelved_by: str | None
    shelve_reason: str | None
    active_since: str | None = None
    escalation: int = 0
    group: str = "console"
    suppressed_by: str | None = None


class TransitionOut(BaseModel):
    from_state: str
    to_state: str
    at: str
    by: str
    reason: str


class AlarmDetail(AlarmOut):
    transitions: list[TransitionOut]


class DeviceOut(BaseModel):
    id: str
    kind: str
    name: str
    building: str
    floor: str | None
    zone: str | None
    transport: str
    profile: str
    status: str
    last_seen: str | None
    latest: dict[str, Any]
    active_alarms: int


class PointOut(BaseModel):
    at: float
    value: float | int | bool | str | None
    quality: str


class BucketOut(BaseModel):
    start: float
    count: int
    min: float
    max: float
    avg: float


class History(BaseModel):
    device_id: str
    metric: str
    resolution: str = "raw"
    points: list[PointOut]
    buckets: list[BucketOut] = []


class EventPage(BaseModel):
    events: list[dict[str, Any]]
    next_after: int
    newest_seq: int


class RejectionOut(BaseModel):
    at: str
    reason: str
    source: str
    detail: str
    payload: str


def alarm_out(a: Alarm, runtime: Runtime) -> AlarmOut:
    st = runtime.devices.get(a.device_id)
    building = st.device.location.building if st else (
        a.device_id.removeprefix("building:") if a.device_id.startswith("building:") else None)
    return AlarmOut(
        alarm_id=a.alarm_id, rule_id=a.rule_id, device_id=a.device_id,
        building=building,
        device_kind=st.device.kind.value if st else None,
        state=a.state.value, priority=int(a.priority), message=a.message,
        first_raised_at=iso(a.first_raised_at) or "", last_raised_at=iso(a.last_raised_at) or "",
        updated_at=iso(a.updated_at) or "", count=a.count, condition_active=a.condition_active,
        value=a.value, latching=a.latching, acked_by=a.acked_by, acked_at=iso(a.acked_at),
        shelved_until=iso(a.shelved_until), shelved_by=a.shelved_by,
        shelve_reason=a.shelve_reason, active_since=iso(a.active_since),
        escalation=a.escalation, group=a.group, suppressed_by=a.suppressed_by)


def device_out(st: DeviceState, runtime: Runtime) -> DeviceOut:
    d = st.device
    active = sum(1 for a in runtime.book.alarms.values()
                 if a.device_id == d.id and a.state.value != "normal")
    if st.maintenance:
        status = "maintenance"
    elif active:
        status = "alarm"
    elif st.online is False:
        status = "offline"
    elif st.online is None:
        status = "unknown"
    else:
        status = "online"
    return DeviceOut(
        id=d.id, kind=d.kind.value, name=d.name, building=d.location.building,
        floor=d.location.floor, zone=d.location.zone, transport=d.transport, profile=d.profile,
        status=status, last_seen=iso(st.last_seen),
        latest={k: {"value": v, "at": iso(at)} for k, (v, at) in st.latest.items()},
        active_alarms=active)
