"""The vocabulary: complete per kind, labelled in both languages, and documented as generated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.types import DeviceKind
from gateway.vocabdoc import render_markdown
from gateway.vocabulary import (
    EVENTS,
    KIND_LABELS,
    LABELS,
    METRICS,
    CardClass,
    DenyReason,
    PassType,
    RefuseReason,
)

REPO = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")

# names that rules, tests, register maps and the demo already use: they must keep working
KEPT = {
    DeviceKind.ACCESS_GATE: {"door_state", "lock_state", "door_open_s", "access.denied",
                             "access.granted", "door.forced_open", "door.open_too_long"},
    DeviceKind.ELEVATOR: {"floor", "mode", "car_speed_mps", "elevator.entrapment"},
    DeviceKind.WATER_TANK: {"level_pct", "level_m", "pump_running", "pump.fault"},
    DeviceKind.PARKING_BARRIER: {"open_s", "barrier_state", "barrier.open_too_long",
                                 "vehicle.entry", "vehicle.exit"},
    DeviceKind.GENERIC: {"co_ppm", "medical.button"},
}

# the issue's list, per kind (metrics and events)
REQUIRED = {
    DeviceKind.ACCESS_GATE: {"access.granted", "access.denied", "door.forced_open",
                             "door.open_too_long_pre", "door.open_too_long", "device.tamper",
                             "door.lock_fault", "door_state", "door.remote_open",
                             "device.offline"},
    DeviceKind.ELEVATOR: {"mode", "floor", "direction", "door_state", "car_speed_mps",
                          "elevator.entrapment", "elevator.entrapment_suspected",
                          "elevator.stop_outside_door_zone", "elevator.overrun_top",
                          "elevator.overrun_bottom", "elevator.door_open_while_running",
                          "elevator.overspeed", "elevator.alarm_bell", "elevator.power_failure",
                          "elevator.door_cycling", "elevator.door_open_failure",
                          "elevator.unintended_movement", "elevator.safety_circuit_open"},
    DeviceKind.WATER_TANK: {"level_pct", "level_m", "inlet_pressure_mpa", "outlet_pressure_mpa",
                            "pump_running", "pump_fault", "vfd_frequency_hz", "turbidity_ntu",
                            "free_chlorine_mgl", "ph", "pump_room.flooding",
                            "pump_room.intrusion"},
    DeviceKind.PARKING_BARRIER: {"vehicle.entry", "vehicle.exit", "vehicle.entry_refused",
                                 "barrier_state", "barrier.open_too_long", "barrier.anti_smash",
                                 "barrier.loop_fault", "lane.blocked", "zone_occupancy",
                                 "zone_capacity", "vehicle.in_fire_lane"},
    DeviceKind.GENERIC: {"medical.button", "leak.detected", "sump_pump.fault",
                         "perimeter.alarm", "fire_panel.trouble", "power_ok",
                         "generator_running", "co_ppm"},
}


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_vocabulary_keeps_existing_names_and_covers_the_issue(kind: DeviceKind) -> None:
    names = set(METRICS[kind]) | set(EVENTS[kind])
    assert KEPT[kind] <= names
    assert REQUIRED[kind] <= names, REQUIRED[kind] - names


def test_attribute_value_vocabularies() -> None:
    assert {c.value for c in CardClass} >= {"owner", "tenant", "visitor", "temporary_parking"}
    assert {r.value for r in DenyReason} == {"unknown_card", "expired", "wrong_card_class",
                                             "arrears_blocked"}
    assert {p.value for p in PassType} == {"monthly", "temporary", "private_space"}
    assert {r.value for r in RefuseReason} == {"pass_expired", "no_space"}
    denied = EVENTS[DeviceKind.ACCESS_GATE]["access.denied"]
    assert denied.attributes == ("card", "card_class", "reason")
    reason = {a.name: a for a in denied.attribute_specs}["reason"]
    assert [c.value for c in reason.choices] == [r.value for r in DenyReason]
    refused = EVENTS[DeviceKind.PARKING_BARRIER]["vehicle.entry_refused"]
    assert [c.value for c in refused.attribute_specs[2].choices] == ["pass_expired", "no_space"]


def test_every_label_is_bilingual() -> None:
    labels: list[tuple[str, str, str]] = []
    for kind in DeviceKind:
        labels.append((kind.value, *KIND_LABELS[kind]))
        labels += [(m.name, m.zh, m.en) for m in METRICS[kind].values()]
        labels += [(c.value, c.zh, c.en) for m in METRICS[kind].values() for c in m.choices]
        for e in EVENTS[kind].values():
            labels.append((e.name, e.zh, e.en))
            labels += [(a.name, a.zh, a.en) for a in e.attribute_specs]
            labels += [(c.value, c.zh, c.en) for a in e.attribute_specs for c in a.choices]
    for enum, table in LABELS.items():
        assert set(table) == {m.value for m in enum}, enum
    for name, zh, en in labels:
        assert CJK.search(zh), f"{name}: Chinese label missing ({zh!r})"
        assert en and not CJK.search(en), f"{name}: English label ({en!r})"


def test_state_metrics_list_their_states_from_the_enums() -> None:
    for kind in DeviceKind:
        for m in METRICS[kind].values():
            assert (m.kind == "str") == bool(m.states), m.name
            assert m.states == tuple(c.value for c in m.choices), m.name


def test_docs_vocabulary_md_is_the_generator_output() -> None:
    committed = (REPO / "docs/vocabulary.md").read_text(encoding="utf-8")
    assert committed == render_markdown(), (
        "docs/vocabulary.md is stale: run `estate-gateway vocabulary --markdown > "
        "docs/vocabulary.md`")
    for kind in DeviceKind:
        for name in [*METRICS[kind], *EVENTS[kind]]:
            assert f"`{name}`" in committed


def test_cli_prints_the_same_markdown() -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "vocabulary", "--markdown"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout == render_markdown()
