"""``nodeclaim.termination``: finalizes a deleted NodeClaim -- records its termination deadline, deletes
its Node and waits for it to go (the Node's own finalizer drains it, `termination`), deletes the instance
through the provider until the provider says it is gone, then removes the NodeClaim's finalizer.

Fed by the cluster state (`statepoll` enqueues a NodeClaim whenever it or its Node changes; both are read
from the state). Writes: the ``nodesmith.io/nodeclaim-termination-timestamp`` annotation, Node deletion,
provider ``delete``, the ``InstanceTerminating`` condition, finalizer removal; metrics
``nodesmith_nodeclaims_terminated_total`` and the termination durations. Karpenter's
``nodeclaim/lifecycle`` ``finalize`` (spec §3). Every step is idempotent, so a restart anywhere resumes.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing
from typing import Final

import attrs

from nodesmith import errors, metrics
from nodesmith.api import conditions, labels, meta
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.clock import Clock
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import events, resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import lifecycle_checks, lifecycle_writes, statepoll
from nodesmith.state.changes import Change
from nodesmith.state.cluster import ClusterState
from nodesmith.state.statenode import NodePart

__all__ = ["NodeClaimTerminationReconciler"]

log = logging.getLogger(__name__)

INSTANCE_REQUEUE: Final = 5.0
"""Seconds between two provider ``delete`` calls while the instance is still going (Karpenter: 5s)."""
NODE_REQUEUE: Final = 5.0
"""Seconds between two looks while the Node drains (a Node change requeues sooner)."""


@typing.final
@attrs.define(eq=False)
class NodeClaimTerminationReconciler:
    """Per deleted NodeClaim; see the module docstring."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    events: EventRecorder
    clock: Clock
    workers: int = 16
    poll_interval: float = statepoll.DEFAULT_INTERVAL
    feed: statepoll.Feed[str] = attrs.field(init=False)

    @feed.default
    def _feed(self) -> statepoll.Feed[str]:
        return statepoll.Feed.build(
            self.name,
            self.reconcile,
            self.state,
            statepoll.NODECLAIMS,
            self.clock,
            workers=self.workers,
            interval=self.poll_interval,
        )

    def on_change(self, change: Change) -> None:
        """Subscribed to the cluster state by the composition root."""
        self.feed.on_change(change)

    @property
    def name(self) -> str:
        return "nodeclaim.termination"

    async def run(self) -> None:
        """Finalize deleted NodeClaims as they change, until cancelled."""
        await self.feed.run()

    async def reconcile(self, name: str) -> float | None:
        """One pass over the NodeClaim ``name``; returns seconds to requeue after, or ``None``."""
        return await statepoll.settle(self._reconcile, name)

    async def _reconcile(self, name: str) -> float | None:
        key = self.state.key_for_nodeclaim(name)
        state_node = self.state.state_node(key) if key is not None else None
        claim = state_node.nodeclaim if state_node is not None else None
        # 1. gone, not being deleted, or already finalized → nothing to do
        if (
            claim is None
            or not claim.deleting
            or labels.FINALIZER_TERMINATION not in claim.metadata.finalizers
        ):
            return None
        now = self.clock.now()
        # 2. a termination grace period and no recorded deadline → record it (restarts keep the same deadline)
        deadline = lifecycle_checks.termination_deadline(claim)
        annotation = labels.ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP
        if deadline is not None and annotation not in claim.metadata.annotations:
            annotated = attrs.evolve(
                claim,
                metadata=attrs.evolve(
                    claim.metadata,
                    annotations={**claim.metadata.annotations, annotation: meta.format_time(deadline)},
                ),
            )
            claim = await lifecycle_writes.write_nodeclaim(self.kube, claim, annotated)
        # 3. its Node exists → delete it (the Node's finalizer drains it) and wait until it is gone
        node = self._node_for(claim)
        if node is not None:
            if not node.deleting:
                log.info("NodeClaim %s is deleting: deleting Node %s", claim.name, node.name)
                try:
                    await self.kube.delete(resources.NODES, node.name, uid=node.uid)
                except kube_errors.NotFoundError:
                    return 0.0
            return NODE_REQUEUE
        # 4. launched → delete the instance until the provider says it is gone
        if claim.status.provider_id:
            try:
                await self.provider.delete(claim)
            except errors.NodeClaimNotFoundError:
                self._observe_instance_gone(claim, now)
            else:
                if not claim.is_true(conditions.ConditionType.INSTANCE_TERMINATING):
                    terminating = claim.with_condition(
                        conditions.ConditionType.INSTANCE_TERMINATING, True, now=now
                    )
                    await lifecycle_writes.write_nodeclaim(self.kube, claim, terminating)
                    await self.events.publish(
                        claim.to_dict(),
                        events.NORMAL,
                        "InstanceTerminating",
                        f"Terminating instance {claim.status.provider_id}",
                    )
                return INSTANCE_REQUEUE
        # 5. instance gone → remove the finalizer; the NodeClaim goes
        finalized = attrs.evolve(
            claim,
            metadata=attrs.evolve(
                claim.metadata,
                finalizers=tuple(f for f in claim.metadata.finalizers if f != labels.FINALIZER_TERMINATION),
            ),
        )
        await lifecycle_writes.write_nodeclaim(self.kube, claim, finalized)
        pool = {"nodepool": claim.nodepool_name or ""}
        metrics.NODECLAIMS_TERMINATED.add(1, pool)
        if claim.metadata.deletion_timestamp is not None:
            metrics.NODECLAIMS_TERMINATION_DURATION.record(
                max(0.0, (now - claim.metadata.deletion_timestamp).total_seconds()), pool
            )
        log.info("NodeClaim %s finalized", claim.name)
        return None

    def _node_for(self, claim: api_nodeclaim.NodeClaim) -> NodePart | None:
        if not claim.status.provider_id:
            return None
        state_node = self.state.state_node(claim.status.provider_id)
        return state_node.node if state_node is not None else None

    def _observe_instance_gone(self, claim: api_nodeclaim.NodeClaim, now: dt.datetime) -> None:
        if claim.metadata.deletion_timestamp is not None:
            metrics.NODECLAIMS_INSTANCE_TERMINATION_DURATION.record(
                max(0.0, (now - claim.metadata.deletion_timestamp).total_seconds()),
                {"nodepool": claim.nodepool_name or ""},
            )
