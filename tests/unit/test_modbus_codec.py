"""Table tests of drivers.modbus.codec: every data type and byte/word order, and read plans."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus.codec import (
    Block,
    ReadRequest,
    decode_registers,
    encode_registers,
    plan_reads,
    register_count,
)
from tests.modbus_vectors import BIT_VECTORS, VECTORS

ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]


def _id(row: tuple) -> str:
    return f"{row[0]}-{row[1]}-{row[2]}-{row[4]!r}"


@pytest.mark.parametrize("row", VECTORS, ids=_id)
def test_codec_decodes_vector(row: tuple) -> None:
    data_type, byte_order, word_order, regs, value = row
    got = decode_registers(regs, data_type, byte_order=byte_order, word_order=word_order)
    assert got == value
    assert type(got) is type(value)


@pytest.mark.parametrize("row", VECTORS, ids=_id)
def test_codec_encodes_vector(row: tuple) -> None:
    data_type, byte_order, word_order, regs, value = row
    length = len(regs) if data_type == "string" else None
    if data_type == "bool":
        regs = [1 if value else 0]  # encoding a boolean writes 1, reading accepts any non-zero
    assert encode_registers(value, data_type, byte_order=byte_order, word_order=word_order,
                            length=length) == regs


@pytest.mark.parametrize(("word", "bit", "value"), BIT_VECTORS)
def test_codec_bit_in_register(word: int, bit: int, value: bool) -> None:
    assert decode_registers([word], "bit", bit=bit) is value


@pytest.mark.parametrize(("data_type", "count"), [
    ("int16", 1), ("uint16", 1), ("int32", 2), ("uint32", 2), ("float32", 2), ("int64", 4),
    ("uint64", 4), ("float64", 4), ("bool", 1), ("bit", 1),
])
def test_codec_register_count(data_type: str, count: int) -> None:
    assert register_count(data_type) == count


def test_codec_string_count_is_its_length() -> None:
    assert register_count("string", 5) == 5
    with pytest.raises(ValueError, match="length"):
        register_count("string")


@pytest.mark.parametrize(("value", "data_type", "message"), [
    (70000, "int16", "does not fit int16"),
    (-1, "uint16", "does not fit uint16"),
    (2**32, "uint32", "does not fit uint32"),
    (1.5, "int32", "not a whole number"),
    (math.nan, "float32", "not a finite number"),
    (math.inf, "float64", "not a finite number"),
    ("héllo", "string", "not ASCII"),
    ("toolong", "string", "longer than 2 characters"),
    (True, "bit", "cannot be written"),
])
def test_codec_encode_refuses(value: object, data_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_registers(value, data_type, length=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("regs", "data_type", "message"), [
    ([1], "int32", "int32 needs 2 register"),
    ([1, 2, 3], "float32", "float32 needs 2 register"),
    ([0xE9E9], "string", "not ASCII"),
    ([0x10000], "uint16", "not 16-bit"),
])
def test_codec_decode_refuses(regs: list[int], data_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_registers(regs, data_type)


_RANGES = {"int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-2**31, 2**31 - 1),
           "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1)}


@given(st.sampled_from(sorted(_RANGES)), st.sampled_from(ORDERS), st.data())
def test_codec_integer_round_trip(data_type: str, order: tuple[str, str],
                                  data: st.DataObject) -> None:
    low, high = _RANGES[data_type]
    value = data.draw(st.integers(low, high))
    regs = encode_registers(value, data_type, byte_order=order[0], word_order=order[1])
    assert len(regs) == register_count(data_type)
    assert decode_registers(regs, data_type, byte_order=order[0], word_order=order[1]) == value


@given(st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from(ORDERS))
def test_codec_float32_round_trip(value: float, order: tuple[str, str]) -> None:
    regs = encode_registers(value, "float32", byte_order=order[0], word_order=order[1])
    assert decode_registers(regs, "float32", byte_order=order[0], word_order=order[1]) == value


# ---------------------------------------------------------------------------------------
# read planning


def test_plan_merges_contiguous_spans_of_one_function() -> None:
    blocks = [Block("holding", 0, 1), Block("holding", 1, 2), Block("holding", 3, 1)]
    assert plan_reads(blocks) == [ReadRequest("holding", 0, 4)]


def test_plan_keeps_functions_apart_and_sorted() -> None:
    blocks = [Block("input", 0, 2), Block("holding", 0, 1), Block("coil", 5, 1),
              Block("coil", 6, 1)]
    assert plan_reads(blocks) == [ReadRequest("coil", 5, 2), ReadRequest("holding", 0, 1),
                                  ReadRequest("input", 0, 2)]


def test_plan_does_not_read_gaps_by_default() -> None:
    blocks = [Block("holding", 0, 1), Block("holding", 5, 1)]
    assert plan_reads(blocks) == [ReadRequest("holding", 0, 1), ReadRequest("holding", 5, 1)]


def test_plan_reads_small_gaps_when_allowed() -> None:
    blocks = [Block("holding", 0, 1), Block("holding", 5, 1), Block("holding", 20, 1)]
    assert plan_reads(blocks, max_gap=4) == [ReadRequest("holding", 0, 6),
                                             ReadRequest("holding", 20, 1)]


def test_plan_overlapping_spans_are_read_once() -> None:
    blocks = [Block("input", 8, 2), Block("input", 8, 1), Block("input", 9, 1)]
    assert plan_reads(blocks) == [ReadRequest("input", 8, 2)]


def test_plan_splits_at_125_registers() -> None:
    blocks = [Block("holding", a, 2) for a in range(0, 300, 2)]
    assert plan_reads(blocks) == [ReadRequest("holding", 0, 124), ReadRequest("holding", 124, 124),
                                  ReadRequest("holding", 248, 52)]


def test_plan_limit_is_configurable() -> None:
    blocks = [Block("input", a, 1) for a in range(10)]
    assert plan_reads(blocks, max_registers=4) == [
        ReadRequest("input", 0, 4), ReadRequest("input", 4, 4), ReadRequest("input", 8, 2)]


def test_plan_coils_merge_up_to_2000_bits() -> None:
    blocks = [Block("coil", a, 1) for a in range(2001)]
    assert plan_reads(blocks) == [ReadRequest("coil", 0, 2000), ReadRequest("coil", 2000, 1)]


def test_plan_refuses_a_span_over_the_limit() -> None:
    with pytest.raises(ValueError, match="exceeds the 4 per read"):
        plan_reads([Block("holding", 0, 5)], max_registers=4)
