"""The disruption loop's order of methods within one pass, on a real cluster state and the real pure
engine; the orchestration queue and the event recorder are stand-ins that record what they were given."""

from __future__ import annotations

import typing
from collections.abc import Sequence

import pytest

from nodesmith.api.nodepool import NodePool
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption.commands import Command, Method, Rejection
from nodesmith.reconcilers import disruption
from tests.unit.disruption.factories import CATALOGUE, Cluster

pytestmark = pytest.mark.anyio


class Catalogue:
    name = "fake"

    async def get_instance_types(self, nodepool: NodePool) -> Sequence[InstanceType]:
        return CATALOGUE


class Queue:
    """Stands in for the orchestration queue: starts every command it is given."""

    def __init__(self) -> None:
        self.started: list[Command] = []

    def queued_keys(self) -> frozenset[str]:
        return frozenset()

    def history(self) -> tuple[()]:
        return ()

    async def start(self, command: Command) -> bool:
        self.started.append(command)
        return True


class Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    async def publish(self, obj: typing.Any, kind: str, reason: str, message: str) -> None:
        self.published.append((reason, message))


async def test_a_multi_node_command_rejected_at_validation_lets_single_node_try_in_the_same_pass() -> None:
    """Karpenter multinodeconsolidation.go: a validation error returns no command, and the controller goes
    on to the next method (single-node consolidation) in the same reconcile."""
    cluster = Cluster()
    cluster.pool(budgets=[{"nodes": "100%"}])
    for name in ("a", "b", "c"):
        cluster.machine(name, "medium")
        cluster.pod(name, cpu="1")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        # during the first validation delay, pods that may not be disrupted land on a and b: any multi-node
        # command (it needs two of the three nodes) no longer holds, but c alone can still go
        if not waits:
            for name in ("a", "b"):
                cluster.pod(
                    name, cpu="100m", app="pinned", annotations={"nodesmith.io/do-not-disrupt": "true"}
                )
        waits.append(seconds)
        cluster.clock.step(seconds)

    cluster.clock.sleep = sleep  # type: ignore[method-assign]  # the loop's waits, stepped at once

    queue, events = Queue(), Events()
    loop = disruption.Disruption(
        kube=typing.cast(typing.Any, None),
        state=cluster.state,
        provider=typing.cast(typing.Any, Catalogue()),
        plugins=manager.Plugins(load_entry_points=False, plugins=[]),
        events=typing.cast(typing.Any, events),
        clock=cluster.clock,
        orchestrator=typing.cast(typing.Any, queue),
    )
    assert await loop.reconcile() is True
    methods = [record.outcome.method for record in loop.decisions]
    assert methods == [Method.EMPTINESS, Method.DRIFT, Method.MULTI_NODE, Method.SINGLE_NODE]
    multi, single = loop.decisions[2], loop.decisions[3]
    assert isinstance(multi.validated, Rejection)
    assert "churn" in multi.validated.message
    assert single.started
    (command,) = queue.started
    assert command.method is Method.SINGLE_NODE
    assert [c.name for c in command.candidates] == ["c"]
    assert waits == [15.0, 15.0], "each consolidation command waited out its own validation delay"
    assert any(reason == "ConsolidationRejected" for reason, _ in events.published)
