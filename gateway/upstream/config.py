"""The ``cloud:`` section: journal retention and consumers, the upstream bridge, the webhook."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CloudConfig", "JournalRetentionConfig", "UpstreamMqttConfig", "WebhookConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JournalRetentionConfig(_Strict):
    """How long the journal (the outbox) keeps entries.

    Entries older than ``max_age_days`` are pruned once every registered consumer has
    acknowledged them. ``max_entries`` is the hard bound on disk: beyond it the oldest are
    pruned even if unacknowledged (counted; their readers get 410). ``fill_alarm_pct`` of it
    raises the ``journal.buffer_filling`` alarm well before that happens.
    """

    max_age_days: float = Field(15, gt=0)
    max_entries: int = Field(5_000_000, ge=1_000)
    fill_alarm_pct: float = Field(80, gt=0, lt=100)
    prune_interval_s: float = Field(60, gt=0)


class UpstreamMqttConfig(_Strict):
    """Publish every journal entry, QoS 1, to the cloud's broker (its own persistent session)."""

    enabled: bool = True
    host: str
    port: int = Field(8883, ge=1, le=65535)
    client_id: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    topic: str | None = Field(None, pattern=r"^[^#+]+$")  # default <prefix>/<site>/journal
    keepalive_s: int = Field(60, ge=5, le=3600)
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(120.0, gt=0)
    batch_max: int = Field(500, ge=1, le=10_000)
    max_inflight: int = Field(100, ge=1, le=65_535)
    replay_rate_per_s: float = Field(500, gt=0)

    def password(self) -> str | None:
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        return None


class WebhookConfig(_Strict):
    """POST every work-order change to ``url`` (``Idempotency-Key``: the work-order id)."""

    enabled: bool = True
    url: str = Field(pattern=r"^https?://")
    token_env: str | None = None
    timeout_s: float = Field(10, gt=0, le=300)
    retry_min_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> WebhookConfig:
        if self.retry_min_s > self.retry_max_s:
            raise ValueError(f"'retry_min_s' ({self.retry_min_s}) must not exceed "
                             f"'retry_max_s' ({self.retry_max_s})")
        return self


class CloudConfig(_Strict):
    journal: JournalRetentionConfig = Field(default_factory=JournalRetentionConfig)
    consumers: list[str] = Field(default_factory=list)  # pull consumers retention waits for
    long_poll_max_s: float = Field(30, gt=0, le=300)
    upstream: UpstreamMqttConfig | None = None
    webhook: WebhookConfig | None = None
