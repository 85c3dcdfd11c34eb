"""Emptiness: delete, in one command, every empty node whose ``consolidateAfter`` has passed, as far as
each NodePool's ``Empty`` budget allows (spec §4.4 "Emptiness"; Karpenter's ``emptiness.go``).

Applies under every consolidation policy, ``WhenEmpty`` included; ``consolidateAfter: Never`` opts a
pool out. Fed by candidates and the ``Empty`` allowance; consumed by the disruption reconciler, which
validates the command after the validation delay (keeping the nodes still empty) before acting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nodesmith.disruption import budgets
from nodesmith.disruption.candidates import Candidate
from nodesmith.disruption.commands import Command, Method, Outcome, Rejection, RejectionReason

__all__ = ["compute", "eligible"]

METHOD = Method.EMPTINESS


def eligible(candidate: Candidate) -> Rejection | None:
    """``None`` when emptiness may delete the candidate, else why not (all quiet reasons)."""
    pool = candidate.nodepool
    if pool.is_static:
        return Rejection(
            candidate.name,
            RejectionReason.STATIC_NODEPOOL,
            f"NodePool {pool.name} is static (spec.replicas)",
            candidate.nodeclaim.name,
            METHOD,
        )
    if pool.spec.disruption.consolidate_after.value is None:
        return Rejection(
            candidate.name,
            RejectionReason.CONSOLIDATION_DISABLED,
            f"NodePool {pool.name} has consolidateAfter: Never",
            candidate.nodeclaim.name,
            METHOD,
        )
    if not candidate.is_empty:
        return Rejection(
            candidate.name, RejectionReason.NOT_EMPTY, "not empty", candidate.nodeclaim.name, METHOD
        )
    if not candidate.consolidatable:
        return Rejection(
            candidate.name,
            RejectionReason.NOT_CONSOLIDATABLE,
            "not consolidatable yet (consolidateAfter)",
            candidate.nodeclaim.name,
            METHOD,
        )
    return None


def compute(candidates: Sequence[Candidate], allowance: Mapping[str, int]) -> Outcome:
    """One delete command for the empty candidates within budget (most expensive first)."""
    empty = [c for c in candidates if eligible(c) is None]
    empty.sort(key=lambda c: (-c.savings_ratio, c.name))
    kept, rejected = budgets.take_within(empty, allowance, METHOD)
    command = None
    if kept:
        command = Command(METHOD, tuple(kept), (), sum(c.price or 0.0 for c in kept))
    return Outcome(METHOD, command, tuple(rejected), budgets=dict(allowance))
