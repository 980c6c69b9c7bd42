"""Register maps: which register of a device holds which metric, event bit or command.

A register map is data (YAML under ``drivers/modbus/maps/`` or an installer's
``modbus_map_dirs``), so a new device model is a new file. This module holds the map's
config models and its compiled form: frozen ``Point``/``EventWord``/``WriteSpec`` values
with 0-based wire addresses, which is all the decoder and driver see. Loading and
validation live in ``drivers/modbus/mapfile.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.modbus.codec import (
    BIT_FUNCTIONS,
    ByteOrder,
    DataType,
    Function,
    WordOrder,
    register_count,
)
from gateway.types import DeviceKind
from gateway.vocabulary import METRICS, MetricSpec

__all__ = [
    "CommandConfig",
    "EventWord",
    "EventWordConfig",
    "Point",
    "PointConfig",
    "RegisterMap",
    "RegisterMapConfig",
    "WriteSpec",
    "compile_map",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointConfig(_Strict):
    """One metric read from one register span (or one coil / discrete input)."""

    metric: str
    function: Function
    address: int = Field(ge=0, le=65_536)
    data_type: DataType = "uint16"
    bit: int | None = Field(None, ge=0, le=15)
    length: int | None = Field(None, ge=1, le=125)
    byte_order: ByteOrder | None = None
    word_order: WordOrder | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    deadband: float | None = Field(None, ge=0)
    states: dict[int, str] | None = None


class EventWordConfig(_Strict):
    """A fault/alarm word: each listed bit raises one event on its rising edge."""

    function: Literal["holding", "input"]
    address: int = Field(ge=0, le=65_536)
    data_type: Literal["uint16", "uint32"] = "uint16"
    byte_order: ByteOrder | None = None
    word_order: WordOrder | None = None
    bits: dict[int, str]
    attributes: dict[str, str] = Field(default_factory=dict)


class CommandConfig(_Strict):
    """A command action written to a coil or holding register, optionally pulsed."""

    action: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    function: Literal["coil", "holding"]
    address: int = Field(ge=0, le=65_536)
    data_type: DataType | None = None
    byte_order: ByteOrder | None = None
    word_order: WordOrder | None = None
    value: bool | int | float | None = None
    min: float | None = None
    max: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    pulse_ms: int | None = Field(None, ge=10, le=60_000)
    release_value: bool | int | float | None = None
    verify: bool = False


class RegisterMapConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: DeviceKind
    description: str = ""
    address_base: Literal[0, 1] = 0
    byte_order: ByteOrder = "big"
    word_order: WordOrder = "big"
    deadband_refresh_s: float = Field(300.0, gt=0)
    points: list[PointConfig] = Field(default_factory=list)
    events: list[EventWordConfig] = Field(default_factory=list)
    commands: list[CommandConfig] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------
# The compiled form the decoder and driver use


@dataclass(frozen=True, slots=True)
class Point:
    metric: str
    function: str
    address: int  # 0-based, as on the wire
    count: int
    data_type: str
    byte_order: str
    word_order: str
    bit: int | None
    scale: float
    offset: float
    unit: str
    deadband: float | None
    states: tuple[tuple[int, str], ...]
    spec: MetricSpec


@dataclass(frozen=True, slots=True)
class EventWord:
    function: str
    address: int
    count: int
    data_type: str
    byte_order: str
    word_order: str
    bits: tuple[tuple[int, str], ...]
    attributes: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class WriteSpec:
    action: str
    function: str
    address: int
    data_type: str
    byte_order: str
    word_order: str
    value: bool | int | float | None
    min: float | None
    max: float | None
    scale: float
    offset: float
    pulse_s: float | None
    release_value: bool | int | float | None
    verify: bool


@dataclass(frozen=True, slots=True)
class RegisterMap:
    id: str
    kind: DeviceKind
    points: tuple[Point, ...]
    events: tuple[EventWord, ...]
    commands: tuple[WriteSpec, ...]
    deadband_refresh_s: float
    source: str

    def command(self, action: str) -> WriteSpec | None:
        return next((c for c in self.commands if c.action == action), None)


def compile_map(cfg: RegisterMapConfig, *, address_base: int | None = None,
                source: str = "") -> RegisterMap:
    """Resolve defaults and convert addresses to 0-based wire addresses.

    ``address_base`` overrides the map's own (a device binding may say its firmware counts
    from 1 although the map's manual counts from 0).
    """
    base = cfg.address_base if address_base is None else address_base
    metrics = METRICS[cfg.kind]
    points = tuple(
        Point(
            metric=p.metric, function=p.function, address=p.address - base,
            count=register_count(p.data_type, p.length) if p.function not in BIT_FUNCTIONS
            else 1,
            data_type=p.data_type, byte_order=p.byte_order or cfg.byte_order,
            word_order=p.word_order or cfg.word_order, bit=p.bit, scale=p.scale,
            offset=p.offset, unit=metrics[p.metric].unit, deadband=p.deadband,
            states=tuple(sorted((p.states or {}).items())), spec=metrics[p.metric],
        )
        for p in cfg.points
    )
    events = tuple(
        EventWord(
            function=e.function, address=e.address - base, count=register_count(e.data_type),
            data_type=e.data_type, byte_order=e.byte_order or cfg.byte_order,
            word_order=e.word_order or cfg.word_order, bits=tuple(sorted(e.bits.items())),
            attributes=tuple(sorted(e.attributes.items())),
        )
        for e in cfg.events
    )
    commands = tuple(
        WriteSpec(
            action=c.action, function=c.function, address=c.address - base,
            data_type=c.data_type or ("bool" if c.function == "coil" else "uint16"),
            byte_order=c.byte_order or cfg.byte_order, word_order=c.word_order or cfg.word_order,
            value=c.value, min=c.min, max=c.max, scale=c.scale, offset=c.offset,
            pulse_s=None if c.pulse_ms is None else c.pulse_ms / 1000.0,
            release_value=c.release_value if c.release_value is not None
            else (None if c.pulse_ms is None else _default_release(c)),
            verify=c.verify,
        )
        for c in cfg.commands
    )
    return RegisterMap(cfg.id, cfg.kind, points, events, commands, cfg.deadband_refresh_s,
                       source)


def _default_release(c: CommandConfig) -> bool | int:
    if c.function == "coil":
        return not c.value if c.value is not None else False
    return 0
