"""Drive one reconciler one reconcile at a time against a real API server, as Karpenter's controller tests
do (``ExpectApplied``, ``ExpectObjectReconciled``, ``ExpectSingletonReconciled``).

The cluster state is fed by these helpers instead of informers: `expect_applied` writes an object and puts
what the API returned into the state at once, and `expect_refreshed` reads objects back after a reconcile
wrote them. So each reconcile sees exactly what the API holds, with no watch to wait for and no sleep, and
a test reads as a sequence of numbered cases: apply, reconcile, refresh, assert, step the clock, reconcile.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Mapping
from typing import Any, Protocol

import anyio

from nodesmith.api import labels, meta
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.state.cluster import ClusterState
from nodesmith.testing.clock import T0, FakeClock

__all__ = [
    "ObjectReconciler",
    "SingletonReconciler",
    "expect_applied",
    "expect_initialized_machine",
    "expect_object_reconciled",
    "expect_reconciled_stepping",
    "expect_refreshed",
    "expect_singleton_reconciled",
    "synced_state",
]

Obj = dict[str, Any]
K = typing.TypeVar("K", contravariant=True)


class ObjectReconciler(Protocol[K]):
    """A per-object reconciler: one reconcile of ``key`` returns seconds to requeue after, or ``None``."""

    async def reconcile(self, key: K, /) -> float | None: ...


class SingletonReconciler(Protocol):
    """A singleton reconciler: one pass over the whole state."""

    async def reconcile(self) -> object: ...


def synced_state(state: ClusterState) -> ClusterState:
    """Mark every informer of ``state`` as synced (no informer runs; the helpers feed the state)."""
    for resource in (resources.NODES, resources.NODECLAIMS, resources.PODS, resources.NODEPOOLS):
        state.on_synced(resource)
    return state


async def expect_applied(
    kube: KubeClient,
    state: ClusterState,
    resource: resources.Resource,
    obj: Mapping[str, Any],
    namespace: str | None = None,
) -> Obj:
    """Create ``obj`` (or replace its current version) and put the stored object into ``state``."""
    try:
        stored = await kube.create(resource, dict(obj), namespace)
    except kube_errors.AlreadyExistsError:
        name = str(obj["metadata"]["name"])
        latest = await kube.get(resource, name, namespace)
        where = {"namespace": namespace} if namespace else {}
        replacement = {**obj, "metadata": {**obj["metadata"], **where, **_version(latest)}}
        stored = await kube.replace(resource, replacement)
    state.on_upsert(resource, stored)
    return stored


def _version(obj: Mapping[str, Any]) -> dict[str, str]:
    return {"resourceVersion": str((obj.get("metadata") or {}).get("resourceVersion") or "")}


async def expect_refreshed(
    kube: KubeClient,
    state: ClusterState,
    resource: resources.Resource,
    name: str,
    namespace: str | None = None,
) -> Obj | None:
    """Read ``name`` back from the API into ``state`` (dropping it from the state if it is gone)."""
    try:
        obj = await kube.get(resource, name, namespace)
    except kube_errors.NotFoundError:
        state.on_delete(
            resource, {"metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}
        )
        return None
    state.on_upsert(resource, obj)
    return obj


async def expect_object_reconciled(reconciler: ObjectReconciler[K], key: K) -> float | None:
    """One reconcile of ``key``, as a worker of the reconciler's queue would run it; an exception fails the
    test. Returns the requested requeue delay."""
    return await reconciler.reconcile(key)


async def expect_singleton_reconciled(reconciler: SingletonReconciler) -> object:
    """One pass of a singleton reconciler (provisioner, disruption, garbage collection)."""
    return await reconciler.reconcile()


T = typing.TypeVar("T")


async def expect_reconciled_stepping(
    reconcile: typing.Callable[[], typing.Awaitable[T]], clock: FakeClock
) -> T:
    """Run ``reconcile()`` to the end, stepping ``clock`` to each deadline the subject sleeps until (a
    validation delay, a wait for the synced gate), as Karpenter's tests step the fake clock while a
    controller waits. Returns what ``reconcile()`` returned; stepped time is visible in ``clock.now()``."""
    outcome: list[T] = []
    async with anyio.create_task_group() as group:

        async def run() -> None:
            outcome.append(await reconcile())
            group.cancel_scope.cancel()

        group.start_soon(run)
        while True:
            deadline = await clock.sleeping()
            clock.step(max(0.0, deadline - clock.monotonic()))
            await anyio.lowlevel.checkpoint()
    return outcome[0]


async def expect_initialized_machine(
    kube: KubeClient,
    state: ClusterState,
    provider: CloudProvider,
    claim_name: str,
    *,
    conditions: typing.Sequence[str] = (),
    now: dt.datetime = T0,
) -> tuple[Obj, Obj]:
    """Bring the NodeClaim ``claim_name`` (already in the API) to what lifecycle, a kubelet and the
    initialization check would make of it, without waiting for any of them (Karpenter's
    ``ExpectMakeNodesAndNodeClaimsInitializedAndStateUpdated``): launched through ``provider``, its Node
    (named like the claim) registered, Ready and initialized, the NodeClaim's status Launched, Registered,
    Initialized, Ready plus ``conditions`` (say ``Consolidatable``, ``Drifted``), all read back into
    ``state``. Returns ``(node, nodeclaim)`` as stored."""
    claim = NodeClaim.from_dict(await kube.get(resources.NODECLAIMS, claim_name))
    machine = await provider.create(claim)
    provider_id = str(machine.status.provider_id)
    machine_labels = {**claim.metadata.labels, **machine.metadata.labels}
    await kube.merge_patch(resources.NODECLAIMS, claim_name, {"metadata": {"labels": machine_labels}})
    stamp = meta.format_time(now)
    types = ("Launched", "Registered", "Initialized", "Ready", *conditions)
    resources_ = machine.to_dict()["status"]
    stored_claim = await kube.update_status(
        resources.NODECLAIMS,
        claim_name,
        {
            "providerID": provider_id,
            "nodeName": claim_name,
            "capacity": resources_.get("capacity", {}),
            "allocatable": resources_.get("allocatable", {}),
            "conditions": [
                {"type": t, "status": "True", "reason": t, "message": "", "lastTransitionTime": stamp}
                for t in types
            ],
        },
    )
    node_labels = {
        **machine_labels,
        labels.LABEL_HOSTNAME: claim_name,
        labels.LABEL_REGISTERED: "true",
        labels.LABEL_INITIALIZED: "true",
    }
    await kube.create(
        resources.NODES,
        {"metadata": {"name": claim_name, "labels": node_labels}, "spec": {"providerID": provider_id}},
    )
    stored_node = await kube.update_status(
        resources.NODES,
        claim_name,
        {
            "capacity": resources_.get("capacity", {}),
            "allocatable": resources_.get("allocatable", {}),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    )
    state.on_upsert(resources.NODECLAIMS, stored_claim)
    state.on_upsert(resources.NODES, stored_node)
    return stored_node, stored_claim
