"""The driver boundary: a driver turns one transport into Observations and executes Commands.

Contract:

- A driver is built from its config and an async ``sink``; ``run()`` runs until cancelled
  and owns reconnecting (jittered exponential backoff), so one dead device or broker never
  ends it. While a device cannot be reached, the driver emits one ``DeviceStatus(online=False)``
  on the transition, logs ERROR once, and INFO once on recovery.
- No library exception crosses the boundary: they become ``DeviceUnavailable``,
  ``DecodeError`` or ``CommandRejected`` inside the driver module.
- Payloads the driver cannot use are handed to ``reject(reason, topic, payload, detail)``:
  the core counts them by reason and keeps a bounded dead-letter table. Nothing is
  dropped silently.
- ``sink`` may apply back-pressure (it is awaited); a driver must not buffer without bound.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from gateway.types import Command, CommandResult, Observation

__all__ = ["Driver", "Rejector", "Sink"]

Sink = Callable[[Sequence[Observation]], Awaitable[None]]
"""Receives a batch of observations; returns once they are accepted (the gateway's returns
once they are stored and their alarms decided). A driver may call it again before an earlier
call has returned; batches are then taken in the order of the calls."""

Rejector = Callable[[str, str, bytes, str], None]
"""``reject(reason, source, payload, detail)``: count and keep one rejected input."""


class Driver(Protocol):
    id: str

    async def run(self) -> None:
        """Connect, read and forward until cancelled; survives disconnects."""

    async def execute(self, command: Command) -> CommandResult:
        """Carry out one command on a device this driver owns."""
