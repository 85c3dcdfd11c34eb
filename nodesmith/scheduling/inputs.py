"""The values a scheduling run takes: one :class:`SchedulingInput` holding templates, nodes, pods and volumes.

The provisioner's adapter builds these from a ``ClusterState`` snapshot and the NodePool/NodeClaim models;
tests and the benchmark build them with ``nodesmith.testing.factories``; :func:`scheduler.solve` consumes
them. Nothing here refers to the NodePool API models: the engine takes plain values, so it can be driven by
any snapshot. Quantities are integer milli-units (``nodesmith.api.quantity``), ``nodes`` limits included
(a limit of 10 nodes is ``{"nodes": 10_000}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias, final

import attrs

from nodesmith.api import labels
from nodesmith.api.nodepool import Packing
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.scheduling import pods, taints

__all__ = ["ExistingNode", "NodeClaimTemplate", "SchedulingInput", "VolumeCatalog"]

TaintList: TypeAlias = tuple[taints.Taint, ...]


def _taints(values: Iterable[taints.Taint | Mapping[str, Any]]) -> tuple[taints.Taint, ...]:
    return tuple(v if isinstance(v, taints.Taint) else taints.Taint.parse(v) for v in values)


@final
@attrs.frozen
class NodeClaimTemplate:
    """What one NodePool can launch.

    ``requirements`` are the template's requirements ∩ its labels, including
    ``nodesmith.io/nodepool In [nodepool]`` (added here if missing). ``remaining_limits`` is
    ``spec.limits`` minus what the pool's existing nodes already use (``None``: unlimited).
    ``packing`` is the NodePool's ``nodesmith.io/packing`` annotation.
    """

    nodepool: str
    instance_types: Sequence[InstanceType]
    requirements: Requirements = attrs.field(factory=Requirements)
    weight: int = 0
    labels: Mapping[str, str] = attrs.field(factory=dict)
    taints: TaintList = attrs.field(default=(), converter=_taints)
    startup_taints: TaintList = attrs.field(default=(), converter=_taints)
    remaining_limits: Mapping[str, int] | None = None
    packing: Packing = Packing.KARPENTER
    """``COST_OPTIMISED``: the run packs this pool's new NodeClaims the `packing` way."""

    def __attrs_post_init__(self) -> None:
        reqs = self.requirements.intersect(Requirements.from_labels(self.labels))
        if labels.LABEL_NODEPOOL not in reqs:
            reqs = reqs.add(Requirement.in_(labels.LABEL_NODEPOOL, self.nodepool))
        object.__setattr__(self, "requirements", reqs)


@final
@attrs.frozen
class ExistingNode:
    """A node (or an in-flight NodeClaim, ``in_flight=True``) that may take pods.

    ``requested`` is what the pods already bound to it request (DaemonSet pods included) and
    ``daemonset_requested`` the DaemonSet part of that. ``pods`` are the pod dicts bound to it: they count
    for topology and their required anti-affinity blocks incoming pods. ``csi_limits`` is
    ``CSINode.spec.drivers[].allocatable.count`` by driver. ``capacity`` is only informative here (the
    caller subtracts it from NodePool limits).
    """

    name: str
    labels: Mapping[str, str]
    allocatable: Mapping[str, int]
    requested: Mapping[str, int] = attrs.field(factory=dict)
    daemonset_requested: Mapping[str, int] = attrs.field(factory=dict)
    taints: TaintList = attrs.field(default=(), converter=_taints)
    startup_taints: TaintList = attrs.field(default=(), converter=_taints)
    initialized: bool = True
    nodepool: str | None = None
    capacity: Mapping[str, int] = attrs.field(factory=dict)
    pods: Sequence[Mapping[str, Any]] = ()
    csi_limits: Mapping[str, int] = attrs.field(factory=dict)
    in_flight: bool = False
    under_consolidate_after: bool = False
    """Inside its NodePool's ``consolidateAfter`` window (consolidation simulations only): it takes none of
    `SchedulingInput.consolidating_pods`."""

    @property
    def hostname(self) -> str:
        return self.labels.get(labels.LABEL_HOSTNAME, self.name)

    def scheduling_taints(self) -> TaintList:
        """Taints a pod must tolerate here: all of them once initialized; before that, a managed node's
        ephemeral and startup taints do not count."""
        if self.initialized or self.nodepool is None:
            return self.taints
        return taints.without_ephemeral(self.taints, self.startup_taints)


@final
@attrs.frozen
class VolumeCatalog:
    """PersistentVolumeClaims by ``(namespace, name)``, PersistentVolumes and StorageClasses by name, as
    Kubernetes dicts."""

    claims: Mapping[tuple[str, str], Mapping[str, Any]] = attrs.field(factory=dict)
    volumes: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    storage_classes: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)


@final
@attrs.frozen
class SchedulingInput:
    """One scheduling run's snapshot.

    ``pods`` are the pending pods (dicts or already parsed). ``daemonset_pods`` is one pod per DaemonSet
    (the live pod or one made from its template). ``other_nodes`` take no pods but their ``pods`` count for
    topology (e.g. nodes being deleted). ``namespaces`` maps namespace → labels for affinity
    ``namespaceSelector``s. ``well_known_labels`` are the keys that may stay undefined in a compatibility
    check: the core's plus those the loaded provider plugins declare (the daemon's
    ``Plugins.well_known_labels``, recorded in snapshot files).
    """

    pods: Sequence[Mapping[str, Any] | pods.SchedulingPod]
    templates: Sequence[NodeClaimTemplate]
    existing_nodes: Sequence[ExistingNode] = ()
    daemonset_pods: Sequence[Mapping[str, Any]] = ()
    volumes: VolumeCatalog = attrs.field(factory=VolumeCatalog)
    other_nodes: Sequence[ExistingNode] = ()
    namespaces: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    well_known_labels: frozenset[str] = labels.CORE_WELL_KNOWN_LABELS
    consolidating_pods: frozenset[str] = frozenset()
    """UIDs of running pods moving off consolidation candidates: Karpenter keeps them off existing nodes
    still inside their ``consolidateAfter`` window (pending pods and pods of deleting nodes may go there)."""
