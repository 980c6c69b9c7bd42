"""Register-map files: load, validate fully, and refuse with one located line per problem.

Every line names the file and line, the map, the entry and the fix, e.g.
``maps/acme.yaml:6: register map 'acme': points[2] (levl_pct).metric: unknown water_tank
metric 'levl_pct' (did you mean 'level_pct'?) / 未知指标``. Names must come from the device
kind's vocabulary, types must fit their function and metric, and no two entries may read
the same register (bits of one word excepted).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from drivers.modbus.codec import BIT_FUNCTIONS, register_count
from drivers.modbus.registermap import (
    CommandConfig,
    EventWordConfig,
    PointConfig,
    RegisterMapConfig,
)
from gateway.vocabulary import EVENTS, METRICS, MetricSpec
from gateway.yamlsource import Origin, YamlSourceError, load_file

__all__ = ["BUILTIN_MAP_DIR", "MapError", "load_map", "load_maps", "parse_map"]

BUILTIN_MAP_DIR = Path(__file__).parent / "maps"

_INTEGER_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")
_NUMERIC_TYPES = (*_INTEGER_TYPES, "float32", "float64")


class MapError(Exception):
    """A register map is invalid; ``problems`` holds one rendered line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


Loc = tuple[str | int, ...]


def _hint(word: str, known: Iterable[str]) -> str:
    guess = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{guess[0]}'?)" if guess else ""


def _entry_path(loc: Loc, data: Any) -> str:
    """``points[2] (level_pct).data_type`` from ``("points", 2, "data_type")``."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict):
                label = node.get("metric") or node.get("action")
                if label is None and "address" in node:
                    label = f"{node.get('function', '?')} {node['address']}"
                if label is not None:
                    out += f" ({label})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _check(cfg: RegisterMapConfig) -> list[tuple[Loc, str]]:  # noqa: C901, PLR0912
    """Problems no single field shows: names outside the vocabulary, types that do not fit
    their function or metric, duplicate metrics and overlapping addresses."""
    problems: list[tuple[Loc, str]] = []
    kind = cfg.kind.value
    metrics = METRICS[cfg.kind]
    events = EVENTS[cfg.kind]
    first_metric: dict[str, int] = {}
    # function -> list of (start, end, bit or None, label, is_event)
    spans: dict[str, list[tuple[int, int, int | None, str, bool]]] = {}

    def claim(loc: Loc, function: str, start: int, end: int, bit: int | None, label: str,
              *, is_event: bool) -> None:
        for o_start, o_end, o_bit, o_label, o_event in spans.get(function, []):
            if start >= o_end or o_start >= end:
                continue
            bit_level = bit is not None or is_event
            other_bit_level = o_bit is not None or o_event
            if bit_level and other_bit_level and (is_event != o_event or bit != o_bit):
                continue  # different bits of one word, or a metric and an event of one bit
            def span(lo: int, hi: int) -> str:
                return f"{function} {lo}" + (f"..{hi - 1}" if hi - lo > 1 else "")
            where = span(start, end) + (f" bit {bit}" if bit is not None else "")
            problems.append((loc, f"{where} overlaps {o_label} at {span(o_start, o_end)}; "
                                  "give each entry its own address / 地址重叠"))
            return
        spans.setdefault(function, []).append((start, end, bit, label, is_event))

    for i, p in enumerate(cfg.points):
        loc: Loc = ("points", i)
        spec = metrics.get(p.metric)
        if spec is None:
            problems.append(((*loc, "metric"), f"unknown {kind} metric {p.metric!r}"
                             f"{_hint(p.metric, metrics) or '; known: ' + ', '.join(metrics)}"
                             " / 未知指标"))
        elif p.metric in first_metric:
            problems.append(((*loc, "metric"), f"metric {p.metric!r} is already read by "
                             f"points[{first_metric[p.metric]}]; read each metric once "
                             "/ 指标重复"))
        else:
            first_metric[p.metric] = i
        bad_shape = _check_shape(p, spec)
        problems.extend(((*loc, *((field,) if isinstance(field, str) else field)), msg)
                        for field, msg in bad_shape)
        if bad_shape:
            continue
        count = 1 if p.function in BIT_FUNCTIONS else register_count(p.data_type, p.length)
        if p.address - cfg.address_base < 0:
            problems.append(((*loc, "address"), f"address {p.address} is below the map's "
                             f"address_base {cfg.address_base} / 地址超出范围"))
            continue
        claim((*loc, "address"), p.function, p.address, p.address + count, p.bit,
              f"points[{i}] ({p.metric})", is_event=False)
    for i, e in enumerate(cfg.events):
        loc = ("events", i)
        width = 16 if e.data_type == "uint16" else 32
        for bit, name in e.bits.items():
            if not 0 <= bit < width:
                problems.append(((*loc, "bits", bit), f"bit {bit} does not exist in a "
                                 f"{e.data_type}; use 0..{width - 1} / 位号超出范围"))
            if name not in events:
                problems.append(((*loc, "bits", bit), f"unknown {kind} event {name!r}"
                                 f"{_hint(name, events)} / 未知事件"))
        for attr, metric in e.attributes.items():
            if metric not in first_metric:
                problems.append(((*loc, "attributes", attr), f"attribute {attr!r} takes "
                                 f"metric {metric!r}, which this map does not read"
                                 f"{_hint(metric, first_metric)} / 属性来源指标不存在"))
        claim((*loc, "address"), e.function, e.address, e.address + register_count(e.data_type),
              None, f"events[{i}]", is_event=True)
    seen_actions: dict[str, int] = {}
    for i, c in enumerate(cfg.commands):
        loc = ("commands", i)
        if c.action in seen_actions:
            problems.append(((*loc, "action"), f"action {c.action!r} is already defined by "
                             f"commands[{seen_actions[c.action]}] / 命令重复"))
        seen_actions.setdefault(c.action, i)
        dtype = c.data_type or ("bool" if c.function == "coil" else "uint16")
        if c.function == "coil" and dtype != "bool":
            problems.append(((*loc, "data_type"), f"a coil holds one bit; data_type must be "
                             f"'bool', not {dtype!r} / 线圈只能是 bool"))
        elif dtype in ("bit",):
            problems.append(((*loc, "data_type"), "a single bit cannot be written; write the "
                             "whole register as uint16 / 不能单独写位"))
        if c.release_value is not None and c.pulse_ms is None:
            problems.append(((*loc, "release_value"), "release_value is only used with "
                             "pulse_ms; add pulse_ms or remove it / 需要 pulse_ms"))
    return problems


def _check_shape(p: PointConfig, spec: MetricSpec | None) -> list[tuple[str | Loc, str]]:
    out: list[tuple[str | Loc, str]] = []
    if p.function in BIT_FUNCTIONS and p.data_type != "bool":
        out.append(("data_type", f"a {p.function} is one bit; data_type must be 'bool', "
                    f"not {p.data_type!r} / 线圈和离散输入只能是 bool"))
        return out
    if p.data_type == "bit" and p.bit is None:
        out.append(("bit", "data_type 'bit' needs bit: 0..15 (0 = least significant) "
                    "/ 缺少位号"))
    if p.data_type != "bit" and p.bit is not None:
        out.append(("bit", f"bit is only for data_type 'bit', not {p.data_type!r} "
                    "/ 仅 bit 类型可指定位号"))
    if p.data_type == "string" and p.length is None:
        out.append(("length", "data_type 'string' needs length (registers, two characters "
                    "each) / 缺少字符串长度"))
    if p.data_type != "string" and p.length is not None:
        out.append(("length", f"length is only for data_type 'string', not {p.data_type!r} "
                    "/ 仅 string 类型可指定长度"))
    if p.scale == 0:
        out.append(("scale", "scale 0 would make every value 0; use 1 for no scaling "
                    "/ 比例不能为 0"))
    if spec is None:
        return out
    if p.unit is not None and p.unit != spec.unit:
        out.append(("unit", f"unit {p.unit!r} differs from {spec.unit!r}, the unit of "
                    f"{spec.name}; convert with scale/offset and drop unit / 单位不一致"))
    if spec.kind == "bool":
        if p.data_type not in ("bool", "bit"):
            out.append(("data_type", f"{spec.name} is true/false; use data_type 'bool' or "
                        f"'bit', not {p.data_type!r} / 布尔指标类型不符"))
    elif spec.kind == "str":
        if p.data_type == "string":
            if p.states:
                out.append(("states", "a string point is already a state name; drop states "
                            "/ 字符串无需状态表"))
        elif p.data_type not in _INTEGER_TYPES:
            out.append(("data_type", f"{spec.name} is a state; read an integer code with "
                        f"states, not {p.data_type!r} / 状态指标类型不符"))
        elif not p.states:
            out.append(("states", f"{spec.name} is a state; map each code to one of "
                        f"{', '.join(spec.states)} / 缺少状态表"))
        else:
            for code, state in p.states.items():
                if state not in spec.states:
                    out.append((("states", code), f"{state!r} is not a {spec.name} state"
                                f"{_hint(state, spec.states)}; expected one of "
                                f"{', '.join(spec.states)} / 未知状态"))
    else:
        if p.data_type not in _NUMERIC_TYPES:
            out.append(("data_type", f"{spec.name} is a number; use one of "
                        f"{', '.join(_NUMERIC_TYPES)}, not {p.data_type!r} / 数值指标类型不符"))
        if p.states:
            out.append(("states", f"{spec.name} is a number; states are for state metrics "
                        "/ 数值指标无需状态表"))
    if p.deadband is not None and spec.kind in ("bool", "str"):
        out.append(("deadband", f"deadband is for numbers; {spec.name} is a {spec.kind} "
                    "/ 死区仅用于数值"))
    return out


def _render_pydantic(error: dict[str, Any], data: Any) -> tuple[Loc, str]:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_fields(loc[:-1])
        msg = f"unknown field{_hint(key, known)}; expected one of {', '.join(known)}"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind in ("literal_error", "enum"):
        expected = str((error.get("ctx") or {}).get("expected", ""))
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ",").split(",")
                   if c.strip()]
        msg = (f"{value!r} is not allowed{_hint(str(value), choices)}; expected one of "
               + ", ".join(f"'{c}'" for c in choices))
    else:
        msg = f"{error['msg'][0].lower()}{error['msg'][1:]} (found {value!r})"
    return loc, msg


def _known_fields(loc: Loc) -> list[str]:
    model: type[BaseModel] = RegisterMapConfig
    parents = [p for p in loc if isinstance(p, str)]
    nested = {"points": PointConfig, "events": EventWordConfig, "commands": CommandConfig}
    if parents and parents[0] in nested:
        model = nested[parents[0]]
    return sorted(model.model_fields)


def _line(lines: dict[Loc, Origin], loc: Loc, file: str) -> str:
    # the source map keys mapping keys as text and list positions as int
    loc = tuple(p if isinstance(p, int) and i == 1 else str(p) for i, p in enumerate(loc))
    while True:
        origin = lines.get(loc)
        if origin is not None:
            return f"{origin.file}:{origin.line}"
        if not loc:
            return file
        loc = loc[:-1]


def parse_map(data: Any, lines: dict[Loc, Origin], file: str) -> RegisterMapConfig:
    """Validate one loaded map; raise MapError naming file:line, map, entry and fix."""
    name = data.get("id") if isinstance(data, dict) else None
    head = f"register map {name!r}" if isinstance(name, str) else "register map"
    if not isinstance(data, dict):
        raise MapError([f"{file}:1: {head}: expected a mapping (key: value) / 顶层应为映射"])
    try:
        cfg = RegisterMapConfig.model_validate(data)
    except ValidationError as exc:
        out = []
        for error in exc.errors(include_url=False):
            loc, msg = _render_pydantic(dict(error), data)
            out.append(f"{_line(lines, loc, file)}: {head}: {_entry_path(loc, data)}: {msg}")
        raise MapError(out) from None
    problems = _check(cfg)
    if problems:
        raise MapError([f"{_line(lines, loc, file)}: {head}: {_entry_path(loc, data)}: {msg}"
                        for loc, msg in problems])
    return cfg


def load_map(path: Path) -> RegisterMapConfig:
    try:
        data, lines = load_file(path)
    except YamlSourceError as exc:
        raise MapError([f"{exc.file}: register map: {exc.problem}"]) from None
    return parse_map(data, lines, str(path))


def load_maps(extra_dirs: Sequence[Path] = ()) -> dict[str, RegisterMapConfig]:
    """The shipped maps plus every ``*.yaml`` in ``extra_dirs``, by id.

    Raises:
        MapError: with every problem of every file, and ids defined twice.
    """
    out: dict[str, RegisterMapConfig] = {}
    where: dict[str, Path] = {}
    problems: list[str] = []
    for folder in [BUILTIN_MAP_DIR, *extra_dirs]:
        if not folder.is_dir():
            problems.append(f"{folder}: register map folder does not exist / 目录不存在")
            continue
        for path in sorted(folder.glob("*.yaml")):
            try:
                cfg = load_map(path)
            except MapError as exc:
                problems.extend(exc.problems)
                continue
            if cfg.id in out:
                problems.append(f"{path}:1: register map {cfg.id!r}: id is already defined in "
                                f"{where[cfg.id]}; give each map its own id / 编号重复")
                continue
            out[cfg.id] = cfg
            where[cfg.id] = path
    if problems:
        raise MapError(problems)
    return out
