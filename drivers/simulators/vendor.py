"""Write normalised values and events in a vendor profile's payload format (a profile, inverted).

Simulators think in the vocabulary (``level_pct``, ``elevator.entrapment``); this turns what
they produce into the JSON that vendor's device would publish, so the gateway's real codec is
exercised for every shipped profile. The native profile is the identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from drivers.profiles import AttributeMap, FieldMap, Profile
from gateway.types import Value
from gateway.vocabulary import METRICS

__all__ = ["VendorEncoder"]


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    node = body
    *parents, last = path.split(".")
    for part in parents:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[last] = value


def _vendor_code(code: str) -> str | int:
    """Codes written as numbers in the profile are sent as JSON numbers."""
    return int(code) if code.lstrip("-").isdigit() else code


def _inverse(mapping: Mapping[str, Value], value: Value) -> str | None:
    for code, mapped in mapping.items():
        if mapped == value and type(mapped) is type(value):
            return code
    return None


class VendorEncoder:
    """Encodes for one profile; ``event`` returns None for an event the profile cannot carry."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.metrics = METRICS[profile.kind]
        self._codes: dict[str, str] = {}
        for code, name in (profile.events.codes or {}).items():
            self._codes.setdefault(name, code)
        self._bits: dict[str, int] = {}
        for bit, name in (profile.events.flags or {}).items():
            self._bits.setdefault(name, bit)
        self._attrs: dict[str, AttributeMap] = profile.events.attribute_maps()

    def _timestamp(self, at: float) -> Any:
        p = self.profile
        if p.timestamp_unit == "ms":
            return int(round(at * 1000))
        if p.timestamp_unit == "s":
            return at
        if p.timestamp_zone is not None:
            sign = -1 if p.timestamp_zone.startswith("-") else 1
            hours, minutes = p.timestamp_zone[1:].split(":")
            zone = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
            return datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M:%S")
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")

    def _value(self, fm: FieldMap, value: Value) -> Any:
        if fm.map is not None:
            code = _inverse(fm.map, value)
            if code is None:
                raise ValueError(f"{fm.metric}: {value!r} has no vendor code in "
                                 f"{self.profile.key}")
            return _vendor_code(code)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value
        raw = fm.invert(float(value), self.metrics[fm.metric].unit)
        if fm.scale != 1.0 or fm.unit is not None or isinstance(value, int):
            if abs(raw - round(raw)) < 1e-6:
                return int(round(raw))
        return raw

    def telemetry(self, at: float, values: Mapping[str, Value]) -> dict[str, Any]:
        p = self.profile
        body: dict[str, Any] = {}
        _set(body, p.timestamp_field, self._timestamp(at))
        out: dict[str, Any] = {}
        if p.fields is None:
            out = dict(values)
        else:
            for vendor, maps in p.field_maps().items():
                word: int | None = None
                for fm in maps:
                    if fm.metric not in values:
                        continue
                    if fm.bit is not None:
                        word = (word or 0) | (int(bool(values[fm.metric])) << fm.bit)
                    else:
                        _set(out, vendor, self._value(fm, values[fm.metric]))
                if word is not None:
                    _set(out, vendor, word)
        if p.values_at:
            _set(body, p.values_at, out)
        else:
            body.update(out)
        return body

    def event(self, at: float, name: str, event_id: str,
              attrs: Mapping[str, Value]) -> dict[str, Any] | None:
        p = self.profile
        em = p.events
        body: dict[str, Any] = {}
        _set(body, p.timestamp_field, self._timestamp(at))
        if em.flags_field is not None:
            if name not in self._bits:
                return None
            _set(body, em.flags_field, 1 << self._bits[name])
        else:
            if em.codes is None:
                code = name
            elif name in self._codes:
                code = self._codes[name]
            else:
                return None
            paths = [em.code_field] if isinstance(em.code_field, str) else em.code_field
            parts = code.split("/") if len(paths) > 1 else [code]
            for path, part in zip(paths, parts, strict=True):
                _set(body, path, _vendor_code(part) if em.codes is not None else part)
        if em.id_field:
            _set(body, em.id_field, event_id)
        bag: dict[str, Value] = {}
        for key, value in attrs.items():
            am = self._attrs.get(key)
            if am is None:
                bag[key] = value
                continue
            if am.map is not None:
                code = _inverse(am.map, value)
                _set(body, am.path, _vendor_code(code) if code is not None else value)
            else:
                _set(body, am.path, value)
        if em.attributes_field and bag:
            _set(body, em.attributes_field, bag)
        return body
