"""Register maps: the shipped ones load; bad ones are refused with exact, located messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drivers.modbus.mapfile import MapError, load_map, load_maps
from drivers.modbus.registermap import compile_map


def _refusal(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(MapError) as info:
        load_map(path)
    return [line.replace(str(path), "m.yaml") for line in info.value.problems]


HEAD = """\
id: bad-tank
kind: water_tank
"""


def test_shipped_maps_load_and_cover_every_kind_with_a_modbus_device() -> None:
    maps = load_maps()
    assert {m.kind.value for m in maps.values()} == {"water_tank", "parking_barrier", "elevator"}
    for cfg in maps.values():
        compiled = compile_map(cfg)
        assert compiled.points


def test_map_barrier_addresses_are_converted_from_1_based() -> None:
    barrier = compile_map(load_maps()["barrier-controller"])
    state = next(p for p in barrier.points if p.metric == "barrier_state")
    assert state.address == 0
    assert barrier.command("open").address == 0  # type: ignore[union-attr]


def test_map_binding_can_override_the_address_base() -> None:
    tank = compile_map(load_maps()["water-tank-controller"], address_base=1)
    assert next(p for p in tank.points if p.metric == "level_m").address == 0


def test_map_unknown_metric_suggests_the_closest(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
points:
  - {metric: levl_pct, function: input, address: 0}
""") == [
        "m.yaml:4: register map 'bad-tank': points[0] (levl_pct).metric: unknown water_tank "
        "metric 'levl_pct' (did you mean 'level_pct'?) / 未知指标",
    ]


def test_map_unknown_metric_without_a_close_name_lists_the_known(tmp_path: Path) -> None:
    (line,) = _refusal(tmp_path, HEAD + "points:\n  - {metric: zzz, function: input, address: 0}\n")
    assert line == (
        "m.yaml:4: register map 'bad-tank': points[0] (zzz).metric: unknown water_tank metric "
        "'zzz'; known: level_pct, level_m, inlet_pressure_mpa, outlet_pressure_mpa, "
        "pump_running, pump_fault, vfd_frequency_hz, turbidity_ntu, free_chlorine_mgl, ph, "
        "flooded, door_open / 未知指标")


def test_map_bad_data_type(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
points:
  - {metric: level_m, function: input, address: 1, data_type: flaot32}
""") == [
        "m.yaml:4: register map 'bad-tank': points[0] (level_m).data_type: 'flaot32' is not "
        "allowed (did you mean 'float32'?); expected one of 'int16', 'uint16', 'int32', "
        "'uint32', 'float32', 'int64', 'uint64', 'float64', 'bool', 'bit', 'string'",
    ]


def test_map_misspelt_key(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
points:
  - {metric: ph, function: input, adress: 9}
""") == [
        "m.yaml:4: register map 'bad-tank': points[0] (ph).address: required field is missing",
        "m.yaml:4: register map 'bad-tank': points[0] (ph).adress: unknown field (did you mean "
        "'address'?); expected one of address, bit, byte_order, data_type, deadband, function, "
        "length, metric, offset, scale, states, unit, word_order",
    ]


def test_map_overlapping_addresses(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
points:
  - {metric: level_m, function: input, address: 1, data_type: float32}
  - {metric: inlet_pressure_mpa, function: input, address: 2, data_type: float32}
""") == [
        "m.yaml:5: register map 'bad-tank': points[1] (inlet_pressure_mpa).address: input 2..3 "
        "overlaps points[0] (level_m) at input 1..2; give each entry its own address / 地址重叠",
    ]


def test_map_duplicate_bit_is_an_overlap_but_distinct_bits_share_a_word(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
points:
  - {metric: pump_running, function: holding, address: 0, data_type: bit, bit: 0}
  - {metric: pump_fault, function: holding, address: 0, data_type: bit, bit: 1}
  - {metric: flooded, function: holding, address: 0, data_type: bit, bit: 1}
""") == [
        "m.yaml:6: register map 'bad-tank': points[2] (flooded).address: holding 0 bit 1 "
        "overlaps points[1] (pump_fault) at holding 0; give each entry its own address / 地址重叠",
    ]


def test_map_same_metric_twice(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
points:
  - {metric: ph, function: input, address: 0}
  - {metric: ph, function: input, address: 1}
""") == [
        "m.yaml:5: register map 'bad-tank': points[1] (ph).metric: metric 'ph' is already read "
        "by points[0]; read each metric once / 指标重复",
    ]


def test_map_type_must_fit_the_metric(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
points:
  - {metric: pump_running, function: holding, address: 0, data_type: uint16}
  - {metric: pump_fault, function: holding, address: 1, data_type: bit}
  - {metric: ph, function: coil, address: 0}
  - {metric: vfd_frequency_hz, function: input, address: 20, unit: kHz}
""") == [
        "m.yaml:4: register map 'bad-tank': points[0] (pump_running).data_type: pump_running "
        "is true/false; use data_type 'bool' or 'bit', not 'uint16' / 布尔指标类型不符",
        "m.yaml:5: register map 'bad-tank': points[1] (pump_fault).bit: data_type 'bit' needs "
        "bit: 0..15 (0 = least significant) / 缺少位号",
        "m.yaml:6: register map 'bad-tank': points[2] (ph).data_type: a coil is one bit; "
        "data_type must be 'bool', not 'uint16' / 线圈和离散输入只能是 bool",
        "m.yaml:7: register map 'bad-tank': points[3] (vfd_frequency_hz).unit: unit 'kHz' "
        "differs from 'Hz', the unit of vfd_frequency_hz; convert with scale/offset and drop "
        "unit / 单位不一致",
    ]


def test_map_states_must_be_vocabulary_states(tmp_path: Path) -> None:
    assert _refusal(tmp_path, """\
id: bad-lift
kind: elevator
points:
  - metric: direction
    function: input
    address: 1
    states: {0: idle, 1: upp}
  - {metric: mode, function: input, address: 2}
""") == [
        "m.yaml:7: register map 'bad-lift': points[0] (direction).states.1: 'upp' is not a "
        "direction state (did you mean 'up'?); expected one of up, down, idle / 未知状态",
        "m.yaml:8: register map 'bad-lift': points[1] (mode).states: mode is a state; map each "
        "code to one of normal, inspection, fire, locked, driver, overload / 缺少状态表",
    ]


def test_map_event_bits_are_checked(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
points:
  - {metric: level_pct, function: input, address: 0}
events:
  - function: holding
    address: 1
    bits: {0: pump.falut, 16: pump_room.flooding}
    attributes: {level: level_pctt}
""") == [
        "m.yaml:8: register map 'bad-tank': events[0] (holding 1).bits.0: unknown water_tank "
        "event 'pump.falut' (did you mean 'pump.fault'?) / 未知事件",
        "m.yaml:8: register map 'bad-tank': events[0] (holding 1).bits.16: bit 16 does not "
        "exist in a uint16; use 0..15 / 位号超出范围",
        "m.yaml:9: register map 'bad-tank': events[0] (holding 1).attributes.level: attribute "
        "'level' takes metric 'level_pctt', which this map does not read (did you mean "
        "'level_pct'?) / 属性来源指标不存在",
    ]


def test_map_commands_are_checked(tmp_path: Path) -> None:
    assert _refusal(tmp_path, HEAD + """\
commands:
  - {action: start_pump, function: coil, address: 0, data_type: uint16}
  - {action: start_pump, function: holding, address: 0, release_value: 0}
""") == [
        "m.yaml:4: register map 'bad-tank': commands[0] (start_pump).data_type: a coil holds "
        "one bit; data_type must be 'bool', not 'uint16' / 线圈只能是 bool",
        "m.yaml:5: register map 'bad-tank': commands[1] (start_pump).action: action "
        "'start_pump' is already defined by commands[0] / 命令重复",
        "m.yaml:5: register map 'bad-tank': commands[1] (start_pump).release_value: "
        "release_value is only used with pulse_ms; add pulse_ms or remove it / 需要 pulse_ms",
    ]


def test_map_ids_must_be_unique_across_folders(tmp_path: Path) -> None:
    (tmp_path / "copy.yaml").write_text("id: barrier-controller\nkind: parking_barrier\n",
                                        encoding="utf-8")
    with pytest.raises(MapError) as info:
        load_maps([tmp_path])
    (line,) = info.value.problems
    assert line.startswith(f"{tmp_path / 'copy.yaml'}:1: register map 'barrier-controller': "
                           "id is already defined in ")
    assert line.endswith("barrier-controller.yaml; give each map its own id / 编号重复")
