"""The journal's newest committed rows, kept in memory so live readers need no database read.

The state store hands every committed transaction's journal rows to its ``JournalFeed``
(``add``) from the writer thread, in commit order, after the ``COMMIT`` has returned: a
row is durable before any reader can see it here. Readers that follow the journal live
(the alarm-topic publisher, the console stream) take rows after their cursor from the
feed (``after``) and sleep until the next commit (``wait``) instead of re-reading the
journal on a thread after every wake-up.

The feed is exact, not a cache that may miss rows: it holds *every* journal row with a
``seq`` in ``(base, last]``. Each ``add`` says which ``seq`` the journal had reached when
its transaction began (read under the write lock, so nothing else can be written between
that and the transaction's own rows). When that is not where the feed ended, some other
writer (another process, e.g. the CLI) wrote rows the feed never saw, so the feed starts
again after them. ``after`` answers ``None`` for a cursor outside ``(base, last]``: the
reader must read the journal itself (after a restart, a broker outage longer than the
feed, or such a gap). The journal stays the source of truth; the feed only saves the read.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Sequence

from gateway.types import JournalEntry

__all__ = ["JournalFeed"]


class JournalFeed:
    """Every journal row after ``base``, up to ``capacity`` of the newest; loop-thread only.

    Args:
        base: the journal's newest ``seq`` when the feed starts (the rows after it will
            all come through ``add``).
        capacity: rows kept; older ones are dropped and ``base`` moves past them.
    """

    def __init__(self, base: int = 0, *, capacity: int = 10_000) -> None:
        self.base = base
        self.last = base
        self.capacity = capacity
        self._entries: list[JournalEntry] = []
        self._seqs: list[int] = []
        # futures of waiting readers, made on their own loop (so no loop is bound here)
        self._waiters: set[asyncio.Future[None]] = set()
        self.gaps = 0  # times another writer's rows made the feed start again

    def add(self, after: int, entries: Sequence[JournalEntry]) -> None:
        """Rows of one committed transaction; ``after``: the journal's seq before it."""
        if not entries:
            return
        if after != self.last:  # rows written by someone else in between: start again
            self.gaps += 1
            self._entries.clear()
            self._seqs.clear()
            self.base = after
        self._entries.extend(entries)
        self._seqs.extend(e.seq for e in entries)
        self.last = entries[-1].seq
        if len(self._entries) > 2 * self.capacity:  # trim in halves: amortised O(1)
            drop = len(self._entries) - self.capacity
            self.base = self._seqs[drop - 1]
            del self._entries[:drop], self._seqs[:drop]
        waiters, self._waiters = self._waiters, set()
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def after(self, cursor: int, limit: int) -> list[JournalEntry] | None:
        """Up to ``limit`` rows after ``cursor``, oldest first; ``None`` when the feed does
        not hold everything after ``cursor`` (read the journal instead)."""
        if cursor < self.base:
            return None
        i = bisect.bisect_right(self._seqs, cursor)
        return self._entries[i:i + limit]

    async def wait(self, cursor: int, timeout: float) -> None:
        """Return once a row after ``cursor`` has been added, or after ``timeout`` seconds.

        Readers also re-read on the timeout, so rows no ``add`` announced (written by
        another process) are still found.
        """
        if self.last > cursor:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await waiter
        finally:
            self._waiters.discard(waiter)
