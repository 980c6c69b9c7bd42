"""What the telemetry database keeps: retention per kind of data and the disk-size budget.

Two mechanisms, both run on the store's writer thread and both counted:

* **Retention by age** (``apply_retention``): raw points older than ``raw_keep_s``, 1-minute
  rollups older than ``minute_keep_s``, 1-hour rollups older than ``hour_keep_s``, and
  InfluxDB outbox rows older than ``raw_keep_s`` (an outage longer than raw retention loses
  its oldest backlog; that is counted as ``outbox_expired``). Chunks go whole: a chunk of
  raw points or of 1-minute buckets (an hour) is deleted once all of its hour is older than
  the cutoff, a chunk of 1-hour buckets once all of its day is; so data is kept up to one
  hour (one day for 1-hour buckets) longer than asked, never shorter. Head rows older than
  the raw cutoff are deleted one by one.
* **The size budget** (``max_bytes``, the used pages of the telemetry database). When a
  write leaves the database over budget, ``on_full`` decides:

  - ``prune_oldest`` (default): delete the oldest hour of raw points (its chunks, head rows
    and the outbox rows of that hour), again and again until the database is under
    ``low_water`` × budget; only when nothing but the newest hour of raw points is left,
    the oldest rollups go (1-minute hours first, then 1-hour days). The newest data always
    gets in.
  - ``drop_new``: refuse new batches while over budget (counted as ``points_dropped_full``)
    and keep history as it is; age-based retention frees space again.

Alarms, events and the journal live in the state database and are never touched here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gateway.store.chunkstore import CHUNK_MS, DAY_MS, SERIES_BITS
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


# table → span of one chunk (the unit retention and the budget delete)
CHUNK_SPAN = {"chunks": CHUNK_MS, "rollup_1m_chunks": CHUNK_MS, "rollup_1h_chunks": DAY_MS}


def _delete_chunks_before(conn: sqlite3.Connection, table: str, cutoff_ms: int) -> int:
    """Delete the chunks whose whole span is older than ``cutoff_ms``; returns the points
    (buckets) they held. Keyed time first (``chunkstore``): one contiguous range."""
    first_kept = (cutoff_ms // CHUNK_SPAN[table]) << SERIES_BITS
    row = conn.execute(f"SELECT coalesce(sum(count), 0) FROM {table} "  # noqa: S608
                       "WHERE key < ?", (first_kept,)).fetchone()
    conn.execute(f"DELETE FROM {table} WHERE key < ?", (first_kept,))  # noqa: S608
    return int(row[0])


def _delete_head_before(conn: sqlite3.Connection, cutoff_ms: int) -> int:
    # keyed (slot, series_id, ts_ms); slot = ts_ms // 10 s
    return conn.execute("DELETE FROM points_head WHERE slot <= ? AND ts_ms < ?",
                        (cutoff_ms // 10_000, cutoff_ms)).rowcount


def _delete_outbox_before(conn: sqlite3.Connection, cutoff_ms: int) -> int:
    # scanned in seq order (rows are roughly in time order, and few unless the sink is down)
    return conn.execute("DELETE FROM outbox WHERE ts_ms < ?", (cutoff_ms,)).rowcount


def _has_outbox(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone() is not None


def apply_retention(conn: sqlite3.Connection, policy: TelemetryPolicy, now: float) -> \
        MaintenanceReport:
    """Delete everything older than its kind's retention, in one transaction."""
    def cutoff(keep_s: float) -> int:
        return round((now - keep_s) * 1000)

    conn.execute("BEGIN IMMEDIATE")
    try:
        raw = cutoff(policy.raw_keep_s)
        points = _delete_chunks_before(conn, "chunks", raw) + _delete_head_before(conn, raw)
        m1 = _delete_chunks_before(conn, "rollup_1m_chunks", cutoff(policy.minute_keep_s))
        h1 = _delete_chunks_before(conn, "rollup_1h_chunks", cutoff(policy.hour_keep_s))
        outbox = _delete_outbox_before(conn, raw) if _has_outbox(conn) else 0
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return MaintenanceReport(points_expired=points, rollup_1m_expired=m1, rollup_1h_expired=h1,
                             outbox_expired=outbox, used_bytes=used_bytes(conn))


def _head_edge(conn: sqlite3.Connection, fn: str) -> int | None:
    row = conn.execute(f"SELECT {fn}(ts_ms) FROM points_head WHERE slot = "  # noqa: S608
                       f"(SELECT {fn}(slot) FROM points_head)").fetchone()
    return None if row[0] is None else int(row[0])


def _chunk_edge(conn: sqlite3.Connection, table: str, fn: str) -> int | None:
    """The start of the oldest (``min``) or newest (``max``) chunk of ``table``."""
    row = conn.execute(f"SELECT {fn}(key) FROM {table}").fetchone()  # noqa: S608
    if row[0] is None:
        return None
    return (int(row[0]) >> SERIES_BITS) * CHUNK_SPAN[table]


def _edge(conn: sqlite3.Connection, table: str, fn: str) -> int | None:
    found = [v for v in (_chunk_edge(conn, table, fn),
                         _head_edge(conn, fn) if table == "chunks" else None) if v is not None]
    if not found:
        return None
    return min(found) if fn == "min" else max(found)


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
    for table, step in (("chunks", HOUR_MS), ("rollup_1m_chunks", HOUR_MS),
                        ("rollup_1h_chunks", 24 * HOUR_MS)):
        newest = _edge(conn, table, "max")
        while used > target:
            oldest = _edge(conn, table, "min")
            if oldest is None or newest is None:
                break
            cutoff = oldest - oldest % step + step
            if cutoff > newest - newest % step:
                break  # the newest step of each kind stays, whatever the budget says
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = _delete_chunks_before(conn, table, cutoff)
                if table == "chunks":
                    n += _delete_head_before(conn, cutoff)
                    points += n
                    if outbox_exists:
                        outbox += _delete_outbox_before(conn, cutoff)
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
