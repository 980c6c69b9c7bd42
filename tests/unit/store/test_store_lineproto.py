"""Line protocol: measurement = kind, tags = site/building/device, fields = metrics."""

from __future__ import annotations

from gateway.store.lineproto import encode_lines
from gateway.store.sqlite import OutboxRow
from gateway.types import Device, DeviceKind, Location, Quality

DEVICES = {
    "tank-a": Device("tank-a", DeviceKind.WATER_TANK, Location("B 3"), "modbus", "p"),
    "lift,1": Device("lift,1", DeviceKind.ELEVATOR, Location("T=2"), "mqtt", "p"),
}


def row(seq, dev, metric, ts, value, q=Quality.GOOD) -> OutboxRow:
    return OutboxRow(seq, dev, metric, ts, value, q)


def test_lineproto_groups_fields_of_one_instant():
    lines, skipped = encode_lines([
        row(1, "tank-a", "level_pct", 1000, 51.5), row(2, "tank-a", "pump_on", 1000, True),
        row(3, "tank-a", "level_pct", 2000, 52), row(4, "tank-a", "mode", 2000, 'a "b"'),
    ], "estate-1", DEVICES)
    assert skipped == 0
    assert lines == [
        "water_tank,building=B\\ 3,device=tank-a,site=estate-1 level_pct=51.5,pump_on=true 1000",
        'water_tank,building=B\\ 3,device=tank-a,site=estate-1 level_pct=52.0,mode="a \\"b\\"" '
        "2000",
    ]


def test_lineproto_escapes_tags_and_marks_quality():
    lines, _ = encode_lines([row(1, "lift,1", "car speed", 5, 1.25, Quality.UNCERTAIN)],
                           "s", DEVICES)
    assert lines == ["elevator,building=T\\=2,device=lift\\,1,site=s,quality=uncertain "
                     "car\\ speed=1.25 5"]


def test_lineproto_unknown_device_is_generic_and_nan_skipped():
    lines, skipped = encode_lines([row(1, "ghost", "x", 7, 1.0),
                                   row(2, "ghost", "y", 7, float("nan")),
                                   row(3, "ghost", "z", 8, None)], "s", DEVICES)
    assert lines == ["generic,device=ghost,site=s x=1.0 7"]
    assert skipped == 2
