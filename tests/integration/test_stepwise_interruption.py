"""The interruption reconciler driven one event at a time against the real API server, with the test kit's
fake cloud provider as the event source and a stepped clock, in the style of Karpenter's AWS
``pkg/controllers/interruption/suite_test.go``: a spot warning for a known machine deletes its NodeClaim and
marks it for deletion in the state (so the provisioner replaces it while it drains); a rebalance hint is
ignored unless asked for, and then only within the NodePool's budget; every event is acknowledged exactly
once, including those for unknown machines and those a restarted process receives again.
"""

from __future__ import annotations

import collections.abc
import contextlib
import uuid

import anyio
import attrs
import pytest

from nodesmith.api import labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.clock import SYSTEM
from nodesmith.cloudprovider.types import InterruptionEvent, InterruptionKind
from nodesmith.disruption.interruption import Action
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import interruption, lifecycle
from nodesmith.state import ClusterState
from nodesmith.testing import cloudprovider as fake
from nodesmith.testing import expectations as expect
from nodesmith.testing.clock import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@attrs.define
class Acks:
    """The event source's side of acknowledgement: which messages were acked, how often."""

    counts: collections.Counter[str] = attrs.field(factory=collections.Counter)
    event: anyio.Event = attrs.field(factory=anyio.Event)

    def event_for(
        self, provider_id: str, kind: InterruptionKind, state: str | None = None
    ) -> InterruptionEvent:
        message_id = f"msg-{uuid.uuid4().hex[:6]}"

        async def ack() -> None:
            self.counts[message_id] += 1
            self.event.set()

        return InterruptionEvent(provider_id, kind, SYSTEM.now().timestamp(), state, message_id, ack)


@attrs.define
class Env:
    kube: KubeClient
    provider: fake.FakeCloudProvider
    clock: FakeClock
    pool: str
    claim: str
    provider_id: str = ""
    state: ClusterState = attrs.field(init=False)
    reconciler: interruption.Interruption = attrs.field(init=False)
    acks: Acks = attrs.field(factory=Acks)

    def __attrs_post_init__(self) -> None:
        self.restart()

    def restart(self, *, replace_on_rebalance: bool = False) -> None:
        """A new process: fresh state and reconciler that know only what `relist` reads from the API."""
        self.state = expect.synced_state(ClusterState(clock=self.clock.now))
        events = EventRecorder(self.kube, clock=self.clock)
        self.reconciler = interruption.Interruption(
            self.kube,
            self.state,
            self.provider,
            events,
            self.clock,
            replace_on_rebalance=replace_on_rebalance,
        )

    async def relist(self) -> None:
        await expect.expect_refreshed(self.kube, self.state, resources.NODEPOOLS, self.pool)
        await expect.expect_refreshed(self.kube, self.state, resources.NODECLAIMS, self.claim)

    async def handle(self, event: InterruptionEvent) -> Action:
        action = await self.reconciler.handle(event)
        await expect.expect_refreshed(self.kube, self.state, resources.NODECLAIMS, self.claim)
        return action

    async def nodeclaim(self) -> NodeClaim | None:
        with contextlib.suppress(kube_errors.NotFoundError):
            return NodeClaim.from_dict(await self.kube.get(resources.NODECLAIMS, self.claim))
        return None

    async def deleting(self) -> bool:
        claim = await self.nodeclaim()
        return claim is None or claim.deleting


async def _env(kube: KubeClient, budget: str) -> Env:
    suffix = uuid.uuid4().hex[:6]
    pool, claim = f"intr-{suffix}", f"intr-{suffix}"
    await kube.create(
        resources.NODEPOOLS,
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodePool",
            "metadata": {"name": pool},
            "spec": {
                "template": {"spec": {"nodeClassRef": dict(fake.ref()), "requirements": []}},
                "disruption": {"budgets": [{"nodes": budget}]},
            },
        },
    )
    await kube.create(
        resources.NODECLAIMS,
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {"name": claim, "labels": {labels.LABEL_NODEPOOL: pool}},
            "spec": {"nodeClassRef": dict(fake.ref()), "requirements": []},
        },
    )
    env = Env(kube, fake.FakeCloudProvider(), FakeClock(SYSTEM.now()), pool, claim)
    await env.relist()
    events = EventRecorder(kube, clock=env.clock)
    launcher = lifecycle.LifecycleReconciler(kube, env.state, env.provider, events, env.clock)
    await expect.expect_object_reconciled(launcher, claim)
    await env.relist()
    launched = await env.nodeclaim()
    assert launched is not None
    assert launched.status.provider_id is not None
    env.provider_id = launched.status.provider_id
    return env


async def _cleanup(kube: KubeClient, env: Env) -> None:
    with contextlib.suppress(kube_errors.NotFoundError):
        await kube.merge_patch(resources.NODECLAIMS, env.claim, {"metadata": {"finalizers": None}})
        await kube.delete(resources.NODECLAIMS, env.claim)
    with contextlib.suppress(kube_errors.NotFoundError):
        await kube.delete(resources.NODEPOOLS, env.pool)


@pytest.fixture
async def env(kube: KubeClient) -> collections.abc.AsyncIterator[Env]:
    env = await _env(kube, budget="10%")
    yield env
    await _cleanup(kube, env)


@pytest.fixture
async def frozen_env(kube: KubeClient) -> collections.abc.AsyncIterator[Env]:
    """Like ``env`` but the NodePool's budget allows no disruption at all."""
    env = await _env(kube, budget="0")
    yield env
    await _cleanup(kube, env)


async def test_a_spot_warning_deletes_the_nodeclaim_and_marks_it_for_deletion(env: Env) -> None:
    event = env.acks.event_for(env.provider_id, InterruptionKind.SPOT_INTERRUPTION)
    assert await env.reconciler.handle(event) is Action.DELETE
    node = env.state.state_node(env.provider_id)
    assert node is not None
    assert node.marked  # before the watch says it is deleting: the provisioner replaces it at once
    assert await env.deleting()
    assert env.acks.counts == {event.message_id: 1}
    assert env.provider.delete_calls == []  # the instance goes through termination, not from here


async def test_an_event_for_an_unknown_instance_is_dropped_and_acknowledged(env: Env) -> None:
    event = env.acks.event_for("fake://nobody", InterruptionKind.SPOT_INTERRUPTION)
    assert await env.handle(event) is Action.DROP_UNKNOWN
    assert not await env.deleting()
    assert env.acks.counts == {event.message_id: 1}


async def test_a_running_state_change_is_ignored_and_a_stopping_one_deletes(env: Env) -> None:
    running = env.acks.event_for(env.provider_id, InterruptionKind.STATE_CHANGE, "running")
    assert await env.handle(running) is Action.IGNORE
    assert not await env.deleting()
    stopping = env.acks.event_for(env.provider_id, InterruptionKind.STATE_CHANGE, "stopping")
    assert await env.handle(stopping) is Action.DELETE
    assert await env.deleting()


async def test_a_rebalance_hint_is_ignored_unless_replacement_is_asked_for(env: Env) -> None:
    hint = env.acks.event_for(env.provider_id, InterruptionKind.REBALANCE_RECOMMENDATION)
    assert await env.handle(hint) is Action.IGNORE
    assert not await env.deleting()
    env.restart(replace_on_rebalance=True)
    await env.relist()
    assert await env.handle(hint) is Action.DELETE  # the budget (10% of one node rounds up) allows one
    assert await env.deleting()


async def test_a_rebalance_replacement_respects_a_budget_that_allows_nothing(frozen_env: Env) -> None:
    env = frozen_env
    env.restart(replace_on_rebalance=True)
    await env.relist()
    hint = env.acks.event_for(env.provider_id, InterruptionKind.REBALANCE_RECOMMENDATION)
    assert await env.handle(hint) is Action.IGNORE
    assert not await env.deleting()
    assert env.acks.counts == {hint.message_id: 1}


async def test_a_redelivered_warning_after_a_restart_finds_the_nodeclaim_deleting(env: Env) -> None:
    event = env.acks.event_for(env.provider_id, InterruptionKind.SPOT_INTERRUPTION)
    assert await env.handle(event) is Action.DELETE
    env.restart()  # died before the source forgot the message: it comes again
    await env.relist()
    assert await env.handle(event) is Action.ALREADY_DELETING
    assert env.acks.counts == {event.message_id: 2}


async def test_a_nodeclaim_already_gone_from_the_api_is_not_an_error(env: Env) -> None:
    await env.kube.merge_patch(resources.NODECLAIMS, env.claim, {"metadata": {"finalizers": None}})
    await env.kube.delete(resources.NODECLAIMS, env.claim)  # the state has not heard yet
    event = env.acks.event_for(env.provider_id, InterruptionKind.SPOT_INTERRUPTION)
    assert await env.reconciler.handle(event) is Action.DELETE
    assert env.acks.counts == {event.message_id: 1}


async def test_run_consumes_the_providers_stream(env: Env) -> None:
    event = env.acks.event_for(env.provider_id, InterruptionKind.SPOT_INTERRUPTION)
    env.provider.interrupt(event)
    async with anyio.create_task_group() as group:
        group.start_soon(env.reconciler.run)
        await env.acks.event.wait()
        group.cancel_scope.cancel()
    assert await env.deleting()
