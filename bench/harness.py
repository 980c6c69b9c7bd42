"""Benchmark plumbing: a mosquitto that makes overload visible, the gateway process, load generators.

Everything here is real: Debian's mosquitto on a free loopback port, ``python -m gateway
run`` as a child process, and publisher processes (``bench.loadgen``) speaking QoS 1
through paho-mqtt like the shipped simulators. The broker's queue is sized so that it
never drops (``max_queued_messages`` 10 million, no byte limit), and every benchmark reads
``$SYS/broker/publish/messages/dropped`` and scans the broker log for "dropped" so a drop
is reported, never silent.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import yaml

REPO = Path(__file__).resolve().parents[1]
# the gateway under test: this checkout, or another one (e.g. `git archive main | tar -x`)
# to measure a before/after with the same benchmark code
GATEWAY_SRC = Path(os.environ.get("BENCH_GATEWAY_SRC") or REPO).resolve()
RESULTS = REPO / "bench" / "results"
SITE = "bench"
PREFIX = "estate"
KINDS = ("water_tank", "elevator", "access_gate", "parking_barrier")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    rev = subprocess.run(["git", "-C", str(GATEWAY_SRC), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return {"gateway_src": str(GATEWAY_SRC), "gateway_rev": rev or "not a git checkout",
            "nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "mosquitto": (mosq.stdout.splitlines() or ["?"])[0],
            "kernel": platform.release(),
            "mem_total_mb": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20}


# -- devices and rules ------------------------------------------------------------------

def devices(n: int) -> list[dict[str, Any]]:
    """``n`` MQTT devices, the four kinds in turn, spread over 20 buildings."""
    return [{"id": f"{KINDS[i % 4].replace('_', '-')}-{i:05d}", "kind": KINDS[i % 4],
             "location": {"building": f"B{i % 20:02d}"}} for i in range(n)]


def rule_pack() -> list[dict[str, Any]]:
    """A few threshold and event rules per device kind (the shape of the shipped packs)."""
    return [
        {"id": "tank-low", "select": {"kind": "water_tank"}, "priority": "high",
         "when": {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25,
                  "for_s": 60}},
        {"id": "tank-high", "select": {"kind": "water_tank"},
         "when": {"type": "threshold", "metric": "level_pct", "above": 95}},
        {"id": "tank-flooding", "select": {"kind": "water_tank"}, "priority": "emergency",
         "when": {"type": "event", "event": "pump_room.flooding"}},
        {"id": "lift-overload", "select": {"kind": "elevator"},
         "when": {"type": "threshold", "metric": "load_pct", "above": 110, "for_s": 5}},
        {"id": "lift-overspeed", "select": {"kind": "elevator"}, "priority": "emergency",
         "when": {"type": "threshold", "metric": "car_speed_mps", "above": 3.5}},
        {"id": "lift-entrapment", "select": {"kind": "elevator"}, "priority": "emergency",
         "latch": True, "when": {"type": "event", "event": "elevator.entrapment"}},
        {"id": "gate-battery", "select": {"kind": "access_gate"}, "priority": "low",
         "when": {"type": "threshold", "metric": "battery_pct", "below": 15, "clear": 20}},
        {"id": "gate-forced", "select": {"kind": "access_gate"}, "priority": "emergency",
         "latch": True, "when": {"type": "event", "event": "door.forced_open"}},
        {"id": "barrier-open-long", "select": {"kind": "parking_barrier"},
         "when": {"type": "threshold", "metric": "open_s", "above": 120}},
        {"id": "barrier-too-long", "select": {"kind": "parking_barrier"},
         "when": {"type": "event", "event": "barrier.open_too_long", "auto_clear_s": 600}},
    ]


def write_config(path: Path, *, broker_port: int, data_dir: Path,
                 device_list: list[dict[str, Any]], rules: list[dict[str, Any]]) -> Path:
    cfg = {"site": {"id": SITE}, "broker": {"host": "127.0.0.1", "port": broker_port,
                                           "client_id": "gw-bench", "topic_prefix": PREFIX},
           "store": {"path": str(data_dir)}, "api": {"host": "127.0.0.1", "port": 0},
           "devices": device_list, "rules": rules}
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


# -- the broker -------------------------------------------------------------------------

class Broker:
    """mosquitto on a free loopback port; queue big enough never to drop, drops reported."""

    def __init__(self, workdir: Path, *, max_inflight: int = 1000) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.max_inflight = max_inflight
        self.proc: subprocess.Popen[bytes] | None = None
        self.sys: dict[str, str] = {}
        self._watch: paho.Client | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "mosquitto.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            # never drop: a slow consumer shows up as a backlog, not as loss
            "max_queued_messages 10000000\nmax_queued_bytes 0\n"
            f"max_inflight_messages {self.max_inflight}\nmessage_size_limit 65536\n"
            "sys_interval 1\n"
            f"log_dest file {self.log}\nlog_type error\nlog_type warning\nlog_type notice\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-sys-watch")
        c.on_connect = lambda cl, *a: cl.subscribe("$SYS/broker/#")
        c.on_message = lambda cl, u, m: self.sys.__setitem__(m.topic, m.payload.decode())
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        self._watch = c

    def dropped(self) -> int:
        """Messages the broker dropped so far ($SYS counter; log lines counted too)."""
        n = int(self.sys.get("$SYS/broker/publish/messages/dropped", "0") or 0)
        with contextlib.suppress(OSError):
            n = max(n, len(re.findall(r"dropp", self.log.read_text(errors="replace"))))
        return n

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.disconnect()
            self._watch.loop_stop()
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None


@contextlib.contextmanager
def broker(workdir: Path, *, max_inflight: int = 1000) -> Iterator[Broker]:
    b = Broker(workdir, max_inflight=max_inflight)
    b.start()
    try:
        yield b
    finally:
        b.stop()


# -- the gateway process ----------------------------------------------------------------

@dataclass
class Gateway:
    config: Path
    data_dir: Path
    log: Path
    api_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    startup_s: float = 0.0
    startup_cpu_s: float = 0.0  # CPU the process used to get there: steadier on a busy machine

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def make_token(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "gateway", "token", "add", "bench", "--role", "admin",
             "--data-dir", str(self.data_dir)], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(GATEWAY_SRC)}, cwd=GATEWAY_SRC)
        self.token = out.stdout.strip().splitlines()[-1]

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait for /healthz with MQTT connected; returns seconds to ready."""
        env = {**os.environ, "PYTHONPATH": str(GATEWAY_SRC)}
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config),
                 "--data-dir", str(self.data_dir), "--api-port", str(self.api_port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=GATEWAY_SRC)
        with httpx.Client(timeout=1) as http:
            while time.monotonic() - started < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited with {self.proc.returncode}: "
                                       f"{self.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    r = http.get(f"{self.url}/healthz")
                    if r.status_code == 200 and r.json()["mqtt_connected"]:
                        self.startup_s = time.monotonic() - started
                        self.startup_cpu_s = cpu_s(self.proc.pid)
                        return self.startup_s
                time.sleep(0.01)
        raise TimeoutError(f"gateway not ready: {self.log.read_text()[-3000:]}")

    def metrics(self) -> dict[str, float]:
        r = httpx.get(f"{self.url}/metrics", headers={"Authorization": f"Bearer {self.token}"},
                      timeout=10)
        r.raise_for_status()
        out: dict[str, float] = {}
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out

    def points_written(self) -> int:
        return int(self.metrics().get("gateway_store_points_written_total", 0))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


def _status_kb(pid: int, field_name: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name):
                return float(line.split()[1])
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident set size now (VmRSS), MiB."""
    return _status_kb(pid, "VmRSS:") / 1024


def peak_rss_mb(pid: int) -> float:
    """Highest resident set size so far (VmHWM), MiB."""
    return _status_kb(pid, "VmHWM:") / 1024


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children: none here)."""
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    return 0.0


def disk_written(pid: int) -> int:
    """Bytes the process has caused to be written to storage (``write_bytes``: what reaches
    the disk, or would on an SD card: the WAL, checkpoints, temporary files)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of a process split into its main thread (the event loop) and the rest.

    Python 3.11 does not name OS threads, so the split is by thread id: the main thread's
    id is the process id.
    """
    out = {"main": 0.0, "other_threads": 0.0}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                stat = (task / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                used = (int(fields[11]) + int(fields[12])) / _TICK
                out["main" if int(task.name) == pid else "other_threads"] += used
    return out


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (all cores) since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    guest = sum(parts[8:10]) if len(parts) > 9 else 0  # already counted in user/nice
    return (sum(parts) - idle - guest) / _TICK


# -- load generators --------------------------------------------------------------------

@dataclass
class LoadResult:
    rate_asked: float
    sent: int
    points: int
    paced_s: float  # until the last message was handed to the client
    publish_s: float  # until the last PUBACK
    finished_at: float  # wall clock, when the last message was handed to the broker (PUBACKed)
    cpu_s: float

    @property
    def achieved(self) -> float:
        return self.sent / self.paced_s if self.paced_s else 0.0


def run_load(port: int, device_list: list[dict[str, Any]], *, rate: float, duration: float,
             processes: int, workdir: Path, client: str = "paho",
             watch: Sequence[int] = ()) -> tuple[list[LoadResult], dict[int, float]]:
    """Publish ``rate`` msg/s for ``duration`` s from ``processes`` publisher processes.

    Returns each process's result and the CPU seconds each pid in ``watch`` used meanwhile.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    devfile = workdir / "devices.json"
    devfile.write_text(json.dumps(device_list))
    start_at = time.time() + 0.8 + 0.2 * processes
    procs = []
    for i in range(processes):
        out = workdir / f"load-{i}.json"
        out.unlink(missing_ok=True)
        procs.append((out, subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--devices",
             str(devfile), "--rate", str(rate / processes), "--duration", str(duration),
             "--index", str(i), "--of", str(processes), "--start-at", str(start_at),
             "--out", str(out), "--client", client], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})))
    while time.time() < start_at:
        time.sleep(0.01)
    before = {pid: cpu_s(pid) for pid in watch}
    results = []
    for out, p in procs:
        if p.wait(duration + 120) != 0:
            raise RuntimeError(f"load generator failed with {p.returncode}")
        d = json.loads(out.read_text())
        results.append(LoadResult(**d))
    used = {pid: cpu_s(pid) - before[pid] for pid in watch}
    return results, used


# -- results ----------------------------------------------------------------------------

def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(h) for h in header]] + [[f"{c:,.1f}" if isinstance(c, float) else
                                           f"{c:,}" if isinstance(c, int) and not
                                           isinstance(c, bool) else str(c) for c in r]
                                          for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save(name: str, data: dict[str, Any], out_dir: Path | None = None) -> Path:
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    data = {"benchmark": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


class LineCounter(threading.Thread):
    """Counts newline-terminated records on a pipe (mosquitto_sub's output)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.count = 0

    def run(self) -> None:
        while chunk := self.stream.read1(1 << 16):
            self.count += chunk.count(b"\n")
