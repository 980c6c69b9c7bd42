"""The one audited path from a person or a rule to a device: authorise, limit, execute, record.

A command passes, in order:

1. the device exists and has a ``commands.devices.<id>`` entry listing the action;
2. the caller may command it: ``admin`` always, ``operator``/``engineer`` only when the
   device's ``roles`` names them; a rule only when ``commands.rules_enabled`` is on and the
   device's ``rule_actions`` lists the action (``rule_may_issue``);
3. the rate limits, per device and per user (sliding windows);
4. the driver that owns the device (``drivers[device_id].execute``), with a timeout.

Every command — refused, failed or done — leaves one audit row (``device.command``) with
the driver's ``CommandResult``, in the audit table and in the journal, in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.audit import AuditEntry, Outcome, record
from gateway.errors import CommandDenied, DriverError
from gateway.ratelimit import SlidingWindow
from gateway.store.state import Transaction
from gateway.types import Command, CommandResult, Device, Value

if TYPE_CHECKING:
    from drivers.base import Driver
    from gateway.auth import Role
    from gateway.clock import Clock
    from gateway.policy import CommandsConfig
    from gateway.store.state import Apply

__all__ = ["CommandOutcome", "CommandService"]

log = logging.getLogger(__name__)

RULE_ACTOR_PREFIX = "rule:"


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    command: Command
    result: CommandResult
    outcome: Outcome


class CommandService:
    """Routes commands to ``drivers[device_id]`` (``Runtime.command_drivers``: the MQTT
    driver or the Modbus bus driver that owns the device; filled when drivers start).

    ``apply`` writes a state ``Transaction`` (``Runtime.apply``: the store plus a wake-up
    for journal readers).
    """

    def __init__(self, config: CommandsConfig, devices: Mapping[str, Device],
                 drivers: Mapping[str, Driver], apply: Apply, clock: Clock) -> None:
        self.config = config
        self.devices = devices
        self.drivers = drivers
        self.apply = apply
        self.clock = clock
        self.per_device = SlidingWindow(config.per_device.count, config.per_device.per_s, clock)
        self.per_user = SlidingWindow(config.per_user.count, config.per_user.per_s, clock)
        self.results: Counter[str] = Counter()  # ok, failed, denied, rate_limited

    # -- the gates (pure) -------------------------------------------------------------

    def allowed_actions(self, role: Role, device_id: str) -> list[str]:
        """What ``role`` may send to ``device_id`` (for the console's command buttons)."""
        dc = self.config.devices.get(device_id)
        if dc is None or device_id not in self.devices:
            return []
        if role == "admin" or role in dc.roles:
            return list(dc.actions)
        return []

    def rule_may_issue(self, rule_id: str, device_id: str, action: str) -> bool:
        """The gate for rule actions: on only by config, and only for listed actions.

        The rule engine calls this before ``issue_for_rule``; it is also checked there.
        """
        dc = self.config.devices.get(device_id)
        return (self.config.rules_enabled and dc is not None and device_id in self.devices
                and action in dc.rule_actions and action in dc.actions)

    def _authorise(self, actor: str, role: Role | None, device_id: str, action: str) -> None:
        if device_id not in self.devices:
            raise CommandDenied(device_id, "unknown_device",
                                "device does not exist / 设备不存在")
        dc = self.config.devices.get(device_id)
        if dc is None or action not in dc.actions:
            raise CommandDenied(device_id, "not_allowed",
                                f"action {action!r} is not allowed on this device / "
                                "该设备不允许此指令")
        if role is None:  # a rule
            if not self.rule_may_issue(actor.removeprefix(RULE_ACTOR_PREFIX), device_id,
                                       action):
                raise CommandDenied(device_id, "not_allowed",
                                    f"rules may not send {action!r} to this device / "
                                    "规则无权发送此指令")
        elif role != "admin" and role not in dc.roles:
            raise CommandDenied(device_id, "not_allowed",
                                f"role {role!r} may not command this device / 权限不足")
        wait = max(self.per_device.retry_after(device_id), self.per_user.retry_after(actor))
        if wait > 0:
            raise CommandDenied(device_id, "rate_limited",
                                f"too many commands; retry in {wait:.0f} s / 指令过于频繁",
                                retry_after_s=wait)
        self.per_device.hit(device_id)
        self.per_user.hit(actor)

    # -- issuing ----------------------------------------------------------------------

    async def issue(self, *, actor: str, role: Role, device_id: str, action: str,
                    args: Mapping[str, Value] | None = None, client: str = ""
                    ) -> CommandOutcome:
        """A person's command. Raises ``CommandDenied`` (audited) when a gate refuses it."""
        return await self._issue(actor, role, device_id, action, dict(args or {}), client)

    async def issue_for_rule(self, rule_id: str, device_id: str, action: str,
                             args: Mapping[str, Value] | None = None) -> CommandOutcome:
        return await self._issue(RULE_ACTOR_PREFIX + rule_id, None, device_id, action,
                                 dict(args or {}), "")

    async def _issue(self, actor: str, role: Role | None, device_id: str, action: str,
                     args: dict[str, Value], client: str) -> CommandOutcome:
        command = Command(str(uuid.uuid4()), device_id, action, actor, args)
        detail = {"command_id": command.command_id, "action": action, "args": args}
        try:
            self._authorise(actor, role, device_id, action)
        except CommandDenied as exc:
            self.results["rate_limited" if exc.reason == "rate_limited" else "denied"] += 1
            log.warning("command %s to %s by %s refused: %s", action, device_id, actor, exc)
            await self._audit(actor, device_id, "denied", client,
                              {**detail, "reason": exc.reason, "detail": str(exc)})
            raise
        result = await self._execute(command)
        outcome: Outcome = "ok" if result.ok else "failed"
        self.results[outcome] += 1
        log.info("command %s to %s by %s: %s %s", action, device_id, actor, outcome,
                 result.detail)
        await self._audit(actor, device_id, outcome, client,
                          {**detail, "result": {"ok": result.ok, "detail": result.detail}})
        return CommandOutcome(command, result, outcome)

    async def _execute(self, command: Command) -> CommandResult:
        driver = self.drivers.get(command.device_id)
        if driver is None:
            transport = self.devices[command.device_id].transport
            return CommandResult(command.command_id, ok=False,
                                 detail=f"no {transport} driver is running for this device "
                                        "/ 驱动未运行")
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await driver.execute(command)
        except TimeoutError:
            return CommandResult(command.command_id, ok=False,
                                 detail=f"no result within {self.config.timeout_s:g} s / 超时")
        except DriverError as exc:
            return CommandResult(command.command_id, ok=False, detail=str(exc))

    async def _audit(self, actor: str, device_id: str, outcome: Outcome, client: str,
                     detail: dict[str, object]) -> None:
        entry = AuditEntry.now(self.clock, actor=actor, action="device.command",
                               target=device_id, outcome=outcome, client=client, detail=detail)
        await self.apply(record(Transaction(), entry))
