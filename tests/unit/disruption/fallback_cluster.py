"""The capacity-fallback cluster for disruption unit tests: NodePool ``spot`` (weight 100, spot only) and
NodePool ``od`` (weight 1, on-demand only, budget ``nodes: "1"`` unless told), one catalogue in which spot
costs 30% of on-demand, and ``od`` machines whose pods fill them (so consolidation can only replace them,
never just delete them). This is where the pods are after the spot pool ran out of capacity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from nodesmith.api import labels
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.kube import resources
from nodesmith.testing import factories

from .factories import ZONE, Cluster

SPOT, OD = "spot", "od"
SPOT_SHARE = 0.3


def _priced(name: str, cpu: int, on_demand: float) -> InstanceType:
    it = factories.instance_type(name, cpu=cpu, memory=f"{cpu * 2}Gi", zones=(ZONE,), price=on_demand)
    offerings = tuple(
        attrs.evolve(o, price=round(on_demand * SPOT_SHARE, 6)) if o.capacity_type == "spot" else o
        for o in it.offerings
    )
    return InstanceType(it.name, it.requirements, offerings, it.capacity, it.overhead)


CATALOGUE: tuple[InstanceType, ...] = (
    _priced("small", 2, 0.1),
    _priced("medium", 4, 0.2),
    _priced("large", 8, 0.4),
)
"""The names and sizes of `factories.CATALOGUE` (the machines use those), with a spot price of its own."""


def _only(capacity_type: str) -> list[dict[str, Any]]:
    return [{"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": [capacity_type]}]


def fallen_back(
    machines: Sequence[str] = ("a", "b", "c"),
    *,
    od_budget: str = "1",
    not_ready: Sequence[str] = (),
) -> Cluster:
    """The two pools and ``machines`` in ``od`` (medium, on-demand), each full with one 3-CPU pod."""
    cluster = Cluster()
    cluster.pool(SPOT, requirements=_only("spot"))
    cluster.pool(OD, requirements=_only("on-demand"), budgets=[{"nodes": od_budget}])
    for name, weight in ((SPOT, 100), (OD, 1)):
        obj = cluster.pools[name].to_dict()
        obj["spec"]["weight"] = weight
        cluster.state.on_upsert(resources.NODEPOOLS, obj)
    for name in machines:
        cluster.machine(name, "medium", pool=OD, capacity_type="on-demand", ready=name not in not_ready)
        cluster.pod(name, cpu="3")
    return cluster


def instance_types(cluster: Cluster) -> Mapping[str, Sequence[InstanceType]]:
    return dict.fromkeys(cluster.pools, CATALOGUE)
