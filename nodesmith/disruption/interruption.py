"""What to do about an interruption event: pure, so every provider's events get the same treatment.

Fed by the interruption reconciler (an event from a provider's source plus what the cluster state knows
about the instance); its verdict is acted on there. Karpenter's rules: a spot interruption warning, a
scheduled change or health event, and an instance stopping or terminating all mean the machine is going
— delete its NodeClaim now, so the provisioner replaces it while the node drains. A rebalance
recommendation is only a hint: ignored by default, or (a setting Karpenter users ask for, aws#2813) a
graceful replacement that respects the NodePool's disruption budget.
"""

from __future__ import annotations

import enum
from typing import Final

from nodesmith.cloudprovider.types import InterruptionEvent, InterruptionKind

__all__ = ["GOING_STATES", "Action", "decide"]

GOING_STATES: Final = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
"""Instance states after which the machine will not come back on its own."""


class Action(enum.StrEnum):
    """The core's answer to one event."""

    DELETE = "delete"
    """Delete the NodeClaim at once (the machine is going regardless)."""
    REPLACE_WITHIN_BUDGET = "replace-within-budget"
    """Delete the NodeClaim only if the NodePool's budget allows one more disruption now."""
    IGNORE = "ignore"
    DROP_UNKNOWN = "drop-unknown"
    """No NodeClaim owns the instance (not ours, or already gone)."""
    ALREADY_DELETING = "already-deleting"


def decide(event: InterruptionEvent, *, known: bool, deleting: bool, replace_on_rebalance: bool) -> Action:
    """The action for ``event`` about an instance the state does (``known``) or does not know."""
    if not known:
        return Action.DROP_UNKNOWN
    if deleting:
        return Action.ALREADY_DELETING
    if event.kind is InterruptionKind.REBALANCE_RECOMMENDATION:
        return Action.REPLACE_WITHIN_BUDGET if replace_on_rebalance else Action.IGNORE
    if event.kind is InterruptionKind.STATE_CHANGE and (event.state or "") not in GOING_STATES:
        return Action.IGNORE
    return Action.DELETE
