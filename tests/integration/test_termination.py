"""Node termination on the real control plane with the kwok provider: deleting a NodeClaim drains its
Node through the Eviction API and removes Node and NodeClaim; deleting the Node deletes its NodeClaim
too; a pod protected by a PodDisruptionBudget (maxUnavailable 0) is not evicted, and is deleted only when
the NodeClaim's terminationGracePeriod runs out (the reconciler's clock is stepped, not waited for)."""

from __future__ import annotations

import collections.abc
import datetime as dt
import typing

import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e
from nodesmith_kwok import provider as kwok_provider
from tests.integration import lifecycle_harness as h

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def namespace(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = h.unique("term")
    await e2e.create_namespace(kube, name)
    yield name
    await h.delete_quietly(kube, resources.NAMESPACES, name)


@pytest.fixture
async def node_class(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = await h.make_node_class(kube, h.unique("kwok"))
    yield name
    await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, name)


def pod(name: str, namespace: str, node: str, app: str, grace: int = 30) -> dict[str, typing.Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "main", "image": "pause"}],
        },
    }


async def registered(harness: h.Harness, kube: KubeClient, manifest: dict[str, typing.Any]) -> str:
    name = str(manifest["metadata"]["name"])
    await kube.create(resources.NODECLAIMS, manifest)
    await h.eventually(
        lambda: _when(harness.nodeclaim(name), lambda c: h.is_true(c, "Registered")), "Registered=True"
    )
    return name


async def test_deleting_a_nodeclaim_evicts_its_pods_and_removes_node_and_nodeclaim(
    kube: KubeClient, namespace: str, node_class: str
) -> None:
    async with h.running(kube) as harness:
        harness.start("lifecycle", "nodeclaim_termination", "termination")
        name = await registered(harness, kube, h.nodeclaim_manifest(h.unique("nc"), node_class))
        for index in range(2):
            await kube.create(resources.PODS, pod(f"web-{index}", namespace, name, "web"))
        await h.eventually(lambda: _pods_on(harness, name, 2), "both pods in the state")

        await kube.delete(resources.NODECLAIMS, name)
        await h.eventually(lambda: _gone(harness.node(name)), "the Node to be gone", timeout=90)
        await h.eventually(lambda: _gone(harness.nodeclaim(name)), "the NodeClaim to be gone")
        remaining = await kube.list(resources.PODS, namespace)
        assert [p["metadata"]["name"] for p in remaining.items] == []
        reasons = await _event_reasons(kube, namespace)
        assert reasons.count("Evicted") == 2


async def test_deleting_the_node_deletes_its_nodeclaim(kube: KubeClient, node_class: str) -> None:
    async with h.running(kube) as harness:
        harness.start("lifecycle", "nodeclaim_termination", "termination")
        name = await registered(harness, kube, h.nodeclaim_manifest(h.unique("nc"), node_class))
        await kube.delete(resources.NODES, name)
        await h.eventually(lambda: _gone(harness.nodeclaim(name)), "the NodeClaim to be gone", timeout=90)
        await h.eventually(lambda: _gone(harness.node(name)), "the Node to be gone")


async def test_a_pdb_protected_pod_is_deleted_only_at_the_termination_deadline(
    kube: KubeClient, namespace: str, node_class: str
) -> None:
    async with h.running(kube) as harness:
        harness.start("lifecycle", "nodeclaim_termination")
        manifest = h.nodeclaim_manifest(h.unique("nc"), node_class, termination_grace_period="1h")
        name = await registered(harness, kube, manifest)
        await kube.create(
            resources.PDBS,
            {
                "metadata": {"name": "guarded", "namespace": namespace},
                "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "guarded"}}},
            },
        )
        await kube.create(resources.PODS, pod("guarded", namespace, name, "guarded", grace=30))
        await h.eventually(lambda: _pods_on(harness, name, 1), "the pod in the state")

        await kube.delete(
            resources.NODECLAIMS, name
        )  # nodeclaim.termination records the deadline, deletes the Node
        await h.eventually(lambda: _node_deleting(harness, name), "the Node to be deleting")

        # before the deadline: tainted, eviction refused by the PDB, pod untouched
        for _ in range(3):
            assert await harness.termination.reconcile(name) is not None
        node = await harness.node(name)
        assert node is not None
        assert {"key": labels.TAINT_DISRUPTED, "effect": "NoSchedule"} in node["spec"]["taints"]
        guarded = await kube.get(resources.PODS, "guarded", namespace)
        assert not guarded["metadata"].get("deletionTimestamp")
        claim = await harness.nodeclaim(name)
        assert claim is not None
        assert labels.ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP in claim["metadata"]["annotations"]
        assert (h.condition(claim, "Drained") or {}).get("reason") == "Draining"
        assert "FailedDraining" in await _event_reasons(kube, "default", involved=name)

        # 30s (the pod's grace) before the deadline: deleted, so it is gone by then
        harness.clock.step(dt.timedelta(minutes=59, seconds=40))
        assert await harness.termination.reconcile(name) is not None
        await h.eventually(lambda: _pods_on(harness, name, 0), "the pod to be gone")

        async def finished() -> bool:
            await harness.termination.reconcile(name)
            return await harness.node(name) is None

        await h.eventually(finished, "the Node to be gone")
        await h.eventually(lambda: _gone(harness.nodeclaim(name)), "the NodeClaim to be gone")


# -- helpers ---------------------------------------------------------------------------------------------


async def _when(fetch: typing.Any, predicate: typing.Any) -> h.Obj | None:
    obj = await fetch
    return obj if obj is not None and predicate(obj) else None


async def _gone(fetch: typing.Any) -> bool:
    return await fetch is None


async def _pods_on(harness: h.Harness, node: str, count: int) -> bool:
    key = harness.state.key_for_node(node)
    state_node = harness.state.state_node(key) if key else None
    return state_node is not None and len(state_node.pods) == count


async def _node_deleting(harness: h.Harness, node: str) -> bool:
    key = harness.state.key_for_node(node)
    state_node = harness.state.state_node(key) if key else None
    return bool(state_node and state_node.node and state_node.node.deleting)


async def _event_reasons(kube: KubeClient, namespace: str, involved: str | None = None) -> list[str]:
    result = await kube.list(resources.CORE_EVENTS, namespace)
    return [
        str(e.get("reason"))
        for e in result.items
        if involved is None or (e.get("involvedObject") or {}).get("name") == involved
    ]
