"""Reading's hand-written constructor behaves like the frozen dataclass's generated one."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from gateway.types import Quality, Reading


def generated() -> type:
    """A frozen, slotted dataclass with Reading's fields, constructor left to dataclasses."""
    return dataclasses.make_dataclass(
        "Generated", [(f.name, f.type, f) if f.default is not dataclasses.MISSING
                      else (f.name, f.type) for f in dataclasses.fields(Reading)],
        frozen=True, slots=True)


def test_reading_constructor_has_the_generated_signature() -> None:
    ours = inspect.signature(Reading.__init__).parameters
    ref = inspect.signature(generated().__init__).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == \
        [(p.name, p.kind, p.default) for p in ref.values()]


@pytest.mark.parametrize(("args", "kwargs"), [
    (("d", "m", 1.5, 10.0), {}),
    (("d", "m", True, 10.0, "%", Quality.UNCERTAIN, 11.0), {}),
    (("d",), {"metric": "m", "value": "open", "at": 1.0, "received_at": 2.0}),
    ((), {"device_id": "d", "metric": "m", "value": 3, "at": 1.0, "quality": Quality.BAD}),
])
def test_reading_constructor_sets_what_the_generated_one_sets(args: tuple, kwargs: dict) -> None:
    r = Reading(*args, **kwargs)
    ref = generated()(*args, **kwargs)
    assert dataclasses.astuple(r) == dataclasses.astuple(ref)
    assert r == Reading(*args, **kwargs)
    assert hash(r) == hash(Reading(*args, **kwargs))


def test_reading_stays_frozen_and_replaceable() -> None:
    r = Reading("d", "m", 1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 3.0  # type: ignore[misc]
    assert dataclasses.replace(r, value=3.0) == Reading("d", "m", 3.0, 2.0)
    assert repr(r) == ("Reading(device_id='d', metric='m', value=1.0, at=2.0, unit='', "
                       "quality=<Quality.GOOD: 'good'>, received_at=0.0)")


def test_reading_constructor_refuses_what_the_generated_one_refuses() -> None:
    with pytest.raises(TypeError):
        Reading("d", "m", 1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Reading("d", "m", 1.0, 2.0, colour="red")  # type: ignore[call-arg]
