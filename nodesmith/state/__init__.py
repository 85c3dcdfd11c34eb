"""The in-memory cluster model: informers (list+watch per resource) feeding one `ClusterState`
(Nodes and NodeClaims joined by providerID, pods by node, requests, nominations, deletion marks,
the synced gate), read through immutable `Snapshot`s.

Fed by `nodesmith.kube` (a `KubeClient` is the informers' source); consumed by the reconcilers
(provisioner, disruption, termination) and the simulation, which only ever sees snapshots.
"""

from __future__ import annotations

from nodesmith.state import cluster, informer, podindex, snapshot, statenode
from nodesmith.state.cluster import ClusterState
from nodesmith.state.informer import DEFAULT_RESOURCES, Informer, Informers
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.statenode import StateNode

__all__ = [
    "DEFAULT_RESOURCES",
    "ClusterState",
    "Informer",
    "Informers",
    "Snapshot",
    "StateNode",
    "cluster",
    "informer",
    "podindex",
    "snapshot",
    "statenode",
]
