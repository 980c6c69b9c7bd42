"""Login (rate-limited, audited), user management for admins, and the audit log.

Login failures are counted per user name and per client address (``LoginLimiter``); the
failure that fills a window locks that key for ``api.auth.login_lockout_s``: the lockout
is logged at WARNING, counted on /metrics and audited. A locked login is answered 429
without checking the password.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.api import schemas
from gateway.api.deps import Admin, client_address, runtime_of
from gateway.audit import AuditAction, AuditEntry, record
from gateway.errors import AuthError
from gateway.journal import iso
from gateway.store.state import Transaction

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter()


class UserOut(BaseModel):
    name: str
    role: str
    created_at: str
    disabled: bool


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\s].*[^\s]$|^[^\s]$")
    role: Literal["viewer", "operator", "engineer", "admin"]
    password: str = Field(min_length=10, max_length=200)


class AuditOut(BaseModel):
    id: int
    audit_id: str
    at: str
    actor: str
    action: str
    target: str
    outcome: str
    client: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditOut]
    next_before: int | None = Field(
        description="pass as ?before= for the next (older) page; null at the end")


def _user_out(runtime: Any, name: str) -> UserOut:
    for u in runtime.auth.users():
        if u.name == name:
            return UserOut(name=u.name, role=u.role, created_at=iso(u.created_at) or "",
                           disabled=u.disabled)
    raise HTTPException(404, f"user {name!r} does not exist / 用户不存在")


async def _audit(request: Request, *entries: AuditEntry) -> None:
    tx = Transaction()
    for e in entries:
        record(tx, e)
    await runtime_of(request).apply(tx)


@router.post("/api/v1/login", response_model=schemas.LoginResult, tags=["auth"],
             responses={401: {"model": schemas.Problem}, 429: {"model": schemas.Problem}})
async def login(body: schemas.LoginRequest, request: Request) -> Any:
    runtime = runtime_of(request)
    addr = client_address(request)
    limiter = runtime.login_limiter
    locked = limiter.check(body.username, addr)
    if locked is not None:
        wait = math.ceil(locked.retry_after_s)
        return JSONResponse(
            {"detail": f"too many failed logins; try again in {wait} s / 登录失败次数过多，"
                       f"请 {wait} 秒后再试"}, status_code=429,
            headers={"Retry-After": str(wait)})
    clock = runtime.clock
    try:
        token, who = await asyncio.to_thread(runtime.auth.login, body.username, body.password)
    except AuthError as exc:
        newly = limiter.failure(body.username, addr)
        entries = [AuditEntry.now(clock, actor=body.username, action="auth.login_failed",
                                  target=body.username, outcome="denied", client=addr)]
        for key in newly:
            log.warning("login lockout: %s locked for %g s after %d failures / 登录已锁定",
                        key, limiter.lockout_s, limiter.max_failures)
            entries.append(AuditEntry.now(clock, actor=body.username, action="auth.lockout",
                                          target=key, outcome="denied", client=addr,
                                          detail={"lockout_s": limiter.lockout_s}))
        await _audit(request, *entries)
        return JSONResponse({"detail": str(exc)}, status_code=401)
    limiter.success(body.username, addr)
    await _audit(request, AuditEntry.now(clock, actor=who.name, action="auth.login",
                                         target=who.name, client=addr,
                                         detail={"role": who.role}))
    return schemas.LoginResult(token=token, user=who.name, role=who.role)


@router.get("/api/v1/users", response_model=list[UserOut], tags=["users"])
async def users(request: Request, _: Admin) -> list[UserOut]:
    found = await asyncio.to_thread(runtime_of(request).auth.users)
    return [UserOut(name=u.name, role=u.role, created_at=iso(u.created_at) or "",
                    disabled=u.disabled) for u in found]


@router.post("/api/v1/users", response_model=UserOut, status_code=201, tags=["users"],
             responses={400: {"model": schemas.Problem}, 409: {"model": schemas.Problem}})
async def add_user(body: UserIn, request: Request, who: Admin) -> UserOut:
    runtime = runtime_of(request)
    try:
        await asyncio.to_thread(runtime.auth.add_user, body.name, body.role, body.password,
                                replace=False)
    except AuthError as exc:
        raise HTTPException(409 if "already exists" in str(exc) else 400, str(exc)) from None
    await _audit(request, AuditEntry.now(runtime.clock, actor=who.name, action="user.add",
                                         target=body.name, client=client_address(request),
                                         detail={"role": body.role}))
    return _user_out(runtime, body.name)


async def _set_disabled(request: Request, who: Any, name: str, *, disabled: bool) -> UserOut:
    runtime = runtime_of(request)
    if disabled and name == who.name:
        raise HTTPException(409, "you cannot disable yourself / 不能停用自己的账户")
    try:
        await asyncio.to_thread(runtime.auth.set_disabled, name, disabled=disabled)
    except AuthError as exc:
        raise HTTPException(404, str(exc)) from None
    action: AuditAction = "user.disable" if disabled else "user.enable"
    await _audit(request, AuditEntry.now(runtime.clock, actor=who.name, action=action,
                                         target=name, client=client_address(request)))
    return _user_out(runtime, name)


@router.post("/api/v1/users/{name}/disable", response_model=UserOut, tags=["users"],
             responses={404: {"model": schemas.Problem}, 409: {"model": schemas.Problem}})
async def disable_user(name: str, request: Request, who: Admin) -> UserOut:
    return await _set_disabled(request, who, name, disabled=True)


@router.post("/api/v1/users/{name}/enable", response_model=UserOut, tags=["users"],
             responses={404: {"model": schemas.Problem}})
async def enable_user(name: str, request: Request, who: Admin) -> UserOut:
    return await _set_disabled(request, who, name, disabled=False)


@router.get("/api/v1/audit", response_model=AuditPage, tags=["users"])
async def audit(request: Request, _: Admin,
                before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                actor: Annotated[str | None, Query(max_length=100)] = None,
                action: Annotated[str | None, Query(max_length=64)] = None) -> AuditPage:
    rows = await asyncio.to_thread(runtime_of(request).state.audit_sync, before=before,
                                   limit=limit, actor=actor, action=action)
    entries = [AuditOut(id=i, **{**d, "at": iso(d["at"]) or ""}) for i, d in rows]
    return AuditPage(entries=entries,
                     next_before=entries[-1].id if len(entries) == limit else None)
