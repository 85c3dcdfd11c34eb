"""NodeClaim marking: ``Drifted`` and ``Consolidatable`` conditions, ``status.lastPodEventTime``, and
expiration (Karpenter's ``nodeclaim/disruption``, ``nodeclaim/podevents`` and ``nodeclaim/expiration``).

Per NodeClaim, through a keyed work queue. It hears of changes through the cluster state's change feed
(``on_change``): a NodeClaim or its Node changed, its NodePool changed (every claim of the pool, found in
the state), or a pod came to, left, finished or started terminating on its node (the change's
`nodesmith.state.changes.PodMove`). The verdicts are pure
(`nodesmith.disruption.marking`); this module reads the instance types (cached a minute per NodePool)
and the provider's ``is_drifted`` (cached five minutes per NodeClaim) and writes.

``lastPodEventTime`` is stamped here rather than derived from state, because a pod that left is no
longer in the state: a pod event is at *now*, except a pod that arrived on its node, which counts from its
``PodScheduled`` transition (so a restart does not reset every node's timer). Writes are deduplicated (at most one per NodeClaim per 10 s, like Karpenter), so pod
churn does not turn into a status write per pod. Expiration is forceful: the NodeClaim is deleted
without budgets once ``creationTimestamp + expireAfter`` has passed; termination drains it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, Final

import attrs

from nodesmith import errors, metrics
from nodesmith.api import conditions, meta
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.api import nodepool as api_nodepool
from nodesmith.clock import Clock
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import marking
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers.queues import WorkQueue
from nodesmith.state.changes import Change, PodMove
from nodesmith.state.cluster import ClusterState
from nodesmith.state.statenode import NodePart

__all__ = ["NodeClaimMarking", "clear_condition", "set_condition"]

log = logging.getLogger(__name__)


POD_EVENT_DEDUPE: Final = dt.timedelta(seconds=10)
DRIFT_RECHECK: Final = 300.0
"""Seconds between drift checks of an unchanged NodeClaim (Karpenter: 5 minutes)."""
INSTANCE_TYPES_TTL: Final = 60.0
PROVIDER_DRIFT_TTL: Final = 300.0
NOT_LAUNCHED_RECHECK: Final = 10.0


# -- condition dict helpers (shared with the orchestration queue) ----------------------------------------


def set_condition(
    obj: dict[str, Any],
    condition_type: str,
    reason: str,
    message: str,
    now: dt.datetime,
    status: str = "True",
) -> bool:
    """Set one condition in an object dict's ``status.conditions`` (keeping ``lastTransitionTime`` when
    the status is unchanged); True if anything changed."""
    status_obj = obj.setdefault("status", {})
    found = list(status_obj.get("conditions") or [])
    generation = (obj.get("metadata") or {}).get("generation")
    for index, condition in enumerate(found):
        if condition.get("type") != condition_type:
            continue
        if (condition.get("status"), condition.get("reason"), condition.get("message")) == (
            status,
            reason,
            message,
        ):
            return False
        updated = {**condition, "status": status, "reason": reason, "message": message}
        if condition.get("status") != status:
            updated["lastTransitionTime"] = meta.format_time(now)
        if generation is not None:
            updated["observedGeneration"] = generation
        found[index] = updated
        status_obj["conditions"] = found
        return True
    entry: dict[str, Any] = {
        "type": condition_type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": meta.format_time(now),
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    status_obj["conditions"] = sorted([*found, entry], key=lambda c: str(c.get("type")))
    return True


def clear_condition(obj: dict[str, Any], condition_type: str) -> bool:
    """Remove one condition from ``status.conditions``; True if it was there."""
    status_obj = obj.get("status") or {}
    found = list(status_obj.get("conditions") or [])
    kept = [c for c in found if c.get("type") != condition_type]
    if len(kept) == len(found):
        return False
    obj.setdefault("status", {})["conditions"] = kept
    return True


@attrs.define
class NodeClaimMarking:
    """Per-NodeClaim marking and expiration; build through ``controllers.build``."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    plugins: manager.Plugins
    events: EventRecorder
    clock: Clock
    workers: int = 8
    name: str = "nodeclaim.marking"
    _queue: WorkQueue[str] = attrs.field(init=False)
    _pod_events: dict[str, dt.datetime] = attrs.field(init=False, factory=dict)
    _instance_types: dict[str, tuple[float, Sequence[InstanceType]]] = attrs.field(init=False, factory=dict)
    _provider_drift: dict[str, tuple[float, str | None]] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self._queue = WorkQueue(self.name, self.reconcile, workers=self.workers, clock=self.clock)

    async def run(self) -> None:
        await self._queue.run()

    # -- hearing of changes --------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        """Subscribed to the cluster state by the composition root."""
        if change.resource == resources.PODS:
            if change.pod_move is not None:
                self._on_pod(change.key, change.pod_move)
        elif change.resource == resources.NODECLAIMS:
            if change.deleted:
                self._pod_events.pop(change.key, None)
                self._provider_drift.pop(change.key, None)
                return
            self._queue.add(change.key)
        elif change.resource == resources.NODEPOOLS:
            self._instance_types.pop(change.key, None)
            for claim in self.state.nodeclaims_of(change.key):
                self._provider_drift.pop(claim, None)
                self._queue.add(claim)
        elif change.resource == resources.NODES and not change.deleted:
            owner = self._claim_of_node(change.key)
            if owner is not None:
                self._queue.add(owner)

    def _claim_of_node(self, node_name: str) -> str | None:
        key = self.state.key_for_node(node_name)
        node = self.state.state_node(key) if key else None
        return node.nodeclaim.name if node is not None and node.nodeclaim is not None else None

    def _on_pod(self, key: str, move: PodMove) -> None:
        when = self.clock.now()
        if move.arrived:
            pod = self.state.pod(key)
            when = min(when, (pod.scheduled_at if pod is not None else None) or when)
        for node in move.nodes:
            claim = self._claim_of_node(node)
            if claim is None:
                continue
            if claim not in self._pod_events or self._pod_events[claim] < when:
                self._pod_events[claim] = when
            self._queue.add(claim)

    # -- reconcile -----------------------------------------------------------------------------------

    async def _instance_types_of(self, pool: api_nodepool.NodePool) -> Sequence[InstanceType] | None:
        cached = self._instance_types.get(pool.name)
        if cached is not None and self.clock.monotonic() - cached[0] < INSTANCE_TYPES_TTL:
            return cached[1]
        found, _ = await self.plugins.instance_types(self.provider, [pool])
        types = found.get(pool.name)
        if types is not None:
            self._instance_types[pool.name] = (self.clock.monotonic(), types)
        return types

    async def _provider_drift_of(self, claim: api_nodeclaim.NodeClaim) -> str | None:
        cached = self._provider_drift.get(claim.name)
        if cached is not None and self.clock.monotonic() - cached[0] < PROVIDER_DRIFT_TTL:
            return cached[1]
        try:
            reason = await self.provider.is_drifted(claim)
        except errors.ProviderError as err:
            log.info("is_drifted(%s) failed: %s", claim.name, err)
            reason = None
        self._provider_drift[claim.name] = (self.clock.monotonic(), reason)
        return reason

    async def reconcile(self, name: str) -> float | None:
        """Mark one NodeClaim; returns seconds until it should be looked at again."""
        key = self.state.key_for_nodeclaim(name)
        node = self.state.state_node(key) if key else None
        claim = node.nodeclaim if node is not None else None
        now = self.clock.now()
        # 1. Gone or already being deleted → nothing to mark.
        if claim is None or claim.deleting:
            return None
        # 2. Expired → delete it (forceful: no budgets, no replacement first).
        if marking.expired(claim, now):
            await self._expire(claim, node.node if node is not None else None)
            return None
        expires = marking.expires_at(claim)
        recheck = [DRIFT_RECHECK] + ([(expires - now).total_seconds()] if expires is not None else [])
        # 3. Not launched or its NodePool unknown → look again soon.
        pool = self.state.nodepool(claim.nodepool_name or "")
        if pool is None or not claim.is_true(conditions.ConditionType.LAUNCHED):
            return min([NOT_LAUNCHED_RECHECK, *recheck])
        # 4. Drift: the pure checks, then the provider's.
        types = await self._instance_types_of(pool)
        reason = marking.static_drift_reason(
            claim, pool, types, well_known=self.state.well_known_labels, now=now
        )
        drift = reason.value if reason is not None else await self._provider_drift_of(claim)
        # 5. Consolidatable, counting the pod event not yet written.
        pending = self._pod_events.get(name)
        last = claim.status.last_pod_event_time
        stamp = pending if pending is not None and (last is None or pending > last) else None
        effective = (
            claim
            if stamp is None
            else attrs.evolve(claim, status=attrs.evolve(claim.status, last_pod_event_time=stamp))
        )
        verdict = marking.consolidatable(effective, pool, now)
        if verdict.recheck_after is not None:
            recheck.append(verdict.recheck_after.total_seconds() + 0.5)
        write_stamp = (
            stamp if stamp is not None and (last is None or stamp - last >= POD_EVENT_DEDUPE) else None
        )
        # 6. Write what changed.
        await self._write(claim, drift, verdict.value, write_stamp, now)
        if write_stamp is not None or (pending is not None and last is not None and pending <= last):
            self._pod_events.pop(name, None)
        elif stamp is not None:
            recheck.append(POD_EVENT_DEDUPE.total_seconds())
        return max(min(recheck), 0.1)

    async def _write(
        self,
        claim: api_nodeclaim.NodeClaim,
        drift: str | None,
        consolidatable: bool,
        stamp: dt.datetime | None,
        now: dt.datetime,
    ) -> None:
        def change(current: dict[str, Any]) -> dict[str, Any] | None:
            obj = dict(current)
            obj["status"] = dict(obj.get("status") or {})
            changed = False
            if drift is not None:
                changed |= set_condition(obj, conditions.ConditionType.DRIFTED, drift, "", now)
            else:
                changed |= clear_condition(obj, conditions.ConditionType.DRIFTED)
            if consolidatable:
                changed |= set_condition(
                    obj, conditions.ConditionType.CONSOLIDATABLE, "Consolidatable", "", now
                )
            else:
                changed |= clear_condition(obj, conditions.ConditionType.CONSOLIDATABLE)
            if stamp is not None:
                old = obj["status"].get("lastPodEventTime")
                if old is None or meta.parse_time(str(old), "lastPodEventTime") < stamp:
                    obj["status"]["lastPodEventTime"] = meta.format_time(stamp)
                    changed = True
            return obj if changed else None

        if not self._differs(claim, drift, consolidatable, stamp):
            return
        try:
            await self.kube.mutate(resources.NODECLAIMS, claim.name, change, subresource="status")
        except kube_errors.NotFoundError:
            return

    @staticmethod
    def _differs(
        claim: api_nodeclaim.NodeClaim, drift: str | None, consolidatable: bool, stamp: dt.datetime | None
    ) -> bool:
        drifted = claim.condition(conditions.ConditionType.DRIFTED)
        now_drift = drifted.reason if drifted is not None and drifted.is_true else None
        if drifted is not None and not drifted.is_true:
            return True
        if now_drift != drift:
            return True
        if claim.is_true(conditions.ConditionType.CONSOLIDATABLE) != consolidatable:
            return True
        return stamp is not None

    async def _expire(self, claim: api_nodeclaim.NodeClaim, node: NodePart | None) -> None:
        try:
            await self.kube.delete(resources.NODECLAIMS, claim.name, uid=claim.metadata.uid)
        except (kube_errors.NotFoundError, kube_errors.ConflictError):
            return
        pool = claim.nodepool_name or ""
        log.info("expired nodeclaim %s deleted", claim.name, extra={"nodepool": pool})
        metrics.NODECLAIMS_DISRUPTED.add(1, {"reason": "expired", "nodepool": pool})
        message = f"expireAfter {claim.spec.expire_after.text} elapsed"
        await self.events.publish(claim.to_dict(), "Normal", "Expired", message)
        if node is not None:
            await self.events.publish(node.reference(), "Normal", "Expired", message)
