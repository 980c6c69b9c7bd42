"""Outbox rows → InfluxDB line protocol (pure; no I/O, no influxdb_client).

One line per (device, timestamp, quality): measurement = the device's kind, tags = site,
building and device (plus ``quality`` when it is not ``good``), fields = the metrics sampled
at that instant. Numbers are written as floats (an integer field that later sees 20.5 would
be refused as a type conflict), booleans as booleans, text as strings. Timestamps are
milliseconds (the store's resolution); the write uses ``precision=ms``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.store.sqlite import OutboxRow
from gateway.types import Device, DeviceKind, Quality, Value

__all__ = ["SeriesTags", "encode_lines", "tags_for"]


@dataclass(frozen=True, slots=True)
class SeriesTags:
    measurement: str
    site: str
    building: str
    device: str


def tags_for(device_id: str, site: str, devices: Mapping[str, Device]) -> SeriesTags:
    """Tags of a device; a device no longer in the config is written as ``generic``."""
    dev = devices.get(device_id)
    if dev is None:
        return SeriesTags(DeviceKind.GENERIC.value, site, "", device_id)
    return SeriesTags(dev.kind.value, site, dev.location.building, device_id)


def _escape_key(text: str) -> str:
    """Measurement, tag keys/values and field keys: escape comma, space, equals sign."""
    return (text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")
            .replace("=", "\\="))


def _escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def _field_value(value: Value) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        f = float(value)
        if f != f or f in (float("inf"), float("-inf")):
            return None  # NaN/inf are not representable in line protocol
        return repr(f)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return None


def encode_lines(rows: Sequence[OutboxRow], site: str, devices: Mapping[str, Device]) -> \
        tuple[list[str], int]:
    """Lines for ``rows`` (grouped by device, instant and quality, first-seen order).

    Returns the lines and the number of rows that could not be encoded (a ``None`` or
    non-finite value), which the sink counts as skipped.
    """
    groups: dict[tuple[str, int, Quality], list[str]] = {}
    skipped = 0
    for row in rows:
        text = None if row.value is None else _field_value(row.value)
        if text is None:
            skipped += 1
            continue
        key = (row.device_id, row.ts_ms, row.quality)
        groups.setdefault(key, []).append(f"{_escape_key(row.metric)}={text}")
    tag_cache: dict[str, str] = {}
    lines = []
    for (device_id, ts_ms, quality), fields in groups.items():
        head = tag_cache.get(device_id)
        if head is None:
            t = tags_for(device_id, site, devices)
            parts = [_escape_measurement(t.measurement)]
            for k, v in (("building", t.building), ("device", t.device), ("site", t.site)):
                if v:  # an empty tag value is not allowed in line protocol
                    parts.append(f"{k}={_escape_key(v)}")
            head = ",".join(parts)
            tag_cache[device_id] = head
        tags = head if quality is Quality.GOOD else f"{head},quality={quality.value}"
        lines.append(f"{tags} {','.join(fields)} {ts_ms}")
    return lines, skipped
