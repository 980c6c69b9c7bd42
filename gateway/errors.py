"""The gateway's exception tree; dependency exceptions are translated into it at the boundary.

    GatewayError
    ├── ConfigError          a configuration file is invalid (carries every problem found)
    ├── DriverError          raised by a driver; carries ``driver_id``
    │   ├── DeviceUnavailable    the device or bus could not be reached
    │   ├── DecodeError          a payload or register image could not be decoded
    │   └── CommandRejected      a command was refused by the device or its driver
    ├── StoreError           the embedded store could not read or write
    ├── RuleError            a rule could not be evaluated
    ├── AuthError            a credential is missing, wrong or lacks the role
    └── CommandDenied        a device command was refused before reaching the driver
                             (``reason``: unknown_device, not_allowed, rate_limited)
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "CommandDenied",
    "CommandRejected",
    "ConfigError",
    "DecodeError",
    "DeviceUnavailable",
    "DriverError",
    "GatewayError",
    "RuleError",
    "StoreError",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A configuration file is invalid; ``problems`` holds one rendered line per problem."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.path}: {len(self.problems)} problem(s) / 配置有 {len(self.problems)} 处错误"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class DriverError(GatewayError):
    def __init__(self, driver_id: str, message: str, *, device_id: str | None = None) -> None:
        self.driver_id = driver_id
        self.device_id = device_id
        where = f"{driver_id}/{device_id}" if device_id else driver_id
        super().__init__(f"{where}: {message}")


class DeviceUnavailable(DriverError):
    pass


class DecodeError(DriverError):
    pass


class CommandRejected(DriverError):
    pass


class StoreError(GatewayError):
    pass


class RuleError(GatewayError):
    pass


class AuthError(GatewayError):
    pass


class CommandDenied(GatewayError):
    """Refused by the command gate; the driver never saw it. ``retry_after_s`` when limited."""

    def __init__(self, device_id: str, reason: str, message: str, *,
                 retry_after_s: float | None = None) -> None:
        self.device_id = device_id
        self.reason = reason
        self.retry_after_s = retry_after_s
        super().__init__(f"{device_id}: {message}")
