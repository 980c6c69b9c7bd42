"""``estate-gateway store stats``: space accounting of the store, as text (简体中文 / English).

Raw points are counted from the chunks' ``count`` column plus the head's rows; bytes per
point are given for the raw tables and for the whole file (rollups included).

Opens the databases read-only (safe while the gateway runs: WAL readers never block the
writer). Rows and bytes per table come from SQLite's ``dbstat`` table when the build has it
(Debian's does), otherwise from ``count(*)``; either way the whole file is read once, which
on a full 15-day store takes a while on an SD card.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gateway.store.chunkstore import SERIES_BITS
from gateway.store.retention import CHUNK_SPAN

__all__ = ["StoreStats", "TableStats", "collect_stats", "render_stats", "store_stats_text"]


@dataclass(frozen=True, slots=True)
class TableStats:
    database: str
    name: str
    rows: int
    bytes: int | None  # None when dbstat is not available


@dataclass(frozen=True, slots=True)
class StoreStats:
    telemetry_path: Path
    file_bytes: int            # telemetry database file plus its WAL
    used_bytes: int            # pages holding data (free pages are reused first)
    state_file_bytes: int | None
    tables: tuple[TableStats, ...]
    chunk_points: int          # raw points compacted into chunks (the head's are rows)
    raw_oldest: float | None
    raw_newest: float | None
    rollup_1m_oldest: float | None
    rollup_1h_oldest: float | None
    outbox_backlog: int
    max_bytes: int | None
    fs_free_bytes: int

    @property
    def points(self) -> int:
        """Raw points: those compacted into chunks plus those still in ``points_head``."""
        return self.chunk_points + sum(t.rows for t in self.tables
                                       if t.database == "telemetry" and t.name == "points_head")

    @property
    def bytes_per_point(self) -> float | None:
        """Bytes of the raw point tables (chunks and head) per raw point (whole database
        when no dbstat)."""
        raw = [t for t in self.tables if t.database == "telemetry"
               and t.name in ("chunks", "points_head")]
        if not raw or self.points == 0:
            return None
        if any(t.bytes is None for t in raw):
            return self.used_bytes / self.points
        return sum(t.bytes or 0 for t in raw) / self.points

    @property
    def bytes_per_point_all(self) -> float | None:
        """Used bytes of the whole telemetry database (rollups, outbox, series included) per
        raw point: what sizing an SD card needs."""
        return None if self.points == 0 else self.used_bytes / self.points

    @property
    def left_bytes(self) -> int | None:
        """Room before the configured limit (None: no limit)."""
        return None if self.max_bytes is None else self.max_bytes - self.used_bytes


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)


def _file_size(path: Path) -> int:
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def _tables(conn: sqlite3.Connection, database: str) -> list[TableStats]:
    tables = {name: "WITHOUT ROWID" in (sql or "").upper() for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")}
    names = list(tables)
    # A rowid table keeps its rows in leaf cells only; a WITHOUT ROWID table is an index
    # b-tree, whose interior cells are rows too.
    try:
        sized = {name: (int(all_cells if tables.get(name) else leaf_cells or 0), int(size))
                 for name, size, leaf_cells, all_cells in conn.execute(
                     "SELECT name, sum(pgsize), sum(ncell) FILTER (WHERE pagetype = 'leaf'), "
                     "sum(ncell) FROM dbstat GROUP BY name")}
    except sqlite3.OperationalError:  # no dbstat in this SQLite build
        sized = {}
    out = []
    for name in names:
        if name in sized:
            rows, size = sized[name]
            out.append(TableStats(database, name, rows, size))
        else:
            rows = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # noqa: S608
            out.append(TableStats(database, name, int(rows), None))
    return out


def _chunk_edge(conn: sqlite3.Connection, table: str, fn: str) -> float | None:
    """Oldest first point (``min``) or newest last point (``max``) of the raw chunks, or the
    start of the oldest rollup chunk. Keys are time first (``chunkstore``), so only the
    chunks of the first or last hour are read."""
    key = conn.execute(f"SELECT {fn}(key) FROM {table}").fetchone()[0]  # noqa: S608
    if key is None:
        return None
    span = CHUNK_SPAN[table]
    lo = key >> SERIES_BITS << SERIES_BITS
    if table != "chunks":
        return (key >> SERIES_BITS) * span / 1000.0
    column = "first_ms" if fn == "min" else "last_ms"
    row = conn.execute(f"SELECT {fn}({column}) FROM chunks "  # noqa: S608
                       "WHERE key >= ? AND key < ?", (lo, lo + (1 << SERIES_BITS))).fetchone()
    return row[0] / 1000.0


def _head_edge(conn: sqlite3.Connection, fn: str) -> float | None:
    row = conn.execute(f"SELECT {fn}(ts_ms) FROM points_head WHERE slot = "  # noqa: S608
                       f"(SELECT {fn}(slot) FROM points_head)").fetchone()
    return None if row[0] is None else row[0] / 1000.0


def collect_stats(telemetry_db: Path, state_db: Path | None = None, *,
                  max_bytes: int | None = None) -> StoreStats:
    """Measure the telemetry database (and the state database's tables, if given)."""
    conn = _ro(telemetry_db)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        tables = _tables(conn, "telemetry")
        has_outbox = any(t.name == "outbox" for t in tables)
        backlog = 0
        if has_outbox:
            row = conn.execute("SELECT count(*) FROM outbox WHERE seq > coalesce((SELECT "
                               "value FROM meta WHERE key = 'outbox.acked'), 0)").fetchone()
            backlog = int(row[0])
        edges = [v for v in (_chunk_edge(conn, "chunks", "min"),
                             _chunk_edge(conn, "chunks", "max"),
                             _head_edge(conn, "min"), _head_edge(conn, "max")) if v is not None]
        stats_raw = (min(edges), max(edges)) if edges else (None, None)
        m1 = _chunk_edge(conn, "rollup_1m_chunks", "min")
        h1 = _chunk_edge(conn, "rollup_1h_chunks", "min")
        chunk_points = int(conn.execute("SELECT coalesce(sum(count), 0) FROM chunks")
                           .fetchone()[0])
    finally:
        conn.close()
    state_bytes = None
    if state_db is not None and state_db.exists():
        state_bytes = _file_size(state_db)
        sconn = _ro(state_db)
        try:
            tables += _tables(sconn, "state")
        finally:
            sconn.close()
    return StoreStats(
        telemetry_path=telemetry_db, file_bytes=_file_size(telemetry_db),
        used_bytes=page_size * (pages - free), state_file_bytes=state_bytes,
        tables=tuple(tables), chunk_points=chunk_points, raw_oldest=stats_raw[0], raw_newest=stats_raw[1],
        rollup_1m_oldest=m1, rollup_1h_oldest=h1, outbox_backlog=backlog,
        max_bytes=max_bytes, fs_free_bytes=shutil.disk_usage(telemetry_db.parent).free)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_stats(s: StoreStats) -> str:
    """The text ``estate-gateway store stats`` prints."""
    bpp = s.bytes_per_point
    bpp_all = s.bytes_per_point_all
    lines = [
        f"存储统计 / Store statistics: {s.telemetry_path}",
        "",
        "空间 / Space",
        f"  文件大小 / file size (with WAL):         {_size(s.file_bytes)}",
        f"  已用 / used pages:                       {_size(s.used_bytes)}",
        f"  原始数据点 / raw points:                 {s.points:,}",
        f"  其中已压缩 / of which in chunks:         {s.chunk_points:,}",
        f"  每点字节 / bytes per point (raw):        {'-' if bpp is None else f'{bpp:.2f}'}",
        f"  每点字节 / bytes per point (whole file): "
        f"{'-' if bpp_all is None else f'{bpp_all:.2f}'}",
        f"  容量上限 / configured limit:             "
        f"{'无 / none' if s.max_bytes is None else _size(s.max_bytes)}",
        f"  上限前剩余 / left before the limit:      "
        f"{'-' if s.left_bytes is None else _size(s.left_bytes)}",
        f"  磁盘剩余 / free on the file system:      {_size(s.fs_free_bytes)}",
    ]
    if s.state_file_bytes is not None:
        lines.append(f"  状态库 / state database (never pruned): {_size(s.state_file_bytes)}")
    lines += ["", "各表行数 / Rows per table",
              f"  {'database':<10} {'table':<20} {'rows':>14} {'bytes':>12}"]
    for t in s.tables:
        lines.append(f"  {t.database:<10} {t.name:<20} {t.rows:>14,} {_size(t.bytes):>12}")
    lines += ["", "时间范围 / Time range",
              f"  原始数据 / raw points:   {_when(s.raw_oldest)}  →  {_when(s.raw_newest)}",
              f"  1分钟汇总 / 1-min rollups since: {_when(s.rollup_1m_oldest)}",
              f"  1小时汇总 / 1-hour rollups since: {_when(s.rollup_1h_oldest)}",
              "", f"InfluxDB 待发送 / outbox backlog: {s.outbox_backlog:,} points"]
    return "\n".join(lines) + "\n"


def store_stats_text(telemetry_db: Path, state_db: Path | None = None, *,
                     max_bytes: int | None = None) -> str:
    """``collect_stats`` + ``render_stats``: what the CLI subcommand prints."""
    return render_stats(collect_stats(telemetry_db, state_db, max_bytes=max_bytes))
