"""Footprint: start-up time to ready and RSS with 2,000 configured devices under load.

    python -m bench.footprint [--devices 2000] [--minutes 10] [--rate 2000] [--starts 3]

Start-up is timed from process start to ``/healthz`` answering with MQTT connected, first
on an empty data directory (cold) and then on restarts (warm); the CPU the process used to
get there is recorded too, the steadier figure on a shared machine. Then, with the last process
kept running, every device publishes telemetry (``--rate`` messages/s over all devices,
QoS 1, ``--processes`` paho publishers) for ``--minutes``; RSS is sampled every
``--sample`` seconds. Growth is measured from the first sample after the warm-up minute
(caches, SQLite page cache and allocator arenas fill up in it) to the last one. The
reference is the RSS of the same process at ready, before any load.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import harness as h


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0, help="minutes before growth is measured")
    ap.add_argument("--rate", type=float, default=2000, help="messages/s over all devices")
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--client", choices=("paho", "raw"), default="paho")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    device_list = h.devices(args.devices)
    print(f"footprint: {args.devices} devices, {len(h.rule_pack())} rules, "
          f"{args.rate:,.0f} msg/s for {args.minutes:g} min, work dir {root}")
    samples: list[tuple[float, float]] = []
    try:
        with h.broker(root / "broker") as broker:
            data = root / "data"
            cfg = h.write_config(root / "gateway.yaml", broker_port=broker.port, data_dir=data,
                                 device_list=device_list, rules=h.rule_pack())
            gw = h.Gateway(cfg, data, root / "gateway.log")
            gw.make_token()
            starts, start_cpu = [], []
            for i in range(args.starts):
                starts.append(gw.start())
                start_cpu.append(gw.startup_cpu_s)
                print(f"  start {i + 1} ({'cold' if i == 0 else 'warm'}): {starts[-1]:.2f} s "
                      f"to ready, {start_cpu[-1]:.2f} s of CPU", flush=True)
                if i + 1 < args.starts:
                    gw.stop()
            assert gw.proc is not None
            pid = gw.proc.pid
            rss_ready = h.rss_mb(pid)
            load_out: dict[str, Any] = {}
            seconds = args.minutes * 60

            def load() -> None:
                load_out["r"], _ = h.run_load(broker.port, device_list, rate=args.rate,
                                              duration=seconds, processes=args.processes,
                                              workdir=root / "load", client=args.client)

            base_points = gw.points_written()
            cpu0, disk0 = h.cpu_s(pid), h.disk_written(pid)
            t = threading.Thread(target=load)
            t.start()
            t0 = time.monotonic()
            while t.is_alive():
                samples.append((time.monotonic() - t0, h.rss_mb(pid)))
                if len(samples) % max(1, round(60 / args.sample)) == 0:
                    print(f"  {samples[-1][0] / 60:5.1f} min  RSS {samples[-1][1]:.1f} MB",
                          flush=True)
                t.join(args.sample)
            loads = load_out["r"]
            expected = sum(r.points for r in loads)
            deadline = time.monotonic() + 60
            got = gw.points_written() - base_points
            while got < expected and time.monotonic() < deadline:
                time.sleep(0.2)
                got = gw.points_written() - base_points
            samples.append((time.monotonic() - t0, h.rss_mb(pid)))
            cpu = h.cpu_s(pid) - cpu0
            disk = h.disk_written(pid) - disk0
            peak = h.peak_rss_mb(pid)
            achieved = sum(r.sent for r in loads) / max(r.paced_s for r in loads)
            dropped = broker.dropped()
            gw.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    warm = [s for s in samples if s[0] >= args.warmup * 60] or samples[-1:]
    rss_from, rss_end = warm[0][1], samples[-1][1]
    growth = 100 * (rss_end - rss_from) / rss_from
    res = {"startup_s": [round(s, 2) for s in starts], "startup_cold_s": round(starts[0], 2),
           "startup_cpu_s": [round(s, 2) for s in start_cpu],
           "startup_warm_max_s": round(max(starts[1:] or starts), 2),
           "rss_ready_mb": round(rss_ready, 1), "rss_after_warmup_mb": round(rss_from, 1),
           "rss_end_mb": round(rss_end, 1), "rss_peak_mb": round(peak, 1),
           "growth_pct_after_warmup": round(growth, 2),
           "growth_window_min": round((samples[-1][0] - warm[0][0]) / 60, 2),
           "rate_achieved": round(achieved), "points_expected": expected, "points_stored": got,
           "lost": max(0, expected - got), "broker_dropped": dropped,
           "gateway_cpu_s": round(cpu, 1),
           "gateway_cpu_pct": round(100 * cpu / max(1e-9, samples[-1][0]), 1),
           # what an SD card would have to absorb: WAL, checkpoints, compactions
           "disk_written_mb_per_s": round(disk / 1e6 / max(1e-9, samples[-1][0]), 2),
           "disk_written_bytes_per_point": round(disk / max(1, got), 1),
           "rss_samples": [(round(t, 1), round(r, 1)) for t, r in samples]}
    print(h.table([
        ["start-up to ready, cold / warm max (s)", f"{res['startup_cold_s']} / "
                                                   f"{res['startup_warm_max_s']}"],
        ["start-up CPU, cold / warm max (s)", f"{start_cpu[0]:.2f} / "
                                              f"{max(start_cpu[1:] or start_cpu):.2f}"],
        ["RSS at ready (MB)", res["rss_ready_mb"]],
        [f"RSS after {args.warmup:g} min warm-up (MB)", res["rss_after_warmup_mb"]],
        [f"RSS at end, {args.minutes:g} min (MB)", res["rss_end_mb"]],
        ["peak RSS (MB)", res["rss_peak_mb"]],
        [f"growth over {res['growth_window_min']} min (%)", res["growth_pct_after_warmup"]],
        ["load achieved (msg/s) / lost points / broker drops",
         f"{achieved:,.0f} / {res['lost']} / {dropped}"],
        ["gateway CPU (% of one core)", res["gateway_cpu_pct"]],
        ["disk written (MB/s) / bytes per stored point",
         f"{res['disk_written_mb_per_s']} / {res['disk_written_bytes_per_point']}"],
    ], ["figure", "value"]))
    path = h.save("footprint", {"params": {k: v for k, v in vars(args).items() if k != "out"},
                                "summary": res}, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
