"""Drift: replace nodes whose ``Drifted`` condition is set, one command per loop, within each NodePool's
``Drifted`` budget (spec §4.4 "Drift"; Karpenter's ``drift.go``).

Empty drifted nodes (and drifted nodes of static NodePools, which the static capacity loop replaces one
for one) go first, all of them within budget in one delete command; otherwise the drifted
nodes are tried oldest drift first, and the first whose pods all fit on the rest of the cluster plus any
number of new nodes (drift is not a cost decision, so 1→N is fine) becomes a command. Drift is
*eventual* disruption: candidates were evaluated with blocking pods waived when the NodeClaim has a
``terminationGracePeriod``, and the simulation leaves such pods out (they will not be evicted, so no capacity
is launched for them; Karpenter's ``IsCurrentlyReschedulable``). Fed by candidates, the allowance and a `simulate.Simulate`; consumed by the
disruption reconciler, which acts without a validation delay, as Karpenter does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from nodesmith.disruption import budgets
from nodesmith.disruption.candidates import Candidate
from nodesmith.disruption.commands import Command, Method, Outcome, Rejection, RejectionReason, Replacement
from nodesmith.disruption.simulate import Simulate

__all__ = ["compute"]

METHOD = Method.DRIFT
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _drifted_since(candidate: Candidate) -> dt.datetime:
    condition = candidate.drifted
    return _EPOCH if condition is None else condition.last_transition_time


def _needs_no_room(candidate: Candidate) -> bool:
    """Empty, or of a static NodePool: its replacement is the static loop's (one for one, launched as soon
    as the node is being disrupted, as Karpenter's static drift), so no pod simulation is needed."""
    return candidate.is_empty or candidate.nodepool.is_static


def compute(
    candidates: Sequence[Candidate],
    allowance: Mapping[str, int],
    simulate: Simulate,
    deadline: Callable[[], bool] | None = None,
) -> Outcome:
    drifted = [c for c in candidates if c.drifted is not None]
    drifted.sort(key=lambda c: (not _needs_no_room(c), _drifted_since(c), c.name))
    empty = [c for c in drifted if _needs_no_room(c)]
    kept, rejected = budgets.take_within(empty, allowance, METHOD)
    if kept:
        command = Command(METHOD, tuple(kept), (), sum(c.price or 0.0 for c in kept))
        return Outcome(METHOD, command, tuple(rejected), budgets=dict(allowance))
    rejections: list[Rejection] = list(rejected)
    for candidate in (c for c in drifted if not _needs_no_room(c)):
        pool = candidate.nodepool.name
        if allowance.get(pool, 0) <= 0:
            rejections += budgets.take_within([candidate], allowance, METHOD)[1]
            continue
        if deadline is not None and deadline():
            return Outcome(METHOD, None, tuple(rejections), timed_out=True, budgets=dict(allowance))
        result = simulate([candidate])
        if not result.all_scheduled:
            rejections.append(
                Rejection(
                    candidate.name,
                    RejectionReason.WOULD_NOT_FIT,
                    f"drifted, but not all pods would schedule: {result.failure_message()}",
                    candidate.nodeclaim.name,
                    METHOD,
                )
            )
            continue
        replacements = tuple(
            Replacement(claim.nodepool, claim.requirements, claim.instance_types, claim.source)
            for claim in result.new_claims
        )
        savings = (candidate.price or 0.0) - sum(r.cheapest_price() or 0.0 for r in replacements)
        command = Command(METHOD, (candidate,), replacements, savings)
        return Outcome(METHOD, command, tuple(rejections), budgets=dict(allowance))
    return Outcome(METHOD, None, tuple(rejections), budgets=dict(allowance))
