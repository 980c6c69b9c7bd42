"""Command values → coil states and registers, and the refusals."""

from __future__ import annotations

import pytest

from drivers.modbus.commands import command_raw, release_raw
from drivers.modbus.mapfile import parse_map
from drivers.modbus.registermap import WriteSpec, compile_map


def _spec(**entry: object) -> WriteSpec:
    data = {"id": "t", "kind": "water_tank",
            "commands": [{"action": "act", "address": 10} | entry]}
    (spec,) = compile_map(parse_map(data, {}, "t")).commands
    return spec


def test_command_coil_with_fixed_value_and_default_pulse_release() -> None:
    spec = _spec(function="coil", value=True, pulse_ms=500)
    assert command_raw(spec, {}) is True
    assert release_raw(spec) is False


def test_command_register_setpoint_from_args_scaled() -> None:
    spec = _spec(function="holding", data_type="uint16", scale=0.001, min=0.1, max=0.8)
    assert command_raw(spec, {"value": 0.45}) == [450]


def test_command_float32_setpoint_in_word_swapped_order() -> None:
    spec = _spec(function="holding", data_type="float32", word_order="little")
    assert command_raw(spec, {"value": 1.0}) == [0x0000, 0x3F80]


@pytest.mark.parametrize(("args", "message"), [
    ({}, "needs args.value"),
    ({"value": "high"}, "value 'high' is not a number"),
    ({"value": 0.9}, "value 0.9 outside 0.1..0.8"),
    ({"value": 0.05}, "value 0.05 outside 0.1..0.8"),
])
def test_command_refuses_bad_values(args: dict[str, object], message: str) -> None:
    spec = _spec(function="holding", data_type="uint16", scale=0.001, min=0.1, max=0.8)
    with pytest.raises(ValueError, match=f"^{message}$"):
        command_raw(spec, args)  # type: ignore[arg-type]


def test_command_value_that_does_not_fit_the_register() -> None:
    spec = _spec(function="holding", data_type="int16")
    with pytest.raises(ValueError, match="does not fit int16"):
        command_raw(spec, {"value": 40000})
