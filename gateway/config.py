"""The gateway's one configuration file, validated into typed models before anything starts.

A bad file raises ``ConfigError`` with one line per problem: file and line, the field path
with the item's id, the value found, and what was expected (with "did you mean" for
misspelt keys). ``estate-gateway check-config`` prints the same text and exits 2.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.modbus.config import ModbusBindingConfig, ModbusBusConfig
from drivers.modbus.config import cross_check as modbus_cross_check
from drivers.modbus.mapfile import MapError, load_maps
from drivers.profiles import load_profiles, profile_key
from gateway.errors import ConfigError
from gateway.policy import AuthConfig, CommandsConfig, WatchdogConfig
from gateway.types import Device, DeviceKind, Location
from gateway.upstream.config import CloudConfig
from gateway.vocabulary import EVENTS, METRICS
from gateway.yamlsource import SourceMap, YamlSourceError, load_with_lines
from rules.config import (
    AbsenceCondition,
    AlarmHandlingConfig,
    CountCondition,
    EventCondition,
    RuleConfig,
    ScheduleCondition,
    iter_leaves,
)
from rules.config import ThresholdCondition
from rules.workorder_config import WorkOrdersConfig

__all__ = [
    "ApiConfig",
    "BrokerConfig",
    "ConsoleConfig",
    "DeviceConfig",
    "GatewayConfig",
    "InfluxConfig",
    "ReportByExceptionConfig",
    "StoreConfig",
    "load_config",
    "parse_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = ""
    timezone: str = "Asia/Shanghai"


class TlsConfig(_Strict):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


class BrokerConfig(_Strict):
    """The estate's MQTT broker. ``embedded: true`` starts an in-process broker (demo only)."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    tls: TlsConfig | None = None
    topic_prefix: str = Field("estate", pattern=r"^[^#+/][^#+]*$")
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)
    max_payload_bytes: int = Field(65_536, ge=64, le=16_777_216)
    embedded: bool = False

    def password(self) -> str | None:
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        return None


class RetentionConfig(_Strict):
    readings_days: float = Field(15, gt=0)
    rollup_1m_days: float = Field(90, gt=0)
    rollup_1h_days: float = Field(730, gt=0)
    events_days: float = Field(180, gt=0)
    alarms_days: float = Field(365, gt=0)
    dead_letters: int = Field(10_000, ge=10)


class ReportByExceptionConfig(_Strict):
    """Store a metric's reading only when it moved by more than ``deadband`` (in the
    metric's unit) or nothing was stored for ``max_silence_s``."""

    deadband: float = Field(0.0, ge=0)
    max_silence_s: float = Field(900.0, gt=0)


class StoreConfig(_Strict):
    path: str = "/var/lib/estate-gateway"
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    batch_max: int = Field(5_000, ge=1, le=100_000)
    # readings of the batches ingested within this many ms are written in one transaction
    # (``gateway/store/groupcommit.py``); 0: a transaction per batch
    batch_interval_ms: int = Field(5, ge=0, le=10_000)
    # Budget of the telemetry database (raw points, rollups, influx outbox); None = no limit.
    max_bytes: int | None = Field(None, ge=1_048_576)
    on_full: Literal["prune_oldest", "drop_new"] = "prune_oldest"
    # the store.full alarm is raised at this share of max_bytes, cleared 5 points below
    fill_alarm_pct: float = Field(90.0, gt=0, le=100)
    report_by_exception: dict[str, ReportByExceptionConfig] = Field(default_factory=dict)


class InfluxConfig(_Strict):
    """An InfluxDB 2.x/3.x (or any v2-write-API) server fed from the embedded store.

    The token comes from ``token_env`` or ``token_file``, never from this file.
    """

    enabled: bool = True
    url: str = Field(pattern=r"^https?://")
    org: str = ""
    bucket: str = Field(min_length=1)
    token_env: str | None = None
    token_file: str | None = None
    batch_size: int = Field(5_000, ge=1, le=100_000)
    timeout_s: float = Field(10.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    retry_initial_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _one_token_source(self) -> InfluxConfig:
        if self.token_env and self.token_file:
            raise ValueError("give token_env or token_file, not both")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(f"retry_max_s ({self.retry_max_s}) must be at least "
                             f"retry_initial_s ({self.retry_initial_s})")
        return self

    def token(self) -> str:
        """The token, read now; empty when neither source is configured (no auth).

        Raises:
            ConfigError: the environment variable is unset or the file cannot be read.
        """
        if self.token_env:
            value = os.environ.get(self.token_env)
            if value is None:
                raise ConfigError("influx", [f"influx.token_env: environment variable "
                                             f"{self.token_env!r} is not set"])
            return value.strip()
        if self.token_file:
            try:
                return Path(self.token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError("influx", [f"influx.token_file: cannot read "
                                             f"{self.token_file!r}: {exc.strerror}"]) from None
        return ""


class ApiConfig(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    cors_allow_origins: list[str] = Field(default_factory=list)  # closed unless listed
    auth: AuthConfig = Field(default_factory=AuthConfig)


class ConsoleConfig(_Strict):
    """The operator console: shift length and the alarm-flood threshold (EEMUA 191)."""

    shift_max_hours: float = Field(8, gt=0, le=24)
    flood_alarms: int = Field(10, ge=1)  # more than this many raised alarms ...
    flood_window_s: float = Field(600, gt=0)  # ... within this window is a flood


class LocationConfig(_Strict):
    building: str
    floor: str | int | None = None
    zone: str | None = None


class DeviceConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: DeviceKind
    location: LocationConfig
    transport: Literal["mqtt", "modbus"] = "mqtt"
    profile: str = "native"
    name: str = ""
    tags: list[str] = Field(default_factory=list)
    modbus: ModbusBindingConfig | None = None

    def to_device(self) -> Device:
        loc = self.location
        return Device(
            id=self.id,
            kind=self.kind,
            location=Location(loc.building, None if loc.floor is None else str(loc.floor),
                              loc.zone),
            transport=self.transport,
            profile=self.profile,
            name=self.name,
            tags=tuple(self.tags),
        )


class GatewayConfig(_Strict):
    site: SiteConfig
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    influx: InfluxConfig | None = None
    api: ApiConfig = Field(default_factory=ApiConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    include: list[str] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    alarms: AlarmHandlingConfig = Field(default_factory=AlarmHandlingConfig)
    modbus_buses: list[ModbusBusConfig] = Field(default_factory=list)
    modbus_map_dirs: list[str] = Field(default_factory=list)  # relative to this file
    profile_dirs: list[str] = Field(default_factory=list)  # MQTT payload profiles, likewise
    commands: CommandsConfig = Field(default_factory=CommandsConfig)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    work_orders: WorkOrdersConfig = Field(default_factory=WorkOrdersConfig)
    cloud: CloudConfig = Field(default_factory=CloudConfig)

    def device_list(self) -> list[Device]:
        return [d.to_device() for d in self.devices]


# ---------------------------------------------------------------------------------------
# Rendering pydantic's errors as one readable line each

_ZH = {
    "missing": "缺少必填字段",
    "extra_forbidden": "未知字段",
    "enum": "取值不在允许范围内",
    "literal_error": "取值不在允许范围内",
    "string_pattern_mismatch": "格式不正确",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文本",
    "list_type": "应为列表",
    "dict_type": "应为映射 (键: 值)",
    "model_type": "应为映射 (键: 值)",
    "greater_than_equal": "数值过小",
    "greater_than": "数值过小",
    "less_than_equal": "数值过大",
    "less_than": "数值过大",
    "value_error": "取值无效",
    "union_tag_invalid": "类型未知",
    "union_tag_not_found": "缺少 type 字段",
}


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation can hold (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (list, Sequence, set, tuple):
        return _unwrap(typing.get_args(annotation)[0])
    if origin is dict:
        return _unwrap(typing.get_args(annotation)[1])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _walk(loc: tuple[str | int, ...]) -> tuple[list[str | int], list[type[BaseModel]]]:
    """Strip union tags from ``loc``; return the clean path and the models at its end."""
    models: list[type[BaseModel]] = [GatewayConfig]
    clean: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            clean.append(part)
            continue
        # a discriminated union tag names one of the candidate models
        tagged = [m for m in models if _tag_of(m) == part]
        if tagged and not any(part in m.model_fields for m in models):
            models = tagged
            continue
        clean.append(part)
        nxt: list[type[BaseModel]] = []
        for m in models:
            f = m.model_fields.get(part)
            if f is not None:
                nxt.extend(_unwrap(f.annotation))
        models = nxt
    return clean, models


def _tag_of(model: type[BaseModel]) -> str | None:
    f = model.model_fields.get("type")
    if f is None:
        return None
    args = typing.get_args(f.annotation)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def _fmt_path(clean: list[str | int], data: Any) -> str:
    out = ""
    node = data
    for part in clean:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                out += f" ({node['id']})"
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected_choices(error: dict[str, Any]) -> list[str]:
    ctx = error.get("ctx") or {}
    expected = ctx.get("expected")
    if isinstance(expected, str):
        return [c.strip().strip("'") for c in expected.replace(" or ", ",").split(",")
                if c.strip()]
    return []


def _render_one(error: dict[str, Any], data: Any) -> tuple[tuple[str | int, ...], str]:
    clean, models = _walk(tuple(error["loc"]))
    kind = error["type"]
    zh = _ZH.get(kind, "")
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(clean[-1])
        _, parents = _walk(tuple(error["loc"])[:-1])
        known = sorted({name for m in parents for name in m.model_fields})
        guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        msg = f"unknown field{hint}; expected one of {', '.join(known)}"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind in ("enum", "literal_error"):
        choices = _expected_choices(error)
        guess = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        msg = f"{_show(value)} is not allowed{hint}; expected one of " + ", ".join(
            f"'{c}'" for c in choices)
    elif kind == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        guess = difflib.get_close_matches(str(ctx.get("tag")), tags, n=1, cutoff=0.6)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        msg = f"unknown type {ctx.get('tag')!r}{hint}; expected one of {ctx.get('expected_tags')}"
    elif kind == "value_error":
        text = str(error["msg"]).removeprefix("Value error, ")
        msg = text
    else:
        msg = f"{error['msg'][0].lower()}{error['msg'][1:]} (found {_show(value)})"
    if zh:
        msg += f" / {zh}"
    return tuple(clean), msg


def _locate(smap: SourceMap, clean: tuple[str | int, ...], fallback: str) -> str:
    origin = smap.origin(clean)
    return f"{origin.file}:{origin.line}" if origin else fallback


def _cross_check(cfg: GatewayConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems no single field shows: duplicate ids, rules that name unknown things."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, int] = {}
    for i, dev in enumerate(cfg.devices):
        if dev.id in seen:
            problems.append(((("devices", i, "id")),
                             f"duplicate device id {dev.id!r} (first at devices[{seen[dev.id]}])"
                             " / 设备编号重复"))
        else:
            seen[dev.id] = i
    problems.extend(_check_commands(cfg))
    rule_seen: dict[str, int] = {}
    kinds_by_id = {d.id: d.kind for d in cfg.devices}
    for i, rule in enumerate(cfg.rules):
        if rule.id in rule_seen:
            problems.append((("rules", i, "id"),
                             f"duplicate rule id {rule.id!r} (first at rules[{rule_seen[rule.id]}])"
                             " / 规则编号重复"))
        else:
            rule_seen[rule.id] = i
        for j, dev_id in enumerate(rule.select.devices or []):
            if dev_id not in kinds_by_id:
                guess = difflib.get_close_matches(dev_id, list(kinds_by_id), n=1)
                hint = f" (did you mean '{guess[0]}'?)" if guess else ""
                problems.append((("rules", i, "select", "devices", j),
                                 f"unknown device {dev_id!r}{hint} / 设备不存在"))
        kinds = ({rule.select.kind} if rule.select.kind else
                 {kinds_by_id[d] for d in rule.select.devices or [] if d in kinds_by_id}
                 or set(DeviceKind))
        problems.extend(_check_rule_names(i, rule, kinds, {r.id for r in cfg.rules}))
    for i, sched in enumerate(cfg.work_orders.schedules):
        for j, dev_id in enumerate(sched.devices or []):
            if dev_id not in kinds_by_id:
                guess = difflib.get_close_matches(dev_id, list(kinds_by_id), n=1)
                hint = f" (did you mean '{guess[0]}'?)" if guess else ""
                problems.append((("work_orders", "schedules", i, "devices", j),
                                 f"unknown device {dev_id!r}{hint} / 设备不存在"))
    return problems


def _leaf_loc(path: str) -> tuple[str | int, ...]:
    """Condition tree path ``0.1.0`` → config location ``when.conditions[1].conditions[0]``."""
    loc: list[str | int] = ["when"]
    for part in path.split(".")[1:]:
        loc += ["conditions", int(part)]
    return tuple(loc)


def _check_rule_names(i: int, rule: RuleConfig, kinds: set[DeviceKind], rule_ids: set[str]
                      ) -> list[tuple[tuple[str | int, ...], str]]:
    """Metrics, events and rules a rule names must exist (in the vocabulary of its kinds)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    metrics = sorted({m for k in kinds for m in METRICS[k]})
    events = sorted({e for k in kinds for e in EVENTS[k]})
    label = "/".join(sorted(kinds))

    def check(loc: tuple[str | int, ...], name: str, known: list[str], what: str,
              zh: str) -> None:
        if name not in known:
            guess = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            problems.append((("rules", i, *loc), f"unknown {what} {name!r} for {label}{hint}"
                                                 f" / {zh}"))

    for path, leaf in iter_leaves(rule.when):
        loc = _leaf_loc(path)
        if isinstance(leaf, EventCondition | CountCondition):
            check((*loc, "event"), leaf.event, events, "event", "未知事件")
            clear = getattr(leaf, "clear_event", None)
            if clear is not None:
                check((*loc, "clear_event"), clear, events, "event", "未知事件")
        elif isinstance(leaf, AbsenceCondition):
            if leaf.metric is not None:
                check((*loc, "metric"), leaf.metric, metrics, "metric", "未知指标")
        elif not isinstance(leaf, ScheduleCondition):
            check((*loc, "metric"), leaf.metric, metrics, "metric", "未知指标")
    if rule.suppress_when is not None:
        check(("suppress_when", "metric"), rule.suppress_when.metric, metrics, "metric",
              "未知指标")
    for j, inh in enumerate(rule.inhibited_by):
        if inh.rule not in rule_ids:
            guess = difflib.get_close_matches(inh.rule, sorted(rule_ids), n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            problems.append((("rules", i, "inhibited_by", j, "rule"),
                             f"unknown rule {inh.rule!r}{hint} / 规则不存在"))
    return problems


def _check_commands(cfg: GatewayConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Command allow-lists must name configured devices; rule actions must be allowed."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    known = [d.id for d in cfg.devices]
    for dev_id, dc in cfg.commands.devices.items():
        if dev_id not in known:
            guess = difflib.get_close_matches(dev_id, known, n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            problems.append((("commands", "devices", dev_id),
                             f"unknown device {dev_id!r}{hint} / 设备不存在"))
        for j, action in enumerate(dc.rule_actions):
            if action not in dc.actions:
                problems.append((("commands", "devices", dev_id, "rule_actions", j),
                                 f"rule action {action!r} is not in this device's actions "
                                 f"{dc.actions} / 规则指令不在允许列表中"))
    return problems


def parse_config(data: Any, smap: SourceMap, file: str) -> GatewayConfig:
    """Validate loaded data; raise ConfigError with every problem rendered."""
    if not isinstance(data, dict):
        raise ConfigError(file, [f"{file}:1: (top level): expected a mapping (key: value), "
                                 f"found {type(data).__name__} / 顶层应为映射"])
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            clean, msg = _render_one(dict(error), data)
            where = _locate(smap, clean, file)
            lines.append(f"{where}: {_fmt_path(list(clean), data)}: {msg}")
        raise ConfigError(file, lines) from None
    crossed, map_problems = _cross_check(cfg), []
    profile_refs, profile_files = _check_profiles(cfg, file)
    crossed += profile_refs
    if cfg.modbus_buses or cfg.modbus_map_dirs or any(d.modbus for d in cfg.devices) or any(
            d.transport == "modbus" for d in cfg.devices):
        try:  # the Modbus checks live with the driver; maps are refused with their own lines
            maps = load_maps([Path(file).parent / d for d in cfg.modbus_map_dirs])
            crossed += modbus_cross_check(cfg.modbus_buses, cfg.devices, maps)
        except MapError as exc:
            map_problems = exc.problems
    if crossed or map_problems or profile_files:
        raise ConfigError(file, [f"{_locate(smap, loc, file)}: {_fmt_path(list(loc), data)}: {m}"
                                 for loc, m in crossed] + profile_files + map_problems)
    return cfg


def _check_profiles(cfg: GatewayConfig, file: str) -> tuple[
        list[tuple[tuple[str | int, ...], str]], list[str]]:
    """Load every payload profile (shipped and ``profile_dirs``, relative to the config file)
    and check each MQTT device names one of its kind; profile files report their own lines."""
    dirs = [str(Path(file).parent / d) for d in cfg.profile_dirs]
    problems: list[tuple[tuple[str | int, ...], str]] = [
        (("profile_dirs", i), f"folder {d!r} not found (looked in {dirs[i]}) / 找不到模板目录")
        for i, d in enumerate(cfg.profile_dirs) if not Path(dirs[i]).is_dir()]
    profiles, files = load_profiles([Path(d) for d in dirs if Path(d).is_dir()])
    for i, dev in enumerate(cfg.devices):
        found = profiles.get(profile_key(dev.kind, dev.profile))
        if dev.transport != "mqtt" or (found is not None and found.kind == dev.kind):
            continue
        known = sorted(p.id for p in profiles.values() if p.kind == dev.kind)
        guess = difflib.get_close_matches(dev.profile, known, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        if found is not None:
            hint = f" (that profile is for {found.kind.value})"
        problems.append((("devices", i, "profile"),
                         f"unknown {dev.kind.value} profile {dev.profile!r}{hint}; expected one "
                         f"of {', '.join(known)} (or add a file to profile_dirs) / 未知报文模板"))
    return problems, files


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        data, smap = load_with_lines(path)
    except YamlSourceError as exc:
        raise ConfigError(exc.file, [exc.problem]) from None
    return parse_config(data, smap, str(path))
