"""`Change`: what the cluster state publishes after it applied an informer event -- the one way a
reconciler hears that something changed.

A change names the object (its resource and key), never carries it: a subscriber reads what it needs from
`nodesmith.state.cluster.ClusterState` at that moment, so nothing is copied per event and every reconciler
sees the same state. Pods carry one more fact the state can no longer answer once a pod has moved or gone:
the nodes whose set of workload pods changed (a non-DaemonSet pod came, left, finished or began
terminating), which is what NodeClaim marking counts as a pod event.

Published by `ClusterState` (``subscribe``); the composition root subscribes each reconciler's
``on_change`` (`Listener`).
"""

from __future__ import annotations

from typing import Protocol

import attrs

from nodesmith.kube import resources

__all__ = ["Change", "Listener", "PodMove"]


@attrs.frozen(slots=True)
class PodMove:
    """A pod's workload-pod event: the nodes it touched, and whether it just began counting on a node
    (bound, running or pending, not terminating) where it did not count before."""

    nodes: frozenset[str]
    arrived: bool


@attrs.frozen(slots=True)
class Change:
    """One applied informer event: ``resource``'s object at ``key`` (``namespace/name`` or ``name``)
    changed, or is gone when ``deleted``."""

    resource: resources.Resource
    key: str
    deleted: bool = False
    pod_move: PodMove | None = None
    """Pods only, and only when the pod's workload-pod fingerprint changed."""


class Listener(Protocol):
    """A reconciler that hears of changes; the composition root subscribes ``on_change``."""

    def on_change(self, change: Change) -> None:
        """Called on the informer's path: record keys and return at once."""
        ...
