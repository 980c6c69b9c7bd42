"""Run every benchmark and print the targets of issue 11 against what was measured.

    python -m bench.run_all [--quick] [--minutes 10]

``--quick`` shortens every benchmark (ingest steps of 5 s, 10 s of latency probes, a
1-minute footprint) for a first look; the figures in docs/performance.md come from the
full run. The Modbus benchmark (``bench/modbus_poll.py``, from the Modbus issue) runs
too when it exists. Each benchmark writes bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import alarm_latency, footprint, harness, ingest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--minutes", type=float, default=None, help="footprint duration")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = ["--out", str(args.out)] if args.out else []
    quick = args.quick
    print("== ingest ==", flush=True)
    ing = ingest.main([*out, *(["--duration", "5", "--refine", "1"] if quick else [])])
    print("\n== alarm latency ==", flush=True)
    lat = alarm_latency.main([*out, *(["--duration", "10", "--idle", "3"] if quick else [])])
    print("\n== footprint ==", flush=True)
    minutes = args.minutes if args.minutes is not None else (1.0 if quick else 10.0)
    fp = footprint.main([*out, "--minutes", str(minutes),
                         *(["--warmup", "0.25", "--starts", "2"] if quick else [])])
    modbus = harness.REPO / "bench" / "modbus_poll.py"
    if modbus.exists():
        print("\n== modbus poll ==", flush=True)
        subprocess.run([sys.executable, str(modbus),
                        *(["--seconds", "10", "--rtu-seconds", "5"] if quick else []),
                        *(["--out", str(args.out / "modbus.json")] if args.out else [])],
                       cwd=harness.REPO, check=False)
    else:
        print("\n(bench/modbus_poll.py does not exist yet: Modbus benchmark skipped)")
    print("\n== targets ==")
    print(harness.table(targets(ing, lat, fp, minutes), ["target", "wanted", "measured", "met"]))


def targets(ing: dict[str, Any], lat: dict[str, Any], fp: dict[str, Any],
            minutes: float) -> list[list[Any]]:
    s = ing["summary"]
    ratio = s.get("gateway_vs_ceiling") or 0.0
    p99 = lat["load_mqtt"]["p99_ms"] or float("inf")
    return [
        ["ingest vs bare subscriber", ">= 0.9 x", f"{ratio:.2f} x ({s.get('gateway'):,.0f} / "
         f"{s['ceiling_bare_subscriber']:,.0f} msg/s)", _yes(ratio >= 0.9)],
        ["ingest, zero loss", ">= 20,000 msg/s", f"{s.get('gateway'):,.0f} msg/s",
         _yes(s.get("gateway", 0) >= 20_000)],
        ["alarm latency p99 @ 5,000/s", "<= 10 ms", f"{p99} ms", _yes(p99 <= 10)],
        ["RSS, 2,000 devices", "<= 120 MB", f"{fp['rss_end_mb']} MB (peak {fp['rss_peak_mb']})",
         _yes(fp["rss_peak_mb"] <= 120)],
        [f"RSS growth over {fp['growth_window_min']} min", "< 5 %",
         f"{fp['growth_pct_after_warmup']} %", _yes(fp["growth_pct_after_warmup"] < 5)],
        ["start-up to ready", "<= 3 s", f"cold {fp['startup_cold_s']} s, warm "
         f"{fp['startup_warm_max_s']} s", _yes(max(fp["startup_s"]) <= 3)],
    ]


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


if __name__ == "__main__":
    main()
