"""Checks of a payload profile against the vocabulary: names, data types, duplicates, units.

Pure: takes a parsed ``Profile`` and returns ``Problem``s (where, what is wrong, the fix);
``drivers.profiles`` adds the file and line and renders them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.types import DeviceKind
from gateway.vocabulary import EVENTS, METRICS, MetricSpec, attribute_spec

if TYPE_CHECKING:
    from drivers.profiles import FieldMap, Profile, Scalar

__all__ = ["UNIT_FACTORS", "Loc", "Problem", "check_profile"]

Loc = tuple[str | int, ...]

UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("kPa", "MPa"): 0.001,
    ("bar", "MPa"): 0.1,
    ("Pa", "MPa"): 1e-6,
    ("cm", "m"): 0.01,
    ("mm", "m"): 0.001,
    ("cm/s", "m/s"): 0.01,
    ("mm/s", "m/s"): 0.001,
    ("km/h", "m/s"): 1 / 3.6,
    ("fraction", "%"): 100.0,
    ("permille", "%"): 0.1,
    ("min", "s"): 60.0,
    ("ms", "s"): 0.001,
    ("ug/L", "mg/L"): 0.001,
    ("kHz", "Hz"): 1000.0,
}
"""Vendor unit → metric unit multipliers a profile may name with ``unit:`` (multiplicative only)."""


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str


def _hint(name: str, known: Iterable[str]) -> str:
    known = list(known)
    guess = difflib.get_close_matches(name, known, n=1)
    if guess:
        return f" (did you mean '{guess[0]}'?)"
    return "; expected one of " + ", ".join(known)


_KIND_WORDS = {"float": "a number", "int": "a whole-number", "bool": "a true/false",
               "str": "a state"}


def _check_value(spec: MetricSpec, value: Scalar) -> str | None:
    """Why ``value`` cannot be a value of the metric, or None."""
    if spec.kind == "bool":
        return None if isinstance(value, bool) else f"{value!r} is not true/false"
    if spec.kind == "str":
        if not isinstance(value, str) or value not in spec.states:
            return (f"{value!r} is not a {spec.name} state"
                    f"{_hint(str(value), spec.states)}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} is not a number"
    return None


def _check_field(kind: DeviceKind, loc: Loc, fm: FieldMap, *, in_list: bool) -> list[Problem]:
    spec = METRICS[kind].get(fm.metric)
    if spec is None:
        return [Problem((*loc, "metric"), f"unknown {kind.value} metric {fm.metric!r}"
                        f"{_hint(fm.metric, METRICS[kind])} / 未知指标")]
    out: list[Problem] = []
    numeric = spec.kind in ("int", "float")
    if fm.bit is not None and spec.kind != "bool":
        out.append(Problem((*loc, "bit"), f"bad data type: a bit is true/false but "
                           f"{fm.metric!r} is {_KIND_WORDS[spec.kind]} metric; map a true/false metric "
                           "or remove 'bit' / 数据类型错误"))
    if fm.scale == 0:
        out.append(Problem((*loc, "scale"), "scale 0 turns every value into the offset; give "
                           "the factor that converts the vendor's number / 比例不能为 0"))
    if in_list and fm.bit is None:
        out.append(Problem(loc, "a list maps the bits of one word: give each entry a 'bit' "
                           "/ 缺少位号"))
    if not numeric and (fm.scale != 1.0 or fm.offset != 0.0 or fm.unit is not None):
        what = "unit" if fm.unit is not None else "scale" if fm.scale != 1.0 else "offset"
        out.append(Problem((*loc, what), f"bad data type: {fm.metric!r} is "
                           f"{_KIND_WORDS[spec.kind]} metric, {what} applies to numbers only; remove it / 数据类型错误"))
    if fm.unit is not None and numeric and (fm.unit, spec.unit) not in UNIT_FACTORS \
            and fm.unit != spec.unit:
        known = sorted({f for f, t in UNIT_FACTORS if t == spec.unit})
        out.append(Problem((*loc, "unit"), f"cannot convert {fm.unit!r} to {spec.unit!r} "
                           f"(the unit of {fm.metric}); expected one of "
                           f"{', '.join([spec.unit, *known]) or 'no unit'} or use scale "
                           "/ 无法换算单位"))
    for code, value in (fm.map or {}).items():
        why = _check_value(spec, value)
        if why:
            out.append(Problem((*loc, "map", code), f"bad data type: {why} / 数据类型错误"))
    return out


def check_profile(profile: Profile) -> list[Problem]:
    """Problems no single field shows: names outside the vocabulary, types, duplicates."""
    kind = profile.kind
    problems: list[Problem] = []
    seen_metrics: dict[str, str] = {}
    for vendor, maps in profile.field_maps().items():
        in_list = isinstance((profile.fields or {})[vendor], list)
        bits: dict[int, int] = {}
        for i, fm in enumerate(maps):
            loc: Loc = ("fields", vendor, i) if in_list else ("fields", vendor)
            problems += _check_field(kind, loc, fm, in_list=in_list)
            if fm.bit is not None:
                if fm.bit in bits:
                    problems.append(Problem((*loc, "bit"), f"bit {fm.bit} is already mapped by "
                                            f"fields.{vendor}[{bits[fm.bit]}]; map each bit "
                                            "once / 位号重复"))
                bits.setdefault(fm.bit, i)
            if fm.metric in METRICS[kind]:
                where = f"{vendor}[{i}]" if in_list else vendor
                if fm.metric in seen_metrics:
                    problems.append(Problem((*loc, "metric"), f"duplicate mapping: "
                                            f"{fm.metric!r} is already mapped from "
                                            f"fields.{seen_metrics[fm.metric]}; map each metric "
                                            "once / 指标重复映射"))
                else:
                    seen_metrics[fm.metric] = where
    em = profile.events
    events = EVENTS[kind]
    for code, name in (em.codes or {}).items():
        if name not in events:
            problems.append(Problem(("events", "codes", code), f"unknown {kind.value} event "
                                    f"{name!r}{_hint(name, events)} / 未知事件"))
    for bit, name in (em.flags or {}).items():
        if name not in events:
            problems.append(Problem(("events", "flags", str(bit)), f"unknown {kind.value} event "
                                    f"{name!r}{_hint(name, events)} / 未知事件"))
        if not 0 <= bit <= 63:
            problems.append(Problem(("events", "flags", str(bit)), f"bit {bit} is outside 0..63 "
                                    "/ 位号超出范围"))
    if (em.flags is None) != (em.flags_field is None):
        problems.append(Problem(("events", "flags_field" if em.flags is None else "flags"),
                                "give both 'flags_field' and 'flags' (bit → event), or neither "
                                "/ 标志字段不完整"))
    known_attrs = sorted({a for e in events.values() for a in e.attributes})
    for name, am in em.attribute_maps().items():
        specs = attribute_spec(kind, name)
        if not specs:
            problems.append(Problem(("events", "attributes", name), f"unknown {kind.value} "
                                    f"event attribute {name!r}{_hint(name, known_attrs)} "
                                    "/ 未知事件属性"))
            continue
        choices = [c.value for s in specs for c in s.choices]
        for code, value in (am.map or {}).items():
            if choices and value not in choices:
                problems.append(Problem(("events", "attributes", name, "map", code),
                                        f"{value!r} is not a {name} value"
                                        f"{_hint(str(value), choices)} / 取值无效"))
    return problems
