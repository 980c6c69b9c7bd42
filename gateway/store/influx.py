"""The InfluxDB sink: replays the embedded store's outbox to a v2 write API, in order.

The only module that imports ``influxdb_client``. Any server speaking ``/api/v2/write``
works: InfluxDB 2.x, InfluxDB 3.x (its v2-compatible endpoint), VictoriaMetrics.

Delivery: the sink reads the oldest ``batch_size`` rows of the telemetry store's outbox,
writes them as one request, and only after the server accepted them calls
``store.outbox_ack(last_seq)``, which advances the persisted cursor and deletes the rows.
So an outage of hours (or a gateway restart during one) loses nothing: the backlog waits on
disk and is replayed in insertion order when the server answers again. A crash between the
write and the ack replays that one batch; InfluxDB keeps one value per series and
timestamp, so the replay overwrites the same points with the same values.

Failures (``InfluxWriteError``, a ``StoreError``):

* connection errors, timeouts, 429, 5xx, 401/403/404 (a wrong token or bucket is fixed by
  an operator, and the data must wait for that): retried with exponential backoff and
  jitter, capped at ``retry_max_s``. ERROR is logged once per outage, INFO on recovery.
* 413 (request too large): the batch size is halved and the write retried.
* 400/422 (the server refuses the data itself): retrying cannot help; the batch is logged,
  counted in ``metrics["rejected"]`` and acknowledged, so one bad row cannot block the rest.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import urllib3.exceptions
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from gateway.clock import Clock, SystemClock
from gateway.config import InfluxConfig
from gateway.errors import StoreError
from gateway.store.lineproto import encode_lines
from gateway.store.sqlite import TelemetryStore
from gateway.types import Device

__all__ = ["InfluxClientWriter", "InfluxSink", "InfluxWriteError", "LineWriter"]

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({401, 403, 404, 408, 429})


class InfluxWriteError(StoreError):
    """A write to ``url`` failed; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, url: str, message: str, *, status: int | None,
                 retryable: bool) -> None:
        self.url = url
        self.status = status
        self.retryable = retryable
        super().__init__(f"{url}: {message}")


class LineWriter(Protocol):
    """The transport seam: write lines (ms precision) or raise ``InfluxWriteError``."""

    def write(self, lines: list[str]) -> None: ...

    def close(self) -> None: ...


class InfluxClientWriter:
    """``LineWriter`` over influxdb-client's synchronous write API (called off the loop)."""

    def __init__(self, config: InfluxConfig) -> None:
        self.url = config.url
        self._bucket = config.bucket
        self._org = config.org
        self._client = InfluxDBClient(url=config.url, token=config.token(), org=config.org,
                                      timeout=round(config.timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        try:
            self._api.write(bucket=self._bucket, org=self._org, record=lines,
                            write_precision=WritePrecision.MS)
        except ApiException as exc:
            status = int(exc.status) if exc.status else None
            retryable = status is None or status >= 500 or status in RETRYABLE_STATUS
            body = (exc.body or exc.reason or "")
            body = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
            raise InfluxWriteError(self.url, f"HTTP {status}: {body.strip()[:300]}",
                                   status=status, retryable=retryable) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InfluxWriteError(self.url, f"no answer: {type(exc).__name__}: {exc}"[:300],
                                   status=None, retryable=True) from exc

    def close(self) -> None:
        self._client.close()


class InfluxSink:
    """Feeds InfluxDB from the store's outbox until cancelled.

    Args:
        store: a ``TelemetryStore`` opened with ``outbox=True``.
        config: the ``influx:`` section.
        site: the ``site`` tag (``config.site.id``).
        devices: device id → ``Device``, for the measurement (kind) and ``building`` tag.
        clock: drives backoff and polling (a ``FakeClock`` in unit tests).
        writer: the transport; default ``InfluxClientWriter(config)``.

    ``metrics`` (read it any time): ``written`` rows delivered, ``batches``, ``retries``,
    ``backlog`` rows waiting, ``rejected`` rows the server refused for good, ``skipped``
    rows with no representable value (NaN, inf), ``last_error`` text or None, ``connected``.
    """

    def __init__(self, store: TelemetryStore, config: InfluxConfig, *, site: str,
                 devices: Mapping[str, Device], clock: Clock | None = None,
                 writer: LineWriter | None = None,
                 jitter: Callable[[], float] = random.random) -> None:
        if not store.outbox_enabled:
            raise StoreError(f"{store.path}: the InfluxDB sink needs the store opened with "
                             "outbox=True")
        self.store = store
        self.config = config
        self.site = site
        self.devices = dict(devices)
        self.clock = clock or SystemClock()
        self._writer = writer
        self._jitter = jitter
        self._batch_size = config.batch_size
        self.metrics: dict[str, Any] = {
            "written": 0, "batches": 0, "retries": 0, "backlog": 0, "rejected": 0,
            "skipped": 0, "last_error": None, "connected": True,
        }

    def _transport(self) -> LineWriter:
        if self._writer is None:
            self._writer = InfluxClientWriter(self.config)
        return self._writer

    async def run(self) -> None:
        """Deliver the outbox until cancelled; sleeps ``poll_interval_s`` when it is empty."""
        if not self.config.enabled:
            log.info("influx sink disabled in config; not started")
            return
        try:
            while True:
                if await self.flush_once() == 0:
                    await self.clock.sleep(self.config.poll_interval_s)
        finally:
            if self._writer is not None:
                self._writer.close()

    async def flush_once(self) -> int:
        """Deliver one batch (retrying until it is accepted); returns rows acknowledged."""
        rows = await self.store.outbox_read(self._batch_size)
        if not rows:
            self.metrics["backlog"] = 0
            return 0
        attempt = 0
        while True:
            batch = rows[:self._batch_size]
            lines, skipped = encode_lines(batch, self.site, self.devices)
            try:
                if lines:
                    await asyncio.to_thread(self._transport().write, lines)
            except InfluxWriteError as exc:
                self.metrics["last_error"] = str(exc)
                if exc.status == 413 and self._batch_size > 1:
                    self._batch_size = max(1, self._batch_size // 2)
                    log.warning("influx: request too large; batch size now %d",
                                self._batch_size)
                    continue
                if not exc.retryable:
                    log.error("influx: %d rows refused and dropped (seq %d..%d): %s",
                              len(batch), batch[0].seq, batch[-1].seq, exc)
                    self.metrics["rejected"] += len(batch)
                    await self.store.outbox_ack(batch[-1].seq)
                    return len(batch)
                if self.metrics["connected"]:
                    log.error("influx: write failed, keeping %d+ rows in the outbox and "
                              "retrying: %s", len(rows), exc)
                    self.metrics["connected"] = False
                self.metrics["retries"] += 1
                self.metrics["backlog"] = await asyncio.to_thread(self.store.outbox_backlog_sync)
                await self.clock.sleep(self._backoff(attempt))
                attempt += 1
                continue
            break
        if not self.metrics["connected"]:
            log.info("influx: writes succeed again after %d retries", attempt)
            self.metrics["connected"] = True
        await self.store.outbox_ack(batch[-1].seq)
        self.metrics["written"] += len(batch) - skipped
        self.metrics["skipped"] += skipped
        self.metrics["batches"] += 1
        self.metrics["backlog"] = await asyncio.to_thread(self.store.outbox_backlog_sync)
        return len(batch)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of initial × 2^attempt."""
        cap = self.config.retry_max_s
        base = min(cap, self.config.retry_initial_s * (2 ** min(attempt, 30)))
        return base * (0.5 + 0.5 * self._jitter())
