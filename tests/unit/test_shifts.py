"""Shift start, take-over and handover as pure decisions (no store, no clock)."""

from __future__ import annotations

import pytest

from gateway.shifts import HISTORY_MAX, ShiftBook, ShiftError, ShiftState


def adopt(book: ShiftBook, result: tuple) -> list:
    book.state, drafts = result
    return drafts


def test_start_handover_accept_moves_duty_and_records_each_step() -> None:
    book = ShiftBook()
    (started,) = adopt(book, book.start("op1", 100.0))
    assert started.type == "estate.shift.started"
    assert book.state.current.operator == "op1"
    (offered,) = adopt(book, book.offer("op1", 200.0, ["a:1", "b:2"], ["wo-1"],
                                         open_alarms=["b:2", "a:1"], note="roof door"))
    assert offered.type == "estate.shift.handover_offered"
    pending = book.state.pending
    assert (pending.alarms, pending.orders, pending.note) == (("a:1", "b:2"), ("wo-1",),
                                                              "roof door")
    (accepted,) = adopt(book, book.accept(pending.id, "op2", 300.0, note="ok"))
    assert accepted.type == "estate.shift.handover_accepted"
    assert accepted.data["previous"]["operator"] == "op1"
    cur = book.state.current
    assert (cur.operator, cur.started_at, cur.handover_id) == ("op2", 300.0, pending.id)
    assert book.state.pending is None
    (done,) = book.state.history
    assert (done.accepted_by, done.accepted_at, done.accept_note) == ("op2", 300.0, "ok")


def test_handover_must_cover_exactly_the_open_alarms() -> None:
    book = ShiftBook()
    adopt(book, book.start("op1", 0.0))
    with pytest.raises(ShiftError, match=r"new: c:3; closed: -") as exc:
        book.offer("op1", 1.0, ["a:1"], [], open_alarms=["a:1", "c:3"])
    assert exc.value.status == 409
    with pytest.raises(ShiftError, match=r"new: -; closed: a:1"):
        book.offer("op1", 1.0, ["a:1"], [], open_alarms=[])


def test_only_the_operator_on_duty_hands_over_and_someone_else_accepts() -> None:
    book = ShiftBook()
    adopt(book, book.start("op1", 0.0))
    with pytest.raises(ShiftError, match="only the operator on duty") as exc:
        book.offer("op2", 1.0, [], [], open_alarms=[])
    assert exc.value.status == 403
    adopt(book, book.offer("op1", 1.0, [], [], open_alarms=[]))
    with pytest.raises(ShiftError, match="must be someone else"):
        book.accept(book.state.pending.id, "op1", 2.0)
    with pytest.raises(ShiftError, match="not pending") as exc:
        book.accept("nope", "op2", 2.0)
    assert exc.value.status == 404
    with pytest.raises(ShiftError, match="only the outgoing operator"):
        book.withdraw(book.state.pending.id, "op2", 2.0)
    adopt(book, book.withdraw(book.state.pending.id, "op1", 2.0))
    assert book.state.pending is None and book.state.current.operator == "op1"


def test_taking_over_an_open_shift_needs_a_reason_and_is_recorded() -> None:
    book = ShiftBook()
    adopt(book, book.start("op1", 0.0))
    with pytest.raises(ShiftError, match="already on duty"):
        book.start("op1", 1.0)
    with pytest.raises(ShiftError, match="give a reason"):
        book.start("op2", 1.0, "   ")
    (draft,) = adopt(book, book.start("op2", 1.0, "op1 went home ill"))
    assert draft.data["previous"]["operator"] == "op1"
    cur = book.state.current
    assert (cur.operator, cur.took_over_from, cur.takeover_reason) == (
        "op2", "op1", "op1 went home ill")


def test_state_round_trips_through_json_and_history_is_bounded() -> None:
    book = ShiftBook()
    adopt(book, book.start("op0", 0.0))
    for i in range(HISTORY_MAX + 5):
        adopt(book, book.offer(f"op{i}", i + 0.5, ["x:1"], [], open_alarms=["x:1"]))
        adopt(book, book.accept(book.state.pending.id, f"op{i + 1}", i + 1.0))
    assert len(book.state.history) == HISTORY_MAX
    assert book.state.history[0].accepted_by == f"op{HISTORY_MAX + 5}"
    adopt(book, book.offer(book.state.current.operator, 999.0, ["x:1"], ["wo"], ["x:1"]))
    again = ShiftState.from_json(book.state.to_json())
    assert again == book.state
    assert ShiftState.from_json(None) == ShiftState()
