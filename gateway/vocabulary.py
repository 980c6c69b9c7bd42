"""The normalised vocabulary of each device kind: metrics, events and states, with labels.

Every vendor payload or register map is translated into these names by a profile, so rules,
the console and the cloud never see vendor details. Labels are (简体中文, English) and follow
the glossary in DOMAIN.md. This module is data; ``docs/vocabulary.md`` is generated from it
(``estate-gateway vocabulary``) so the README never drifts from the code.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.types import DeviceKind, Priority

__all__ = [
    "EVENTS",
    "METRICS",
    "EventSpec",
    "MetricSpec",
    "event_spec",
    "metric_spec",
]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    unit: str
    zh: str
    en: str
    kind: str = "float"  # float | int | bool | str (an enumerated state)
    low: float | None = None  # physically plausible range; outside it a value is BAD
    high: float | None = None
    states: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    zh: str
    en: str
    priority: Priority
    attributes: tuple[str, ...] = ()


def _m(*specs: MetricSpec) -> dict[str, MetricSpec]:
    return {s.name: s for s in specs}


def _e(*specs: EventSpec) -> dict[str, EventSpec]:
    return {s.name: s for s in specs}


P = Priority

_COMMON_EVENTS = _e(
    EventSpec("device.offline", "设备离线", "Device offline", P.LOW, ("reason",)),
    EventSpec("device.online", "设备上线", "Device online", P.LOW),
    EventSpec("device.tamper", "设备防拆报警", "Device tamper", P.HIGH),
)

METRICS: dict[DeviceKind, dict[str, MetricSpec]] = {
    DeviceKind.ACCESS_GATE: _m(
        MetricSpec("door_state", "", "门状态", "Door state", "str",
                   states=("closed", "open", "held_open", "forced_open", "unknown")),
        MetricSpec("lock_state", "", "锁状态", "Lock state", "str",
                   states=("locked", "unlocked", "fault")),
        MetricSpec("door_open_s", "s", "开门时长", "Door open for", "float", 0, 86_400),
        MetricSpec("battery_pct", "%", "电池电量", "Battery", "float", 0, 100),
    ),
    DeviceKind.ELEVATOR: _m(
        MetricSpec("mode", "", "运行模式", "Mode", "str",
                   states=("normal", "inspection", "fire", "locked", "driver", "overload")),
        MetricSpec("floor", "", "楼层", "Floor", "int", -10, 200),
        MetricSpec("direction", "", "运行方向", "Direction", "str", states=("up", "down", "idle")),
        MetricSpec("door_state", "", "轿门状态", "Car door", "str",
                   states=("closed", "opening", "open", "closing")),
        MetricSpec("car_speed_mps", "m/s", "轿厢速度", "Car speed", "float", -20, 20),
        MetricSpec("load_pct", "%", "载重", "Load", "float", 0, 200),
        MetricSpec("in_service", "", "正常服务", "In service", "bool"),
        MetricSpec("occupied", "", "轿厢有人", "Car occupied", "bool"),
    ),
    DeviceKind.WATER_TANK: _m(
        MetricSpec("level_pct", "%", "水位", "Level", "float", 0, 100),
        MetricSpec("level_m", "m", "水位高度", "Level height", "float", 0, 50),
        MetricSpec("inlet_pressure_mpa", "MPa", "进水压力", "Inlet pressure", "float", 0, 5),
        MetricSpec("outlet_pressure_mpa", "MPa", "出水压力", "Outlet pressure", "float", 0, 5),
        MetricSpec("pump_running", "", "水泵运行", "Pump running", "bool"),
        MetricSpec("pump_fault", "", "水泵故障", "Pump fault", "bool"),
        MetricSpec("vfd_frequency_hz", "Hz", "变频器频率", "VFD frequency", "float", 0, 100),
        MetricSpec("turbidity_ntu", "NTU", "浊度", "Turbidity", "float", 0, 1000),
        MetricSpec("free_chlorine_mgl", "mg/L", "余氯", "Free chlorine", "float", 0, 20),
        MetricSpec("ph", "pH", "pH 值", "pH", "float", 0, 14),
        MetricSpec("flooded", "", "泵房水浸", "Pump room flooded", "bool"),
    ),
    DeviceKind.PARKING_BARRIER: _m(
        MetricSpec("barrier_state", "", "道闸状态", "Barrier state", "str",
                   states=("opening", "open", "closing", "closed", "fault")),
        MetricSpec("open_s", "s", "抬杆时长", "Open for", "float", 0, 86_400),
        MetricSpec("zone_occupancy", "", "车位占用", "Zone occupancy", "int", 0, 100_000),
        MetricSpec("zone_capacity", "", "车位总数", "Zone capacity", "int", 0, 100_000),
        MetricSpec("loop_ok", "", "地感正常", "Loop detector OK", "bool"),
    ),
    DeviceKind.GENERIC: _m(
        MetricSpec("value", "", "数值", "Value", "float"),
        MetricSpec("co_ppm", "ppm", "一氧化碳浓度", "CO level", "float", 0, 10_000),
        MetricSpec("leak", "", "漏水", "Leak", "bool"),
        MetricSpec("power_ok", "", "市电正常", "Mains power OK", "bool"),
        MetricSpec("generator_running", "", "发电机运行", "Generator running", "bool"),
        MetricSpec("pump_running", "", "排污泵运行", "Sump pump running", "bool"),
        MetricSpec("temperature_c", "°C", "温度", "Temperature", "float", -60, 200),
    ),
}

EVENTS: dict[DeviceKind, dict[str, EventSpec]] = {
    DeviceKind.ACCESS_GATE: _COMMON_EVENTS | _e(
        EventSpec("access.granted", "刷卡通过", "Access granted", P.LOW, ("card", "card_class")),
        EventSpec("access.denied", "刷卡被拒", "Access denied", P.LOW,
                  ("card", "card_class", "reason")),
        EventSpec("door.forced_open", "门被强行打开", "Door forced open", P.EMERGENCY),
        EventSpec("door.open_too_long_pre", "开门超时预警", "Door open too long (pre-alarm)",
                  P.MEDIUM, ("open_s",)),
        EventSpec("door.open_too_long", "开门超时", "Door open too long", P.HIGH, ("open_s",)),
        EventSpec("door.lock_fault", "门锁故障", "Lock fault", P.HIGH),
        EventSpec("door.remote_open", "远程开门", "Remote open", P.LOW, ("by",)),
    ),
    DeviceKind.ELEVATOR: _COMMON_EVENTS | _e(
        EventSpec("elevator.entrapment", "困人", "Passenger trapped", P.EMERGENCY, ("floor",)),
        EventSpec("elevator.entrapment_suspected", "疑似困人", "Suspected entrapment",
                  P.EMERGENCY, ("floor",)),
        EventSpec("elevator.stop_outside_door_zone", "非平层停梯", "Stopped outside door zone",
                  P.HIGH, ("floor",)),
        EventSpec("elevator.overrun_top", "冲顶", "Overrun at top", P.EMERGENCY),
        EventSpec("elevator.overrun_bottom", "蹲底", "Overrun at bottom", P.EMERGENCY),
        EventSpec("elevator.door_open_while_running", "运行中开门", "Door open while running",
                  P.EMERGENCY),
        EventSpec("elevator.overspeed", "超速", "Over-speed", P.EMERGENCY, ("speed_mps",)),
        EventSpec("elevator.alarm_bell", "警铃", "Alarm bell pressed", P.HIGH),
        EventSpec("elevator.power_failure", "停电", "Power failure", P.HIGH),
        EventSpec("elevator.door_cycling", "反复开关门", "Repeated door cycling", P.MEDIUM),
        EventSpec("elevator.door_open_failure", "开门故障", "Door-open failure", P.HIGH),
        EventSpec("elevator.unintended_movement", "轿厢意外移动", "Unintended car movement",
                  P.EMERGENCY),
        EventSpec("elevator.safety_circuit_open", "安全回路断开", "Safety circuit open", P.HIGH),
    ),
    DeviceKind.WATER_TANK: _COMMON_EVENTS | _e(
        EventSpec("pump.fault", "水泵故障", "Pump fault", P.HIGH, ("pump",)),
        EventSpec("pump_room.flooding", "泵房水浸", "Pump room flooding", P.EMERGENCY),
        EventSpec("pump_room.intrusion", "泵房非法闯入", "Pump room intrusion", P.HIGH),
    ),
    DeviceKind.PARKING_BARRIER: _COMMON_EVENTS | _e(
        EventSpec("vehicle.entry", "车辆入场", "Vehicle entry", P.LOW, ("plate", "pass_type")),
        EventSpec("vehicle.exit", "车辆出场", "Vehicle exit", P.LOW, ("plate", "pass_type")),
        EventSpec("vehicle.entry_refused", "拒绝入场", "Entry refused", P.LOW,
                  ("plate", "pass_type", "reason")),
        EventSpec("barrier.open_too_long", "道闸抬杆超时", "Barrier open too long", P.MEDIUM,
                  ("open_s",)),
        EventSpec("barrier.anti_smash", "防砸触发", "Anti-smash triggered", P.HIGH),
        EventSpec("barrier.loop_fault", "地感故障", "Loop-detector fault", P.MEDIUM),
        EventSpec("barrier.fault", "道闸故障", "Barrier fault", P.HIGH),
        EventSpec("lane.blocked", "车道堵塞", "Lane blocked", P.MEDIUM),
        EventSpec("zone.full", "车位已满", "Zone full", P.LOW, ("zone",)),
        EventSpec("vehicle.in_fire_lane", "消防通道停车", "Vehicle in fire lane", P.HIGH,
                  ("plate",)),
    ),
    DeviceKind.GENERIC: _COMMON_EVENTS | _e(
        EventSpec("medical.button", "医疗报警按钮", "Medical alarm button", P.EMERGENCY,
                  ("household",)),
        EventSpec("leak.detected", "漏水", "Leak detected", P.HIGH),
        EventSpec("perimeter.alarm", "周界报警", "Perimeter alarm", P.EMERGENCY, ("zone",)),
        EventSpec("fire_panel.trouble", "消防主机故障", "Fire panel trouble", P.HIGH),
        EventSpec("power.outage", "停电", "Power outage", P.HIGH),
        EventSpec("generator.started", "发电机启动", "Generator started", P.MEDIUM),
        EventSpec("sump_pump.fault", "排污泵故障", "Sump pump fault", P.HIGH),
    ),
}


def metric_spec(kind: DeviceKind, name: str) -> MetricSpec | None:
    return METRICS[kind].get(name)


def event_spec(kind: DeviceKind, name: str) -> EventSpec | None:
    return EVENTS[kind].get(name)
