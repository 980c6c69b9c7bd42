"""A command's value → the coil state or registers to write; pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.modbus.codec import encode_registers
from drivers.modbus.registermap import WriteSpec
from gateway.types import Value

__all__ = ["command_raw", "release_raw"]


def command_raw(spec: WriteSpec, args: Mapping[str, Value]) -> bool | list[int]:
    """The coil state or registers for one command.

    The map's fixed ``value`` wins; otherwise ``args["value"]`` is required, must be a
    number within ``min``..``max`` (in the metric's unit) and is converted to raw as
    (value − offset) / scale.

    Raises:
        ValueError: a message saying what is wrong with the value.
    """
    value: Any = spec.value if spec.value is not None else args.get("value")
    if value is None:
        raise ValueError("needs args.value")
    if spec.value is None and (isinstance(value, str) or not isinstance(value, int | float)):
        raise ValueError(f"value {value!r} is not a number")
    if not isinstance(value, bool) and (
            (spec.min is not None and value < spec.min)
            or (spec.max is not None and value > spec.max)):
        raise ValueError(f"value {value} outside {spec.min}..{spec.max}")
    return _raw(spec, value)


def release_raw(spec: WriteSpec) -> bool | list[int]:
    """What a pulse writes when it ends."""
    return _raw(spec, spec.release_value)


def _raw(spec: WriteSpec, value: Any) -> bool | list[int]:
    if spec.function == "coil":
        return bool(value)
    number = (float(value) - spec.offset) / spec.scale
    if spec.data_type not in ("float32", "float64"):
        number = round(number)
    return encode_registers(number, spec.data_type, byte_order=spec.byte_order,
                            word_order=spec.word_order)
