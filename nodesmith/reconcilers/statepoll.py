"""How per-object reconcilers learn that an object changed: diff the versions they care about in the
in-memory cluster state and enqueue the keys whose version changed.

A look is taken as soon as the state reports a Node, NodeClaim or NodePool event (`ClusterState.subscribe`),
several events in a row collapsing into one look, and at least every ``interval`` seconds regardless (a
resync, like an informer's). Updates of Nodes that no version here reads -- not joined to a NodeClaim and
not being deleted, i.e. the heartbeats of unmanaged nodes -- wake nobody (`wakes`): a look costs a
snapshot of every node, and at 500 kwok nodes those heartbeats made four pollers look about 30 times a
second with nothing to do (tests/bench/bench_cluster.py). Diffing versions rather than forwarding events keeps one rule for every
reconciler: a key is enqueued when what the reconciler reads about it changed, whatever caused it.

Fed by the cluster state (`ClusterState.snapshot`); consumed by the lifecycle, NodeClaim termination,
node termination and NodePool status reconcilers, whose ``run`` starts `poll` next to their queue.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Awaitable, Callable, Hashable, Mapping

import anyio

from nodesmith.clock import Clock
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.reconcilers.queues import WorkQueue
from nodesmith.state.cluster import ClusterState
from nodesmith.state.snapshot import Snapshot

__all__ = [
    "CONFLICT_REQUEUE",
    "DEFAULT_INTERVAL",
    "drive",
    "node_versions",
    "nodeclaim_versions",
    "nodepool_versions",
    "poll",
    "settle",
    "wakes",
]

K = typing.TypeVar("K", bound=Hashable)

DEFAULT_INTERVAL = 10.0
"""Seconds between two looks at the state when nothing was reported (the resync period)."""

_WAKING = (resources.NODES, resources.NODECLAIMS, resources.NODEPOOLS)


def _rv(obj: Mapping[str, typing.Any] | None) -> str:
    if obj is None:
        return ""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def nodeclaim_versions(snapshot: Snapshot) -> dict[str, tuple[str, str]]:
    """NodeClaim name → (its resourceVersion, its Node's resourceVersion or "")."""
    out: dict[str, tuple[str, str]] = {}
    for claim in snapshot.unlaunched_nodeclaims:
        out[claim.name] = (claim.metadata.resource_version or "", "")
    for state_node in snapshot.nodes:
        if state_node.nodeclaim is not None:
            out[state_node.nodeclaim.name] = (
                state_node.nodeclaim.metadata.resource_version or "",
                _rv(state_node.node),
            )
    return out


def node_versions(snapshot: Snapshot, *, deleting_only: bool = True) -> dict[str, tuple[str, str]]:
    """Node name → (its resourceVersion, its NodeClaim's resourceVersion or ""), for Nodes being deleted
    (or all Nodes)."""
    out: dict[str, tuple[str, str]] = {}
    for state_node in snapshot.nodes:
        node = state_node.node
        if node is None:
            continue
        if deleting_only and not (node.get("metadata") or {}).get("deletionTimestamp"):
            continue
        claim = state_node.nodeclaim
        out[str(node["metadata"]["name"])] = (
            _rv(node),
            (claim.metadata.resource_version or "") if claim is not None else "",
        )
    return out


def nodepool_versions(snapshot: Snapshot) -> dict[str, str]:
    """NodePool name → its resourceVersion."""
    return {name: pool.metadata.resource_version or "" for name, pool in snapshot.nodepools.items()}


def wakes(
    state: ClusterState, resource: resources.Resource, obj: Mapping[str, typing.Any], deleted: bool
) -> bool:
    """Whether an applied event can change what the versions functions above report: every NodeClaim and
    NodePool event, every Node deletion, and updates of Nodes being deleted or joined to a NodeClaim (or
    not joined to anything yet). An unmanaged Node's update cannot: no version reads it, and a Node's
    providerID and deletion, which decide the join and `node_versions`, are set once."""
    if resource not in _WAKING:
        return False
    if resource != resources.NODES or deleted:
        return True
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return True
    key = state.key_for_node(str(meta.get("name")))
    node = state.state_node(key) if key is not None else None
    return node is None or node.nodeclaim is not None


async def poll(
    state: ClusterState,
    versions: Callable[[Snapshot], Mapping[K, Hashable]],
    enqueue: Callable[[K], None],
    *,
    clock: Clock,
    interval: float = DEFAULT_INTERVAL,
) -> None:
    """``enqueue`` each key that is new or whose version changed, looking after every relevant state event
    and every ``interval`` seconds. Runs until cancelled; the first pass enqueues every key (a fresh leader
    reconciles everything once)."""
    changed = [anyio.Event()]

    def wake(resource: resources.Resource, obj: Mapping[str, typing.Any], deleted: bool) -> None:
        if wakes(state, resource, obj, deleted):
            changed[0].set()

    state.subscribe(wake)
    seen: dict[K, Hashable] = {}
    while True:
        changed[0] = anyio.Event()
        current = dict(versions(state.snapshot()))
        for key, version in current.items():
            if seen.get(key) != version:
                enqueue(key)
        seen = current
        await clock.wait(changed[0], interval)


CONFLICT_REQUEUE = 0.5
"""Seconds before retrying a key whose write lost an optimistic-concurrency race (409)."""


async def settle(reconcile: Callable[[K], Awaitable[float | None]], key: K) -> float | None:
    """Run one reconcile of ``key`` the way every per-object reconciler wants API races handled: a 409 means
    someone else wrote first (look again shortly), a 404 means the object is gone (nothing left to do)."""
    try:
        return await reconcile(key)
    except kube_errors.ConflictError:
        return CONFLICT_REQUEUE
    except kube_errors.NotFoundError:
        return None


async def drive(
    queue: WorkQueue[K],
    state: ClusterState,
    versions: Callable[[Snapshot], Mapping[K, Hashable]],
    *,
    clock: Clock,
    interval: float = DEFAULT_INTERVAL,
) -> None:
    """Run ``queue``'s workers and feed them the keys `poll` finds changed, until cancelled."""
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        group.start_soon(functools.partial(poll, state, versions, queue.add, clock=clock, interval=interval))
