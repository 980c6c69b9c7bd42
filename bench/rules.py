"""Rule evaluation cost per observation: 1,000 rules over 2,000 devices.

    python bench/rules.py [--observations 200000] [--out bench/results/rules.json]

The rules mix every condition type and select by kind and building the way an estate
writes them (each rule watches a kind in one of 20 buildings), plus the five shipped packs
applied to every device. Observations are readings and events drawn at random over all
devices. Reported: microseconds per observation (wall and CPU: on a shared machine the
CPU figure is the one to compare) through the engine alone and through the whole alarm
pipeline (engine, mutes, alarm book, dispatch), rule instances, timer ticks, and the kv
rows the runtime writes per batch of 100.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
import tracemalloc
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.types import Device, DeviceKind, Event, Location, Observation, Reading  # noqa: E402
from rules.config import RuleConfig  # noqa: E402
from rules.engine import RuleEngine  # noqa: E402
from rules.pipeline import AlarmPipeline  # noqa: E402

KINDS = [DeviceKind.WATER_TANK, DeviceKind.ELEVATOR, DeviceKind.ACCESS_GATE,
         DeviceKind.PARKING_BARRIER]
BUILDINGS = [f"B{i}" for i in range(1, 21)]
PACKS = Path(__file__).resolve().parents[1] / "rules" / "packs"


def devices(n: int) -> list[Device]:
    return [Device(f"dev-{i}", KINDS[i % 4], Location(BUILDINGS[(i // 4) % 20]), "mqtt",
                   "native", tags=("rooftop",) if i % 97 == 0 else ()) for i in range(n)]


def generated_rules(n: int, rng: random.Random) -> list[RuleConfig]:
    templates = {
        DeviceKind.WATER_TANK: [
            {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25, "for_s": 30},
            {"type": "threshold", "metric": "ph", "above": 8.5, "deadband": 0.1},
            {"type": "rate", "metric": "level_pct", "falling_per_min": 5, "window_s": 120},
            {"type": "any", "conditions": [
                {"type": "threshold", "metric": "turbidity_ntu", "above": 1},
                {"type": "threshold", "metric": "free_chlorine_mgl", "below": 0.05}]}],
        DeviceKind.ELEVATOR: [
            {"type": "event", "event": "elevator.entrapment", "auto_clear_s": 60},
            {"type": "state", "metric": "in_service", "in": [False], "for_s": 900},
            {"type": "threshold", "metric": "car_speed_mps", "above": 2.5}],
        DeviceKind.ACCESS_GATE: [
            {"type": "count", "event": "access.denied", "count": 5, "within_s": 120},
            {"type": "state", "metric": "door_state", "in": ["open", "held_open"],
             "for_s": 60},
            {"type": "event", "event": "door.forced_open", "auto_clear_s": 60}],
        DeviceKind.PARKING_BARRIER: [
            {"type": "state", "metric": "barrier_state", "in": ["open"], "for_s": 300},
            {"type": "threshold", "metric": "zone_occupancy", "above": 95, "for_s": 60},
            {"type": "event", "event": "barrier.anti_smash", "auto_clear_s": 300}],
    }
    out = []
    for i in range(n):
        kind = KINDS[i % 4]
        when = rng.choice(templates[kind])
        extra = {"during": [{"start": "22:00", "end": "06:00"}]} if i % 10 == 0 else {}
        out.append(RuleConfig.model_validate({
            "id": f"gen-{i}", "select": {"kind": kind.value, "building": rng.choice(BUILDINGS)},
            "when": when, "priority": rng.choice(["high", "medium", "low"]), **extra}))
    return out


def pack_rules() -> list[RuleConfig]:
    out = []
    for f in sorted(PACKS.glob("*.yaml")):
        out += [RuleConfig.model_validate(r) for r in yaml.safe_load(f.read_text())["rules"]]
    return out


def observations(devs: list[Device], n: int, rng: random.Random, t0: float
                 ) -> list[tuple[float, Observation]]:
    out: list[tuple[float, Observation]] = []
    for i in range(n):
        d = rng.choice(devs)
        t = t0 + i * 0.005
        if d.kind == DeviceKind.WATER_TANK:
            m, v = rng.choice([("level_pct", rng.uniform(10, 95)), ("ph", rng.uniform(6.8, 8.6)),
                               ("turbidity_ntu", rng.uniform(0, 1.1))])
            out.append((t, Reading(d.id, m, v, t)))
        elif d.kind == DeviceKind.ELEVATOR:
            if rng.random() < 0.01:
                out.append((t, Event(d.id, "elevator.entrapment", t, f"e{i}")))
            else:
                out.append((t, Reading(d.id, "car_speed_mps", rng.uniform(0, 2.6), t)))
        elif d.kind == DeviceKind.ACCESS_GATE:
            if rng.random() < 0.5:
                out.append((t, Event(d.id, rng.choice(["access.granted", "access.denied"]), t,
                                     f"e{i}", {"card": "c1"})))
            else:
                out.append((t, Reading(d.id, "door_state", rng.choice(["open", "closed"]), t)))
        else:
            out.append((t, Reading(d.id, "barrier_state", rng.choice(["open", "closed"]), t)))
    return out


def run(n_rules: int, n_devices: int, n_obs: int, batch: int) -> dict[str, object]:
    rng = random.Random(5)
    devs = devices(n_devices)
    rules = generated_rules(n_rules - len(pack_rules()), rng) + pack_rules()
    t0 = 1_767_225_600.0
    obs = observations(devs, n_obs, rng, t0)

    tracemalloc.start()
    started = time.perf_counter()
    eng = RuleEngine(rules, devs, timezone="Asia/Shanghai")
    build_s = time.perf_counter() - started
    eng.start(t0)
    instances = (sum(len(v) for v in eng._by_metric.values())  # noqa: SLF001
                 + sum(len(v) for v in eng._by_event.values())  # noqa: SLF001
                 + sum(len(v) for v in eng._by_device.values()))  # noqa: SLF001
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    started = time.perf_counter()
    cpu = time.process_time()
    decisions = 0
    for i in range(0, len(obs), batch):
        chunk = obs[i:i + batch]
        decisions += len(eng.evaluate([o for _, o in chunk], chunk[-1][0]))
    engine_s = time.perf_counter() - started
    engine_cpu = time.process_time() - cpu
    evaluations = eng.evaluations

    started = time.perf_counter()
    ticks = 0
    for k in range(1, 241):  # four minutes of 1 s ticks after the load
        eng.tick(obs[-1][0] + k)
        ticks += 1
    tick_s = time.perf_counter() - started

    p = AlarmPipeline(rules, devs, timezone="Asia/Shanghai")
    p.engine.start(t0)
    started = time.perf_counter()
    cpu = time.process_time()
    changes = 0
    for i in range(0, len(obs), batch):
        chunk = obs[i:i + batch]
        out = p.observe([o for _, o in chunk], chunk[-1][0])
        changes += len(out.changes)
        if (i // batch) % 20 == 0:
            p.tick(chunk[-1][0])
    pipeline_s = time.perf_counter() - started
    pipeline_cpu = time.process_time() - cpu
    rows = 0
    for i in range(0, len(obs), batch):  # what the runtime writes per batch, after warm-up
        chunk = obs[i:i + batch]
        p.observe([o for _, o in chunk], chunk[-1][0] + 3600)
        rows += len(p.persist(meta_key="m", instance_prefix="i:"))
    snap_started = time.perf_counter()
    snap = json.dumps(p.snapshot())
    snapshot_s = time.perf_counter() - snap_started

    return {
        "rules": len(rules), "devices": n_devices, "observations": n_obs, "batch": batch,
        "instances_indexed": instances, "build_engine_s": round(build_s, 3),
        "engine_build_peak_mib": round(peak / 2**20, 1),
        "engine_us_per_observation": round(engine_s / n_obs * 1e6, 2),
        "engine_cpu_us_per_observation": round(engine_cpu / n_obs * 1e6, 2),
        "engine_evaluations_per_observation": round(evaluations / n_obs, 2),
        "engine_us_per_rule_evaluation": round(engine_s / max(evaluations, 1) * 1e6, 2),
        "decisions": decisions,
        "tick_ms_mean": round(tick_s / ticks * 1e3, 3),
        "pipeline_us_per_observation": round(pipeline_s / n_obs * 1e6, 2),
        "pipeline_cpu_us_per_observation": round(pipeline_cpu / n_obs * 1e6, 2),
        "persisted_rows_per_batch": round(rows / (len(obs) / batch), 1),
        "pipeline_alarm_changes": changes,
        "alarms": len(p.book.alarms),
        "full_snapshot_kib": round(len(snap) / 1024, 1),
        "full_snapshot_ms": round(snapshot_s * 1e3, 1),
        "load_average_1min": round(__import__("os").getloadavg()[0], 1),
        "python": platform.python_version(), "machine": platform.machine(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--observations", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rules.json"))
    a = ap.parse_args()
    result = run(a.rules, a.devices, a.observations, a.batch)
    for k, v in result.items():
        print(f"{k:38} {v}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
