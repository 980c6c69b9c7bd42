"""Fill a gateway's journal fast, as an hour of a busy estate would, by writing state.db directly."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import orjson

from gateway.store.state import StateStore


def ensure_state_db(data_dir: Path) -> Path:
    """Create state.db with the gateway's schema (as the gateway's first start would)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    StateStore(data_dir / "state.db").close()
    return data_dir / "state.db"


def fill_journal(db: Path, n: int, *, start: float | None = None, chunk: int = 5_000
                 ) -> list[tuple[int, str]]:
    """Append ``n`` device-event rows in chunks of ``chunk``; returns their (seq, event_id)."""
    t0 = start if start is not None else time.time() - 3600
    out: list[tuple[int, str]] = []
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        for base in range(0, n, chunk):
            rows = []
            for i in range(base, min(n, base + chunk)):
                eid = str(uuid.uuid4())
                at = t0 + i * 3600 / max(n, 1)
                data = {"device_id": f"gate-{i % 40}", "kind": "access.granted",
                        "attributes": {"card": f"c{i}"}}
                rows.append((eid, "estate.device.event", at, f"gate-{i % 40}",
                             orjson.dumps(data).decode()))
            conn.execute("BEGIN IMMEDIATE")
            for r in rows:
                seq = conn.execute("INSERT INTO journal (event_id, type, time, subject, data) "
                                   "VALUES (?, ?, ?, ?, ?) RETURNING seq", r).fetchone()[0]
                out.append((seq, r[0]))
            conn.execute("COMMIT")
    finally:
        conn.close()
    return out


def journal_ids(db: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT seq, event_id, type FROM journal ORDER BY seq").fetchall()
    finally:
        conn.close()
