"""Report by exception: deadband, max silence, quality and text changes; pure, no clock."""

from __future__ import annotations

import pytest

from gateway.config import StoreConfig
from gateway.store.deadband import ExceptionPolicy, ReportByException, policies_from_config
from gateway.types import Quality, Reading
from tests.unit.store.conftest import T0


def lvl(value, at, device="tank-a", quality=Quality.GOOD, metric="level_pct") -> Reading:
    return Reading(device, metric, value, T0 + at, quality=quality)


def test_rbe_deadband_compares_with_last_kept_value():
    rbe = ReportByException({"level_pct": ExceptionPolicy(deadband=0.5, max_silence_s=3600)})
    seq = [lvl(50.0, 0), lvl(50.3, 10), lvl(50.5, 20), lvl(50.6, 30), lvl(50.4, 40),
           lvl(49.9, 50)]
    kept = rbe.filter(seq)
    # 50.3/50.5 are within 0.5 of 50.0; 50.6 is not; 50.4 within 0.5 of 50.6; 49.9 is not
    assert [r.value for r in kept] == [50.0, 50.6, 49.9]
    assert (rbe.passed, rbe.suppressed) == (3, 3)


def test_rbe_slow_drift_is_stored_once_it_adds_up():
    rbe = ReportByException({"level_pct": ExceptionPolicy(deadband=1.0, max_silence_s=1e9)})
    kept = rbe.filter([lvl(10.0 + 0.3 * i, 10 * i) for i in range(11)])
    assert [round(r.value, 1) for r in kept] == [10.0, 11.2, 12.4]


def test_rbe_max_silence_stores_a_flat_line():
    rbe = ReportByException({"level_pct": ExceptionPolicy(deadband=5, max_silence_s=60)})
    kept = rbe.filter([lvl(50.0, 10 * i) for i in range(13)])
    assert [r.at - T0 for r in kept] == [0, 60, 120]


def test_rbe_quality_change_and_text_change_pass():
    rbe = ReportByException({"level_pct": ExceptionPolicy(deadband=5),
                             "door_state": ExceptionPolicy()})
    kept = rbe.filter([
        lvl(50.0, 0), lvl(50.0, 10, quality=Quality.UNAVAILABLE), lvl(50.0, 20),
        lvl("closed", 0, metric="door_state"), lvl("closed", 5, metric="door_state"),
        lvl("open", 6, metric="door_state"),
    ])
    assert [(r.metric, r.value, r.quality.value) for r in kept] == [
        ("level_pct", 50.0, "good"), ("level_pct", 50.0, "unavailable"),
        ("level_pct", 50.0, "good"), ("door_state", "closed", "good"),
        ("door_state", "open", "good")]


def test_rbe_zero_deadband_means_any_change_and_bool_changes():
    rbe = ReportByException({"level_pct": ExceptionPolicy(), "pump_on": ExceptionPolicy()})
    kept = rbe.filter([lvl(1.0, 0), lvl(1.0, 1), lvl(1.0001, 2),
                       lvl(True, 0, metric="pump_on"), lvl(True, 1, metric="pump_on"),
                       lvl(False, 2, metric="pump_on")])
    assert [r.value for r in kept] == [1.0, 1.0001, True, False]


def test_rbe_is_per_device_and_unconfigured_metrics_pass():
    rbe = ReportByException({"level_pct": ExceptionPolicy(deadband=1)})
    kept = rbe.filter([lvl(5.0, 0, device="a"), lvl(5.0, 0, device="b"),
                       lvl(5.1, 1, device="a"), lvl(3.0, 0, metric="pressure_bar"),
                       lvl(3.0, 1, metric="pressure_bar")])
    assert [(r.device_id, r.metric) for r in kept] == [
        ("a", "level_pct"), ("b", "level_pct"), ("tank-a", "pressure_bar"),
        ("tank-a", "pressure_bar")]


def test_rbe_device_clock_going_back_is_stored():
    rbe = ReportByException({"level_pct": ExceptionPolicy(deadband=5, max_silence_s=600)})
    assert [r.at - T0 for r in rbe.filter([lvl(1.0, 100), lvl(1.0, 50)])] == [100, 50]


def test_rbe_forget_device():
    rbe = ReportByException({"level_pct": ExceptionPolicy(deadband=5)})
    rbe.filter([lvl(1.0, 0)])
    rbe.forget("tank-a")
    assert rbe.filter([lvl(1.0, 1)]) != []


def test_rbe_policy_validates_itself():
    with pytest.raises(ValueError, match="deadband must be >= 0"):
        ExceptionPolicy(deadband=-1)
    with pytest.raises(ValueError, match="max_silence_s must be > 0"):
        ExceptionPolicy(max_silence_s=0)


def test_rbe_policies_from_config():
    cfg = StoreConfig.model_validate(
        {"report_by_exception": {"level_pct": {"deadband": 0.5, "max_silence_s": 300}}})
    assert policies_from_config(cfg.report_by_exception) == {
        "level_pct": ExceptionPolicy(0.5, 300)}
