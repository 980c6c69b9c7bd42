"""What the telemetry database keeps: retention per kind of data and the disk-size budget.

Two mechanisms, both run on the store's writer thread and both counted:

* **Retention by age** (``apply_retention``): raw points older than ``raw_keep_s``, 1-minute
  rollups older than ``minute_keep_s``, 1-hour rollups older than ``hour_keep_s``, and
  InfluxDB outbox rows older than ``raw_keep_s`` (an outage longer than raw retention loses
  its oldest backlog; that is counted as ``outbox_expired``).
* **The size budget** (``max_bytes``, the used pages of the telemetry database). When a
  write leaves the database over budget, ``on_full`` decides:

  - ``prune_oldest`` (default): delete the oldest hour of raw points (and outbox rows of
    that hour), again and again until the database is under ``low_water`` × budget; only
    when nothing but the newest hour of raw points is left, the oldest rollups go
    (1-minute first, then 1-hour). The newest data always gets in.
  - ``drop_new``: refuse new batches while over budget (counted as ``points_dropped_full``)
    and keep history as it is; age-based retention frees space again.

Alarms, events and the journal live in the state database and are never touched here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gateway.store.rollup import ResolutionPolicy

if TYPE_CHECKING:
    from gateway.config import StoreConfig

__all__ = ["MaintenanceReport", "TelemetryPolicy", "apply_retention", "prune_for_space",
           "used_bytes"]

DAY_S = 86_400.0
HOUR_MS = 3_600_000

OnFull = Literal["prune_oldest", "drop_new"]


@dataclass(frozen=True, slots=True)
class TelemetryPolicy:
    """Retention (seconds) per kind of telemetry, the size budget and what to do when full."""

    raw_keep_s: float = 15 * DAY_S
    minute_keep_s: float = 90 * DAY_S
    hour_keep_s: float = 730 * DAY_S
    max_bytes: int | None = None
    on_full: OnFull = "prune_oldest"
    low_water: float = 0.9
    raw_max_span_s: float = 6 * 3600.0
    minute_max_span_s: float = 2 * DAY_S

    @property
    def resolution(self) -> ResolutionPolicy:
        """What ``history_auto`` uses: the span thresholds and this policy's retention."""
        return ResolutionPolicy(self.raw_max_span_s, self.minute_max_span_s,
                                self.raw_keep_s, self.minute_keep_s)

    @classmethod
    def from_config(cls, cfg: StoreConfig) -> TelemetryPolicy:
        r = cfg.retention
        return cls(
            raw_keep_s=r.readings_days * DAY_S,
            minute_keep_s=r.rollup_1m_days * DAY_S,
            hour_keep_s=r.rollup_1h_days * DAY_S,
            max_bytes=cfg.max_bytes,
            on_full=cfg.on_full,
        )


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """Rows removed by one maintenance pass, per kind."""

    points_expired: int = 0
    rollup_1m_expired: int = 0
    rollup_1h_expired: int = 0
    outbox_expired: int = 0
    points_pruned_for_space: int = 0
    outbox_pruned_for_space: int = 0
    rollups_pruned_for_space: int = 0
    used_bytes: int = 0


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the database's pages that hold data (free pages are reused, not counted)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(page_size * (pages - free))


def _delete_before(conn: sqlite3.Connection, table: str, column: str, cutoff_ms: int) -> int:
    # Raw points are keyed series first: ``series_id IN (...)`` lets SQLite seek each
    # series' range on the primary key instead of scanning the table for an old ts_ms.
    # Rollups are keyed time first (a contiguous range); the outbox is scanned in seq order
    # (its rows are roughly in time order, and it is small unless the sink is down).
    if table == "points_head":  # keyed (slot, series_id, ts_ms); slot = ts_ms // 10 s
        return conn.execute("DELETE FROM points_head WHERE slot <= ? AND ts_ms < ?",
                            (cutoff_ms // 10_000, cutoff_ms)).rowcount
    if table != "points":
        sql = f"DELETE FROM {table} WHERE {column} < ?"  # noqa: S608
    else:
        sql = (f"DELETE FROM {table} WHERE series_id IN (SELECT id FROM series) "  # noqa: S608
               f"AND {column} < ?")
    return conn.execute(sql, (cutoff_ms,)).rowcount


def _has_outbox(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone() is not None


def apply_retention(conn: sqlite3.Connection, policy: TelemetryPolicy, now: float) -> \
        MaintenanceReport:
    """Delete everything older than its kind's retention, in one transaction."""
    def cutoff(keep_s: float) -> int:
        return round((now - keep_s) * 1000)

    conn.execute("BEGIN IMMEDIATE")
    try:
        points = _delete_before(conn, "points", "ts_ms", cutoff(policy.raw_keep_s)) + \
            _delete_before(conn, "points_head", "ts_ms", cutoff(policy.raw_keep_s))
        m1 = _delete_before(conn, "rollup_1m", "bucket_ms", cutoff(policy.minute_keep_s))
        h1 = _delete_before(conn, "rollup_1h", "bucket_ms", cutoff(policy.hour_keep_s))
        outbox = (_delete_before(conn, "outbox", "ts_ms", cutoff(policy.raw_keep_s))
                  if _has_outbox(conn) else 0)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return MaintenanceReport(points_expired=points, rollup_1m_expired=m1, rollup_1h_expired=h1,
                             outbox_expired=outbox, used_bytes=used_bytes(conn))


def _oldest(conn: sqlite3.Connection, table: str, column: str) -> int | None:
    if table == "points":  # raw points live in the head too
        found = [v for v in (_oldest(conn, "points_head", "ts_ms"),
                             _oldest(conn, "raw_points", "ts_ms")) if v is not None]
        return min(found) if found else None
    if table == "points_head":
        row = conn.execute("SELECT min(ts_ms) FROM points_head WHERE slot = "
                           "(SELECT min(slot) FROM points_head)").fetchone()
        return None if row[0] is None else int(row[0])
    if table != "raw_points":  # keyed time first
        row = conn.execute(f"SELECT min({column}) FROM {table}").fetchone()  # noqa: S608
        return None if row[0] is None else int(row[0])
    row = conn.execute(
        f"SELECT min((SELECT {column} FROM points t WHERE t.series_id = s.id "  # noqa: S608
        f"ORDER BY {column} LIMIT 1)) FROM series s").fetchone()
    return None if row[0] is None else int(row[0])


def _newest(conn: sqlite3.Connection, table: str, column: str) -> int | None:
    if table == "points":  # raw points live in the head too
        found = [v for v in (_newest(conn, "points_head", "ts_ms"),
                             _newest(conn, "raw_points", "ts_ms")) if v is not None]
        return max(found) if found else None
    if table == "points_head":
        row = conn.execute("SELECT max(ts_ms) FROM points_head WHERE slot = "
                           "(SELECT max(slot) FROM points_head)").fetchone()
        return None if row[0] is None else int(row[0])
    if table != "raw_points":  # keyed time first
        row = conn.execute(f"SELECT max({column}) FROM {table}").fetchone()  # noqa: S608
        return None if row[0] is None else int(row[0])
    row = conn.execute(
        f"SELECT max((SELECT {column} FROM points t WHERE t.series_id = s.id "  # noqa: S608
        f"ORDER BY {column} DESC LIMIT 1)) FROM series s").fetchone()
    return None if row[0] is None else int(row[0])


def prune_for_space(conn: sqlite3.Connection, policy: TelemetryPolicy) -> MaintenanceReport:
    """Delete the oldest telemetry an hour at a time until under ``low_water`` × budget.

    Each step is its own transaction, so a writer waiting behind it waits for one hour's
    worth of deletes at most. The newest hour of raw points and of 1-minute rollups, and the
    newest day of 1-hour rollups, are never pruned: a database still over budget afterwards
    holds nothing else, and ``used_bytes`` in the report says by how much it is over.
    """
    if policy.max_bytes is None:
        return MaintenanceReport(used_bytes=used_bytes(conn))
    target = int(policy.max_bytes * policy.low_water)
    points = outbox = rollups = 0
    outbox_exists = _has_outbox(conn)
    used = used_bytes(conn)
    for table, column, step in (("points", "ts_ms", HOUR_MS),
                                ("rollup_1m", "bucket_ms", HOUR_MS),
                                ("rollup_1h", "bucket_ms", 24 * HOUR_MS)):
        newest = _newest(conn, table, column)
        while used > target:
            oldest = _oldest(conn, table, column)
            if oldest is None or newest is None:
                break
            cutoff = oldest - oldest % step + step
            if cutoff > newest - newest % step:
                break  # the newest step of each kind stays, whatever the budget says
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = _delete_before(conn, table, column, cutoff)
                if table == "points":
                    n += _delete_before(conn, "points_head", "ts_ms", cutoff)
                    points += n
                    if outbox_exists:
                        outbox += _delete_before(conn, "outbox", "ts_ms", cutoff)
                else:
                    rollups += n
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            used = used_bytes(conn)
    return MaintenanceReport(points_pruned_for_space=points, outbox_pruned_for_space=outbox,
                             rollups_pruned_for_space=rollups, used_bytes=used)


@dataclass
class FillWatch:
    """When a bounded store nears its capacity (the telemetry store's bytes, the journal's
    entries): ``check`` says "raise" once at ``alarm_pct`` of ``capacity`` and "clear" once
    it is 5 points below again (hysteresis, so a store pruned to its low-water mark does
    not chatter)."""

    capacity: int
    alarm_pct: float
    filling: bool = False

    def check(self, used: int) -> tuple[str, float] | None:
        pct = 100.0 * used / self.capacity
        if not self.filling and pct >= self.alarm_pct:
            self.filling = True
            return "raise", pct
        if self.filling and pct < self.alarm_pct - 5:
            self.filling = False
            return "clear", pct
        return None
