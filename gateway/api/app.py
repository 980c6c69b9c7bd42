"""The HTTP API: health, login, alarms, devices and history, the event feed, /metrics.

Every route but ``/healthz``, ``/api/v1/login`` and the API description (``/openapi.json``,
``/docs``: read-only, no data) needs a bearer credential with the right role or permission
(``require``, in ``gateway.api.deps``). CORS is closed unless ``api.cors_allow_origins``
lists origins. The runtime reaches routes through the app's state, never a global.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from gateway.api import commands as commands_api
from gateway.api import schemas
from gateway.api.alarm_routes import add_alarm_routes
from gateway.api import security as security_api
from gateway.api.deps import Cloud, EventsReader, Operator, Viewer, require
from gateway.audit import AuditAction, AuditEntry
from gateway.api.longpoll import wait_for_entries
from gateway.journal import iso, to_cloudevent
from rules.alarms import AlarmActionError

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["Cloud", "Operator", "Viewer", "create_app", "require"]


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="Estate gateway API", version="1", redoc_url=None,
                  description="Alarms, devices, history and the estate's event feed.")
    app.state.runtime = runtime
    if runtime.config.api.cors_allow_origins:  # closed by default: no CORS headers at all
        app.add_middleware(CORSMiddleware, allow_origins=runtime.config.api.cors_allow_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.include_router(security_api.router)  # login, users, audit
    app.include_router(commands_api.router)  # device commands

    @app.get("/healthz", response_model=schemas.Health, tags=["ops"])
    async def healthz() -> dict[str, Any]:
        return runtime.health()

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics(_: Viewer) -> Response:
        from gateway.metrics import render_metrics  # prometheus_client: on the first scrape

        body, content_type = render_metrics(runtime)
        return Response(body, media_type=content_type)

    @app.get("/api/v1/alarms", response_model=list[schemas.AlarmOut], tags=["alarms"])
    async def alarms(_: Viewer, state: str | None = None, include_normal: bool = False,
                     priority: Annotated[int | None, Query(ge=1, le=4)] = None,
                     building: str | None = None, kind: str | None = None,
                     rule: str | None = None, device: str | None = None
                     ) -> list[schemas.AlarmOut]:
        out = []
        for a in runtime.alarm_list():
            if state is not None and a.state.value != state:
                continue
            if not include_normal and state is None and a.state.value == "normal":
                continue
            if priority is not None and int(a.priority) != priority:
                continue
            if (rule is not None and a.rule_id != rule) or (
                    device is not None and a.device_id != device):
                continue
            row = schemas.alarm_out(a, runtime)
            if (building is not None and row.building != building) or (
                    kind is not None and row.device_kind != kind):
                continue
            out.append(row)
        return out

    @app.get("/api/v1/alarms/{alarm_id}", response_model=schemas.AlarmDetail, tags=["alarms"],
             responses={404: {"model": schemas.Problem}})
    async def alarm_detail(alarm_id: str, _: Viewer) -> Any:
        alarm = runtime.book.alarms.get(alarm_id)
        if alarm is None:
            raise HTTPException(404, f"alarm {alarm_id!r} does not exist / 报警不存在")
        transitions = await asyncio.to_thread(runtime.state.transitions_sync, alarm_id)
        return schemas.AlarmDetail(
            **schemas.alarm_out(alarm, runtime).model_dump(),
            transitions=[schemas.TransitionOut(from_state=t.from_state.value,
                                               to_state=t.to_state.value, at=iso(t.at) or "",
                                               by=t.by, reason=t.reason) for t in transitions])

    async def _act(alarm_id: str, fn: Any, *args: Any, audit: tuple[AuditAction, str]
                   ) -> schemas.AlarmOut:
        action, who = audit
        async with runtime._lock:
            try:
                change = fn(alarm_id, *args)
            except AlarmActionError as exc:
                status = 404 if "does not exist" in str(exc) else 409
                raise HTTPException(status, str(exc)) from None
            transition = change[1]
            entry = AuditEntry.now(runtime.clock, actor=who, action=action, target=alarm_id,
                                   detail={"from": transition.from_state.value,
                                           "to": transition.to_state.value,
                                           "reason": transition.reason})
            alarm = await runtime.operator_change(change, entry)
        return schemas.alarm_out(alarm, runtime)

    conflict = {404: {"model": schemas.Problem}, 409: {"model": schemas.Problem}}

    @app.post("/api/v1/alarms/{alarm_id}/ack", response_model=schemas.AlarmOut,
              tags=["alarms"], responses=conflict)
    async def acknowledge(alarm_id: str, who: Operator,
                          body: schemas.NoteIn | None = None) -> schemas.AlarmOut:
        return await _act(alarm_id, runtime.book.acknowledge, who.name, runtime.clock.now(),
                          body.note if body else "", audit=("alarm.acknowledge", who.name))

    @app.post("/api/v1/alarms/{alarm_id}/reset", response_model=schemas.AlarmOut,
              tags=["alarms"], responses=conflict)
    async def reset(alarm_id: str, who: Operator,
                    body: schemas.NoteIn | None = None) -> schemas.AlarmOut:
        return await _act(alarm_id, runtime.book.reset, who.name, runtime.clock.now(),
                          body.note if body else "", audit=("alarm.reset", who.name))

    @app.post("/api/v1/alarms/{alarm_id}/shelve", response_model=schemas.AlarmOut,
              tags=["alarms"], responses=conflict)
    async def shelve(alarm_id: str, who: Operator, body: schemas.ShelveIn) -> schemas.AlarmOut:
        now = runtime.clock.now()
        return await _act(alarm_id, runtime.book.shelve, who.name, now,
                          now + body.minutes * 60, body.reason, audit=("alarm.shelve", who.name))

    @app.post("/api/v1/alarms/{alarm_id}/unshelve", response_model=schemas.AlarmOut,
              tags=["alarms"], responses=conflict)
    async def unshelve(alarm_id: str, who: Operator) -> schemas.AlarmOut:
        return await _act(alarm_id, runtime.book.unshelve, who.name, runtime.clock.now(),
                          audit=("alarm.unshelve", who.name))

    @app.get("/api/v1/devices", response_model=list[schemas.DeviceOut], tags=["devices"])
    async def devices(_: Viewer) -> list[schemas.DeviceOut]:
        return [schemas.device_out(st, runtime) for st in runtime.devices.values()]

    @app.get("/api/v1/devices/{device_id}", response_model=schemas.DeviceOut,
             tags=["devices"], responses={404: {"model": schemas.Problem}})
    async def device(device_id: str, _: Viewer) -> schemas.DeviceOut:
        st = runtime.devices.get(device_id)
        if st is None:
            raise HTTPException(404, f"device {device_id!r} does not exist / 设备不存在")
        return schemas.device_out(st, runtime)

    @app.get("/api/v1/devices/{device_id}/history", response_model=schemas.History,
             tags=["devices"], responses={404: {"model": schemas.Problem},
                                          422: {"model": schemas.Problem}})
    async def history(device_id: str, _: Viewer,
                      metric: Annotated[str, Query(min_length=1, max_length=100)],
                      from_: Annotated[float | None, Query(alias="from")] = None,
                      to: float | None = None,
                      resolution: Literal["auto", "raw", "1m", "1h"] = "raw",
                      limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000
                      ) -> schemas.History:
        """Raw readings, or 1-minute / 1-hour min/max/avg/count buckets (``auto`` picks by
        the span, so a 15-day chart never pulls 130,000 points)."""
        if device_id not in runtime.devices:
            raise HTTPException(404, f"device {device_id!r} does not exist / 设备不存在")
        end = to if to is not None else time.time()
        start = from_ if from_ is not None else end - 86_400
        if start > end:
            raise HTTPException(422, "'from' is after 'to' / 起始时间晚于结束时间")
        result = await runtime.telemetry.history_auto(device_id, metric, start, end,
                                                      resolution=resolution, limit=limit)
        return schemas.History(
            device_id=device_id, metric=metric, resolution=str(result.resolution),
            points=[schemas.PointOut(at=p.at, value=p.value, quality=p.quality.value)
                    for p in result.points],
            buckets=[schemas.BucketOut(start=b.start, count=b.count, min=b.min, max=b.max,
                                       avg=b.avg) for b in result.buckets])

    @app.get("/api/v1/events", response_model=schemas.EventPage, tags=["cloud"])
    async def events(_: EventsReader, after: Annotated[int, Query(ge=0)] = 0,
                     limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                     wait_s: Annotated[float, Query(ge=0, le=300)] = 0) -> Any:
        oldest, newest = await asyncio.to_thread(runtime.state.journal_bounds_sync)
        if oldest and after < oldest - 1:
            return JSONResponse({"detail": "cursor expired / 游标已过期", "oldest_seq": oldest},
                                status_code=410)
        entries = await asyncio.to_thread(runtime.state.journal_sync, after, limit)
        if not entries and wait_s > 0:  # long-poll: answer as soon as something is written
            entries = await wait_for_entries(runtime, after, limit,
                                             min(wait_s, runtime.config.cloud.long_poll_max_s))
        nxt = entries[-1].seq if entries else after
        return schemas.EventPage(events=[to_cloudevent(e, runtime.site) for e in entries],
                                 next_after=nxt, newest_seq=newest)

    @app.get("/api/v1/rejections", response_model=list[schemas.RejectionOut],
             tags=["ops"])
    async def rejections(_: Operator, limit: Annotated[int, Query(ge=1, le=1000)] = 100
                         ) -> list[schemas.RejectionOut]:
        letters = await asyncio.to_thread(runtime.state.dead_letters_sync, limit)
        return [schemas.RejectionOut(at=iso(d.at) or "", reason=d.reason, source=d.source,
                                     detail=d.detail,
                                     payload=d.payload[:512].decode("utf-8", "replace"))
                for d in letters]

    add_alarm_routes(app, runtime)
    from gateway.api.console import install as install_console  # it imports `require`
    install_console(app, runtime)
    from gateway.api.cloud import router as cloud_router

    app.include_router(cloud_router)
    return app
