"""Long-poll for the event feed: wait until the journal has something after a cursor."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from gateway.types import JournalEntry

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["wait_for_entries"]


async def wait_for_entries(runtime: Runtime, after: int, limit: int, wait_s: float
                           ) -> list[JournalEntry]:
    """Entries after ``after``, waiting up to ``wait_s`` for the first one to be written.

    Woken by the runtime's journal signal; re-reads at least once a second as well, so a
    row written by anything that does not signal (a maintenance script) is still seen.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        entries = await asyncio.to_thread(runtime.state.journal_sync, after, limit)
        remaining = deadline - loop.time()
        if entries or remaining <= 0:
            return entries
        if runtime.state.last_seq > after:  # written between the read and now
            continue
        async with runtime.journal_signal:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.journal_signal.wait(), min(remaining, 1.0))
