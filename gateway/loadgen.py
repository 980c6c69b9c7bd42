"""``estate-gateway simulate``: drive a real broker with an estate of simulated devices.

The estate is a fixed function of ``--devices`` (the same N gives the same ids, kinds,
buildings and payload profiles), so ``--write-config FILE`` writes the gateway config that
matches a later run. Devices cycle through every shipped profile of their kind, so a load
test exercises the vendor codecs too. Messages are paced to ``--rate`` per second in total.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import yaml

from drivers.mqtt.codec import topic_for
from drivers.profiles import builtin_profiles
from drivers.simulators.mqtt_devices import Simulator, make_simulator
from drivers.simulators.publisher import SimPublisher
from gateway.types import Device, DeviceKind, Location

__all__ = ["plan_estate", "run_simulation", "write_estate_config"]

# how an estate's devices split between kinds (per 20 devices)
MIX = ([DeviceKind.ACCESS_GATE] * 7 + [DeviceKind.ELEVATOR] * 5 + [DeviceKind.WATER_TANK] * 2
       + [DeviceKind.PARKING_BARRIER] * 3 + [DeviceKind.GENERIC] * 3)
SHORT = {DeviceKind.ACCESS_GATE: "gate", DeviceKind.ELEVATOR: "lift",
         DeviceKind.WATER_TANK: "tank", DeviceKind.PARKING_BARRIER: "barrier",
         DeviceKind.GENERIC: "sensor"}
TICK_S = 0.1


def plan_estate(n: int) -> list[Device]:
    """``n`` devices of all kinds over 20 buildings, cycling through each kind's profiles."""
    by_kind: dict[DeviceKind, list[str]] = {}
    for key, profile in sorted(builtin_profiles().items()):
        by_kind.setdefault(profile.kind, []).append(key.split(".", 1)[1])
    counts: Counter[DeviceKind] = Counter()
    out: list[Device] = []
    for i in range(n):
        kind = MIX[i % len(MIX)]
        k = counts[kind]
        counts[kind] += 1
        profiles = by_kind[kind]
        zone = ("entrance", "exit")[k % 2] if kind == DeviceKind.PARKING_BARRIER else None
        building = f"B{i % 20 + 1:02d}"
        out.append(Device(id=f"{SHORT[kind]}-{i:04d}", kind=kind,
                          location=Location(building, None, zone), transport="mqtt",
                          profile=profiles[k % len(profiles)]))
    return out


def write_estate_config(path: Path, *, host: str, port: int, site: str, prefix: str,
                        devices: list[Device]) -> None:
    def dev(d: Device) -> dict[str, Any]:
        loc: dict[str, Any] = {"building": d.location.building}
        if d.location.zone:
            loc["zone"] = d.location.zone
        return {"id": d.id, "kind": d.kind.value, "location": loc, "profile": d.profile}

    cfg = {
        "site": {"id": site, "name": f"load test ({len(devices)} simulated devices)"},
        "broker": {"host": host, "port": port, "topic_prefix": prefix,
                   "client_id": f"estate-gateway-{site}"},
        "devices": [dev(d) for d in devices],
        "rules": [
            {"id": "tank-level-low", "select": {"kind": "water_tank"}, "priority": "high",
             "when": {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25,
                      "for_s": 60}},
            {"id": "elevator-entrapment", "select": {"kind": "elevator"}, "priority": "emergency",
             "latch": True, "when": {"type": "event", "event": "elevator.entrapment"}},
            {"id": "door-forced-open", "select": {"kind": "access_gate"}, "latch": True,
             "priority": "emergency", "when": {"type": "event", "event": "door.forced_open"}},
        ],
    }
    path.write_text("# written by `estate-gateway simulate --write-config`\n"
                    + yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")


def run_simulation(*, host: str, port: int, site: str, prefix: str, devices: int,
                   rate: float, seconds: float | None, config_out: str | None) -> int:
    """Publish about ``rate`` messages a second for ``seconds``; 0 on success, 2 on bad usage."""
    if devices < 1 or rate <= 0:
        print("error / 错误: --devices and --rate must be positive / 设备数和速率必须为正数")
        return 2
    estate = plan_estate(devices)
    if config_out:
        write_estate_config(Path(config_out), host=host, port=port, site=site, prefix=prefix,
                            devices=estate)
        print(f"wrote {config_out}: {devices} devices / 已写入配置 ({devices} 台设备)")
        return 0
    sims: list[Simulator] = [make_simulator(d) for d in estate]
    try:
        pub = SimPublisher(host, port, prefix=prefix, site=site,
                           client_id=f"estate-simulator-{site}")
    except (OSError, ConnectionError) as exc:
        print(f"error / 错误: cannot reach the broker at {host}:{port}: {exc} / 无法连接消息代理")
        return 1
    rng = random.Random(1)
    by_channel: Counter[str] = Counter()
    started = time.monotonic()
    next_tick = started
    cursor = 0
    print(f"simulating {devices} devices at {rate:g} msg/s on {host}:{port} "
          f"(site {site}) / 正在模拟 {devices} 台设备")
    try:
        while seconds is None or time.monotonic() - started < seconds:
            budget = rate * TICK_S
            while budget > 0:
                sim = sims[cursor % len(sims)]
                cursor += 1
                for msg in sim.step(time.time(), rng):
                    pub.publish(topic_for(prefix, site, sim.device, msg.channel),
                                orjson.dumps(msg.body))
                    by_channel[msg.channel] += 1
                    budget -= 1
            next_tick += TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        try:
            pub.flush()
        except TimeoutError:
            print("warning / 警告: not every message was acknowledged by the broker")
        pub.close()
    elapsed = time.monotonic() - started
    sent = sum(by_channel.values())
    print(f"sent {sent} messages in {elapsed:.1f} s ({sent / elapsed:.0f}/s): "
          f"{by_channel['telemetry']} telemetry, {by_channel['event']} events "
          f"/ 共发送 {sent} 条消息")
    return 0
