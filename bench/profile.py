"""Profile the gateway process under a steady telemetry load with py-spy.

    python -m bench.profile [--rate 5000] [--seconds 20] [--devices 200]

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
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        total += count
        frames = [f.split(" (")[0] + " " + f.split(" (")[-1].rstrip(")").split(":")[0]
                  .replace(str(h.REPO) + "/", "").split("site-packages/")[-1]
                  for f in stack.split(";")]
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    lines = [f"{total} samples"]
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
            t = threading.Thread(target=h.run_load, args=(broker.port, device_list), kwargs={
                "rate": args.rate, "duration": args.seconds + 4, "processes": args.processes,
                "workdir": root / "load", "client": args.client})
            t.start()
            time.sleep(3)
            collapsed = args.out / "profile.txt"
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


if __name__ == "__main__":
    main()
