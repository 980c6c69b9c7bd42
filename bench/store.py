"""Benchmark of the embedded telemetry store at full size: an estate's 15 days on disk.

The target: ``--devices`` 2,000 × ``--metrics`` 10 at one reading per ``--interval-s`` 10 s
for ``--days`` 15 = 2.59 billion points. Writing 2.59 billion ``Reading`` objects through
the live path would take hours of Python, so the run has two parts, both through the store's
own code:

1. **bulk** (all but the last ``--live-hours``): ``TelemetryStore.import_runs_sync`` builds
   the chunks and rollups day by day with the encoder and merge code compaction uses
   (``chunkstore.merge_series``; ``tests/unit/store/test_store_import.py`` proves the two
   paths produce identical chunks and rollups);
2. **live** (the last ``--live-hours``, every series): ``Reading`` objects in batches of
   ``--batch`` through ``TelemetryStore.write`` → head → compaction into chunks, as in the
   gateway. Its throughput is the write figure that matters; its bytes per point (the growth
   of the file over the slice, rollups included, once compacted) shows whether live-written
   chunks cost more than bulk-written ones.

Synthetic data (seeded; not white noise). Per device, metric ``m`` is by ``m % 10``:
0-2 a random walk in steps of 0.01 (a temperature, a speed), 3-4 a walk in steps of 0.1
that mostly stands still (a tank level in %), 5 a walk in steps of 0.001 (a pressure in
bar), 6-7 integer counters that rise by 0-2 per reading (energy pulses, passages), 8 a
boolean that flips about once every 40 minutes (a pump), 9 a small integer that changes
now and then (a floor number). Timestamps every ``--interval-s`` exactly, or with
``--jitter-ms`` of uniform device-clock jitter. Quality always good.

Then it times one-metric history queries over 1 day and over the whole span: raw, 1-minute
and 1-hour rollups, and ``auto``; prints a table beside the old row-per-point layout's figures
(``docs/performance-results/store-old-layout.json``, measured with the old code on the same
machine and extrapolated from a 0.05-day run) and writes JSON to ``--out``.

    python bench/store.py --days 1 --devices 200     # about a minute
    python bench/store.py                             # the full size (2-3 hours on a busy 2-vCPU VM)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from itertools import accumulate
from operator import xor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.store.chunkstore import CHUNK_MS  # noqa: E402
from gateway.store.sqlite import SeriesRun, TelemetryStore  # noqa: E402
from gateway.store.stats import collect_stats  # noqa: E402
from gateway.types import Reading  # noqa: E402

DAY = 86_400.0
TARGET_DAYS = 15
ROOT = Path(__file__).resolve().parents[1]
OLD_LAYOUT = ROOT / "docs" / "performance-results" / "store-old-layout.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--days", type=float, default=15.0, help="simulated days (default 15)")
    p.add_argument("--devices", type=int, default=2000)
    p.add_argument("--metrics", type=int, default=10)
    p.add_argument("--interval-s", type=float, default=10.0)
    p.add_argument("--live-hours", type=float, default=1.0,
                   help="the last hours, written as Readings through write() (default 1)")
    p.add_argument("--jitter-ms", type=int, default=0,
                   help="uniform jitter of each timestamp, ± ms (default 0: exact cadence)")
    p.add_argument("--batch", type=int, default=5000, help="readings per write (batch_max)")
    p.add_argument("--import-series", type=int, default=20_000,
                   help="series per bulk-import transaction (one day each)")
    p.add_argument("--workers", type=int, default=2,
                   help="processes that encode the bulk import's chunks (default 2)")
    p.add_argument("--outbox", action="store_true", help="also fill the InfluxDB outbox")
    p.add_argument("--dir", type=Path, default=None, help="where to put the database "
                   "(default: a temporary folder, deleted afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "store.json")
    p.add_argument("--repeat", type=int, default=5, help="runs per query (median reported)")
    return p.parse_args(argv)


# -- synthetic series ------------------------------------------------------------------------


def _table(weights: dict[int, int]) -> bytes:
    """A 256-byte translation table: a random byte → a signed step with these weights."""
    total = sum(weights.values())
    out = bytearray()
    for step, w in weights.items():
        out += bytes([step & 0xFF]) * round(256 * w / total)
    return bytes((out + bytes([0]) * 256)[:256])


WALK_FINE = _table({-3: 1, -2: 3, -1: 8, 0: 10, 1: 8, 2: 3, 3: 1})
WALK_STILL = _table({-1: 1, 0: 14, 1: 1})
COUNTER = _table({0: 6, 1: 3, 2: 1})
RARE = _table({-1: 1, 0: 98, 1: 1})


class Series:
    """One metric of one device: its kind and where its walk stands (carried across calls)."""

    def __init__(self, index: int, metric: int, rng: random.Random) -> None:
        self.kind = metric % 10
        self.level = {0: rng.randint(1000, 4000), 1: rng.randint(-500, 3500),
                      2: rng.randint(0, 2000), 3: rng.randint(200, 900),
                      4: rng.randint(200, 900), 5: rng.randint(1500, 6000),
                      6: rng.randint(0, 10**6), 7: rng.randint(0, 10**5), 8: 0,
                      9: rng.randint(0, 30)}[self.kind]
        self.seed = index

    def values(self, n: int, rng: random.Random) -> list[Any]:
        """The next ``n`` values (C-level passes only: about 0.1 µs a point)."""
        noise = rng.randbytes(n)
        kind = self.kind
        if kind == 8:  # flips with probability 1/256 per reading
            flips = array("b", noise.translate(bytes([1]) + bytes(255)))
            out = list(accumulate(flips, xor, initial=self.level))[1:]
            self.level = out[-1]
            return out
        table = {0: WALK_FINE, 1: WALK_FINE, 2: WALK_FINE, 3: WALK_STILL, 4: WALK_STILL,
                 5: WALK_FINE, 6: COUNTER, 7: COUNTER, 9: RARE}[kind]
        steps = array("b", noise.translate(table))
        ints = list(accumulate(steps, initial=self.level))[1:]
        self.level = ints[-1]
        if kind in (6, 7, 9):
            return ints
        scale = {0: 100.0, 1: 100.0, 2: 100.0, 3: 10.0, 4: 10.0, 5: 1000.0}[kind]
        return list(map(scale.__rtruediv__, ints))


def instants(start_ms: int, n: int, interval_ms: int, jitter_ms: int,
             rng: random.Random) -> list[int]:
    ts = list(range(start_ms, start_ms + n * interval_ms, interval_ms))
    if jitter_ms:
        noise = rng.randbytes(n)
        ts = [t + (b * (2 * jitter_ms + 1) >> 8) - jitter_ms for t, b in zip(ts, noise)]
    return ts


# -- the two write paths ---------------------------------------------------------------------


def bulk(store: TelemetryStore, series: list[tuple[str, str, Series]], a: argparse.Namespace,
         start_ms: int, end_ms: int, rng: random.Random) -> dict[str, float]:
    """Import [start_ms, end_ms) a day at a time, ``--import-series`` series per transaction."""
    interval = round(a.interval_s * 1000)
    points = 0
    busy = 0.0
    wall0 = time.perf_counter()
    last_report = wall0
    day_start = start_ms
    while day_start < end_ms:
        day_end = min(day_start + round(DAY * 1000), end_ms)
        n = (day_end - day_start + interval - 1) // interval
        for first in range(0, len(series), a.import_series):
            part = series[first:first + a.import_series]

            def runs(part: list[tuple[str, str, Series]] = part, n: int = n,
                     t0: int = day_start) -> Iterator[SeriesRun]:
                for dev, metric, s in part:
                    yield SeriesRun(dev, metric, instants(t0, n, interval, a.jitter_ms, rng),
                                    s.values(n, rng))

            t = time.perf_counter()
            points += store.import_runs_sync(runs(), workers=a.workers)
            busy += time.perf_counter() - t
        day_start = day_end
        now = time.perf_counter()
        if now - last_report > 30:
            done = (day_start - start_ms) / (end_ms - start_ms)
            print(f"  bulk {done:6.1%}  {points:>14,} points  {points / busy:>11,.0f} points/s"
                  f"  {now - wall0:7.0f} s", flush=True)
            last_report = now
    return {"points": points, "s": busy, "wall_s": time.perf_counter() - wall0}


async def live(store: TelemetryStore, series: list[tuple[str, str, Series]],
               a: argparse.Namespace, start_ms: int, end_ms: int,
               rng: random.Random) -> dict[str, float]:
    """Readings through ``write`` in batches, as the gateway's pipeline hands them over."""
    interval = round(a.interval_s * 1000)
    ticks = (end_ms - start_ms) // interval
    # values made ahead (per series, for the whole slice) so the timing is the store's
    made = [s.values(ticks, rng) for _, _, s in series]
    write_s = 0.0
    points = 0
    pending: list[Reading] = []
    wall0 = time.perf_counter()
    for tick in range(ticks):
        base = start_ms + tick * interval
        for i, (dev, metric, _) in enumerate(series):
            at = base + (rng.randint(-a.jitter_ms, a.jitter_ms) if a.jitter_ms else 0)
            pending.append(Reading(dev, metric, made[i][tick], at / 1000.0))
            if len(pending) >= a.batch:
                t = time.perf_counter()
                points += await store.write(pending)
                write_s += time.perf_counter() - t
                pending = []
    if pending:
        t = time.perf_counter()
        points += await store.write(pending)
        write_s += time.perf_counter() - t
    return {"points": points, "s": write_s, "wall_s": time.perf_counter() - wall0,
            "compactions": store.compactions, "last_compaction_s": store.last_compaction_s}


# -- measuring -------------------------------------------------------------------------------


def io_counters() -> dict[str, int]:
    """This process's write volume (``wchar``, ``write_bytes``); Linux only."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    fields = dict(line.split(": ") for line in text.splitlines())
    return {k: int(fields[k]) for k in ("wchar", "write_bytes") if k in fields}


def used_bytes(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ps, pc, fl = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                      for p in ("page_size", "page_count", "freelist_count"))
        return int(ps * (pc - fl))
    finally:
        conn.close()


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return {"first_ms": round(first * 1000, 2),
            "median_ms": round(statistics.median(runs) * 1000, 2),
            "rows": len(result.points) + len(result.buckets),
            "resolution": result.resolution.value}


def payload(db: Path, lo_ms: int, hi_ms: int) -> float | None:
    """Blob bytes per point of the raw chunks starting in [lo_ms, hi_ms)."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT sum(length(blob)), sum(count) FROM chunks "
                           "WHERE start_ms >= ? AND start_ms < ?", (lo_ms, hi_ms)).fetchone()
    finally:
        conn.close()
    return None if not row[1] else round(row[0] / row[1], 3)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915
    a = parse_args(argv)
    tmp = None
    folder = a.dir
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="store-bench-", dir=ROOT / "bench" / "results")
        folder = Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "telemetry.db"
    if db.exists():
        raise SystemExit(f"{db} exists; give an empty --dir")
    interval_ms = round(a.interval_s * 1000)
    end_ms = int(time.time()) // 3600 * 3_600_000
    start_ms = end_ms - round(a.days * DAY * 1000)
    live_ms = min(round(a.live_hours * 3_600_000), end_ms - start_ms)
    split_ms = end_ms - live_ms
    nseries = a.devices * a.metrics
    total = (end_ms - start_ms) // interval_ms * nseries
    print(f"store bench: {a.devices:,} devices × {a.metrics} metrics every {a.interval_s:g} s, "
          f"{a.days:g} days → {total:,} points ({(split_ms - start_ms) / 3.6e6:g} h bulk, "
          f"{live_ms / 3.6e6:g} h live in batches of {a.batch}); jitter ±{a.jitter_ms} ms, "
          f"outbox {'on' if a.outbox else 'off'}; db {db}", flush=True)
    rng = random.Random(42)
    series = [(f"dev-{d:04d}", f"metric_{m}", Series(d * a.metrics + m, m, rng))
              for d in range(a.devices) for m in range(a.metrics)]
    store = TelemetryStore(db, outbox=a.outbox)
    io0 = io_counters()
    try:
        b = bulk(store, series, a, start_ms, split_ms, rng)
        used_before_live = used_bytes(db)
        io1 = io_counters()
        lv = asyncio.run(live(store, series, a, split_ms, end_ms, rng))
        io2 = io_counters()
        # compact what the live slice left in the head, to measure what it costs on disk
        used_live_head = used_bytes(db)
        store.maintain_sync(end_ms / 1000.0 + 2 * store.head_ms / 1000.0)
    finally:
        store.close()
    used_after = used_bytes(db)
    stats = collect_stats(db)
    store = TelemetryStore(db)
    dev, metric = "dev-0000", "metric_0"
    last = (end_ms - interval_ms) / 1000.0
    first = start_ms / 1000.0
    q: dict[str, dict[str, Any]] = {}
    try:
        spans = [("1d", last - DAY)] + ([(f"{a.days:g}d", first)] if a.days != 1 else [])
        for span, lo in spans:
            for res in ("raw", "1m", "1h", "auto"):
                q[f"{span}_{res}"] = timed(lambda lo=lo, res=res: store.history_auto_sync(
                    dev, metric, lo, last, resolution=res, now=end_ms / 1000.0,
                    limit=10**8), a.repeat)
    finally:
        store.close()
    points = b["points"] + lv["points"]
    tables = {t.name: {"rows": t.rows, "bytes": t.bytes} for t in stats.tables}
    old = json.loads(OLD_LAYOUT.read_text()) if OLD_LAYOUT.exists() else None
    scale = TARGET_DAYS / a.days
    result = {
        "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                    "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_at_end": os.getloadavg()},
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "data": "seeded synthetic: walks in 0.01/0.1/0.001 steps, counters, a boolean, a "
                "small integer per device (see bench/store.py); quality good",
        "points": points,
        "file_bytes": stats.file_bytes,
        "used_bytes": stats.used_bytes,
        "bytes_per_point_file": round(stats.used_bytes / points, 3),
        "bytes_per_point_raw_tables": (None if stats.bytes_per_point is None
                                       else round(stats.bytes_per_point, 3)),
        "bytes_per_point_by_table": {k: None if v["bytes"] is None
                                     else round(v["bytes"] / points, 3)
                                     for k, v in tables.items()},
        "blob_bytes_per_point": {"bulk": payload(db, start_ms, split_ms - split_ms % CHUNK_MS),
                                 "live": payload(db, split_ms - split_ms % CHUNK_MS + (
                                     CHUNK_MS if split_ms % CHUNK_MS else 0), end_ms)},
        "live_slice_bytes_per_point": round((used_after - used_before_live) / lv["points"], 3)
        if lv["points"] else None,
        "live_slice_head_bytes_per_point": round((used_live_head - used_before_live)
                                                 / lv["points"], 3) if lv["points"] else None,
        "tables": tables,
        "bulk": {"points": b["points"], "s": round(b["s"], 1),
                 "points_per_s": round(b["points"] / b["s"]) if b["s"] else None},
        "live": {"points": lv["points"], "s": round(lv["s"], 1),
                 "points_per_s": round(lv["points"] / lv["s"]) if lv["s"] else None,
                 "compactions": lv["compactions"],
                 "last_compaction_s": round(lv["last_compaction_s"], 2),
                 "bytes_written_per_point": {k: round((io2[k] - io1[k]) / lv["points"], 1)
                                             for k in io2} if lv["points"] else None},
        "bulk_bytes_written_per_point": {k: round((io1[k] - io0[k]) / b["points"], 1)
                                         for k in io1} if b["points"] else None,
        "queries": q,
        "extrapolated_15d": None if a.days >= TARGET_DAYS or nseries != 20_000 else {
            "note": "linear from this run", "points": round(points * scale),
            "used_bytes": round(stats.used_bytes * scale)},
        "old_layout": old and {
            "source": str(OLD_LAYOUT.relative_to(ROOT)),
            "note": "the row-per-point layout (commit e87e825), 2,000 × 10 every 10 s for "
                    "0.05 days on this machine, extrapolated linearly to 15 days",
            "bytes_per_point_file": old["bytes_per_point_file"],
            "points_per_s_write": old["points_per_s_write"],
            "file_bytes_15d": old["extrapolated_15d"]["file_bytes"],
            "write_s_15d": old["extrapolated_15d"]["write_s_at_measured_rate"]},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result, a)
    if tmp is not None and not a.keep:
        tmp.cleanup()
    elif not a.keep and a.dir is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def print_table(r: dict[str, Any], a: argparse.Namespace) -> None:
    span = f"{a.days:g}-day"
    gib = r["used_bytes"] / 2**30
    rows = [
        ("points stored", f"{r['points']:,}"),
        ("database, used pages", f"{gib:,.2f} GiB ({r['file_bytes'] / 2**30:,.2f} GiB file)"),
        ("bytes per point, whole file", f"{r['bytes_per_point_file']:.3f}"),
        ("bytes per point, raw tables", f"{r['bytes_per_point_raw_tables']}"),
    ]
    for name, bpp in r["bytes_per_point_by_table"].items():
        if bpp:
            rows.append((f"  table {name}", f"{bpp:.3f} bytes per point, "
                                            f"{r['tables'][name]['rows']:,} rows"))
    rows += [
        ("chunk blob bytes per point", f"bulk {r['blob_bytes_per_point']['bulk']}, live "
                                       f"{r['blob_bytes_per_point']['live']}"),
        ("live slice on disk, compacted", f"{r['live_slice_bytes_per_point']} bytes per point "
                                          f"(in the head: {r['live_slice_head_bytes_per_point']})"),
        ("write throughput, live path", f"{r['live']['points_per_s']:,} points/s "
                                        f"({r['live']['points']:,} points, "
                                        f"{r['live']['compactions']} compactions, the last "
                                        f"{r['live']['last_compaction_s']} s)"),
        ("write throughput, bulk import", f"{r['bulk']['points_per_s']:,} points/s "
                                          f"({r['bulk']['points']:,} points in "
                                          f"{r['bulk']['s'] / 60:,.1f} min)"),
    ]
    if r["live"]["bytes_written_per_point"]:
        rows.append(("bytes written per point, live", ", ".join(
            f"{k} {v:,.0f}" for k, v in r["live"]["bytes_written_per_point"].items())))
    for key, q in r["queries"].items():
        label = key.replace("1d_", "1-day query, ").replace(f"{a.days:g}d_",
                                                           f"{span} query, ")
        rows.append((label, f"{q['median_ms']:,.2f} ms median ({q['first_ms']:,.2f} ms "
                            f"first), {q['rows']:,} rows [{q['resolution']}]"))
    if r["extrapolated_15d"]:
        e = r["extrapolated_15d"]
        rows.append(("15 days (extrapolated linearly)", f"{e['points']:,} points, "
                                                        f"{e['used_bytes'] / 2**30:,.1f} GiB"))
    if r["old_layout"]:
        o = r["old_layout"]
        rows += [("old layout (row per point)", o["note"]),
                 ("  bytes per point, whole file", f"{o['bytes_per_point_file']}"),
                 ("  15 days on disk", f"{o['file_bytes_15d'] / 2**30:,.1f} GiB"),
                 ("  write throughput", f"{o['points_per_s_write']:,} points/s, 15 days in "
                                        f"{o['write_s_15d'] / 3600:.1f} h")]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(f"  results: {a.out}")


if __name__ == "__main__":
    raise SystemExit(main())
