"""Profile the gateway process under a steady telemetry load with py-spy.

    python -m bench.profile [--rate 5000] [--seconds 20] [--devices 200]
    python -m bench.profile --drain 100000     # while it empties a queued backlog

With ``--drain N`` the gateway goes away (its session stays), N messages are queued at the
broker, the gateway comes back and is profiled while it catches up: the gateway, not the
load generator, sets the pace, so the profile shows the cost per message at full speed.

Needs py-spy (``pip install py-spy``; it attaches to the running gateway, so it may need
``CAP_SYS_PTRACE``/root). Writes the collapsed stacks to bench/results/profile.txt and a
flame graph to bench/results/profile.svg, and prints the functions with the most samples,
by own time and by inclusive time.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import harness as h


def summarise(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        total += count
        threads[stack.split(";", 1)[0].split(": ", 1)[-1]] += count
        frames = [f.split(" (")[0] + " " + f.split(" (")[-1].rstrip(")").split(":")[0]
                  .replace(str(h.REPO) + "/", "").split("site-packages/")[-1]
                  for f in stack.split(";")]
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    lines = [f"{total} samples (py-spy leaves idle threads out)"]
    lines += [f"{100 * n / total:5.1f}%  thread {t}" for t, n in threads.most_common()]
    for title, c in (("own time", own), ("inclusive", incl)):
        lines.append(f"\n-- top {top} by {title} --")
        lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in c.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--client", choices=("paho", "raw"), default="raw")
    ap.add_argument("--drain", type=int, default=0,
                    help="profile the drain of a backlog of this many messages instead")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, default=h.RESULTS)
    args = ap.parse_args(argv)
    pyspy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if pyspy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    root = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    args.out.mkdir(parents=True, exist_ok=True)
    device_list = h.devices(args.devices)
    try:
        with h.broker(root / "broker") as broker:
            data = root / "data"
            cfg = h.write_config(root / "gateway.yaml", broker_port=broker.port, data_dir=data,
                                 device_list=device_list, rules=h.rule_pack())
            gw = h.Gateway(cfg, data, root / "gateway.log")
            gw.make_token()
            gw.start()
            assert gw.proc is not None
            collapsed = args.out / "profile.txt"
            if args.drain:
                _profile_drain(gw, broker, device_list, args, root, pyspy, collapsed)
            else:
                t = threading.Thread(target=h.run_load, args=(broker.port, device_list), kwargs={
                    "rate": args.rate, "duration": args.seconds + 4,
                    "processes": args.processes, "workdir": root / "load",
                    "client": args.client})
                t.start()
                time.sleep(3)
                for fmt, path in (("raw", collapsed), ("flamegraph", args.out / "profile.svg")):
                    subprocess.Popen([pyspy, "record", "--pid", str(gw.proc.pid), "--duration",
                                      str(int(args.seconds / 2)), "--rate", "200", "--threads",
                                      "--nonblocking", "--format", fmt, "--output", str(path)],
                                     stdout=subprocess.DEVNULL).wait()
                t.join()
            gw.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(summarise(collapsed, args.top))
    print(f"wrote {collapsed} and {args.out / 'profile.svg'}")


def _profile_drain(gw: h.Gateway, broker: h.Broker, device_list: list[dict[str, object]],
                   args: argparse.Namespace, root: Path, pyspy: str, collapsed: Path) -> None:
    """Queue a backlog while the gateway is away, then record it catching up."""
    gw.stop()
    loads, _ = h.run_load(broker.port, device_list, rate=args.drain / 5, duration=5,
                          processes=args.processes, workdir=root / "load", client=args.client)
    points = sum(r.points for r in loads)
    gw.start()
    assert gw.proc is not None
    base = 0  # a fresh store per profile: every point counted is from the backlog
    threads0 = h.thread_cpu_s(gw.proc.pid)
    t0 = time.monotonic()
    spy = subprocess.Popen([pyspy, "record", "--pid", str(gw.proc.pid), "--duration",
                            str(int(args.seconds)), "--rate", "200", "--threads",
                            "--nonblocking", "--format", "raw", "--output", str(collapsed)],
                           stdout=subprocess.DEVNULL)
    while gw.points_written() - base < points and time.monotonic() - t0 < 300:
        time.sleep(0.05)
    took = time.monotonic() - t0
    threads = {k: v - threads0[k] for k, v in h.thread_cpu_s(gw.proc.pid).items()}
    messages = sum(r.sent for r in loads)
    spy.wait()
    per = ", ".join(f"{k} {1e6 * v / messages:.1f}" for k, v in threads.items())
    print(f"drained {messages:,} messages in {took:.1f} s ({messages / took:,.0f} msg/s), "
          f"{1e6 * sum(threads.values()) / messages:.1f} us CPU/msg ({per}; py-spy attached "
          "adds a little)")

if __name__ == "__main__":
    main()
