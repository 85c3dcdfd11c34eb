"""Node repair decisions: which Node has held one of the provider's unhealthy conditions long enough to be
replaced, and whether its NodePool is healthy enough to allow it.

Why a separate verdict from drift or expiry: repair is forceful (the NodeClaim is deleted with its
termination deadline set to *now*, so PDBs and do-not-disrupt do not hold it) and it bypasses disruption
budgets; what keeps it from taking a whole pool down when the cause is outside the machines (a network
partition, a broken CNI rollout) is the pool-wide circuit breaker: when more than `ALLOWED_UNHEALTHY_PERCENT` percent of a
NodePool's Nodes match any policy, nothing in that pool is repaired.

Fed by the provider's ``repair_policies()`` and the Nodes' ``status.conditions`` as parsed once by the
cluster state (`nodesmith.state.statenode.NodeCondition`, read structurally through `ConditionFacts`);
consumed by `nodesmith.reconcilers.noderepair`. No I/O, no clock: ``now`` is a value.
Karpenter: ``pkg/controllers/node/health/controller.go`` (spec §1.3 ``node.health``).
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

import attrs

from nodesmith.cloudprovider.types import RepairPolicy

__all__ = [
    "ALLOWED_UNHEALTHY_PERCENT",
    "ConditionFacts",
    "Unhealthy",
    "allowed_unhealthy",
    "is_unhealthy",
    "unhealthy_condition",
]

ALLOWED_UNHEALTHY_PERCENT: Final = 20
"""The share of a NodePool's Nodes that may be unhealthy at once before repair stops (Karpenter: 20%)."""

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ConditionFacts(Protocol):
    """The part of a Node condition repair reads (structurally, so this package needs no `state`)."""

    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def last_transition_time(self) -> dt.datetime | None: ...


@typing.final
@attrs.frozen(slots=True)
class Unhealthy:
    """A Node condition that matches a repair policy: since when, and when the Node is to be replaced."""

    condition_type: str
    since: dt.datetime
    toleration: dt.timedelta

    @property
    def repair_at(self) -> dt.datetime:
        return self.since + self.toleration

    def due(self, now: dt.datetime) -> bool:
        return now >= self.repair_at


def _matching(
    conditions: Iterable[ConditionFacts], policies: Sequence[RepairPolicy]
) -> Iterable[tuple[ConditionFacts, RepairPolicy]]:
    by_type = {c.type: c for c in conditions}
    for policy in policies:
        condition = by_type.get(policy.condition_type)
        if condition is not None and condition.status == policy.condition_status:
            yield condition, policy


def is_unhealthy(conditions: Iterable[ConditionFacts], policies: Sequence[RepairPolicy]) -> bool:
    """Does a Node with ``conditions`` hold any policy's condition right now, however briefly (what the
    circuit breaker counts)?"""
    return any(True for _ in _matching(conditions, policies))


def unhealthy_condition(
    conditions: Iterable[ConditionFacts], policies: Sequence[RepairPolicy]
) -> Unhealthy | None:
    """The matching condition whose toleration ends first; ``None`` when the Node matches no policy.

    A matching condition without a readable ``lastTransitionTime`` is taken as starting at the epoch, so it
    is due at once: the Node says it is in that state and nothing says for how short a time."""
    best: Unhealthy | None = None
    for condition, policy in _matching(conditions, policies):
        since = condition.last_transition_time or EPOCH
        found = Unhealthy(policy.condition_type, since, policy.toleration)
        if best is None or found.repair_at < best.repair_at:
            best = found
    return best


def allowed_unhealthy(total: int) -> int:
    """How many of ``total`` Nodes may be unhealthy with repair still going on: 20%, rounded up, as a
    PodDisruptionBudget rounds a percentage (three Nodes allow one)."""
    return -(-total * ALLOWED_UNHEALTHY_PERCENT // 100)  # integer ceiling: 15 x 20% is 3, not 4
