"""The records disruption decides in: a `Command` (which nodes go, what replaces them, why, what it
saves), a `Rejection` (why one node was not disrupted), and the `Outcome` of one method's run.

Built by the methods (`emptiness`, `drift`, `consolidation`); consumed by the disruption reconciler
(validation, events, ``explain``, plugin decision observers through ``to_dict``) and the orchestration
queue (candidates and replacements). Every value is frozen; messages are built when the record is made
because each one becomes an event anyway.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

import attrs

from nodesmith.api import budgets as api_budgets
from nodesmith.api.requirements import Requirements
from nodesmith.cloudprovider.types import InstanceType, cheapest_offering

if TYPE_CHECKING:
    from nodesmith.disruption.candidates import Candidate

__all__ = ["Command", "Decision", "Method", "Outcome", "Rejection", "RejectionReason", "Replacement"]


class Method(enum.StrEnum):
    """Disruption methods, in the order the loop tries them."""

    EMPTINESS = "emptiness"
    DRIFT = "drift"
    MULTI_NODE = "multi-node-consolidation"
    SINGLE_NODE = "single-node-consolidation"

    @property
    def reason(self) -> api_budgets.DisruptionReason:
        """The budget reason the method spends."""
        if self is Method.EMPTINESS:
            return api_budgets.DisruptionReason.EMPTY
        if self is Method.DRIFT:
            return api_budgets.DisruptionReason.DRIFTED
        return api_budgets.DisruptionReason.UNDERUTILIZED


class Decision(enum.StrEnum):
    DELETE = "delete"
    REPLACE = "replace"


class RejectionReason(enum.StrEnum):
    """Why a node was not disrupted. ``quiet`` ones are normal states, not worth an event."""

    IN_QUEUE = "in-queue"
    NOT_MANAGED = "not-managed"
    NOT_INITIALIZED = "not-initialized"
    MARKED_FOR_DELETION = "marked-for-deletion"
    NOMINATED = "nominated"
    DO_NOT_DISRUPT = "do-not-disrupt"
    PDB = "pdb"
    NODEPOOL_NOT_FOUND = "nodepool-not-found"
    INSTANCE_TYPE_UNKNOWN = "instance-type-unknown"
    CONSOLIDATION_DISABLED = "consolidation-disabled"
    STATIC_NODEPOOL = "static-nodepool"
    NOT_CONSOLIDATABLE = "not-consolidatable"
    NOT_EMPTY = "not-empty"
    POLICY = "policy"
    BUDGET = "budget"
    WOULD_NOT_FIT = "would-not-fit"
    MULTIPLE_REPLACEMENTS = "multiple-replacements"
    NOT_CHEAPER = "not-cheaper"
    SPOT_TO_SPOT = "spot-to-spot"
    BALANCED_SCORE = "balanced-score"
    VALIDATION = "validation"
    TIMEOUT = "timeout"

    @property
    def quiet(self) -> bool:
        return self in _QUIET


_QUIET = frozenset(
    {
        RejectionReason.IN_QUEUE,
        RejectionReason.NOT_MANAGED,
        RejectionReason.NOT_INITIALIZED,
        RejectionReason.MARKED_FOR_DELETION,
        RejectionReason.NOT_CONSOLIDATABLE,
        RejectionReason.NOT_EMPTY,
        RejectionReason.STATIC_NODEPOOL,
        RejectionReason.INSTANCE_TYPE_UNKNOWN,
        RejectionReason.TIMEOUT,
    }
)


@final
@attrs.frozen(slots=True)
class Rejection:
    """One node not disrupted, and why. ``node`` is the Node name (or the state key without one)."""

    node: str
    reason: RejectionReason
    message: str
    nodeclaim: str | None = None
    method: Method | None = None

    @property
    def event_reason(self) -> str:
        """The Kubernetes event reason: ``DisruptionBlocked`` for eligibility, ``Unconsolidatable`` for
        consolidation verdicts, ``ConsolidationRejected`` when validation failed."""
        if self.reason is RejectionReason.VALIDATION:
            return "ConsolidationRejected"
        if self.reason in (
            RejectionReason.WOULD_NOT_FIT,
            RejectionReason.MULTIPLE_REPLACEMENTS,
            RejectionReason.NOT_CHEAPER,
            RejectionReason.SPOT_TO_SPOT,
            RejectionReason.BALANCED_SCORE,
            RejectionReason.POLICY,
            RejectionReason.CONSOLIDATION_DISABLED,
        ):
            return "Unconsolidatable"
        return "DisruptionBlocked"

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "nodeclaim": self.nodeclaim,
            "reason": self.reason.value,
            "method": None if self.method is None else self.method.value,
            "message": self.message,
        }


@final
@attrs.frozen(slots=True)
class Replacement:
    """A NodeClaim to launch before the candidates go: flexible over ``instance_types`` (ascending by
    price), narrowed by ``requirements``. ``source`` is the scheduling engine's simulated NodeClaim it
    was cut from; the orchestrator turns ``source`` narrowed to these values into the API object."""

    nodepool: str
    requirements: Requirements
    instance_types: tuple[InstanceType, ...]
    source: object = attrs.field(eq=False, repr=False)

    def cheapest_price(self) -> float | None:
        for it in self.instance_types:
            offering = cheapest_offering(it.offerings, self.requirements)
            if offering is not None:
                return offering.price
        return None


@final
@attrs.frozen(slots=True)
class Command:
    """Disrupt ``candidates`` (delete their NodeClaims) after launching ``replacements``."""

    method: Method
    candidates: tuple[Candidate, ...]
    replacements: tuple[Replacement, ...] = ()
    savings: float = 0.0
    """Hourly price saved: Σ candidate prices − the cheapest replacement price (drift: may be negative)."""
    score: float | None = None
    """The Balanced score, when a Balanced NodePool took part."""

    @property
    def reason(self) -> api_budgets.DisruptionReason:
        return self.method.reason

    @property
    def decision(self) -> Decision:
        return Decision.REPLACE if self.replacements else Decision.DELETE

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.candidates)

    def describe(self) -> str:
        """One line for events and logs (``delete 2 nodes (a, b), saving $0.1200/h``)."""
        names = ", ".join(c.name for c in self.candidates[:5])
        if len(self.candidates) > 5:
            names += f", ... ({len(self.candidates) - 5} more)"
        noun = "node" if len(self.candidates) == 1 else "nodes"
        text = f"{self.decision.value} {len(self.candidates)} {noun} ({names})"
        if self.replacements:
            types = self.replacements[0].instance_types
            shown = ", ".join(it.name for it in types[:3]) + (", ..." if len(types) > 3 else "")
            text += f" with {len(self.replacements)} replacement(s) [{shown}]"
        return f"{text} for {self.reason.value}, saving ${self.savings:.4f}/h"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method.value,
            "reason": self.reason.value,
            "decision": self.decision.value,
            "candidates": [
                {
                    "node": c.name,
                    "nodeclaim": c.nodeclaim.name,
                    "nodepool": c.nodepool.name,
                    "instance_type": None if c.instance_type is None else c.instance_type.name,
                    "capacity_type": c.capacity_type,
                    "price": c.price,
                    "pods": len(c.reschedulable_pods),
                    "disruption_cost": round(c.disruption_cost, 4),
                }
                for c in self.candidates
            ],
            "replacements": [
                {
                    "nodepool": r.nodepool,
                    "instance_types": [it.name for it in r.instance_types],
                    "price": r.cheapest_price(),
                }
                for r in self.replacements
            ],
            "savings": round(self.savings, 6),
            "score": self.score,
        }


@final
@attrs.frozen(slots=True)
class Outcome:
    """What one method decided: at most one command, the nodes it passed over, whether it ran out of time."""

    method: Method
    command: Command | None = None
    rejections: tuple[Rejection, ...] = ()
    timed_out: bool = False
    budgets: Mapping[str, int] = attrs.field(factory=dict)
    """NodePool → disruptions the method was allowed for its reason."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method.value,
            "command": None if self.command is None else self.command.to_dict(),
            "rejections": [r.to_dict() for r in self.rejections],
            "timed_out": self.timed_out,
            "budgets": dict(self.budgets),
        }
