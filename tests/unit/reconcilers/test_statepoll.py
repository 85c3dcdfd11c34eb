"""Polling the cluster state turns changes of NodeClaims (and their Nodes) into work-queue keys, on a state
event at once and on the resync interval otherwise; time is stepped, never waited for."""

from __future__ import annotations

import typing

import anyio
import pytest

from nodesmith.kube import resources
from nodesmith.reconcilers import statepoll
from nodesmith.state import ClusterState
from nodesmith.testing.clock import FakeClock
from tests.unit.state import factories as f

pytestmark = pytest.mark.anyio

settle = anyio.wait_all_tasks_blocked


def nodeclaim(name: str, rv: str) -> dict[str, typing.Any]:
    return {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodeClaim",
        "metadata": {"name": name, "resourceVersion": rv, "uid": f"uid-{name}"},
        "spec": {"nodeClassRef": {"group": "g", "kind": "K", "name": "n"}, "requirements": []},
    }


async def test_new_and_changed_nodeclaims_are_enqueued_once_per_change() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    state.on_upsert(resources.NODECLAIMS, nodeclaim("a", "1"))
    state.on_upsert(resources.NODECLAIMS, nodeclaim("b", "1"))
    seen: list[str] = []

    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: statepoll.poll(state, statepoll.nodeclaim_versions, seen.append, clock=clock, interval=10)
        )
        await settle()
        assert sorted(seen) == ["a", "b"]  # the first look enqueues everything
        clock.step(10)  # a resync with nothing changed: nothing more
        await settle()
        assert len(seen) == 2
        state.on_upsert(resources.NODECLAIMS, nodeclaim("b", "2"))
        await settle()
        assert seen[2:] == ["b"]
        group.cancel_scope.cancel()


async def test_a_state_event_is_picked_up_without_waiting_for_the_resync() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    seen: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: statepoll.poll(
                state, statepoll.nodeclaim_versions, seen.append, clock=clock, interval=3600
            )
        )
        await settle()
        assert seen == []
        state.on_upsert(resources.NODECLAIMS, nodeclaim("c", "1"))  # the informer path notifies subscribers
        await settle()
        assert seen == ["c"]
        assert clock.monotonic() == 0  # no time had to pass
        group.cancel_scope.cancel()


async def test_the_resync_finds_a_change_no_event_reported() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    seen: list[str] = []
    versions: dict[str, str] = {}
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: statepoll.poll(state, lambda _: dict(versions), seen.append, clock=clock, interval=10)
        )
        await settle()
        versions["quiet"] = "1"  # changed behind the state's back: only the resync can see it
        clock.step(9.9)
        await settle()
        assert seen == []
        clock.step(0.1)
        await settle()
        assert seen == ["quiet"]
        group.cancel_scope.cancel()


async def test_unmanaged_node_updates_wake_no_poller_but_managed_and_deleting_ones_do() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("claim", provider_id="kwok://managed"))
    state.on_upsert(resources.NODES, f.node("managed", provider_id="kwok://managed", nodepool="default"))
    state.on_upsert(resources.NODES, f.node("plain", provider_id="kwok://plain"))
    looks: list[int] = []

    def versions(snapshot: typing.Any) -> dict[str, str]:
        looks.append(1)
        return statepoll.nodeclaim_versions(snapshot)

    seen: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: statepoll.poll(state, versions, seen.append, clock=clock, interval=3600))
        await settle()
        assert (len(looks), seen) == (1, ["claim"])
        for _ in range(5):  # heartbeats of a node nodesmith does not manage
            state.on_upsert(resources.NODES, f.node("plain", provider_id="kwok://plain"))
            await settle()
        assert len(looks) == 1
        state.on_upsert(resources.NODES, f.node("managed", provider_id="kwok://managed", nodepool="default"))
        await settle()
        assert (len(looks), seen) == (2, ["claim", "claim"])
        state.on_upsert(resources.NODES, f.node("plain", provider_id="kwok://plain", deleting=True))
        await settle()
        assert len(looks) == 3
        state.on_delete(resources.NODES, f.node("plain", provider_id="kwok://plain"))
        await settle()
        assert len(looks) == 4
        group.cancel_scope.cancel()
