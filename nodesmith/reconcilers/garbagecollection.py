"""``nodeclaim.garbagecollection``: every couple of minutes, reconcile the provider's instances with the
NodeClaims -- delete instances no NodeClaim owns (a launch whose NodeClaim vanished, a crash between
launch and status write) and NodeClaims whose instance vanished (so their pods are provisioned again).

Fed by the provider's ``list``/``get`` and the cluster state (NodeClaims and Nodes). Writes: provider
``delete`` for orphaned instances, NodeClaim deletion (its finalizer then cleans up); events and
``nodesmith_garbage_collected_instances_total`` / ``nodesmith_nodeclaims_disrupted_total{reason=garbage_collected}``.
A singleton loop, like Karpenter's ``nodeclaim/garbagecollection`` (which handles the second half; the
first is what Karpenter's AWS provider does in its own instance GC).

Safety margins: an instance is an orphan only when it is older than `ORPHAN_GRACE` (its NodeClaim's
status write may still be in flight) and its name is not that of a NodeClaim still launching; a NodeClaim
is collected only when it launched more than `LAUNCH_GRACE` ago, the provider's ``list`` lacks it *and*
``get`` confirms it is gone, and its Node is gone or not Ready.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing
from typing import Final

import attrs

from nodesmith import errors, metrics
from nodesmith.api import conditions
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.clock import Clock
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import events, resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import lifecycle_checks, queues
from nodesmith.state.cluster import ClusterState

__all__ = ["INTERVAL", "LAUNCH_GRACE", "ORPHAN_GRACE", "GarbageCollector"]

log = logging.getLogger(__name__)

INTERVAL: Final = 120.0
"""Seconds between two passes (Karpenter: 2 minutes)."""
ORPHAN_GRACE: Final = dt.timedelta(seconds=30)
LAUNCH_GRACE: Final = dt.timedelta(seconds=10)


@typing.final
@attrs.define(eq=False)
class GarbageCollector:
    """A singleton loop; see the module docstring. ``interval`` and the graces are tunable for tests."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    events: EventRecorder
    clock: Clock
    interval: float = INTERVAL
    orphan_grace: dt.timedelta = ORPHAN_GRACE
    launch_grace: dt.timedelta = LAUNCH_GRACE
    _first_seen: dict[str, dt.datetime] = attrs.field(init=False, factory=dict)
    """providerID → when an instance without a creation time was first seen without a NodeClaim."""

    @property
    def name(self) -> str:
        return "nodeclaim.garbagecollection"

    async def run(self) -> None:
        """A pass every ``interval`` seconds until cancelled; a failed pass is logged and counted."""
        await queues.every(self.interval, self.name, self.reconcile, clock=self.clock)

    async def reconcile(self) -> None:
        """One pass over every instance and every launched NodeClaim."""
        # 1. the state has not listed Nodes and NodeClaims yet → it cannot tell orphans; wait
        if not (self.state.has_synced(resources.NODES) and self.state.has_synced(resources.NODECLAIMS)):
            return
        instances = await self.provider.list()
        now = self.clock.now()
        snapshot = self.state.snapshot()
        claims = [n.nodeclaim for n in snapshot.nodes if n.nodeclaim is not None]
        owned = {c.status.provider_id for c in claims if c.status.provider_id}
        launching = {c.name for c in snapshot.unlaunched_nodeclaims}
        listed = {i.status.provider_id for i in instances if i.status.provider_id}
        # 2. instances no NodeClaim owns, older than the grace → delete them
        for instance in instances:
            provider_id = instance.status.provider_id
            if not provider_id or provider_id in owned or instance.name in launching:
                continue
            if self._old_enough(instance, provider_id, now):
                await self._delete_instance(instance, provider_id)
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in listed and k not in owned}
        # 3. launched NodeClaims whose instance is gone, and whose Node is gone or NotReady → delete them
        for state_node in snapshot.nodes:
            claim = state_node.nodeclaim
            if claim is None or claim.deleting or not claim.status.provider_id:
                continue
            if claim.status.provider_id in listed or not self._launched_long_ago(claim, now):
                continue
            if state_node.node is not None and lifecycle_checks.node_ready(state_node.node):
                continue
            if await self._instance_exists(claim.status.provider_id):
                continue
            await self._delete_nodeclaim(claim)

    def _old_enough(self, instance: api_nodeclaim.NodeClaim, provider_id: str, now: dt.datetime) -> bool:
        created = instance.metadata.creation_timestamp or self._first_seen.setdefault(provider_id, now)
        return now - created >= self.orphan_grace

    def _launched_long_ago(self, claim: api_nodeclaim.NodeClaim, now: dt.datetime) -> bool:
        launched = claim.condition(conditions.ConditionType.LAUNCHED)
        return (
            launched is not None
            and launched.is_true
            and now - launched.last_transition_time >= self.launch_grace
        )

    async def _instance_exists(self, provider_id: str) -> bool:
        try:
            await self.provider.get(provider_id)
        except errors.NodeClaimNotFoundError:
            return False
        return True

    async def _delete_instance(self, instance: api_nodeclaim.NodeClaim, provider_id: str) -> None:
        log.info("garbage collecting instance %s: no NodeClaim owns it", provider_id)
        try:
            await self.provider.delete(instance)
        except errors.NodeClaimNotFoundError:
            pass
        except errors.ProviderError as err:
            log.warning("garbage collecting instance %s failed: %s", provider_id, err)
            return
        self._first_seen.pop(provider_id, None)
        metrics.GARBAGE_COLLECTED_INSTANCES.add(1, {"provider": self.provider.name})

    async def _delete_nodeclaim(self, claim: api_nodeclaim.NodeClaim) -> None:
        log.info("garbage collecting NodeClaim %s: instance %s is gone", claim.name, claim.status.provider_id)
        try:
            await self.kube.delete(resources.NODECLAIMS, claim.name, uid=claim.metadata.uid)
        except (kube_errors.NotFoundError, kube_errors.ConflictError):
            return
        metrics.NODECLAIMS_DISRUPTED.add(
            1, {"reason": "garbage_collected", "nodepool": claim.nodepool_name or ""}
        )
        await self.events.publish(
            claim.to_dict(),
            events.WARNING,
            "GarbageCollected",
            f"Deleting NodeClaim: its instance {claim.status.provider_id} no longer exists",
        )
