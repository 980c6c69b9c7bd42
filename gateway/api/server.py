"""Serves the API inside the gateway's task group (uvicorn without its own signal handling)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import uvicorn

from gateway.api.app import create_app

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the CLI owns signals
        pass


async def serve(runtime: Runtime) -> None:
    api = runtime.config.api
    config = uvicorn.Config(create_app(runtime), host=api.host,
                            port=runtime.api_port_override or api.port,
                            log_level="warning", access_log=False, lifespan="on",
                            # no WebSocket routes: do not import a WebSocket protocol
                            ws="none",
                            log_config=None)  # our root handler (text or JSON) formats it
    server = _Server(config)
    runtime.api_server = server
    task = asyncio.create_task(server.serve(), name="api.uvicorn")
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True  # graceful: finish responses, run lifespan shutdown
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        raise
