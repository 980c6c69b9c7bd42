"""Simulated Modbus devices (water-tank controller, barrier controller, elevator monitor)
served by a real pymodbus server over TCP, RTU-over-TCP or a serial port, for tests, the
benchmark and the demo.

Tests drive a device by metric name through its register map (``set_metric``), or by raw
register (``set_registers``), make one device stop answering (``silence``) and answer again
(``answer``), and stop and restart the whole server (``stop``/``start_*``) as a converter
reboot would. This module imports pymodbus for its server side; the gateway's own code
reaches pymodbus only through ``drivers/modbus/driver.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.datastore.context import ModbusBaseDeviceContext
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from drivers.modbus.codec import encode_registers
from drivers.modbus.mapfile import load_maps
from drivers.modbus.registermap import RegisterMap, compile_map

__all__ = [
    "ModbusSimulator",
    "SimulatedDevice",
    "barrier_controller",
    "elevator_monitor",
    "shipped_map",
    "water_tank_controller",
]

Table = Literal["coil", "discrete_input", "holding", "input"]
_SHORT: dict[str, str] = {"coil": "c", "discrete_input": "d", "holding": "h", "input": "i"}


def shipped_map(map_id: str) -> RegisterMap:
    return compile_map(load_maps()[map_id], source=map_id)


class SimulatedDevice(ModbusBaseDeviceContext):
    """One device's four tables, sparse (unset addresses read 0); records every write."""

    def __init__(self, register_map: RegisterMap | None = None, *,
                 line_char_s: float = 0.0) -> None:
        self.map = register_map
        self.line_char_s = line_char_s  # > 0: answer only after the frames' time on a real line
        self.tables: dict[str, dict[int, int | bool]] = {"c": {}, "d": {}, "h": {}, "i": {}}
        self.writes: list[tuple[str, int, list[int | bool]]] = []
        self.refusal: ExcCodes | None = None

    def refuse(self, code: ExcCodes | None = ExcCodes.DEVICE_FAILURE) -> None:
        """Answer every request with this Modbus exception (None: answer normally again)."""
        self.refusal = code

    def reset(self) -> None:
        for table in self.tables.values():
            table.clear()

    async def async_getValues(self, func_code: int, address: int,  # noqa: N802
                              count: int = 1) -> list[int] | list[bool]:
        if self.line_char_s > 0:
            # request (8) + response (5 + data) characters, plus the 3.5-character silence
            # after each, as an RS-485 line at that speed would take
            data = (count + 7) // 8 if self.decode(func_code) in "cd" else 2 * count
            await asyncio.sleep((8 + 5 + data + 7) * self.line_char_s)
        return self.getValues(func_code, address, count)

    # pymodbus datastore interface (0-based wire addresses)
    def getValues(self, func_code: int, address: int, count: int = 1  # noqa: N802
                  ) -> list[int] | list[bool]:
        if self.refusal is not None:
            return self.refusal  # type: ignore[return-value]
        key = self.decode(func_code)
        table = self.tables[key]
        default: int | bool = False if key in "cd" else 0
        return [table.get(a, default) for a in range(address, address + count)]  # type: ignore[return-value]

    def setValues(self, func_code: int, address: int,  # noqa: N802
                  values: list[int] | list[bool]) -> None:
        key = self.decode(func_code)
        self.writes.append((key, address, list(values)))
        for offset, value in enumerate(values):
            self.tables[key][address + offset] = value

    # test and demo controls
    def set_registers(self, table: Table, address: int, values: list[int]) -> None:
        for offset, value in enumerate(values):
            self.tables[_SHORT[table]][address + offset] = value

    def set_bits(self, table: Table, address: int, values: list[bool]) -> None:
        for offset, value in enumerate(values):
            self.tables[_SHORT[table]][address + offset] = bool(value)

    def registers(self, table: Table, address: int, count: int) -> list[int | bool]:
        store = self.tables[_SHORT[table]]
        return [store.get(a, 0) for a in range(address, address + count)]

    def set_metric(self, metric: str, value: Any) -> None:
        """Write ``value`` (in the metric's unit, or a state name) where the map reads it."""
        if self.map is None:
            raise ValueError("this device has no register map; use set_registers")
        point = next((p for p in self.map.points if p.metric == metric), None)
        if point is None:
            raise KeyError(f"map {self.map.id!r} does not read {metric!r}")
        if point.function in ("coil", "discrete_input"):
            self.set_bits(point.function, point.address, [bool(value)])  # type: ignore[arg-type]
            return
        table = self.tables[_SHORT[point.function]]
        if point.data_type == "bit":
            assert point.bit is not None
            word = int(table.get(point.address, 0))
            mask = 1 << point.bit
            table[point.address] = (word | mask) if value else (word & ~mask)
            return
        if point.states:
            codes = {state: code for code, state in point.states}
            raw: Any = codes[value]
        elif point.data_type == "string":
            raw = value
        else:
            raw = (value - point.offset) / point.scale
            if point.data_type not in ("float32", "float64"):
                raw = round(raw)
        regs = encode_registers(raw, point.data_type, byte_order=point.byte_order,
                                word_order=point.word_order, length=point.count)
        self.set_registers(point.function, point.address, regs)  # type: ignore[arg-type]

    def set_event_bits(self, word_index: int, bits: int) -> None:
        """Set the whole event word ``events[word_index]`` of the map to ``bits``."""
        if self.map is None:
            raise ValueError("this device has no register map")
        word = self.map.events[word_index]
        regs = encode_registers(bits, word.data_type, byte_order=word.byte_order,
                                word_order=word.word_order)
        self.set_registers(word.function, word.address, regs)  # type: ignore[arg-type]


def water_tank_controller(*, line_char_s: float = 0.0, **overrides: Any) -> SimulatedDevice:
    """A tank at 62.5 %, pump running, drinking-water quality within GB 5749-2022."""
    dev = SimulatedDevice(shipped_map("water-tank-controller"), line_char_s=line_char_s)
    values = {"level_pct": 62.5, "level_m": 2.5, "inlet_pressure_mpa": 0.25,
              "outlet_pressure_mpa": 0.45, "vfd_frequency_hz": 42.5, "turbidity_ntu": 0.3,
              "free_chlorine_mgl": 0.4, "ph": 7.2, "pump_running": True, "pump_fault": False,
              "flooded": False} | overrides
    for metric, value in values.items():
        dev.set_metric(metric, value)
    return dev


def barrier_controller(*, line_char_s: float = 0.0, **overrides: Any) -> SimulatedDevice:
    """A closed barrier with a healthy loop, 80 of 109 spaces taken."""
    dev = SimulatedDevice(shipped_map("barrier-controller"), line_char_s=line_char_s)
    values = {"barrier_state": "closed", "open_s": 0, "zone_occupancy": 80,
              "zone_capacity": 109, "loop_ok": True} | overrides
    for metric, value in values.items():
        dev.set_metric(metric, value)
    return dev


def elevator_monitor(*, line_char_s: float = 0.0, **overrides: Any) -> SimulatedDevice:
    """A car idle at floor 3, doors closed, in normal service."""
    dev = SimulatedDevice(shipped_map("elevator-monitor"), line_char_s=line_char_s)
    values = {"floor": 3, "direction": "idle", "door_state": "closed", "mode": "normal",
              "car_speed_mps": 0.0, "load_pct": 0.0, "in_service": True,
              "occupied": False} | overrides
    for metric, value in values.items():
        dev.set_metric(metric, value)
    return dev


class ModbusSimulator:
    """One pymodbus server holding several simulated devices by Modbus device address.

    Example::

        sim = ModbusSimulator({1: water_tank_controller(), 2: barrier_controller()})
        port = await sim.start_tcp()          # 127.0.0.1, a free port
        sim.silence(2)                         # device 2 stops answering
        sim.answer(2)                          # and comes back
        await sim.stop()
    """

    def __init__(self, devices: Mapping[int, SimulatedDevice]) -> None:
        self.devices = dict(devices)
        self._context = ModbusServerContext(devices=dict(self.devices), single=False)
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self.port: int | None = None

    def silence(self, address: int) -> None:
        """The device stops answering (the server ignores requests to missing devices)."""
        if address in self._context:
            del self._context[address]

    def answer(self, address: int) -> None:
        self._context[address] = self.devices[address]

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0, *,
                        framing: Literal["socket", "rtu"] = "socket") -> int:
        """Serve Modbus TCP (or RTU frames over TCP, as a serial converter does); returns
        the port (pass the previous port to restart on it)."""
        framer = FramerType.RTU if framing == "rtu" else FramerType.SOCKET
        server = ModbusTcpServer(self._context, framer=framer, address=(host, port),
                                 ignore_missing_devices=True)
        await server.serve_forever(background=True)
        self._server = server
        self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.port

    async def start_serial(self, path: str, *, baudrate: int = 19200) -> None:
        server = ModbusSerialServer(self._context, framer=FramerType.RTU, port=path,
                                    baudrate=baudrate, ignore_missing_devices=True,
                                    reconnect_delay=0)
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
            await asyncio.sleep(0)  # let the transports deliver their close


_FACTORIES = {"water_tank": water_tank_controller, "parking_barrier": barrier_controller,
              "elevator": elevator_monitor}


async def _serve(args: Any) -> None:
    import json  # noqa: PLC0415 - only the command line needs it
    import sys  # noqa: PLC0415

    factory = _FACTORIES[args.kind]
    sims: list[ModbusSimulator] = []
    if args.serial:
        char_s = 10.0 / args.baudrate if args.pace else 0.0  # 8N1: 10 bits a character
        sim = ModbusSimulator({a: factory(line_char_s=char_s) for a in range(1, args.count + 1)})
        await sim.start_serial(args.serial, baudrate=args.baudrate)
        sims.append(sim)
        print(json.dumps({"serial": args.serial, "addresses": list(range(1, args.count + 1))}))
    else:
        ports = []
        for _ in range(args.count):
            sim = ModbusSimulator({1: factory()})
            ports.append(await sim.start_tcp(args.host))
            sims.append(sim)
        print(json.dumps({"host": args.host, "ports": ports}))
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        for sim in sims:
            await sim.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m drivers.simulators.modbus_devices --count 200`` serves 200 devices, each
    on its own TCP port (printed as JSON on one line), until interrupted; ``--serial PATH``
    serves ``--count`` devices (addresses 1..N) on one serial line instead."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--kind", choices=sorted(_FACTORIES), default="water_tank")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--serial", help="serial port (e.g. one end of a socat pty pair)")
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--pace", action="store_true",
                        help="answer only after the time the frames take at --baudrate")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
