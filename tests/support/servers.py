"""Real servers for integration tests: mosquitto and the gateway process, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Mosquitto:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            # as root, mosquitto would switch to the 'mosquitto' user and could not write
            # its persistence file in the test's directory: stay as the current user
            f"{'user root' + chr(10) if os.geteuid() == 0 else ''}"
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            "autosave_interval 1\nmax_queued_messages 2000000\nmax_queued_bytes 0\n"
            "max_inflight_messages 1000\nmessage_size_limit 0\n"
            f"log_dest file {self.workdir}/mosquitto.log\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None


@contextlib.contextmanager
def mosquitto(tmp: Path) -> Iterator[Mosquitto]:
    if shutil.which("mosquitto") is None:
        import pytest

        pytest.skip("Debian's mosquitto is not installed (apt-get install mosquitto)")
    broker = Mosquitto(free_port(), tmp)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class GatewayProcess:
    config: Path
    data_dir: Path
    api_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 20.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config),
                 "--data-dir", str(self.data_dir), "--api-port", str(self.api_port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: "
                                   f"{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/healthz", timeout=1)
                if r.status_code == 200 and r.json()["mqtt_connected"]:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"gateway not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def make_token(self, role: str = "admin") -> str:
        out = subprocess.run(
            [sys.executable, "-m", "gateway", "token", "add", f"test-{role}", "--role", role,
             "--data-dir", str(self.data_dir)], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
        return out.stdout.strip().splitlines()[-1]

    def get(self, path: str, token: str | None = None, **params: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.get(f"{self.url}{path}", headers=headers, params=params, timeout=10)

    def post(self, path: str, json: object = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.post(f"{self.url}{path}", headers=headers, json=json, timeout=10)


    def put(self, path: str, json: object = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.put(f"{self.url}{path}", headers=headers, json=json, timeout=10)


def write_config(path: Path, *, broker_port: int, data_dir: Path, devices: list[dict],
                 rules: list[dict], site: str = "test-site", extra: dict | None = None) -> Path:
    cfg = {"site": {"id": site}, "broker": {"host": "127.0.0.1", "port": broker_port,
                                           "client_id": f"gw-{site}"},
           "store": {"path": str(data_dir)}, "api": {"host": "127.0.0.1", "port": 0},
           "devices": devices, "rules": rules, **(extra or {})}
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


@contextlib.contextmanager
def gateway(tmp: Path, config: Path) -> Iterator[GatewayProcess]:
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    gw = GatewayProcess(config, data, free_port(), tmp / "gateway.log")
    gw.token = gw.make_token("admin")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def stored_points(db: Path) -> set[tuple[str, int]]:
    """(device id, device time in ms) of every reading in a telemetry database: the recent
    ``points_head`` and the compressed chunks. Raises if a reading is stored twice."""
    from gateway.store.sqlite import dump_points

    rows = [(device, metric, ts) for device, metric, ts, _, _ in dump_points(db)]
    if len(rows) != len(set(rows)):
        raise AssertionError(f"{len(rows) - len(set(rows))} readings stored twice")
    return {(device, ts) for device, _, ts in rows}
