"""Group commit: the readings of several ingest batches written in one store transaction.

At a moderate load the MQTT driver hands over batches of two or three messages (it takes
what has arrived as soon as it can, so that alarms are decided at once). A transaction and
a hand-off to the store's thread per batch cost more CPU than the readings themselves
(~420 µs per batch against ~20 µs per message at 5,000 msg/s), and a write per batch
is what an SD card wears on. Here a batch's readings join the open group; the group is
written when ``linger_s`` has passed since it opened or when it holds ``max_points``,
one group at a time, and every caller resumes when its group has committed, so a driver
still acknowledges after the store. Alarms do not wait for this: ``Runtime.ingest``
decides them while the group lingers.

The price is that a reading is acknowledged up to ``linger_s`` later; with the broker's
per-client in-flight window at mosquitto's default of 20 messages, a 5 ms linger caps one
client at ~4,000 msg/s, which is why the shipped ``mosquitto.conf`` raises the window.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from gateway.types import Reading

__all__ = ["GroupCommit"]


class _Group:
    __slots__ = ("done", "readings")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.readings: list[Reading] = []
        self.done: asyncio.Future[int] = loop.create_future()
        # retrieved even when every caller was cancelled (shutdown): no "never retrieved"
        self.done.add_done_callback(lambda f: None if f.cancelled() else f.exception())


class GroupCommit:
    """Writes readings through ``write`` (one transaction per call) in groups."""

    def __init__(self, write: Callable[[Sequence[Reading]], Awaitable[int]], *,
                 linger_s: float, max_points: int) -> None:
        self._write = write
        self.linger_s = linger_s
        self.max_points = max_points
        self._open: _Group | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed: deque[_Group] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self.transactions = 0  # written, for /metrics and the tests
        self.batches = 0

    @property
    def waiting(self) -> int:
        """Readings handed over and not yet written."""
        return sum(len(g.readings) for g in self._closed) + (
            len(self._open.readings) if self._open is not None else 0)

    def submit(self, readings: Sequence[Reading]) -> asyncio.Future[int]:
        """Add ``readings`` to the open group; the future is done once the group has been
        committed, or holds what its write raised (nothing of the group was stored). Await
        it through ``asyncio.shield``: the group is shared with other batches."""
        self.batches += 1
        group = self._open
        if group is None:
            loop = asyncio.get_running_loop()
            group = self._open = _Group(loop)
            if self.linger_s > 0:
                self._timer = loop.call_later(self.linger_s, self._close)
        group.readings.extend(readings)
        if self.linger_s <= 0 or len(group.readings) >= self.max_points:
            self._close()
        return group.done

    def _close(self) -> None:
        group, self._open = self._open, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if group is None:
            return
        self._closed.append(group)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="store.group_commit")

    async def _flush(self) -> None:
        """Write the closed groups in order, one transaction at a time; groups that closed
        while a write was running go together in the next one (up to ``max_points``)."""
        while self._closed:
            groups = [self._closed.popleft()]
            size = len(groups[0].readings)
            while self._closed and size + len(self._closed[0].readings) <= self.max_points:
                size += len(self._closed[0].readings)
                groups.append(self._closed.popleft())
            readings = groups[0].readings if len(groups) == 1 else [
                r for g in groups for r in g.readings]
            try:
                n = await self._write(readings)
            except asyncio.CancelledError:
                for g in (*groups, *self._closed):
                    g.done.cancel()
                self._closed.clear()
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every batch of the groups
                for g in groups:
                    g.done.set_exception(exc)
            else:
                self.transactions += 1
                for g in groups:
                    g.done.set_result(n)

    async def close(self) -> None:
        """Stop: the groups not yet written are cancelled (their batches were not acked)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = [*self._closed, *([self._open] if self._open is not None else [])]
        self._open = None
        self._closed.clear()
        for g in pending:
            g.done.cancel()
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
