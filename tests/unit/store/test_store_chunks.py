"""The chunk codec: exact round trips of every kind of column, the cheap forms chosen for
regular data, versioning and damage; pure (no SQLite)."""

from __future__ import annotations

import math
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store import chunks
from gateway.store.chunks import ChunkFormatError, decimal_scale, decode_columns, encode_columns

T0_MS = 1_767_225_600_000
HOUR = [T0_MS + 10_000 * i for i in range(360)]


def kinds(blob: bytes) -> list[int]:
    """The column kinds a blob chose (its sections after the time header)."""
    body = zlib.decompress(blob[1:])
    time_kind = body[0]
    pos = chunks._HEAD.size + 8
    if time_kind == chunks.TS_DELTAS:
        _, _, size = chunks._SECTION.unpack_from(body, pos)
        pos += chunks._SECTION.size + size
    out = []
    count = body[pos]
    pos += 1
    for _ in range(count):
        kind, _, size = chunks._SECTION.unpack_from(body, pos)
        out.append(kind)
        pos += chunks._SECTION.size + size
    return out


def same(a: list, b: list) -> bool:
    """Equal value for value and type, NaN equal to NaN, -0.0 not equal to 0.0."""
    def key(v):
        if isinstance(v, float):
            return ("f", struct.pack("<d", v))
        return (type(v).__name__, v)
    return [key(v) for v in a] == [key(v) for v in b]


@pytest.mark.parametrize(("values", "kind"), [
    ([0] * 360, chunks.COL_CONST),
    ([1, 2, 3, 5, 8, 13] * 60, chunks.COL_INT),
    ([round(20 + 0.01 * (i % 37), 2) for i in range(360)], chunks.COL_DECIMAL),
    ([0.1 * i for i in range(360)], chunks.COL_FLOAT),  # 0.30000000000000004 is no decimal
    ([math.pi * i for i in range(360)], chunks.COL_FLOAT),
    (["open", "closed"] * 180, chunks.COL_JSON),
    ([None, 1, 2.5, "x"] * 90, chunks.COL_JSON),
    ([True, False] * 180, chunks.COL_JSON),
])
def test_chunk_column_kind_and_exact_round_trip(values, kind):
    blob = encode_columns(HOUR, [values, [0] * 360])
    ts, (got, quality) = decode_columns(blob)
    assert ts == HOUR and same(got, values) and quality == [0] * 360
    assert kinds(blob) == [kind, chunks.COL_CONST]


def test_chunk_regular_cadence_costs_no_bytes_per_point():
    short = encode_columns(HOUR[:10], [[0] * 10])
    long = encode_columns(HOUR, [[0] * 360])
    assert len(long) - len(short) < 8  # 350 more instants, a few bytes of zlib at most


def test_chunk_smooth_sensor_hour_is_under_a_byte_a_point():
    walk = [20.0]
    for i in range(359):
        walk.append(round(walk[-1] + (-0.02, -0.01, 0, 0.01, 0.02)[(i * 7) % 5], 2))
    blob = encode_columns(HOUR, [walk, [0] * 360])
    assert len(blob) < 360


def test_chunk_jittered_times_round_trip():
    ts = [t + (i * 37) % 11 - 5 for i, t in enumerate(HOUR)]
    assert decode_columns(encode_columns(ts, [[1] * 360]))[0] == ts


@pytest.mark.parametrize("value", [-0.0, math.nan, math.inf, -math.inf, 1e300, 5e-324,
                                   2.0 ** 60, 0.1 + 0.2, 123456.789012])
def test_chunk_awkward_floats_round_trip_bit_for_bit(value):
    values = [value, 1.5, value]
    _, (got,) = decode_columns(encode_columns(HOUR[:3], [values]))
    assert same(got, values)


def test_chunk_int64_extremes_and_big_deltas_round_trip():
    values = [-(2 ** 63), 2 ** 63 - 1, 0, -(2 ** 63)]
    _, (got,) = decode_columns(encode_columns(HOUR[:4], [values]))
    assert got == values


def test_decimal_scale_finds_fewest_digits_or_none():
    assert decimal_scale([1.5, 2.25, -3.0]) == (2, [150, 225, -300])
    assert decimal_scale([4.0, 5.0]) == (0, [4, 5])
    assert decimal_scale([0.1 + 0.2]) is None
    assert decimal_scale([1e-7]) is None  # more than MAX_DIGITS
    assert decimal_scale([-0.0]) is None  # the sign would be lost


def test_chunk_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one point"):
        encode_columns([], [[]])
    with pytest.raises(ValueError, match="strictly increasing"):
        encode_columns([2, 1], [[0, 0]])
    with pytest.raises(ValueError, match="strictly increasing"):
        encode_columns([1, 1], [[0, 0]])
    with pytest.raises(ValueError, match="one value per instant"):
        encode_columns([1, 2], [[0]])


def test_chunk_unknown_version_and_damage_are_refused():
    blob = encode_columns(HOUR[:5], [[1.5] * 5])
    with pytest.raises(ChunkFormatError, match="version 2 is not 1"):
        decode_columns(bytes([2]) + blob[1:])
    with pytest.raises(ChunkFormatError, match="damaged chunk"):
        decode_columns(blob[:-3])
    with pytest.raises(ChunkFormatError):
        decode_columns(b"")


values_st = st.one_of(
    st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), min_size=1, max_size=50),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50),
    st.lists(st.decimals(-10 ** 6, 10 ** 6, places=3, allow_nan=False).map(float),
             min_size=1, max_size=50),
    st.lists(st.one_of(st.none(), st.text(max_size=5), st.integers(-5, 5),
                       st.floats(allow_nan=False)), min_size=1, max_size=50),
)


@settings(max_examples=300, deadline=None)
@given(values=values_st, gaps=st.lists(st.integers(1, 10 ** 6), min_size=49, max_size=49),
       first=st.integers(0, 2 ** 45))
def test_chunk_round_trip_property(values, gaps, first):
    ts = [first]
    for g in gaps[:len(values) - 1]:
        ts.append(ts[-1] + g)
    quality = [i % 4 for i in range(len(values))]
    got_ts, (got, got_q) = decode_columns(encode_columns(ts, [values, quality]))
    assert got_ts == ts and same(got, values) and got_q == quality
