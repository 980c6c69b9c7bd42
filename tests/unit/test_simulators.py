"""Simulators: every vocabulary event on demand in every profile, realistic behaviour over
time (driven by passing the time in, never by sleeping), and the demo's scenarios."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest

from drivers.mqtt.codec import MqttCodec, topic_for
from drivers.profiles import builtin_profiles
from drivers.simulators.base import SimMessage, Simulator
from drivers.simulators.mqtt_devices import SIMULATORS, make_simulator
from gateway.types import Device, DeviceKind, Event, Location, Reading
from gateway.vocabulary import EVENTS, METRICS, DenyReason

PROFILES = builtin_profiles()
MIDNIGHT = 1_767_225_600.0 - 8 * 3600  # 2026-01-01 00:00 Beijing time


def _device(kind: DeviceKind, profile: str = "native", zone: str | None = None) -> Device:
    return Device(f"sim-{kind.value}-{profile}", kind, Location("B3", "2", zone), "mqtt",
                  profile)


def _run(sim: Simulator, start: float, seconds: float, step: float = 1.0,
         seed: int = 1) -> Iterator[tuple[float, SimMessage]]:
    rng = random.Random(seed)
    t = start
    while t < start + seconds:
        for msg in sim.step_native(t, rng):
            yield t, msg
        t += step


@pytest.mark.parametrize("key", sorted(PROFILES))
def test_every_event_can_be_injected_and_decodes_in_the_devices_profile(key: str) -> None:
    profile = PROFILES[key]
    device = _device(profile.kind, key)
    codec = MqttCodec(prefix="estate", site="s1", devices=[device], profiles=PROFILES,
                      max_payload_bytes=65_536)
    sim = make_simulator(device)
    rng = random.Random(5)
    seen: Counter[str] = Counter()
    readings: set[str] = set()
    now = MIDNIGHT + 3 * 3600  # a quiet hour: only what is injected happens
    for name in EVENTS[profile.kind]:
        sim.inject(name)
        now += 1.0
        for msg in sim.step(now, rng):
            out = codec.decode(topic_for("estate", "s1", device, msg.channel),
                               orjson.dumps(msg.body), now)
            assert out.rejections == [], (name, msg.body)
            for obs in out.observations:
                if isinstance(obs, Event):
                    seen[obs.kind] += 1
                    spec = EVENTS[profile.kind][obs.kind]
                    for a in spec.attribute_specs:  # closed values stay in the vocabulary
                        if a.choices and a.name in obs.attributes:
                            assert obs.attributes[a.name] in {c.value for c in a.choices}
                elif isinstance(obs, Reading):
                    readings.add(obs.metric)
        assert seen[name] >= 1, f"inject({name!r}) produced no {name} event"
    assert readings == set(METRICS[profile.kind])  # telemetry covers every metric
    assert sim.unencodable == 0


def test_inject_refuses_an_unknown_name_and_ignores_another_kinds() -> None:
    sim = make_simulator(_device(DeviceKind.ELEVATOR))
    with pytest.raises(ValueError, match="cannot inject 'elevator.trapped'"):
        sim.inject("elevator.trapped")
    sim.inject("low_level")  # a tank's scenario, sprayed over the estate: not this car's
    sim.inject("door.forced_open")
    assert sim.ignored == 2
    out = sim.step_native(MIDNIGHT, random.Random(1))
    assert [m.channel for m in out] == ["telemetry"]


def test_a_simulator_is_deterministic_for_a_seed() -> None:
    def run() -> list[dict]:
        sim = make_simulator(_device(DeviceKind.ACCESS_GATE))
        return [m.body for _, m in _run(sim, MIDNIGHT + 8 * 3600, 600, seed=9)]
    assert run() == run()


def test_tank_fills_and_drains_with_its_pump_and_valve() -> None:
    sim = make_simulator(_device(DeviceKind.WATER_TANK))
    levels = [(t, m.body) for t, m in _run(sim, MIDNIGHT, 24 * 3600, step=10)
              if m.channel == "telemetry"]
    pct = [b["level_pct"] for _, b in levels]
    assert 50 < min(pct) and max(pct) < 99  # the valve keeps it between its set points
    rises = sum(1 for a, b in zip(pct, pct[1:], strict=False) if b > a)
    falls = sum(1 for a, b in zip(pct, pct[1:], strict=False) if b < a)
    assert rises > 100 and falls > 100  # it fills and drains, many times a day
    # the booster runs harder at the morning peak than at 3 a.m.
    freq = {int((t - MIDNIGHT) // 3600): b["vfd_frequency_hz"] for t, b in levels}
    assert freq[7] > freq[3] > 0
    assert all(b["level_m"] == pytest.approx(b["level_pct"] * 0.03, abs=0.001)
               for _, b in levels)


def test_tank_low_level_scenario_drains_then_protects_the_pump() -> None:
    sim = make_simulator(_device(DeviceKind.WATER_TANK))
    sim.inject("low_level")
    msgs = list(_run(sim, MIDNIGHT + 12 * 3600, 60))
    tele = [(t, m.body) for t, m in msgs if m.channel == "telemetry"]
    below = next(t for t, b in tele if b["level_pct"] < 20)
    assert below - tele[0][0] <= 15  # a demo shows it within seconds
    events = [m.body["event"] for _, m in msgs if m.channel == "event"]
    assert events == ["level.low_low"]
    assert tele[-1][1]["pump_running"] is False  # dry-run protection
    # the inlet comes back after ten minutes and the tank refills
    later = [m.body for _, m in _run(sim, MIDNIGHT + 12 * 3600 + 700, 600, step=10)
             if m.channel == "telemetry"]
    assert later[-1]["level_pct"] > later[0]["level_pct"]
    assert later[-1]["pump_running"] is True


def test_elevator_moves_between_floors_with_doors_only_open_when_stopped() -> None:
    sim = make_simulator(_device(DeviceKind.ELEVATOR))
    tele = [m.body for _, m in _run(sim, MIDNIGHT + 8 * 3600, 3600, step=0.5)
            if m.channel == "telemetry"]
    floors = {b["floor"] for b in tele}
    assert len(floors) >= 6 and 0 not in floors
    assert all(b["car_speed_mps"] == 0 for b in tele if b["door_state"] != "closed")
    assert all(b["direction"] != "idle" for b in tele if b["car_speed_mps"] > 0)
    moving = [b for b in tele if b["car_speed_mps"] > 0]
    assert 0.1 < len(moving) / len(tele) < 0.9
    # a floor changes by at most one per half second at 1.75 m/s and 3 m a floor
    steps = [abs(a["floor"] - b["floor"]) for a, b in zip(tele, tele[1:], strict=False)
             if a["floor"] * b["floor"] > 0]
    assert max(steps) <= 1


def test_elevator_entrapment_stops_the_car_between_floors_until_released() -> None:
    sim = make_simulator(_device(DeviceKind.ELEVATOR))
    rng = random.Random(2)
    sim.inject("entrapment")
    first = sim.step_native(MIDNIGHT + 9 * 3600, rng)
    assert [m.body["event"] for m in first if m.channel == "event"] == ["elevator.entrapment"]
    for i in range(1, 120):
        (tele,) = [m.body for m in sim.step_native(MIDNIGHT + 9 * 3600 + i, rng)]
        assert (tele["car_speed_mps"], tele["door_state"], tele["in_service"],
                tele["occupied"]) == (0.0, "closed", False, True)
    sim.inject("release")
    out = sim.step_native(MIDNIGHT + 9 * 3600 + 200, rng)
    assert [m.body["event"] for m in out if m.channel == "event"] == [
        "elevator.entrapment_released"]
    assert out[-1].body["in_service"] is True


def test_barrier_rush_hour_traffic_and_a_full_barrier_cycle() -> None:
    entry = make_simulator(_device(DeviceKind.PARKING_BARRIER, zone="entrance"))
    counts: Counter[tuple[str, int]] = Counter()
    states: list[str] = []
    for t, m in _run(entry, MIDNIGHT, 24 * 3600, step=1.0):
        if m.channel == "event":
            counts[(m.body["event"], int((t - MIDNIGHT) // 3600))] += 1
        else:
            states.append(m.body["barrier_state"])
            assert 0 <= m.body["zone_occupancy"] <= m.body["zone_capacity"]
    evening = sum(counts[("vehicle.entry", h)] for h in (17, 18, 19))
    midday = sum(counts[("vehicle.entry", h)] for h in (11, 12, 13))
    assert evening > 2 * midday > 0
    assert sum(counts[("vehicle.exit", h)] for h in range(24)) == 0  # an entrance-only lane
    order = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    cycle = ["closed", "opening", "open", "closing"]
    for a, b in zip(order, order[1:], strict=False):  # always in this order
        assert cycle.index(b) == (cycle.index(a) + 1) % 4


def test_access_gate_denied_share_and_reasons_over_a_day() -> None:
    sim = make_simulator(_device(DeviceKind.ACCESS_GATE))
    events = [m.body for _, m in _run(sim, MIDNIGHT, 24 * 3600, step=2.0)
              if m.channel == "event"]
    swipes = [e for e in events if e["event"] in ("access.granted", "access.denied")]
    denied = [e for e in swipes if e["event"] == "access.denied"]
    assert len(swipes) > 300
    assert 0.03 < len(denied) / len(swipes) < 0.15
    assert {e["attrs"]["reason"] for e in denied} <= {r.value for r in DenyReason}
    assert len({e["attrs"]["reason"] for e in denied}) >= 3


def test_access_gate_held_door_raises_pre_alarm_then_alarm() -> None:
    sim = make_simulator(_device(DeviceKind.ACCESS_GATE))
    sim.inject("held_open")
    msgs = list(_run(sim, MIDNIGHT + 3 * 3600, 120))
    events = [(t - MIDNIGHT - 3 * 3600, m.body["event"]) for t, m in msgs
              if m.channel == "event"]
    assert events == [(30.0, "door.open_too_long_pre"), (60.0, "door.open_too_long")]
    states = [m.body["door_state"] for _, m in msgs if m.channel == "telemetry"]
    assert states[0] == "open" and states[70] == "held_open" and states[-1] == "closed"


@pytest.mark.parametrize(("kind", "scenario", "expected"), [
    (DeviceKind.ACCESS_GATE, "forced_open", "door.forced_open"),
    (DeviceKind.ELEVATOR, "entrapment", "elevator.entrapment"),
    (DeviceKind.PARKING_BARRIER, "open_too_long", "barrier.open_too_long"),
    (DeviceKind.GENERIC, "medical", "medical.button"),
])
def test_demo_scenarios_still_work(kind: DeviceKind, scenario: str, expected: str) -> None:
    sim = make_simulator(_device(kind))
    sim.inject(scenario)
    out = sim.step_native(MIDNIGHT + 3 * 3600, random.Random(1))
    assert expected in [m.body["event"] for m in out if m.channel == "event"]
    if kind == DeviceKind.PARKING_BARRIER:
        assert out[-1].body["open_s"] > 300  # the demo's threshold rule fires on it too


def test_every_kind_has_a_simulator() -> None:
    assert set(SIMULATORS) == set(DeviceKind)
