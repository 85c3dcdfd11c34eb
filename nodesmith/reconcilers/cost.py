"""``cost``: what the cluster's nodes cost per hour, exported as gauges -- the question users otherwise
answer with eks-node-viewer.

Every `INTERVAL` seconds it snapshots the cluster state, reads each usable NodePool's instance types the
way the provisioner does (``provider.get_instance_types`` through the plugins' adjusters, so price
overlays count; a NodePool whose NodeClass is not ready is left out), prices the machines with the pure
`nodesmith.state.pricing.costs` and publishes:

* ``nodesmith_cloudprovider_instance_type_offering_price_estimate{instance_type, capacity_type, zone}``
  (Karpenter's metric): every offering of every type the NodePools can use, available or not, at its
  lowest price across NodePools;
* ``nodesmith_nodepools_cost_per_hour{nodepool}``: the summed price of the NodePool's running nodes
  (NodeClaims with a Node), 0 for a NodePool without nodes;
* ``nodesmith_nodepools_unpriced_nodes{nodepool}``: its running nodes whose offering has no price.

Each pass replaces the whole set of series (`metrics.Readings` behind observable gauges), so a NodePool
or an offering that is gone stops being exported; when the loop stops (leadership lost, shutdown) it
exports none, so only the leader reports cost. Reads the state and the provider only: no API calls.
Karpenter's counterparts are ``karpenter_cloudprovider_instance_type_offering_price_estimate`` and the
``metrics/nodepool`` controller's ``karpenter_nodepools_cost_total``.
"""

from __future__ import annotations

import logging
import typing
from typing import Final

import attrs

from nodesmith import metrics
from nodesmith.clock import Clock
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube import resources
from nodesmith.reconcilers import queues
from nodesmith.state import pricing, simulation
from nodesmith.state.cluster import ClusterState

__all__ = ["INTERVAL", "CostReconciler"]

log = logging.getLogger(__name__)

INTERVAL: Final = 30.0
"""Seconds between two passes."""
_INFORMED: Final = (resources.NODES, resources.NODECLAIMS, resources.NODEPOOLS)


@typing.final
@attrs.define(eq=False)
class CostReconciler:
    """A singleton loop; see the module docstring. ``interval`` is tunable."""

    state: ClusterState
    provider: CloudProvider
    plugins: manager.Plugins
    clock: Clock
    interval: float = INTERVAL

    @property
    def name(self) -> str:
        return "cost"

    async def run(self) -> None:
        """A pass every ``interval`` seconds until cancelled; a failed pass is logged and counted, and the
        last figures stay. On the way out every cost series is withdrawn."""
        try:
            await queues.every(self.interval, self.name, self.reconcile, clock=self.clock)
        finally:
            for readings in (
                metrics.OFFERING_PRICE_ESTIMATE,
                metrics.NODEPOOLS_COST_PER_HOUR,
                metrics.NODEPOOLS_UNPRICED_NODES,
            ):
                readings.clear()

    async def reconcile(self) -> pricing.Costs | None:
        """One pass; returns what it published, or ``None`` when it could not tell yet."""
        # 1. Nodes, NodeClaims or NodePools not listed yet → a partial count would under-report; wait
        if not all(self.state.has_synced(resource) for resource in _INFORMED):
            return None
        # 2. instance types per usable NodePool, as the provisioner reads them
        snapshot = self.state.snapshot()
        # (a NodePool the provider refuses is left out: its nodes are priced by another pool's types of
        # that name, or counted unpriced)
        instance_types, refused = await self.plugins.instance_types(
            self.provider, simulation.usable_nodepools(snapshot)
        )
        for pool, why in refused.items():
            log.debug("%s: no instance types for NodePool %s: %s", self.name, pool, why)
        # 3. price the running nodes and publish, replacing every series
        costs = pricing.costs(snapshot, instance_types)
        metrics.OFFERING_PRICE_ESTIMATE.publish(
            (price, {"instance_type": name, "capacity_type": capacity_type, "zone": zone})
            for (name, capacity_type, zone), price in sorted(costs.offerings.items())
        )
        metrics.NODEPOOLS_COST_PER_HOUR.publish(
            (cost, {"nodepool": pool}) for pool, cost in sorted(costs.nodepools.items())
        )
        metrics.NODEPOOLS_UNPRICED_NODES.publish(
            (count, {"nodepool": pool}) for pool, count in sorted(costs.unpriced.items())
        )
        return costs
