"""An in-process Runtime on a temporary directory, for API tests that need no broker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.clock import Clock, FakeClock
from gateway.config import GatewayConfig
from gateway.runtime import Runtime

DEVICES = [
    {"id": "tank-1", "kind": "water_tank", "location": {"building": "B1"}},
    {"id": "barrier-1", "kind": "parking_barrier", "location": {"building": "P1"}},
    {"id": "door-1", "kind": "access_gate", "location": {"building": "B2"}},
]


def config(data_dir: Path, **extra: Any) -> GatewayConfig:
    raw: dict[str, Any] = {"site": {"id": "test-site"}, "store": {"path": str(data_dir)},
                           "api": {"host": "127.0.0.1", "port": 0}, "devices": DEVICES}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return GatewayConfig.model_validate(raw)


@contextlib.contextmanager
def runtime(data_dir: Path, *, clock: Clock | None = None, **extra: Any) -> Iterator[Runtime]:
    rt = Runtime(config(data_dir, **extra), clock=clock or FakeClock(), data_dir=data_dir)
    try:
        yield rt
    finally:
        rt.close()
