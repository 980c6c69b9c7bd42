"""Benchmark of the embedded telemetry store, time-compressed.

Simulates ``--devices`` devices × ``--metrics`` metrics, one reading each per
``--interval-s`` seconds, over ``--days`` simulated days (default: 2,000 × 10 every 10 s for
15 days = 259.2 M points), written as fast as the store takes them in batches of
``--batch`` readings through ``TelemetryStore.write`` (rollups included; the InfluxDB outbox
only with ``--outbox``). Then it measures, for one metric, the latency of a 1-day and a
``--days``-day history query, raw and from rollups.

Prints a table and writes JSON to ``bench/results/store.json``. With ``--days`` below 15 the
15-day size and write time are extrapolated linearly from the measured run and labelled as
such; query latencies are not (run ``--devices 20 --days 15`` for a real 15-day series).

    python bench/store.py --days 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.store.sqlite import TelemetryStore  # noqa: E402
from gateway.store.stats import collect_stats  # noqa: E402
from gateway.types import Reading  # noqa: E402

DAY = 86_400.0
TARGET_DAYS = 15


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=float, default=15.0, help="simulated days (default 15)")
    p.add_argument("--devices", type=int, default=2000)
    p.add_argument("--metrics", type=int, default=10)
    p.add_argument("--interval-s", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=5000, help="readings per write (batch_max)")
    p.add_argument("--outbox", action="store_true", help="also fill the InfluxDB outbox")
    p.add_argument("--dir", type=Path, default=None, help="where to put the database "
                   "(default: a temporary folder, deleted afterwards)")
    p.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parent / "results" / "store.json")
    p.add_argument("--repeat", type=int, default=5, help="runs per query (median reported)")
    return p.parse_args(argv)


async def fill(store: TelemetryStore, a: argparse.Namespace, start: float) -> dict[str, float]:
    rng = random.Random(42)
    values = [round(rng.uniform(0, 100), 2) for _ in range(4099)]
    ids = [(f"dev-{d:04d}", f"metric_{m}") for d in range(a.devices) for m in range(a.metrics)]
    ticks = int(a.days * DAY / a.interval_s)
    write_s = 0.0
    points = 0
    wall0 = time.perf_counter()
    last_report = wall0
    pending: list[Reading] = []
    for tick in range(ticks):
        at = start + tick * a.interval_s
        for i, (dev, metric) in enumerate(ids):
            pending.append(Reading(dev, metric, values[(tick * 7 + i) % 4099], at))
            if len(pending) >= a.batch:
                t = time.perf_counter()
                points += await store.write(pending)
                write_s += time.perf_counter() - t
                pending = []
        now = time.perf_counter()
        if now - last_report > 30:
            done = (tick + 1) / ticks
            print(f"  {done:6.1%}  {points:>12,} points  {points / write_s:>9,.0f} points/s "
                  f"(write)  {now - wall0:7.0f} s", flush=True)
            last_report = now
    if pending:
        t = time.perf_counter()
        points += await store.write(pending)
        write_s += time.perf_counter() - t
    return {"points": points, "write_s": write_s, "wall_s": time.perf_counter() - wall0}


def io_counters() -> dict[str, int]:
    """This process's write volume: ``wchar`` (bytes handed to write()) and
    ``write_bytes`` (bytes the kernel sent to the block device for it); Linux only."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    fields = dict(line.split(": ") for line in text.splitlines())
    return {k: int(fields[k]) for k in ("wchar", "write_bytes") if k in fields}


def timed(fn, repeat: int) -> dict[str, float]:  # noqa: ANN001
    first_t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - first_t
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    n = len(result.points) + len(result.buckets)
    return {"first_ms": first * 1000, "median_ms": statistics.median(runs) * 1000, "rows": n,
            "resolution": result.resolution.value}


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    tmp = None
    folder = a.dir
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="store-bench-")
        folder = Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "telemetry.db"
    if db.exists():
        raise SystemExit(f"{db} exists; give an empty --dir")
    end = float(int(time.time()) // 3600 * 3600)
    start = end - a.days * DAY
    print(f"store bench: {a.devices} devices × {a.metrics} metrics every {a.interval_s:g} s, "
          f"{a.days:g} simulated days → {int(a.days * DAY / a.interval_s) * a.devices * a.metrics:,}"
          f" points, batch {a.batch}, outbox {'on' if a.outbox else 'off'}; db {db}", flush=True)
    store = TelemetryStore(db, outbox=a.outbox)
    io0 = io_counters()
    try:
        filled = asyncio.run(fill(store, a, start))
    finally:
        store.close()
    io1 = io_counters()
    # checkpoint the WAL so the file size is the data, then measure
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    stats = collect_stats(db)
    store = TelemetryStore(db)
    try:
        last = end - a.interval_s
        q = {
            "1d_raw": timed(lambda: store.history_auto_sync(
                "dev-0000", "metric_0", last - DAY, last, resolution="raw", limit=10**7),
                a.repeat),
            "1d_rollup_1m": timed(lambda: store.history_auto_sync(
                "dev-0000", "metric_0", last - DAY, last, resolution="1m", limit=10**7),
                a.repeat),
            "full_raw": timed(lambda: store.history_auto_sync(
                "dev-0000", "metric_0", start, last, resolution="raw", limit=10**7), a.repeat),
            "full_rollup_1h": timed(lambda: store.history_auto_sync(
                "dev-0000", "metric_0", start, last, resolution="1h", limit=10**7), a.repeat),
            "1d_auto": timed(lambda: store.history_auto_sync(
                "dev-0000", "metric_0", last - DAY, last, now=end), a.repeat),
            "full_auto": timed(lambda: store.history_auto_sync(
                "dev-0000", "metric_0", start, last, now=end), a.repeat),
        }
    finally:
        store.close()
    points = filled["points"]
    tables = {t.name: {"rows": t.rows, "bytes": t.bytes} for t in stats.tables}
    file_bpp = stats.file_bytes / points
    scale = TARGET_DAYS / a.days
    result = {
        "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                    "platform": platform.platform(), "cpus": __import__("os").cpu_count()},
        "params": {"devices": a.devices, "metrics": a.metrics, "interval_s": a.interval_s,
                   "days": a.days, "batch": a.batch, "outbox": a.outbox},
        "points": points,
        "write_s": round(filled["write_s"], 2),
        "wall_s": round(filled["wall_s"], 2),
        "points_per_s_write": round(points / filled["write_s"]),
        "points_per_s_wall": round(points / filled["wall_s"]),
        "file_bytes": stats.file_bytes,
        "bytes_per_point_file": round(file_bpp, 2),
        "bytes_per_point_points_table": (None if stats.bytes_per_point is None
                                         else round(stats.bytes_per_point, 2)),
        "tables": tables,
        "bytes_written_per_point": {k: round((io1[k] - io0[k]) / points, 1) for k in io1},
        "queries": {k: {kk: (round(vv, 3) if isinstance(vv, float) else vv)
                        for kk, vv in v.items()} for k, v in q.items()},
        "extrapolated_15d": None if a.days >= TARGET_DAYS else {
            "note": "linear from the measured run; B-tree depth and a cache-miss rate that "
                    "grow with the file make the real figures somewhat worse",
            "points": round(points * scale),
            "file_bytes": round(stats.file_bytes * scale),
            "write_s_at_measured_rate": round(filled["write_s"] * scale),
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    span = f"{a.days:g}d"
    rows = [
        ("points written", f"{points:,}"),
        ("write throughput (inside write())", f"{result['points_per_s_write']:,} points/s"),
        ("throughput incl. generating readings", f"{result['points_per_s_wall']:,} points/s"),
        ("file size (WAL checkpointed)", f"{stats.file_bytes / 2**20:,.1f} MiB"),
        ("bytes per point, whole file", f"{file_bpp:.1f}"),
        ("bytes per point, points table", f"{result['bytes_per_point_points_table']}"),
    ]
    for k, v in result["bytes_written_per_point"].items():
        rows.append((f"bytes written per point ({k})", f"{v:,.1f}"))
    for name, label in (("1d_raw", "1-day query, raw"), ("1d_rollup_1m", "1-day query, 1m"),
                        ("full_raw", f"{span} query, raw"),
                        ("full_rollup_1h", f"{span} query, 1h"),
                        ("1d_auto", "1-day query, auto"), ("full_auto", f"{span} query, auto")):
        r = q[name]
        rows.append((label, f"{r['median_ms']:.2f} ms median ({r['first_ms']:.2f} ms first), "
                            f"{r['rows']:,} rows [{r['resolution']}]"))
    if result["extrapolated_15d"]:
        e = result["extrapolated_15d"]
        rows += [("15-day points (extrapolated)", f"{e['points']:,}"),
                 ("15-day file (extrapolated)", f"{e['file_bytes'] / 2**30:.2f} GiB"),
                 ("15-day write time (extrapolated)",
                  f"{e['write_s_at_measured_rate'] / 3600:.1f} h"),
                 ("15-day queries", "not extrapolated: measure a real 15-day series with "
                                    "--devices 20 --days 15")]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(f"\n  rows per table: " + ", ".join(f"{k} {v['rows']:,}" for k, v in tables.items()))
    print(f"  results: {a.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
