"""Every route in the OpenAPI schema needs a credential (401) and refuses the wrong role (403).

The routes come from the app's own schema, so a route added later is checked without
editing this file; a route without a ``require(...)`` gate fails unless it is listed in
``OPEN`` or ``TICKET``. Only health, login, the API description and the console's static
page are open (read-only, no data).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from gateway.api.app import create_app
from gateway.auth import ROLES, allows
from gateway.runtime import Runtime
from tests.support.runtime import runtime

OPEN = {("GET", "/healthz"), ("POST", "/api/v1/login")}
# EventSource cannot send headers: the console's live stream takes a one-use ticket that
# only a viewer's bearer credential can get (POST /api/v1/stream/ticket, gated as usual)
TICKET = {("GET", "/api/v1/stream")}


def _need(route: APIRoute) -> Any:
    """The role or permission the route's ``require`` gate checks (None: no gate)."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if hasattr(dep.call, "need"):
            return dep.call.need
        stack.extend(dep.dependencies)
    return None


@pytest.fixture
def rt(tmp_path: Path) -> Any:
    with runtime(tmp_path) as r:
        yield r


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield c


def _api_routes(routes: Any) -> Any:
    """APIRoutes, also inside included routers (newer FastAPI keeps those as one entry)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield r
        sub = getattr(r, "original_router", None)
        if sub is not None:
            yield from _api_routes(sub.routes)


def _operations(app: Any) -> list[tuple[str, str, APIRoute]]:
    routes = {(m, r.path): r for r in _api_routes(app.routes) for m in r.methods}
    out = []
    for path, item in app.openapi()["paths"].items():
        for method in item:
            out.append((method.upper(), path, routes[(method.upper(), path)]))
    return out


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_schema_route_needs_a_credential_and_the_right_role(
        rt: Runtime, client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    tokens = {role: rt.auth.add_token(f"t-{role}", role) for role in ROLES}
    ops = _operations(app)
    assert len(ops) >= 20  # the schema really was read
    checked_403 = 0
    for method, path, route in ops:
        need = _need(route)
        url = _concrete(path)
        if (method, path) in OPEN:
            assert need is None, f"{method} {path} is open by design but has a gate"
            continue
        if (method, path) in TICKET:
            for headers in ({}, {"Authorization": f"Bearer {tokens['admin']}"}):
                r = await client.request(method, url, params={"ticket": "forged"},
                                         headers=headers)
                assert r.status_code == 401, f"{method} {path} with a forged ticket"
            continue
        assert need is not None, f"{method} {path} has no require(...) gate"
        r = await client.request(method, url)
        assert r.status_code == 401, f"{method} {path} without credential: {r.status_code}"
        assert r.headers["www-authenticate"] == "Bearer"
        r = await client.request(method, url, headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401, f"{method} {path} with a bad token: {r.status_code}"
        refused = [role for role in ROLES if not allows(role, need)]
        assert refused, f"{method} {path}: every role may use it; is that meant?"
        for role in ROLES:
            r = await client.request(method, url,
                                     headers={"Authorization": f"Bearer {tokens[role]}"})
            if role in refused:
                assert r.status_code == 403, f"{method} {path} as {role}: {r.status_code}"
                checked_403 += 1
            else:
                assert r.status_code not in (401, 403), f"{method} {path} as {role}: {r.text}"
    assert checked_403 > len(ops)


async def test_cloud_token_reads_only_the_event_feed(rt: Runtime,
                                                     client: httpx.AsyncClient) -> None:
    h = {"Authorization": f"Bearer {rt.auth.add_token('cloud-platform', 'cloud')}"}
    assert (await client.get("/api/v1/events", headers=h)).status_code == 200
    for path in ("/api/v1/alarms", "/api/v1/devices", "/metrics", "/api/v1/audit",
                 "/api/v1/users"):
        assert (await client.get(path, headers=h)).status_code == 403, path


async def test_open_routes_and_api_description(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    schema = await client.get("/openapi.json")
    assert schema.status_code == 200 and "paths" in schema.json()
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 404  # one description page is enough
