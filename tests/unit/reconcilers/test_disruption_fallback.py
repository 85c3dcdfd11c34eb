"""The disruption loop after capacity fallback: while the preferred spot pool is backed off (the shared
`capacity_backoff.CapacityBackoff` the provisioner fills), no replacement is planned there; the pass after
the backoff runs out moves an on-demand node's pods back to spot -- with no other change to the cluster,
so consolidation must notice the offerings came back rather than wait for its 5-minute refresh. Real
cluster state and engine, the injected fake clock; queue and events are the stand-ins of
test_disruption_loop."""

from __future__ import annotations

import typing
from collections.abc import Sequence

import pytest

from nodesmith.api.nodepool import NodePool
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption.commands import Method
from nodesmith.reconcilers import disruption
from nodesmith.state import capacity_backoff
from tests.unit.disruption.fallback_cluster import CATALOGUE, OD, SPOT, fallen_back
from tests.unit.reconcilers.test_disruption_loop import Events, Queue

pytestmark = pytest.mark.anyio


class Catalogue:
    name = "fake"

    async def get_instance_types(self, nodepool: NodePool) -> Sequence[InstanceType]:
        return CATALOGUE


async def test_pods_move_back_to_the_preferred_pool_once_its_backoff_is_over() -> None:
    cluster = fallen_back()
    backoff = capacity_backoff.CapacityBackoff()
    for _ in range(capacity_backoff.FAILURE_THRESHOLD):
        backoff.record_failure(SPOT, ["spot"], "insufficient capacity", cluster.clock.now())
    (until,) = [b.until for b in backoff.active(cluster.clock.now())]

    async def sleep(seconds: float) -> None:
        cluster.clock.step(seconds)

    cluster.clock.sleep = sleep  # type: ignore[method-assign]  # validation delays, stepped at once
    queue = Queue()
    loop = disruption.Disruption(
        kube=typing.cast(typing.Any, None),
        state=cluster.state,
        provider=typing.cast(typing.Any, Catalogue()),
        plugins=manager.Plugins(load_entry_points=False, plugins=[]),
        events=typing.cast(typing.Any, Events()),
        clock=cluster.clock,
        orchestrator=typing.cast(typing.Any, queue),
        backoff=backoff,
    )
    # 1. spot backed off: an on-demand replacement is no cheaper, so nothing moves
    assert await loop.reconcile() is False
    assert queue.started == []
    # 2. the backoff is over (well inside the 5-minute consolidation refresh): one od node goes to spot
    cluster.clock.step(until - cluster.clock.now())
    assert await loop.reconcile() is True
    (command,) = queue.started
    assert command.method is Method.SINGLE_NODE
    assert [c.nodepool.name for c in command.candidates] == [OD]
    assert [r.nodepool for r in command.replacements] == [SPOT]
