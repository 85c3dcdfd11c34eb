"""Node repair on the real control plane with the kwok provider (its policy: Ready False or Unknown for
10 minutes). A NotReady Node is kept while its toleration runs, then its NodeClaim is deleted with its
termination deadline set to now; when more than 20% of a pool is unhealthy, nothing is repaired and the
block is reported as an event.

To hold a kwok Node NotReady the test takes it away from the kwok controller (removes the annotation it
selects Nodes by) and writes the Node's status itself, as a kubelet that stopped working would leave it.
Karpenter's specification: ``pkg/controllers/node/health/controller.go`` (repair only
past the toleration, the 20% per-NodePool threshold rounded up, the termination timestamp set to now)."""

from __future__ import annotations

import collections.abc
import contextlib
import datetime as dt

import pytest

from nodesmith.api import labels, meta
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.reconcilers import noderepair
from nodesmith_kwok import provider as kwok_provider
from tests.integration import lifecycle_harness as h

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TOLERATION = dt.timedelta(minutes=10)


@pytest.fixture
async def node_class(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = await h.make_node_class(kube, h.unique("kwok"))
    yield name
    await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, name)


async def test_a_node_not_ready_past_its_toleration_is_replaced(
    kube: KubeClient, node_class: str, claims: list[str]
) -> None:
    async with h.running(kube) as harness:
        harness.start("lifecycle")
        repair = noderepair.NodeRepair(kube, harness.state, harness.provider, harness.events, harness.clock)
        pool = h.unique("pool")
        name = await _initialized_claim(harness, node_class, pool, claims)
        await _break(harness, name)

        result = await repair.reconcile()
        assert result == noderepair.Pass(), "NotReady for less than the toleration: kept"
        harness.clock.step(TOLERATION - dt.timedelta(seconds=30))
        assert await repair.reconcile() == noderepair.Pass()
        assert (await harness.nodeclaim(name) or {}).get("metadata", {}).get("deletionTimestamp") is None

        harness.clock.step(dt.timedelta(seconds=31))
        repaired_at = harness.clock.now()
        assert await repair.reconcile() == noderepair.Pass(repaired=(name,))
        claim = await harness.nodeclaim(name)
        assert claim is not None, "the lifecycle finalizer holds it until its Node is gone"
        assert claim["metadata"].get("deletionTimestamp")
        deadline = claim["metadata"]["annotations"][labels.ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP]
        assert meta.parse_time(deadline, "deadline") <= repaired_at, "forceful: the deadline is now"


async def test_repair_stops_when_more_than_a_fifth_of_the_pool_is_unhealthy(
    kube: KubeClient, node_class: str, claims: list[str]
) -> None:
    async with h.running(kube) as harness:
        harness.start("lifecycle")
        repair = noderepair.NodeRepair(kube, harness.state, harness.provider, harness.events, harness.clock)
        pool = h.unique("pool")
        names = [await _initialized_claim(harness, node_class, pool, claims) for _ in range(2)]
        for name in names:
            await _break(harness, name)
        harness.clock.step(TOLERATION + dt.timedelta(seconds=1))

        # two of two unhealthy: 20% of two, rounded up, allows one
        result = await repair.reconcile()
        assert sorted(result.blocked) == sorted(names)
        assert result.repaired == ()
        for name in names:
            claim = await harness.nodeclaim(name)
            assert claim is not None
            assert not claim["metadata"].get("deletionTimestamp")
        events = await kube.list(resources.CORE_EVENTS, "default", field_selector="reason=NodeRepairBlocked")
        messages = [e.get("message", "") for e in events.items if e["involvedObject"]["name"] in names]
        assert messages
        assert all(f"2 of 2 Nodes in NodePool {pool} are unhealthy" in m for m in messages)

        # one recovers: one of two unhealthy is within the allowance, so the other is repaired
        await _heal(harness, names[0])
        assert await repair.reconcile() == noderepair.Pass(repaired=(names[1],))


# -- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture
async def claims(kube: KubeClient) -> collections.abc.AsyncIterator[list[str]]:
    """The NodeClaims a test makes, and their Nodes, removed afterwards with their finalizers: no
    reconciler is left to finish them, and a node left behind would take later tests' pods."""
    made: list[str] = []
    yield made
    for name in made:
        for resource in (resources.NODECLAIMS, resources.NODES):
            with contextlib.suppress(kube_errors.NotFoundError):
                await kube.merge_patch(resource, name, {"metadata": {"finalizers": None}})
            await h.delete_quietly(kube, resource, name)


async def _initialized_claim(harness: h.Harness, node_class: str, pool: str, made: list[str]) -> str:
    name = h.unique("nc")
    made.append(name)
    await harness.kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(name, node_class, nodepool=pool))

    async def initialized() -> bool:
        key = harness.state.key_for_node(name)
        state_node = harness.state.state_node(key) if key else None
        return state_node is not None and state_node.initialized and state_node.nodeclaim is not None

    await h.eventually(initialized, f"{name} Initialized in the state")
    return name


async def _set_ready(harness: h.Harness, name: str, status: str) -> None:
    since = meta.format_time(harness.clock.now())
    ready = {"type": "Ready", "status": status, "reason": "Test", "lastTransitionTime": since}
    await harness.kube.update_status(resources.NODES, name, {"conditions": [ready]})

    async def seen() -> bool:
        key = harness.state.key_for_node(name)
        state_node = harness.state.state_node(key) if key else None
        node = state_node.node if state_node is not None else None
        return node is not None and any(c.type == "Ready" and c.status == status for c in node.conditions)

    await h.eventually(seen, f"{name} Ready={status} in the state")


async def _break(harness: h.Harness, name: str) -> None:
    """Take the Node from the kwok controller (which would mark it Ready again) and mark it NotReady."""
    unmanaged = {"metadata": {"annotations": {kwok_provider.KWOK_ANNOTATION: None}}}
    await harness.kube.merge_patch(resources.NODES, name, unmanaged)
    await _set_ready(harness, name, "False")


async def _heal(harness: h.Harness, name: str) -> None:
    await _set_ready(harness, name, "True")
