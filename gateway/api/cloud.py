"""Cloud routes beyond the feed itself: snapshot, consumer acks, work orders and their status."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from gateway.api import schemas
from gateway.api.deps import EventsReader, Viewer, WorkOrderStatusWriter
from gateway.journal import alarm_dict, iso
from gateway.store.state import Transaction
from gateway.types import WorkOrderStatus
from gateway.workorders import StatusUpdateIn, WorkOrderError, work_order_dict

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


# the security module owns who may do what: the event feed is for the cloud (and admin),
# work-order status may be written by the cloud, engineers and admin
Cloud = EventsReader
CloudOrEngineer = WorkOrderStatusWriter


class AckIn(BaseModel):
    consumer: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    seq: int = Field(ge=0)


class AckOut(BaseModel):
    consumer: str
    acked_seq: int
    prune_floor: int | None


class Snapshot(BaseModel):
    seq: int = Field(description="The journal seq this snapshot is consistent with: follow "
                                 "with GET /api/v1/events?after=<seq>")
    alarms: list[dict[str, Any]]
    work_orders: list[dict[str, Any]]


@router.get("/snapshot", response_model=Snapshot, tags=["cloud"])
async def snapshot(request: Request, _: Cloud) -> Snapshot:
    """Current alarms (not normal) and open work orders, and the seq they are consistent with."""
    rt = _rt(request)
    async with rt._lock:  # every state change commits under this lock: no torn view
        seq = rt.state.last_seq
        alarms = [alarm_dict(a) for a in rt.alarm_list() if a.state.value != "normal"]
        orders = [work_order_dict(o) for o in rt.work_orders.open_orders()]
    return Snapshot(seq=seq, alarms=alarms, work_orders=orders)


@router.post("/events/ack", response_model=AckOut, tags=["cloud"],
             responses={422: {"model": schemas.Problem}})
async def ack(request: Request, body: AckIn, _: Cloud) -> AckOut:
    """Everything up to ``seq`` is safely stored by ``consumer``: retention may prune it."""
    rt = _rt(request)
    if body.seq > rt.state.last_seq:
        raise HTTPException(422, f"seq {body.seq} is ahead of the newest entry "
                                 f"{rt.state.last_seq} / 确认序号超出范围")
    tx = Transaction()
    acked = rt.outbox.ack(body.consumer, body.seq, tx, rt.clock.now())
    await rt._apply(tx)
    return AckOut(consumer=body.consumer, acked_seq=acked, prune_floor=rt.outbox.prune_floor())


@router.get("/work-orders", tags=["work orders"])
async def work_orders(request: Request, _: Viewer) -> list[dict[str, Any]]:
    return [work_order_dict(o) for o in _rt(request).work_orders.open_orders()]


@router.get("/work-orders/{order_id}", tags=["work orders"],
            responses={404: {"model": schemas.Problem}})
async def work_order(request: Request, order_id: str, _: Viewer) -> dict[str, Any]:
    rt = _rt(request)
    order = await asyncio.to_thread(rt.work_orders.get, order_id)
    if order is None:
        raise HTTPException(404, f"work order {order_id!r} does not exist / 工单不存在")
    history = await asyncio.to_thread(rt.work_orders.history_sync, order_id)
    return {**work_order_dict(order), "history": [
        {"action": a, "from": f, "to": t, "at": iso(at), "by": by, "note": n}
        for a, f, t, at, by, n in history]}


@router.post("/work-orders/{order_id}/status", tags=["work orders"],
             responses={404: {"model": schemas.Problem}, 409: {"model": schemas.Problem}})
async def work_order_status(request: Request, order_id: str, body: StatusUpdateIn,
                            who: CloudOrEngineer) -> dict[str, Any]:
    """Report progress (accepted … closed). Repeating the current status changes nothing."""
    rt = _rt(request)
    by = body.by if body.by != "cloud" else who.name
    try:
        order = await rt.work_order_status(order_id, WorkOrderStatus(body.status), by,
                                           body.note)
    except WorkOrderError as exc:
        raise HTTPException(404 if "does not exist" in str(exc) else 409, str(exc)) from None
    return work_order_dict(order)
