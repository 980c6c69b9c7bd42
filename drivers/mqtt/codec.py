"""MQTT topic + payload bytes → normalised Readings and Events; pure, no I/O, table-tested.

Topic scheme: ``<prefix>/<site>/<building>/<kind>/<device>/<channel>`` where channel is
``telemetry``, ``event`` or ``status``. Anything the codec cannot use becomes a
``Rejection`` with a reason from ``REASONS``; the driver counts and keeps it.

The payload is read through the device's profile (``drivers.profiles``): where the time and
the values are, vendor field → metric (nested fields as dotted keys, code maps, bits of a
word, scale and unit), vendor event code (or flag word) → vocabulary event, attributes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from drivers.profiles import AttributeMap, EventMap, FieldMap, Profile, profile_key
from gateway.types import Device, DeviceStatus, Event, Observation, Quality, Reading, Value
from gateway.vocabulary import EVENTS, METRICS, MetricSpec

__all__ = ["REASONS", "Decoded", "MqttCodec", "Rejection"]

REASONS = (
    "oversize",
    "unknown_topic",
    "unknown_device",
    "topic_mismatch",
    "malformed_json",
    "not_an_object",
    "bad_timestamp",
    "unknown_metric",
    "wrong_type",
    "non_finite",
    "out_of_range",
    "unknown_event",
    "no_values",
)
"""Every reason a message (or one field of it) is rejected; each is a /metrics label."""

CHANNELS = ("telemetry", "event", "status")
OUTBOUND = ("command",)  # the gateway's own messages to devices: not input, not rejected
MAX_FUTURE_SKEW_S = 300.0
MAX_PAST_S = 400 * 86_400.0
ROUTE_CACHE_MAX = 100_000
_OUTBOUND = object()  # a route: the gateway's own outbound topic, neither input nor rejected
_NUMBER = (int, float)  # a tuple: isinstance with ``int | float`` is slower on 3.11
_isfinite = math.isfinite
_GOOD = Quality.GOOD  # enum member lookups cost a descriptor call on 3.11
_UNCERTAIN = Quality.UNCERTAIN


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


@dataclass(slots=True)
class Decoded:
    """What messages decoded to. ``MqttCodec.decode_into`` appends to one of these, so a
    driver can collect a whole batch's observations in one list; ``skew_corrected`` is
    about the last message decoded."""

    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    skew_corrected: bool = False


@dataclass(frozen=True, slots=True)
class _Route:
    """A topic's device and channel, with what decoding its messages needs from the
    device's profile, looked up once per topic instead of once per message."""

    device: Device
    channel: str
    profile: Profile
    metrics: Mapping[str, MetricSpec]
    skip: frozenset[str]  # body keys that are not metrics
    field_maps: dict[str, list[FieldMap]] | None  # None: body keys are metric names
    attribute_maps: dict[str, AttributeMap]
    timestamp_path: tuple[str, ...]  # () : the body itself (never a time: rejected)
    values_path: tuple[str, ...]  # () : the values are the body itself


def _dig(obj: Any, path: str) -> Any:
    if not path:
        return obj
    return _dig_parts(obj, path.split("."))


def _dig_parts(obj: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if type(obj) is not dict and not isinstance(obj, Mapping):  # dict: skip the ABC check
            return None
        obj = obj.get(part)
    return obj


def _timestamp(raw: Any, unit: str, zone: str | None = None) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(raw, _NUMBER):
        ts = float(raw) / 1000.0 if unit == "ms" else float(raw)
        if not math.isfinite(ts):
            raise ValueError("not finite")
        return ts
    if isinstance(raw, str):
        text = raw.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                return _timestamp(float(text), unit)
            except ValueError:
                raise ValueError(f"not a time: {raw[:40]!r}") from None
        if parsed.tzinfo is None:
            if zone is None:
                raise ValueError(f"time without a zone: {raw[:40]!r} (add Z or +08:00)")
            parsed = datetime.fromisoformat(text + zone)
        return parsed.timestamp()
    raise ValueError(f"not a time: {type(raw).__name__}")


def _coerce(spec: MetricSpec, raw: Any) -> Value:
    """The value as its metric's type; raises ValueError with the reason as first arg."""
    kind = spec.kind
    t = type(raw)
    if (t is float or t is int) and (kind == "float" or kind == "int"):
        # the common case first, without the checks a number cannot fail (bool is not int
        # here: type(True) is bool)
        value = float(raw)
        if not _isfinite(value):
            raise ValueError("non_finite", f"{raw!r}")
        low, high = spec.low, spec.high
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError("out_of_range", f"{value:g} outside [{low:g}, {high:g}]")
        if kind == "int":
            if value != int(value):
                raise ValueError("wrong_type", f"expected a whole number, found {raw!r}")
            return int(value)
        return value
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.lower() in ("true", "false", "on", "off"):
            return raw.lower() in ("true", "on")
        raise ValueError("wrong_type", f"expected true/false, found {raw!r}"[:120])
    if spec.kind == "str":
        if not isinstance(raw, str):
            raise ValueError("wrong_type", f"expected one of {spec.states}, found {raw!r}"[:120])
        if spec.states and raw not in spec.states:
            raise ValueError("out_of_range", f"{raw[:40]!r} is not one of {spec.states}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, _NUMBER):
        raise ValueError("wrong_type", f"expected a number, found {raw!r}"[:120])
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("non_finite", f"{raw!r}")
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        raise ValueError("out_of_range", f"{value:g} outside [{spec.low:g}, {spec.high:g}]")
    if spec.kind == "int":
        if value != int(value):
            raise ValueError("wrong_type", f"expected a whole number, found {raw!r}")
        return int(value)
    return value


class MqttCodec:
    """Decodes messages for the configured devices of one site."""

    def __init__(self, *, prefix: str, site: str, devices: list[Device],
                 profiles: Mapping[str, Profile], max_payload_bytes: int) -> None:
        self.prefix_parts = tuple(prefix.split("/"))
        self.site = site
        self.devices = {d.id: d for d in devices}
        self.profiles = {d.id: profiles[profile_key(d.kind, d.profile)] for d in devices
                         if d.transport == "mqtt"}
        used = {p.key: p for p in self.profiles.values()}
        self.field_maps = {k: p.field_maps() if p.fields is not None else None
                           for k, p in used.items()}
        self.attribute_maps: dict[str, dict[str, AttributeMap]] = {
            k: p.events.attribute_maps() for k, p in used.items()}
        self.max_payload_bytes = max_payload_bytes
        # topic → where its messages go (or why they are refused): the topic checks run
        # once per topic instead of once per message; bounded against topic floods
        self._routes: dict[str, tuple[Device, str] | Rejection | object] = {}
        # body keys that are not metrics, per profile (the time field only when the values
        # sit beside it)
        self._skip = {k: frozenset({"id", *p.ignore_fields,
                                    *(() if p.values_at else (p.timestamp_field,))})
                      for k, p in used.items()}

    @property
    def subscription(self) -> str:
        return "/".join((*self.prefix_parts, self.site, "+", "+", "+", "+"))

    def decode(self, topic: str, payload: bytes, now: float) -> Decoded:
        out = Decoded()
        self.decode_into(topic, payload, now, out)
        return out

    def decode_into(self, topic: str, payload: bytes, now: float, out: Decoded) -> None:
        """Decode one message, appending to ``out`` (sets ``out.skew_corrected`` for it)."""
        out.skew_corrected = False
        if len(payload) > self.max_payload_bytes:
            out.rejections.append(Rejection(
                "oversize", f"{len(payload)} bytes > max_payload_bytes {self.max_payload_bytes}"))
            return
        route = self._routes.get(topic)
        if route is None:
            route = self._route(topic)
            if len(self._routes) < ROUTE_CACHE_MAX:
                self._routes[topic] = route
        if type(route) is not _Route:
            if route is not _OUTBOUND:
                out.rejections.append(route)  # type: ignore[arg-type]
            return
        channel = route.channel
        if channel == "status":
            self._status(route.device, payload, now, out)
            return
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            out.rejections.append(Rejection("malformed_json", str(exc)[:120]))
            return
        if type(body) is not dict:  # orjson gives exactly dict for an object
            out.rejections.append(Rejection("not_an_object",
                                            f"payload is a JSON {type(body).__name__}"))
            return
        profile = route.profile
        path = route.timestamp_path
        raw_at = body.get(path[0]) if len(path) == 1 else _dig_parts(body, path)
        if raw_at is None:
            at = now
        else:
            try:
                at = _timestamp(raw_at, profile.timestamp_unit, profile.timestamp_zone)
            except ValueError as exc:
                out.rejections.append(Rejection("bad_timestamp", str(exc)))
                return
            assert at is not None
            if at > now + MAX_FUTURE_SKEW_S or at < now - MAX_PAST_S:
                at = now  # a device clock far off: keep the value, stamp it on arrival
                out.skew_corrected = True
        if channel == "telemetry":
            self._telemetry(route, body, at, now, out)
        else:
            self._event(route, body, at, now, out)

    def _route(self, topic: str) -> _Route | Rejection | object:
        """Where a topic's messages go: a ``_Route``, a rejection, or ``_OUTBOUND``."""
        parts = topic.split("/")
        n = len(self.prefix_parts)
        if len(parts) == n + 5 and parts[n + 4] in OUTBOUND:
            return _OUTBOUND
        if (len(parts) != n + 5 or tuple(parts[:n]) != self.prefix_parts
                or parts[n] != self.site or parts[n + 4] not in CHANNELS):
            return Rejection(
                "unknown_topic", f"expected {'/'.join(self.prefix_parts)}/{self.site}/"
                "<building>/<kind>/<device>/telemetry|event|status")
        building, kind, device_id, channel = parts[n + 1:n + 5]
        device = self.devices.get(device_id)
        if device is None or device_id not in self.profiles:
            return Rejection("unknown_device", f"no MQTT device {device_id!r}")
        if kind != device.kind.value or building != device.location.building:
            return Rejection(
                "topic_mismatch", f"device {device_id!r} is {device.kind.value} in "
                f"{device.location.building}, topic says {kind} in {building}")
        profile = self.profiles[device_id]
        key = profile.key
        return _Route(device, channel, profile, METRICS[device.kind], self._skip[key],
                      self.field_maps[key], self.attribute_maps[key],
                      tuple(profile.timestamp_field.split(".")) if profile.timestamp_field
                      else (),
                      tuple(profile.values_at.split(".")) if profile.values_at else ())

    def _status(self, device: Device, payload: bytes, now: float, out: Decoded) -> None:
        text = payload.decode("utf-8", "replace").strip().strip('"').lower()
        if text.startswith("{"):
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                out.rejections.append(Rejection("malformed_json", str(exc)[:120]))
                return
            online = body.get("online") if isinstance(body, dict) else None
        else:
            online = {"online": True, "offline": False, "1": True, "0": False}.get(text)
        if not isinstance(online, bool):
            out.rejections.append(Rejection("wrong_type",
                                            "status must be online/offline or {\"online\": bool}"))
            return
        out.observations.append(DeviceStatus(device.id, online, now,
                                             "device reported" if online else "device reported"))

    def _telemetry(self, route: _Route, body: dict[str, Any], at: float, now: float,
                   out: Decoded) -> None:
        values = _dig_parts(body, route.values_path) if route.values_path else body
        if type(values) is not dict and not isinstance(values, Mapping):
            out.rejections.append(Rejection("no_values",
                                            f"no mapping at {route.profile.values_at!r}"))
            return
        device = route.device
        device_id = device.id
        metrics = route.metrics
        skip = route.skip
        quality = _UNCERTAIN if out.skew_corrected else _GOOD
        field_maps = route.field_maps
        observations, rejections = out.observations, out.rejections
        n_obs, n_rej = len(observations), len(rejections)
        append = observations.append
        if field_maps is None:  # body keys are metric names: the common case, kept short
            for key, raw in values.items():
                if key in skip:
                    continue
                spec = metrics.get(key)
                if spec is None:
                    rejections.append(Rejection(
                        "unknown_metric", f"{key!r} is not a {device.kind.value} metric"[:120]))
                    continue
                try:
                    value = _coerce(spec, raw)
                except ValueError as exc:
                    reason, detail = exc.args
                    rejections.append(Rejection(reason, f"{key}: {detail}"))
                    continue
                append(Reading(device_id, key, value, at, spec.unit, quality, now))
        else:
            for key, raw in _flatten(values, "", skip, field_maps):
                maps = field_maps.get(key)
                if maps is None:
                    rejections.append(Rejection("unknown_metric",
                                                f"vendor field {key!r} is not mapped"[:120]))
                    continue
                for fm in maps:
                    name = fm.metric
                    spec = metrics.get(name)
                    if spec is None:
                        rejections.append(Rejection(
                            "unknown_metric",
                            f"{key!r} is not a {device.kind.value} metric"[:120]))
                        continue
                    try:
                        value = _coerce(spec, _convert(fm, spec, raw))
                    except ValueError as exc:
                        reason, detail = exc.args
                        rejections.append(Rejection(reason, f"{name}: {detail}"))
                        continue
                    append(Reading(device_id, name, value, at, spec.unit, quality, now))
        if len(observations) == n_obs and len(rejections) == n_rej:
            rejections.append(Rejection("no_values", "telemetry carried no metric"))

    def _event(self, route: _Route, body: dict[str, Any], at: float, now: float,
               out: Decoded) -> None:
        device = route.device
        em = route.profile.events
        names = self._event_names(device, em, body, out)
        if not names:
            return
        attrs: dict[str, Value] = {}
        raw_attrs = _dig(body, em.attributes_field) if em.attributes_field else None
        if isinstance(raw_attrs, Mapping):
            for k, v in raw_attrs.items():
                if isinstance(v, str | int | float | bool) and not (
                        isinstance(v, float) and not math.isfinite(v)):
                    attrs[str(k)] = v
        for ours, am in route.attribute_maps.items():
            v = _dig(body, am.path)
            if isinstance(v, str | int | float | bool):
                attrs[ours] = am.map.get(_code(v), v) if am.map else v
        raw_id = _dig(body, em.id_field) if em.id_field else None
        for name in names:
            suffix = f":{name}" if len(names) > 1 else ""
            if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) and str(raw_id):
                event_id = f"{device.id}:{raw_id}{suffix}"
            else:
                digest = hashlib.blake2b(f"{device.id}|{name}|{at!r}".encode(), digest_size=10)
                event_id = f"{device.id}:{digest.hexdigest()}"
            out.observations.append(Event(device.id, name, at, event_id, attrs, now))

    @staticmethod
    def _event_names(device: Device, em: EventMap, body: dict[str, Any],
                     out: Decoded) -> list[str]:
        known = EVENTS[device.kind]
        if em.flags_field is not None and em.flags is not None:
            word = _dig(body, em.flags_field)
            if isinstance(word, bool) or not isinstance(word, int) or word <= 0:
                out.rejections.append(Rejection(
                    "unknown_event", f"{em.flags_field!r} is not a flag word: {word!r}"[:120]))
                return []
            unknown = [b for b in range(word.bit_length()) if word >> b & 1 and b not in em.flags]
            if unknown:
                out.rejections.append(Rejection(
                    "unknown_event", f"bits {unknown} of {em.flags_field!r} are not mapped"))
            return [em.flags[b] for b in sorted(em.flags) if word >> b & 1]
        paths = [em.code_field] if isinstance(em.code_field, str) else em.code_field
        parts = [_dig(body, p) for p in paths]
        if any(p is None or isinstance(p, Mapping | list) for p in parts):
            out.rejections.append(Rejection("unknown_event",
                                            f"no {'/'.join(paths)!r} field"[:120]))
            return []
        code = "/".join(_code(p) for p in parts)
        name = em.codes.get(code) if em.codes is not None else code
        if name is None or name not in known:
            out.rejections.append(Rejection(
                "unknown_event", f"{code[:40]!r} is not a {device.kind.value} event"))
            return []
        return [name]


def _code(raw: Any) -> str:
    """A vendor code as text: ``1``, ``"1"`` and ``1.0`` match the YAML key ``1``."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _flatten(values: Mapping[str, Any], prefix: str, skip: AbstractSet[str],
             fields: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Nested vendor objects as dotted keys (``pump.run``), stopping at mapped fields."""
    for k, v in values.items():
        key = f"{prefix}{k}"
        if key in skip:
            continue
        if isinstance(v, Mapping) and key not in fields:
            yield from _flatten(v, f"{key}.", skip, fields)
        else:
            yield key, v


def _convert(fm: FieldMap, spec: MetricSpec, raw: Any) -> Any:
    if fm.bit is not None:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise ValueError("wrong_type", f"expected a non-negative integer word, found "
                             f"{raw!r}"[:120])
        return bool(raw >> fm.bit & 1)
    if fm.map is not None:
        if isinstance(raw, Mapping | list):
            raise ValueError("wrong_type", f"expected a vendor code, found {raw!r}"[:120])
        code = _code(raw)
        if code not in fm.map:
            raise ValueError("out_of_range", f"vendor code {code[:40]!r} is not in the "
                             "profile's map")
        return fm.map[code]
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return fm.convert(raw, spec.unit)
    return raw


def topic_for(prefix: str, site: str, device: Device, channel: str) -> str:
    """The topic a device publishes on; used by simulators and tests."""
    return f"{prefix}/{site}/{device.location.building}/{device.kind.value}/{device.id}/{channel}"
