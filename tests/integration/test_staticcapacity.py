"""Static NodePools on the real control plane with the kwok provider: a NodePool with ``spec.replicas``
gets that many NodeClaims with no pod asking for them, follows ``kubectl scale`` (the scale subresource)
up and down, stops at ``limits.nodes``, and replaces a NodeClaim that is deleted or being disrupted.

Karpenter's specification: ``pkg/controllers/static/deprovisioning/controller.go`` (delete the surplus,
unlaunched first), the spec's summary of static provisioning (launch up to replicas within the nodes
limit) and the NodePool CRD's scale subresource (``.spec.replicas`` / ``.status.nodes``)."""

from __future__ import annotations

import collections.abc

import pytest

from nodesmith.api import labels
from nodesmith.disruption import static
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.reconcilers import staticcapacity
from nodesmith_kwok import provider as kwok_provider
from tests.integration import lifecycle_harness as h

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def node_class(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = await h.make_node_class(kube, h.unique("kwok"))
    yield name
    await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, name)


def static_pool(name: str, node_class: str, replicas: int, limits: dict[str, str] | None = None) -> h.Obj:
    template = {
        "spec": {
            "nodeClassRef": {"group": h.KWOK_GROUP, "kind": h.KWOK_KIND, "name": node_class},
            "requirements": [
                {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["c-1x-amd64-linux"]}
            ],
        }
    }
    spec: h.Obj = {"replicas": replicas, "template": template}
    if limits:
        spec["limits"] = limits
    return {"metadata": {"name": name}, "spec": spec}


async def test_a_static_pool_holds_its_count_and_follows_the_scale_subresource(
    kube: KubeClient, node_class: str
) -> None:
    pool = h.unique("static")
    await kube.create(resources.NODEPOOLS, static_pool(pool, node_class, replicas=2))
    try:
        async with h.running(kube) as harness:
            harness.start("lifecycle")
            loop = staticcapacity.StaticCapacity(kube, harness.state, harness.events, harness.clock)
            await _pool_in_state(harness, pool, 2)

            assert await loop.reconcile() == {pool: static.Plan(create=2)}
            assert len(await _claims(kube, pool)) == 2
            assert await loop.reconcile() == {pool: static.Plan()}, "created NodeClaims count at once"
            await _launched(harness, pool, 2)

            # kubectl scale nodepool/<pool> --replicas 3
            scale = await kube.get(resources.NODEPOOLS, pool)
            assert scale["spec"]["replicas"] == 2
            await kube.merge_patch(resources.NODEPOOLS, pool, {"spec": {"replicas": 3}}, subresource="scale")
            await _pool_in_state(harness, pool, 3)
            assert await loop.reconcile() == {pool: static.Plan(create=1)}
            await _launched(harness, pool, 3)

            # a NodeClaim being disrupted (drift, expiry) no longer counts: its replacement launches at once
            victim = sorted(await _claims(kube, pool))[0]
            key = harness.state.key_for_nodeclaim(victim)
            assert key is not None
            harness.state.mark_for_deletion(key)
            assert await loop.reconcile() == {pool: static.Plan(create=1)}
            harness.state.unmark_for_deletion(key)

            # kubectl scale --replicas 1: the surplus goes
            await kube.merge_patch(resources.NODEPOOLS, pool, {"spec": {"replicas": 1}}, subresource="scale")
            await _pool_in_state(harness, pool, 1)
            plan = (await loop.reconcile())[pool]
            assert (plan.create, len(plan.delete)) == (0, 3)
            remaining = await _claims(kube, pool, deleting=False)
            assert len(remaining) == 1
            assert set(plan.delete).isdisjoint(remaining)
    finally:
        await _delete_pool(kube, pool)


async def test_a_static_pool_stops_at_its_node_limit(kube: KubeClient, node_class: str) -> None:
    pool = h.unique("static")
    await kube.create(resources.NODEPOOLS, static_pool(pool, node_class, replicas=3, limits={"nodes": "2"}))
    try:
        async with h.running(kube) as harness:
            loop = staticcapacity.StaticCapacity(kube, harness.state, harness.events, harness.clock)
            await _pool_in_state(harness, pool, 3)
            assert await loop.reconcile() == {pool: static.Plan(create=2, limited=True)}
            assert len(await _claims(kube, pool)) == 2
            assert await loop.reconcile() == {pool: static.Plan(limited=True)}
            assert len(await _claims(kube, pool)) == 2
    finally:
        await _delete_pool(kube, pool)


async def test_the_apiserver_refuses_other_limits_on_a_static_pool(kube: KubeClient, node_class: str) -> None:
    pool = h.unique("static")
    with pytest.raises(kube_errors.InvalidError, match="may only limit nodes"):
        await kube.create(resources.NODEPOOLS, static_pool(pool, node_class, replicas=1, limits={"cpu": "4"}))


# -- helpers ---------------------------------------------------------------------------------------------


async def _pool_in_state(harness: h.Harness, pool: str, replicas: int) -> None:
    async def seen() -> bool:
        found = harness.state.snapshot().nodepools.get(pool)
        return found is not None and found.spec.replicas == replicas

    await h.eventually(seen, f"NodePool {pool} with replicas={replicas} in the state")


async def _claims(kube: KubeClient, pool: str, *, deleting: bool | None = None) -> list[str]:
    listed = await kube.list(resources.NODECLAIMS, label_selector=f"{labels.LABEL_NODEPOOL}={pool}")
    return [
        c["metadata"]["name"]
        for c in listed.items
        if deleting is None or bool(c["metadata"].get("deletionTimestamp")) == deleting
    ]


async def _launched(harness: h.Harness, pool: str, count: int) -> None:
    async def launched() -> bool:
        snapshot = harness.state.snapshot()
        claims = [n.nodeclaim for n in snapshot.nodes if n.nodeclaim is not None]
        return sum(1 for c in claims if c.nodepool_name == pool and c.status.provider_id) == count

    await h.eventually(launched, f"{count} NodeClaims of {pool} launched")


async def _delete_pool(kube: KubeClient, pool: str) -> None:
    for name in await _claims(kube, pool):
        await h.patch_latest(kube, resources.NODECLAIMS, name, lambda _: {"metadata": {"finalizers": None}})
        await h.delete_quietly(kube, resources.NODECLAIMS, name)
    for node in (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={pool}")).items:
        name = node["metadata"]["name"]
        await h.patch_latest(kube, resources.NODES, name, lambda _: {"metadata": {"finalizers": None}})
        await h.delete_quietly(kube, resources.NODES, name)
    await h.delete_quietly(kube, resources.NODEPOOLS, pool)
