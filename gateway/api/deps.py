"""Route dependencies: the caller's principal for a role or permission, and their address.

``require(need)`` is the one gate every protected route uses. The dependency carries the
need it checks (``check.need``), so a test can enumerate every route and prove that
nothing is reachable without a credential, nor with a role that must not use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.auth import Permission, Principal, Role, allows
from gateway.errors import AuthError

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["Admin", "Cloud", "Engineer", "EventsReader", "Operator", "Viewer",
           "WorkOrderStatusWriter", "client_address", "require", "runtime_of"]

_bearer = HTTPBearer(auto_error=False)


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def require(need: Role | Permission) -> Any:
    """A dependency: the caller's principal, if it holds ``need`` (401 / 403 otherwise)."""

    def check(request: Request,
              cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
              ) -> Principal:
        if cred is None:
            raise HTTPException(401, "credential required / 需要登录",
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = runtime_of(request).auth.authenticate(cred.credentials)
        except AuthError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        if not allows(principal.role, need):
            raise HTTPException(403, f"role {principal.role!r} may not do this; needs {need!r}"
                                     " / 权限不足")
        return principal

    check.need = need  # type: ignore[attr-defined]
    return Depends(check)


Viewer = Annotated[Principal, require("viewer")]
Operator = Annotated[Principal, require("operator")]
Engineer = Annotated[Principal, require("engineer")]
Admin = Annotated[Principal, require("admin")]
Cloud = Annotated[Principal, require("cloud")]
EventsReader = Annotated[Principal, require("events.read")]
# for the work-order routes (issue 6): the cloud's scoped token, engineers and admins
WorkOrderStatusWriter = Annotated[Principal, require("workorders.status.write")]
