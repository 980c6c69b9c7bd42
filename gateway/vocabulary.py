"""The normalised vocabulary of each device kind: metrics, events, states and attribute values.

Every vendor payload or register map is translated into these names by a profile, so rules,
the console and the cloud never see vendor details. Labels are (简体中文, English) and follow
the glossary in DOMAIN.md. This module is data; ``docs/vocabulary.md`` is generated from it
(``estate-gateway vocabulary --markdown``, see ``gateway.vocabdoc``) so the docs never drift
from the code.

Closed value sets (door states, card classes, denial reasons, pass types...) are ``StrEnum``s
for typed use in code, and each has bilingual labels in ``LABELS``; a metric's ``states`` and
an attribute's ``choices`` are built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from gateway.types import DeviceKind, Priority

__all__ = [
    "EVENTS",
    "KIND_LABELS",
    "LABELS",
    "PRIORITY_LABELS",
    "METRICS",
    "AttributeSpec",
    "BarrierState",
    "CarDoorState",
    "CardClass",
    "Choice",
    "DenyReason",
    "Direction",
    "DoorState",
    "ElevatorMode",
    "EventSpec",
    "LockState",
    "MetricSpec",
    "PassType",
    "RefuseReason",
    "attribute_spec",
    "event_spec",
    "metric_spec",
]

ValueKind = Literal["float", "int", "bool", "str"]

KIND_LABELS: dict[DeviceKind, tuple[str, str]] = {
    DeviceKind.ACCESS_GATE: ("门禁", "Access gate"),
    DeviceKind.ELEVATOR: ("电梯", "Elevator"),
    DeviceKind.WATER_TANK: ("二次供水 / 水箱", "Secondary water supply / Water tank"),
    DeviceKind.PARKING_BARRIER: ("道闸", "Barrier gate"),
    DeviceKind.GENERIC: ("其他设备", "Generic device"),
}

PRIORITY_LABELS: dict[Priority, tuple[str, str]] = {
    Priority.EMERGENCY: ("紧急", "Emergency"),
    Priority.HIGH: ("高", "High"),
    Priority.MEDIUM: ("中", "Medium"),
    Priority.LOW: ("低", "Low"),
}


class DoorState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HELD_OPEN = "held_open"
    FORCED_OPEN = "forced_open"
    UNKNOWN = "unknown"


class LockState(StrEnum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    FAULT = "fault"


class CardClass(StrEnum):
    """Who a card or fob belongs to (门禁卡 / 行人钥匙牌)."""

    OWNER = "owner"
    TENANT = "tenant"
    VISITOR = "visitor"
    TEMPORARY_PARKING = "temporary_parking"
    STAFF = "staff"
    UNKNOWN = "unknown"


class DenyReason(StrEnum):
    UNKNOWN_CARD = "unknown_card"
    EXPIRED = "expired"
    WRONG_CARD_CLASS = "wrong_card_class"
    ARREARS_BLOCKED = "arrears_blocked"


class ElevatorMode(StrEnum):
    NORMAL = "normal"
    INSPECTION = "inspection"
    FIRE = "fire"
    LOCKED = "locked"
    DRIVER = "driver"
    OVERLOAD = "overload"


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    IDLE = "idle"


class CarDoorState(StrEnum):
    CLOSED = "closed"
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"


class BarrierState(StrEnum):
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    FAULT = "fault"


class PassType(StrEnum):
    MONTHLY = "monthly"
    TEMPORARY = "temporary"
    PRIVATE_SPACE = "private_space"


class RefuseReason(StrEnum):
    PASS_EXPIRED = "pass_expired"
    NO_SPACE = "no_space"


LABELS: dict[type[StrEnum], dict[str, tuple[str, str]]] = {
    DoorState: {"closed": ("关闭", "Closed"), "open": ("开启", "Open"),
                "held_open": ("开门超时", "Held open"), "forced_open": ("被强行打开", "Forced open"),
                "unknown": ("未知", "Unknown")},
    LockState: {"locked": ("已上锁", "Locked"), "unlocked": ("已开锁", "Unlocked"),
                "fault": ("门锁故障", "Lock fault")},
    CardClass: {"owner": ("业主", "Owner"), "tenant": ("租户", "Tenant"),
                "visitor": ("访客", "Visitor"),
                "temporary_parking": ("临保卡", "Temporary parking card"),
                "staff": ("物业人员", "Property staff"), "unknown": ("未登记", "Unregistered")},
    DenyReason: {"unknown_card": ("未登记卡", "Unknown card"), "expired": ("卡已过期", "Expired"),
                 "wrong_card_class": ("卡类别无权限", "Wrong card class"),
                 "arrears_blocked": ("欠费禁用", "Blocked for arrears")},
    ElevatorMode: {"normal": ("正常", "Normal"), "inspection": ("检修", "Inspection"),
                   "fire": ("消防", "Fire service"), "locked": ("锁梯", "Locked"),
                   "driver": ("司机", "Attendant (driver)"), "overload": ("超载", "Overload")},
    Direction: {"up": ("上行", "Up"), "down": ("下行", "Down"), "idle": ("停止", "Idle")},
    CarDoorState: {"closed": ("关门", "Closed"), "opening": ("开门中", "Opening"),
                   "open": ("开门", "Open"), "closing": ("关门中", "Closing")},
    BarrierState: {"opening": ("抬杆中", "Opening"), "open": ("已抬杆", "Open"),
                   "closing": ("落杆中", "Closing"), "closed": ("已落杆", "Closed"),
                   "fault": ("故障", "Fault")},
    PassType: {"monthly": ("月保", "Monthly pass"), "temporary": ("临保", "Temporary parking"),
               "private_space": ("私家车位", "Private space")},
    RefuseReason: {"pass_expired": ("月保过期", "Pass expired"),
                   "no_space": ("车位已满", "No space")},
}


@dataclass(frozen=True, slots=True)
class Choice:
    """One value of a closed set, with its labels."""

    value: str
    zh: str
    en: str


def _choices(enum: type[StrEnum]) -> tuple[Choice, ...]:
    labels = LABELS[enum]
    missing = [m.value for m in enum if m.value not in labels]
    if missing:
        raise ValueError(f"{enum.__name__}: no labels for {missing}")
    return tuple(Choice(m.value, *labels[m.value]) for m in enum)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A sampled point of a kind. Numbers outside ``[low, high]`` are physically impossible
    and rejected as out of range; a ``str`` metric takes one of ``states``."""

    name: str
    unit: str
    zh: str
    en: str
    kind: ValueKind = "float"
    low: float | None = None
    high: float | None = None
    states: tuple[str, ...] = ()
    choices: tuple[Choice, ...] = ()


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute an event carries; ``choices`` closes its values where they are a set."""

    name: str
    zh: str
    en: str
    kind: ValueKind = "str"
    unit: str = ""
    choices: tuple[Choice, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    zh: str
    en: str
    priority: Priority
    attribute_specs: tuple[AttributeSpec, ...] = ()

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attribute_specs)


def _state(name: str, zh: str, en: str, enum: type[StrEnum]) -> MetricSpec:
    choices = _choices(enum)
    return MetricSpec(name, "", zh, en, "str", states=tuple(c.value for c in choices),
                      choices=choices)


def _m(*specs: MetricSpec) -> dict[str, MetricSpec]:
    return {s.name: s for s in specs}


def _e(*specs: EventSpec) -> dict[str, EventSpec]:
    return {s.name: s for s in specs}


P = Priority
A = AttributeSpec

# attributes shared by several events (one definition, one set of labels)
CARD = A("card", "卡号", "Card number")
CARD_CLASS = A("card_class", "卡类别", "Card class", choices=_choices(CardClass))
DENY_REASON = A("reason", "拒绝原因", "Reason", choices=_choices(DenyReason))
OPEN_S = A("open_s", "开启时长", "Open for", "float", "s")
BY = A("by", "操作人", "By")
FLOOR = A("floor", "楼层", "Floor", "int")
SPEED = A("speed_mps", "速度", "Speed", "float", "m/s")
PUMP = A("pump", "水泵", "Pump")
PLATE = A("plate", "车牌", "Plate")
PASS_TYPE = A("pass_type", "通行类型", "Pass type", choices=_choices(PassType))
REFUSE_REASON = A("reason", "拒绝原因", "Reason", choices=_choices(RefuseReason))
ZONE = A("zone", "区域", "Zone")
SPACE = A("space", "车位号", "Space")
HOUSEHOLD = A("household", "住户", "Household")
OFFLINE_REASON = A("reason", "原因", "Reason")
CO_PPM = A("co_ppm", "一氧化碳浓度", "CO level", "float", "ppm")

_COMMON_EVENTS = _e(
    EventSpec("device.offline", "设备离线", "Device offline", P.LOW, (OFFLINE_REASON,)),
    EventSpec("device.online", "设备上线", "Device online", P.LOW),
    EventSpec("device.tamper", "设备防拆报警", "Device tamper", P.HIGH),
)

METRICS: dict[DeviceKind, dict[str, MetricSpec]] = {
    DeviceKind.ACCESS_GATE: _m(
        _state("door_state", "门状态", "Door state", DoorState),
        _state("lock_state", "锁状态", "Lock state", LockState),
        MetricSpec("door_open_s", "s", "开门时长", "Door open for", "float", 0, 86_400),
        MetricSpec("battery_pct", "%", "电池电量", "Battery", "float", 0, 100),
    ),
    DeviceKind.ELEVATOR: _m(
        _state("mode", "运行模式", "Mode", ElevatorMode),
        MetricSpec("floor", "", "楼层", "Floor", "int", -10, 200),
        _state("direction", "运行方向", "Direction", Direction),
        _state("door_state", "轿门状态", "Car door", CarDoorState),
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
        MetricSpec("door_open", "", "泵房门开", "Pump room door open", "bool"),
    ),
    DeviceKind.PARKING_BARRIER: _m(
        _state("barrier_state", "道闸状态", "Barrier state", BarrierState),
        MetricSpec("open_s", "s", "抬杆时长", "Open for", "float", 0, 86_400),
        MetricSpec("zone_occupancy", "", "车位占用", "Zone occupancy", "int", 0, 100_000),
        MetricSpec("zone_capacity", "", "车位总数", "Zone capacity", "int", 0, 100_000),
        MetricSpec("loop_ok", "", "地感正常", "Loop detector OK", "bool"),
        MetricSpec("lane_blocked", "", "车道堵塞", "Lane blocked", "bool"),
    ),
    DeviceKind.GENERIC: _m(
        MetricSpec("value", "", "数值", "Value", "float"),
        MetricSpec("co_ppm", "ppm", "一氧化碳浓度", "CO level", "float", 0, 10_000),
        MetricSpec("fan_running", "", "排风机运行", "Exhaust fan running", "bool"),
        MetricSpec("leak", "", "漏水", "Leak", "bool"),
        MetricSpec("power_ok", "", "市电正常", "Mains power OK", "bool"),
        MetricSpec("generator_running", "", "发电机运行", "Generator running", "bool"),
        MetricSpec("pump_running", "", "排污泵运行", "Sump pump running", "bool"),
        MetricSpec("temperature_c", "°C", "温度", "Temperature", "float", -60, 200),
    ),
}

EVENTS: dict[DeviceKind, dict[str, EventSpec]] = {
    DeviceKind.ACCESS_GATE: _COMMON_EVENTS | _e(
        EventSpec("access.granted", "刷卡通过", "Access granted", P.LOW, (CARD, CARD_CLASS)),
        EventSpec("access.denied", "刷卡被拒", "Access denied", P.LOW,
                  (CARD, CARD_CLASS, DENY_REASON)),
        EventSpec("door.forced_open", "门被强行打开", "Door forced open", P.EMERGENCY),
        EventSpec("door.open_too_long_pre", "开门超时预警", "Door open too long (pre-alarm)",
                  P.MEDIUM, (OPEN_S,)),
        EventSpec("door.open_too_long", "开门超时", "Door open too long", P.HIGH, (OPEN_S,)),
        EventSpec("door.lock_fault", "门锁故障", "Lock fault", P.HIGH),
        EventSpec("door.remote_open", "远程开门", "Remote open", P.LOW, (BY,)),
    ),
    DeviceKind.ELEVATOR: _COMMON_EVENTS | _e(
        EventSpec("elevator.entrapment", "困人", "Passenger trapped", P.EMERGENCY, (FLOOR,)),
        EventSpec("elevator.entrapment_suspected", "疑似困人", "Suspected entrapment",
                  P.EMERGENCY, (FLOOR,)),
        EventSpec("elevator.entrapment_released", "困人解除", "Entrapment released", P.LOW,
                  (FLOOR,)),
        EventSpec("elevator.stop_outside_door_zone", "非平层停梯", "Stopped outside door zone",
                  P.HIGH, (FLOOR,)),
        EventSpec("elevator.overrun_top", "冲顶", "Overrun at top", P.EMERGENCY),
        EventSpec("elevator.overrun_bottom", "蹲底", "Overrun at bottom", P.EMERGENCY),
        EventSpec("elevator.door_open_while_running", "运行中开门", "Door open while running",
                  P.EMERGENCY, (FLOOR,)),
        EventSpec("elevator.overspeed", "超速", "Over-speed", P.EMERGENCY, (SPEED,)),
        EventSpec("elevator.alarm_bell", "警铃", "Alarm bell pressed", P.HIGH, (FLOOR,)),
        EventSpec("elevator.power_failure", "停电", "Power failure", P.HIGH),
        EventSpec("elevator.door_cycling", "反复开关门", "Repeated door cycling", P.MEDIUM,
                  (FLOOR,)),
        EventSpec("elevator.door_open_failure", "开门故障", "Door-open failure", P.HIGH,
                  (FLOOR,)),
        EventSpec("elevator.unintended_movement", "轿厢意外移动", "Unintended car movement",
                  P.EMERGENCY),
        EventSpec("elevator.safety_circuit_open", "安全回路断开", "Safety circuit open", P.HIGH),
    ),
    DeviceKind.WATER_TANK: _COMMON_EVENTS | _e(
        EventSpec("pump.fault", "水泵故障", "Pump fault", P.HIGH, (PUMP,)),
        EventSpec("level.high_high", "溢流水位", "Level high-high (overflow)", P.HIGH),
        EventSpec("level.low_low", "低低水位 (水泵干转)", "Level low-low (pump dry-run)", P.HIGH),
        EventSpec("pump_room.flooding", "泵房水浸", "Pump room flooding", P.EMERGENCY),
        EventSpec("pump_room.intrusion", "泵房非法闯入", "Pump room intrusion", P.HIGH),
    ),
    DeviceKind.PARKING_BARRIER: _COMMON_EVENTS | _e(
        EventSpec("vehicle.entry", "车辆入场", "Vehicle entry", P.LOW, (PLATE, PASS_TYPE)),
        EventSpec("vehicle.exit", "车辆出场", "Vehicle exit", P.LOW, (PLATE, PASS_TYPE)),
        EventSpec("vehicle.entry_refused", "拒绝入场", "Entry refused", P.LOW,
                  (PLATE, PASS_TYPE, REFUSE_REASON)),
        EventSpec("barrier.open_too_long", "道闸抬杆超时", "Barrier open too long", P.MEDIUM,
                  (OPEN_S,)),
        EventSpec("barrier.anti_smash", "防砸触发", "Anti-smash triggered", P.HIGH),
        EventSpec("barrier.loop_fault", "地感故障", "Loop-detector fault", P.MEDIUM),
        EventSpec("barrier.fault", "道闸故障", "Barrier fault", P.HIGH),
        EventSpec("lane.blocked", "车道堵塞", "Lane blocked", P.MEDIUM),
        EventSpec("zone.full", "车位已满", "Zone full", P.LOW, (ZONE,)),
        EventSpec("vehicle.in_fire_lane", "消防通道停车", "Vehicle in fire lane", P.HIGH,
                  (PLATE,)),
        EventSpec("vehicle.on_private_space", "占用私家车位", "Vehicle on a private space",
                  P.LOW, (PLATE, SPACE)),
    ),
    DeviceKind.GENERIC: _COMMON_EVENTS | _e(
        EventSpec("medical.button", "医疗报警按钮", "Medical alarm button", P.EMERGENCY,
                  (HOUSEHOLD,)),
        EventSpec("leak.detected", "漏水", "Leak detected", P.HIGH),
        EventSpec("perimeter.alarm", "周界报警", "Perimeter alarm", P.EMERGENCY, (ZONE,)),
        EventSpec("fire_panel.trouble", "消防主机故障", "Fire panel trouble", P.HIGH),
        EventSpec("power.outage", "停电", "Power outage", P.HIGH),
        EventSpec("power.restored", "恢复供电", "Power restored", P.LOW),
        EventSpec("generator.started", "发电机启动", "Generator started", P.MEDIUM),
        EventSpec("generator.fault", "发电机故障", "Generator fault", P.HIGH),
        EventSpec("sump_pump.fault", "排污泵故障", "Sump pump fault", P.HIGH),
        EventSpec("sump.high_level", "集水井高水位", "Sump high level", P.HIGH),
        EventSpec("co.high", "一氧化碳超标", "CO level high", P.HIGH, (CO_PPM,)),
    ),
}


def metric_spec(kind: DeviceKind, name: str) -> MetricSpec | None:
    return METRICS[kind].get(name)


def event_spec(kind: DeviceKind, name: str) -> EventSpec | None:
    return EVENTS[kind].get(name)


def attribute_spec(kind: DeviceKind, name: str) -> list[AttributeSpec]:
    """Every definition of attribute ``name`` among the kind's events (``reason`` has two)."""
    out: list[AttributeSpec] = []
    for event in EVENTS[kind].values():
        for spec in event.attribute_specs:
            if spec.name == name and spec not in out:
                out.append(spec)
    return out
