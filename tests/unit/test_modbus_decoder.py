"""The decoder (register image → readings/events) and the circuit breaker; pure, no wire."""

from __future__ import annotations

import random

from drivers.modbus.breaker import Breaker, Transition
from drivers.modbus.codec import ReadRequest
from drivers.modbus.decoder import DeviceDecoder, event_id
from drivers.simulators.modbus_devices import shipped_map
from gateway.types import Event, Quality, Reading


def _elevator() -> DeviceDecoder:
    return DeviceDecoder("lift-1", shipped_map("elevator-monitor"))


def _image(decoder: DeviceDecoder, regs: dict[int, int]) -> dict[ReadRequest, list[int]]:
    (request,) = decoder.plan
    return {request: [regs.get(a, 0) for a in range(request.address,
                                                     request.address + request.count)]}


def test_decoder_reads_the_elevator_map_in_one_request() -> None:
    assert _elevator().plan == [ReadRequest("input", 0, 10)]


def test_decoder_scales_maps_states_and_bits() -> None:
    decoder = _elevator()
    # floor -2, going down, doors open, fire mode, 1.5 m/s (CDAB), 41.2 %, in service
    regs = {0: 0xFFFE, 1: 2, 2: 2, 3: 2, 4: 0x0000, 5: 0x3FC0, 6: 412, 7: 0b01}
    out = decoder.decode(_image(decoder, regs), at=100.0)
    values = {o.metric: (o.value, o.quality) for o in out if isinstance(o, Reading)}
    assert values == {
        "floor": (-2, Quality.GOOD), "direction": ("down", Quality.GOOD),
        "door_state": ("open", Quality.GOOD), "mode": ("fire", Quality.GOOD),
        "car_speed_mps": (1.5, Quality.GOOD), "load_pct": (41.2, Quality.GOOD),
        "in_service": (True, Quality.GOOD), "occupied": (False, Quality.GOOD),
    }


def test_decoder_unknown_state_code_and_out_of_range_are_bad() -> None:
    decoder = _elevator()
    out = decoder.decode(_image(decoder, {1: 9, 0: 500}), at=1.0)
    values = {o.metric: (o.value, o.quality) for o in out if isinstance(o, Reading)}
    assert values["direction"] == ("9", Quality.BAD)
    assert values["floor"] == (500, Quality.BAD)  # vocabulary says -10..200


def test_decoder_events_fire_on_rising_edge_only_with_attributes() -> None:
    decoder = _elevator()
    entrapment = {0: 7, 8: 0x0001}  # fault word is uint32 CDAB: low word first
    first = [o for o in decoder.decode(_image(decoder, entrapment), at=10.0)
             if isinstance(o, Event)]
    assert first == [Event("lift-1", "elevator.entrapment", 10.0,
                           event_id("lift-1", "elevator.entrapment", 10.0),
                           {"floor": 7, "speed_mps": 0.0}, 10.0)]
    again = [o for o in decoder.decode(_image(decoder, entrapment), at=11.0)
             if isinstance(o, Event)]
    assert again == []
    # bit 17 is not mapped; bit 3 (overrun top) rises while entrapment stays set
    both = {0: 7, 8: 0x0009, 9: 0x0002}
    assert [o.kind for o in decoder.decode(_image(decoder, both), at=12.0)
            if isinstance(o, Event)] == ["elevator.overrun_top"]
    decoder.decode(_image(decoder, {0: 7}), at=13.0)
    assert [o.kind for o in decoder.decode(_image(decoder, entrapment), at=14.0)
            if isinstance(o, Event)] == ["elevator.entrapment"]


def test_event_id_is_deterministic() -> None:
    assert event_id("a", "k", 1.5) == event_id("a", "k", 1.5)
    assert event_id("a", "k", 1.5) != event_id("a", "k", 1.6)


def test_decoder_deadband_suppresses_small_changes_until_refresh() -> None:
    decoder = DeviceDecoder("tank-1", shipped_map("water-tank-controller"))
    plan = decoder.plan

    def level(raw: int, at: float) -> list[float]:
        image = {r: [0] * r.count for r in plan}
        image[next(r for r in plan if r.function == "input")][0] = raw
        return [o.value for o in decoder.decode(image, at)  # type: ignore[misc]
                if isinstance(o, Reading) and o.metric == "level_pct"]

    assert level(500, 0.0) == [50.0]
    assert level(504, 1.0) == []          # 0.4 % < deadband 0.5 %
    assert level(505, 2.0) == [50.5]
    assert level(506, 303.0) == [50.6]    # within deadband, but older than 300 s refresh


def test_decoder_unavailable_keeps_last_good_value_and_resets_deadband() -> None:
    decoder = _elevator()
    decoder.decode(_image(decoder, {0: 4}), at=1.0)
    down = {r.metric: r for r in decoder.unavailable(at=2.0)}
    assert (down["floor"].value, down["floor"].quality) == (4, Quality.UNAVAILABLE)
    assert len(down) == 8


def test_breaker_goes_offline_once_after_n_failures_and_recovers() -> None:
    breaker = Breaker(3, 1.0, 8.0, random.Random(0))
    assert breaker.success() is Transition.FIRST_ONLINE
    assert [breaker.failure(t) for t in (0.0, 1.0)] == [Transition.NONE] * 2
    assert breaker.failure(2.0) is Transition.OFFLINE
    assert breaker.failure(3.0) is Transition.NONE   # already offline: nothing new
    assert breaker.success() is Transition.RECOVERED
    assert breaker.success() is Transition.NONE


def test_breaker_backoff_doubles_up_to_the_cap_with_downward_jitter() -> None:
    breaker = Breaker(1, 1.0, 8.0, random.Random(0))
    delays = []
    now = 0.0
    breaker.failure(now)
    for _ in range(7):
        delays.append(breaker.retry_at - now)
        now = breaker.retry_at
        breaker.failure(now)
    caps = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert all(0.8 * cap <= d <= cap for d, cap in zip(delays, caps, strict=True))
