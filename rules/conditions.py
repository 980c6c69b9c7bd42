"""Pure condition evaluators: given a condition's state, a new value and the time, what next.

Nothing here reads a clock or does I/O; time is passed in, so each function is a small,
table-testable step. State is a plain dict so the engine can persist it as JSON.
"""

from __future__ import annotations

from typing import Any

from gateway.types import Value
from rules.config import ThresholdCondition

__all__ = ["threshold_breached", "threshold_cleared", "threshold_step"]


def threshold_breached(cond: ThresholdCondition, value: float) -> bool:
    if cond.above is not None:
        return value > cond.above
    assert cond.below is not None
    return value < cond.below


def threshold_cleared(cond: ThresholdCondition, value: float) -> bool:
    """Past the clear level (hysteresis); without one, simply no longer breached."""
    if cond.clear is None:
        return not threshold_breached(cond, value)
    if cond.above is not None:
        return value <= cond.clear
    return value >= cond.clear


def threshold_step(cond: ThresholdCondition, state: dict[str, Any], value: Value,
                   now: float) -> str | None:
    """Advance one threshold instance; returns "raise", "clear" or None.

    ``state`` keys: ``active`` (alarm condition asserted), ``pending_since`` (on-delay
    running since), ``clearing_since`` (off-delay running since).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    if not state.get("active"):
        if threshold_breached(cond, v):
            since = state.get("pending_since")
            if since is None:
                state["pending_since"] = since = now
            if now - since >= cond.for_s:
                state["active"] = True
                state.pop("pending_since", None)
                return "raise"
        else:
            state.pop("pending_since", None)
        return None
    if threshold_cleared(cond, v):
        since = state.get("clearing_since")
        if since is None:
            state["clearing_since"] = since = now
        if now - since >= cond.off_delay_s:
            state["active"] = False
            state.pop("clearing_since", None)
            return "clear"
    else:
        state.pop("clearing_since", None)
    return None


def timer_due(cond: ThresholdCondition, state: dict[str, Any], now: float) -> str | None:
    """Fire an on-delay or off-delay that has run out without a new reading."""
    since = state.get("pending_since")
    if not state.get("active") and since is not None and now - since >= cond.for_s:
        state["active"] = True
        state.pop("pending_since", None)
        return "raise"
    since = state.get("clearing_since")
    if state.get("active") and since is not None and now - since >= cond.off_delay_s:
        state["active"] = False
        state.pop("clearing_since", None)
        return "clear"
    return None
