"""Fixtures for the store's unit tests: a temporary telemetry store, closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store.retention import TelemetryPolicy
from gateway.store.sqlite import TelemetryStore

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a whole hour


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator:
    stores: list[TelemetryStore] = []

    def make(*, policy: TelemetryPolicy | None = None, outbox: bool = False,
             name: str = "telemetry.db") -> TelemetryStore:
        store = TelemetryStore(tmp_path / name, policy=policy, outbox=outbox)
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()
