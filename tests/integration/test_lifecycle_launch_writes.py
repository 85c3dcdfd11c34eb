"""API writes per NodeClaim on the launch path, counted on the real API server: one lifecycle pass over a
new NodeClaim, driven stepwise with the kwok provider, writes the finalizer (before the launch, so nothing
is ever launched without it), then the launch and the conditions it leads to in one metadata patch and one
status write -- not a status write for the launch and another for the Registered condition. Every write
that changes an object is one watch event, so the test counts the NodeClaim's MODIFIED events between its
creation and the resourceVersion the pass left."""

from __future__ import annotations

import contextlib

import pytest

from nodesmith.api import labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.clock import SYSTEM
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import ProviderContext
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import lifecycle, statepoll
from nodesmith.state import ClusterState
from nodesmith.testing import expectations as expect
from nodesmith.testing.clock import FakeClock
from nodesmith_kwok import provider as kwok_provider
from tests.integration import lifecycle_harness as h

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def _modifications(kube: KubeClient, name: str, since: str, until: str) -> list[dict[str, object]]:
    """The NodeClaim as each write after ``since`` up to ``until`` left it."""
    seen: list[dict[str, object]] = []
    watch = kube.watch(
        resources.NODECLAIMS,
        resource_version=since,
        allow_bookmarks=False,
        field_selector=f"metadata.name={name}",
    )
    async with contextlib.aclosing(watch) as events:
        async for event in events:
            assert event.type == "MODIFIED"
            seen.append(event.object)
            if event.resource_version == until:
                break
    return seen


async def test_a_launch_pass_writes_the_finalizer_then_one_metadata_patch_and_one_status(
    kube: KubeClient,
) -> None:
    clock = FakeClock(SYSTEM.now())
    node_class = await h.make_node_class(kube, h.unique("kwok"))
    name = h.unique("nc")
    state = expect.synced_state(ClusterState(clock=clock.now, node_classes=[kwok_provider.NODE_CLASSES]))
    provider = manager.Plugins.load().cloud_provider(
        "kwok", ProviderContext(cluster_name="test", kube=kube, clock=clock)
    )
    launcher = lifecycle.LifecycleReconciler(kube, state, provider, EventRecorder(kube, clock=clock), clock)
    created = await kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(name, node_class))
    try:
        await expect.expect_refreshed(kube, state, resources.NODECLAIMS, name)
        await expect.expect_object_reconciled(launcher, name)
        after = NodeClaim.from_dict(await kube.get(resources.NODECLAIMS, name))
        assert after.is_true("Launched")
        assert after.status.provider_id == f"kwok://{name}"
        registered = after.condition("Registered")
        assert registered is not None
        assert registered.status == "Unknown"  # the Node is not in the state yet
        writes = await _modifications(
            kube, name, created["metadata"]["resourceVersion"], str(after.metadata.resource_version)
        )
        assert len(writes) == 3
        first = writes[0]["metadata"]
        assert isinstance(first, dict)
        assert labels.FINALIZER_TERMINATION in first["finalizers"]
        assert "status" not in writes[0] or not writes[0]["status"]
    finally:
        await h.delete_quietly(kube, resources.NODES, name)
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.merge_patch(resources.NODECLAIMS, name, {"metadata": {"finalizers": None}})
        await h.delete_quietly(kube, resources.NODECLAIMS, name)
        await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, node_class)


async def test_a_launch_is_written_even_when_registering_its_node_loses_a_race(kube: KubeClient) -> None:
    clock = FakeClock(SYSTEM.now())
    node_class = await h.make_node_class(kube, h.unique("kwok"))
    name = h.unique("nc")
    state = expect.synced_state(ClusterState(clock=clock.now, node_classes=[kwok_provider.NODE_CLASSES]))
    provider = manager.Plugins.load().cloud_provider(
        "kwok", ProviderContext(cluster_name="test", kube=kube, clock=clock)
    )
    launcher = lifecycle.LifecycleReconciler(kube, state, provider, EventRecorder(kube, clock=clock), clock)
    await kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(name, node_class))
    try:
        await expect.expect_refreshed(kube, state, resources.NODECLAIMS, name)
        # the instance exists already (a launch whose answer was lost) and the state holds its Node at a
        # version that is stale by the time the pass registers it: the registration patch gets a 409
        await provider.create(NodeClaim.from_dict(await kube.get(resources.NODECLAIMS, name)))
        await expect.expect_refreshed(kube, state, resources.NODES, name)
        await kube.merge_patch(resources.NODES, name, {"metadata": {"labels": {"example.com/touch": "1"}}})
        requeue = await expect.expect_object_reconciled(launcher, name)
        assert requeue == statepoll.CONFLICT_REQUEUE
        after = NodeClaim.from_dict(await kube.get(resources.NODECLAIMS, name))
        assert after.is_true("Launched")
        assert after.status.provider_id == f"kwok://{name}"
        assert not after.is_true("Registered")
    finally:
        await h.delete_quietly(kube, resources.NODES, name)
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.merge_patch(resources.NODECLAIMS, name, {"metadata": {"finalizers": None}})
        await h.delete_quietly(kube, resources.NODECLAIMS, name)
        await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, node_class)
