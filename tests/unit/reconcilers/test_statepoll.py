"""Polling the cluster state turns changes of NodeClaims (and their Nodes) into work-queue keys."""

from __future__ import annotations

import datetime as dt
import typing

import anyio
import pytest

from nodesmith.kube import resources
from nodesmith.reconcilers import statepoll
from nodesmith.state import ClusterState

pytestmark = pytest.mark.anyio


def nodeclaim(name: str, rv: str) -> dict[str, typing.Any]:
    return {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodeClaim",
        "metadata": {"name": name, "resourceVersion": rv, "uid": f"uid-{name}"},
        "spec": {"nodeClassRef": {"group": "g", "kind": "K", "name": "n"}, "requirements": []},
    }


async def test_new_and_changed_nodeclaims_are_enqueued_once_per_change() -> None:
    state = ClusterState(clock=lambda: dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    state.on_upsert(resources.NODECLAIMS, nodeclaim("a", "1"))
    state.on_upsert(resources.NODECLAIMS, nodeclaim("b", "1"))
    seen: list[str] = []

    async def until(count: int) -> None:
        with anyio.fail_after(5):
            while len(seen) < count:
                await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: statepoll.poll(state, statepoll.nodeclaim_versions, seen.append, interval=0.01)
        )
        await until(2)
        assert sorted(seen) == ["a", "b"]
        await anyio.sleep(0.05)  # unchanged: nothing more
        assert len(seen) == 2
        state.on_upsert(resources.NODECLAIMS, nodeclaim("b", "2"))
        await until(3)
        assert seen[2] == "b"
        group.cancel_scope.cancel()


async def test_a_state_event_is_picked_up_without_waiting_for_the_resync() -> None:
    state = ClusterState(clock=lambda: dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    seen: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: statepoll.poll(state, statepoll.nodeclaim_versions, seen.append, interval=3600)
        )
        await anyio.sleep(0.05)
        assert seen == []
        state.on_upsert(resources.NODECLAIMS, nodeclaim("c", "1"))  # the informer path notifies subscribers
        with anyio.fail_after(5):
            while not seen:
                await anyio.sleep(0.01)
        assert seen == ["c"]
        group.cancel_scope.cancel()
