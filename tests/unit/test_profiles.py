"""Vendor payload profiles through the real MQTT codec: every metric and event of every kind,
in every shipped profile, becomes the normalised Reading/Event; profile mistakes are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from drivers.mqtt.codec import MqttCodec, topic_for
from drivers.profiles import ProfileError, builtin_profiles, load_profile
from drivers.simulators.vendor import VendorEncoder
from gateway.types import Device, DeviceKind, Event, Location, Reading, Value
from gateway.vocabulary import EVENTS, METRICS

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z = 08:00 Beijing time
PROFILES = builtin_profiles()
VENDOR = sorted(k for k, p in PROFILES.items() if p.id != "native")
ALL = sorted(PROFILES)


def _device(key: str) -> Device:
    p = PROFILES[key]
    return Device(f"dev-{p.kind.value}-{p.id}", p.kind, Location("B1"), "mqtt", key)


@pytest.fixture(scope="module")
def codec() -> MqttCodec:
    return MqttCodec(prefix="estate", site="s1", devices=[_device(k) for k in ALL],
                     profiles=PROFILES, max_payload_bytes=65_536)


def _decode(codec: MqttCodec, key: str, channel: str, body: dict[str, Any] | bytes):
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    return codec.decode(topic_for("estate", "s1", _device(key), channel), payload, NOW + 1)


def test_each_kind_ships_a_flat_and_a_nested_vendor_profile() -> None:
    for kind in DeviceKind:
        vendor = [PROFILES[k] for k in VENDOR if PROFILES[k].kind == kind]
        assert any(not p.values_at for p in vendor), f"{kind}: no flat profile"
        assert any(p.values_at for p in vendor), f"{kind}: no nested profile"
        assert any(p.timestamp_unit == "ms" for p in vendor) or any(
            p.timestamp_unit == "iso" for p in vendor)
        assert all(p.events.codes or p.events.flags for p in vendor), "vendor codes are mapped"


@pytest.mark.parametrize("key", VENDOR)
def test_vendor_profile_covers_every_metric_and_event_of_its_kind(key: str) -> None:
    p = PROFILES[key]
    mapped = {fm.metric for maps in p.field_maps().values() for fm in maps}
    assert mapped == set(METRICS[p.kind])
    events = set((p.events.codes or {}).values()) | set((p.events.flags or {}).values())
    assert events == set(EVENTS[p.kind])


# ---------------------------------------------------------------------------------------
# The vendor formats as their devices send them (the comments at the top of each file)

TELEMETRY: list[tuple[str, dict[str, Any], dict[str, Value]]] = [
    ("access_gate.zhimen-flat",
     {"devTime": 1767225600000, "doorStatus": "HOLD", "lockStatus": 0, "openSec": 75,
      "battery": 96},
     {"door_state": "held_open", "lock_state": "unlocked", "door_open_s": 75.0,
      "battery_pct": 96.0}),
    ("access_gate.anshi-nested",
     {"header": {"msgId": "a1", "time": "2026-01-01T08:00:00+08:00"},
      "body": {"door": {"state": 3, "lock": 2, "openTime": 4}, "power": {"battery": 88}}},
     {"door_state": "forced_open", "lock_state": "fault", "door_open_s": 4.0,
      "battery_pct": 88.0}),
    ("elevator.tiyun-flat",
     {"ts": 1767225600000, "floor": -1, "dir": "DOWN", "door": "CLOSING", "mode": "INSPECT",
      "speed": 0.5, "load": 42.5, "service": 0, "person": 1},
     {"floor": -1, "direction": "down", "door_state": "closing", "mode": "inspection",
      "car_speed_mps": 0.5, "load_pct": 42.5, "in_service": False, "occupied": True}),
    ("elevator.lift-iot-nested",
     {"time": "2026-01-01T00:00:00.000Z", "sn": "LM-3321",
      "data": {"car": {"floor": 7, "direction": 1, "door": 0, "speedCms": 175,
                       "loadPermille": 425}, "status": {"mode": 2, "flags": 2}}},
     {"floor": 7, "direction": "up", "door_state": "closed", "car_speed_mps": 1.75,
      "load_pct": 42.5, "mode": "fire", "in_service": False, "occupied": True}),
    ("water_tank.shuiwu-flat",
     {"timestamp": 1767225600, "levelPercent": 72.5, "levelCm": 217, "pIn": 210, "pOut": 305,
      "pumpRun": 1, "pumpFault": 0, "freq": 42.5, "ntu": 0.3, "cl": 0.45, "ph": 7.2,
      "flood": 0, "doorOpen": 1},
     {"level_pct": 72.5, "level_m": 2.17, "inlet_pressure_mpa": 0.21,
      "outlet_pressure_mpa": 0.305, "pump_running": True, "pump_fault": False,
      "vfd_frequency_hz": 42.5, "turbidity_ntu": 0.3, "free_chlorine_mgl": 0.45, "ph": 7.2,
      "flooded": False, "door_open": True}),
    ("water_tank.pumproom-nested",
     {"time": "2026-01-01 08:00:00",
      "payload": {"tank": {"pct": 72.5, "m": 2.175}, "pressure": {"in": 2.1, "out": 3.05},
                  "pump": {"status": 2, "hz": 0}, "quality": {"turbidity": 0.3,
                                                              "chlorine": 0.45, "ph": 7.2},
                  "room": {"water": True, "door": False}}},
     {"level_pct": 72.5, "level_m": 2.175, "inlet_pressure_mpa": 0.21,
      "outlet_pressure_mpa": 0.305, "pump_running": False, "pump_fault": True,
      "vfd_frequency_hz": 0.0, "turbidity_ntu": 0.3, "free_chlorine_mgl": 0.45, "ph": 7.2,
      "flooded": True, "door_open": False}),
    ("parking_barrier.daozha-flat",
     {"time": "2026-01-01 08:00:00", "gate": "RISING", "upSec": 2, "used": 64, "total": 109,
      "loop": 1, "blocked": 0},
     {"barrier_state": "opening", "open_s": 2.0, "zone_occupancy": 64, "zone_capacity": 109,
      "loop_ok": True, "lane_blocked": False}),
    ("parking_barrier.parkcloud-nested",
     {"head": {"ts": 1767225600000, "sn": "PK-1"},
      "body": {"barrier": {"st": 2, "openMs": 12500}, "space": {"used": 109, "cap": 109},
               "loop": {"fault": 1}, "lane": {"blocked": 1}}},
     {"barrier_state": "open", "open_s": 12.5, "zone_occupancy": 109, "zone_capacity": 109,
      "loop_ok": False, "lane_blocked": True}),
    ("generic.sensor-flat",
     {"t": 1767225600, "value": 3.5, "co": 12, "fan": 0, "leak": 1, "mains": 1, "gen": 0,
      "sump": 1, "temp": 21.5},
     {"value": 3.5, "co_ppm": 12.0, "fan_running": False, "leak": True, "power_ok": True,
      "generator_running": False, "pump_running": True, "temperature_c": 21.5}),
    ("generic.alarmhost-nested",
     {"ts": "2026-01-01T00:00:00Z", "status": {"ac": 0, "gen": 1, "pump": 0, "leak": 0,
                                               "fan": 1, "co": 60, "temp10": 215,
                                               "value": 1}},
     {"power_ok": False, "generator_running": True, "pump_running": False, "leak": False,
      "fan_running": True, "co_ppm": 60.0, "temperature_c": 21.5, "value": 1.0}),
]


@pytest.mark.parametrize(("key", "body", "expected"), TELEMETRY, ids=[t[0] for t in TELEMETRY])
def test_vendor_telemetry_decodes_to_every_metric(codec: MqttCodec, key: str,
                                                  body: dict[str, Any],
                                                  expected: dict[str, Value]) -> None:
    out = _decode(codec, key, "telemetry", body)
    assert out.rejections == []
    got = {r.metric: r.value for r in out.observations if isinstance(r, Reading)}
    assert got == pytest.approx(expected)
    assert set(got) == set(METRICS[PROFILES[key].kind])  # the sample covers the whole kind
    kinds = {m: METRICS[PROFILES[key].kind][m].kind for m in got}
    for metric, value in got.items():  # typed as the vocabulary says
        assert type(value).__name__ == kinds[metric], metric
    assert {r.at for r in out.observations} == {NOW}
    units = {r.metric: r.unit for r in out.observations if isinstance(r, Reading)}
    assert all(units[m] == METRICS[PROFILES[key].kind][m].unit for m in units)


EVENT_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, dict[str, Value]]]]] = [
    ("access_gate.zhimen-flat",
     {"devTime": 1767225600000, "seq": 812, "eventType": "CARD_DENY", "cardNo": "0A1B2C3D",
      "cardType": 4, "denyReason": 3},
     [("access.denied", "812", {"card": "0A1B2C3D", "card_class": "temporary_parking",
                                "reason": "wrong_card_class"})]),
    ("access_gate.anshi-nested",
     {"header": {"msgId": "a2", "time": "2026-01-01T08:00:00+08:00"},
      "body": {"major": 5, "minor": 9, "card": {"no": "0A1B2C3D", "type": "TENANT"},
               "verify": {"failCode": 19}}},
     [("access.denied", "a2", {"card": "0A1B2C3D", "card_class": "tenant",
                               "reason": "arrears_blocked"})]),
    ("access_gate.anshi-nested",
     {"header": {"msgId": "a3", "time": "2026-01-01T08:00:00+08:00"},
      "body": {"major": "1", "minor": "1"}},
     [("door.forced_open", "a3", {})]),
    ("elevator.tiyun-flat",
     {"ts": 1767225600000, "eventId": "f-9", "faultCode": "E01", "floor": 7},
     [("elevator.entrapment", "f-9", {"floor": 7})]),
    ("elevator.lift-iot-nested",  # one fault word, two faults at once
     {"time": "2026-01-01T00:00:00.000Z", "sn": "LM-3321", "msgId": 4411,
      "alarm": {"word": 0b101, "floor": 7}},
     [("elevator.entrapment", "4411:elevator.entrapment", {"floor": 7}),
      ("elevator.stop_outside_door_zone", "4411:elevator.stop_outside_door_zone",
       {"floor": 7})]),
    ("water_tank.shuiwu-flat",
     {"timestamp": 1767225600, "alarmId": 55, "alarmCode": "PUMP_FAULT", "pump": "P2"},
     [("pump.fault", "55", {"pump": "P2"})]),
    ("water_tank.pumproom-nested",
     {"time": "2026-01-01 08:00:00", "alarm": {"id": "x1", "type": 10, "pump": 1}},
     [("pump.fault", "x1", {"pump": "P1"})]),
    ("parking_barrier.daozha-flat",
     {"time": "2026-01-01 08:00:00", "recordNo": 9912, "type": "IN", "plate": "沪A12345",
      "carType": "月租车"},
     [("vehicle.entry", "9912", {"plate": "沪A12345", "pass_type": "monthly"})]),
    ("parking_barrier.daozha-flat",
     {"time": "2026-01-01 08:00:00", "recordNo": 9913, "type": "REFUSE", "plate": "沪B54321",
      "carType": "临时车", "refuseReason": "满位"},
     [("vehicle.entry_refused", "9913", {"plate": "沪B54321", "pass_type": "temporary",
                                         "reason": "no_space"})]),
    ("parking_barrier.parkcloud-nested",
     {"head": {"ts": 1767225600000, "sn": "PK-1", "seq": 77},
      "body": {"evt": 3, "vehicle": {"plate": "沪A12345", "passType": 1},
               "refuse": {"code": 1}}},
     [("vehicle.entry_refused", "77", {"plate": "沪A12345", "pass_type": "monthly",
                                       "reason": "pass_expired"})]),
    ("generic.sensor-flat",
     {"t": 1767225600, "n": 3, "alarm": "MEDICAL", "room": "3-2-1201"},
     [("medical.button", "3", {"household": "3-2-1201"})]),
    ("generic.alarmhost-nested",
     {"ts": "2026-01-01T00:00:00Z", "report": {"seq": 8, "cid": 131, "zone": "Z12"}},
     [("perimeter.alarm", "8", {"zone": "Z12"})]),
]


@pytest.mark.parametrize(("key", "body", "expected"), EVENT_CASES,
                         ids=[f"{c[0]}-{c[2][0][0]}" for c in EVENT_CASES])
def test_vendor_event_decodes_with_mapped_codes(codec: MqttCodec, key: str, body: dict,
                                                expected: list) -> None:
    out = _decode(codec, key, "event", body)
    assert out.rejections == []
    dev = _device(key).id
    got = [(e.kind, e.event_id, dict(e.attributes)) for e in out.observations
           if isinstance(e, Event)]
    assert got == [(k, f"{dev}:{i}", a) for k, i, a in expected]
    assert {e.at for e in out.observations} == {NOW}


@pytest.mark.parametrize(("key", "body", "expected"), TELEMETRY, ids=[t[0] for t in TELEMETRY])
def test_encoder_writes_the_vendor_format_the_device_sends(key: str, body: dict,
                                                            expected: dict) -> None:
    """The simulators' encoder reproduces the documented vendor payload's values."""
    profile = PROFILES[key]
    encoded = VendorEncoder(profile).telemetry(NOW, expected)
    if profile.values_at:
        assert encoded[profile.values_at] == body[profile.values_at]
    else:
        ts = profile.timestamp_field
        assert {k: v for k, v in encoded.items() if k != ts} == {
            k: v for k, v in body.items() if k != ts}


# ---------------------------------------------------------------------------------------
# Every metric value and every event (with each attribute value) through every profile


def _metric_cases() -> list[tuple[str, str, Value]]:
    cases: list[tuple[str, str, Value]] = []
    for key in ALL:
        for name, spec in METRICS[PROFILES[key].kind].items():
            values: list[Value] = (list(spec.states) if spec.kind == "str" else
                                   [True, False] if spec.kind == "bool" else
                                   [3, -1] if spec.kind == "int" and (spec.low or 0) < 0 else
                                   [3] if spec.kind == "int" else [1.25, 0.0])
            cases += [(key, name, v) for v in values]
    return cases


@pytest.mark.parametrize(("key", "metric", "value"), _metric_cases())
def test_every_metric_value_through_every_profile(codec: MqttCodec, key: str, metric: str,
                                                  value: Value) -> None:
    body = VendorEncoder(PROFILES[key]).telemetry(NOW, {metric: value})
    out = _decode(codec, key, "telemetry", body)
    assert out.rejections == []
    got = {r.metric: (r.value, r.at) for r in out.observations if isinstance(r, Reading)}
    assert got[metric] == (value, NOW)
    assert type(got[metric][0]) is type(value)


def _event_cases() -> list[tuple[str, str, dict[str, Value]]]:
    cases = []
    for key in ALL:
        for name, spec in EVENTS[PROFILES[key].kind].items():
            widest = max([len(a.choices) for a in spec.attribute_specs] + [1])
            for i in range(widest):  # every value of every closed attribute at least once
                attrs: dict[str, Value] = {}
                for a in spec.attribute_specs:
                    attrs[a.name] = (a.choices[i % len(a.choices)].value if a.choices else
                                     7 if a.kind == "int" else 2.5 if a.kind == "float"
                                     else "X-1")
                cases.append((key, name, attrs))
    return cases


@pytest.mark.parametrize(("key", "event", "attrs"), _event_cases())
def test_every_event_through_every_profile(codec: MqttCodec, key: str, event: str,
                                           attrs: dict[str, Value]) -> None:
    body = VendorEncoder(PROFILES[key]).event(NOW, event, "e-1", attrs)
    assert body is not None
    out = _decode(codec, key, "event", body)
    assert out.rejections == []
    (e,) = out.observations
    assert isinstance(e, Event)
    assert (e.kind, dict(e.attributes), e.at, e.event_id) == (
        event, attrs, NOW, f"{_device(key).id}:e-1")


# ---------------------------------------------------------------------------------------
# What the codec refuses in vendor payloads

REJECT = [
    ("access_gate.zhimen-flat", "telemetry", {"devTime": 1767225600000, "doorStatus": "AJAR"},
     "out_of_range"),
    ("access_gate.zhimen-flat", "telemetry", {"devTime": 1767225600000, "rssi": -70},
     "unknown_metric"),
    ("elevator.lift-iot-nested", "telemetry",
     {"time": "2026-01-01T00:00:00Z", "data": {"status": {"flags": "on"}}}, "wrong_type"),
    ("elevator.lift-iot-nested", "event",
     {"time": "2026-01-01T00:00:00Z", "alarm": {"word": 0}}, "unknown_event"),
    ("elevator.tiyun-flat", "event", {"ts": 1767225600000, "faultCode": "E99"},
     "unknown_event"),
    ("access_gate.anshi-nested", "event",
     {"header": {"time": "2026-01-01T08:00:00+08:00"}, "body": {"major": 5}}, "unknown_event"),
    ("elevator.lift-iot-nested", "telemetry",
     {"time": "2026-01-01 00:00:00", "data": {"car": {"floor": 1}}}, "bad_timestamp"),
    ("water_tank.shuiwu-flat", "telemetry", {"timestamp": 1767225600, "pIn": "210"},
     "wrong_type"),
]


@pytest.mark.parametrize(("key", "channel", "body", "reason"), REJECT)
def test_codec_rejects_vendor_payload_with_reason(codec: MqttCodec, key: str, channel: str,
                                                  body: dict, reason: str) -> None:
    out = _decode(codec, key, channel, body)
    assert {r.reason for r in out.rejections} == {reason}
    assert out.observations == []


def test_flag_word_with_an_unmapped_bit_keeps_the_known_events(codec: MqttCodec) -> None:
    out = _decode(codec, "elevator.lift-iot-nested", "event",
                  {"time": "2026-01-01T00:00:00Z", "msgId": 1, "alarm": {"word": 1 | 1 << 30}})
    assert [e.kind for e in out.observations] == ["elevator.entrapment"]
    assert [r.reason for r in out.rejections] == ["unknown_event"]


# ---------------------------------------------------------------------------------------
# A new vendor is a new file


NEW_VENDOR = """
id: acme-tank
kind: water_tank
timestamp_field: meta.epochMs
timestamp_unit: ms
values_at: d
fields:
  lv: {metric: level_pct, scale: 0.1}
  pumps:
    - {metric: pump_running, bit: 3}
events:
  code_field: d.code
  codes: {A7: pump_room.flooding}
"""


def test_a_new_vendor_is_a_new_profile_file_and_no_code(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(NEW_VENDOR)
    profiles = builtin_profiles([tmp_path])
    dev = Device("tank-9", DeviceKind.WATER_TANK, Location("B9"), "mqtt", "acme-tank")
    codec = MqttCodec(prefix="estate", site="s1", devices=[dev], profiles=profiles,
                      max_payload_bytes=4096)
    topic = topic_for("estate", "s1", dev, "telemetry")
    out = codec.decode(topic, b'{"meta": {"epochMs": 1767225600000}, "d": {"lv": 655, '
                              b'"pumps": 8}}', NOW)
    assert [(r.metric, r.value, r.at) for r in out.observations] == [
        ("level_pct", 65.5, NOW), ("pump_running", True, NOW)]
    ev = codec.decode(topic.replace("telemetry", "event"),
                      b'{"meta": {"epochMs": 1767225600000}, "d": {"code": "A7"}}', NOW)
    assert [e.kind for e in ev.observations] == ["pump_room.flooding"]


def test_profile_file_mistakes_name_file_line_profile_entry_and_fix(tmp_path: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(NEW_VENDOR.replace("level_pct", "levl_pct"))
    with pytest.raises(ProfileError) as info:
        load_profile(tmp_path / "p.yaml")
    assert info.value.problems == [
        "p.yaml:8: profile 'acme-tank' fields.lv.metric: unknown water_tank metric 'levl_pct' "
        "(did you mean 'level_pct'?) / 未知指标"]


def test_broken_yaml_profile_is_refused_with_its_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("id: x\nkind: elevator\nfields: {floor: [\n")
    with pytest.raises(ProfileError) as info:
        load_profile(tmp_path / "p.yaml")
    (line,) = info.value.problems
    assert line.startswith("p.yaml:4:") and "invalid YAML" in line
