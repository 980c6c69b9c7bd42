"""Property-based bad input: the codec and the config loader never crash, and every rejection
carries a known reason. CI runs a few hundred examples per target; the long run
(`HYPOTHESIS_PROFILE=long bash scripts/test tests/reliability/test_bad_input.py`) 10,000."""

from __future__ import annotations

import math
import os
from pathlib import Path

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.mqtt.codec import REASONS, MqttCodec
from drivers.profiles import builtin_profiles
from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.types import Device, DeviceKind, Event, Location, Reading

settings.register_profile("ci", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
pytestmark = pytest.mark.timeout(3600 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 120)

NOW = 1_767_225_600.0
DEVICES = [Device(f"{k.value}-1", k, Location("B1"), "mqtt", "native") for k in DeviceKind]
CODEC = MqttCodec(prefix="estate", site="s1", devices=DEVICES, profiles=builtin_profiles(),
                  max_payload_bytes=4096)
STATS = {"inputs": 0, "rejections": 0, "observations": 0}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12),
                                                                      children, max_size=5),
    max_leaves=20)
metric_names = st.sampled_from(["level_pct", "floor", "mode", "door_state", "ph", "open_s",
                                "pump_running", "ts", "event", "id", "attrs", "x"])
payload_objects = st.dictionaries(metric_names | st.text(max_size=8), json_values, max_size=8)
topics = st.builds(
    lambda kind, channel, building, extra: "/".join(
        ["estate", "s1", building, kind, f"{kind}-1", channel, *extra]),
    st.sampled_from([k.value for k in DeviceKind] + ["robot"]),
    st.sampled_from(["telemetry", "event", "status", "command", "junk"]),
    st.sampled_from(["B1", "B2", ""]),
    st.lists(st.text(max_size=3), max_size=1)) | st.text(max_size=60)


def _check(topic: str, payload: bytes) -> None:
    out = CODEC.decode(topic, payload, NOW)
    STATS["inputs"] += 1
    STATS["rejections"] += len(out.rejections)
    STATS["observations"] += len(out.observations)
    for r in out.rejections:
        assert r.reason in REASONS
    for o in out.observations:
        if isinstance(o, Reading) and isinstance(o.value, float):
            assert math.isfinite(o.value)
        if isinstance(o, Reading | Event):
            assert math.isfinite(o.at)


@given(topics, st.binary(max_size=300))
def test_codec_never_crashes_on_arbitrary_bytes(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@given(topics, payload_objects)
def test_codec_never_crashes_on_arbitrary_json_objects(topic: str, body: dict) -> None:
    _check(topic, orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS))


near_valid = st.builds(
    lambda kind, values, ts: (f"estate/s1/B1/{kind}/{kind}-1/telemetry",
                              {"ts": ts, **values}),
    st.sampled_from(["water_tank", "elevator"]),
    st.dictionaries(st.sampled_from(["level_pct", "ph", "floor", "mode", "pump_running",
                                     "car_speed_mps"]),
                    st.integers(-5, 120) | st.floats(-1e6, 1e6) | st.booleans()
                    | st.sampled_from(["normal", "inspection", "open"]), min_size=1, max_size=4),
    st.floats(NOW - 1e9, NOW + 1e9) | st.just(NOW))


@given(near_valid)
def test_codec_near_valid_payloads_are_accepted_or_rejected_field_by_field(
        case: tuple[str, dict]) -> None:
    topic, body = case
    out = CODEC.decode(topic, orjson.dumps(body), NOW)
    _check(topic, orjson.dumps(body))
    fields = len(body) - 1
    assert len(out.observations) + len(out.rejections) == fields


config_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["site", "id", "devices", "rules", "kind", "location", "building",
                         "broker", "port", "when", "type", "metric", "below", "include",
                         "store", "select", "event", "priority"]) | st.text(max_size=6),
        children, max_size=5),
    max_leaves=25)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(config_docs)
def test_config_loader_only_ever_raises_config_error(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems
        assert all(isinstance(p, str) and p for p in exc.problems)


@given(st.binary(max_size=200))
def test_config_loader_survives_arbitrary_bytes(tmp_path_factory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "gw.yaml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems


def test_zz_print_figures() -> None:
    print(f"\nbad input: {STATS['inputs']} generated MQTT inputs decoded without a crash; "
          f"{STATS['rejections']} rejections, all with a known reason; "
          f"{STATS['observations']} observations accepted")
    assert STATS["inputs"] > 0
