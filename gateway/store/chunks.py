"""The chunk codec: one series' run of (time, value, quality) — or of rollup buckets — as one
compressed blob, and back, exactly; pure (no SQLite, no clock).

Why: a row per point costs ~35 bytes in SQLite (key, record header, b-tree slack). A run of
one series is far more regular than that: polled every 10 s, its timestamps are a start and a
step; a sensor's value moves a few counts of its resolution between readings; quality is
almost always "good". So a chunk stores **columns**, each in the cheapest exact form:

* **time** (ms, strictly increasing): the first instant and, when the cadence is regular,
  just the step (0 bytes per point); otherwise each gap minus the first gap (device-clock
  jitter of a few ms then costs about a byte per point).
* **each value column**, by what it holds:

  - ``CONST``: one value repeated (an idle pump, quality 0, a rollup's count of 6);
  - ``INT``: integers as deltas from the previous one (a counter, a boolean stored as 0/1);
  - ``DECIMAL``: floats that are decimals of at most ``MAX_DIGITS`` digits (0.1, 42.37) as
    integers scaled by 10**k, delta-coded, then divided back with the same correctly
    rounded division; chosen only when every value comes back bit for bit (so -0.0, NaN,
    1e300 or 0.1 + 0.2 fall through to the next form);
  - ``FLOAT``: raw IEEE float64;
  - ``JSON``: anything else (text, None, a mix of types): ``json`` keeps int vs float, NaN
    and every float's exact repr.

  Integer columns are packed at the narrowest width that holds them (1, 2, 4 or 8 bytes)
  and byte-shuffled (all low bytes, then all next bytes, ...), which turns "small deltas"
  into long runs zlib compresses well.
* the whole body is zlib-compressed and prefixed with a **version byte** so the format can
  change; ``decode_columns`` refuses a version it does not know.

Per-point work is a handful of C-level passes (``map``, ``array``, slicing, ``min``/``max``),
not a Python loop per point: the live load is ~2,000 points/s on a Pi core.
"""

from __future__ import annotations

import json
import operator
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DIGITS", "VERSION", "ChunkFormatError", "decimal_scale", "decode_columns",
           "encode_columns"]

VERSION = 1
MAX_DIGITS = 6
ZLIB_LEVEL = 6

TS_REGULAR = 0
TS_DELTAS = 1

COL_CONST = 0
COL_INT = 1
COL_DECIMAL = 2
COL_FLOAT = 3
COL_JSON = 4

_HEAD = struct.Struct("<BIq")     # time kind, number of points, first instant (ms)
_SECTION = struct.Struct("<BBI")  # kind, parameter, payload length
_INT64 = struct.Struct("<q")
_WIDTHS = (("b", 1, -(1 << 7), (1 << 7) - 1), ("h", 2, -(1 << 15), (1 << 15) - 1),
           ("i", 4, -(1 << 31), (1 << 31) - 1), ("q", 8, -(1 << 63), (1 << 63) - 1))
_CODE = {size: code for code, size, _, _ in _WIDTHS}
_BIG_ENDIAN = sys.byteorder == "big"
_POW10 = [10 ** k for k in range(MAX_DIGITS + 1)]


class ChunkFormatError(ValueError):
    """A blob that is not a chunk this code can read (unknown version, truncated, corrupt)."""


# -- integers: narrowest width, byte-shuffled --------------------------------------------


def _pack_ints(xs: Sequence[int]) -> bytes | None:
    """``xs`` at the narrowest width, byte planes shuffled; None if one needs > 64 bits."""
    if not xs:
        return b"\x01"
    lo, hi = min(xs), max(xs)
    for code, size, least, most in _WIDTHS:
        if least <= lo and hi <= most:
            break
    else:
        return None
    arr = array(code, xs)
    if _BIG_ENDIAN:
        arr.byteswap()
    raw = arr.tobytes()
    if size > 1:
        raw = b"".join(raw[i::size] for i in range(size))
    return bytes((size,)) + raw


def _unpack_ints(buf: bytes, n: int) -> list[int]:
    size = buf[0]
    body = buf[1:1 + size * n]
    if len(body) != size * n or size not in _CODE:
        raise ChunkFormatError("integer column truncated")
    if size > 1:
        out = bytearray(size * n)
        for i in range(size):
            out[i::size] = body[i * n:(i + 1) * n]
        body = bytes(out)
    arr = array(_CODE[size], body)
    if _BIG_ENDIAN:
        arr.byteswap()
    return arr.tolist()


def _deltas(xs: Sequence[int]) -> list[int]:
    """First value, then each value minus the one before (``accumulate`` undoes it)."""
    out = [xs[0]]
    out += map(operator.sub, xs[1:], xs[:-1])  # type: ignore[arg-type]
    return out


# -- floats that are short decimals ------------------------------------------------------


def _scaled(values: Sequence[float], k: int) -> list[int] | None:
    """``values`` × 10**k as integers, if dividing them back gives every float exactly."""
    scale = _POW10[k]
    try:
        ints = list(map(float.__round__, map(float(scale).__mul__, values)))
        back = array("d", map(float(scale).__rtruediv__, ints))
    except (ValueError, OverflowError):  # NaN, inf, or too large to scale
        return None
    return ints if back.tobytes() == array("d", values).tobytes() else None


def _digits(v: float) -> int:
    """Digits after the point in ``repr(v)`` (the shortest string that round-trips), or
    more than ``MAX_DIGITS`` when it is in exponent form, NaN or infinite."""
    r = repr(v)
    if "e" in r or "n" in r:  # 1e-07, nan, inf
        return MAX_DIGITS + 1
    k = len(r) - r.index(".") - 1
    return 0 if k == 1 and r[-1] == "0" else k


def decimal_scale(values: Sequence[float]) -> tuple[int, list[int]] | None:
    """The fewest decimal digits ``k`` ≤ ``MAX_DIGITS`` at which every float of ``values`` is
    exactly ``n / 10**k`` for an integer ``n``, with those integers; None when there is none.

    A sample of the values proposes ``k`` and one pass over all of them confirms it, so the
    usual cost is one pass.
    """
    if not values:
        return 0, []
    step = max(1, len(values) // 8)
    k = max(_digits(v) for v in values[::step])
    while k <= MAX_DIGITS:
        ints = _scaled(values, k)
        if ints is not None:
            return k, ints
        k += 1
    return None


# -- columns -------------------------------------------------------------------------------


def _encode_column(values: Sequence[Any], scaled: tuple[int, Sequence[int]] | None = None
                   ) -> tuple[int, int, bytes]:
    kinds = set(map(type, values))
    if kinds == {int}:
        if min(values) == max(values):
            if -(1 << 63) <= values[0] < (1 << 63):
                return COL_CONST, 0, _INT64.pack(values[0])
            return COL_CONST, 1, json.dumps(values[0]).encode()
        packed = _pack_ints(_deltas(values))
        if packed is not None:
            return COL_INT, 0, packed
    elif kinds == {float}:
        found = scaled if scaled is not None else decimal_scale(values)
        if found is not None:
            packed = _pack_ints(_deltas(found[1]))
            if packed is not None:
                return COL_DECIMAL, found[0], packed
        arr = array("d", values)
        if _BIG_ENDIAN:
            arr.byteswap()
        raw = arr.tobytes()
        return COL_FLOAT, 0, b"".join(raw[i::8] for i in range(8))
    return COL_JSON, 0, json.dumps(list(values), separators=(",", ":")).encode()


def _decode_column(kind: int, param: int, payload: bytes, n: int) -> list[Any]:
    if kind == COL_CONST:
        return [_INT64.unpack(payload)[0] if param == 0 else json.loads(payload)] * n
    if kind == COL_INT:
        return list(accumulate(_unpack_ints(payload, n)))
    if kind == COL_DECIMAL:
        # the very division _scaled checked when it chose this form
        return list(map(float(_POW10[param]).__rtruediv__, accumulate(_unpack_ints(payload, n))))
    if kind == COL_FLOAT:
        if len(payload) != 8 * n:
            raise ChunkFormatError("float column truncated")
        out = bytearray(8 * n)
        for i in range(8):
            out[i::8] = payload[i * n:(i + 1) * n]
        arr = array("d", bytes(out))
        if _BIG_ENDIAN:
            arr.byteswap()
        return arr.tolist()
    if kind == COL_JSON:
        got = json.loads(payload)
        if not isinstance(got, list) or len(got) != n:
            raise ChunkFormatError("text column has the wrong length")
        return got
    raise ChunkFormatError(f"unknown column kind {kind}")


def encode_columns(ts: Sequence[int], columns: Sequence[Sequence[Any]], *,
                   scaled: dict[int, tuple[int, Sequence[int]]] | None = None) -> bytes:
    """One blob for instants ``ts`` (ms, strictly increasing) and parallel value columns.

    ``scaled`` maps a column's index to what ``decimal_scale`` returned for exactly that
    column's values, when the caller has it already (a compaction computes it for the
    rollups), so the values are not scaled twice.

    Raises:
        ValueError: ``ts`` empty, not strictly increasing, or a column of another length.
    """
    n = len(ts)
    if n == 0:
        raise ValueError("a chunk needs at least one point")
    if any(len(c) != n for c in columns):
        raise ValueError("every column needs one value per instant")
    gaps = list(map(operator.sub, ts[1:], ts[:-1]))  # type: ignore[arg-type]
    if gaps and min(gaps) <= 0:
        raise ValueError("instants must be strictly increasing")
    parts: list[bytes] = []
    if not gaps or min(gaps) == max(gaps):
        parts.append(_HEAD.pack(TS_REGULAR, n, ts[0]))
        parts.append(_INT64.pack(gaps[0] if gaps else 0))
    else:
        packed = _pack_ints([g - gaps[0] for g in gaps])
        if packed is None:
            raise ValueError("instants too far apart for one chunk")
        parts.append(_HEAD.pack(TS_DELTAS, n, ts[0]))
        parts.append(_INT64.pack(gaps[0]))
        parts.append(_SECTION.pack(0, 0, len(packed)))
        parts.append(packed)
    parts.append(bytes((len(columns),)))
    for index, column in enumerate(columns):
        kind, param, payload = _encode_column(column, scaled.get(index) if scaled else None)
        parts.append(_SECTION.pack(kind, param, len(payload)))
        parts.append(payload)
    return bytes((VERSION,)) + zlib.compress(b"".join(parts), ZLIB_LEVEL)


def decode_columns(blob: bytes) -> tuple[list[int], list[list[Any]]]:
    """The instants and value columns ``encode_columns`` was given, exactly.

    Raises:
        ChunkFormatError: an unknown version or a damaged blob.
    """
    if not blob or blob[0] != VERSION:
        raise ChunkFormatError(f"chunk format version {blob[0] if blob else None} is not "
                               f"{VERSION}")
    try:
        body = zlib.decompress(blob[1:])
        kind, n, first = _HEAD.unpack_from(body, 0)
        pos = _HEAD.size
        (step,) = _INT64.unpack_from(body, pos)
        pos += _INT64.size
        if kind == TS_REGULAR:
            ts = list(range(first, first + step * n, step)) if n > 1 else [first]
        elif kind == TS_DELTAS:
            _, _, size = _SECTION.unpack_from(body, pos)
            pos += _SECTION.size
            gaps = _unpack_ints(body[pos:pos + size], n - 1)
            pos += size
            ts = list(accumulate(map(step.__add__, gaps), initial=first))
        else:
            raise ChunkFormatError(f"unknown time kind {kind}")
        columns = []
        ncolumns = body[pos]
        pos += 1
        for _ in range(ncolumns):
            ckind, param, size = _SECTION.unpack_from(body, pos)
            pos += _SECTION.size
            columns.append(_decode_column(ckind, param, body[pos:pos + size], n))
            pos += size
    except (zlib.error, struct.error, IndexError, json.JSONDecodeError) as exc:
        raise ChunkFormatError(f"damaged chunk: {exc}") from exc
    return ts, columns
