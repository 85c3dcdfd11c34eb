"""The NodeClaim lifecycle and garbage-collection reconcilers driven one reconcile at a time against the
real API server, with the test kit's fake cloud provider and a stepped clock (Karpenter's
``ExpectObjectReconciled`` / ``ExpectSingletonReconciled`` style): each test is one numbered case of
``LifecycleReconciler._reconcile`` or ``GarbageCollector.reconcile``, and nothing waits in real time."""

from __future__ import annotations

import collections.abc
import contextlib
import typing
import uuid

import anyio
import attrs
import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.meta import NodeClassRef
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.clock import SYSTEM
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import garbagecollection, lifecycle, lifecycle_checks, statepoll
from nodesmith.state import ClusterState
from nodesmith.testing import cloudprovider as fake
from nodesmith.testing import conformance
from nodesmith.testing import expectations as expect
from nodesmith.testing.clock import FakeClock
from nodesmith.testing.rendezvous import Rendezvous

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

REF = NodeClassRef(fake.GROUP, fake.KIND, "default")


@attrs.define
class Env:
    kube: KubeClient
    state: ClusterState
    provider: fake.FakeCloudProvider
    clock: FakeClock
    reconciler: lifecycle.LifecycleReconciler
    gc: garbagecollection.GarbageCollector
    applied: list[str] = attrs.field(factory=list)

    async def apply_nodeclaim(self, **spec: object) -> str:
        name = f"step-{uuid.uuid4().hex[:6]}"
        manifest = {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {"name": name, "labels": {labels.LABEL_NODEPOOL: "default"}},
            "spec": {
                "nodeClassRef": dict(fake.ref()),
                "requirements": [
                    {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
                ],
                **spec,
            },
        }
        await expect.expect_applied(self.kube, self.state, resources.NODECLAIMS, manifest)
        self.applied.append(name)
        return name

    async def reconcile(self, name: str) -> float | None:
        requeue = await expect.expect_object_reconciled(self.reconciler, name)
        await expect.expect_refreshed(self.kube, self.state, resources.NODECLAIMS, name)
        return requeue

    async def nodeclaim(self, name: str) -> NodeClaim:
        return NodeClaim.from_dict(await self.kube.get(resources.NODECLAIMS, name))

    async def apply_unregistered_node(self, name: str) -> str:
        """The Node the launched NodeClaim ``name``'s instance would register: its providerID and the
        unregistered taint. Returns the Node's name."""
        node_name = f"node-{name}"
        provider_id = (await self.nodeclaim(name)).status.provider_id
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node_name},
            "spec": {
                "providerID": provider_id,
                "taints": [{"key": labels.TAINT_UNREGISTERED, "effect": "NoExecute"}],
            },
        }
        await expect.expect_applied(self.kube, self.state, resources.NODES, node)
        return node_name

    async def reconcile_past_conflicts(self, name: str, node_name: str) -> None:
        """Reconcile ``name`` until a pass is not a 409 requeue (at most 5): the control plane's node
        controller may write the new Node first, and then the registration looks again."""
        for _ in range(5):
            if await self.reconcile(name) != statepoll.CONFLICT_REQUEUE:
                break
            await expect.expect_refreshed(self.kube, self.state, resources.NODES, node_name)


@pytest.fixture
async def env(kube: KubeClient) -> collections.abc.AsyncIterator[Env]:
    clock = FakeClock(SYSTEM.now())  # near real time: the API server stamps creationTimestamp
    state = expect.synced_state(ClusterState(clock=clock.now))
    provider = fake.FakeCloudProvider()
    events = EventRecorder(kube, clock=clock)
    reconciler = lifecycle.LifecycleReconciler(kube, state, provider, events, clock)
    gc = garbagecollection.GarbageCollector(kube, state, provider, events, clock)
    env = Env(kube, state, provider, clock, reconciler, gc)
    yield env
    for name in env.applied:  # no termination reconciler runs here: release the finalizer ourselves
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.merge_patch(resources.NODECLAIMS, name, {"metadata": {"finalizers": None}})
            await kube.delete(resources.NODECLAIMS, name)


async def test_a_new_nodeclaim_gets_the_finalizer_and_is_launched_in_one_reconcile(env: Env) -> None:
    name = await env.apply_nodeclaim()
    requeue = await env.reconcile(name)
    claim = await env.nodeclaim(name)
    assert labels.FINALIZER_TERMINATION in claim.metadata.finalizers  # case 2
    assert claim.is_true("Launched")  # case 4
    assert claim.status.provider_id in env.provider.machines
    assert len(env.provider.create_calls) == 1
    # case 5: no Node yet → Registered stays Unknown and the reconciler comes back at the deadline
    assert not claim.is_true("Registered")
    assert claim.metadata.creation_timestamp is not None
    deadline = claim.metadata.creation_timestamp + lifecycle_checks.REGISTRATION_TIMEOUT
    assert requeue == (deadline - env.clock.now()).total_seconds()


async def test_an_instance_launched_for_a_nodeclaim_deleted_meanwhile_is_terminated(env: Env) -> None:
    """The NodeClaim (finalizer already on) is gone from the API by the time its launch is written back:
    the instance is terminated at once rather than left to the garbage collector."""
    name = await env.apply_nodeclaim()
    await env.kube.merge_patch(
        resources.NODECLAIMS, name, {"metadata": {"finalizers": [labels.FINALIZER_TERMINATION]}}
    )
    await expect.expect_refreshed(env.kube, env.state, resources.NODECLAIMS, name)
    await env.kube.merge_patch(resources.NODECLAIMS, name, {"metadata": {"finalizers": None}})
    await env.kube.delete(resources.NODECLAIMS, name)  # the state has not heard yet
    await expect.expect_object_reconciled(env.reconciler, name)
    assert len(env.provider.create_calls) == 1
    assert env.provider.machines == {}


async def test_an_instance_launched_for_a_nodeclaim_being_deleted_meanwhile_is_terminated(env: Env) -> None:
    """The NodeClaim (finalizer on) is deleted while its launch is in flight: it still exists, marked for
    deletion, so writing the launch back answers 409, not 404. Its next pass sees it deleting and never
    writes the providerID, so nodeclaim.termination would release it without touching the instance: the
    instance is terminated at once instead of leaking until the garbage collector's next pass."""
    name = await env.apply_nodeclaim()
    await env.kube.merge_patch(
        resources.NODECLAIMS, name, {"metadata": {"finalizers": [labels.FINALIZER_TERMINATION]}}
    )
    await expect.expect_refreshed(env.kube, env.state, resources.NODECLAIMS, name)
    await env.kube.delete(resources.NODECLAIMS, name)  # deletionTimestamp set; the state has not heard
    await expect.expect_object_reconciled(env.reconciler, name)
    assert len(env.provider.create_calls) == 1
    assert env.provider.machines == {}
    assert (await env.nodeclaim(name)).deleting  # nodeclaim.termination still finalizes it


@attrs.define
class GatedLaunches:
    """The fake provider, holding every launch until ``expected`` of them are in flight at once."""

    inner: fake.FakeCloudProvider
    expected: int
    gate: Rendezvous = attrs.field(init=False)

    @gate.default
    def _gate(self) -> Rendezvous:
        return Rendezvous(self.expected)

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self.inner, name)

    async def create(self, claim: NodeClaim) -> NodeClaim:
        await self.gate.wait()
        return await self.inner.create(claim)


async def test_a_burst_of_nodeclaims_is_launched_all_at_once_not_sixteen_at_a_time(env: Env) -> None:
    """A launch is several API round trips; with 16 workers a burst of 200 NodeClaims queued a median 16 s
    for a worker before its launch began. 32 NodeClaims are all launching together here: each launch waits
    for the others, which with fewer workers than NodeClaims never happens."""
    burst = 32
    assert burst <= lifecycle.WORKERS
    names = [await env.apply_nodeclaim() for _ in range(burst)]
    gated = GatedLaunches(env.provider, burst)
    events = EventRecorder(env.kube, clock=env.clock)
    reconciler = lifecycle.LifecycleReconciler(
        env.kube, env.state, typing.cast(CloudProvider, gated), events, env.clock
    )
    async with anyio.create_task_group() as group:
        group.start_soon(reconciler.feed.queue.run)
        for name in names:
            reconciler.feed.queue.add(name)
        with anyio.fail_after(60):  # a guard: with too few workers the launches wait for each other forever
            await gated.gate.all_in.wait()
        group.cancel_scope.cancel()
    assert gated.gate.most == burst


async def test_a_launched_nodeclaim_is_not_launched_again(env: Env) -> None:
    name = await env.apply_nodeclaim()
    await env.reconcile(name)
    env.clock.step(60)
    await env.reconcile(name)
    assert len(env.provider.create_calls) == 1
    assert len(env.provider.machines) == 1


async def test_insufficient_capacity_deletes_the_nodeclaim(env: Env) -> None:
    name = await env.apply_nodeclaim()
    env.provider.next_create_error = errors.InsufficientCapacityError("no capacity")
    assert await env.reconcile(name) is None
    claim = await env.nodeclaim(name)  # the finalizer holds it while termination cleans up
    assert claim.deleting
    assert env.provider.machines == {}


async def test_a_failed_launch_sets_the_condition_and_backs_off(env: Env) -> None:
    name = await env.apply_nodeclaim()
    env.provider.next_create_error = errors.CreateError("QuotaExceeded", "try later")
    first = await env.reconcile(name)
    claim = await env.nodeclaim(name)
    launched = claim.condition("Launched")
    assert launched is not None
    assert (launched.status.value, launched.reason) == ("Unknown", "QuotaExceeded")
    env.provider.next_create_error = errors.CreateError("QuotaExceeded", "try later")
    second = await env.reconcile(name)
    assert (first, second) == (1.0, 2.0)
    assert await env.reconcile(name) is not None  # third try launches
    assert (await env.nodeclaim(name)).is_true("Launched")


async def test_a_nodeclaim_whose_node_never_registers_is_deleted_at_the_deadline(env: Env) -> None:
    name = await env.apply_nodeclaim()
    requeue = await env.reconcile(name)
    assert requeue is not None
    env.clock.step(requeue - 1)
    await env.reconcile(name)
    assert not (await env.nodeclaim(name)).deleting  # case 3: not yet
    env.clock.step(1)
    await env.reconcile(name)
    assert (await env.nodeclaim(name)).deleting  # case 3: registration timed out


async def test_the_node_with_the_providerid_registers_the_nodeclaim(env: Env) -> None:
    name = await env.apply_nodeclaim()
    await env.reconcile(name)
    node_name = await env.apply_unregistered_node(name)
    try:
        await env.reconcile_past_conflicts(name, node_name)
        claim = await env.nodeclaim(name)
        assert claim.is_true("Registered")  # case 5
        assert claim.status.node_name == node_name
        node = await env.kube.get(resources.NODES, node_name)
        assert node["metadata"]["labels"][labels.LABEL_REGISTERED] == "true"
        assert labels.TAINT_UNREGISTERED not in {t["key"] for t in node["spec"].get("taints") or []}
    finally:
        await env.kube.delete(resources.NODES, node_name)


async def test_expect_applied_replaces_an_existing_object_and_feeds_the_state(env: Env) -> None:
    name = await env.apply_nodeclaim()
    current = await env.kube.get(resources.NODECLAIMS, name)
    current["metadata"]["labels"]["team"] = "a"
    del current["metadata"]["resourceVersion"]
    stored = await expect.expect_applied(env.kube, env.state, resources.NODECLAIMS, current)
    assert stored["metadata"]["labels"]["team"] == "a"
    key = env.state.key_for_nodeclaim(name)
    node = env.state.state_node(key) if key else None
    assert node is not None
    assert node.nodeclaim is not None
    assert node.nodeclaim.metadata.labels["team"] == "a"


# -- garbage collection ------------------------------------------------------------------------------------


async def test_gc_does_nothing_before_the_state_has_listed_nodes_and_nodeclaims(kube: KubeClient) -> None:
    clock = FakeClock(SYSTEM.now())
    provider = fake.FakeCloudProvider()
    state = ClusterState(clock=clock.now)  # not synced
    gc = garbagecollection.GarbageCollector(kube, state, provider, EventRecorder(kube, clock=clock), clock)
    machine = await provider.create(conformance.nodeclaim(conformance.nodepool("default", REF)))
    clock.step(3600)
    await expect.expect_singleton_reconciled(gc)  # case 1
    assert list(provider.machines) == [machine.status.provider_id]


async def test_gc_deletes_an_instance_no_nodeclaim_owns_once_the_grace_has_passed(env: Env) -> None:
    orphan = await env.provider.create(conformance.nodeclaim(conformance.nodepool("default", REF)))
    owned = await env.reconcile(await env.apply_nodeclaim())  # launched by the lifecycle: owned
    assert owned is not None
    await expect.expect_singleton_reconciled(env.gc)  # first seen now: too young to be an orphan
    assert orphan.status.provider_id in env.provider.machines
    env.clock.step(garbagecollection.ORPHAN_GRACE)
    await expect.expect_singleton_reconciled(env.gc)  # case 2
    assert orphan.status.provider_id not in env.provider.machines
    assert len(env.provider.machines) == 1  # the owned instance stays


async def test_gc_deletes_a_launched_nodeclaim_whose_instance_vanished(env: Env) -> None:
    name = await env.apply_nodeclaim()
    await env.reconcile(name)
    env.provider.machines.clear()  # the instance is gone behind nodesmith's back
    await expect.expect_singleton_reconciled(env.gc)  # launched just now: within the launch grace
    assert not (await env.nodeclaim(name)).deleting
    env.clock.step(garbagecollection.LAUNCH_GRACE)
    await expect.expect_singleton_reconciled(env.gc)  # case 3
    assert (await env.nodeclaim(name)).deleting


class _HeldEvents:
    """An event recorder that notes, as each event is written, the NodeClaim's conditions in the API, and
    holds every write until ``release`` is set."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.release = anyio.Event()
        self.release.set()
        self.conditions_at: dict[str, set[str]] = {}

    async def publish(self, involved: typing.Any, type: str, reason: str, message: str) -> None:
        if involved.get("kind") == "NodeClaim":
            claim = NodeClaim.from_dict(
                await self.kube.get(resources.NODECLAIMS, involved["metadata"]["name"])
            )
            self.conditions_at[reason] = {c for c in ("Launched", "Registered") if claim.is_true(c)}
        await self.release.wait()


async def test_the_registered_event_is_written_after_the_condition_it_announces(env: Env) -> None:
    """The Registered event used to be written between the Node's registration patch and the NodeClaim's
    status write: one more round trip in the window in which another writer of the NodeClaim's status
    makes that write a 409, and the whole registration is done again."""
    recorder = _HeldEvents(env.kube)
    env.reconciler = lifecycle.LifecycleReconciler(
        env.kube, env.state, env.provider, typing.cast(EventRecorder, recorder), env.clock
    )
    name = await env.apply_nodeclaim()
    await env.reconcile(name)
    node_name = await env.apply_unregistered_node(name)
    try:
        await env.reconcile_past_conflicts(name, node_name)
        assert (await env.nodeclaim(name)).is_true("Registered")
        assert recorder.conditions_at["Launched"] == {"Launched"}
        assert recorder.conditions_at["Registered"] == {"Launched", "Registered"}
    finally:
        await env.kube.delete(resources.NODES, node_name)


@attrs.define
class _CountedLaunches:
    """The fake provider; ``all_in`` is set once ``expected`` launches have been made."""

    inner: fake.FakeCloudProvider
    expected: int
    all_in: anyio.Event = attrs.field(factory=anyio.Event)

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self.inner, name)

    async def create(self, claim: NodeClaim) -> NodeClaim:
        machine = await self.inner.create(claim)
        if len(self.inner.create_calls) >= self.expected:
            self.all_in.set()
        return machine


async def test_a_running_lifecycle_launches_the_next_nodeclaim_while_an_event_is_still_being_written(
    env: Env,
) -> None:
    """Karpenter's event recorder writes in the background; a pass that waited for its events held its
    worker for a round trip nothing depends on. One worker, event writes held: both NodeClaims launch."""
    recorder = _HeldEvents(env.kube)
    recorder.release = anyio.Event()
    names = [await env.apply_nodeclaim() for _ in range(2)]
    counted = _CountedLaunches(env.provider, len(names))
    reconciler = lifecycle.LifecycleReconciler(
        env.kube,
        env.state,
        typing.cast(CloudProvider, counted),
        typing.cast(EventRecorder, recorder),
        env.clock,
        workers=1,
    )
    async with anyio.create_task_group() as group:
        group.start_soon(reconciler.run)
        with anyio.fail_after(60):  # a guard: a worker waiting for its event never takes the second
            await counted.all_in.wait()
        group.cancel_scope.cancel()
    assert {c.name for c in env.provider.create_calls} == set(names)
    assert not recorder.release.is_set()  # the first pass's Launched event is still being written
