"""NodeClaim marking hears of pod events and NodePool changes through the state's change feed alone: the
claim behind a node gets a pod event when a workload pod arrives (dated by its PodScheduled time), and every
claim of a changed NodePool is looked at again."""

from __future__ import annotations

import datetime as dt
import typing

import pytest

from nodesmith.kube import resources
from nodesmith.reconcilers import controllers, nodeclaim_marking
from nodesmith.state import ClusterState
from nodesmith.testing.clock import FakeClock

from . import factories as f

pytestmark = pytest.mark.anyio


def marking(state: ClusterState, clock: FakeClock) -> nodeclaim_marking.NodeClaimMarking:
    unused = typing.cast(typing.Any, None)  # on_change touches neither the API nor the provider
    found = nodeclaim_marking.NodeClaimMarking(unused, state, unused, unused, unused, clock)
    controllers.listen(state, [found])
    return found


async def test_a_pod_arriving_on_a_node_is_a_pod_event_of_its_nodeclaim_at_its_scheduling_time() -> None:
    clock = FakeClock(dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC))
    state = ClusterState(clock=clock.now)
    subject = marking(state, clock)
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("c", provider_id="kwok://a", node_name="a"))
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    pod = f.pod("web", node_name="a")
    pod["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T11:00:00Z"}
    ]
    state.on_upsert(resources.PODS, pod)
    assert subject._pod_events == {"c": dt.datetime(2025, 1, 1, 11, tzinfo=dt.UTC)}

    clock.step(60)
    state.on_upsert(resources.PODS, f.pod("ds", node_name="a", daemonset="agent"))  # not a workload pod
    assert subject._pod_events["c"] == dt.datetime(2025, 1, 1, 11, tzinfo=dt.UTC)
    state.on_delete(resources.PODS, pod)  # left: a pod event now
    assert subject._pod_events["c"] == clock.now()


async def test_a_nodepool_change_requeues_every_claim_of_the_pool() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    subject = marking(state, clock)
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("c1", provider_id="kwok://a"))
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("c2", provider_id="kwok://b", nodepool="other"))
    subject._queue = type(subject._queue)("t", subject.reconcile, clock=clock)  # empty, to see what is added
    subject._provider_drift["c1"] = (0.0, "stale")
    state.on_upsert(resources.NODEPOOLS, f.nodepool("default"))
    assert list(subject._queue._ready) == ["c1"]
    assert "c1" not in subject._provider_drift
