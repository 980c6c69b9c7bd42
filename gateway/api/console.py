"""The operator console: its static page, live stream, labels, and the shift/handover API.

Mounted by ``create_app`` through ``install(app, runtime)``:

- ``/console/`` serves the hand-written page in ``gateway/api/static`` (no build step, no
  CDN); ``/`` redirects there.
- ``GET /api/v1/console/config``: site name and timezone, shift length, flood threshold.
- ``GET /api/v1/vocabulary``: zh/en labels of every device kind's metrics and events.
- ``POST /api/v1/stream/ticket`` then ``GET /api/v1/stream?ticket=``: the live feed
  (Server-Sent Events, see ``gateway.api.stream``).
- ``/api/v1/shifts/...``: shift start, handover offer, withdraw and accept.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from gateway.api.app import require
from gateway.api.stream import StreamHub, Tickets
from gateway.auth import Principal
from gateway.journal import iso
from gateway.shifts import SHIFT_KV, Handover, Shift, ShiftBook, ShiftError, ShiftState
from gateway.store.state import Transaction
from gateway.types import DeviceKind
from gateway.vocabulary import EVENTS, METRICS

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["STATIC_DIR", "install"]

STATIC_DIR = Path(__file__).with_name("static")
STREAM_MAX_S = 600.0  # a stream lasts at most this long; the page reconnects with a new ticket

Viewer = Annotated[Principal, require("viewer")]
Operator = Annotated[Principal, require("operator")]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


class _ConsoleFiles(StaticFiles):
    """Static files with the console's security headers and revalidation on every load."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"cache-control", b"no-cache")]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, with_headers)


# -- request / response models ------------------------------------------------------------

class ConsoleConfigOut(BaseModel):
    site_id: str
    site_name: str
    timezone: str
    shift_max_hours: float
    flood_alarms: int
    flood_window_s: float


class TicketOut(BaseModel):
    ticket: str
    expires_in_s: float


class ShiftStartIn(BaseModel):
    takeover_reason: str = Field("", max_length=500)


class HandoverIn(BaseModel):
    alarm_ids: list[str] = Field(default_factory=list, max_length=5000)
    order_ids: list[str] = Field(default_factory=list, max_length=5000)
    note: str = Field("", max_length=2000)


class AcceptIn(BaseModel):
    note: str = Field("", max_length=2000)


class ShiftOut(BaseModel):
    id: str
    operator: str
    started_at: str
    took_over_from: str | None
    takeover_reason: str
    handover_id: str | None


class HandoverOut(BaseModel):
    id: str
    shift_id: str
    from_operator: str
    offered_at: str
    alarms: list[str]
    orders: list[str]
    note: str
    accepted_by: str | None
    accepted_at: str | None
    accept_note: str


class ShiftStateOut(BaseModel):
    current: ShiftOut | None
    pending: HandoverOut | None
    open_alarms: list[str]
    server_time: str
    shift_max_hours: float


def _shift_out(s: Shift | None) -> ShiftOut | None:
    if s is None:
        return None
    return ShiftOut(**{**dataclasses.asdict(s), "started_at": iso(s.started_at) or ""})


def _handover_out(h: Handover | None) -> HandoverOut | None:
    if h is None:
        return None
    d = dataclasses.asdict(h)
    d.update(offered_at=iso(h.offered_at) or "", accepted_at=iso(h.accepted_at),
             alarms=list(h.alarms), orders=list(h.orders))
    return HandoverOut(**d)


# -- labels ---------------------------------------------------------------------------------

def vocabulary() -> dict[str, Any]:
    return {
        "metrics": {k.value: {name: {"zh": m.zh, "en": m.en, "unit": m.unit, "kind": m.kind,
                                     "states": list(m.states)}
                              for name, m in METRICS[k].items()} for k in DeviceKind},
        "events": {k.value: {name: {"zh": e.zh, "en": e.en, "priority": int(e.priority)}
                             for name, e in EVENTS[k].items()} for k in DeviceKind},
    }


# -- wiring ---------------------------------------------------------------------------------

def install(app: FastAPI, runtime: Runtime) -> None:
    """Mount the console's routes and static files on ``app``."""
    cfg = runtime.config.console
    hub = StreamHub(runtime, flood_alarms=cfg.flood_alarms, flood_window_s=cfg.flood_window_s)
    tickets = Tickets()
    shifts = ShiftBook(ShiftState.from_json(runtime.state.load_kv_sync(SHIFT_KV)))
    shift_lock = asyncio.Lock()
    app.state.console_hub = hub
    app.state.shifts = shifts
    vocab = vocabulary()
    router = APIRouter(prefix="/api/v1")

    @router.get("/console/config", response_model=ConsoleConfigOut, tags=["console"])
    async def console_config(_: Viewer) -> ConsoleConfigOut:
        site = runtime.config.site
        return ConsoleConfigOut(site_id=site.id, site_name=site.name or site.id,
                                timezone=site.timezone, shift_max_hours=cfg.shift_max_hours,
                                flood_alarms=cfg.flood_alarms, flood_window_s=cfg.flood_window_s)

    @router.get("/vocabulary", tags=["console"])
    async def get_vocabulary(_: Viewer) -> dict[str, Any]:
        return vocab

    @router.post("/stream/ticket", response_model=TicketOut, tags=["console"])
    async def stream_ticket(who: Viewer) -> TicketOut:
        return TicketOut(ticket=tickets.issue(who), expires_in_s=tickets.ttl_s)

    @router.get("/stream", tags=["console"], response_class=StreamingResponse,
                responses={401: {"description": "ticket missing, used or expired"}})
    async def stream(ticket: Annotated[str, Query(min_length=1, max_length=200)]) -> Any:
        if tickets.redeem(ticket) is None:
            raise HTTPException(401, "stream ticket invalid, used or expired / 实时推送凭据无效")
        sub = await hub.subscribe()
        return StreamingResponse(hub.frames(sub, max_s=STREAM_MAX_S),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    def open_alarm_ids() -> list[str]:
        return sorted(a.alarm_id for a in runtime.book.alarms.values()
                      if a.state.value != "normal")

    def state_out() -> ShiftStateOut:
        st = shifts.state
        return ShiftStateOut(current=_shift_out(st.current), pending=_handover_out(st.pending),
                             open_alarms=open_alarm_ids(),
                             server_time=iso(runtime.clock.now()) or "",
                             shift_max_hours=cfg.shift_max_hours)

    async def commit(fn: Any, *args: Any) -> ShiftStateOut:
        async with shift_lock:
            try:
                new, drafts = fn(*args)
            except ShiftError as exc:
                raise HTTPException(exc.status, str(exc)) from None
            entries = await runtime.state.apply(
                Transaction(kv={SHIFT_KV: new.to_json()}, journal=drafts))
            shifts.state = new
        if entries:
            async with runtime.journal_signal:
                runtime.journal_signal.notify_all()
        return state_out()

    problems = {403: {"description": "not yours to do"}, 404: {"description": "no such handover"},
                409: {"description": "conflicts with the current shift"}}

    @router.get("/shifts/current", response_model=ShiftStateOut, tags=["shifts"])
    async def shift_current(_: Viewer) -> ShiftStateOut:
        return state_out()

    @router.get("/shifts/history", response_model=list[HandoverOut], tags=["shifts"])
    async def shift_history(_: Viewer) -> list[HandoverOut]:
        return [h for h in (_handover_out(x) for x in shifts.state.history) if h is not None]

    @router.post("/shifts/start", response_model=ShiftStateOut, tags=["shifts"],
                 responses=problems)
    async def shift_start(who: Operator, body: ShiftStartIn | None = None) -> ShiftStateOut:
        return await commit(shifts.start, who.name, runtime.clock.now(),
                            body.takeover_reason if body else "")

    @router.post("/shifts/handover", response_model=ShiftStateOut, tags=["shifts"],
                 responses=problems)
    async def shift_handover(who: Operator, body: HandoverIn) -> ShiftStateOut:
        return await commit(shifts.offer, who.name, runtime.clock.now(), body.alarm_ids,
                            body.order_ids, open_alarm_ids(), body.note)

    @router.post("/shifts/handover/{handover_id}/withdraw", response_model=ShiftStateOut,
                 tags=["shifts"], responses=problems)
    async def shift_withdraw(handover_id: str, who: Operator) -> ShiftStateOut:
        return await commit(shifts.withdraw, handover_id, who.name, runtime.clock.now())

    @router.post("/shifts/handover/{handover_id}/accept", response_model=ShiftStateOut,
                 tags=["shifts"], responses=problems)
    async def shift_accept(handover_id: str, who: Operator,
                           body: AcceptIn | None = None) -> ShiftStateOut:
        return await commit(shifts.accept, handover_id, who.name, runtime.clock.now(),
                            body.note if body else "")

    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", _ConsoleFiles(directory=STATIC_DIR, html=True), name="console")
