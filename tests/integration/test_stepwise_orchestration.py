"""The orchestration queue driven one step at a time against the real API server, with the fake cloud
provider and a stepped clock, in the style of Karpenter's ``pkg/controllers/disruption/orchestration/
suite_test.go``: the commands are what the pure disruption engine decides on the state
(`simulation.disruption_outcome`), handed to `Orchestrator.start`, then advanced with
`Orchestrator.reconcile`. Replacements are written before any candidate is touched for deletion, a
candidate goes only once every replacement is initialized, and a replacement that vanishes or a command
that times out is undone (taint removed, reason cleared, deletion mark dropped).
"""

from __future__ import annotations

import collections.abc

import pytest

from nodesmith.disruption.commands import Command, Method
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.reconcilers import orchestration
from nodesmith.state import simulation
from nodesmith.testing import expectations as expect
from tests.integration import stepwise_env
from tests.integration.stepwise_env import DisruptionEnv

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
async def env(kube: KubeClient) -> collections.abc.AsyncIterator[DisruptionEnv]:
    env = await stepwise_env.start(kube)
    yield env
    await env.cleanup()


async def decide(env: DisruptionEnv, method: Method) -> Command:
    """The command the pure engine decides for ``method`` on the current state."""
    snapshot = env.state.snapshot()
    types = {env.pool: await env.provider.get_instance_types(snapshot.nodepools[env.pool])}
    outcome, _, _ = simulation.disruption_outcome(method, snapshot, types)
    assert outcome.command is not None, outcome.to_dict()
    return outcome.command


async def drifted_with_replacement(env: DisruptionEnv) -> tuple[str, orchestration.QueuedCommand]:
    """A drifted node with a pod, its command started: ``(candidate, queued command)``."""
    name = await env.machine("Drifted")
    await env.pod(name)
    assert await env.orchestrator.start(await decide(env, Method.DRIFT))
    (queued,) = env.orchestrator.pending()
    return name, queued


async def test_replacements_are_created_before_the_candidate_is_deleted(env: DisruptionEnv) -> None:
    name, queued = await drifted_with_replacement(env)
    (replacement,) = queued.replacements
    # start: candidate tainted with its reason, replacement NodeClaim in the API, candidate marked
    assert await env.tainted(name)
    assert await env.disruption_reason(name) == "Drifted"
    assert set(await env.nodeclaim_names()) == {name, replacement}
    key = env.state.key_for_nodeclaim(name)
    assert key is not None
    node = env.state.state_node(key)
    assert node is not None
    assert node.marked_for_deletion

    # case 2: the replacement is not initialized → wait, the candidate stays
    assert await env.orchestrator.reconcile(queued.id) == orchestration.RECHECK
    claim = await env.nodeclaim(name)
    assert claim is not None
    assert not claim.deleting

    # the replacement comes up → case 3: now the candidate's NodeClaim is deleted
    await expect.expect_initialized_machine(
        env.kube, env.state, env.provider, replacement, now=env.clock.now()
    )
    assert await env.orchestrator.reconcile(queued.id) is None
    assert await env.nodeclaim(name) is None  # no finalizer here: deletion is immediate
    assert env.orchestrator.pending() == []
    assert await env.nodeclaim(replacement) is not None


async def test_an_empty_node_is_deleted_at_once(env: DisruptionEnv) -> None:
    name = await env.machine("Consolidatable")
    command = await decide(env, Method.EMPTINESS)
    assert command.replacements == ()
    assert await env.orchestrator.start(command)
    (queued,) = env.orchestrator.pending()
    assert await env.orchestrator.reconcile(queued.id) is None
    assert await env.nodeclaim(name) is None


async def test_a_candidate_already_queued_is_refused(env: DisruptionEnv) -> None:
    name = await env.machine("Consolidatable")
    command = await decide(env, Method.EMPTINESS)
    assert await env.orchestrator.start(command)
    assert not await env.orchestrator.start(command)  # case 1
    assert len(env.orchestrator.pending()) == 1
    assert await env.tainted(name)


async def test_a_replacement_that_vanishes_undoes_the_command(env: DisruptionEnv) -> None:
    name, queued = await drifted_with_replacement(env)
    (replacement,) = queued.replacements
    await env.kube.delete(resources.NODECLAIMS, replacement)  # say, no capacity for it
    await expect.expect_refreshed(env.kube, env.state, resources.NODECLAIMS, replacement)
    assert await env.orchestrator.reconcile(queued.id) is None
    assert not await env.tainted(name)
    assert await env.disruption_reason(name) is None
    claim = await env.nodeclaim(name)
    assert claim is not None
    assert not claim.deleting
    key = env.state.key_for_nodeclaim(name)
    node = env.state.state_node(key) if key else None
    assert node is not None
    assert not node.marked_for_deletion  # the provisioner no longer counts it as going
    assert env.orchestrator.pending() == []


async def test_a_command_whose_replacement_never_initializes_times_out_and_is_undone(
    env: DisruptionEnv,
) -> None:
    name, queued = await drifted_with_replacement(env)
    assert await env.orchestrator.reconcile(queued.id) == orchestration.RECHECK
    env.clock.step(queued.timeout)
    assert await env.orchestrator.reconcile(queued.id) == orchestration.RECHECK  # not yet: exactly at it
    env.clock.step(1)
    assert await env.orchestrator.reconcile(queued.id) is None  # case 1
    assert not await env.tainted(name)
    assert await env.disruption_reason(name) is None
    claim = await env.nodeclaim(name)
    assert claim is not None
    assert not claim.deleting
    assert len(queued.replacements) == 1
    assert await env.nodeclaim(queued.replacements[0]) is not None  # left for consolidation to judge


async def test_a_node_written_concurrently_keeps_the_other_write_when_tainted(env: DisruptionEnv) -> None:
    name = await env.machine("Consolidatable")
    command = await decide(env, Method.EMPTINESS)
    # someone labels the Node after the state read it: the taint is a read-modify-write on the current one
    await env.kube.merge_patch(resources.NODES, name, {"metadata": {"labels": {"team": "a"}}})
    assert await env.orchestrator.start(command)
    node = await env.node(name)
    assert node is not None
    assert node["metadata"]["labels"]["team"] == "a"
    assert await env.tainted(name)
