"""The outbox: every new point once, in insertion order, cursor persisted across reopen."""

from __future__ import annotations

from gateway.types import Reading
from tests.unit.store.conftest import T0


async def test_outbox_holds_new_points_in_insertion_order(make_store):
    store = make_store(outbox=True)
    await store.write([Reading("b", "x", 2.0, T0 + 5), Reading("a", "y", 1.0, T0)])
    await store.write([Reading("a", "y", 1.0, T0),  # redelivered: not queued again
                       Reading("c", "z", "on", T0 + 1)])
    rows = store.outbox_read_sync(10)
    assert [(r.seq, r.device_id, r.metric, r.ts_ms, r.value) for r in rows] == [
        (1, "b", "x", (T0 + 5) * 1000, 2.0), (2, "a", "y", T0 * 1000, 1.0),
        (3, "c", "z", (T0 + 1) * 1000, "on")]


async def test_outbox_ack_advances_cursor_and_survives_reopen(make_store):
    store = make_store(outbox=True, name="a.db")
    await store.write([Reading("d", "m", float(i), T0 + i) for i in range(10)])
    await store.outbox_ack(4)
    assert [r.seq for r in store.outbox_read_sync(3)] == [5, 6, 7]
    assert store.outbox_backlog_sync() == 6
    store.close()
    again = make_store(outbox=True, name="a.db")
    assert again.outbox_cursor_sync() == 4
    assert [r.seq for r in again.outbox_read_sync(100)] == [5, 6, 7, 8, 9, 10]
    await again.outbox_ack(10)
    assert again.outbox_read_sync(100) == [] and again.outbox_backlog_sync() == 0
    # seq is never reused after the outbox emptied (AUTOINCREMENT)
    await again.write([Reading("d", "m", 0.0, T0 + 100)])
    assert [r.seq for r in again.outbox_read_sync(100)] == [11]


async def test_outbox_off_queues_nothing_and_keeps_old_rows(make_store):
    store = make_store(outbox=True, name="b.db")
    await store.write([Reading("d", "m", 1.0, T0)])
    store.close()
    off = make_store(outbox=False, name="b.db")
    await off.write([Reading("d", "m", 2.0, T0 + 1)])
    assert [r.value for r in off.outbox_read_sync(10)] == [1.0]
