"""Payload profiles: how one vendor's JSON becomes the normalised vocabulary of its kind.

A profile is data (YAML under ``drivers/profiles/<kind>/``, or a folder named in the config's
``profile_dirs``), so a new vendor is a new file, not a change to the core. The built-in
``native`` profile of each kind is the gateway's own format (documented in the README):
metric names as keys, ``ts`` in seconds or ISO 8601, events as
``{"event": "<kind>", "id": ..., "ts": ..., "attrs": {...}}``. ``docs/devices.md`` describes
every key a profile file may hold.

A profile file with a mistake is refused as a whole, with one line per problem naming the
file and line, the profile, the entry and the fix (``ProfileError.problems``).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.profile_check import UNIT_FACTORS, Loc, check_profile
from gateway.errors import GatewayError
from gateway.types import DeviceKind

__all__ = [
    "UNIT_FACTORS",
    "AttributeMap",
    "EventMap",
    "FieldMap",
    "Profile",
    "ProfileError",
    "builtin_profiles",
    "load_profile",
    "load_profiles",
    "profile_key",
]

PROFILE_DIR = Path(__file__).parent / "profiles"

Scalar = str | bool | int | float


def _str_keys(value: Any) -> Any:
    """YAML reads ``1: open`` with an int key; vendor codes are matched as text."""
    if isinstance(value, dict):
        return {("true" if k is True else "false" if k is False else str(k)): v
                for k, v in value.items()}
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(_Strict):
    """One vendor field (or one bit of it) → one metric.

    Applied in this order: ``bit`` (true when that bit of an integer word is set) or ``map``
    (vendor code → value), else ``raw * scale + offset`` then the ``unit`` conversion.
    """

    metric: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    map: dict[str, Scalar] | None = None
    bit: int | None = Field(None, ge=0, le=63)

    _keys = field_validator("map", mode="before")(_str_keys)

    def convert(self, raw: float, metric_unit: str) -> float:
        value = raw * self.scale + self.offset
        if self.unit is not None:
            value *= UNIT_FACTORS.get((self.unit, metric_unit), 1.0)
        return round(value, 9)

    def invert(self, value: float, metric_unit: str) -> float:
        if self.unit is not None:
            value /= UNIT_FACTORS.get((self.unit, metric_unit), 1.0)
        return round((value - self.offset) / self.scale, 9)


class AttributeMap(_Strict):
    """Where an event attribute is in the vendor's payload, and its vendor codes."""

    path: str
    map: dict[str, Scalar] | None = None

    _keys = field_validator("map", mode="before")(_str_keys)


class EventMap(_Strict):
    """Where a vendor puts its event code (or flag word) and what each code means."""

    code_field: str | list[str] = "event"  # a list: codes joined with "/" ("5/1": major/minor)
    codes: dict[str, str] | None = None  # vendor code → vocabulary event; None: already ours
    flags_field: str | None = None  # an integer word; each set bit is one event
    flags: dict[int, str] | None = None
    id_field: str | None = "id"
    attributes_field: str | None = "attrs"  # a mapping copied as attributes, as it is
    attributes: dict[str, str | AttributeMap] = Field(default_factory=dict)

    _keys = field_validator("codes", mode="before")(_str_keys)

    def attribute_maps(self) -> dict[str, AttributeMap]:
        return {k: v if isinstance(v, AttributeMap) else AttributeMap(path=v)
                for k, v in self.attributes.items()}


class Profile(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: DeviceKind
    description: str = ""
    vendor: str = ""
    timestamp_field: str = "ts"
    timestamp_unit: Literal["s", "ms", "iso"] = "s"
    timestamp_zone: str | None = Field(None, pattern=r"^[+-]\d{2}:\d{2}$")  # for zone-less text
    values_at: str = ""  # dotted path to the mapping of values; "" means the payload itself
    fields: dict[str, FieldMap | list[FieldMap]] | None = None  # None: keys are metric names
    ignore_fields: list[str] = Field(default_factory=list)
    events: EventMap = Field(default_factory=EventMap)

    @property
    def key(self) -> str:
        """How devices name it: ``<kind>.<id>`` (a device's bare ``profile: x`` adds its kind)."""
        return f"{self.kind.value}.{self.id}"

    def field_maps(self) -> dict[str, list[FieldMap]]:
        return {k: v if isinstance(v, list) else [v] for k, v in (self.fields or {}).items()}


def profile_key(kind: DeviceKind, name: str) -> str:
    return name if "." in name else f"{kind.value}.{name}"


class ProfileError(GatewayError):
    """Profile files are invalid; ``problems`` holds one rendered line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def display_path(path: Path) -> str:
    """Shipped files as ``drivers/profiles/...``; others relative to the working folder."""
    try:
        return str(path.resolve().relative_to(PROFILE_DIR.parent.parent))
    except ValueError:
        pass
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------
# Loading, with file and line for every problem


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int],
          dups: list[tuple[Loc, int, int]]) -> None:
    """Record each value's line, and keys given twice in one mapping (PyYAML would keep the
    last one without a word)."""
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in first:
                dups.append(((*loc, key), line, first[key]))
                continue
            first[key] = line
            lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines, dups)


def _read(path: Path, shown: str) -> tuple[Any, dict[Loc, int], list[tuple[Loc, int, int]]]:
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader) if node is not None else {}
    except OSError as exc:
        raise ProfileError([f"{shown}: cannot read file: {exc.strerror} / 无法读取文件"]) from None
    except UnicodeDecodeError:
        raise ProfileError([f"{shown}: file is not UTF-8 text / 文件不是 UTF-8 文本"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        raise ProfileError([f"{where}: invalid YAML: {exc.problem} / YAML 语法错误"]) from None
    except yaml.YAMLError as exc:
        raise ProfileError([f"{shown}: invalid YAML: {exc} / YAML 语法错误"]) from None
    lines: dict[Loc, int] = {}
    dups: list[tuple[Loc, int, int]] = []
    if node is not None:
        _walk(node, (), lines, dups)
    return data, lines, dups


def _fmt_loc(loc: Loc) -> str:
    """Dotted keys, ``[i]`` for list items: ``fields.flags[1].bit``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_BRANCHES = ("FieldMap", "list[FieldMap]", "str", "AttributeMap")


def _drop_union_noise(errors: list[Any]) -> list[Any]:
    """Of a ``FieldMap | list[FieldMap]`` union, keep the errors of the branch that was meant."""
    by_prefix: dict[Loc, set[str]] = {}
    for e in errors:
        loc = tuple(e["loc"])
        for i, part in enumerate(loc):
            if part in _BRANCHES:
                by_prefix.setdefault(loc[:i], set()).add(
                    "type" if len(loc) == i + 1 and e["type"] in ("model_type", "list_type",
                                                                  "string_type") else "inner")
    out = []
    for e in errors:
        loc = tuple(e["loc"])
        branch = next((i for i, p in enumerate(loc) if p in _BRANCHES), None)
        if branch is not None and len(loc) == branch + 1 and e["type"] in (
                "model_type", "list_type", "string_type") and "inner" in by_prefix[loc[:branch]]:
            continue
        out.append(e)
    return out


def _render_pydantic(error: Mapping[str, Any]) -> tuple[Loc, str]:
    loc = tuple(p for p in error["loc"] if p not in _BRANCHES)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent_models = [Profile, FieldMap, EventMap, AttributeMap]
        known = sorted({n for m in parent_models for n in m.model_fields})
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        return loc, f"unknown key{hint}; see docs/devices.md for the keys a profile takes / 未知字段"
    if kind == "missing":
        return loc, "required key is missing / 缺少必填字段"
    if kind == "string_pattern_mismatch" and loc == ("id",):
        suggestion = "-".join(str(error.get("input")).lower().split())
        return loc, (f"{error.get('input')!r} is not a valid profile id; use lower-case "
                     f"letters, digits, '-' and '_' (e.g. {suggestion!r}) / 格式不正确")
    msg = str(error["msg"])
    text = repr(error.get("input"))
    return loc, f"{msg[0].lower()}{msg[1:]} (found {text[:60]}) / 取值无效"


def load_profile(path: Path) -> Profile:
    """Load and check one profile file; raise ProfileError naming every problem."""
    stat = path.stat() if path.is_file() else None
    return _load_profile(path, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@functools.lru_cache(maxsize=256)
def _load_profile(path: Path, mtime_ns: int, size: int) -> Profile:
    """Cached by file version: check-config and the runtime load the same files at start."""
    del mtime_ns, size  # the cache key only
    shown = display_path(path)
    data, lines, dups = _read(path, shown)

    def where(loc: Loc) -> str:
        while loc and loc not in lines:
            loc = loc[:-1]
        line = lines.get(loc)
        return f"{shown}:{line}" if line else f"{shown}:1"

    name = data.get("id") if isinstance(data, dict) else None
    label = f"profile {name!r}" if isinstance(name, str) else "profile"
    rendered = [f"{shown}:{line}: {label} {_fmt_loc(loc)}: duplicate key {loc[-1]!r} (first at "
                f"line {first}); give each key once / 键重复" for loc, line, first in dups]
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        for error in _drop_union_noise(list(exc.errors(include_url=False))):
            loc, msg = _render_pydantic(error)
            rendered.append(f"{where(loc)}: {label} {_fmt_loc(loc)}: {msg}")
        raise ProfileError(_by_line(rendered)) from None
    for p in check_profile(profile):
        rendered.append(f"{where(p.loc)}: {label} {_fmt_loc(p.loc)}: {p.message}")
    if rendered:
        raise ProfileError(_by_line(rendered))
    return profile


def _by_line(lines: list[str]) -> list[str]:
    def line_no(text: str) -> int:
        head = text.split(": ", 1)[0]
        tail = head.rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else 0
    return sorted(lines, key=line_no)


def _natives() -> dict[str, Profile]:
    out: dict[str, Profile] = {}
    for kind in DeviceKind:
        native = Profile(id="native", kind=kind, description="the gateway's own JSON format")
        out[native.key] = native
    return out


def load_profiles(extra_dirs: Iterable[Path] = ()) -> tuple[dict[str, Profile], list[str]]:
    """Every profile that loads, and one rendered line per problem of those that do not."""
    out = _natives()
    origin: dict[str, Path] = {}
    problems: list[str] = []
    for folder in [PROFILE_DIR, *extra_dirs]:
        if not folder.is_dir():
            if folder != PROFILE_DIR:
                problems.append(f"{display_path(folder)}: profile folder not found "
                                "/ 找不到模板目录")
            continue
        for path in sorted(folder.glob("**/*.yaml")):
            try:
                profile = load_profile(path)
            except ProfileError as exc:
                problems += exc.problems
                continue
            if profile.key in out:
                first = origin.get(profile.key)
                where = display_path(first) if first else "built in"
                problems.append(f"{display_path(path)}:1: profile {profile.id!r}: "
                                f"{profile.kind.value} profile {profile.id!r} is already defined "
                                f"({where}); give each profile its own id / 模板编号重复")
                continue
            out[profile.key] = profile
            origin[profile.key] = path
    return out, problems


def builtin_profiles(extra_dirs: Iterable[Path] = ()) -> dict[str, Profile]:
    """The native profile of each kind plus every YAML profile shipped or in ``extra_dirs``.

    Raises ProfileError with every problem of every file (and ids given twice).
    """
    profiles, problems = load_profiles(extra_dirs)
    if problems:
        raise ProfileError(problems)
    return profiles
