"""The in-memory cluster model: informers (list+watch per resource) feeding one `ClusterState`
(Nodes and NodeClaims joined by providerID, pods by node, requests, nominations, deletion marks,
the synced gate), read through immutable `Snapshot`s, and publishing one feed of `Change`s (kind and
key of what changed) that every reconciler hears.

Fed by `nodesmith.kube` (a `KubeClient` is the informers' source); consumed by the reconcilers
(provisioner, disruption, termination) and the simulation, which only ever sees snapshots.
"""

from __future__ import annotations

from nodesmith.state import changes, cluster, informer, podindex, snapshot, statenode
from nodesmith.state.changes import Change
from nodesmith.state.cluster import ClusterState
from nodesmith.state.informer import DEFAULT_RESOURCES, Informer, Informers
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.statenode import StateNode

__all__ = [
    "DEFAULT_RESOURCES",
    "Change",
    "ClusterState",
    "Informer",
    "Informers",
    "Snapshot",
    "StateNode",
    "changes",
    "cluster",
    "informer",
    "podindex",
    "snapshot",
    "statenode",
]
