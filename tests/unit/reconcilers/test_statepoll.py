"""Polling the cluster state turns changes of NodeClaims (and their Nodes) into work-queue keys: on a state
change at once (only the keys the change touches are read) and on the resync interval otherwise; time is
stepped, never waited for."""

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


def nodeclaim(name: str, rv: str, provider_id: str | None = None) -> dict[str, typing.Any]:
    return {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodeClaim",
        "metadata": {"name": name, "resourceVersion": rv, "uid": f"uid-{name}"},
        "spec": {"nodeClassRef": {"group": "g", "kind": "K", "name": "n"}, "requirements": []},
        "status": {"providerID": provider_id} if provider_id else {},
    }


def node(name: str, rv: str, provider_id: str) -> dict[str, typing.Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "resourceVersion": rv, "uid": f"uid-{name}"},
        "spec": {"providerID": provider_id},
        "status": {"allocatable": {"cpu": "1"}, "capacity": {"cpu": "1"}},
    }


def poller(
    state: ClusterState, seen: list[str], clock: FakeClock, interval: float, watch: typing.Any = None
) -> statepoll.Poller[str]:
    found = statepoll.Poller(state, watch or statepoll.NODECLAIMS, seen.append, clock, interval)
    state.subscribe(found.on_change)
    return found


async def test_new_and_changed_nodeclaims_are_enqueued_once_per_change() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    state.on_upsert(resources.NODECLAIMS, nodeclaim("a", "1"))
    state.on_upsert(resources.NODECLAIMS, nodeclaim("b", "1"))
    seen: list[str] = []

    async with anyio.create_task_group() as group:
        group.start_soon(poller(state, seen, clock, 10).run)
        await settle()
        assert sorted(seen) == ["a", "b"]  # the first look enqueues everything
        clock.step(10)  # a resync with nothing changed: nothing more
        await settle()
        assert len(seen) == 2
        state.on_upsert(resources.NODECLAIMS, nodeclaim("b", "2"))
        await settle()
        assert seen[2:] == ["b"]
        state.on_upsert(resources.NODECLAIMS, nodeclaim("b", "2"))  # a relist of the same version
        await settle()
        assert seen[2:] == ["b"]
        group.cancel_scope.cancel()


async def test_a_state_event_is_picked_up_without_waiting_for_the_resync() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    seen: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(poller(state, seen, clock, 3600).run)
        await settle()
        assert seen == []
        state.on_upsert(resources.NODECLAIMS, nodeclaim("c", "1"))  # the informer path publishes a change
        await settle()
        assert seen == ["c"]
        assert clock.monotonic() == 0  # no time had to pass
        group.cancel_scope.cancel()


async def test_a_node_change_enqueues_its_nodeclaim_and_a_deleted_node_too() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    state.on_upsert(resources.NODECLAIMS, nodeclaim("c", "1", "kwok://c"))
    seen: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(poller(state, seen, clock, 3600).run)
        await settle()
        assert seen == ["c"]
        state.on_upsert(resources.NODES, node("n", "5", "kwok://c"))
        await settle()
        assert seen == ["c", "c"]
        state.on_delete(resources.NODES, node("n", "5", "kwok://c"))  # no longer joined: every key is read
        await settle()
        assert seen == ["c", "c", "c"]
        group.cancel_scope.cancel()


async def test_deleting_nodes_are_enqueued_when_their_nodeclaim_changes() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    doomed = node("n", "5", "kwok://c")
    doomed["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    state.on_upsert(resources.NODES, doomed)
    state.on_upsert(resources.NODES, node("m", "1", "kwok://d"))
    seen: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(poller(state, seen, clock, 3600, statepoll.DELETING_NODES).run)
        await settle()
        assert seen == ["n"]  # only the Node being deleted
        state.on_upsert(resources.NODECLAIMS, nodeclaim("c", "7", "kwok://c"))
        await settle()
        assert seen == ["n", "n"]
        group.cancel_scope.cancel()


async def test_the_resync_finds_a_change_no_event_reported() -> None:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    seen: list[str] = []
    versions: dict[str, str] = {}
    quiet = statepoll.Watch(lambda _: list(versions), lambda _, key: versions.get(key), lambda _, __: ())
    async with anyio.create_task_group() as group:
        group.start_soon(poller(state, seen, clock, 10, quiet).run)
        await settle()
        versions["quiet"] = "1"  # changed behind the state's back: only the resync can see it
        clock.step(9.9)
        await settle()
        assert seen == []
        clock.step(0.1)
        await settle()
        assert seen == ["quiet"]
        group.cancel_scope.cancel()


async def test_unmanaged_node_updates_look_up_no_nodeclaim_but_managed_and_deleting_ones_do() -> None:
    """Idle cost: the heartbeats of Nodes nodesmith does not manage touch no NodeClaim key, so the
    NodeClaim poller looks nothing up for them (at 500 kwok nodes they arrive ~30 times a second)."""
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("claim", provider_id="kwok://managed"))
    state.on_upsert(resources.NODES, f.node("managed", provider_id="kwok://managed", nodepool="default"))
    state.on_upsert(resources.NODES, f.node("plain", provider_id="kwok://plain"))
    looks: list[str] = []

    def version(s: ClusterState, name: str) -> typing.Hashable | None:
        looks.append(name)
        return statepoll.NODECLAIMS.version(s, name)

    counting = statepoll.Watch(statepoll.NODECLAIMS.keys, version, statepoll.NODECLAIMS.touched)
    seen: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(poller(state, seen, clock, 3600, counting).run)
        await settle()
        assert (looks, seen) == (["claim"], ["claim"])
        for _ in range(5):  # heartbeats of a node nodesmith does not manage
            state.on_upsert(resources.NODES, f.node("plain", provider_id="kwok://plain"))
            await settle()
        assert looks == ["claim"]
        state.on_upsert(resources.NODES, f.node("managed", provider_id="kwok://managed", nodepool="default"))
        await settle()
        assert (looks, seen) == (["claim", "claim"], ["claim", "claim"])
        group.cancel_scope.cancel()
