"""MQTT topic + payload bytes → normalised Readings and Events; pure, no I/O, table-tested.

Topic scheme: ``<prefix>/<site>/<building>/<kind>/<device>/<channel>`` where channel is
``telemetry``, ``event`` or ``status``. Anything the codec cannot use becomes a
``Rejection`` with a reason from ``REASONS``; the driver counts and keeps it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from drivers.profiles import Profile
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


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


@dataclass(slots=True)
class Decoded:
    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    skew_corrected: bool = False


def _dig(obj: Any, path: str) -> Any:
    if not path:
        return obj
    for part in path.split("."):
        if type(obj) is not dict and not isinstance(obj, Mapping):  # dict: skip the ABC check
            return None
        obj = obj.get(part)
    return obj


def _timestamp(raw: Any, unit: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(raw, int | float):
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
            raise ValueError(f"time without a zone: {raw[:40]!r} (add Z or +08:00)")
        return parsed.timestamp()
    raise ValueError(f"not a time: {type(raw).__name__}")


def _coerce(spec: MetricSpec, raw: Any) -> Value:
    """The value as its metric's type; raises ValueError with the reason as first arg."""
    if spec.kind == "bool":
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
    if isinstance(raw, bool) or not isinstance(raw, int | float):
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
        self.profiles = {d.id: profiles[_profile_key(d)] for d in devices
                         if d.transport == "mqtt"}
        self.max_payload_bytes = max_payload_bytes
        # topic → where its messages go (or why they are refused): the topic checks run
        # once per topic instead of once per message; bounded against topic floods
        self._routes: dict[str, tuple[Device, str] | Rejection | object] = {}
        self._skip = {i: frozenset({p.timestamp_field, "id", *p.ignore_fields})
                      for i, p in self.profiles.items()}  # body keys that are not metrics

    @property
    def subscription(self) -> str:
        return "/".join((*self.prefix_parts, self.site, "+", "+", "+", "+"))

    def decode(self, topic: str, payload: bytes, now: float) -> Decoded:
        out = Decoded()
        if len(payload) > self.max_payload_bytes:
            out.rejections.append(Rejection(
                "oversize", f"{len(payload)} bytes > max_payload_bytes {self.max_payload_bytes}"))
            return out
        route = self._routes.get(topic)
        if route is None:
            route = self._route(topic)
            if len(self._routes) < ROUTE_CACHE_MAX:
                self._routes[topic] = route
        if isinstance(route, Rejection):
            out.rejections.append(route)
            return out
        if route is _OUTBOUND:
            return out
        device, channel = route
        if channel == "status":
            return self._status(device, payload, now, out)
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            out.rejections.append(Rejection("malformed_json", str(exc)[:120]))
            return out
        if not isinstance(body, dict):
            out.rejections.append(Rejection("not_an_object",
                                            f"payload is a JSON {type(body).__name__}"))
            return out
        profile = self.profiles[device.id]
        try:
            at = _timestamp(_dig(body, profile.timestamp_field), profile.timestamp_unit)
        except ValueError as exc:
            out.rejections.append(Rejection("bad_timestamp", str(exc)))
            return out
        if at is None:
            at = now
        elif at > now + MAX_FUTURE_SKEW_S or at < now - MAX_PAST_S:
            at = now  # a device clock far off: keep the value, stamp it on arrival
            out.skew_corrected = True
        if channel == "telemetry":
            self._telemetry(device, profile, body, at, now, out)
        else:
            self._event(device, profile, body, at, now, out)
        return out

    def _route(self, topic: str) -> tuple[Device, str] | Rejection | object:
        """Where a topic's messages go: (device, channel), a rejection, or ``_OUTBOUND``."""
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
        return device, channel

    def _status(self, device: Device, payload: bytes, now: float, out: Decoded) -> Decoded:
        text = payload.decode("utf-8", "replace").strip().strip('"').lower()
        if text.startswith("{"):
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                out.rejections.append(Rejection("malformed_json", str(exc)[:120]))
                return out
            online = body.get("online") if isinstance(body, dict) else None
        else:
            online = {"online": True, "offline": False, "1": True, "0": False}.get(text)
        if not isinstance(online, bool):
            out.rejections.append(Rejection("wrong_type",
                                            "status must be online/offline or {\"online\": bool}"))
            return out
        out.observations.append(DeviceStatus(device.id, online, now,
                                             "device reported" if online else "device reported"))
        return out

    def _telemetry(self, device: Device, profile: Profile, body: dict[str, Any], at: float,
                   now: float, out: Decoded) -> None:
        values = _dig(body, profile.values_at) if profile.values_at else body
        if type(values) is not dict and not isinstance(values, Mapping):
            out.rejections.append(Rejection("no_values", f"no mapping at {profile.values_at!r}"))
            return
        metrics = METRICS[device.kind]
        skip = self._skip[device.id]
        quality = Quality.UNCERTAIN if out.skew_corrected else Quality.GOOD
        for key, raw in values.items():
            if key in skip:
                continue
            scale, offset, code_map = 1.0, 0.0, None
            if profile.fields is None:
                name = key
            else:
                fm = profile.fields.get(key)
                if fm is None:
                    out.rejections.append(Rejection("unknown_metric",
                                                    f"vendor field {key!r} is not mapped"))
                    continue
                name, scale, offset, code_map = fm.metric, fm.scale, fm.offset, fm.map
            spec = metrics.get(name)
            if spec is None:
                out.rejections.append(Rejection(
                    "unknown_metric", f"{key!r} is not a {device.kind.value} metric"[:120]))
                continue
            if code_map is not None:
                raw = code_map.get(str(raw).lower() if isinstance(raw, bool) else str(raw), raw)
            elif (scale != 1.0 or offset != 0.0) and isinstance(raw, int | float) \
                    and not isinstance(raw, bool):
                raw = raw * scale + offset
            try:
                value = _coerce(spec, raw)
            except ValueError as exc:
                reason, detail = exc.args
                out.rejections.append(Rejection(reason, f"{name}: {detail}"))
                continue
            out.observations.append(Reading(device.id, name, value, at, spec.unit, quality, now))
        if not out.observations and not out.rejections:
            out.rejections.append(Rejection("no_values", "telemetry carried no metric"))

    def _event(self, device: Device, profile: Profile, body: dict[str, Any], at: float,
               now: float, out: Decoded) -> None:
        em = profile.events
        code = _dig(body, em.code_field)
        if code is None:
            out.rejections.append(Rejection("unknown_event", f"no {em.code_field!r} field"))
            return
        name = em.codes.get(str(code)) if em.codes is not None else str(code)
        if name is None or name not in EVENTS[device.kind]:
            out.rejections.append(Rejection(
                "unknown_event", f"{str(code)[:40]!r} is not a {device.kind.value} event"))
            return
        attrs: dict[str, Value] = {}
        raw_attrs = _dig(body, em.attributes_field) if em.attributes_field else None
        if isinstance(raw_attrs, Mapping):
            for k, v in raw_attrs.items():
                if isinstance(v, str | int | float | bool) and not (
                        isinstance(v, float) and not math.isfinite(v)):
                    attrs[str(k)] = v
        for ours, path in em.attributes.items():
            v = _dig(body, path)
            if isinstance(v, str | int | float | bool):
                attrs[ours] = v
        raw_id = _dig(body, em.id_field) if em.id_field else None
        if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) and str(raw_id):
            event_id = f"{device.id}:{raw_id}"
        else:
            digest = hashlib.blake2b(f"{device.id}|{name}|{at!r}".encode(), digest_size=10)
            event_id = f"{device.id}:{digest.hexdigest()}"
        out.observations.append(Event(device.id, name, at, event_id, attrs, now))


def _profile_key(device: Device) -> str:
    return device.profile if "." in device.profile else f"{device.kind.value}.{device.profile}"


def topic_for(prefix: str, site: str, device: Device, channel: str) -> str:
    """The topic a device publishes on; used by simulators and tests."""
    return f"{prefix}/{site}/{device.location.building}/{device.kind.value}/{device.id}/{channel}"
