"""``nodepool.staticcapacity``: keep a static NodePool (``spec.replicas`` set) at exactly that many
NodeClaims, whatever the pods need.

Fed by the cluster state (NodePools, their NodeClaims, the pods on their nodes); the decision is
`nodesmith.disruption.static.plan`. Writes: NodeClaims created from the pool's template (with no resource
requests: the provider picks its cheapest compatible instance type) and NodeClaims deleted on scale-down
(not yet launched first, then the emptiest); a ``StaticCapacityLimited`` event when ``limits.nodes`` holds launches back.

What it leaves to others, as Karpenter does: provisioning never launches for a static pool (its template
is left out of the simulation) though pods may land on its nodes; emptiness and consolidation never
remove its nodes; drift and expiry delete them as for any pool, and a NodeClaim being disrupted no longer
counts, so this loop launches its replacement at once. Karpenter's ``pkg/controllers/static/*``.
"""

from __future__ import annotations

import logging
import typing
from typing import Any, Final

import attrs

from nodesmith import metrics
from nodesmith.api import labels, nodeclaim
from nodesmith.api import nodepool as api_nodepool
from nodesmith.clock import Clock
from nodesmith.disruption import static
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import events, resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import queues
from nodesmith.state import simulation
from nodesmith.state.cluster import ClusterState
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.views import PodView

__all__ = ["INTERVAL", "StaticCapacity", "static_nodeclaim"]

log = logging.getLogger(__name__)

INTERVAL: Final = 5.0
"""Seconds between two passes."""


@typing.final
@attrs.define(eq=False)
class StaticCapacity:
    """A singleton loop; see the module docstring. ``interval`` is tunable for tests."""

    kube: KubeClient
    state: ClusterState
    events: EventRecorder
    clock: Clock
    interval: float = INTERVAL

    @property
    def name(self) -> str:
        return "nodepool.staticcapacity"

    async def run(self) -> None:
        """A pass every ``interval`` seconds until cancelled; a failed pass is logged and counted."""
        await queues.every(self.interval, self.name, self.reconcile, clock=self.clock)

    async def reconcile(self) -> dict[str, static.Plan]:
        """One pass over every static NodePool; returns the plan carried out for each."""
        # 1. the state has not listed NodePools, NodeClaims and Nodes yet → counts would be short; wait
        if not all(
            self.state.has_synced(r) for r in (resources.NODEPOOLS, resources.NODECLAIMS, resources.NODES)
        ):
            return {}
        snapshot = self.state.snapshot()
        plans: dict[str, static.Plan] = {}
        # 2. dynamic, deleted, or not Ready NodePools → not this loop's business
        for pool in simulation.usable_nodepools(snapshot):
            if pool.spec.replicas is None:
                continue
            limit = pool.spec.limits.get("nodes")
            plan = static.plan(
                pool.spec.replicas,
                _members(pool.name, snapshot),
                node_limit=None if limit is None else limit // 1000,
            )
            plans[pool.name] = plan
            # 3. at its count → nothing to do
            # 4. short → launch what the nodes limit allows; 5. over → remove the emptiest
            await self._carry_out(pool, plan)
        return plans

    async def _carry_out(self, pool: api_nodepool.NodePool, plan: static.Plan) -> None:
        for _ in range(plan.create):
            try:
                created = await self.kube.create(resources.NODECLAIMS, static_nodeclaim(pool))
            except kube_errors.KubeError as err:
                log.warning("static NodePool %s: creating a NodeClaim failed: %s", pool.name, err)
                return
            self.state.update_nodeclaim_created(created)
            metrics.NODECLAIMS_CREATED.add(1, {"reason": "static", "nodepool": pool.name})
        if plan.limited:
            await self.events.publish(
                pool.to_dict(),
                events.WARNING,
                "StaticCapacityLimited",
                f"NodePool {pool.name} wants {pool.spec.replicas} nodes but limits.nodes allows fewer",
            )
        for name in plan.delete:
            log.info(
                "static NodePool %s: scaling down to %s, deleting NodeClaim %s",
                pool.name,
                pool.spec.replicas,
                name,
            )
            try:
                await self.kube.delete(resources.NODECLAIMS, name)
            except kube_errors.NotFoundError:
                continue
            metrics.NODECLAIMS_DISRUPTED.add(1, {"reason": "static_scale_down", "nodepool": pool.name})


def _members(pool: str, snapshot: Snapshot) -> list[static.Member]:
    """The pool's NodeClaims that are not being deleted nor disrupted, launched or not."""
    out = [
        static.Member(claim.name, _workload_pods(n.pods), _created(claim))
        for n in snapshot.nodes
        if (claim := n.nodeclaim) is not None and claim.nodepool_name == pool and not n.marked_for_deletion
    ]
    out += [
        static.Member(claim.name, 0, _created(claim), launched=False)
        for claim in snapshot.unlaunched_nodeclaims
        if claim.nodepool_name == pool and not claim.deleting
    ]
    return out


def _created(claim: nodeclaim.NodeClaim) -> str:
    stamp = claim.metadata.creation_timestamp
    return "" if stamp is None else stamp.isoformat()


def _workload_pods(pods: typing.Iterable[PodView]) -> int:
    return sum(1 for pod in pods if not pod.owned_by_daemonset)


def static_nodeclaim(pool: api_nodepool.NodePool) -> dict[str, Any]:
    """The NodeClaim a static pool launches: its template's labels, annotations, requirements, taints and
    settings, owned by the pool, with no resource requests."""
    template = pool.spec.template
    spec = template.spec
    body: dict[str, Any] = {
        "metadata": {
            "generateName": f"{pool.name}-",
            "labels": {**pool.labels, labels.LABEL_NODEPOOL: pool.name},
            "annotations": {
                **template.annotations,
                labels.ANNOTATION_NODEPOOL_HASH: pool.hash(),
                labels.ANNOTATION_NODEPOOL_HASH_VERSION: api_nodepool.HASH_VERSION,
            },
        },
        "spec": {
            "requirements": pool.requirements.to_node_selector(),
            "nodeClassRef": spec.node_class_ref.to_dict(),
            "expireAfter": spec.expire_after.text,
        },
    }
    if pool.metadata.uid:
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": api_nodepool.API_VERSION,
                "kind": api_nodepool.KIND,
                "name": pool.name,
                "uid": pool.metadata.uid,
                "blockOwnerDeletion": True,
            }
        ]
    if spec.taints:
        body["spec"]["taints"] = [t.to_dict() for t in spec.taints]
    if spec.startup_taints:
        body["spec"]["startupTaints"] = [t.to_dict() for t in spec.startup_taints]
    if spec.termination_grace_period is not None:
        body["spec"]["terminationGracePeriod"] = spec.termination_grace_period.text
    return body
