"""``nodeclaim.lifecycle``: takes a NodeClaim from creation to an initialized Node -- finalizer, launch,
registration, initialization -- and deletes it when it does not get there in time (liveness).

Fed by the cluster state: `statepoll` enqueues a NodeClaim whenever it or its Node changes; the NodeClaim
and its Node (joined by providerID, as the state parsed it: `statenode.NodePart`) are read from the state,
never from the API. Writes: the provider's
``create``; NodeClaim metadata and status (`lifecycle_writes`, guarded by resourceVersion); the Node's
registration (labels, taints, owner reference, finalizer) and initialized label; NodeClaim deletion on
insufficient capacity or liveness timeout; events and ``nodesmith_nodeclaims_*``/``nodesmith_nodes_created``
metrics. Decisions (hydration, the registration patch, initialization, liveness) are the pure functions of
`lifecycle_checks`. A deleting NodeClaim is `nodeclaim_termination`'s business, not this one's.

Karpenter's ``pkg/controllers/nodeclaim/lifecycle`` (spec §3), with one deliberate difference: a NodeClass
that is not ready sets ``Launched=False`` and retries with backoff (liveness still deletes the NodeClaim
after `lifecycle_checks.LAUNCH_TIMEOUT`) instead of deleting the NodeClaim at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import typing
from typing import Final

import anyio
import anyio.abc
import attrs

from nodesmith import errors, metrics
from nodesmith.api import conditions, labels
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.clock import Clock
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import events, resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import lifecycle_checks, lifecycle_writes, statepoll
from nodesmith.state import capacity_backoff
from nodesmith.state.changes import Change
from nodesmith.state.cluster import ClusterState
from nodesmith.state.statenode import NodePart

__all__ = ["LAUNCH_CACHE_TTL", "WORKERS", "LifecycleReconciler"]

log = logging.getLogger(__name__)

Condition = conditions.ConditionType
Status = conditions.ConditionStatus

LAUNCH_CACHE_TTL: Final = dt.timedelta(hours=1)
"""How long a launch result is remembered by NodeClaim UID (so a failed status write never launches twice)."""
MAX_LAUNCH_BACKOFF: Final = 60.0
WORKERS: Final = 64
"""NodeClaims reconciled at once. A pass is a handful of sequential API round trips (finalizer, launch,
status, registration), so a burst of NodeClaims waits in the queue for a worker far longer than any one
pass takes: with 16, 200 NodeClaims took a median 16 s from creation to launch. Karpenter runs at least
1,000 (``nodeclaim/lifecycle/controller.go``); this many keeps the kube client's connection pool (100,
shared with the informers' watches and the other reconcilers) from being the queue instead."""
EVENT_WRITERS: Final = 16
"""Events written at once in the background while running (`LifecycleReconciler._publish`)."""
LIVENESS_MESSAGES: Final = {
    "launch_timeout": f"not launched within {lifecycle_checks.LAUNCH_TIMEOUT}",
    "registration_timeout": f"no Node registered within {lifecycle_checks.REGISTRATION_TIMEOUT}",
}


_Note = tuple[str, str]
"""A Normal event about the NodeClaim, (reason, message), published once its pass has written the status."""


@attrs.frozen(slots=True)
class _Launch:
    """What the launch step produced: the claim to continue with, or ``None`` when it is done for this
    pass (deleted, or failed and recorded), with ``requeue``."""

    claim: api_nodeclaim.NodeClaim | None
    requeue: float | None = None


@typing.final
@attrs.define(eq=False)
class LifecycleReconciler:
    """Per NodeClaim; see the module docstring."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    events: EventRecorder
    clock: Clock
    workers: int = WORKERS
    poll_interval: float = statepoll.DEFAULT_INTERVAL
    _launches: dict[str, tuple[api_nodeclaim.NodeClaim, dt.datetime]] = attrs.field(init=False, factory=dict)
    _launch_failures: dict[str, int] = attrs.field(init=False, factory=dict)
    _deleted: dict[str, dt.datetime] = attrs.field(init=False, factory=dict)
    """NodeClaim UID → until when to ignore it: deleted by this reconciler, though the state may not show it
    yet. Without this, a pass queued before the deletion reached the state would launch the claim again."""
    backoff: capacity_backoff.CapacityBackoff = attrs.field(
        kw_only=True, factory=capacity_backoff.CapacityBackoff
    )
    """Where insufficient-capacity failures and successful launches are counted per NodePool (shared with
    the provisioner and ``nodepool.status``)."""
    feed: statepoll.Feed[str] = attrs.field(init=False)
    _background: tuple[anyio.abc.TaskGroup, anyio.CapacityLimiter] | None = attrs.field(
        init=False, default=None
    )
    """Where `run` writes events, and how many at once; ``None`` when passes are driven one by one."""

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
        return "nodeclaim.lifecycle"

    async def run(self) -> None:
        """Reconcile NodeClaims as they change, until cancelled. While running, events are written in the
        background (`_publish`)."""
        async with anyio.create_task_group() as group:
            self._background = (group, anyio.CapacityLimiter(EVENT_WRITERS))
            try:
                await self.feed.run()
            finally:
                self._background = None

    async def reconcile(self, name: str) -> float | None:
        """One pass over the NodeClaim ``name``; returns seconds to requeue after, or ``None``."""
        return await statepoll.settle(self._reconcile, name)

    async def _reconcile(self, name: str) -> float | None:
        claim = self._nodeclaim(name)
        now = self.clock.now()
        self._deleted = {uid: until for uid, until in self._deleted.items() if until > now}
        # 1. gone, or being deleted → nothing to do here (nodeclaim.termination finalizes it)
        if claim is None or claim.deleting or (claim.metadata.uid or claim.name) in self._deleted:
            return None
        # 2. no finalizer → add it before anything else: never launch without it
        if labels.FINALIZER_TERMINATION not in claim.metadata.finalizers:
            with_finalizer = attrs.evolve(
                claim,
                metadata=attrs.evolve(
                    claim.metadata, finalizers=(*claim.metadata.finalizers, labels.FINALIZER_TERMINATION)
                ),
            )
            claim = await lifecycle_writes.write_nodeclaim(self.kube, claim, with_finalizer)
        # 3. not launched / not registered in time → delete; the provisioner tries again
        verdict = lifecycle_checks.liveness(claim, now)
        if verdict.reason is not None:
            await self._delete(claim, verdict.reason, LIVENESS_MESSAGES[verdict.reason])
            return None
        # 4. not launched → launch (insufficient capacity → delete; other failures → condition + backoff);
        #    the launch is written with the rest of this pass (step 7): one metadata patch and one status
        #    write per pass, not one for the launch and another for the Registered condition it leads to
        before = claim
        launched = False
        if not claim.is_true(Condition.LAUNCHED):
            launch = await self._launch(claim, now)
            if launch.claim is None:
                return launch.requeue
            claim, launched = launch.claim, True
        # 5. launched, not registered → register once the Node with its providerID exists
        # 6. registered, not initialized → initialize once the Node is ready (next pass if it just registered)
        #    A failed Node write after a launch still lets step 7 write the launch (as Karpenter patches the
        #    status whatever its sub-reconcilers returned): the synced gate waits for that providerID.
        failed: kube_errors.KubeError | None = None
        notes: list[_Note] = []
        try:
            claim = await self._register_and_initialize(claim, now, notes)
        except kube_errors.KubeError as err:
            if not launched:
                raise
            failed = err
        # 7. write what changed; requeue for the liveness deadline while not registered (Node and
        #    NodeClaim changes, such as the writes just made, requeue sooner through the state poll)
        try:
            written = await lifecycle_writes.write_nodeclaim(self.kube, before, claim)
        except kube_errors.NotFoundError:
            if launched:
                await self._abandon_launch(claim, "gone")
                return None
            raise
        except kube_errors.ConflictError:
            # a 409 may be the deletion itself (the finalizer keeps the NodeClaim, deletionTimestamp bumps
            # its resourceVersion): then no later pass writes the providerID, nodeclaim.termination releases
            # it without touching the instance, and the instance would leak
            if launched and await self._deleted_since(claim):
                await self._abandon_launch(claim, "marked for deletion")
                return None
            raise  # changed for another reason: requeue, the next pass writes the remembered launch
        if launched:
            metrics.NODECLAIMS_LAUNCHED.add(1, {"nodepool": claim.nodepool_name or ""})
            metrics.NODECLAIMS_LAUNCH_BACKOFF.put(0.0, {"nodepool": claim.nodepool_name or ""})
            await self._publish(written, events.NORMAL, "Launched", f"Launched {claim.status.provider_id}")
        for reason, message in notes:  # told once the conditions they announce are written
            await self._publish(written, events.NORMAL, reason, message)
        if failed is not None:
            raise failed
        check_at = lifecycle_checks.liveness(claim, now).check_at
        return None if check_at is None else max(0.0, (check_at - now).total_seconds())

    # -- reads -----------------------------------------------------------------------------------

    def _nodeclaim(self, name: str) -> api_nodeclaim.NodeClaim | None:
        key = self.state.key_for_nodeclaim(name)
        state_node = self.state.state_node(key) if key is not None else None
        return state_node.nodeclaim if state_node is not None else None

    def _node_for(self, claim: api_nodeclaim.NodeClaim) -> NodePart | None:
        if not claim.status.provider_id:
            return None
        state_node = self.state.state_node(claim.status.provider_id)
        return state_node.node if state_node is not None else None

    # -- steps -----------------------------------------------------------------------------------

    async def _launch(self, claim: api_nodeclaim.NodeClaim, now: dt.datetime) -> _Launch:
        uid = claim.metadata.uid or claim.name
        self._launches = {k: v for k, v in self._launches.items() if v[1] > now}
        cached = self._launches.get(uid)
        if cached is not None:
            launched = cached[0]
        else:
            try:
                launched = await self.provider.create(claim)
            except errors.InsufficientCapacityError as err:
                await self._publish(
                    claim, events.WARNING, "InsufficientCapacityError", f"NodeClaim {claim.name} event: {err}"
                )
                self._record_insufficient_capacity(claim, err, now)
                await self._delete(claim, "insufficient_capacity", str(err))
                return _Launch(None)
            except errors.NodeClassNotReadyError as err:
                return await self._launch_failed(claim, now, Status.FALSE, "NodeClassNotReady", str(err))
            except errors.CreateError as err:
                return await self._launch_failed(claim, now, Status.UNKNOWN, err.reason, err.message)
            except errors.NodesmithError as err:
                return await self._launch_failed(claim, now, Status.UNKNOWN, "LaunchFailed", str(err))
            self._launches[uid] = (launched, now + LAUNCH_CACHE_TTL)
        self._launch_failures.pop(uid, None)
        hydrated = lifecycle_checks.hydrate(claim, launched).with_condition(Condition.LAUNCHED, True, now=now)
        launched_type = hydrated.metadata.labels.get(labels.LABEL_CAPACITY_TYPE)
        if claim.nodepool_name and launched_type:
            self.backoff.record_success(claim.nodepool_name, launched_type)
        return _Launch(hydrated)

    async def _deleted_since(self, claim: api_nodeclaim.NodeClaim) -> bool:
        """Whether ``claim`` is gone from the API, replaced, or being deleted (read now, not from the state)."""
        try:
            current = api_nodeclaim.NodeClaim.from_dict(await self.kube.get(resources.NODECLAIMS, claim.name))
        except kube_errors.NotFoundError:
            return True
        replaced = claim.metadata.uid is not None and current.metadata.uid != claim.metadata.uid
        return current.deleting or replaced

    async def _abandon_launch(self, hydrated: api_nodeclaim.NodeClaim, how: str) -> None:
        """The NodeClaim was deleted while its launch was in flight: nothing would ever terminate this
        instance but the garbage collector minutes later (or never, if the daemon stops first), so
        terminate it now."""
        log.info(
            "NodeClaim %s was deleted during its launch (%s); terminating %s",
            hydrated.name,
            how,
            hydrated.status.provider_id,
        )
        self._launches.pop(hydrated.metadata.uid or hydrated.name, None)
        with contextlib.suppress(errors.NodeClaimNotFoundError):
            await self.provider.delete(hydrated)

    def _record_insufficient_capacity(
        self, claim: api_nodeclaim.NodeClaim, err: errors.InsufficientCapacityError, now: dt.datetime
    ) -> None:
        """Count the failure against the capacity types it covered, which may back the NodePool off: those
        of the failed offerings the provider reported, else the NodeClaim's only capacity type. A provider
        that does not say which of several capacity types failed counts against none (its own memory of
        failed offerings still steers the next launch), so a spot shortage never backs off on-demand."""
        if not claim.nodepool_name:
            return
        allowed = claim.requirements.get(labels.LABEL_CAPACITY_TYPE)
        covered = {capacity_type for _, _, capacity_type in err.offerings} or {
            capacity_type for capacity_type in capacity_backoff.CAPACITY_TYPES if allowed.has(capacity_type)
        }
        if not err.offerings and len(covered) != 1:
            return
        for backoff in self.backoff.record_failure(claim.nodepool_name, covered, str(err)[:256], now):
            log.warning("nodepool %s: %s", backoff.nodepool, backoff.message())

    async def _launch_failed(
        self, claim: api_nodeclaim.NodeClaim, now: dt.datetime, status: Status, reason: str, message: str
    ) -> _Launch:
        uid = claim.metadata.uid or claim.name
        failures = self._launch_failures[uid] = self._launch_failures.get(uid, 0) + 1
        log.info("launching NodeClaim %s failed (%s): %s", claim.name, reason, message)
        updated = claim.with_condition(
            Condition.LAUNCHED, status, now=now, reason=reason, message=message[:1024]
        )
        await lifecycle_writes.write_nodeclaim(self.kube, claim, updated)
        await self._publish(claim, events.WARNING, "FailedLaunch", f"{reason}: {message}")
        delay = min(MAX_LAUNCH_BACKOFF, 2.0 ** (failures - 1))
        metrics.NODECLAIMS_LAUNCH_BACKOFF.put(delay, {"nodepool": claim.nodepool_name or ""})
        return _Launch(None, delay)

    async def _register_and_initialize(
        self, claim: api_nodeclaim.NodeClaim, now: dt.datetime, notes: list[_Note]
    ) -> api_nodeclaim.NodeClaim:
        """Steps 5 and 6; the events they lead to are added to ``notes``, for after the status write."""
        registered_now = False
        if not claim.is_true(Condition.REGISTERED):
            claim, registered_now = await self._register(claim, now, notes)
        if (
            claim.is_true(Condition.REGISTERED)
            and not claim.is_true(Condition.INITIALIZED)
            and not registered_now
        ):
            claim = await self._initialize(claim, now, notes)
        return claim

    async def _register(
        self, claim: api_nodeclaim.NodeClaim, now: dt.datetime, notes: list[_Note]
    ) -> tuple[api_nodeclaim.NodeClaim, bool]:
        node = self._node_for(claim)
        if node is None:
            waiting = claim.with_condition(
                Condition.REGISTERED,
                Status.UNKNOWN,
                now=now,
                reason="NodeNotFound",
                message="Node not registered with cluster",
            )
            return waiting, False
        node_name = node.name
        if (
            not lifecycle_checks.has_unregistered_taint(node)
            and node.labels.get(labels.LABEL_REGISTERED) != "true"
        ):
            await self._publish(
                node.reference(),
                events.WARNING,
                "UnregisteredTaintMissing",
                f"Missing {labels.TAINT_UNREGISTERED}:NoExecute taint, which prevents registration related race conditions",
            )
        await self.kube.merge_patch(
            resources.NODES,
            node_name,
            lifecycle_checks.registration_patch(node, claim),
            resource_version=node.resource_version,
        )
        registered = attrs.evolve(claim, status=attrs.evolve(claim.status, node_name=node_name))
        registered = registered.with_condition(Condition.REGISTERED, True, now=now)
        pool = {"nodepool": claim.nodepool_name or ""}
        metrics.NODES_CREATED.add(1, pool)
        metrics.NODECLAIMS_REGISTERED.add(1, pool)
        notes.append(
            (
                "Registered",
                f"Status condition transitioned, Type: Registered, Status: True, Node: {node_name}",
            )
        )
        return registered, True

    async def _initialize(
        self, claim: api_nodeclaim.NodeClaim, now: dt.datetime, notes: list[_Note]
    ) -> api_nodeclaim.NodeClaim:
        node = self._node_for(claim)
        if node is None:
            return claim.with_condition(
                Condition.INITIALIZED,
                Status.UNKNOWN,
                now=now,
                reason="NodeNotFound",
                message="Node not registered with cluster",
            )
        blocker = lifecycle_checks.initialization_blocker(node, claim)
        if blocker is not None:
            reason, message = blocker
            return claim.with_condition(
                Condition.INITIALIZED, Status.UNKNOWN, now=now, reason=reason, message=message
            )
        if node.labels.get(labels.LABEL_INITIALIZED) != "true":
            await self.kube.merge_patch(
                resources.NODES,
                node.name,
                {"metadata": {"labels": {labels.LABEL_INITIALIZED: "true"}}},
            )
        metrics.NODECLAIMS_INITIALIZED.add(1, {"nodepool": claim.nodepool_name or ""})
        notes.append(("Initialized", "Status condition transitioned, Type: Initialized, Status: True"))
        return claim.with_condition(Condition.INITIALIZED, True, now=now)

    # -- helpers ---------------------------------------------------------------------------------

    async def _delete(self, claim: api_nodeclaim.NodeClaim, reason: str, message: str) -> None:
        """Delete the NodeClaim (its finalizer then cleans up); ``reason`` labels the metric."""
        log.info("deleting NodeClaim %s: %s (%s)", claim.name, reason, message)
        try:
            await self.kube.delete(resources.NODECLAIMS, claim.name, uid=claim.metadata.uid)
        except kube_errors.NotFoundError:
            return
        self._deleted[claim.metadata.uid or claim.name] = self.clock.now() + LAUNCH_CACHE_TTL
        metrics.NODECLAIMS_DISRUPTED.add(1, {"reason": reason, "nodepool": claim.nodepool_name or ""})
        if reason != "insufficient_capacity":
            await self._publish(
                claim, events.WARNING, "Disrupted", f"Deleting NodeClaim: {message} ({reason})"
            )

    async def _publish(
        self,
        obj: api_nodeclaim.NodeClaim | typing.Mapping[str, typing.Any],
        kind: str,
        reason: str,
        message: str,
    ) -> None:
        """Record an event. While `run` runs, it is written in the background, as Karpenter's recorder
        writes: no decision reads an event and the recorder never raises, so a pass need not wait for that
        round trip, and its worker is free for the next NodeClaim. Passes driven one by one (tests) write
        it before they return."""
        involved = obj.to_dict() if isinstance(obj, api_nodeclaim.NodeClaim) else obj
        if self._background is None:
            await self.events.publish(involved, kind, reason, message)
            return
        group, writers = self._background

        async def write() -> None:
            async with writers:
                await self.events.publish(involved, kind, reason, message)

        group.start_soon(write)
