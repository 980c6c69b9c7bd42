"""The console's live feed: one journal reader fanned out to Server-Sent-Event subscribers.

One task (``console.stream``) follows the journal from the moment the first console
connects, taking each committed transaction's rows from the state store's journal feed
(in memory, no read back), and turns each new row into small messages:

- ``alarm``: the alarm's *current* state (the same shape as ``GET /api/v1/alarms``), so a
  late or repeated message can never move a console backwards;
- ``flood``: the count of alarms raised in the flood window, sent when it changes;
- ``shift``: a shift or handover changed (the console refetches ``/api/v1/shifts/current``);
- ``journal``: any other row but plain device events (``type`` and ``subject`` only),
  e.g. work orders.

Each subscriber has a bounded queue (``QUEUE_MAX``). When it is full the subscriber's
queue is emptied and replaced by one ``resync`` marker: the stream then sends a fresh
``snapshot``, which is cheaper and safer than keeping an unbounded backlog for a slow
phone on a weak Wi-Fi link.

EventSource cannot send an ``Authorization`` header, so a stream is opened with a
short-lived, single-use ticket (``Tickets``) bought with the bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway.api import schemas
from gateway.auth import Principal
from gateway.journal import ALARM_TYPE, EVENT_TYPE
from gateway.store.sqlite import connect

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["QUEUE_MAX", "StreamHub", "Tickets", "sse"]

log = logging.getLogger(__name__)

QUEUE_MAX = 1000
IDLE_STOP_S = 60.0
RESYNC: dict[str, Any] = {"event": "resync"}
RAISED = "active_unacknowledged"
# a raise by the process; an alarm coming back from a shelve is not a new one for the rate
RAISED_FROM = ("normal", "returned_unacknowledged", "latched")


def sse(event: str, data: Any, *, event_id: int | None = None) -> bytes:
    """One Server-Sent Event frame."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


class Tickets:
    """Single-use stream tickets: random, kept hashed in memory, valid ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float = 30.0, max_open: int = 1000) -> None:
        self.ttl_s = ttl_s
        self.max_open = max_open
        self._open: dict[str, tuple[Principal, float]] = {}

    def issue(self, who: Principal) -> str:
        now = time.monotonic()
        self._open = {k: v for k, v in self._open.items() if v[1] > now}
        if len(self._open) >= self.max_open:
            self._open.pop(next(iter(self._open)))
        ticket = secrets.token_urlsafe(24)
        self._open[_digest(ticket)] = (who, now + self.ttl_s)
        return ticket

    def redeem(self, ticket: str) -> Principal | None:
        entry = self._open.pop(_digest(ticket), None)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    dropped: int = 0

    def put(self, msg: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


class StreamHub:
    def __init__(self, runtime: Runtime, *, flood_alarms: int, flood_window_s: float) -> None:
        self.runtime = runtime
        self.flood_alarms = flood_alarms
        self.flood_window_s = flood_window_s
        self._subs: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._raised: deque[float] = deque()
        self._flood_sent: int | None = None

    # -- state for snapshots ----------------------------------------------------------

    def flood(self) -> dict[str, Any]:
        now = self.runtime.clock.now()
        while self._raised and self._raised[0] <= now - self.flood_window_s:
            self._raised.popleft()
        count = len(self._raised)
        return {"count": count, "threshold": self.flood_alarms,
                "window_s": self.flood_window_s, "active": count > self.flood_alarms}

    def snapshot(self) -> dict[str, Any]:
        rt = self.runtime
        alarms = [schemas.alarm_out(a, rt).model_dump() for a in rt.alarm_list()
                  if a.state.value != "normal"]
        return {"alarms": alarms, "flood": self.flood(), "seq": rt.state.last_seq,
                "server_time": rt.clock.now()}

    # -- subscribers ------------------------------------------------------------------

    async def subscribe(self) -> Subscriber:
        await self.start()
        sub = Subscriber()
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        since = self.runtime.clock.now() - self.flood_window_s
        self._raised = deque(await asyncio.to_thread(self._raised_since, since))
        self._flood_sent = len(self._raised)  # snapshots carry it; send changes only
        self._task = asyncio.create_task(self._run(self.runtime.state.last_seq),
                                         name="console.stream")

    def _raised_since(self, since: float) -> list[float]:
        conn = connect(self.runtime.state.path, synchronous="FULL", readonly=True)
        try:
            return [r[0] for r in conn.execute(
                "SELECT at FROM alarm_transitions WHERE to_state = ? AND from_state IN "
                "(?, ?, ?) AND at > ? ORDER BY at", (RAISED, *RAISED_FROM, since))]
        finally:
            conn.close()

    def _broadcast(self, msg: dict[str, Any]) -> None:
        for sub in list(self._subs):
            sub.put(msg)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, cursor: int) -> None:
        """Follow the journal while anyone listens; stop after ``IDLE_STOP_S`` alone."""
        rt = self.runtime
        feed = rt.state.feed
        alone_since: float | None = None
        while True:
            if self._subs:
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > IDLE_STOP_S:
                return  # the next subscriber starts it again
            entries = feed.after(cursor, 500)  # the rows of the last commits, in memory
            if entries is None:  # behind the feed: read the journal
                entries = await asyncio.to_thread(rt.state.journal_sync, cursor, 500)
                if not entries and cursor < feed.base:  # (cursor, base] holds no rows
                    cursor = feed.base
            if not entries:
                self._send_flood()
                await feed.wait(cursor, 1.0)
                continue
            for entry in entries:
                cursor = entry.seq
                self._translate(entry.type, entry.subject, entry.data, entry.seq)
            self._send_flood()

    def _send_flood(self) -> None:
        flood = self.flood()
        if flood["count"] != self._flood_sent:
            self._flood_sent = flood["count"]
            self._broadcast({"event": "flood", "data": flood})

    def _translate(self, type_: str, subject: str, data: Any, seq: int) -> None:
        rt = self.runtime
        if type_ == ALARM_TYPE:
            alarm_id = data["alarm"]["alarm_id"]
            if data.get("to") == RAISED and data.get("from") in RAISED_FROM:
                self._raised.append(rt.clock.now())
            alarm = rt.book.alarms.get(alarm_id)
            out = (schemas.alarm_out(alarm, rt).model_dump() if alarm is not None
                   else {**data["alarm"], "building": None, "device_kind": None})
            self._broadcast({"event": "alarm", "id": seq, "data": out})
        elif type_ == EVENT_TYPE:
            return  # device events reach the console as the alarms they raise
        elif type_.startswith("estate.shift."):
            self._broadcast({"event": "shift", "id": seq, "data": {"type": type_}})
        else:
            self._broadcast({"event": "journal", "id": seq,
                             "data": {"type": type_, "subject": subject}})

    async def frames(self, sub: Subscriber, *, max_s: float, keepalive_s: float = 15.0
                     ) -> AsyncIterator[bytes]:
        """The byte stream of one subscriber: a snapshot, then messages, then ``reconnect``."""
        rt = self.runtime
        try:
            yield b"retry: 2000\n\n" + sse("snapshot", self.snapshot())
            ends = time.monotonic() + max_s
            quiet_since = time.monotonic()
            while time.monotonic() < ends:
                server = rt.api_server
                if server is not None and getattr(server, "should_exit", False):
                    return
                try:
                    msg = await asyncio.wait_for(sub.queue.get(), 1.0)
                except TimeoutError:
                    if time.monotonic() - quiet_since >= keepalive_s:
                        quiet_since = time.monotonic()
                        yield b": keepalive\n\n"
                    continue
                quiet_since = time.monotonic()
                if msg is RESYNC:
                    yield sse("snapshot", self.snapshot())
                else:
                    yield sse(msg["event"], msg["data"], event_id=msg.get("id"))
            # bounded lifetime: the console buys a new ticket, so a revoked login stops here
            yield sse("reconnect", {"after_s": max_s})
        finally:
            self.unsubscribe(sub)
