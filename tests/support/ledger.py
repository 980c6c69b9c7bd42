"""What a load test published and what the gateway stored: a ledger of every simulator message
the broker acknowledged (QoS 1 PUBACK), checked against the telemetry and state databases.

The ledger lives in its own SQLite file, so an hour at ~1,000 messages/s (millions of readings)
costs the test process little memory, and the check is a few indexed joins:

- a telemetry message carries one reading per metric; a reading is stored under
  (device, metric, device time in ms) in a compressed chunk (compacted) or ``points_head``
  (recent), read back through ``gateway.store.sqlite.dump_points``;
- an event is stored once under its id (``<device>:<message id>``) in the state database's
  ``events`` table.

An acknowledged reading or event that is not stored is *lost*; a reading that comes back more
than once (say in a chunk and in the head) is *stored twice*; a stored reading or event that was never published is
*unexpected*. A message the broker never acknowledged may or may not be stored (counted apart).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paho.mqtt.client import MQTTMessageInfo

from gateway.store.sqlite import dump_points

__all__ = ["Ledger", "Tally"]

SCHEMA = """
CREATE TABLE metric_set (id INTEGER NOT NULL, metric TEXT NOT NULL, PRIMARY KEY (id, metric));
CREATE TABLE msg (device_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, mset INTEGER NOT NULL,
                  acked INTEGER NOT NULL, PRIMARY KEY (device_id, ts_ms));
CREATE TABLE event (event_id TEXT PRIMARY KEY, acked INTEGER NOT NULL);
"""


def _acked(info: MQTTMessageInfo) -> bool:
    """The broker's PUBACK arrived. (``is_published()`` raises for a message handed over while
    the broker was down, though paho queues it and sends it on reconnecting.)"""
    return info._published


@dataclass(frozen=True, slots=True)
class Tally:
    """Telemetry counted in readings, events in events."""

    messages: int  # telemetry messages handed to the publisher
    messages_acked: int
    readings: int  # readings in the acknowledged messages: each must be stored once
    readings_stored: int  # points in chunks + points_head
    readings_lost: int
    readings_twice: int
    readings_unexpected: int  # stored, never published
    readings_unacked_stored: int  # published, never acknowledged, stored anyway (allowed)
    events: int
    events_acked: int
    events_stored: int
    events_lost: int
    events_unexpected: int

    def line(self) -> str:
        return (f"telemetry: published {self.messages:,} messages, acknowledged "
                f"{self.messages_acked:,} ({self.readings:,} readings); stored "
                f"{self.readings_stored:,}; lost {self.readings_lost}; stored twice "
                f"{self.readings_twice}; stored but never published {self.readings_unexpected}"
                f"; unacknowledged but stored {self.readings_unacked_stored}\n"
                f"events: published {self.events:,}, acknowledged {self.events_acked:,}; stored "
                f"{self.events_stored:,}; lost {self.events_lost}; stored but never published "
                f"{self.events_unexpected}")


class Ledger:
    """Records what is handed to a paho publisher; ``settle()`` books the acknowledged ones."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(f"file:{path}", uri=True, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(SCHEMA)
        self._msets: dict[tuple[str, ...], int] = {}
        self._pending: deque[tuple[MQTTMessageInfo, str, Any, int]] = deque()
        self.messages = 0
        self.events = 0

    def sent(self, info: MQTTMessageInfo, device_id: str, channel: str,
             body: dict[str, Any]) -> None:
        """One message handed to the publisher (native payload format)."""
        if channel == "telemetry":
            metrics = tuple(sorted(k for k in body if k != "ts"))
            mset = self._msets.get(metrics)
            if mset is None:
                mset = self._msets[metrics] = len(self._msets)
                self._db.executemany("INSERT INTO metric_set VALUES (?, ?)",
                                     [(mset, m) for m in metrics])
            self._pending.append((info, device_id, round(body["ts"] * 1000), mset))
            self.messages += 1
        elif channel == "event":
            self._pending.append((info, device_id, f"{device_id}:{body['id']}", -1))
            self.events += 1

    def settle(self, *, final: bool = False) -> None:
        """Book the messages acknowledged so far (in publish order); ``final``: book the rest
        as never acknowledged."""
        msgs: list[tuple[str, int, int, int]] = []
        events: list[tuple[str, int]] = []
        pending = self._pending
        while pending and (final or _acked(pending[0][0])):
            info, device_id, key, mset = pending.popleft()
            acked = int(_acked(info))
            if mset < 0:
                events.append((key, acked))
            else:
                msgs.append((device_id, key, mset, acked))
        if msgs or events:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO msg VALUES (?, ?, ?, ?)", msgs)
            self._db.executemany("INSERT INTO event VALUES (?, ?)", events)
            self._db.execute("COMMIT")

    def acked_readings(self) -> int:
        return self._db.execute(
            "SELECT count(*) FROM msg JOIN metric_set ms ON ms.id = msg.mset "
            "WHERE msg.acked").fetchone()[0]

    def acked_events(self) -> int:
        return self._db.execute("SELECT count(*) FROM event WHERE acked").fetchone()[0]

    def check(self, telemetry_db: Path, state_db: Path) -> Tally:
        """Compare the booked messages with the gateway's databases (opened read-only)."""
        self.settle(final=True)
        db = self._db
        db.execute("ATTACH ? AS t", (f"file:{telemetry_db}?mode=ro",))
        db.execute("ATTACH ? AS s", (f"file:{state_db}?mode=ro",))
        try:
            # every stored point, from the chunks and the head, in a temporary indexed table
            db.execute("CREATE TEMP TABLE pt (device_id TEXT, metric TEXT, ts_ms INTEGER)")
            db.executemany("INSERT INTO temp.pt VALUES (?, ?, ?)",
                           ((d, m, t) for d, m, t, _, _ in dump_points(telemetry_db)))
            db.execute("CREATE INDEX temp.pt_key ON pt (device_id, metric, ts_ms)")
            # each published reading once, with whether it is stored
            db.execute("""
                CREATE TEMP TABLE found AS
                SELECT msg.acked AS acked,
                       EXISTS (SELECT 1 FROM temp.pt p WHERE p.device_id = msg.device_id
                               AND p.metric = ms.metric AND p.ts_ms = msg.ts_ms) AS stored
                FROM msg JOIN metric_set ms ON ms.id = msg.mset
            """)
            readings, lost, found, unacked_stored = db.execute(
                "SELECT coalesce(sum(acked), 0), coalesce(sum(acked AND NOT stored), 0), "
                "coalesce(sum(stored), 0), coalesce(sum(NOT acked AND stored), 0) "
                "FROM found").fetchone()
            stored = db.execute("SELECT count(*) FROM temp.pt").fetchone()[0]
            twice = db.execute("SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n "
                               "FROM temp.pt GROUP BY device_id, metric, ts_ms "
                               "HAVING n > 1)").fetchone()[0]
            events_lost, events_found = db.execute(
                "SELECT coalesce(sum(e.acked AND s.event_id IS NULL), 0), "
                "count(s.event_id) FROM event e LEFT JOIN s.events s USING (event_id)"
            ).fetchone()
            events_stored = db.execute("SELECT count(*) FROM s.events").fetchone()[0]
            return Tally(
                messages=self.messages,
                messages_acked=db.execute("SELECT count(*) FROM msg WHERE acked").fetchone()[0],
                readings=readings, readings_stored=stored, readings_lost=lost,
                readings_twice=twice, readings_unexpected=stored - twice - found,
                readings_unacked_stored=unacked_stored,
                events=self.events, events_acked=self.acked_events(),
                events_stored=events_stored, events_lost=events_lost,
                events_unexpected=events_stored - events_found)
        finally:
            db.execute("DROP TABLE IF EXISTS temp.found")
            db.execute("DROP TABLE IF EXISTS temp.pt")
            db.execute("DETACH t")
            db.execute("DETACH s")

    def close(self) -> None:
        self._db.close()
