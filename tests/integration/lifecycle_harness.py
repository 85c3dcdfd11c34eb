"""Shared set-up for the lifecycle, termination, garbage-collection and NodePool-status integration tests:
a cluster state fed by real informers, the kwok provider, the reconcilers under test built around one
stepped clock that also runs in real time (so API timestamps stay comparable while a test jumps over grace
periods with ``harness.clock.step``), and small factories and waits.

Used by ``tests/integration/test_{lifecycle,termination,garbagecollection,nodepool_status}.py``; every
test opens ``async with running(kube) as harness:`` so the informers (and any reconcilers it starts) live
in the test's own task group and stop with it.
"""

from __future__ import annotations

import collections.abc
import contextlib
import datetime as dt
import typing
import uuid

import anyio
import attrs

from nodesmith.api import labels
from nodesmith.clock import SYSTEM
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import CloudProvider, ProviderContext
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import (
    controllers,
    garbagecollection,
    instrumented,
    lifecycle,
    nodeclaim_termination,
    nodepool_status,
    termination,
)
from nodesmith.state import ClusterState, Informers, capacity_backoff
from nodesmith.testing.clock import FakeClock
from nodesmith_kwok import provider as kwok_provider

Obj = dict[str, typing.Any]
T = typing.TypeVar("T")
TIMEOUT = 60.0
KWOK_GROUP = "kwok.nodesmith.io"
KWOK_KIND = "KWOKNodeClass"


@attrs.define
class Harness:
    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    events: EventRecorder
    clock: FakeClock
    group: anyio.abc.TaskGroup
    lifecycle: lifecycle.LifecycleReconciler = attrs.field(init=False)
    nodeclaim_termination: nodeclaim_termination.NodeClaimTerminationReconciler = attrs.field(init=False)
    termination: termination.TerminationReconciler = attrs.field(init=False)
    gc: garbagecollection.GarbageCollector = attrs.field(init=False)
    nodepool_status: nodepool_status.NodePoolStatusReconciler = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        args = (self.kube, self.state, self.provider, self.events, self.clock)
        backoff = capacity_backoff.CapacityBackoff()  # shared, as the composition root shares it
        self.lifecycle = lifecycle.LifecycleReconciler(*args, poll_interval=0.2, backoff=backoff)
        self.nodeclaim_termination = nodeclaim_termination.NodeClaimTerminationReconciler(
            *args, poll_interval=0.2
        )
        self.termination = termination.TerminationReconciler(*args, poll_interval=0.2)
        self.gc = garbagecollection.GarbageCollector(
            *args, interval=0.5, orphan_grace=dt.timedelta(0), launch_grace=dt.timedelta(0)
        )
        self.nodepool_status = nodepool_status.NodePoolStatusReconciler(
            self.kube, self.state, self.clock, resync=0.5, poll_interval=0.2, backoff=backoff
        )
        controllers.listen(
            self.state, [self.lifecycle, self.nodeclaim_termination, self.termination, self.nodepool_status]
        )

    def start(self, *names: str) -> None:
        """Run these reconcilers (attribute names) in the background until the harness closes."""
        for name in names:
            self.group.start_soon(getattr(self, name).run)

    async def nodeclaim(self, name: str) -> Obj | None:
        try:
            return await self.kube.get(resources.NODECLAIMS, name)
        except kube_errors.NotFoundError:
            return None

    async def node(self, name: str) -> Obj | None:
        try:
            return await self.kube.get(resources.NODES, name)
        except kube_errors.NotFoundError:
            return None


@contextlib.asynccontextmanager
async def running(kube: KubeClient) -> collections.abc.AsyncIterator[Harness]:
    clock = FakeClock(SYSTEM.now(), rate=1.0)
    state = ClusterState(clock=clock.now, node_classes=[kwok_provider.NODE_CLASSES])
    informers = Informers.for_state(kube, state, node_classes=[kwok_provider.NODE_CLASSES])
    # the kwok provider's insufficient-capacity memory runs on the same fake clock as the reconcilers
    provider = instrumented.InstrumentedProvider(
        manager.Plugins.load().cloud_provider(
            "kwok", ProviderContext(cluster_name="test", kube=kube, clock=clock)
        )
    )
    async with anyio.create_task_group() as group:
        await group.start(informers.run)
        with anyio.fail_after(TIMEOUT):
            await informers.wait_synced()
        yield Harness(kube, state, provider, EventRecorder(kube, clock=clock), clock, group)
        group.cancel_scope.cancel()


async def eventually(
    probe: collections.abc.Callable[[], collections.abc.Awaitable[T | None]],
    what: str,
    timeout: float = TIMEOUT,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds saying ``what``."""
    last: T | None = None
    try:
        with anyio.fail_after(timeout):
            while True:
                last = await probe()
                if last:
                    return last
                await anyio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; last saw {last!r}") from None


async def patch_latest(
    kube: KubeClient,
    resource: resources.Resource,
    name: str,
    patch: collections.abc.Callable[[Obj], Obj],
) -> Obj:
    """Merge-patch the latest version of ``name`` with ``patch(object)``, guarded by its resourceVersion and
    retried on a conflict: reconcilers and the kwok controller keep writing to the objects under test."""

    async def attempt() -> Obj | None:
        latest = await kube.get(resource, name)
        try:
            return await kube.merge_patch(
                resource, name, patch(latest), resource_version=latest["metadata"]["resourceVersion"]
            )
        except kube_errors.ConflictError:
            return None

    return await eventually(attempt, f"a conflict-free patch of {name}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def make_node_class(kube: KubeClient, name: str, spec: Obj | None = None) -> str:
    await kube.create(kwok_provider.NODE_CLASSES, {"metadata": {"name": name}, "spec": spec or {}})
    return name


async def delete_quietly(
    kube: KubeClient, resource: resources.Resource, name: str, namespace: str | None = None
) -> None:
    with contextlib.suppress(kube_errors.NotFoundError):
        await kube.delete(resource, name, namespace)


def nodeclaim_manifest(
    name: str,
    node_class: str,
    *,
    nodepool: str = "default",
    instance_types: collections.abc.Sequence[str] = ("c-1x-amd64-linux",),
    taints: collections.abc.Sequence[Obj] = (),
    startup_taints: collections.abc.Sequence[Obj] = (),
    termination_grace_period: str | None = None,
    extra_labels: collections.abc.Mapping[str, str] | None = None,
) -> Obj:
    spec: Obj = {
        "nodeClassRef": {"group": KWOK_GROUP, "kind": KWOK_KIND, "name": node_class},
        "requirements": [
            {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": list(instance_types)},
            {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi", "pods": "1"}},
    }
    if taints:
        spec["taints"] = list(taints)
    if startup_taints:
        spec["startupTaints"] = list(startup_taints)
    if termination_grace_period:
        spec["terminationGracePeriod"] = termination_grace_period
    return {
        "metadata": {"name": name, "labels": {labels.LABEL_NODEPOOL: nodepool, **(extra_labels or {})}},
        "spec": spec,
    }


def condition(obj: Obj | None, condition_type: str) -> Obj | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == condition_type:
            return typing.cast(Obj, cond)
    return None


def is_true(obj: Obj | None, condition_type: str) -> bool:
    cond = condition(obj, condition_type)
    return cond is not None and cond.get("status") == "True"
