"""Consolidation's shared core: which candidates consolidation may touch, and what removing a set of
them amounts to -- delete, replace with one cheaper node, or nothing (spec §4.4 "Consolidation shared
rules", Karpenter's ``computeConsolidation``).

Fed by candidates (`candidates`), a `simulate.Simulate` function and `Options`; consumed by
`multinode` and `singlenode`, and by validation (the same computation 15 s later). Never 1→N: a set of
candidates whose pods need more than one new node is not consolidated. A replacement must be strictly
cheaper at its *worst-case* launch price than the candidates cost together; if it may be spot or
on-demand it is pinned to spot, since prices were compared as spot. Spot→spot replacement is behind
`Options.spot_to_spot` and, for one candidate, needs at least 15 cheaper instance types and launches
with the 15 cheapest only (Karpenter's guard against walking down the price list one launch at a time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, final

import attrs

from nodesmith.api import labels
from nodesmith.api.nodepool import ConsolidationPolicy
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import balanced
from nodesmith.disruption.candidates import Candidate
from nodesmith.disruption.commands import Command, Method, Rejection, RejectionReason, Replacement
from nodesmith.disruption.simulate import Simulate

__all__ = [
    "DEFAULT_OPTIONS",
    "MIN_SPOT_TO_SPOT_OPTIONS",
    "Options",
    "compute",
    "eligible",
    "filter_cheaper",
    "worst_launch_price",
]

MIN_SPOT_TO_SPOT_OPTIONS: Final = 15
_SPOT: Final = labels.CapacityType.SPOT
_ON_DEMAND: Final = labels.CapacityType.ON_DEMAND
_RESERVED: Final = labels.CapacityType.RESERVED


@final
@attrs.frozen(slots=True)
class Options:
    spot_to_spot: bool = False
    """Karpenter's ``SpotToSpotConsolidation`` feature gate (default off)."""
    balanced_k: float = balanced.BALANCED_K


DEFAULT_OPTIONS: Final = Options()


def eligible(candidate: Candidate) -> Rejection | None:
    """``None`` if consolidation may consider the candidate, else why not (``ShouldDisrupt``)."""
    pool = candidate.nodepool
    disruption = pool.spec.disruption

    def no(reason: RejectionReason, message: str) -> Rejection:
        return Rejection(candidate.name, reason, message, candidate.nodeclaim.name)

    if pool.is_static:
        return no(RejectionReason.STATIC_NODEPOOL, f"NodePool {pool.name} is static (spec.replicas)")
    if disruption.consolidate_after.value is None:
        return no(RejectionReason.CONSOLIDATION_DISABLED, f"NodePool {pool.name} has consolidateAfter: Never")
    if candidate.is_empty:
        return no(RejectionReason.NOT_EMPTY, "empty (emptiness handles it)")
    if disruption.consolidation_policy is ConsolidationPolicy.WHEN_EMPTY:
        return no(
            RejectionReason.POLICY,
            f"NodePool {pool.name} has consolidation policy WhenEmpty, but the node is not empty",
        )
    if candidate.instance_type is None or candidate.price is None:
        return no(RejectionReason.INSTANCE_TYPE_UNKNOWN, "its instance type or offering price is unknown")
    if not candidate.consolidatable:
        return no(RejectionReason.NOT_CONSOLIDATABLE, "not consolidatable yet (consolidateAfter)")
    return None


def worst_launch_price(it: InstanceType, requirements: Requirements) -> float | None:
    """The highest price among the available offerings the launch could pick: reserved if any are
    compatible, else spot, else on-demand (the order a provider fills them in)."""
    compatible = it.compatible_offerings(requirements)
    for capacity_type in (_RESERVED, _SPOT, _ON_DEMAND):
        prices = [o.price for o in compatible if o.capacity_type == capacity_type]
        if prices:
            return max(prices)
    return None


def filter_cheaper(
    instance_types: Sequence[InstanceType], requirements: Requirements, below: float
) -> list[InstanceType]:
    """The instance types whose worst-case launch price is strictly below ``below``, cheapest first."""
    priced = []
    for it in instance_types:
        worst = worst_launch_price(it, requirements)
        if worst is not None and worst < below:
            priced.append((it.cheapest_price(requirements) or worst, it.name, it))
    priced.sort(key=lambda entry: (entry[0], entry[1]))
    return [it for _, _, it in priced]


def _fail(
    candidates: Sequence[Candidate], reason: RejectionReason, message: str, method: Method
) -> Rejection:
    first = candidates[0]
    if len(candidates) > 1:
        message = f"with {len(candidates) - 1} other node(s): {message}"
    return Rejection(first.name, reason, message, first.nodeclaim.name, method)


def compute(
    candidates: Sequence[Candidate],
    simulate: Simulate,
    method: Method,
    options: Options = DEFAULT_OPTIONS,
    totals: Mapping[str, balanced.PoolTotals] | None = None,
) -> Command | Rejection:
    """What removing ``candidates`` together amounts to: a delete or replace `Command`, or why not."""
    group = tuple(candidates)
    result = simulate(group)
    # 1. Every pod that runs now must find a place.
    if not result.all_scheduled:
        return _fail(
            group,
            RejectionReason.WOULD_NOT_FIT,
            f"not all pods would schedule: {result.failure_message()}",
            method,
        )
    source_price = sum(c.price or 0.0 for c in group)
    # 2. The rest of the cluster takes them all: delete.
    if not result.new_claims:
        command = Command(method, group, (), source_price)
        return _balanced(command, totals, options, method)
    # 3. Never 1 → N.
    if len(result.new_claims) > 1:
        return _fail(
            group,
            RejectionReason.MULTIPLE_REPLACEMENTS,
            f"can't remove without creating {len(result.new_claims)} nodes",
            method,
        )
    claim = result.new_claims[0]
    capacity = claim.requirements.get(labels.LABEL_CAPACITY_TYPE)
    all_spot = all(c.capacity_type == _SPOT for c in group)
    # 4. Spot → spot: gated, and for one node only with enough cheaper choices.
    if all_spot and capacity.has(_SPOT):
        if not options.spot_to_spot:
            return _fail(
                group,
                RejectionReason.SPOT_TO_SPOT,
                "SpotToSpotConsolidation is disabled, can't replace a spot node with a spot node",
                method,
            )
        requirements = claim.requirements.add(Requirement.in_(labels.LABEL_CAPACITY_TYPE, _SPOT))
        spot_types = [it for it in claim.instance_types if it.compatible_offerings(requirements)]
        cheaper = filter_cheaper(spot_types, requirements, source_price)
        if not cheaper:
            return _fail(
                group, RejectionReason.NOT_CHEAPER, "can't replace spot node with a cheaper spot node", method
            )
        if len(group) == 1:
            if len(cheaper) < MIN_SPOT_TO_SPOT_OPTIONS:
                return _fail(
                    group,
                    RejectionReason.SPOT_TO_SPOT,
                    f"SpotToSpotConsolidation requires {MIN_SPOT_TO_SPOT_OPTIONS} cheaper instance type "
                    f"options than the current candidate to consolidate, got {len(cheaper)}",
                    method,
                )
            cheaper = cheaper[:MIN_SPOT_TO_SPOT_OPTIONS]
    else:
        # 5. Strictly cheaper at the worst-case price; pin to spot when both were allowed.
        requirements = claim.requirements
        cheaper = filter_cheaper(claim.instance_types, requirements, source_price)
        if not cheaper:
            return _fail(group, RejectionReason.NOT_CHEAPER, "can't replace with a cheaper node", method)
        if capacity.has(_SPOT) and capacity.has(_ON_DEMAND):
            pinned = requirements.add(Requirement.in_(labels.LABEL_CAPACITY_TYPE, _SPOT))
            spot_only = [it for it in cheaper if it.compatible_offerings(pinned)]
            if spot_only:
                requirements, cheaper = pinned, spot_only
    replacement = Replacement(claim.nodepool, requirements, tuple(cheaper), claim.source)
    savings = source_price - (replacement.cheapest_price() or 0.0)
    return _balanced(Command(method, group, (replacement,), savings), totals, options, method)


def _balanced(
    command: Command,
    totals: Mapping[str, balanced.PoolTotals] | None,
    options: Options,
    method: Method,
) -> Command | Rejection:
    if totals is None:
        return command
    verdict = balanced.score(command.candidates, command.savings, totals, options.balanced_k)
    if not verdict.approved:
        return _fail(command.candidates, RejectionReason.BALANCED_SCORE, verdict.message, method)
    return attrs.evolve(command, score=verdict.score)
