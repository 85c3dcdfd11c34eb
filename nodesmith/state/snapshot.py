"""`Snapshot`: an immutable, consistent view of the cluster state at one instant, for the simulation.

Built by `nodesmith.state.cluster.ClusterState.snapshot` (synchronously, between two informer events,
so it never sees half an update); consumed by the provisioner and the disruption simulation
(`nodesmith.scheduling`, `nodesmith.disruption`), `nodesmith simulate` and `explain`.

Immutability: containers are tuples and read-only mappings (``types.MappingProxyType`` over private
copies), values are frozen attrs. Pods are the state's parsed `nodesmith.state.views.PodView`s; the
other Kubernetes object dicts inside (and each view's ``body``, which only the scheduling engine reads)
are *shared* with the state -- copying 50,000 pods per decision would cost more than the decision --
which is safe because the state never edits a stored dict, it replaces it. Consumers must not mutate
them either.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Mapping

import attrs

from nodesmith.api import labels, quantity
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.api import nodepool as api_nodepool
from nodesmith.kube import resources
from nodesmith.state.statenode import StateNode
from nodesmith.state.views import PodView

__all__ = ["Snapshot", "frozen_mapping"]

Obj: typing.TypeAlias = Mapping[str, typing.Any]
T = typing.TypeVar("T")


def frozen_mapping(values: Mapping[str, T]) -> Mapping[str, T]:
    """A read-only copy (copying the container, sharing the values)."""
    return types.MappingProxyType(dict(values))


@typing.final
@attrs.frozen(slots=True)
class Snapshot:
    """The cluster at ``taken_at``. Keys: ``namespace/name`` for namespaced kinds, ``name`` otherwise."""

    taken_at: dt.datetime
    synced: bool
    consolidation_state: dt.datetime
    nodes: tuple[StateNode, ...]
    """Every machine: Node+NodeClaim joined by providerID, in-flight NodeClaims, unmanaged Nodes."""
    unlaunched_nodeclaims: tuple[api_nodeclaim.NodeClaim, ...]
    """NodeClaims without a providerID yet (not machines; while any exist the state is not synced)."""
    pods: Mapping[str, PodView]
    unbound_pods: tuple[PodView, ...]
    """Pods without ``spec.nodeName`` that are not terminal (the provisioner filters further)."""
    daemonset_pods: Mapping[str, PodView]
    """DaemonSet key → its newest pod (how the simulation sizes daemonset overhead on new nodes)."""
    anti_affinity_pods: tuple[tuple[PodView, str], ...]
    """(pod, node name) for bound pods with required pod anti-affinity (the inverse index)."""
    nodepools: Mapping[str, api_nodepool.NodePool]
    objects: Mapping[resources.Resource, Mapping[str, Obj]]
    """Everything else by resource: DaemonSets, PDBs, PVCs, PVs, StorageClasses, CSINodes,
    VolumeAttachments, provider NodeClasses, NodePool dicts."""
    well_known_labels: frozenset[str] = labels.CORE_WELL_KNOWN_LABELS
    """Keys that may stay undefined in compatibility checks: the core's and the loaded plugins'."""

    def of(self, resource: resources.Resource) -> Mapping[str, Obj]:
        """The objects of one resource kind (empty if not watched)."""
        return self.objects.get(resource, types.MappingProxyType({}))

    @property
    def daemonsets(self) -> Mapping[str, Obj]:
        return self.of(resources.DAEMONSETS)

    @property
    def pdbs(self) -> Mapping[str, Obj]:
        return self.of(resources.PDBS)

    @property
    def pvcs(self) -> Mapping[str, Obj]:
        return self.of(resources.PVCS)

    @property
    def pvs(self) -> Mapping[str, Obj]:
        return self.of(resources.PVS)

    @property
    def storage_classes(self) -> Mapping[str, Obj]:
        return self.of(resources.STORAGECLASSES)

    @property
    def csinodes(self) -> Mapping[str, Obj]:
        return self.of(resources.CSINODES)

    @property
    def volume_attachments(self) -> Mapping[str, Obj]:
        return self.of(resources.VOLUMEATTACHMENTS)

    def volume_attachments_on(self, node_name: str) -> tuple[Obj, ...]:
        """VolumeAttachments whose ``spec.nodeName`` is ``node_name`` (termination waits for these)."""
        return tuple(
            va
            for va in self.volume_attachments.values()
            if (va.get("spec") or {}).get("nodeName") == node_name
        )

    def node(self, key: str) -> StateNode | None:
        """The machine with this key (providerID, or ``node/<name>`` / ``nodeclaim/<name>``)."""
        for state_node in self.nodes:
            if state_node.key == key:
                return state_node
        return None

    def active_nodes(self) -> tuple[StateNode, ...]:
        """Machines not marked for deletion: what the provisioner may schedule onto."""
        return tuple(n for n in self.nodes if not n.marked_for_deletion)

    def nodepool_resources(self, nodepool: str) -> dict[str, int]:
        """Capacity of the NodePool's machines not marked for deletion, plus ``nodes`` (what its
        ``spec.limits`` are checked against; Karpenter's ``Cluster.NodePoolResourcesFor``)."""
        total: dict[str, int] = {}
        for state_node in self.nodes:
            if state_node.nodepool == nodepool and not state_node.marked_for_deletion:
                total = quantity.add(total, state_node.capacity, {"nodes": 1000})
        return total
