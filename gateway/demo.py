"""``estate-gateway demo``: an embedded broker, a simulated estate and the gateway, in one process.

Nothing but the package is needed. The demo creates a one-off admin account with a random
password (printed once: there are no default passwords, even here), simulates devices of
all four kinds with scripted faults, and prints every alarm the gateway raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
import time
from importlib import resources
from pathlib import Path

import orjson

from drivers.simulators.mqtt_devices import make_simulator
from drivers.simulators.publisher import SimPublisher
from gateway.config import parse_config
from gateway.journal import ALARM_TYPE
from gateway.yamlsource import load_with_lines

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

# (seconds after start, device id, fault): one alarm of each kind within the first minute
SCRIPT = [
    (8.0, "door-b3-roof", "forced_open"),
    (12.0, "tank-b1", "low_level"),
    (20.0, "lift-b3-2", "entrapment"),
    (28.0, "barrier-p1-in", "open_too_long"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_embedded_broker(port: int) -> object:
    from amqtt.broker import Broker

    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                    {"allow_anonymous": True}},
    })
    await broker.start()
    return broker


async def run_demo(*, data_dir: Path, api_port: int, duration_s: float | None,
                   speed: float = 1.0) -> int:
    from gateway.runtime import Runtime

    source = resources.files("gateway") / "data" / "demo.yaml"
    with resources.as_file(source) as path:
        data, smap = load_with_lines(Path(path))
    data["store"]["path"] = str(data_dir)
    broker_port = _free_port()
    data["broker"]["port"] = broker_port
    data["api"]["port"] = api_port
    cfg = parse_config(data, smap, "demo.yaml")

    broker = await start_embedded_broker(broker_port)
    runtime = Runtime(cfg)
    password = secrets.token_urlsafe(12)
    await asyncio.to_thread(runtime.auth.add_user, "demo-admin", "admin", password)
    sims = [make_simulator(s.device) for s in runtime.devices.values()]
    by_id = {s.device.id: s for s in sims}
    raised: dict[str, str] = {}
    run_task = asyncio.create_task(runtime.run(), name="gateway")
    try:
        ready = asyncio.create_task(runtime.ready.wait())
        await asyncio.wait({ready, run_task}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if run_task.done():
            run_task.result()  # raises what stopped the gateway
        if not ready.done():
            ready.cancel()
            raise TimeoutError("the gateway did not become ready within 15 s")
        for _ in range(100):
            if runtime.api_url() or not cfg.api.enabled:
                break
            await asyncio.sleep(0.05)
        print("\n=== 小区边缘网关演示 / Estate gateway demo ===")
        print(f"Console / 值班台:  {runtime.api_url()}/console/")
        print(f"API / 接口:        {runtime.api_url()}/docs")
        print(f"Login / 登录:      demo-admin  {password}   (this run only / 仅本次有效)")
        print(f"Broker / 消息代理: mqtt://127.0.0.1:{broker_port}  (embedded amqtt)")
        print(f"Data / 数据:       {data_dir.resolve()}")
        print(f"Devices / 设备:    {len(sims)} simulated, all four kinds; faults are scripted")
        print("Alarms appear below as they are raised / 报警将在下方显示 (Ctrl-C to stop)\n")
        pub = await asyncio.to_thread(SimPublisher, "127.0.0.1", broker_port,
                                      prefix=cfg.broker.topic_prefix, site=cfg.site.id,
                                      client_id="demo-simulator")
        rng = random.Random(7)
        script = list(SCRIPT)
        started = time.monotonic()
        cursor = runtime.state.last_seq
        while duration_s is None or time.monotonic() - started < duration_s:
            elapsed = (time.monotonic() - started) * speed
            while script and script[0][0] <= elapsed:
                _, dev, fault = script.pop(0)
                by_id[dev].inject(fault)
            await asyncio.to_thread(pub.publish_sim, sims, time.time(), rng)
            entries = await asyncio.to_thread(runtime.state.journal_sync, cursor, 100)
            for e in entries:
                cursor = e.seq
                if e.type == ALARM_TYPE and e.data["to"] == "active_unacknowledged":
                    a = e.data["alarm"]
                    kind = runtime.devices[a["device_id"]].device.kind.value
                    raised.setdefault(kind, a["alarm_id"])
                    print(f"  ALARM 报警  P{a['priority']}  {a['message']:<36} "
                          f"{a['device_id']:<16} {e.data['to']}", flush=True)
            await asyncio.sleep(1.0 / speed)
        pub.close()
    except asyncio.CancelledError:
        pass
    finally:
        run_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run_task
        with contextlib.suppress(Exception):
            await broker.shutdown()  # type: ignore[attr-defined]
        runtime.close()
    kinds = ["access_gate", "elevator", "water_tank", "parking_barrier"]
    summary = {k: raised.get(k) for k in kinds}
    print("\nDemo summary / 演示小结: " + orjson.dumps(summary).decode())
    return 0 if all(summary.values()) else 1
