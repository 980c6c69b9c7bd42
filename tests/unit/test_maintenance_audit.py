"""Putting a device in or out of maintenance is audited with who and why, in the journal."""

from __future__ import annotations

from pathlib import Path

from gateway.clock import FakeClock
from gateway.config import load_config
from gateway.runtime import Runtime
from rules.mute import Maintenance
from tests.support.servers import write_config


async def test_maintenance_toggle_is_audited(tmp_path: Path, clock: FakeClock) -> None:
    cfg = write_config(tmp_path / "gw.yaml", broker_port=1883, data_dir=tmp_path / "data",
                       devices=[{"id": "lift-1", "kind": "elevator",
                                 "location": {"building": "B1"}}], rules=[])
    rt = Runtime(load_config(cfg), clock=clock, data_dir=tmp_path / "data")
    try:
        await rt.set_maintenance("lift-1", Maintenance("lift-1", "eng-wang", clock.now(),
                                                       "half-monthly maintenance"), "eng-wang")
        clock.advance(3600)
        await rt.set_maintenance("lift-1", None, "eng-wang")
        rows = [e for e in rt.state.journal_sync(0, 100)
                if e.type == "estate.audit.device.maintenance"]
        assert [(e.data["actor"], e.data["detail"]["maintenance"], e.data["detail"]["reason"])
                for e in rows] == [("eng-wang", True, "half-monthly maintenance"),
                                   ("eng-wang", False, "")]
    finally:
        rt.close()
