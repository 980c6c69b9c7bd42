"""Polls the devices of one Modbus bus and executes their commands; the only pymodbus import.

pymodbus is pinned to 3.11.x (pyproject): its request API (``device_id=`` since 3.10), the
``retries``/``timeout`` client arguments and ``set_max_no_responses`` are what this module
relies on; a minor bump is a deliberate change tested with the integration suite.

How one dead device is kept from stalling its bus:

- one pymodbus client per bus, shared by its devices; every request takes the bus lock
  (FIFO), waits out the inter-frame gap, and is bounded by ``timeout_s`` with no pymodbus
  retries, so a silent device costs its bus at most ``timeout_s`` per attempt;
- each device has its own task and fixed-rate schedule (start phase jittered over one
  interval); a poll that fails aborts at its first request;
- after ``failures_to_offline`` failed polls a device is offline: one batch of
  ``Quality.UNAVAILABLE`` readings, a ``DeviceStatus(online=False)`` and a
  ``device.offline`` event, one ERROR log line; it is then probed only after a capped,
  jittered exponential backoff, and announced (INFO, ``device.online``) when it answers;
- pymodbus's own "close after N silent requests" is switched off (a dead device on a shared
  RS-485 line is not a dead line); instead, when every request of a whole round of the bus's
  devices timed out, the client is dropped and rebuilt, as it is after any connection loss
  (a converter or device reboot), with capped exponential backoff between connects;
- an answer that is not a usable frame (garbage, a bad CRC, a lying length, a frame for
  another device or transaction, another function code, too few values) fails its poll as
  ``bad_frame``: pymodbus would take some of these for silence, raise others out of the
  transport's data callback, and accept a well-formed answer of the wrong function code
  (the other table's values stored as this one's), so ``FrameWatch`` and ``call`` check
  them here. When the byte stream's framing is unknown afterwards the client is rebuilt,
  which drops whatever else is still in flight.

No pymodbus exception leaves this module: they become ``DeviceUnavailable`` (timeout,
disconnected), ``DecodeError`` (exception response, bad frame, undecodable value) or
``CommandRejected``, each with a ``reason`` attribute that is also a /metrics label.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerRTU, FramerSocket, FramerType

from drivers.base import Sink
from drivers.modbus.breaker import Breaker, Transition
from drivers.modbus.codec import ReadRequest, register_count
from drivers.modbus.commands import command_raw, release_raw
from drivers.modbus.config import ModbusBindingConfig, ModbusBusConfig
from drivers.modbus.decoder import DeviceDecoder, event_id
from drivers.modbus.framewatch import FrameWatch
from drivers.modbus.metrics import BusMetrics
from drivers.modbus.registermap import RegisterMap, RegisterMapConfig, WriteSpec, compile_map
from gateway.clock import Clock, SystemClock
from gateway.errors import CommandRejected, DecodeError, DeviceUnavailable, DriverError
from gateway.types import Command, CommandResult, Device, DeviceStatus, Event, Observation

__all__ = ["ModbusDevice", "ModbusDriver", "build_drivers"]

log = logging.getLogger(__name__)

_PARITY = {"none": "N", "even": "E", "odd": "O"}
_NO_AUTO_CLOSE = 1_000_000_000
_READ_CODES = {"coil": 1, "discrete_input": 2, "holding": 3, "input": 4}
_WRITE_COIL, _WRITE_REGISTER, _WRITE_REGISTERS = 5, 6, 16


@dataclass(frozen=True, slots=True)
class ModbusDevice:
    """One device on a bus, with its register map compiled for its address base."""

    device: Device
    device_address: int
    poll_interval_s: float
    register_map: RegisterMap


def build_drivers(
    buses: Sequence[ModbusBusConfig],
    devices: Sequence[tuple[Device, ModbusBindingConfig]],
    maps: Mapping[str, RegisterMapConfig],
    sink: Sink,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> list[ModbusDriver]:
    """One driver per bus that has devices (config already cross-checked)."""
    by_bus: dict[str, list[ModbusDevice]] = {}
    for device, binding in devices:
        rmap = compile_map(maps[binding.register_map], address_base=binding.address_base,
                           source=binding.register_map)
        by_bus.setdefault(binding.bus, []).append(
            ModbusDevice(device, binding.device_address, binding.poll_interval_s, rmap))
    return [ModbusDriver(bus, by_bus[bus.id], sink, clock=clock, rng=rng)
            for bus in buses if by_bus.get(bus.id)]


def _error(cls: type[DriverError], reason: str, driver_id: str, message: str,
           device_id: str | None = None) -> DriverError:
    exc = cls(driver_id, message, device_id=device_id)
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


def _reason(exc: DriverError) -> str:
    return str(getattr(exc, "reason", "protocol"))


def _new_client(bus: ModbusBusConfig
                ) -> tuple[AsyncModbusTcpClient | AsyncModbusSerialClient, FrameWatch]:
    common: dict[str, Any] = {"name": f"modbus.{bus.id}", "timeout": bus.timeout_s,
                              "retries": 0, "reconnect_delay": 0}
    if bus.trace_frames:
        def trace(sending: bool, data: bytes) -> bytes:  # noqa: FBT001 - pymodbus's signature
            log.debug("modbus.%s %s %s", bus.id, ">>" if sending else "<<", data.hex(" "))
            return data
        common["trace_packet"] = trace
    client: AsyncModbusTcpClient | AsyncModbusSerialClient
    if bus.transport == "rtu":
        client = AsyncModbusSerialClient(
            bus.serial_port or "", framer=FramerType.RTU, baudrate=bus.baudrate,
            bytesize=bus.bytesize, parity=_PARITY[bus.parity], stopbits=bus.stopbits,
            handle_local_echo=bus.local_echo, **common)
    else:
        framer = FramerType.RTU if bus.transport == "rtu_over_tcp" else FramerType.SOCKET
        client = AsyncModbusTcpClient(bus.host or "", port=bus.tcp_port, framer=framer,
                                      **common)
    client.set_max_no_responses(_NO_AUTO_CLOSE)
    # ``ctx.framer`` is where pymodbus's own ``client.register()`` reaches the framer too
    watched = _WatchedRtu if isinstance(client.ctx.framer, FramerRTU) else _WatchedSocket
    watch = watched(client.ctx.framer.decoder)
    client.ctx.framer = watch
    return client, watch


class _WatchedRtu(FrameWatch, FramerRTU):
    """pymodbus's RTU framer, watched (see ``drivers.modbus.framewatch``)."""


class _WatchedSocket(FrameWatch, FramerSocket):
    """pymodbus's Modbus/TCP framer, watched."""


class _Connection:
    """The bus's one client: lock, inter-frame gap, (re)connect with backoff, error mapping."""

    def __init__(self, bus: ModbusBusConfig, driver_id: str, clock: Clock,
                 metrics: BusMetrics, rng: random.Random, device_count: int) -> None:
        self.bus = bus
        self.driver_id = driver_id
        self.clock = clock
        self.metrics = metrics
        self.lock = asyncio.Lock()
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self.watch: FrameWatch = _WatchedSocket(None)  # replaced with each new client
        self.up: bool | None = None
        self.silent_in_a_row = 0
        self.silent_limit = max(3, device_count)
        self._silence_logged = False
        self._last_end = float("-inf")
        self._connect_backoff = Breaker(1, bus.breaker.backoff_min_s,
                                        bus.breaker.backoff_max_s, rng)
        self._next_connect_at = float("-inf")
        self._ever_connected = False

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _where(self) -> str:
        if self.bus.transport == "rtu":
            return f"{self.bus.serial_port}"
        return f"{self.bus.host}:{self.bus.tcp_port}"

    async def _ready(self, device_id: str) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self.client is not None and self.client.connected:
            return self.client
        self.close()
        now = self.clock.monotonic()
        if now < self._next_connect_at:
            raise _error(DeviceUnavailable, "disconnected", self.driver_id,
                         f"bus {self.bus.id} ({self._where()}) is disconnected; next connect "
                         f"in {self._next_connect_at - now:.1f} s", device_id)
        if self._ever_connected:
            self.metrics.reconnect_attempts += 1
        client, watch = _new_client(self.bus)
        if not await client.connect():
            client.close()
            self._connect_backoff.failure(now)
            self._next_connect_at = self._connect_backoff.retry_at
            if self.up is not False:
                log.error("%s: cannot connect to %s; retrying with backoff up to %g s / "
                          "无法连接 %s，自动重试中", self.driver_id, self._where(),
                          self.bus.breaker.backoff_max_s, self._where())
            self.up = False
            raise _error(DeviceUnavailable, "disconnected", self.driver_id,
                         f"cannot connect to {self._where()}", device_id)
        if self.up is False:
            log.info("%s: connected to %s again / 已重新连接 %s", self.driver_id,
                     self._where(), self._where())
        self.up = True
        self._ever_connected = True
        self._connect_backoff.success()
        self._next_connect_at = float("-inf")
        self.client, self.watch = client, watch
        return client

    async def call(
        self,
        device_id: str,
        op: Callable[[AsyncModbusTcpClient | AsyncModbusSerialClient], Awaitable[Any]],
        what: str,
        function_code: int,
    ) -> tuple[Any, float]:
        """Run one request under the bus lock; return (response, monotonic start time)."""
        async with self.lock:
            client = await self._ready(device_id)
            wait = self._last_end + self.bus.gap_s - self.clock.monotonic()
            if wait > 0:
                await self.clock.sleep(wait)
            started = self.clock.monotonic()
            self.metrics.requests += 1
            self.watch.start()
            try:
                async with asyncio.timeout(self.bus.timeout_s + 2.0):  # guard; pymodbus times out first
                    response = await op(client)
            except TimeoutError:
                if (bad := self._unanswered(device_id, what)) is not None:
                    raise bad from None
                raise _error(DeviceUnavailable, "timeout", self.driver_id,
                             f"{what}: no answer within {self.bus.timeout_s} s",
                             device_id) from None
            except ConnectionException as exc:
                self.close()
                raise _error(DeviceUnavailable, "disconnected", self.driver_id,
                             f"{what}: connection to {self._where()} lost ({exc})",
                             device_id) from None
            except ModbusIOException as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from None  # pymodbus turns cancel into IO error
                if not client.connected:
                    self.close()
                    raise _error(DeviceUnavailable, "disconnected", self.driver_id,
                                 f"{what}: connection to {self._where()} lost",
                                 device_id) from None
                if (bad := self._unanswered(device_id, what)) is not None:
                    raise bad from None
                raise _error(DeviceUnavailable, "timeout", self.driver_id,
                             f"{what}: no answer within {self.bus.timeout_s} s ({exc})",
                             device_id) from None
            except (ModbusException, OSError) as exc:
                self.close()
                raise _error(DeviceUnavailable, "disconnected", self.driver_id,
                             f"{what}: {exc}", device_id) from None
            finally:
                self._last_end = self.clock.monotonic()
            self.silent_in_a_row = 0
            self._silence_logged = False
            if response.isError():
                code = getattr(response, "exception_code", "?")
                raise _error(DecodeError, "exception_response", self.driver_id,
                             f"{what}: device answered exception code {code}", device_id)
            if response.function_code != function_code:
                # well framed but for another request (e.g. input registers for holding):
                # its values belong to another table and must not be stored as these
                raise _error(DecodeError, "bad_frame", self.driver_id,
                             f"{what}: answered with function code {response.function_code}, "
                             f"asked with {function_code}", device_id)
            return response, started

    def _unanswered(self, device_id: str, what: str) -> DriverError | None:
        """No usable answer in time: bytes heard make it a bad frame (returned, to raise),
        nothing heard is silence (counted towards rebuilding a half-open link)."""
        verdict = self.watch.verdict()
        if verdict is None:
            self._silent()
            return None
        # the byte stream's framing is unknown now: a fresh client starts from silence
        self.silent_in_a_row = 0
        self.close()
        return _error(DecodeError, "bad_frame", self.driver_id,
                      f"{what}: answer not usable: {verdict}", device_id)

    def _silent(self) -> None:
        """Every request of a whole round timed out: assume a half-open link and rebuild."""
        self.silent_in_a_row += 1
        if self.silent_in_a_row >= self.silent_limit:
            # once per silence: a converter whose devices are all dead would repeat it
            log.log(logging.DEBUG if self._silence_logged else logging.WARNING,
                    "%s: %d requests in a row unanswered on %s; reconnecting",
                    self.driver_id, self.silent_in_a_row, self._where())
            self._silence_logged = True
            self.silent_in_a_row = 0
            self.close()

    async def read(self, dev: ModbusDevice, request: ReadRequest
                   ) -> tuple[list[int] | list[bool], float]:
        addr, count, unit = request.address, request.count, dev.device_address
        ops: dict[str, Callable[[Any], Awaitable[Any]]] = {
            "coil": lambda c: c.read_coils(addr, count=count, device_id=unit),
            "discrete_input": lambda c: c.read_discrete_inputs(addr, count=count,
                                                               device_id=unit),
            "holding": lambda c: c.read_holding_registers(addr, count=count, device_id=unit),
            "input": lambda c: c.read_input_registers(addr, count=count, device_id=unit),
        }
        what = f"read {request.function} {addr}+{count}"
        response, started = await self.call(dev.device.id, ops[request.function], what,
                                            _READ_CODES[request.function])
        values = (list(response.bits[:count]) if request.function in ("coil", "discrete_input")
                  else list(response.registers))
        if len(values) != count:  # a byte count that does not match the request
            raise _error(DecodeError, "bad_frame", self.driver_id,
                         f"{what}: answered with {len(values)} values", dev.device.id)
        return values, started

    async def write(self, dev: ModbusDevice, spec: WriteSpec, raw: bool | list[int]) -> None:
        addr, unit = spec.address, dev.device_address
        what = f"write {spec.function} {addr}"
        if isinstance(raw, bool):
            await self.call(dev.device.id,
                            lambda c: c.write_coil(addr, raw, device_id=unit), what,
                            _WRITE_COIL)
        elif len(raw) == 1:
            await self.call(dev.device.id,
                            lambda c: c.write_register(addr, raw[0], device_id=unit), what,
                            _WRITE_REGISTER)
        else:
            await self.call(dev.device.id,
                            lambda c: c.write_registers(addr, raw, device_id=unit), what,
                            _WRITE_REGISTERS)


@dataclass(slots=True)
class _DeviceState:
    dev: ModbusDevice
    decoder: DeviceDecoder
    breaker: Breaker


class ModbusDriver:
    """Polls every device of one bus on its own schedule and executes their commands.

    Args:
        bus: the bus's config (one pymodbus client is built from it, and rebuilt as needed).
        devices: the devices on this bus.
        sink: receives one batch per poll that produced something (see ``drivers.base``).
        clock: time source; ``SystemClock`` by default.
        rng: jitter source (seed it in tests for a reproducible phase).

    Example::

        driver = ModbusDriver(bus, devices, sink)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(driver.run(), name=f"driver[{driver.id}]")
            result = await driver.execute(Command("c1", "barrier-1", "open", "operator"))
    """

    def __init__(self, bus: ModbusBusConfig, devices: Sequence[ModbusDevice], sink: Sink, *,
                 clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.id = f"modbus.{bus.id}"
        self.bus = bus
        pymodbus_log = logging.getLogger("pymodbus.logging")
        if pymodbus_log.level == logging.NOTSET:
            # pymodbus logs an ERROR (with a frame dump) for every unanswered request; this
            # driver logs once per outage instead. Set the level explicitly to see them.
            pymodbus_log.setLevel(logging.CRITICAL)
        self._sink = sink
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._metrics = BusMetrics(bus.id)
        self._conn = _Connection(bus, self.id, self._clock, self._metrics, self._rng,
                                 len(devices))
        self._devices: dict[str, _DeviceState] = {}
        for dev in devices:
            b = bus.breaker
            self._devices[dev.device.id] = _DeviceState(
                dev,
                DeviceDecoder(dev.device.id, dev.register_map,
                              max_registers=bus.max_registers_per_read,
                              max_gap=bus.max_read_gap),
                Breaker(b.failures_to_offline, b.backoff_min_s, b.backoff_max_s, self._rng),
            )

    @property
    def device_ids(self) -> list[str]:
        return list(self._devices)

    def metrics(self) -> dict[str, Any]:
        """Counters and percentiles of this bus, for /metrics."""
        online = sum(1 for s in self._devices.values() if s.breaker.online)
        offline = sum(1 for s in self._devices.values() if s.breaker.online is False)
        return self._metrics.snapshot(online=online, offline=offline)

    @property
    def bus_metrics(self) -> BusMetrics:
        """The live counters and sample windows behind ``metrics()`` (read them, don't write)."""
        return self._metrics

    def online(self, device_id: str) -> bool | None:
        """True/False once known; None before the first answer or offline declaration."""
        return self._devices[device_id].breaker.online

    async def run(self) -> None:
        """Poll until cancelled; never ends because a device or the link failed."""
        try:
            async with asyncio.TaskGroup() as tg:
                for state in self._devices.values():
                    tg.create_task(self._poll_loop(state),
                                   name=f"driver[{self.id}].{state.dev.device.id}")
        finally:
            self._conn.close()

    async def _poll_loop(self, state: _DeviceState) -> None:
        interval = state.dev.poll_interval_s
        due = self._clock.monotonic() + self._rng.uniform(0.0, interval)
        while True:
            delay = due - self._clock.monotonic()
            if delay > 0:
                await self._clock.sleep(delay)
            await self._poll_once(state, due)
            if state.breaker.online is False:
                due = state.breaker.retry_at
                continue
            due += interval
            behind = self._clock.monotonic() - due
            if behind > 0:  # the poll overran its slot(s): skip them, keep the phase
                missed = int(behind // interval) + 1
                self._metrics.skipped_polls += missed
                due += missed * interval

    async def _poll_once(self, state: _DeviceState, due: float) -> None:
        dev = state.dev
        self._metrics.polls += 1
        first_start: float | None = None
        t0 = self._clock.monotonic()
        try:
            image: dict[ReadRequest, list[int] | list[bool]] = {}
            for request in state.decoder.plan:
                values, started = await self._conn.read(dev, request)
                first_start = started if first_start is None else first_start
                image[request] = values
            errors_before = state.decoder.decode_errors
            observations: list[Observation] = list(state.decoder.decode(image,
                                                                        self._clock.now()))
            if state.decoder.decode_errors > errors_before:
                self._metrics.failures["decode"] += state.decoder.decode_errors - errors_before
        except DriverError as exc:
            await self._failed(state, _reason(exc), str(exc))
            return
        except Exception as exc:  # a bug must not stop the bus: log it, count it, go on
            log.exception("%s/%s: poll failed unexpectedly", self.id, dev.device.id)
            await self._failed(state, "protocol", repr(exc))
            return
        finally:
            self._metrics.record_lag(max(0.0, (first_start if first_start is not None
                                               else t0) - due))
        self._metrics.polls_ok += 1
        self._metrics.latency_s.append(self._clock.monotonic() - (first_start or t0))
        transition = state.breaker.success()
        at = self._clock.now()
        if transition is Transition.RECOVERED:
            log.info("%s/%s: answering again (device %d) / 设备恢复在线", self.id,
                     dev.device.id, dev.device_address)
            observations[:0] = [
                DeviceStatus(dev.device.id, True, at),
                Event(dev.device.id, "device.online", at,
                      event_id(dev.device.id, "device.online", at), {}, at),
            ]
        elif transition is Transition.FIRST_ONLINE:
            observations.insert(0, DeviceStatus(dev.device.id, True, at))
        if observations:
            await self._sink(observations)

    async def _failed(self, state: _DeviceState, reason: str, detail: str) -> None:
        self._metrics.failures[reason] += 1
        transition = state.breaker.failure(self._clock.monotonic())
        if transition is not Transition.OFFLINE:
            log.debug("%s: %s", self.id, detail)
            return
        dev = state.dev
        log.error("%s/%s: offline after %d failed polls (%s: %s); retrying with backoff up "
                  "to %g s / 设备离线，自动重试中", self.id, dev.device.id,
                  state.breaker.failures, reason, detail, self.bus.breaker.backoff_max_s)
        at = self._clock.now()
        batch: list[Observation] = list(state.decoder.unavailable(at))
        batch.append(DeviceStatus(dev.device.id, False, at, reason))
        batch.append(Event(dev.device.id, "device.offline", at,
                           event_id(dev.device.id, "device.offline", at), {"reason": reason},
                           at))
        await self._sink(batch)

    async def execute(self, command: Command) -> CommandResult:
        """Write the command's coil or register; pulse and read back if the map says so.

        Never raises for a device problem: the result says what went wrong.
        """
        state = self._devices.get(command.device_id)
        if state is None:
            return CommandResult(command.command_id, ok=False,
                                 detail=f"{self.id}: device {command.device_id!r} is not on "
                                        "this bus")
        dev = state.dev
        spec = dev.register_map.command(command.action)
        if spec is None:
            known = ", ".join(c.action for c in dev.register_map.commands) or "none"
            return CommandResult(command.command_id, ok=False,
                                 detail=f"{self.id}/{dev.device.id}: unknown action "
                                        f"{command.action!r}; known: {known}")
        try:
            raw = self._raw(spec, command, dev.device.id)
            await self._conn.write(dev, spec, raw)
            if spec.verify:
                await self._verify(dev, spec, raw)
            if spec.pulse_s is not None:
                await self._clock.sleep(spec.pulse_s)
                release = self._raw(spec, None, dev.device.id)
                await self._conn.write(dev, spec, release)
        except DriverError as exc:
            log.warning("%s: command %s %r failed: %s", self.id, command.command_id,
                        command.action, exc)
            return CommandResult(command.command_id, ok=False, detail=str(exc))
        detail = f"{spec.function} {spec.address} written" + (
            ", read back" if spec.verify else "") + (
            f", released after {spec.pulse_s:g} s" if spec.pulse_s else "")
        return CommandResult(command.command_id, ok=True, detail=detail)

    def _raw(self, spec: WriteSpec, command: Command | None, device_id: str
             ) -> bool | list[int]:
        try:
            return command_raw(spec, command.args) if command else release_raw(spec)
        except ValueError as exc:
            raise _error(CommandRejected, "rejected", self.id,
                         f"action {spec.action!r}: {exc}", device_id) from None

    async def _verify(self, dev: ModbusDevice, spec: WriteSpec, raw: bool | list[int]) -> None:
        count = 1 if spec.function == "coil" else register_count(spec.data_type)
        request = ReadRequest(spec.function, spec.address, count)
        values, _ = await self._conn.read(dev, request)
        expected = [raw] if isinstance(raw, bool) else raw
        if list(values) != list(expected):
            raise _error(CommandRejected, "verify", self.id,
                         f"{spec.function} {spec.address} reads back {values}, wrote "
                         f"{expected}", dev.device.id)
