"""The Node termination reconciler (``node.termination``) driven one reconcile at a time against the real API
server, with the test kit's fake cloud provider and a stepped clock, in the style of Karpenter's
``pkg/controllers/node/termination/suite_test.go``: every write happens in the order taint → evict → delete
the instance → remove the finalizer, a stale read is answered by a 409 and retried without losing anyone's
write, and a freshly built reconciler resumes from what the API server holds.

No kubelet runs here: where a kubelet would finish an evicted pod, the test deletes it with grace 0.
"""

from __future__ import annotations

import collections.abc
import contextlib
import uuid
from typing import Any

import attrs
import pytest

from nodesmith.api import labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.clock import SYSTEM
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import lifecycle, statepoll, termination
from nodesmith.state import ClusterState
from nodesmith.testing import cloudprovider as fake
from nodesmith.testing import expectations as expect
from nodesmith.testing.clock import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

NAMESPACE = "default"


@attrs.define
class Env:
    kube: KubeClient
    state: ClusterState
    provider: fake.FakeCloudProvider
    clock: FakeClock
    reconciler: termination.TerminationReconciler
    claim: str = ""
    node: str = ""
    pods: list[str] = attrs.field(factory=list)

    def restart(self) -> None:
        """A new process: a fresh state and reconciler that know only what `refresh` reads from the API."""
        self.state, self.reconciler = fresh_process(self.kube, self.provider, self.clock)

    async def refresh(self) -> None:
        await expect.expect_refreshed(self.kube, self.state, resources.NODECLAIMS, self.claim)
        await expect.expect_refreshed(self.kube, self.state, resources.NODES, self.node)
        for pod in self.pods:
            await expect.expect_refreshed(self.kube, self.state, resources.PODS, pod, NAMESPACE)

    async def reconcile(self) -> float | None:
        """One pass, as a worker of the daemon's queue runs it. The control plane may write the new Node
        meanwhile (kube-controller-manager's node lifecycle controller taints a Node without a Ready
        condition), which answers the pass's locked Node write with a 409; the daemon then looks again at
        the version its watch delivers, and so does this (at most twice more)."""
        for _ in range(3):
            requeue = await expect.expect_object_reconciled(self.reconciler, self.node)
            await self.refresh()
            if requeue != statepoll.CONFLICT_REQUEUE:
                break
        return requeue

    async def node_obj(self) -> dict[str, Any] | None:
        with contextlib.suppress(kube_errors.NotFoundError):
            return await self.kube.get(resources.NODES, self.node)
        return None

    async def pod_obj(self, name: str) -> dict[str, Any] | None:
        with contextlib.suppress(kube_errors.NotFoundError):
            return await self.kube.get(resources.PODS, name, NAMESPACE)
        return None

    async def nodeclaim(self) -> NodeClaim | None:
        with contextlib.suppress(kube_errors.NotFoundError):
            return NodeClaim.from_dict(await self.kube.get(resources.NODECLAIMS, self.claim))
        return None

    async def kubelet_finishes(self, pod: str) -> None:
        """What a kubelet does with an evicted pod: it stops it and the pod object goes."""
        with contextlib.suppress(kube_errors.NotFoundError):
            await self.kube.delete(resources.PODS, pod, NAMESPACE, grace_period_seconds=0)
        await expect.expect_refreshed(self.kube, self.state, resources.PODS, pod, NAMESPACE)


def fresh_process(
    kube: KubeClient, provider: fake.FakeCloudProvider, clock: FakeClock
) -> tuple[ClusterState, termination.TerminationReconciler]:
    state = expect.synced_state(ClusterState(clock=clock.now))
    events = EventRecorder(kube, clock=clock)
    return state, termination.TerminationReconciler(kube, state, provider, events, clock)


def _tainted(node: dict[str, Any] | None) -> bool:
    taints = ((node or {}).get("spec") or {}).get("taints") or []
    return {"key": labels.TAINT_DISRUPTED, "effect": "NoSchedule"} in taints


@pytest.fixture
async def env(kube: KubeClient) -> collections.abc.AsyncIterator[Env]:
    """A launched NodeClaim (the lifecycle reconciler ran once), its Node carrying the termination
    finalizer, and one pod bound to it; nothing deleted yet."""
    clock = FakeClock(SYSTEM.now())  # near real time: the API server stamps deletionTimestamp
    provider = fake.FakeCloudProvider()
    state, reconciler = fresh_process(kube, provider, clock)
    env = Env(kube, state, provider, clock, reconciler)
    suffix = uuid.uuid4().hex[:6]
    env.claim, env.node = f"term-{suffix}", f"term-node-{suffix}"
    await expect.expect_applied(
        kube,
        env.state,
        resources.NODECLAIMS,
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {"name": env.claim, "labels": {labels.LABEL_NODEPOOL: "default"}},
            "spec": {"nodeClassRef": dict(fake.ref()), "requirements": []},
        },
    )
    launcher = lifecycle.LifecycleReconciler(
        kube, env.state, provider, EventRecorder(kube, clock=clock), clock
    )
    await expect.expect_object_reconciled(launcher, env.claim)
    claim = await env.nodeclaim()
    assert claim is not None
    assert claim.status.provider_id in provider.machines
    await expect.expect_applied(
        kube,
        env.state,
        resources.NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": env.node,
                "labels": {labels.LABEL_NODEPOOL: "default"},
                "finalizers": [labels.FINALIZER_TERMINATION],
            },
            "spec": {"providerID": claim.status.provider_id},
        },
    )
    env.pods.append(f"web-{suffix}")
    await expect.expect_applied(
        kube,
        env.state,
        resources.PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": env.pods[0], "namespace": NAMESPACE},
            "spec": {"nodeName": env.node, "containers": [{"name": "main", "image": "pause"}]},
        },
        NAMESPACE,
    )
    await env.refresh()
    yield env
    for pod in env.pods:
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(resources.PODS, pod, NAMESPACE, grace_period_seconds=0)
    for resource, name in ((resources.NODES, env.node), (resources.NODECLAIMS, env.claim)):
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.merge_patch(resource, name, {"metadata": {"finalizers": None}})
            await kube.delete(resource, name)


async def delete_node(env: Env) -> None:
    await env.kube.delete(resources.NODES, env.node)
    await env.refresh()


async def test_a_node_not_being_deleted_is_left_alone(env: Env) -> None:
    assert await env.reconcile() is None  # case 1
    assert not _tainted(await env.node_obj())
    assert env.provider.delete_calls == []
    claim = await env.nodeclaim()
    assert claim is not None
    assert not claim.deleting


async def test_termination_taints_then_evicts_then_deletes_the_instance_then_removes_the_finalizer(
    env: Env,
) -> None:
    await delete_node(env)
    # first pass: NodeClaim deleted with the Node (case 2), tainted (case 4), pod evicted (case 5)
    assert await env.reconcile() is not None
    node = await env.node_obj()
    assert _tainted(node)
    claim = await env.nodeclaim()
    assert claim is not None
    assert claim.deleting
    # the Drained condition is written in the same pass, on the version the NodeClaim's delete left
    first = claim.condition("Drained")
    assert first is not None
    assert first.reason == "Draining"
    pod = await env.pod_obj(env.pods[0])
    assert pod is not None
    assert pod["metadata"].get("deletionTimestamp")
    assert env.provider.delete_calls == []  # the instance outlives the drain

    # the pod is still terminating: the drain waits, says so, and the instance is not touched
    assert await env.reconcile() is not None
    assert env.provider.delete_calls == []
    claim = await env.nodeclaim()
    drained = claim.condition("Drained") if claim is not None else None
    assert drained is not None
    assert drained.reason == "Draining"

    await env.kubelet_finishes(env.pods[0])
    requeue = await env.reconcile()  # drained, but not yet MIN_DRAIN_TIME after the deletion
    assert requeue is not None
    assert requeue > 0
    assert env.provider.delete_calls == []
    env.clock.step(requeue)

    # case 7: drained → the provider is asked to delete the instance; the Node keeps its finalizer
    assert await env.reconcile() == termination.INSTANCE_REQUEUE
    assert len(env.provider.delete_calls) == 1
    assert env.provider.machines == {}
    assert await env.node_obj() is not None
    claim = await env.nodeclaim()
    assert claim is not None
    assert claim.is_true("Drained")
    assert claim.is_true("InstanceTerminating")

    # case 8: the provider says the instance is gone → the finalizer goes, and with it the Node
    assert await env.reconcile() is None
    assert await env.node_obj() is None


async def test_a_stale_node_gets_a_conflict_and_the_retry_keeps_the_other_write(env: Env) -> None:
    await delete_node(env)
    # someone labels the Node after our state last read it
    await env.kube.merge_patch(resources.NODES, env.node, {"metadata": {"labels": {"team": "a"}}})
    assert await expect.expect_object_reconciled(env.reconciler, env.node) == statepoll.CONFLICT_REQUEUE
    assert not _tainted(await env.node_obj())  # the taint patch was refused, nothing half-written
    await env.refresh()  # the next poll reads the current version
    assert await env.reconcile() is not None
    node = await env.node_obj()
    assert _tainted(node)
    assert node is not None
    assert node["metadata"]["labels"]["team"] == "a"


async def test_a_restarted_reconciler_resumes_from_the_api_state(env: Env) -> None:
    await delete_node(env)
    assert await env.reconcile() is not None  # tainted and evicted, then the process dies
    await env.kubelet_finishes(env.pods[0])

    env.restart()
    await env.refresh()
    requeue = await env.reconcile()  # the new process finds the drain done and waits out MIN_DRAIN_TIME
    assert requeue is not None
    env.clock.step(requeue)
    assert await env.reconcile() == termination.INSTANCE_REQUEUE
    env.restart()  # dies again after asking for the instance's deletion
    await env.refresh()
    assert await env.reconcile() is None
    assert await env.node_obj() is None
    # the new process sees a NotReady Node whose instance is gone (case 3): no second delete
    assert len(env.provider.delete_calls) == 1


async def test_a_not_ready_node_whose_instance_is_gone_skips_the_drain(env: Env) -> None:
    await delete_node(env)
    env.provider.machines.clear()  # the instance vanished (say, a spot reclaim)
    assert await env.reconcile() is None  # case 3
    assert await env.node_obj() is None
    pod = await env.pod_obj(env.pods[0])
    assert pod is not None
    assert not pod["metadata"].get("deletionTimestamp")
