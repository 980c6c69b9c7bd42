"""Registers ↔ values and read planning; pure functions, no I/O, table-tested.

Byte and word order follow the usual vendor-manual letters for a 32-bit value whose bytes
are A (most significant) … D (least significant):

=============  ============  ========
``byte_order``  ``word_order``  on the wire
=============  ============  ========
big            big           ABCD
big            little        CDAB
little         big           BADC
little         little        DCBA
=============  ============  ========

``byte_order`` is the order of the two bytes inside each 16-bit register; ``word_order`` is
the order of the registers of a multi-register value (``little``: least significant
register first). Strings use ``byte_order`` only: their registers are always in reading
order.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BIT_FUNCTIONS",
    "DATA_TYPES",
    "MAX_BITS_PER_READ",
    "MAX_REGISTERS_PER_READ",
    "REGISTER_FUNCTIONS",
    "Block",
    "ByteOrder",
    "DataType",
    "Function",
    "ReadRequest",
    "WordOrder",
    "decode_registers",
    "encode_registers",
    "plan_reads",
    "register_count",
]

Function = Literal["coil", "discrete_input", "holding", "input"]
DataType = Literal[
    "int16", "uint16", "int32", "uint32", "float32",
    "int64", "uint64", "float64", "bool", "bit", "string",
]
ByteOrder = Literal["big", "little"]
WordOrder = Literal["big", "little"]

DATA_TYPES: tuple[str, ...] = (
    "int16", "uint16", "int32", "uint32", "float32",
    "int64", "uint64", "float64", "bool", "bit", "string",
)
BIT_FUNCTIONS: frozenset[str] = frozenset({"coil", "discrete_input"})
REGISTER_FUNCTIONS: frozenset[str] = frozenset({"holding", "input"})

MAX_REGISTERS_PER_READ = 125
"""Modbus application protocol v1.1b3, 6.3/6.4: at most 125 registers per read."""
MAX_BITS_PER_READ = 2000
"""Modbus application protocol v1.1b3, 6.1/6.2: at most 2000 coils or inputs per read."""

_STRUCT: dict[str, str] = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f",
    "int64": ">q", "uint64": ">Q", "float64": ">d",
}
_WIDTH: dict[str, int] = {
    "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
    "int64": 4, "uint64": 4, "float64": 4, "bool": 1, "bit": 1,
}


def register_count(data_type: str, length: int | None = None) -> int:
    """How many 16-bit registers (or bits, for coils) one value of ``data_type`` occupies.

    ``length`` is the string length in registers (two characters each) and is required for
    ``string``.
    """
    if data_type == "string":
        if not length or length < 1:
            raise ValueError("a string needs length >= 1 (registers, two characters each)")
        return length
    return _WIDTH[data_type]


def _to_bytes(registers: Sequence[int], byte_order: str, word_order: str) -> bytes:
    regs = list(registers)
    if word_order == "little":
        regs.reverse()
    out = bytearray()
    for reg in regs:
        if not 0 <= reg <= 0xFFFF:
            raise ValueError(f"register value {reg} is not 16-bit")
        pair = reg.to_bytes(2, "big")
        out += pair[::-1] if byte_order == "little" else pair
    return bytes(out)


def _from_bytes(data: bytes, byte_order: str, word_order: str) -> list[int]:
    regs = []
    for i in range(0, len(data), 2):
        pair = data[i:i + 2]
        regs.append(int.from_bytes(pair[::-1] if byte_order == "little" else pair, "big"))
    if word_order == "little":
        regs.reverse()
    return regs


def decode_registers(
    registers: Sequence[int],
    data_type: str,
    *,
    byte_order: str = "big",
    word_order: str = "big",
    bit: int | None = None,
) -> int | float | bool | str:
    """Decode the registers of one value.

    Args:
        registers: exactly ``register_count(data_type)`` 16-bit values, as read.
        data_type: one of ``DATA_TYPES``; ``bool`` is "register is not zero", ``bit`` is
            bit ``bit`` (0 = least significant) of the register.
        byte_order: order of the two bytes in each register.
        word_order: order of the registers of a 32/64-bit value.
        bit: the bit number for ``bit``.

    Raises:
        ValueError: the wrong number of registers, or a string that is not ASCII.
    """
    if data_type == "string":
        raw = _to_bytes(registers, byte_order, "big")
        try:
            return raw.rstrip(b"\x00 ").decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError(f"string is not ASCII: {raw!r}") from exc
    width = _WIDTH[data_type]
    if len(registers) != width:
        raise ValueError(f"{data_type} needs {width} register(s), got {len(registers)}")
    if data_type == "bool":
        return registers[0] != 0
    if data_type == "bit":
        if bit is None or not 0 <= bit <= 15:
            raise ValueError("a bit needs bit 0..15")
        return bool((registers[0] >> bit) & 1)
    (value,) = struct.unpack(_STRUCT[data_type], _to_bytes(registers, byte_order, word_order))
    return value  # type: ignore[no-any-return]


def encode_registers(
    value: int | float | bool | str,
    data_type: str,
    *,
    byte_order: str = "big",
    word_order: str = "big",
    length: int | None = None,
) -> list[int]:
    """The registers that ``decode_registers`` would turn back into ``value``.

    Raises:
        ValueError: the value does not fit the data type (out of range, not finite, too
            long a string, not ASCII); ``bit`` cannot be encoded alone.
    """
    if data_type == "string":
        count = register_count("string", length)
        try:
            raw = str(value).encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{value!r} is not ASCII") from exc
        if len(raw) > 2 * count:
            raise ValueError(f"{value!r} is longer than {2 * count} characters")
        return _from_bytes(raw.ljust(2 * count, b"\x00"), byte_order, "big")
    if data_type == "bool":
        return [1 if value else 0]
    if data_type == "bit":
        raise ValueError("a single bit cannot be written as a register; write the whole word")
    fmt = _STRUCT[data_type]
    if fmt[-1] in "fd":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
    else:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number for {data_type}")
        number = int(value)
    try:
        data = struct.pack(fmt, number)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{value!r} does not fit {data_type}") from exc
    return _from_bytes(data, byte_order, word_order)


@dataclass(frozen=True, slots=True)
class Block:
    """A span one point needs: ``count`` registers (or bits) from ``address`` in ``function``."""

    function: str
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: ``count`` registers or bits of ``function`` from ``address``."""

    function: str
    address: int
    count: int

    def covers(self, block: Block) -> bool:
        return (block.function == self.function and block.address >= self.address
                and block.end <= self.address + self.count)


def plan_reads(
    blocks: Iterable[Block],
    *,
    max_registers: int = MAX_REGISTERS_PER_READ,
    max_bits: int = MAX_BITS_PER_READ,
    max_gap: int = 0,
) -> list[ReadRequest]:
    """Merge the spans into as few reads as the limits allow.

    Spans of one function that touch or overlap are merged while the merged read stays
    within ``max_registers`` (``max_bits`` for coils and discrete inputs). ``max_gap`` lets
    a read also cover up to that many unused addresses between two spans (some devices
    answer an exception for unmapped addresses, so the default is 0). The result is sorted
    by function and address, so the same map always gives the same plan.

    Raises:
        ValueError: one span is larger than the limit on its own.
    """
    by_function: dict[str, list[Block]] = {}
    for block in blocks:
        by_function.setdefault(block.function, []).append(block)
    plan: list[ReadRequest] = []
    for function in sorted(by_function):
        limit = max_bits if function in BIT_FUNCTIONS else max_registers
        spans = sorted(by_function[function], key=lambda b: (b.address, b.count))
        start, end = spans[0].address, spans[0].end
        for block in spans:
            if block.count > limit:
                raise ValueError(f"{function} {block.address}: {block.count} exceeds the "
                                 f"{limit} per read")
            if block.address <= end + max_gap and max(end, block.end) - start <= limit:
                end = max(end, block.end)
                continue
            plan.append(ReadRequest(function, start, end - start))
            start, end = block.address, block.end
        plan.append(ReadRequest(function, start, end - start))
    return plan
