"""Config models for security and operations: login policy, device commands, watchdog.

Loaded as part of ``GatewayConfig`` (``api.auth``, ``api.cors_allow_origins``,
``commands``, ``watchdog``); every default is the safe one: CORS closed, no device
accepts a command, no rule may issue one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuthConfig", "CommandsConfig", "DeviceCommandsConfig", "RateConfig",
           "WatchdogConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateConfig(_Strict):
    """At most ``count`` within any ``per_s`` seconds (a sliding window)."""

    count: int = Field(ge=1, le=10_000)
    per_s: float = Field(gt=0, le=86_400)


class AuthConfig(_Strict):
    """Sessions and the login limiter (per user name and per client address)."""

    session_ttl_s: float = Field(12 * 3600, ge=60, le=30 * 86_400)
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_window_s: float = Field(900, gt=0, le=86_400)
    login_lockout_s: float = Field(900, gt=0, le=86_400)


CommandRole = Literal["operator", "engineer"]


class DeviceCommandsConfig(_Strict):
    """What may be sent to one device. Admins may send any listed action; ``roles`` adds
    operators and/or engineers; ``rule_actions`` are the actions a rule may issue itself."""

    actions: list[str] = Field(min_length=1)
    roles: list[CommandRole] = Field(default_factory=list)
    rule_actions: list[str] = Field(default_factory=list)


class CommandsConfig(_Strict):
    timeout_s: float = Field(10, gt=0, le=120)
    per_device: RateConfig = Field(default_factory=lambda: RateConfig(count=6, per_s=60))
    per_user: RateConfig = Field(default_factory=lambda: RateConfig(count=20, per_s=60))
    rules_enabled: bool = False
    """Master switch for rule-issued commands; per-device ``rule_actions`` still apply."""
    devices: dict[str, DeviceCommandsConfig] = Field(default_factory=dict)


class WatchdogConfig(_Strict):
    """When the process stops pinging systemd's watchdog (``WatchdogSec`` in the unit).

    The ingest loop is stuck when one batch has been in the sink (store + rules) longer
    than ``ingest_stuck_s``; the rules ticker is stuck when its heartbeat is older than
    ``ticker_stuck_s``. An idle broker or a broker outage is not a stuck loop.
    """

    ingest_stuck_s: float = Field(45, gt=0, le=3600)
    ticker_stuck_s: float = Field(30, gt=0, le=3600)
