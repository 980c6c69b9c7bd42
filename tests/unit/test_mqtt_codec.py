"""Table tests of the MQTT codec: topic + payload → readings, events or a reasoned rejection."""

from __future__ import annotations

import pytest

from drivers.mqtt.codec import MqttCodec
from drivers.profiles import builtin_profiles
from gateway.types import Device, DeviceKind, DeviceStatus, Event, Location, Quality, Reading

NOW = 1_767_225_600.0
DEVICES = [
    Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native"),
    Device("lift-1", DeviceKind.ELEVATOR, Location("B1"), "mqtt", "native"),
    Device("gate-1", DeviceKind.ACCESS_GATE, Location("G"), "mqtt", "native"),
]


@pytest.fixture(scope="module")
def codec() -> MqttCodec:
    return MqttCodec(prefix="estate", site="s1", devices=DEVICES, profiles=builtin_profiles(),
                     max_payload_bytes=1024)


T = "estate/s1/B1/water_tank/tank-1/telemetry"
L = "estate/s1/B1/elevator/lift-1/telemetry"
E = "estate/s1/G/access_gate/gate-1/event"
S = "estate/s1/B1/water_tank/tank-1/status"

READINGS = [
    (T, b'{"ts": 1767225500.5, "level_pct": 42.5}', [("level_pct", 42.5, 1767225500.5, "%")]),
    (T, b'{"ts": "2026-01-01T00:00:00Z", "pump_running": 1}',
     [("pump_running", True, 1767225600.0, "")]),
    (T, b'{"ts": "2026-01-01T08:00:00+08:00", "ph": 7}', [("ph", 7.0, 1767225600.0, "pH")]),
    (T, b'{"level_pct": 10}', [("level_pct", 10.0, NOW, "%")]),  # no ts: stamped on arrival
    (L, b'{"ts": 1767225600, "floor": 12, "mode": "inspection"}',
     [("floor", 12, NOW, ""), ("mode", "inspection", NOW, "")]),
    (L, b'{"ts": 1767225600, "in_service": "off"}', [("in_service", False, NOW, "")]),
]


@pytest.mark.parametrize(("topic", "payload", "expected"), READINGS)
def test_codec_decodes_native_telemetry(codec: MqttCodec, topic: str, payload: bytes,
                                        expected: list[tuple]) -> None:
    out = codec.decode(topic, payload, NOW)
    assert out.rejections == []
    got = [(r.metric, r.value, r.at, r.unit) for r in out.observations if isinstance(r, Reading)]
    assert got == expected
    assert all(type(g[1]) is type(e[1]) for g, e in zip(got, expected, strict=True))


REJECTIONS = [
    (T, b"x" * 2000, "oversize"),
    ("estate/s1/B1/water_tank/tank-1", b"{}", "unknown_topic"),
    ("other/s1/B1/water_tank/tank-1/telemetry", b"{}", "unknown_topic"),
    ("estate/s2/B1/water_tank/tank-1/telemetry", b"{}", "unknown_topic"),
    ("estate/s1/B1/water_tank/tank-1/config", b"{}", "unknown_topic"),
    ("estate/s1/B1/water_tank/tank-404/telemetry", b"{}", "unknown_device"),
    ("estate/s1/B1/elevator/tank-1/telemetry", b"{}", "topic_mismatch"),
    (T, b"{oops", "malformed_json"),
    (T, b"NaN", "malformed_json"),
    (T, b'{"level_pct": NaN}', "malformed_json"),
    (T, b'"text"', "not_an_object"),
    (T, b'{"ts": true, "level_pct": 1}', "bad_timestamp"),
    (T, b'{"ts": "2026-01-01T00:00:00", "level_pct": 1}', "bad_timestamp"),
    (T, b'{"ts": "soon", "level_pct": 1}', "bad_timestamp"),
    (T, b'{"ts": 1767225600, "level_pct": "42"}', "wrong_type"),
    (T, b'{"ts": 1767225600, "level_pct": true}', "wrong_type"),
    (T, b'{"ts": 1767225600, "pump_running": "maybe"}', "wrong_type"),
    (T, b'{"ts": 1767225600, "level_pct": 101}', "out_of_range"),
    (T, b'{"ts": 1767225600, "level_pct": -0.1}', "out_of_range"),
    (T, b'{"ts": 1767225600, "floor": 3}', "unknown_metric"),
    (T, b'{"ts": 1767225600}', "no_values"),
    (L, b'{"ts": 1767225600, "floor": 2.5}', "wrong_type"),
    (L, b'{"ts": 1767225600, "mode": "party"}', "out_of_range"),
    (E, b'{"ts": 1767225600, "event": "door.melted"}', "unknown_event"),
    (E, b'{"ts": 1767225600}', "unknown_event"),
    (S, b"sleepy", "wrong_type"),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), REJECTIONS)
def test_codec_rejects_with_reason(codec: MqttCodec, topic: str, payload: bytes,
                                   reason: str) -> None:
    out = codec.decode(topic, payload, NOW)
    assert [r.reason for r in out.rejections] == [reason]
    assert out.observations == []


def test_codec_keeps_good_fields_and_rejects_bad_ones(codec: MqttCodec) -> None:
    out = codec.decode(T, b'{"ts": 1767225600, "level_pct": 50, "ph": "acid"}', NOW)
    assert [(r.metric, r.value) for r in out.observations] == [("level_pct", 50.0)]
    assert [r.reason for r in out.rejections] == ["wrong_type"]


@pytest.mark.parametrize("ts", [NOW + 3600, NOW - 500 * 86_400])
def test_codec_replaces_far_off_device_time_and_marks_uncertain(codec: MqttCodec,
                                                                ts: float) -> None:
    out = codec.decode(T, f'{{"ts": {ts}, "level_pct": 50}}'.encode(), NOW)
    (r,) = out.observations
    assert isinstance(r, Reading)
    assert (r.at, r.quality, out.skew_corrected) == (NOW, Quality.UNCERTAIN, True)


def test_codec_event_id_from_device_or_stable_hash(codec: MqttCodec) -> None:
    with_id = codec.decode(E, b'{"ts": 1767225600, "event": "access.denied", "id": 77, '
                              b'"attrs": {"card": "AB", "reason": "expired", "x": [1]}}', NOW)
    (e,) = with_id.observations
    assert isinstance(e, Event)
    assert (e.kind, e.event_id, dict(e.attributes)) == (
        "access.denied", "gate-1:77", {"card": "AB", "reason": "expired"})
    a = codec.decode(E, b'{"ts": 1767225600, "event": "door.forced_open"}', NOW).observations[0]
    b = codec.decode(E, b'{"ts": 1767225600, "event": "door.forced_open"}', NOW + 5).observations[0]
    assert isinstance(a, Event) and isinstance(b, Event)
    assert a.event_id == b.event_id  # a redelivery is recognised


@pytest.mark.parametrize(("payload", "online"), [(b"online", True), (b"offline", False),
                                                 (b'{"online": false}', False)])
def test_codec_status(codec: MqttCodec, payload: bytes, online: bool) -> None:
    (s,) = codec.decode(S, payload, NOW).observations
    assert isinstance(s, DeviceStatus) and s.online is online


def test_codec_ignores_the_gateways_own_command_topic(codec: MqttCodec) -> None:
    out = codec.decode("estate/s1/B1/water_tank/tank-1/command", b"{}", NOW)
    assert out.observations == [] and out.rejections == []
