"""The provisioner: pods the scheduler cannot place become right-sized NodeClaims (spec 2.1-2.2, 2.11).

A singleton loop. It hears of provisionable pods through the cluster state's subscription, batches them
(Karpenter's window: 1 s idle, 10 s max), waits for the synced gate, snapshots the state, reads instance
types per NodePool from the provider (through the plugins' adjusters) less the capacity types of pools
backed off for want of capacity (`nodesmith.state.capacity_backoff`), runs the pure scheduling engine in a
worker thread with a one-minute deadline, and writes the decision: NodeClaims created (and inserted into
the state at once, so the next batch cannot launch them twice), existing nodes nominated, ``Nominated`` and
``FailedScheduling`` (and, for pods sent past a backed-off pool, ``NodePoolBackedOff``) events on the
pods. ``Nominated`` events pass a token bucket shared across runs (Karpenter's pod-nomination rate limiter:
5 a second, bursts of 10; the rest are dropped), because one event per pod would cost the API server as
many writes as the pods themselves and hold the next batch until they are written. The last decision is kept for ``explain`` and handed to the plugins' decision observers.

It never binds pods: kube-scheduler does, once the new node is Ready.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio
import attrs
from opentelemetry import trace

from nodesmith import metrics
from nodesmith.api import labels, nodeclaim, quantity
from nodesmith.api import nodepool as api_nodepool
from nodesmith.clock import Clock
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers.queues import Batcher
from nodesmith.scheduling import defaultspread, results, scheduler
from nodesmith.state import capacity_backoff, simulation
from nodesmith.state.changes import Change
from nodesmith.state.cluster import ClusterState
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.views import PodView

__all__ = ["Decision", "Provisioner", "TokenBucket"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("nodesmith")

SOLVE_TIMEOUT: Final = 60.0
"""Seconds a scheduling run may take before it returns what it decided so far (Karpenter: 1 minute)."""
RECHECK_INTERVAL: Final = 10.0
"""Seconds between looks for pending pods when nothing triggered (a NodePool became ready, say)."""
CREATE_CONCURRENCY: Final = 64
"""NodeClaim creates (and events) in flight at once. Karpenter creates a batch's NodeClaims all in parallel
(``provisioner.go`` ``CreateNodeClaims``); each create is one round trip, and the synced gate holds the next
batch until they are written and launched, so 16 at a time made a 115-NodeClaim batch take 9 s to write.
Bounded by the kube client's connection pool (100, shared with the informers' watches) rather than the
batch size, so a batch of thousands does not queue for connections past the request timeout."""
NOMINATION_EVENTS_PER_SECOND: Final = 5.0
NOMINATION_EVENTS_BURST: Final = 10


@attrs.define
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` banked; `try_take` never waits (what it refuses is
    dropped, like client-go's ``TryAccept``). Time is read from the injected clock."""

    rate: float
    burst: int
    clock: Clock
    _tokens: float = attrs.field(init=False)
    _at: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._at = self.clock.monotonic()

    def try_take(self) -> bool:
        now = self.clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@attrs.frozen(slots=True)
class Decision:
    """One provisioning run, as ``explain`` and decision observers see it."""

    at: dt.datetime
    pods: int
    results: results.Results
    created: tuple[str, ...]
    """Names of the NodeClaims created."""
    skipped_nodepools: Mapping[str, str]
    """NodePool → why it took no part (NodeClass not ready, limits exceeded, ...)."""
    duration: float
    pod_names: Mapping[str, str] = attrs.field(factory=dict)
    """Pod UID → ``namespace/name``, so a record names the pods it could not place."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "provisioning",
            "at": self.at.isoformat(),
            "pods": self.pods,
            "nodeclaims": [
                {
                    "name": name,
                    "nodepool": claim.nodepool,
                    "pods": len(claim.pods),
                    "instance_types": len(claim.instance_types),
                }
                for name, claim in zip(self.created, self.results.new_nodeclaims, strict=False)
            ],
            "unschedulable": {
                self.pod_names.get(uid, uid): error.message()
                for uid, error in self.results.pod_errors.items()
            },
            "skipped_nodepools": dict(self.skipped_nodepools),
            "duration_seconds": round(self.duration, 4),
        }


@attrs.define
class Provisioner:
    """Singleton provisioning loop; build through ``controllers.build``."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    plugins: manager.Plugins
    events: EventRecorder
    clock: Clock
    batch_idle: dt.timedelta
    batch_max: dt.timedelta
    name: str = "provisioner"
    backoff: capacity_backoff.CapacityBackoff = attrs.field(factory=capacity_backoff.CapacityBackoff)
    """NodePools backed off for want of capacity (fed by the NodeClaim lifecycle)."""
    default_spread: defaultspread.DefaultSpread | None = None
    """The kube-scheduler's cluster-default spread, for pods without constraints of their own."""
    last_decision: Decision | None = attrs.field(init=False, default=None)
    _batcher: Batcher = attrs.field(init=False)
    _nominations: TokenBucket = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._batcher = Batcher(
            self.batch_idle.total_seconds(), self.batch_max.total_seconds(), clock=self.clock
        )
        self._nominations = TokenBucket(NOMINATION_EVENTS_PER_SECOND, NOMINATION_EVENTS_BURST, self.clock)

    def on_change(self, change: Change) -> None:
        """Subscribed to the cluster state by the composition root: a provisionable pod, or a NodePool or
        NodeClaim gone, starts (or extends) a batch -- once per object and window (`Batcher`)."""
        if change.resource == resources.PODS and not change.deleted:
            pod = self.state.pod(change.key)
            if pod is not None and pod.provisionable:
                self._batcher.trigger((change.resource, pod.uid))
        elif change.resource in (resources.NODEPOOLS, resources.NODECLAIMS) and change.deleted:
            self._batcher.trigger((change.resource, change.key))

    async def run(self) -> None:
        """Batch, then provision; repeat until cancelled. One failed run is logged and retried."""
        last_check = -RECHECK_INTERVAL
        while True:
            triggered = await self._batcher.wait()
            if not triggered and self.clock.monotonic() - last_check < RECHECK_INTERVAL:
                continue
            last_check = self.clock.monotonic()
            try:
                with tracer.start_as_current_span("provisioner.reconcile"):
                    await self.reconcile()
            except Exception:
                log.exception("provisioning run failed")
                metrics.RECONCILE_ERRORS.add(1, {"reconciler": self.name})
                await self.clock.sleep(1)

    async def reconcile(self) -> Decision | None:
        """One provisioning run. Returns the decision, or ``None`` when there was nothing to do."""
        # 1. Not synced (a NodeClaim we created has no providerID yet) → wait; launching now could double up.
        gate_at = self.clock.monotonic()
        synced_by = gate_at + 30
        while not self.state.synced() and self.clock.monotonic() < synced_by:
            await self.clock.sleep(0.1)
        if not self.state.synced():
            log.info("cluster state not synced; postponing provisioning")
            return None
        # 2. Snapshot the nodes before the pods, so a pod bound meanwhile is seen bound (under-provision).
        snapshot = self.state.snapshot()
        pods = simulation.provisioning_pods(snapshot)
        metrics.SCHEDULER_QUEUE_DEPTH.put(len(pods), {})
        if not pods:
            metrics.PODS_UNSCHEDULABLE.put(0, {})
            return None
        started = self.clock.monotonic()
        synced_wait = started - gate_at
        # 3. Instance types per usable NodePool; a pool whose NodeClass is not ready sits this run out.
        instance_types, skipped = await self.plugins.instance_types(
            self.provider, simulation.usable_nodepools(snapshot)
        )
        # 4. A NodePool backed off for want of capacity: its backed-off capacity types are excluded, so the
        #    pods go to the next NodePool by weight (a pool left with nothing to offer sits this run out).
        backoffs = self.backoff.active(self.clock.now())
        instance_types = capacity_backoff.restrict(instance_types, backoffs)
        for backoff in backoffs:
            if not any(it.available_offerings() for it in instance_types.get(backoff.nodepool, ())):
                skipped = {**skipped, backoff.nodepool: backoff.message()}
        # 5. Solve off the event loop, bounded by a deadline.
        sim_input = simulation.scheduling_input(
            snapshot, [p.body for p in pods], instance_types, self.default_spread
        )
        deadline_at = self.clock.monotonic() + SOLVE_TIMEOUT
        outcome = await anyio.to_thread.run_sync(
            lambda: scheduler.solve(sim_input, deadline=lambda: self.clock.monotonic() > deadline_at)
        )
        solved = self.clock.monotonic()
        metrics.SCHEDULING_DURATION.record(solved - started)
        # 6. Write: NodeClaims, nominations, events.
        created = await self._create_nodeclaims(outcome.new_nodeclaims, snapshot)
        self._nominate_existing(outcome, snapshot)
        await self._publish_events(outcome, created, pods, backoffs)
        decision = Decision(
            self.clock.now(),
            len(pods),
            outcome,
            tuple(created),
            skipped,
            self.clock.monotonic() - started,
            {pod.uid: pod.key for pod in pods if pod.uid in outcome.pod_errors},
        )
        self.last_decision = decision
        self.plugins.observe_decision(decision.to_dict())
        log.info(
            "provisioned",
            extra={
                "pods": len(pods),
                "nodeclaims": len(created),
                "unschedulable": len(outcome.pod_errors),
                "seconds": round(decision.duration, 3),
                # where a run's time went: held by the synced gate, solving, writing
                "synced_wait": round(synced_wait, 3),
                "solve": round(solved - started, 3),
                "write": round(self.clock.monotonic() - solved, 3),
            },
        )
        return decision

    async def _create_nodeclaims(
        self, claims: Sequence[results.NewNodeClaim], snapshot: Snapshot
    ) -> list[str]:
        names: list[str | None] = [None] * len(claims)
        launched_per_pool: dict[str, int] = {}
        limiter = anyio.CapacityLimiter(CREATE_CONCURRENCY)

        async def create(index: int, claim: results.NewNodeClaim) -> None:
            pool = snapshot.nodepools.get(claim.nodepool)
            if pool is None:
                return
            # Re-check limits (Karpenter: refuse once usage already exceeds a limit).
            used = quantity.add(
                snapshot.nodepool_resources(pool.name), {"nodes": 1000 * launched_per_pool.get(pool.name, 0)}
            )
            exceeded = [name for name, limit in pool.spec.limits.items() if used.get(name, 0) > limit]
            if exceeded:
                log.info("nodepool %s is over its limits (%s); not launching", pool.name, ", ".join(exceeded))
                return
            launched_per_pool[pool.name] = launched_per_pool.get(pool.name, 0) + 1
            async with limiter:
                try:
                    obj = await self.kube.create(resources.NODECLAIMS, nodeclaim_object(claim, pool))
                except kube_errors.KubeError as err:
                    log.warning("creating a NodeClaim for nodepool %s failed: %s", pool.name, err)
                    return
            self.state.update_nodeclaim_created(obj)
            names[index] = obj["metadata"]["name"]
            metrics.NODECLAIMS_CREATED.add(1, {"reason": "provisioned", "nodepool": pool.name})

        async with anyio.create_task_group() as group:
            for index, claim in enumerate(claims):
                group.start_soon(create, index, claim)
        return [name for name in names if name is not None]

    def _nominate_existing(self, outcome: results.Results, snapshot: Snapshot) -> None:
        until = self.clock.now() + max(2 * self.batch_max, dt.timedelta(seconds=10))
        by_name = {n.name: n.key for n in snapshot.nodes if n.name is not None}
        for node_name, assigned in outcome.existing_node_assignments.items():
            key = by_name.get(node_name)
            if key is not None and assigned:
                self.state.nominate(key, until)

    async def _publish_events(
        self,
        outcome: results.Results,
        created: Sequence[str],
        pods: Sequence[PodView],
        backoffs: Sequence[capacity_backoff.Backoff] = (),
    ) -> None:
        # events name the pod as the API server sent it
        by_uid = {p.uid: p.body for p in pods}
        notes: list[tuple[Mapping[str, Any], str, str, str]] = []
        # Pods sent elsewhere (or nowhere) while a pool is backed off are told why they did not get it.
        elsewhere = {
            backoff: [
                *(
                    ref.uid
                    for claim in outcome.new_nodeclaims
                    if claim.nodepool != backoff.nodepool
                    for ref in claim.pods
                ),
                *outcome.pod_errors,
            ]
            for backoff in backoffs
        }
        for backoff, uids in elsewhere.items():
            message = f"NodePool {backoff.nodepool}: {backoff.message()}; trying the next NodePool by weight"
            notes += [(by_uid[uid], "Warning", "NodePoolBackedOff", message) for uid in uids if uid in by_uid]
        for name, claim in zip(created, outcome.new_nodeclaims, strict=False):
            for ref in claim.pods:
                pod = by_uid.get(ref.uid)
                if pod is not None and self._nominations.try_take():
                    notes.append((pod, "Normal", "Nominated", f"Pod should schedule on: nodeclaim/{name}"))
        for node_name, refs in outcome.existing_node_assignments.items():
            for ref in refs:
                pod = by_uid.get(ref.uid)
                if pod is not None and self._nominations.try_take():
                    notes.append((pod, "Normal", "Nominated", f"Pod should schedule on: node/{node_name}"))
        for uid, error in outcome.pod_errors.items():
            pod = by_uid.get(uid)
            if pod is not None:
                notes.append(
                    (pod, "Warning", "FailedScheduling", f"Failed to schedule pod, {error.message()}")
                )
        metrics.PODS_UNSCHEDULABLE.put(len(outcome.pod_errors), {})
        limiter = anyio.CapacityLimiter(CREATE_CONCURRENCY)

        async def publish(note: tuple[Mapping[str, Any], str, str, str]) -> None:
            async with limiter:
                pod, kind, reason, message = note
                await self.events.publish({"kind": "Pod", "apiVersion": "v1", **pod}, kind, reason, message)

        async with anyio.create_task_group() as group:
            for note in notes:
                group.start_soon(publish, note)


def nodeclaim_object(claim: results.NewNodeClaim, pool: api_nodepool.NodePool) -> dict[str, Any]:
    """The NodeClaim to create for one simulated NodeClaim of ``pool`` (spec 2.11)."""
    template = pool.spec.template
    spec = template.spec
    claim_labels = {**pool.labels, **claim.labels, **claim.requirements.labels()}
    for key in (labels.LABEL_HOSTNAME, labels.LABEL_REGISTERED, labels.LABEL_INITIALIZED):
        claim_labels.pop(key, None)
    annotations = {
        **template.annotations,
        labels.ANNOTATION_NODEPOOL_HASH: pool.hash(),
        labels.ANNOTATION_NODEPOOL_HASH_VERSION: api_nodepool.HASH_VERSION,
    }
    if claim.min_values_relaxed:
        annotations[labels.ANNOTATION_MIN_VALUES_RELAXED] = "true"
    body: dict[str, Any] = {
        "apiVersion": nodeclaim.API_VERSION,
        "kind": nodeclaim.KIND,
        "metadata": {
            "generateName": f"{pool.name}-",
            "labels": claim_labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": f"{labels.GROUP}/v1",
                    "kind": "NodePool",
                    "name": pool.name,
                    "uid": pool.metadata.uid,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "requirements": [
                r
                for r in claim.node_selector_requirements()
                if r["key"] not in (labels.LABEL_HOSTNAME, labels.LABEL_REGISTERED, labels.LABEL_INITIALIZED)
            ],
            "resources": {"requests": claim.resource_requests()},
            "nodeClassRef": {
                "group": spec.node_class_ref.group,
                "kind": spec.node_class_ref.kind,
                "name": spec.node_class_ref.name,
            },
            "expireAfter": spec.expire_after.text,
        },
    }
    if claim.taints:
        body["spec"]["taints"] = [t.to_dict() for t in claim.taints]
    if claim.startup_taints:
        body["spec"]["startupTaints"] = [t.to_dict() for t in claim.startup_taints]
    if spec.termination_grace_period is not None:
        body["spec"]["terminationGracePeriod"] = spec.termination_grace_period.text
    if not pool.metadata.uid:
        del body["metadata"]["ownerReferences"]
    return body
