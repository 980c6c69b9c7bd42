"""The work-order webhook against a real HTTP server on loopback: retries, keys, order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from gateway.clock import SystemClock
from gateway.outbox import Outbox
from gateway.store.state import JournalDraft, StateStore, Transaction
from gateway.upstream.config import JournalRetentionConfig, WebhookConfig
from gateway.upstream.webhook import CURSOR_KV, Webhook
from tests.support.mqtt import wait_until


class Receiver:
    """Answers from a script (then 200), recording every request it got."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.requests: list[tuple[int, dict[str, str], dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.requests.append((status, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/work-orders"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(tmp_path / "state.db")
    yield s
    s.close()


def _wo(order_id: str, revision: int, kind: str = "created") -> JournalDraft:
    return JournalDraft(f"estate.workorder.{kind}", 0.0, order_id,
                        {"work_order": {"id": order_id, "revision": revision}})


async def _run_until(hook: Webhook, pred, what: str) -> None:
    task = asyncio.create_task(hook.run())
    try:
        await asyncio.to_thread(wait_until, pred, 15, what)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_webhook_retries_until_accepted_in_order_with_idempotency_key(state) -> None:
    receiver = Receiver([503, 503, 429])
    try:
        await state.apply(Transaction(journal=[
            _wo("wo-1", 1),
            JournalDraft("estate.device.event", 0.0, "gate-1", {"kind": "access.granted"}),
            _wo("wo-1", 2, "status"), _wo("wo-2", 1)]))
        hook = Webhook(state, Outbox(state, JournalRetentionConfig(), []),
                       WebhookConfig(url=receiver.url, retry_min_s=0.01, retry_max_s=0.05),
                       "site-a", SystemClock(), asyncio.Condition(), state.apply)
        # wait on the webhook's own progress (the receiver records a request before the
        # webhook has read the answer and stored its cursor)
        await _run_until(hook, lambda: hook.cursor == 4, "three work-order changes accepted")
    finally:
        receiver.close()
    statuses = [r[0] for r in receiver.requests]
    assert statuses == [503, 503, 429, 200, 200, 200]
    accepted = [(r[1]["Idempotency-Key"], r[2]["data"]["work_order"]["revision"])
                for r in receiver.requests if r[0] == 200]
    assert accepted == [("wo-1", 1), ("wo-1", 2), ("wo-2", 1)]
    assert all(r[1]["Content-Type"] == "application/cloudevents+json" for r in receiver.requests)
    assert hook.metrics.retries == 3
    assert state.load_kv_sync(CURSOR_KV) == 4  # past the device event too


async def test_webhook_skips_a_refused_request_and_counts_it(state) -> None:
    receiver = Receiver([422])
    try:
        await state.apply(Transaction(journal=[_wo("wo-bad", 1), _wo("wo-ok", 1)]))
        hook = Webhook(state, Outbox(state, JournalRetentionConfig(), []),
                       WebhookConfig(url=receiver.url, retry_min_s=0.01, retry_max_s=0.05),
                       "site-a", SystemClock(), asyncio.Condition(), state.apply)
        await _run_until(hook, lambda: hook.cursor == 2, "both changes handled")
    finally:
        receiver.close()
    assert [(r[0], r[1]["Idempotency-Key"]) for r in receiver.requests] == [
        (422, "wo-bad"), (200, "wo-ok")]
    assert (hook.metrics.refused, hook.metrics.delivered) == (1, 1)
