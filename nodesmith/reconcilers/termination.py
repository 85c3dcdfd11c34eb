"""``node.termination``: the Node finalizer -- taint, drain, wait for volumes to detach, delete the
instance, let the Node go.

Fed by the cluster state: `statepoll` enqueues every Node being deleted whenever it or its NodeClaim
changes; the Node, its NodeClaim and its pods are read from the state. Writes: the
``nodesmith.io/disrupted:NoSchedule`` taint, Eviction API calls and forced pod deletions (as
`nodesmith.disruption.drain.plan` decides, pure), the NodeClaim's ``Drained``/``VolumesDetached``/
``InstanceTerminating`` conditions, provider ``delete``, the finalizer removal; events (``Evicted``,
``FailedDraining``, ``TerminationGracePeriodExpiring``, ``AwaitingVolumeDetachment``) and metrics
(``nodesmith_pods_eviction_requests_total``, ``nodesmith_pods_drained_total``, ``nodesmith_nodes_drained_total``,
``nodesmith_nodes_terminated_total``, termination and lifetime durations). Karpenter's
``pkg/controllers/node/termination`` (spec §5).

The eviction queue is folded in: each pass evicts the pods of the current tier that are not backing off;
a 429 (a PodDisruptionBudget says no) or a 500 (more than one PDB) backs that pod off exponentially from
0.1s to 10s. The deadline (`lifecycle_checks.termination_deadline`) comes from the NodeClaim's annotation
or its deletionTimestamp + terminationGracePeriod, both durable, so a restart resumes with the same one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import typing
from collections.abc import Callable
from typing import Final

import anyio
import attrs

from nodesmith import errors, metrics
from nodesmith.api import conditions, labels, meta
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.clock import Clock
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.disruption import drain
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import events, resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import lifecycle_checks, lifecycle_writes, statepoll
from nodesmith.state.changes import Change
from nodesmith.state.cluster import ClusterState
from nodesmith.state.statenode import NodePart, parse_node
from nodesmith.state.views import PodView

__all__ = ["MIN_DRAIN_TIME", "TerminationReconciler"]

log = logging.getLogger(__name__)

Condition = conditions.ConditionType
Status = conditions.ConditionStatus

MIN_DRAIN_TIME: Final = dt.timedelta(seconds=5)
"""A drain is not finished sooner than this after the Node's deletion (pods scheduled before the taint
was seen still arrive)."""
DRAIN_REQUEUE: Final = 1.0
VOLUME_REQUEUE: Final = 1.0
INSTANCE_REQUEUE: Final = 5.0
EVICTION_BACKOFF_MIN: Final = 0.1
EVICTION_BACKOFF_MAX: Final = 10.0
EXCLUDE_FROM_LB_LABEL: Final = "node.kubernetes.io/exclude-from-external-load-balancers"


@typing.final
@attrs.define(eq=False)
class TerminationReconciler:
    """Per Node being deleted; see the module docstring."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    events: EventRecorder
    clock: Clock
    workers: int = 16
    eviction_concurrency: int = 16
    poll_interval: float = statepoll.DEFAULT_INTERVAL
    _backoff: dict[tuple[str, str], tuple[int, dt.datetime]] = attrs.field(init=False, factory=dict)
    """(node, pod uid) → (failed eviction attempts, not before)."""
    feed: statepoll.Feed[str] = attrs.field(init=False)

    @feed.default
    def _feed(self) -> statepoll.Feed[str]:
        return statepoll.Feed.build(
            self.name,
            self.reconcile,
            self.state,
            statepoll.DELETING_NODES,
            self.clock,
            workers=self.workers,
            interval=self.poll_interval,
        )

    def on_change(self, change: Change) -> None:
        """Subscribed to the cluster state by the composition root."""
        self.feed.on_change(change)

    @property
    def name(self) -> str:
        return "node.termination"

    async def run(self) -> None:
        """Terminate deleted Nodes as they change, until cancelled."""
        await self.feed.run()

    async def reconcile(self, name: str) -> float | None:
        """One pass over the Node ``name``; returns seconds to requeue after, or ``None``."""
        return await statepoll.settle(self._reconcile, name)

    async def _reconcile(self, name: str) -> float | None:
        key = self.state.key_for_node(name)
        state_node = self.state.state_node(key) if key is not None else None
        node = state_node.node if state_node is not None else None
        # 1. gone, not being deleted, or not ours to finalize → nothing to do
        if state_node is None or node is None:
            return None
        if not node.deleting or labels.FINALIZER_TERMINATION not in node.finalizers:
            self._forget(name)
            return None
        now = self.clock.now()
        claim = state_node.nodeclaim
        provider_id = state_node.provider_id
        # 2. its NodeClaim is not being deleted → delete it too (Node and NodeClaim deletion go together)
        if claim is not None and not claim.deleting:
            log.info("Node %s is deleting: deleting NodeClaim %s", name, claim.name)
            with contextlib.suppress(kube_errors.NotFoundError):
                left = await self.kube.delete(resources.NODECLAIMS, claim.name, uid=claim.metadata.uid)
                if left.get("kind") == "NodeClaim":
                    # carry on with the version the delete left, so this pass's condition writes apply
                    claim = api_nodeclaim.NodeClaim.from_dict(left)
        # 3. not Ready and the instance is already gone → nothing left to drain; let the Node go
        if provider_id and not node.ready and await self._instance_gone(provider_id):
            log.info("Node %s: NotReady and its instance is gone; removing the finalizer", name)
            await self._finish(node, now)
            return None
        # 4. not tainted nodesmith.io/disrupted:NoSchedule → taint it, so nothing new lands there
        node = await self._taint(node)
        deadline = lifecycle_checks.termination_deadline(claim) if claim is not None else None
        if deadline is not None:
            await self.events.publish(
                node.reference(),
                events.WARNING,
                "TerminationGracePeriodExpiring",
                f"All pods will be deleted by {meta.format_time(deadline)}",
            )
        # 5. pods left to drain → force-delete those that would outlive the deadline, evict the current tier
        plan = drain.plan(state_node.pods, now=now, deadline=deadline)
        if not plan.drained:
            return await self._drain(node, claim, plan, now)
        deleted_at = node.deletion_timestamp
        if deleted_at is not None and now < deleted_at + MIN_DRAIN_TIME:
            return max(0.1, (deleted_at + MIN_DRAIN_TIME - now).total_seconds())
        claim = await self._set_condition(
            claim, Condition.DRAINED, Status.TRUE, "Drained", "", now, drained=True
        )
        # 6. volumes still attached (and the deadline not passed) → wait for them to detach
        claim, waiting = await self._volumes(node, claim, state_node.pods, deadline, now)
        if waiting is not None:
            return waiting
        # 7. the instance is not gone → delete it through the provider until it says so
        if provider_id and not await self._delete_instance(node, claim, provider_id, now):
            return INSTANCE_REQUEUE
        # 8. remove the finalizer: the Node goes, and then the NodeClaim's finalizer completes
        await self._finish(node, now)
        return None

    # -- steps -----------------------------------------------------------------------------------

    async def _instance_gone(self, provider_id: str) -> bool:
        try:
            await self.provider.get(provider_id)
        except errors.NodeClaimNotFoundError:
            return True
        return False

    async def _taint(self, node: NodePart) -> NodePart:
        """The Node tainted ``nodesmith.io/disrupted:NoSchedule`` (and excluded from load balancers), as
        the API server answered the patch; ``node`` itself when it already carries the taint."""
        if any(
            t.key == labels.TAINT_DISRUPTED and t.effect == meta.TaintEffect.NO_SCHEDULE for t in node.taints
        ):
            return node
        # the patch replaces the list: keep every other entry exactly as the API server holds it
        raw = (node.object.get("spec") or {}).get("taints") or ()
        wanted = [t for t in raw if t.get("key") != labels.TAINT_DISRUPTED]
        wanted.append({"key": labels.TAINT_DISRUPTED, "effect": "NoSchedule"})
        answer = await self.kube.merge_patch(
            resources.NODES,
            node.name,
            {"metadata": {"labels": {EXCLUDE_FROM_LB_LABEL: "nodesmith"}}, "spec": {"taints": wanted}},
            resource_version=node.resource_version,
        )
        return parse_node(answer)

    async def _drain(
        self,
        node: NodePart,
        claim: api_nodeclaim.NodeClaim | None,
        plan: drain.DrainPlan[PodView],
        now: dt.datetime,
    ) -> float:
        node_name = node.name
        waiting = {p.uid for p in plan.waiting}
        for key in [k for k in self._backoff if k[0] == node_name and k[1] not in waiting]:
            del self._backoff[key]
        due = [p for p in plan.evict if self._backoff.get((node_name, p.uid), (0, now))[1] <= now]
        limiter = anyio.CapacityLimiter(self.eviction_concurrency)

        async def limited(call: Callable[[], typing.Awaitable[None]]) -> None:
            async with limiter:
                await call()

        async with anyio.create_task_group() as group:
            for forced in plan.force_delete:
                group.start_soon(limited, functools.partial(self._force_delete, node, forced, now))
            for pod in due:
                group.start_soon(limited, functools.partial(self._evict, node, pod, now))
        await self._set_condition(
            claim,
            Condition.DRAINED,
            Status.UNKNOWN,
            "Draining",
            f"{len(plan.waiting)} pods are waiting to be evicted",
            now,
        )
        pending = [until for (n, _), (_, until) in self._backoff.items() if n == node_name]
        soonest = min(pending, default=now + dt.timedelta(seconds=DRAIN_REQUEUE))
        return max(EVICTION_BACKOFF_MIN, min(DRAIN_REQUEUE, (soonest - now).total_seconds()))

    async def _force_delete(
        self, node: NodePart, forced: drain.ForceDelete[PodView], now: dt.datetime
    ) -> None:
        pod = forced.pod
        try:
            await self.kube.delete(
                resources.PODS,
                pod.name,
                pod.namespace,
                uid=pod.uid or None,
                grace_period_seconds=forced.grace_seconds,
            )
        except (kube_errors.NotFoundError, kube_errors.ConflictError):
            return
        except kube_errors.KubeError as err:
            log.warning("Node %s: deleting pod %s failed: %s", node.name, pod.key, err)
            return
        metrics.PODS_DRAINED.add(1, {"reason": "force_deleted"})
        await self.events.publish(
            pod.body,
            events.NORMAL,
            "Evicted",
            f"Deleted pod (grace period {forced.grace_seconds}s) to finish before the node's termination deadline",
        )

    async def _evict(self, node: NodePart, pod: PodView, now: dt.datetime) -> None:
        backoff_key = (node.name, pod.uid)
        try:
            await self.kube.evict(pod.name, pod.namespace, uid=pod.uid or None)
        except (kube_errors.NotFoundError, kube_errors.ConflictError) as err:
            metrics.PODS_EVICTION_REQUESTS.add(1, {"code": str(err.status)})
            self._backoff.pop(backoff_key, None)
            return
        except (kube_errors.TooManyRequestsError, kube_errors.ServerError) as err:
            metrics.PODS_EVICTION_REQUESTS.add(1, {"code": str(err.status)})
            failures = self._backoff.get(backoff_key, (0, now))[0] + 1
            delay = min(EVICTION_BACKOFF_MAX, EVICTION_BACKOFF_MIN * 2 ** (failures - 1))
            self._backoff[backoff_key] = (failures, now + dt.timedelta(seconds=delay))
            await self.events.publish(
                node.reference(),
                events.WARNING,
                "FailedDraining",
                f"Failed to evict pod {pod.key}: {err.message}",
            )
            return
        except kube_errors.KubeError as err:
            metrics.PODS_EVICTION_REQUESTS.add(1, {"code": str(err.status)})
            log.warning("Node %s: evicting pod %s failed: %s", node.name, pod.key, err)
            return
        metrics.PODS_EVICTION_REQUESTS.add(1, {"code": "200"})
        metrics.PODS_DRAINED.add(1, {"reason": "evicted"})
        self._backoff.pop(backoff_key, None)
        await self.events.publish(pod.body, events.NORMAL, "Evicted", "Evicted pod: its node is terminating")

    async def _volumes(
        self,
        node: NodePart,
        claim: api_nodeclaim.NodeClaim | None,
        pods: typing.Sequence[PodView],
        deadline: dt.datetime | None,
        now: dt.datetime,
    ) -> tuple[api_nodeclaim.NodeClaim | None, float | None]:
        """The NodeClaim as written, and ``None`` when termination may go on, else seconds to wait."""
        snapshot = self.state.snapshot()
        attached = drain.volume_attachments_to_wait_for(
            snapshot.volume_attachments_on(node.name), pods, snapshot.pvcs
        )
        if not attached:
            claim = await self._set_condition(
                claim, Condition.VOLUMES_DETACHED, Status.TRUE, "VolumesDetached", "", now
            )
            return claim, None
        if deadline is not None and now >= deadline:
            claim = await self._set_condition(
                claim,
                Condition.VOLUMES_DETACHED,
                Status.FALSE,
                "TerminationGracePeriodElapsed",
                f"{len(attached)} volume attachments left after the termination grace period",
                now,
            )
            return claim, None
        message = f"Awaiting deletion of {len(attached)} VolumeAttachments bound to node"
        await self.events.publish(node.reference(), events.NORMAL, "AwaitingVolumeDetachment", message)
        claim = await self._set_condition(
            claim, Condition.VOLUMES_DETACHED, Status.FALSE, "AwaitingVolumeDetachment", message, now
        )
        return claim, VOLUME_REQUEUE

    async def _delete_instance(
        self, node: NodePart, claim: api_nodeclaim.NodeClaim | None, provider_id: str, now: dt.datetime
    ) -> bool:
        """Ask the provider to delete the instance; ``True`` once it says it is gone."""
        target = claim if claim is not None else self._stand_in(node, provider_id)
        try:
            await self.provider.delete(target)
        except errors.NodeClaimNotFoundError:
            return True
        await self._set_condition(
            claim, Condition.INSTANCE_TERMINATING, Status.TRUE, "InstanceTerminating", "", now
        )
        return False

    def _stand_in(self, node: NodePart, provider_id: str) -> api_nodeclaim.NodeClaim:
        """A minimal NodeClaim naming the instance, for a Node whose NodeClaim is already gone."""
        kinds = self.provider.supported_node_classes()
        ref = meta.NodeClassRef(kinds[0].group, kinds[0].kind, "") if kinds else meta.NodeClassRef("", "", "")
        return api_nodeclaim.NodeClaim(
            metadata=meta.ObjectMeta(name=node.name),
            spec=api_nodeclaim.NodeClaimSpec(node_class_ref=ref),
            status=api_nodeclaim.NodeClaimStatus(provider_id=provider_id),
        )

    async def _finish(self, node: NodePart, now: dt.datetime) -> None:
        await lifecycle_writes.remove_finalizer(
            self.kube, resources.NODES, node.name, node.finalizers, node.resource_version
        )
        self._forget(node.name)
        pool = {"nodepool": node.labels.get(labels.LABEL_NODEPOOL, "")}
        metrics.NODES_TERMINATED.add(1, pool)
        for since, histogram in (
            (node.deletion_timestamp, metrics.NODES_TERMINATION_DURATION),
            (node.creation_timestamp, metrics.NODES_LIFETIME_DURATION),
        ):
            if since is not None:
                histogram.record(max(0.0, (now - since).total_seconds()), pool)
        log.info("Node %s terminated", node.name)

    # -- helpers ---------------------------------------------------------------------------------

    async def _set_condition(
        self,
        claim: api_nodeclaim.NodeClaim | None,
        condition_type: str,
        status: Status,
        reason: str,
        message: str,
        now: dt.datetime,
        *,
        drained: bool = False,
    ) -> api_nodeclaim.NodeClaim | None:
        """Set a condition on the NodeClaim (if there is one) and write it when that changed anything."""
        if claim is None:
            return None
        updated = claim.with_condition(condition_type, status, now=now, reason=reason, message=message)
        if updated.status == claim.status:
            return claim
        if drained:
            metrics.NODES_DRAINED.add(1, {"nodepool": claim.nodepool_name or ""})
        return await lifecycle_writes.write_nodeclaim(self.kube, claim, updated)

    def _forget(self, node_name: str) -> None:
        for key in [k for k in self._backoff if k[0] == node_name]:
            del self._backoff[key]
