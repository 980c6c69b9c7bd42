"""The Modbus driver's own config: buses (one per physical connection) and device bindings.

``gateway/config.py`` holds these under ``modbus_buses:`` and each device's ``modbus:`` key;
``cross_check`` finds what no single field shows (unknown bus or map, a map for another
device kind, a timeout that does not fit in the poll interval) and returns the problems in
the gateway's ``(path, message)`` form so they render like every other config error.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.modbus.registermap import RegisterMapConfig

__all__ = [
    "BreakerConfig",
    "ModbusBindingConfig",
    "ModbusBusConfig",
    "cross_check",
]

Transport = Literal["tcp", "rtu", "rtu_over_tcp"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerConfig(_Strict):
    """Per-device circuit breaker: when to call a device offline and how often to retry it."""

    failures_to_offline: int = Field(3, ge=1, le=100)
    backoff_min_s: float = Field(2.0, gt=0, le=3600)
    backoff_max_s: float = Field(60.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) is below backoff_min_s "
                             f"({self.backoff_min_s}); make it at least as large")
        return self


class ModbusBusConfig(_Strict):
    """One physical connection shared by its devices: a TCP endpoint, a serial port, or a
    serial-to-Ethernet converter (``rtu_over_tcp``).

    ``inter_frame_gap_ms`` is the silence kept between the end of one transaction and the
    next request; unset, it is 3.5 character times at ``baudrate`` (at least 1.75 ms, as the
    RTU spec asks) for ``rtu``/``rtu_over_tcp`` and 0 for ``tcp``.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    transport: Transport
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    serial_port: str | None = None
    baudrate: int = Field(9600, ge=300, le=921_600)
    parity: Literal["none", "even", "odd"] = "none"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    local_echo: bool = False  # the RS-485 adapter echoes what it sends: drop the echo
    timeout_s: float = Field(1.0, gt=0, le=30)
    inter_frame_gap_ms: float | None = Field(None, ge=0, le=1000)
    max_registers_per_read: int = Field(125, ge=1, le=125)
    max_read_gap: int = Field(0, ge=0, le=100)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    trace_frames: bool = False  # log every raw frame (hex) at DEBUG: for commissioning

    @model_validator(mode="after")
    def _endpoint(self) -> Self:
        if self.transport == "rtu":
            if not self.serial_port:
                raise ValueError("transport 'rtu' needs serial_port (e.g. /dev/ttyUSB0)")
            if self.host is not None or self.port is not None:
                raise ValueError("host/port are for tcp and rtu_over_tcp; transport 'rtu' "
                                 "uses serial_port")
        else:
            if not self.host:
                raise ValueError(f"transport {self.transport!r} needs host")
            if self.serial_port is not None:
                raise ValueError(f"serial_port is for transport 'rtu', not {self.transport!r}; "
                                 "use host and port")
        return self

    @property
    def tcp_port(self) -> int:
        return self.port or 502

    @property
    def is_serial_line(self) -> bool:
        """True when devices share an RS-485 line (RTU framing), directly or via a converter."""
        return self.transport in ("rtu", "rtu_over_tcp")

    @property
    def char_time_s(self) -> float:
        """Seconds on the wire for one character (start + data + parity + stop bits)."""
        bits = 1 + self.bytesize + (0 if self.parity == "none" else 1) + self.stopbits
        return bits / self.baudrate

    @property
    def gap_s(self) -> float:
        if self.inter_frame_gap_ms is not None:
            return self.inter_frame_gap_ms / 1000.0
        if not self.is_serial_line:
            return 0.0
        return max(3.5 * self.char_time_s, 0.00175)


class ModbusBindingConfig(_Strict):
    """How one device is reached: its bus, its Modbus address (the "unit id" or "slave id"
    of vendor manuals), its register map and its poll interval."""

    bus: str
    device_address: int = Field(ge=0, le=247)
    register_map: str
    poll_interval_s: float = Field(5.0, gt=0, le=86_400)
    address_base: Literal[0, 1] | None = None


class _DeviceLike(Protocol):
    id: str
    kind: Any
    transport: str
    modbus: ModbusBindingConfig | None


Problem = tuple[tuple[str | int, ...], str]


def _hint(word: str, known: Sequence[str]) -> str:
    guess = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{guess[0]}'?)" if guess else ""


def cross_check(
    buses: Sequence[ModbusBusConfig],
    devices: Sequence[_DeviceLike],
    maps: Mapping[str, RegisterMapConfig],
) -> list[Problem]:
    """Problems between buses, devices and maps, as ``(path, message / 中文)``."""
    problems: list[Problem] = []
    by_id: dict[str, int] = {}
    for i, bus in enumerate(buses):
        if bus.id in by_id:
            problems.append((("modbus_buses", i, "id"), f"duplicate modbus bus id {bus.id!r} "
                             f"(first at modbus_buses[{by_id[bus.id]}]) / 总线编号重复"))
        else:
            by_id[bus.id] = i
    addresses: dict[tuple[str, int], str] = {}
    for i, dev in enumerate(devices):
        binding = dev.modbus
        if dev.transport == "modbus" and binding is None:
            problems.append((("devices", i, "transport"), f"device {dev.id!r} has transport "
                             "'modbus' but no modbus: binding (bus, device_address, "
                             "register_map) / 缺少 modbus 配置"))
            continue
        if binding is None:
            continue
        loc = ("devices", i, "modbus")
        if dev.transport != "modbus":
            problems.append(((*loc,), f"device {dev.id!r} has a modbus: binding but transport "
                             f"{dev.transport!r}; set transport: modbus / 传输方式不一致"))
        bus_index = by_id.get(binding.bus)
        if bus_index is None:
            known = ", ".join(sorted(by_id)) or "none defined"
            problems.append(((*loc, "bus"), f"unknown modbus bus {binding.bus!r}"
                             f"{_hint(binding.bus, list(by_id))}; known buses: {known} "
                             "/ 总线不存在"))
        else:
            bus = buses[bus_index]
            if bus.timeout_s >= binding.poll_interval_s:
                problems.append(((*loc, "poll_interval_s"), f"poll_interval_s "
                                 f"{binding.poll_interval_s} is not above timeout_s "
                                 f"{bus.timeout_s} of bus {bus.id!r}; a dead device would "
                                 "use its whole interval / 轮询周期须大于超时"))
            key = (binding.bus, binding.device_address)
            if key in addresses:
                problems.append(((*loc, "device_address"), f"device_address "
                                 f"{binding.device_address} on bus {binding.bus!r} is already "
                                 f"used by {addresses[key]!r} / 设备地址重复"))
            else:
                addresses[key] = dev.id
        rmap = maps.get(binding.register_map)
        if rmap is None:
            problems.append(((*loc, "register_map"), f"unknown register map "
                             f"{binding.register_map!r}{_hint(binding.register_map, list(maps))}"
                             f"; known maps: {', '.join(sorted(maps))} / 寄存器表不存在"))
        elif rmap.kind != dev.kind:
            problems.append(((*loc, "register_map"), f"register map {rmap.id!r} is for "
                             f"{rmap.kind.value} devices, but {dev.id!r} is "
                             f"{getattr(dev.kind, 'value', dev.kind)} / 寄存器表与设备类型不符"))
    return problems
