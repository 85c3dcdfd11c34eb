"""The provisioner driven one run at a time against the real API server, with the test kit's fake cloud
provider (through the real plugin manager) and a stepped clock, in the style of Karpenter's
``pkg/controllers/provisioning/suite_test.go``: a pending pod becomes a NodeClaim written to the API before
anything is launched (the lifecycle launches it, not the provisioner), the synced gate holds the next run
while that NodeClaim has no providerID, and neither a second run nor a restarted process launches the same
pods twice.
"""

from __future__ import annotations

import collections.abc
import contextlib
import datetime as dt
import typing
import uuid
from typing import Any

import anyio
import attrs
import pytest

from nodesmith.api import labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.clock import SYSTEM
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import lifecycle, provisioner
from nodesmith.reconcilers.provisioner import Decision, Provisioner
from nodesmith.state import ClusterState
from nodesmith.testing import cloudprovider as fake
from nodesmith.testing import expectations as expect
from nodesmith.testing import factories
from nodesmith.testing.clock import FakeClock
from nodesmith.testing.rendezvous import Rendezvous

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

NAMESPACE = "default"


@attrs.define
class Env:
    kube: KubeClient
    provider: fake.FakeCloudProvider
    clock: FakeClock
    pool: str
    state: ClusterState = attrs.field(init=False)
    provisioner: provisioner.Provisioner = attrs.field(init=False)
    pods: list[str] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A new process: fresh state and provisioner that know only what `relist` reads from the API."""
        self.state = expect.synced_state(ClusterState(clock=self.clock.now))
        self.provisioner = self.new_provisioner(self.kube)

    def new_provisioner(self, kube: KubeClient) -> Provisioner:
        """A provisioner over this state writing through ``kube`` (events go to the real client)."""
        return Provisioner(
            kube,
            self.state,
            self.provider,
            fake.plugins(self.provider),
            EventRecorder(self.kube, clock=self.clock),
            self.clock,
            batch_idle=dt.timedelta(seconds=1),
            batch_max=dt.timedelta(seconds=10),
        )

    async def relist(self) -> None:
        """What the informers' initial list gives a new process: the pool, its NodeClaims, the pods."""
        await expect.expect_refreshed(self.kube, self.state, resources.NODEPOOLS, self.pool)
        for claim in await self.nodeclaims():
            await expect.expect_refreshed(self.kube, self.state, resources.NODECLAIMS, claim.name)
        for pod in self.pods:
            await expect.expect_refreshed(self.kube, self.state, resources.PODS, pod, NAMESPACE)

    async def nodeclaims(self) -> list[NodeClaim]:
        listed = await self.kube.list(resources.NODECLAIMS)
        return [
            NodeClaim.from_dict(obj)
            for obj in listed.items
            if obj["metadata"].get("labels", {}).get(labels.LABEL_NODEPOOL) == self.pool
        ]

    async def pending_pod(self, cpu: str = "500m") -> str:
        name = f"pending-{uuid.uuid4().hex[:6]}"
        # pinned to this test's NodePool: nodes other tests leave behind cannot take it
        manifest = factories.pod(
            name=name,
            namespace=NAMESPACE,
            requests={"cpu": cpu},
            node_selector={labels.LABEL_NODEPOOL: self.pool},
        )
        created = await self.kube.create(resources.PODS, _api_pod(manifest), NAMESPACE)
        # what kube-scheduler writes when no node fits (it may already have, with the same answer)
        unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
        stored = await self.kube.update_status(
            resources.PODS, name, {"conditions": [unschedulable]}, NAMESPACE
        )
        assert created["metadata"]["uid"] == stored["metadata"]["uid"]
        self.pods.append(name)
        await expect.expect_refreshed(self.kube, self.state, resources.PODS, name, NAMESPACE)
        return name

    async def launch(self, claim: str) -> None:
        """The lifecycle reconciler's launch of ``claim``, read back into the state."""
        events = EventRecorder(self.kube, clock=self.clock)
        launcher = lifecycle.LifecycleReconciler(self.kube, self.state, self.provider, events, self.clock)
        await expect.expect_object_reconciled(launcher, claim)
        await expect.expect_refreshed(self.kube, self.state, resources.NODECLAIMS, claim)

    async def provision(self) -> Decision | None:
        return await expect.expect_reconciled_stepping(self.provisioner.reconcile, self.clock)


def _api_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The engine's pod dict as a manifest the API server accepts (no uid, no status)."""
    metadata = {k: v for k, v in pod["metadata"].items() if k in ("name", "namespace", "labels")}
    spec = {k: v for k, v in pod["spec"].items() if k != "nodeName"}
    for container in spec["containers"]:
        container.setdefault("image", "pause")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@pytest.fixture
async def env(kube: KubeClient) -> collections.abc.AsyncIterator[Env]:
    pool = f"prov-{uuid.uuid4().hex[:6]}"
    await kube.create(
        resources.NODEPOOLS,
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodePool",
            "metadata": {"name": pool},
            "spec": {"template": {"spec": {"nodeClassRef": dict(fake.ref()), "requirements": []}}},
        },
    )
    env = Env(kube, fake.FakeCloudProvider(), FakeClock(SYSTEM.now()), pool)
    await env.relist()
    yield env
    for pod in env.pods:
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(resources.PODS, pod, NAMESPACE, grace_period_seconds=0)
    for claim in await env.nodeclaims():
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.merge_patch(resources.NODECLAIMS, claim.name, {"metadata": {"finalizers": None}})
            await kube.delete(resources.NODECLAIMS, claim.name)
    with contextlib.suppress(kube_errors.NotFoundError):
        await kube.delete(resources.NODEPOOLS, pool)


async def test_nothing_pending_creates_nothing(env: Env) -> None:
    assert await env.provision() is None  # nothing provisionable
    assert await env.nodeclaims() == []


async def test_a_pending_pod_becomes_a_nodeclaim_written_before_anything_is_launched(env: Env) -> None:
    await env.pending_pod()
    decision = await env.provision()
    assert decision is not None
    assert len(decision.created) == 1
    (claim,) = await env.nodeclaims()
    assert claim.name == decision.created[0]
    assert claim.status.provider_id is None  # written, not launched: the lifecycle launches it
    assert env.provider.create_calls == []
    owners = claim.to_dict()["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("NodePool", env.pool)]
    assert env.state.unlaunched_nodeclaims() == [claim.name]  # in the state at once: the gate closes

    await env.launch(claim.name)
    assert len(env.provider.create_calls) == 1
    assert env.state.synced()


async def test_the_synced_gate_holds_the_next_run_until_the_nodeclaim_launched(env: Env) -> None:
    await env.pending_pod()
    first = await env.provision()
    assert first is not None
    await env.pending_pod()  # more pods arrive while the first NodeClaim is not launched yet
    before = env.clock.now()
    assert await env.provision() is None  # case 1: waited out the gate (stepped), decided nothing
    assert env.clock.now() - before >= dt.timedelta(seconds=30)
    assert len(await env.nodeclaims()) == 1

    await env.launch(first.created[0])
    second = await env.provision()  # now synced: only the newcomer needs a place (it fits the first)
    assert second is not None
    assert len(await env.nodeclaims()) == 1 + len(second.created)


async def test_an_in_flight_nodeclaim_is_not_launched_twice_after_a_restart(env: Env) -> None:
    await env.pending_pod()
    first = await env.provision()
    assert first is not None
    await env.launch(first.created[0])
    again = await env.provision()  # same process: the pod is placed on the in-flight NodeClaim
    assert again is not None
    assert again.created == ()

    env.restart()  # the process dies; the new one lists the API
    await env.relist()
    after_restart = await env.provision()
    assert after_restart is not None
    assert after_restart.created == ()
    assert [c.name for c in await env.nodeclaims()] == list(first.created)
    assert len(env.provider.create_calls) == 1


async def test_nominated_events_pass_a_token_bucket_so_a_large_batch_costs_no_write_per_pod(env: Env) -> None:
    burst = 10  # Karpenter's pod-nomination burst
    for _ in range(burst + 4):
        await env.pending_pod(cpu="100m")
    decision = await env.provision()
    assert decision is not None
    assert decision.created
    placed = sum(len(claim.pods) for claim in decision.results.new_nodeclaims)
    assert placed == burst + 4
    listed = await env.kube.list(resources.CORE_EVENTS, NAMESPACE)
    nominated = [
        event
        for event in listed.items
        if event.get("reason") == "Nominated" and event["involvedObject"]["name"] in env.pods
    ]
    # the clock did not move during the run: the burst is written, the rest dropped (Karpenter: 5/s, 10)
    assert len(nominated) == burst


class _RunTimes(provisioner.Provisioner):
    """The provisioner's loop with each run recorded (when it started) instead of carried out."""

    runs: list[float]

    async def reconcile(self) -> Decision | None:
        self.runs.append(self.clock.monotonic())
        return None


async def test_a_pending_pods_status_rewrite_does_not_hold_the_batch_window_open(env: Env) -> None:
    """kube-scheduler rewrites the ``PodScheduled`` message of a pod that is already pending (the message
    names the node count). As in Karpenter, a pod counts once per window: the window closes ``idle``
    (1 s) after the last new pod, not after the last rewrite."""
    loop = _RunTimes(
        env.kube,
        env.state,
        env.provider,
        fake.plugins(env.provider),
        EventRecorder(env.kube, clock=env.clock),
        env.clock,
        batch_idle=dt.timedelta(seconds=1),
        batch_max=dt.timedelta(seconds=10),
    )
    loop.runs = []
    env.state.subscribe(loop.on_change)
    settle = anyio.wait_all_tasks_blocked
    async with anyio.create_task_group() as group:
        group.start_soon(loop.run)
        await settle()
        start = env.clock.monotonic()
        pod = await env.pending_pod()  # t=0: a new pending pod opens the window
        await settle()
        env.clock.step(0.6)
        await settle()
        rewritten = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available",
        }
        await env.kube.update_status(resources.PODS, pod, {"conditions": [rewritten]}, NAMESPACE)
        await expect.expect_refreshed(env.kube, env.state, resources.PODS, pod, NAMESPACE)
        await settle()
        env.clock.step(0.4)  # t=1.0: idle since the pod arrived
        await settle()
        runs = [t - start for t in loop.runs]
        group.cancel_scope.cancel()
    assert runs == [1.0]


class _GatedNodeClaimCreates:
    """The real client, holding every NodeClaim create until ``expected`` of them are in flight at once."""

    def __init__(self, kube: KubeClient, expected: int) -> None:
        self._kube = kube
        self.gate = Rendezvous(expected)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kube, name)

    async def create(self, resource: resources.Resource, body: Any, *args: Any, **kwargs: Any) -> Any:
        if resource == resources.NODECLAIMS:
            await self.gate.wait()
        return await self._kube.create(resource, body, *args, **kwargs)


async def test_a_batchs_nodeclaims_are_created_together_not_sixteen_at_a_time(env: Env) -> None:
    """Karpenter creates a batch's NodeClaims in parallel (``CreateNodeClaims``); 16 at a time made a batch
    of 115 take 9 s to write on a busy API server, and the synced gate holds the next batch meanwhile. Each
    of 20 pods needs a node of its own here (3 CPU; the largest fake type has 5), and every create waits
    for the others: with fewer creates in flight than NodeClaims the run never finishes."""
    burst = 20
    assert burst <= provisioner.CREATE_CONCURRENCY
    for _ in range(burst):
        await env.pending_pod(cpu="3")
    gated = _GatedNodeClaimCreates(env.kube, burst)
    loop = env.new_provisioner(typing.cast(KubeClient, gated))
    with anyio.fail_after(60):  # a guard: with too few creates in flight they wait for each other forever
        decision = await loop.reconcile()
    assert decision is not None
    assert len(decision.created) == burst
    assert gated.gate.most == burst
    assert len(await env.nodeclaims()) == burst
