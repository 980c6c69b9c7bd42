"""Modbus buses and device bindings inside the gateway config: checks and exact messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drivers.modbus.config import ModbusBusConfig
from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError

GOOD = """\
site: {id: estate-a}
modbus_buses:
  - id: pump-room
    transport: rtu
    serial_port: /dev/ttyUSB0
    baudrate: 9600
    parity: even
    timeout_s: 0.5
  - id: gate-converter
    transport: rtu_over_tcp
    host: 192.168.1.50
    port: 4001
devices:
  - id: tank-1
    kind: water_tank
    location: {building: B1}
    transport: modbus
    modbus: {bus: pump-room, device_address: 1, register_map: water-tank-controller}
  - id: gate-1
    kind: parking_barrier
    location: {building: P}
    transport: modbus
    modbus: {bus: gate-converter, device_address: 3, register_map: barrier-controller,
             poll_interval_s: 2}
"""


def _load(tmp_path: Path, text: str) -> GatewayConfig:
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def _problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return str(info.value).replace(str(tmp_path / "gateway.yaml"), "gateway.yaml")


def test_config_good_modbus_section_loads(tmp_path: Path) -> None:
    cfg = _load(tmp_path, GOOD)
    assert [b.id for b in cfg.modbus_buses] == ["pump-room", "gate-converter"]
    binding = cfg.devices[1].modbus
    assert binding is not None
    assert (binding.bus, binding.device_address, binding.poll_interval_s) == (
        "gate-converter", 3, 2.0)


def test_config_bus_defaults_and_derived_gap() -> None:
    bus = ModbusBusConfig(id="b", transport="rtu", serial_port="/dev/ttyS0", baudrate=9600)
    assert (bus.timeout_s, bus.max_registers_per_read, bus.breaker.failures_to_offline) == (
        1.0, 125, 3)
    assert bus.gap_s == pytest.approx(3.5 * 10 / 9600)  # 8N1: 10 bits a character
    tcp = ModbusBusConfig(id="t", transport="tcp", host="10.0.0.2")
    assert (tcp.tcp_port, tcp.gap_s) == (502, 0.0)


def test_config_cross_checks_name_the_thing(tmp_path: Path) -> None:
    text = GOOD.replace("bus: pump-room", "bus: pump-roon").replace(
        "register_map: water-tank-controller", "register_map: water-tank-controler")
    text += """\
  - id: tank-2
    kind: water_tank
    location: {building: B1}
    transport: modbus
  - id: gate-2
    kind: parking_barrier
    location: {building: P}
    transport: modbus
    modbus: {bus: gate-converter, device_address: 3, register_map: elevator-monitor,
             poll_interval_s: 0.5}
"""
    assert _problems(tmp_path, text) == textwrap.dedent("""\
        gateway.yaml: 6 problem(s) / 配置有 6 处错误
          gateway.yaml:18: devices[0] (tank-1).modbus.bus: unknown modbus bus 'pump-roon' (did you mean 'pump-room'?); known buses: gate-converter, pump-room / 总线不存在
          gateway.yaml:18: devices[0] (tank-1).modbus.register_map: unknown register map 'water-tank-controler' (did you mean 'water-tank-controller'?); known maps: barrier-controller, elevator-monitor, water-tank-controller / 寄存器表不存在
          gateway.yaml:28: devices[2] (tank-2).transport: device 'tank-2' has transport 'modbus' but no modbus: binding (bus, device_address, register_map) / 缺少 modbus 配置
          gateway.yaml:34: devices[3] (gate-2).modbus.poll_interval_s: poll_interval_s 0.5 is not above timeout_s 1.0 of bus 'gate-converter'; a dead device would use its whole interval / 轮询周期须大于超时
          gateway.yaml:33: devices[3] (gate-2).modbus.device_address: device_address 3 on bus 'gate-converter' is already used by 'gate-1' / 设备地址重复
          gateway.yaml:33: devices[3] (gate-2).modbus.register_map: register map 'elevator-monitor' is for elevator devices, but 'gate-2' is parking_barrier / 寄存器表与设备类型不符""")


def test_config_bus_endpoint_must_fit_transport(tmp_path: Path) -> None:
    text = GOOD.replace("    host: 192.168.1.50\n", "    serial_port: /dev/ttyUSB1\n")
    assert _problems(tmp_path, text) == textwrap.dedent("""\
        gateway.yaml: 1 problem(s) / 配置有 1 处错误
          gateway.yaml:9: modbus_buses[1] (gate-converter): transport 'rtu_over_tcp' needs host / 取值无效""")


def test_config_bad_transport_suggests(tmp_path: Path) -> None:
    text = GOOD.replace("transport: rtu_over_tcp", "transport: rtu_over_tpc")
    assert _problems(tmp_path, text) == textwrap.dedent("""\
        gateway.yaml: 1 problem(s) / 配置有 1 处错误
          gateway.yaml:10: modbus_buses[1] (gate-converter).transport: 'rtu_over_tpc' is not allowed (did you mean 'rtu_over_tcp'?); expected one of 'tcp', 'rtu', 'rtu_over_tcp' / 取值不在允许范围内""")


def test_config_installer_maps_are_loaded_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "acme-tank.yaml").write_text(textwrap.dedent("""\
        id: acme-tank
        kind: water_tank
        points:
          - {metric: level_pct, function: holding, address: 40001, data_type: uint16}
        """), encoding="utf-8")
    text = "modbus_map_dirs: [maps]\n" + GOOD.replace(
        "register_map: water-tank-controller", "register_map: acme-tank")
    assert _load(tmp_path, text).devices[0].modbus.register_map == "acme-tank"  # type: ignore[union-attr]


def test_config_bad_installer_map_is_reported_with_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "acme-tank.yaml").write_text(textwrap.dedent("""\
        id: acme-tank
        kind: water_tank
        points:
          - {metric: level, function: holding, address: 1}
        """), encoding="utf-8")
    text = "modbus_map_dirs: [maps]\n" + GOOD
    message = _problems(tmp_path, text).replace(str(tmp_path / "maps"), "maps")
    assert message == textwrap.dedent("""\
        gateway.yaml: 1 problem(s) / 配置有 1 处错误
          maps/acme-tank.yaml:4: register map 'acme-tank': points[0] (level).metric: unknown water_tank metric 'level' (did you mean 'level_m'?) / 未知指标""")
