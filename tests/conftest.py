from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from tests.support.servers import Mosquitto, mosquitto


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto (persistence on) on a free loopback port, for this test only."""
    d = tmp_path / "broker"
    d.mkdir()
    with mosquitto(d) as b:
        yield b


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """Fail a test that leaves non-daemon threads behind (pymodbus's system health check)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [t for t in threading.enumerate()
              if t.ident not in before and t.is_alive() and not t.daemon
              and not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))]
    for t in leaked:
        t.join(timeout=5)
    leaked = [t for t in leaked if t.is_alive()]
    assert not leaked, f"threads leaked: {[t.name for t in leaked]}"
