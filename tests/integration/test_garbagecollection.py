"""Garbage collection on the real control plane with the kwok provider: an instance (a kwok Node) that no
NodeClaim owns is deleted; a launched NodeClaim whose instance vanished is deleted."""

from __future__ import annotations

import collections.abc
import datetime as dt
import typing

import pytest

from nodesmith.api import nodeclaim
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith_kwok import provider as kwok_provider
from tests.integration import lifecycle_harness as h

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def node_class(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = await h.make_node_class(kube, h.unique("kwok"))
    yield name
    await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, name)


async def test_an_instance_without_a_nodeclaim_is_deleted(kube: KubeClient, node_class: str) -> None:
    async with h.running(kube) as harness:
        name = h.unique("orphan")
        manifest = h.nodeclaim_manifest(name, node_class)
        claim = nodeclaim.NodeClaim.from_dict(
            {"apiVersion": "nodesmith.io/v1", "kind": "NodeClaim", **manifest}
        )
        launched = await harness.provider.create(claim)  # launched, but the NodeClaim never reached the API
        assert launched.status.provider_id == f"kwok://{name}"
        await h.eventually(lambda: _node_in_state(harness, name), "the orphan Node in the state")

        await harness.gc.reconcile()
        await h.eventually(lambda: _gone(harness.node(name)), "the orphan Node to be deleted")


async def test_an_instance_that_is_still_young_is_kept(kube: KubeClient, node_class: str) -> None:
    async with h.running(kube) as harness:
        harness.gc.orphan_grace = dt.timedelta(seconds=30)
        name = h.unique("young")
        manifest = h.nodeclaim_manifest(name, node_class)
        claim = nodeclaim.NodeClaim.from_dict(
            {"apiVersion": "nodesmith.io/v1", "kind": "NodeClaim", **manifest}
        )
        await harness.provider.create(claim)
        await h.eventually(lambda: _node_in_state(harness, name), "the Node in the state")
        await harness.gc.reconcile()
        assert await harness.node(name) is not None
        harness.clock.step(harness.gc.orphan_grace)
        await harness.gc.reconcile()
        await h.eventually(lambda: _gone(harness.node(name)), "the orphan Node to be deleted")


async def test_a_nodeclaim_whose_instance_vanished_is_deleted(kube: KubeClient, node_class: str) -> None:
    async with h.running(kube) as harness:
        harness.start("lifecycle", "nodeclaim_termination")
        name = h.unique("nc")
        await kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(name, node_class))
        # Initialized, not just Registered: the lifecycle stops writing to the Node once it is initialized
        await h.eventually(
            lambda: _when(harness.nodeclaim(name), lambda c: h.is_true(c, "Initialized")), "Initialized=True"
        )
        await harness.gc.reconcile()
        assert await harness.nodeclaim(name) is not None  # healthy: kept

        # the instance vanishes behind nodesmith's back (finalizer stripped, Node deleted)
        await h.patch_latest(kube, resources.NODES, name, lambda _: {"metadata": {"finalizers": None}})
        await kube.delete(resources.NODES, name)
        await h.eventually(lambda: _no_node_in_state(harness, name), "the Node gone from the state")

        await harness.gc.reconcile()
        await h.eventually(lambda: _gone(harness.nodeclaim(name)), "the NodeClaim to be deleted")


# -- helpers ---------------------------------------------------------------------------------------------


async def _when(fetch: typing.Any, predicate: typing.Any) -> h.Obj | None:
    obj = await fetch
    return obj if obj is not None and predicate(obj) else None


async def _gone(fetch: typing.Any) -> bool:
    return await fetch is None


async def _node_in_state(harness: h.Harness, name: str) -> bool:
    return harness.state.key_for_node(name) is not None


async def _no_node_in_state(harness: h.Harness, name: str) -> bool:
    return harness.state.key_for_node(name) is None
