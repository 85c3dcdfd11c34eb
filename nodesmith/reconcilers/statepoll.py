"""How per-object reconcilers learn that an object changed: the cluster state's change feed names what
changed; a `Poller` turns that into the keys its reconciler watches, and enqueues those whose version (what
the reconciler reads about them) changed.

Each `Watch` says, for one kind of key, which keys a `Change` touches and what a key's version is, read
straight from the state -- no snapshot is built per event. A change the watch cannot map to keys (a Node
gone with the NodeClaim it pointed to) makes the next look cover every key, and so does the resync every
``interval`` seconds (like an informer's), which also finds what changed without an event. Diffing
versions rather than forwarding events keeps one rule for every reconciler: a key is enqueued when what
the reconciler reads about it changed, whatever caused it.

Fed by the cluster state (its reconciler's ``on_change``, subscribed by the composition root); used by
the lifecycle, NodeClaim termination, node termination and NodePool status reconcilers, each wired the
same way through one `Feed` (its work queue and its poller), whose ``run`` starts `drive`.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Hashable, Iterable

import anyio
import attrs

from nodesmith.clock import Clock
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.reconcilers.queues import WorkQueue
from nodesmith.state.changes import Change
from nodesmith.state.cluster import ClusterState

__all__ = [
    "CONFLICT_REQUEUE",
    "DEFAULT_INTERVAL",
    "DELETING_NODES",
    "NODECLAIMS",
    "NODEPOOLS",
    "Feed",
    "Poller",
    "Watch",
    "drive",
    "settle",
]

K = typing.TypeVar("K", bound=Hashable)

DEFAULT_INTERVAL = 10.0
"""Seconds between two looks at every key when nothing was reported (the resync period)."""


@attrs.frozen(slots=True)
class Watch(typing.Generic[K]):
    """One kind of key a reconciler works on, read from the state."""

    keys: Callable[[ClusterState], Iterable[K]]
    """Every key there is now (the resync)."""
    version: Callable[[ClusterState, K], Hashable | None]
    """What the reconciler reads about ``key``; ``None`` when there is no such key."""
    touched: Callable[[ClusterState, Change], Iterable[K] | None]
    """The keys ``change`` may have changed; ``None`` when that cannot be told (look at every key)."""


def _nodeclaim_version(state: ClusterState, name: str) -> tuple[str, str] | None:
    """(the NodeClaim's resourceVersion, its Node's resourceVersion or "")."""
    key = state.key_for_nodeclaim(name)
    node = state.state_node(key) if key is not None else None
    if node is None or node.nodeclaim is None:
        return None
    node_version = node.node.resource_version if node.node is not None else None
    return (node.nodeclaim.metadata.resource_version or "", node_version or "")


def _nodeclaims_touched(state: ClusterState, change: Change) -> Iterable[str] | None:
    if change.resource == resources.NODECLAIMS:
        return (change.key,)
    if change.resource != resources.NODES:
        return ()
    key = state.key_for_node(change.key)
    node = state.state_node(key) if key is not None else None
    if node is None:
        return None  # gone: the NodeClaim it belonged to is no longer joined to it
    return (node.nodeclaim.name,) if node.nodeclaim is not None else ()


NODECLAIMS: Watch[str] = Watch(lambda s: s.nodeclaim_names(), _nodeclaim_version, _nodeclaims_touched)
"""NodeClaim name → (its resourceVersion, its Node's resourceVersion or "")."""


def _deleting_node_version(state: ClusterState, name: str) -> tuple[str, str] | None:
    key = state.key_for_node(name)
    node = state.state_node(key) if key is not None else None
    if node is None or node.node is None or not node.node.deleting:
        return None
    claim = node.nodeclaim
    return (
        node.node.resource_version or "",
        (claim.metadata.resource_version or "") if claim is not None else "",
    )


def _nodes_touched(state: ClusterState, change: Change) -> Iterable[str] | None:
    if change.resource == resources.NODES:
        return (change.key,)
    if change.resource != resources.NODECLAIMS:
        return ()
    key = state.key_for_nodeclaim(change.key)
    node = state.state_node(key) if key is not None else None
    if node is None:
        return None  # gone: the Node it pointed to is no longer joined to it
    return (node.name,) if node.node is not None and node.name else ()


DELETING_NODES: Watch[str] = Watch(lambda s: s.node_names(), _deleting_node_version, _nodes_touched)
"""Name of a Node being deleted → (its resourceVersion, its NodeClaim's resourceVersion or "")."""


def _nodepool_version(state: ClusterState, name: str) -> str | None:
    pool = state.nodepool(name)
    return (pool.metadata.resource_version or "") if pool is not None else None


NODEPOOLS: Watch[str] = Watch(
    lambda s: s.nodepool_names(),
    _nodepool_version,
    lambda _, change: (change.key,) if change.resource == resources.NODEPOOLS else (),
)
"""NodePool name → its resourceVersion."""


@attrs.define(eq=False)
class Poller(typing.Generic[K]):
    """Enqueues the keys of ``watch`` whose version changed: those the state's changes touch at once, every
    key on the first look and every ``interval`` seconds. ``on_change`` is its reconciler's subscriber."""

    state: ClusterState
    watch: Watch[K]
    enqueue: Callable[[K], None]
    clock: Clock
    interval: float = DEFAULT_INTERVAL
    _touched: set[K] = attrs.field(init=False, factory=set)
    _everything: bool = attrs.field(init=False, default=True)
    _wake: anyio.Event | None = attrs.field(init=False, default=None)

    def on_change(self, change: Change) -> None:
        touched = self.watch.touched(self.state, change)
        if touched is None:
            self._everything = True
        else:
            self._touched.update(touched)
        if self._wake is not None and (self._everything or self._touched):
            self._wake.set()

    async def run(self) -> None:
        """Look until cancelled; the first look enqueues every key (a fresh leader reconciles all once)."""
        seen: dict[K, Hashable] = {}
        while True:
            self._wake = anyio.Event()
            if self._everything:
                keys: Iterable[K] = set(self.watch.keys(self.state)) | set(seen)
            else:
                keys = self._touched
            self._everything, self._touched = False, set()
            for key in list(keys):
                version = self.watch.version(self.state, key)
                if version is None:
                    seen.pop(key, None)
                elif seen.get(key) != version:
                    seen[key] = version
                    self.enqueue(key)
            if not await self.clock.wait(self._wake, self.interval):
                self._everything = True


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


async def drive(queue: WorkQueue[K], poller: Poller[K]) -> None:
    """Run ``queue``'s workers and feed them the keys ``poller`` finds changed, until cancelled."""
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        group.start_soon(poller.run)


@attrs.define(eq=False)
class Feed(typing.Generic[K]):
    """A per-object reconciler's wiring, the same for each: a `WorkQueue` running its reconcile and a
    `Poller` enqueueing the keys of one `Watch` whose version changed. The reconciler forwards its
    ``on_change`` here and runs `Feed.run`; built once, with the reconciler (`Feed.build`)."""

    queue: WorkQueue[K]
    poller: Poller[K]

    @classmethod
    def build(
        cls,
        name: str,
        reconcile: Callable[[K], Awaitable[float | None]],
        state: ClusterState,
        watch: Watch[K],
        clock: Clock,
        *,
        workers: int,
        interval: float,
    ) -> Feed[K]:
        queue = WorkQueue(name, reconcile, workers=workers, clock=clock)
        return cls(queue, Poller(state, watch, queue.add, clock, interval))

    def on_change(self, change: Change) -> None:
        """Note what ``change`` touched (the reconciler's subscriber to the cluster state)."""
        self.poller.on_change(change)

    async def run(self) -> None:
        """Reconcile keys as they change, until cancelled."""
        await drive(self.queue, self.poller)
