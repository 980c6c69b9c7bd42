"""Alarm-handling routes beyond the basics: comments, out of service, maintenance, KPIs.

Mounted by ``create_app``; the runtime comes from the app, as everywhere in the API.
"""

# No ``from __future__ import annotations``: the role dependencies are made inside
# ``add_alarm_routes`` (``require`` lives in app.py, which imports this module), and
# FastAPI must see them as objects, not as names it cannot resolve.
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from gateway.api import schemas
from gateway.auth import Principal
from gateway.journal import iso
from rules.alarms import AlarmActionError
from rules.mute import Maintenance

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["add_alarm_routes"]


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class MaintenanceIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    minutes: float | None = Field(None, gt=0, le=30 * 24 * 60)


class MaintenanceOut(BaseModel):
    device_id: str
    by: str
    at: str
    reason: str
    until: str | None


class AlarmKpiOut(BaseModel):
    activations_10min: int
    activations_10min_by_position: dict[str, int]
    activations_24h: int
    flood_threshold: int
    floods_total: int
    flooding_positions: list[str]
    chattering: list[str]
    standing: list[str]
    top10: list[dict[str, Any]]
    notifications_total: int


def _maintenance_out(m: Maintenance) -> MaintenanceOut:
    return MaintenanceOut(device_id=m.device_id, by=m.by, at=iso(m.at) or "", reason=m.reason,
                          until=iso(m.until))


def add_alarm_routes(app: FastAPI, runtime: "Runtime") -> None:
    from gateway.api.app import require

    viewer = Annotated[Principal, require("viewer")]
    operator = Annotated[Principal, require("operator")]
    engineer = Annotated[Principal, require("engineer")]
    conflict: dict[int | str, dict[str, Any]] = {404: {"model": schemas.Problem},
                                                 409: {"model": schemas.Problem}}

    async def act(alarm_id: str, fn: Any, *args: Any) -> schemas.AlarmOut:
        async with runtime._lock:
            try:
                change = fn(alarm_id, *args)
            except AlarmActionError as exc:
                status = 404 if "does not exist" in str(exc) else 409
                raise HTTPException(status, str(exc)) from None
            alarm = await runtime.operator_change(change)
        return schemas.alarm_out(alarm, runtime)

    @app.post("/api/v1/alarms/{alarm_id}/comment", response_model=schemas.AlarmOut,
              tags=["alarms"], responses=conflict)
    async def comment(alarm_id: str, who: operator, body: CommentIn) -> schemas.AlarmOut:
        return await act(alarm_id, runtime.book.comment, who.name, runtime.clock.now(),
                         body.text)

    @app.post("/api/v1/alarms/{alarm_id}/out-of-service", response_model=schemas.AlarmOut,
              tags=["alarms"], responses=conflict)
    async def out_of_service(alarm_id: str, who: engineer, body: ReasonIn) -> schemas.AlarmOut:
        return await act(alarm_id, runtime.book.remove_from_service, who.name,
                         runtime.clock.now(), body.reason)

    @app.post("/api/v1/alarms/{alarm_id}/return-to-service", response_model=schemas.AlarmOut,
              tags=["alarms"], responses=conflict)
    async def return_to_service(alarm_id: str, who: engineer) -> schemas.AlarmOut:
        return await act(alarm_id, runtime.book.return_to_service, who.name,
                         runtime.clock.now(), runtime.alarms.mutes)

    @app.get("/api/v1/maintenance", response_model=list[MaintenanceOut], tags=["devices"])
    async def maintenance_list(_: viewer) -> list[MaintenanceOut]:
        return [_maintenance_out(m) for m in runtime.alarms.maintenance.devices.values()]

    @app.put("/api/v1/devices/{device_id}/maintenance", response_model=MaintenanceOut,
             tags=["devices"], responses={404: {"model": schemas.Problem}})
    async def maintenance_on(device_id: str, who: engineer, body: MaintenanceIn
                             ) -> MaintenanceOut:
        if device_id not in runtime.devices:
            raise HTTPException(404, f"device {device_id!r} does not exist / 设备不存在")
        now = runtime.clock.now()
        m = Maintenance(device_id, who.name, now, body.reason,
                        now + body.minutes * 60 if body.minutes else None)
        await runtime.set_maintenance(device_id, m, who.name)
        return _maintenance_out(m)

    @app.delete("/api/v1/devices/{device_id}/maintenance", status_code=204, tags=["devices"],
                responses={404: {"model": schemas.Problem}})
    async def maintenance_off(device_id: str, who: engineer) -> None:
        if device_id not in runtime.alarms.maintenance.devices:
            raise HTTPException(404, f"device {device_id!r} is not in maintenance / 设备未在检修")
        await runtime.set_maintenance(device_id, None, who.name)

    @app.get("/api/v1/kpi/alarms", response_model=AlarmKpiOut, tags=["alarms"])
    async def alarm_kpis(_: viewer) -> dict[str, Any]:
        return runtime.alarms.kpis(runtime.clock.now())
