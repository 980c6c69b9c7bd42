"""The upstream MQTT bridge: every journal entry, in seq order, QoS 1, to the cloud's broker.

Delivery state is the cursor (highest seq the cloud broker acknowledged, everything below
it included) in the ``kv`` table, written after each acknowledged batch, so a restart
resumes where delivery stopped: nothing is skipped, and at most the last unacknowledged
batch is sent again (duplicates carry the same CloudEvents ``id``).

After an outage the backlog (everything at or below the newest seq when the link came back)
is replayed at ``replay_rate_per_s`` so the 4G link is not choked, each entry marked
``replay: true``. Alarm transitions written after the link came back do not wait behind
the backlog: a priority lane sends them at once (``replay: false``) and the replay skips
them when it gets there. So the topic carries the backlog in seq order with live alarms
overtaking it; consumers that need strict order sort by the ``seq`` attribute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.clock import Clock
from gateway.errors import DeviceUnavailable
from gateway.journal import ALARM_TYPE, to_cloudevent
from gateway.outbox import Outbox
from gateway.store.state import StateStore, Transaction
from gateway.types import JournalEntry
from gateway.upstream.config import UpstreamMqttConfig

__all__ = ["BRIDGE_CONSUMER", "BridgeMetrics", "UpstreamBridge"]

log = logging.getLogger(__name__)

BRIDGE_CONSUMER = "upstream.mqtt"
CURSOR_KV = "upstream.mqtt.cursor"
AHEAD_KV = "upstream.mqtt.sent_ahead"


@dataclass
class BridgeMetrics:
    published: int = 0
    replayed: int = 0
    live_ahead: int = 0
    lost: int = 0  # entries pruned (journal over its bound) before they could be sent
    batches_failed: int = 0
    cursor: int = 0
    backlog: int = 0


class UpstreamBridge:
    def __init__(self, state: StateStore, outbox: Outbox, publisher: Any, config:
                 UpstreamMqttConfig, topic: str, site: str, clock: Clock,
                 signal: asyncio.Condition, commit: Any) -> None:
        """``publisher``: ``MqttPublisher``-like (``wait_connected``, ``connects``,
        ``publish_many``); ``commit``: an async callable storing a ``Transaction``."""
        self.state = state
        self.outbox = outbox
        self.publisher = publisher
        self.config = config
        self.topic = topic
        self.site = site
        self.clock = clock
        self.signal = signal
        self.commit = commit
        self.metrics = BridgeMetrics()
        self.cursor = int(state.load_kv_sync(CURSOR_KV) or 0)
        self.ahead: set[int] = set(state.load_kv_sync(AHEAD_KV) or [])
        self.metrics.cursor = self.cursor

    def _body(self, entry: JournalEntry, *, replay: bool) -> bytes:
        event = to_cloudevent(entry, self.site)
        event["replay"] = replay
        return orjson.dumps(event)

    async def _save(self) -> None:
        tx = Transaction(kv={CURSOR_KV: self.cursor, AHEAD_KV: sorted(self.ahead)})
        self.outbox.ack(BRIDGE_CONSUMER, self.cursor, tx, self.clock.now())
        await self.commit(tx)
        self.metrics.cursor = self.cursor

    async def run(self) -> None:
        tx = Transaction()
        self.outbox.register(BRIDGE_CONSUMER, tx, self.cursor)
        await self.commit(tx)
        connects = -1
        live_floor = 0
        tokens = 0.0
        last = self.clock.monotonic()
        rate = self.config.replay_rate_per_s
        # small replay steps keep the priority lane responsive while the backlog drains
        step = max(1, min(self.config.batch_max, int(rate / 5) or 1))
        while True:
            await self.publisher.wait_connected()
            if self.publisher.connects != connects:  # (re)connected: what is there is backlog
                connects = self.publisher.connects
                live_floor = (await asyncio.to_thread(self.state.journal_bounds_sync))[1]
            try:
                sent_live = await self._live_lane(live_floor)
                now = self.clock.monotonic()
                tokens = min(float(step), tokens + (now - last) * rate)
                last = now
                if self.cursor >= live_floor:  # caught up: no rate limit
                    limit = self.config.batch_max
                elif tokens >= 1:
                    limit = int(tokens)
                else:
                    await self.clock.sleep((1 - tokens) / rate)
                    continue
                sent = await self._main_lane(live_floor, limit)
                if self.cursor < live_floor:
                    tokens -= sent
            except DeviceUnavailable as exc:
                self.metrics.batches_failed += 1
                log.debug("upstream batch not acknowledged: %s", exc)
                continue
            if not sent and not sent_live:
                async with self.signal:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.signal.wait(), 1.0)

    async def _live_lane(self, live_floor: int) -> int:
        """Alarm transitions newer than the backlog, sent ahead of it."""
        start = max(self.cursor, live_floor)
        rows = await asyncio.to_thread(
            self.state.query_sync,
            "SELECT seq, event_id, type, time, subject, data FROM journal WHERE seq > ? "
            "AND type = ? ORDER BY seq LIMIT ?", (start, ALARM_TYPE, self.config.batch_max))
        entries = [JournalEntry(s, e, t, tm, sub, orjson.loads(d))
                   for s, e, t, tm, sub, d in rows if s not in self.ahead]
        if not entries:
            return 0
        await self.publisher.publish_many(
            [(self.topic, self._body(e, replay=False)) for e in entries])
        self.ahead.update(e.seq for e in entries)
        self.metrics.live_ahead += len(entries)
        self.metrics.published += len(entries)
        await self._save()
        return len(entries)

    async def _main_lane(self, live_floor: int, limit: int) -> int:
        """The next ``limit`` entries after the cursor, in seq order; returns how many."""
        oldest, newest = await asyncio.to_thread(self.state.journal_bounds_sync)
        if oldest and self.cursor < oldest - 1:
            lost = oldest - 1 - self.cursor
            self.metrics.lost += lost
            log.error("upstream: %d journal entries were pruned before they were sent "
                      "(journal over its size bound) / %d 条事件未能上送", lost, lost)
            self.cursor = oldest - 1
        self.metrics.backlog = max(0, newest - self.cursor)
        entries = await asyncio.to_thread(self.state.journal_sync, self.cursor, limit)
        if not entries:
            return 0
        todo = [e for e in entries if e.seq not in self.ahead]
        if todo:
            await self.publisher.publish_many(
                [(self.topic, self._body(e, replay=e.seq <= live_floor)) for e in todo])
        self.metrics.published += len(todo)
        self.metrics.replayed += sum(1 for e in todo if e.seq <= live_floor)
        self.cursor = entries[-1].seq
        self.ahead = {s for s in self.ahead if s > self.cursor}
        await self._save()
        return len(entries)
