"""Device command routes: the HTTP face of ``gateway.commands`` (the one audited path)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field

from gateway.api import schemas
from gateway.api.deps import Operator, Viewer, client_address, runtime_of
from gateway.errors import CommandDenied

__all__ = ["router"]

router = APIRouter()

DeviceId = Annotated[str, Path(min_length=1, max_length=200)]
_STATUS = {"unknown_device": 404, "not_allowed": 403, "rate_limited": 429}


class CommandIn(BaseModel):
    action: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    args: dict[str, float | int | bool | Annotated[str, Field(max_length=500)]] = Field(
        default_factory=dict, max_length=20)


class CommandOut(BaseModel):
    command_id: str
    device_id: str
    action: str
    ok: bool
    outcome: str = Field(description="ok: the driver carried it out; failed: it did not")
    detail: str


class CommandsAllowed(BaseModel):
    device_id: str
    actions: list[str]


@router.get("/api/v1/devices/{device_id}/commands", response_model=CommandsAllowed,
            tags=["devices"], responses={404: {"model": schemas.Problem}})
async def allowed(device_id: DeviceId, request: Request, who: Viewer) -> CommandsAllowed:
    runtime = runtime_of(request)
    if device_id not in runtime.devices:
        raise HTTPException(404, f"device {device_id!r} does not exist / 设备不存在")
    return CommandsAllowed(device_id=device_id,
                           actions=runtime.commands.allowed_actions(who.role, device_id))


@router.post("/api/v1/devices/{device_id}/commands", response_model=CommandOut,
             tags=["devices"], responses={403: {"model": schemas.Problem},
                                          404: {"model": schemas.Problem},
                                          429: {"model": schemas.Problem}})
async def command(device_id: DeviceId, body: CommandIn, request: Request, who: Operator
                  ) -> Any:
    """Send one command. Refusals are 403/404/429; a command the driver could not carry
    out is 200 with ``ok: false`` and the driver's reason (it was issued and audited)."""
    runtime = runtime_of(request)
    try:
        out = await runtime.commands.issue(actor=who.name, role=who.role, device_id=device_id,
                                           action=body.action, args=body.args,
                                           client=client_address(request))
    except CommandDenied as exc:
        headers = ({"Retry-After": str(math.ceil(exc.retry_after_s))}
                   if exc.retry_after_s is not None else None)
        raise HTTPException(_STATUS.get(exc.reason, 403), str(exc), headers=headers) from None
    return CommandOut(command_id=out.command.command_id, device_id=device_id,
                      action=body.action, ok=out.result.ok, outcome=out.outcome,
                      detail=out.result.detail)
