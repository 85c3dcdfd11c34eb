"""The disruption loop driven one pass at a time against the real API server, with the fake cloud provider
and a stepped clock (the validation delay is stepped over, never waited), in the style of Karpenter's
``pkg/controllers/disruption/*_test.go``: an empty consolidatable node is disrupted only after validation, a
drifted node with pods is handed over at once with a replacement, a change during the validation delay
drops the command, and a restarted process removes the disrupted taint a crash left behind.
"""

from __future__ import annotations

import collections.abc
from typing import Any

import anyio
import pytest

from nodesmith.api import labels
from nodesmith.disruption.commands import Method
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.state import ClusterState
from nodesmith.testing import expectations as expect
from tests.integration import stepwise_env
from tests.integration.stepwise_env import DisruptionEnv

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
async def env(kube: KubeClient) -> collections.abc.AsyncIterator[DisruptionEnv]:
    env = await stepwise_env.start(kube)
    yield env
    await env.cleanup()


async def reconcile(env: DisruptionEnv) -> bool:
    return await expect.expect_reconciled_stepping(env.loop.reconcile, env.clock)


async def test_nothing_is_decided_before_the_state_has_synced(env: DisruptionEnv) -> None:
    name = await env.machine("Consolidatable")
    env.loop.state = ClusterState(clock=env.clock.now)  # informers not listed yet
    assert await reconcile(env) is False  # case 1
    assert not await env.tainted(name)
    assert env.loop.decisions == collections.deque()


async def test_an_empty_node_is_disrupted_only_after_the_validation_delay(env: DisruptionEnv) -> None:
    name = await env.machine("Consolidatable")
    before = env.clock.now()
    assert await reconcile(env) is True
    assert env.clock.now() - before >= env.loop.options.validation_delay  # validated after the delay
    (record,) = [d for d in env.loop.decisions if d.started]
    assert record.outcome.method is Method.EMPTINESS
    # handed to the queue: tainted, reason recorded, marked; not deleted (the queue does that)
    assert await env.tainted(name)
    assert await env.disruption_reason(name) == "Empty"
    assert env.orchestrator.queued_keys() == {env.state.key_for_nodeclaim(name)}
    claim = await env.nodeclaim(name)
    assert claim is not None
    assert not claim.deleting


async def test_a_pod_landing_during_the_validation_delay_drops_the_command(env: DisruptionEnv) -> None:
    name = await env.machine("Consolidatable")
    outcome: list[bool] = []
    landed: list[str] = []
    async with anyio.create_task_group() as group:

        async def run() -> None:
            outcome.append(await env.loop.reconcile())
            group.cancel_scope.cancel()  # (also ends the wait below if the loop never waited)

        group.start_soon(run)
        deadline = await env.clock.sleeping()  # the loop waits out the validation delay
        landed.append(await env.pod(name, annotations={labels.ANNOTATION_DO_NOT_DISRUPT: "true"}))
        env.clock.step(deadline - env.clock.monotonic())
        await anyio.sleep_forever()  # until run() is done
    assert len(landed) == 1  # the loop did wait, and the pod landed meanwhile
    assert outcome == [False]
    rejected = [d for d in env.loop.decisions if d.outcome.method is Method.EMPTINESS]
    assert rejected
    assert rejected[0].validated is not None
    assert not rejected[0].started
    assert not await env.tainted(name)
    assert env.orchestrator.queued_keys() == frozenset()


async def test_a_drifted_node_with_pods_is_replaced_without_waiting(env: DisruptionEnv) -> None:
    name = await env.machine("Drifted")
    await env.pod(name)
    before = env.clock.now()
    assert await reconcile(env) is True
    assert env.clock.now() == before  # drift acts at once, no validation delay
    (queued,) = env.orchestrator.pending()
    assert queued.command.method is Method.DRIFT
    assert len(queued.replacements) == 1
    assert set(await env.nodeclaim_names()) == {name, queued.replacements[0]}  # replacement written first
    assert await env.tainted(name)
    assert await env.disruption_reason(name) == "Drifted"


async def test_a_do_not_disrupt_pod_keeps_its_node(env: DisruptionEnv) -> None:
    name = await env.machine("Drifted", "Consolidatable")
    await env.pod(name, annotations={labels.ANNOTATION_DO_NOT_DISRUPT: "true"})
    assert await reconcile(env) is False
    assert not await env.tainted(name)
    assert all(not d.started for d in env.loop.decisions)


async def test_a_restarted_loop_removes_the_taint_a_crash_left_behind(env: DisruptionEnv) -> None:
    name = await env.machine("Consolidatable")
    assert await reconcile(env) is True  # tainted and queued; then the process dies before deleting
    assert await env.tainted(name)
    env.restart()
    await env.relist()
    # case 2 of the new process: the taint on a node nothing is disrupting goes first; then emptiness
    # finds the same node again and starts over
    assert await reconcile(env) is True
    assert env.orchestrator.queued_keys() == {env.state.key_for_nodeclaim(name)}
    node = await env.kube.get(resources.NODES, name)
    disrupted = [t for t in node["spec"].get("taints") or [] if t["key"] == labels.TAINT_DISRUPTED]
    assert len(disrupted) == 1  # removed, then set again: never doubled


async def test_a_stray_taint_on_a_node_nothing_disrupts_is_removed(env: DisruptionEnv) -> None:
    name = await env.machine()  # not consolidatable: nothing will disrupt it again
    await env.kube.mutate(resources.NODES, name, _add_disrupted_taint)
    await env.relist()
    assert await reconcile(env) is False
    assert not await env.tainted(name)


def _add_disrupted_taint(node: dict[str, Any]) -> dict[str, Any]:
    spec = dict(node.get("spec") or {})
    spec["taints"] = [*(spec.get("taints") or []), {"key": labels.TAINT_DISRUPTED, "effect": "NoSchedule"}]
    return {**node, "spec": spec}
