"""The ``Balanced`` consolidation policy: approve a move only when what it saves is worth what it
disrupts, both measured as shares of the NodePool (Karpenter v1.14, RFC kubernetes-sigs/karpenter#2942).

``score = (savings / pool cost) / (move disruption cost / pool disruption cost)``, approved when
``score >= 1/k`` with ``k = 2``: a move that saves 10% of the pool's cost may disrupt up to 20% of its
pods' weight. A command spanning several pools splits its savings by each pool's share of the candidates'
cost; every Balanced pool in it must approve; pools with another policy always do.

Fed by a `commands.Command` and the pool totals (`PoolTotals`, from all candidates of the pool);
consumed by `nodesmith.disruption.consolidation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, final

import attrs

from nodesmith.api.nodepool import ConsolidationPolicy
from nodesmith.disruption.candidates import Candidate

__all__ = ["BALANCED_K", "PoolTotals", "Verdict", "pool_totals", "score"]

BALANCED_K: Final = 2.0


@final
@attrs.frozen(slots=True)
class PoolTotals:
    cost: float = 0.0
    disruption_cost: float = 0.0


def pool_totals(candidates: Iterable[Candidate]) -> dict[str, PoolTotals]:
    """Σ price and Σ disruption cost per NodePool."""
    cost: dict[str, float] = {}
    disruption: dict[str, float] = {}
    for c in candidates:
        name = c.nodepool.name
        cost[name] = cost.get(name, 0.0) + (c.price or 0.0)
        disruption[name] = disruption.get(name, 0.0) + c.disruption_cost
    return {name: PoolTotals(cost[name], disruption[name]) for name in cost}


@final
@attrs.frozen(slots=True)
class Verdict:
    approved: bool
    score: float | None
    """The lowest score among Balanced pools (``None`` when none took part)."""
    message: str = ""


def score(
    candidates: tuple[Candidate, ...],
    savings: float,
    totals: Mapping[str, PoolTotals],
    k: float = BALANCED_K,
) -> Verdict:
    """Would every Balanced pool among ``candidates`` approve a move saving ``savings`` per hour?"""
    source_cost = sum(c.price or 0.0 for c in candidates)
    lowest: float | None = None
    for name in sorted({c.nodepool.name for c in candidates}):
        members = [c for c in candidates if c.nodepool.name == name]
        if members[0].nodepool.spec.disruption.consolidation_policy is not ConsolidationPolicy.BALANCED:
            continue
        pool = totals.get(name, PoolTotals())
        share = sum(c.price or 0.0 for c in members) / source_cost if source_cost > 0 else 0.0
        moved = sum(c.disruption_cost for c in members)
        if pool.cost <= 0 or pool.disruption_cost <= 0 or moved <= 0:
            continue
        value = ((savings * share) / pool.cost) / (moved / pool.disruption_cost)
        lowest = value if lowest is None else min(lowest, value)
        if value < 1.0 / k:
            return Verdict(
                False,
                value,
                f"Balanced score {value:.3f} for NodePool {name} is below {1.0 / k:.3f} "
                f"(saves {savings * share:.4f}/h of {pool.cost:.4f}/h, disrupts {moved:.1f} of "
                f"{pool.disruption_cost:.1f})",
            )
    return Verdict(True, lowest)
