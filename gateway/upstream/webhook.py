"""The work-order webhook: every work-order change POSTed to the cloud, in order, until accepted.

The only module importing httpx. Each request is one CloudEvent (structured mode,
``application/cloudevents+json``) carrying the whole work order with its ``revision``;
``Idempotency-Key`` is the work-order id, so the receiver upserts by it and ignores a
revision it has already seen. Answers:

- 2xx, or 409 (the receiver already holds this or a newer revision): delivered.
- 408, 425, 429, 5xx, or no answer: retried with exponential backoff and jitter, from
  ``retry_min_s`` to ``retry_max_s``, for as long as it takes; later changes wait behind it,
  so the receiver sees each order's revisions in order.
- any other 4xx: the receiver refuses this request for good; it is counted, logged with
  the answer, and skipped.

The cursor (the last journal seq handled) lives in ``kv``: a restart resends at most the
request that was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from gateway.clock import Clock
from gateway.journal import to_cloudevent
from gateway.outbox import Outbox
from gateway.store.state import StateStore, Transaction
from gateway.types import JournalEntry
from gateway.upstream.config import WebhookConfig

__all__ = ["WEBHOOK_CONSUMER", "Webhook", "WebhookMetrics"]

log = logging.getLogger(__name__)

WEBHOOK_CONSUMER = "upstream.webhook"
CURSOR_KV = "upstream.webhook.cursor"
RETRY_STATUSES = frozenset({408, 425, 429})
IDLE_ACK_EVERY = 1_000  # entries of other types passed over before the cursor is stored


@dataclass
class WebhookMetrics:
    delivered: int = 0
    retries: int = 0
    refused: int = 0
    cursor: int = 0


class Webhook:
    def __init__(self, state: StateStore, outbox: Outbox, config: WebhookConfig, site: str,
                 clock: Clock, signal: asyncio.Condition, commit: Any,
                 *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.state = state
        self.outbox = outbox
        self.config = config
        self.site = site
        self.clock = clock
        self.signal = signal
        self.commit = commit
        self.transport = transport
        self.metrics = WebhookMetrics()
        self.cursor = int(state.load_kv_sync(CURSOR_KV) or 0)

    def _headers(self, entry: JournalEntry) -> dict[str, str]:
        headers = {"Content-Type": "application/cloudevents+json",
                   "Idempotency-Key": entry.subject, "ce-id": entry.event_id}
        if self.config.token_env and os.environ.get(self.config.token_env):
            headers["Authorization"] = f"Bearer {os.environ[self.config.token_env]}"
        return headers

    async def _save(self, seq: int) -> None:
        tx = Transaction(kv={CURSOR_KV: seq})
        self.outbox.ack(WEBHOOK_CONSUMER, seq, tx, self.clock.now())
        await self.commit(tx)
        self.cursor = self.metrics.cursor = seq  # once it is durable

    async def run(self) -> None:
        tx = Transaction()
        self.outbox.register(WEBHOOK_CONSUMER, tx, self.cursor)
        await self.commit(tx)
        async with httpx.AsyncClient(timeout=self.config.timeout_s,
                                     transport=self.transport) as client:
            while True:
                rows = await asyncio.to_thread(
                    self.state.query_sync,
                    "SELECT seq, event_id, type, time, subject, data FROM journal "
                    "WHERE seq > ? AND type LIKE 'estate.workorder.%' ORDER BY seq LIMIT 100",
                    (self.cursor,))
                if not rows:
                    _, newest = await asyncio.to_thread(self.state.journal_bounds_sync)
                    if newest - self.cursor >= IDLE_ACK_EVERY:
                        await self._save(newest)  # nothing for us in between: let it prune
                    async with self.signal:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.signal.wait(), 1.0)
                    continue
                for s, e, t, tm, sub, d in rows:
                    entry = JournalEntry(s, e, t, tm, sub, orjson.loads(d))
                    await self._deliver(client, entry)
                    await self._save(entry.seq)

    async def _deliver(self, client: httpx.AsyncClient, entry: JournalEntry) -> None:
        body = orjson.dumps(to_cloudevent(entry, self.site))
        delay = self.config.retry_min_s
        while True:
            try:
                r = await client.post(self.config.url, content=body,
                                      headers=self._headers(entry))
                status: int | None = r.status_code
                detail = r.text[:200]
            except httpx.HTTPError as exc:
                status, detail = None, f"{type(exc).__name__}: {exc}"
            if status is not None and (200 <= status < 300 or status == 409):
                self.metrics.delivered += 1
                return
            if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
                self.metrics.refused += 1
                log.error("webhook %s refused work order %s (journal seq %d): %d %s; skipped "
                          "/ 工单推送被拒绝", self.config.url, entry.subject, entry.seq, status,
                          detail)
                return
            self.metrics.retries += 1
            if self.metrics.retries == 1 or delay >= self.config.retry_max_s:
                log.warning("webhook %s: %s; retrying work order %s in up to %.0f s "
                            "/ 工单推送重试", self.config.url, status or detail, entry.subject,
                            delay)
            await self.clock.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            delay = min(delay * 2, self.config.retry_max_s)
