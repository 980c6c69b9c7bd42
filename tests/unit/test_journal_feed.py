"""The journal feed: the committed rows in memory, exact or absent, never a partial guess."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.feed import JournalFeed
from gateway.store.state import JournalDraft, StateStore, Transaction
from gateway.types import JournalEntry


def _entry(seq: int) -> JournalEntry:
    return JournalEntry(seq, f"e{seq}", "t", float(seq), "s", {"n": seq})


def _tx(*names: str) -> Transaction:
    return Transaction(journal=[JournalDraft("t", 0.0, "s", {"n": n}) for n in names])


def test_feed_answers_rows_after_a_cursor_it_covers() -> None:
    feed = JournalFeed(10)
    feed.add(10, [_entry(11), _entry(12)])
    feed.add(12, [_entry(13)])
    assert [e.seq for e in feed.after(10, 100) or []] == [11, 12, 13]
    assert [e.seq for e in feed.after(11, 1) or []] == [12]
    assert feed.after(13, 100) == []
    assert feed.after(9, 100) is None  # older than the feed: read the journal


def test_feed_starts_again_after_rows_it_never_saw() -> None:
    feed = JournalFeed(10)
    feed.add(10, [_entry(11)])
    feed.add(14, [_entry(15)])  # 12..14 written by someone else (another process)
    assert feed.gaps == 1
    assert feed.after(11, 100) is None  # 12..14 are not here: never skip them silently
    assert [e.seq for e in feed.after(14, 100) or []] == [15]


def test_feed_keeps_its_capacity_and_moves_base_past_what_it_dropped() -> None:
    feed = JournalFeed(0, capacity=3)
    for seq in range(1, 11):
        feed.add(seq - 1, [_entry(seq)])
    assert feed.last == 10
    assert feed.after(feed.base, 100) is not None
    assert feed.after(feed.base - 1, 100) is None
    assert [e.seq for e in feed.after(7, 100) or []] == [8, 9, 10]


async def test_feed_wait_wakes_on_add_and_times_out_without() -> None:
    feed = JournalFeed(0)
    waiter = asyncio.ensure_future(feed.wait(0, 5.0))
    await asyncio.sleep(0)
    assert not waiter.done()
    feed.add(0, [_entry(1)])
    await asyncio.wait_for(waiter, 1.0)
    await feed.wait(0, 5.0)  # already past the cursor: returns at once
    await asyncio.wait_for(feed.wait(1, 0.01), 1.0)  # nothing new: the timeout


async def test_state_store_hands_each_commit_to_the_feed_in_order(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    try:
        written = await asyncio.gather(*(state.apply(_tx(f"a{i}", f"b{i}"))
                                         for i in range(20)))
        await asyncio.sleep(0)  # the feed's add is queued on the loop by the writer thread
        feed_rows = state.feed.after(0, 1000)
        assert feed_rows is not None
        assert [e.seq for e in feed_rows] == list(range(1, 41))
        assert [e.seq for e in feed_rows] == [e.seq for rows in written for e in rows]
        stored = state.journal_sync(0, 1000)
        assert [(e.seq, e.event_id, dict(e.data)) for e in feed_rows] == [
            (e.seq, e.event_id, dict(e.data)) for e in stored]
    finally:
        state.close()


async def test_rows_written_by_another_process_send_readers_to_the_journal(
        tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    other = StateStore(tmp_path / "state.db")  # e.g. the CLI, with its own connection
    try:
        await state.apply(_tx("mine-1"))
        other.apply_sync(_tx("theirs"))
        await state.apply(_tx("mine-2"))
        await asyncio.sleep(0)
        assert state.feed.after(1, 100) is None  # seq 2 never came through the feed
        assert [e.data["n"] for e in state.journal_sync(1, 100)] == ["theirs", "mine-2"]
        assert [e.data["n"] for e in state.feed.after(2, 100) or []] == ["mine-2"]
    finally:
        other.close()
        state.close()
