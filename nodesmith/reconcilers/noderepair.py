"""``node.repair``: replace Nodes that have held one of the provider's unhealthy conditions for longer than
the policy tolerates, unless too many of their NodePool's Nodes are unhealthy at once.

Behind the ``NodeRepair`` feature gate (off by default, as in Karpenter). Fed by the provider's
``repair_policies()`` and the cluster state (Nodes joined with their NodeClaims); the verdicts are
`nodesmith.disruption.repair`'s. Writes: the ``nodesmith.io/nodeclaim-termination-timestamp`` annotation
set to *now* (so the drain does not wait on PDBs or do-not-disrupt: the node is broken) and then the
NodeClaim's deletion; the termination reconcilers do the rest and the provisioner replaces the capacity
for the pods that lose their home. Events ``NodeRepair`` / ``NodeRepairBlocked`` and
``nodesmith_nodeclaims_disrupted_total{reason=unhealthy}``.

A singleton loop over the state every `INTERVAL` seconds rather than Karpenter's per-Node reconcile with a
requeue at the toleration's end: a pass is a scan of the in-memory state, and a repair that lands a few
seconds after the toleration is as good as one on time. Karpenter's ``pkg/controllers/node/health``.
"""

from __future__ import annotations

import collections
import logging
import typing
from typing import Final

import attrs

from nodesmith import metrics
from nodesmith.api import labels, meta
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.clock import Clock
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.disruption import repair
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import events, resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import queues
from nodesmith.state.cluster import ClusterState
from nodesmith.state.statenode import NodePart, StateNode

__all__ = ["INTERVAL", "NodeRepair", "Pass"]

log = logging.getLogger(__name__)

INTERVAL: Final = 10.0
"""Seconds between two passes."""

_NO_POOL: Final = ""


@typing.final
@attrs.frozen(slots=True)
class Pass:
    """What one pass did, by Node name: replaced, and held back by the pool's circuit breaker."""

    repaired: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()


@typing.final
@attrs.define(eq=False)
class NodeRepair:
    """A singleton loop; see the module docstring. ``interval`` is tunable for tests."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    events: EventRecorder
    clock: Clock
    interval: float = INTERVAL

    @property
    def name(self) -> str:
        return "node.repair"

    async def run(self) -> None:
        """A pass every ``interval`` seconds until cancelled; a failed pass is logged and counted."""
        await queues.every(self.interval, self.name, self.reconcile, clock=self.clock)

    async def reconcile(self) -> Pass:
        """One pass over every managed Node."""
        policies = tuple(self.provider.repair_policies())
        # 1. the provider declares no repair policy → nothing is ever unhealthy
        if not policies:
            return Pass()
        # 2. the state has not listed Nodes and NodeClaims yet → the pool counts would be wrong; wait
        if not (self.state.has_synced(resources.NODES) and self.state.has_synced(resources.NODECLAIMS)):
            return Pass()
        nodes = [n for n in self.state.snapshot().nodes if n.node is not None]
        unhealthy = collections.Counter(
            _pool(n) for n in nodes if n.node is not None and repair.is_unhealthy(n.node.conditions, policies)
        )
        totals = collections.Counter(_pool(n) for n in nodes)
        now = self.clock.now()
        repaired: list[str] = []
        blocked: list[str] = []
        for state_node in nodes:
            claim, node = state_node.nodeclaim, state_node.node
            # 3. unmanaged, or already on its way out → not ours to repair
            if claim is None or node is None or state_node.deleting:
                continue
            # 4. healthy, or unhealthy for less than the policy tolerates → leave it
            found = repair.unhealthy_condition(node.conditions, policies)
            if found is None or not found.due(now):
                continue
            # 5. more of its pool is unhealthy than repair may take down at once → report, repair nothing
            pool = _pool(state_node)
            if unhealthy[pool] > repair.allowed_unhealthy(totals[pool]):
                blocked.append(str(state_node.name))
                await self._blocked(node, pool, unhealthy[pool], totals[pool])
                continue
            # 6. due → forceful replacement: deadline now, then delete the NodeClaim
            if await self._repair(claim, state_node, found):
                repaired.append(str(state_node.name))
        return Pass(tuple(repaired), tuple(blocked))

    async def _blocked(self, node: NodePart, pool: str, bad: int, total: int) -> None:
        scope = f"NodePool {pool}" if pool else "the cluster's unpooled Nodes"
        message = (
            f"Node repair blocked: {bad} of {total} Nodes in {scope} are unhealthy, more than "
            f"{repair.ALLOWED_UNHEALTHY_PERCENT}%"
        )
        log.warning("%s (%s)", message, node.name)
        await self.events.publish(node.reference(), events.WARNING, "NodeRepairBlocked", message)

    async def _repair(
        self,
        claim: api_nodeclaim.NodeClaim,
        state_node: StateNode,
        found: repair.Unhealthy,
    ) -> bool:
        annotation = labels.ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP
        patch = {"metadata": {"annotations": {annotation: meta.format_time(self.clock.now())}}}
        try:
            await self.kube.merge_patch(resources.NODECLAIMS, claim.name, patch)
            await self.kube.delete(resources.NODECLAIMS, claim.name, uid=claim.metadata.uid)
        except (kube_errors.NotFoundError, kube_errors.ConflictError):
            return False
        since = meta.format_time(found.since)
        log.info(
            "repairing Node %s: %s since %s, beyond its %s toleration; deleting NodeClaim %s",
            state_node.name,
            found.condition_type,
            since,
            found.toleration,
            claim.name,
        )
        metrics.NODECLAIMS_DISRUPTED.add(1, {"reason": "unhealthy", "nodepool": claim.nodepool_name or ""})
        await self.events.publish(
            claim.to_dict(),
            events.WARNING,
            "NodeRepair",
            f"Deleting NodeClaim: its Node has had condition {found.condition_type} since {since}, "
            f"longer than the {found.toleration} the provider tolerates",
        )
        return True


def _pool(node: StateNode) -> str:
    return node.labels.get(labels.LABEL_NODEPOOL) or _NO_POOL
