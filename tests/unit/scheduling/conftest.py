"""Helpers for the scheduling tests: run the engine on pod dicts with one or more templates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import pytest

from nodesmith import scheduling
from nodesmith.testing import factories

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
CAPACITY_TYPE = "nodesmith.io/capacity-type"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"

Solve = Callable[..., scheduling.Results]


@pytest.fixture
def solve() -> Solve:
    """``solve(pods, templates=None, **SchedulingInput fields, **solve kwargs)``; one default NodePool
    with ``fake_instance_types(10)`` unless templates are given."""

    def run(
        pods: Sequence[dict[str, Any]],
        templates: Sequence[scheduling.NodeClaimTemplate] | None = None,
        *,
        deadline: Callable[[], bool] | None = None,
        preference_policy: Literal["Respect", "Ignore"] = "Respect",
        min_values_policy: Literal["Strict", "BestEffort"] = "Strict",
        **fields: Any,
    ) -> scheduling.Results:
        snapshot = scheduling.SchedulingInput(
            pods=list(pods),
            templates=list(templates if templates is not None else [factories.template()]),
            **fields,
        )
        return scheduling.solve(
            snapshot,
            deadline=deadline,
            preference_policy=preference_policy,
            min_values_policy=min_values_policy,
        )

    return run


def zones_of(result: scheduling.Results) -> list[str]:
    """The zone of each new NodeClaim (``"*"`` when not settled), in creation order."""
    out = []
    for claim in result.new_nodeclaims:
        zone = claim.requirements.get(ZONE)
        out.append(next(iter(zone.values)) if not zone.complement and len(zone.values) == 1 else "*")
    return out


def pods_per_zone(result: scheduling.Results) -> dict[str, int]:
    counts: dict[str, int] = {}
    for zone, claim in zip(zones_of(result), result.new_nodeclaims, strict=True):
        counts[zone] = counts.get(zone, 0) + len(claim.pods)
    return dict(sorted(counts.items()))
