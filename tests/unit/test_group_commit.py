"""Group commit: batches handed over within the linger share one store transaction, every
caller resumes only once its readings are committed, and a failed write fails exactly the
batches whose readings it held."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.store.groupcommit import GroupCommit
from gateway.types import Reading


def readings(n: int, first: int = 0) -> list[Reading]:
    return [Reading("tank-1", "level_pct", float(i), 1_767_225_600.0 + i)
            for i in range(first, first + n)]


class Store:
    """Records each transaction; ``gate`` holds a write open until set."""

    def __init__(self) -> None:
        self.transactions: list[list[float]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: set[int] = set()  # transaction numbers that raise

    async def write(self, batch: Sequence[Reading]) -> int:
        number = len(self.transactions)
        self.transactions.append([r.value for r in batch])  # type: ignore[misc]
        await self.gate.wait()
        if number in self.fail:
            raise OSError("disk I/O error")
        return len(batch)


async def test_batches_within_the_linger_share_one_transaction() -> None:
    store = Store()
    group = GroupCommit(store.write, linger_s=0.05, max_points=1000)
    one, two = group.submit(readings(2)), group.submit(readings(3, 2))
    await asyncio.sleep(0.01)
    assert not one.done() and store.transactions == []  # lingering: nothing written yet
    await asyncio.gather(one, two)
    assert store.transactions == [[0.0, 1.0, 2.0, 3.0, 4.0]]
    assert (group.batches, group.transactions) == (2, 1)
    three = group.submit(readings(1, 5))  # a new group after the first was written
    await three
    assert store.transactions[1:] == [[5.0]]


async def test_a_full_group_is_written_without_waiting_for_the_linger() -> None:
    store = Store()
    group = GroupCommit(store.write, linger_s=60.0, max_points=4)
    first = group.submit(readings(3))
    second = group.submit(readings(2, 3))  # 5 >= 4: closes the group
    await asyncio.wait_for(asyncio.gather(first, second), 1.0)
    assert store.transactions == [[0.0, 1.0, 2.0, 3.0, 4.0]]
    third = group.submit(readings(1, 5))
    await asyncio.sleep(0.01)
    assert not third.done()  # lingers again
    await group.close()
    assert third.cancelled() and store.transactions == [[0.0, 1.0, 2.0, 3.0, 4.0]]


async def test_groups_closed_while_a_write_runs_go_in_the_next_transaction() -> None:
    store = Store()
    store.gate.clear()
    group = GroupCommit(store.write, linger_s=0.0, max_points=1000)  # no linger
    first = group.submit(readings(1))
    await asyncio.sleep(0)
    assert store.transactions == [[0.0]]  # written at once, held open
    later = [group.submit(readings(1, i)) for i in (1, 2, 3)]
    await asyncio.sleep(0)
    store.gate.set()
    await asyncio.gather(first, *later)
    assert store.transactions == [[0.0], [1.0, 2.0, 3.0]]


async def test_a_failed_write_fails_the_batches_of_its_group_only() -> None:
    store = Store()
    store.fail = {0}
    group = GroupCommit(store.write, linger_s=0.01, max_points=1000)
    a, b = group.submit(readings(1)), group.submit(readings(1, 1))
    for fut in (a, b):
        with pytest.raises(OSError, match="disk I/O error"):
            await asyncio.shield(fut)
    c = group.submit(readings(1, 2))
    assert await c == 1
    assert store.transactions == [[0.0, 1.0], [2.0]]


async def test_a_cancelled_caller_does_not_cancel_the_others_write() -> None:
    store = Store()
    group = GroupCommit(store.write, linger_s=0.02, max_points=1000)

    async def caller(n: int) -> None:
        await asyncio.shield(group.submit(readings(1, n)))

    gone, stays = asyncio.create_task(caller(0)), asyncio.create_task(caller(1))
    await asyncio.sleep(0)
    gone.cancel()
    await stays
    assert gone.cancelled()
    assert store.transactions == [[0.0, 1.0]]  # the cancelled batch's readings are written too
