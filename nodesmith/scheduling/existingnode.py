"""An existing node (or in-flight NodeClaim) offered pods in this run: what room and labels it has left.

The scheduler wraps every :class:`inputs.ExistingNode` in a :class:`SimExistingNode` (initialized nodes
first, then by name) and offers each pod to them before any NodeClaim. :meth:`SimExistingNode.check` is
Karpenter's ``ExistingNode.CanAdd``: taints → CSI volume limits → host ports → resources → label
requirements → volume topology → topology. Its room is allocatable − requested − the DaemonSet pods that
would still come (those compatible with it minus those already there, never below zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, final

from nodesmith.api import labels, quantity
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.scheduling import daemonsets, hostports, inputs, nodeclaim, pods, taints, topology, volumes
from nodesmith.scheduling import resources as res

__all__ = ["SimExistingNode"]

_NO_UNDEFINED: Final[frozenset[str]] = frozenset()


@final
class SimExistingNode:
    """Mutable while the run lasts; owned by the scheduler."""

    __slots__ = (
        "available",
        "hostname",
        "node",
        "pods",
        "ports",
        "requirements",
        "taints",
        "used",
        "volumes",
    )

    def __init__(
        self,
        node: inputs.ExistingNode,
        index: res.ResourceIndex,
        daemons: Sequence[pods.SchedulingPod],
        bound: Sequence[pods.SchedulingPod],
        catalog: inputs.VolumeCatalog,
    ) -> None:
        self.node = node
        self.hostname = node.hostname
        self.taints = node.scheduling_taints()
        label_reqs = Requirements.from_labels(node.labels)
        self.requirements = label_reqs.add(Requirement.in_(labels.LABEL_HOSTNAME, self.hostname))
        pending_daemons = quantity.sum_of(
            d.requests for d in daemonsets.node_daemons(label_reqs, self.taints, daemons)
        )
        remaining = quantity.subtract(pending_daemons, node.daemonset_requested)
        self.available = index.vector(quantity.subtract(node.allocatable, node.requested))
        self.used = index.vector({k: max(v, 0) for k, v in remaining.items()})
        self.pods: list[pods.SchedulingPod] = []
        self.ports = hostports.HostPortUsage(p for pod in bound for p in pod.host_ports)
        self.volumes = volumes.VolumeUsage(node.csi_limits)
        for pod in bound:
            self.volumes.add(volumes.volume_drivers(catalog, pod.namespace, pod.volume_claims))

    def copy(self) -> SimExistingNode:
        """A copy a run can place pods on, leaving this one as prepared (``scheduler.Prepared``)."""
        out = SimExistingNode.__new__(SimExistingNode)
        out.node, out.hostname, out.taints = self.node, self.hostname, self.taints
        out.requirements, out.available, out.used = self.requirements, self.available, self.used
        out.pods = list(self.pods)
        out.ports = self.ports.copy()
        out.volumes = self.volumes.copy()
        return out

    def check(
        self,
        pod: pods.SchedulingPod,
        vector: res.Vector,
        topo: topology.Topology,
        alternatives: Sequence[Requirements],
        drivers: Mapping[str, frozenset[str]],
    ) -> Requirements | None:
        """The node's requirements with the pod on it, or ``None`` if it cannot take the pod."""
        if self.taints and not taints.tolerates_all(self.taints, pod.tolerations):
            return None
        if drivers and self.volumes.exceeds(drivers) is not None:
            return None
        if pod.host_ports and self.ports.conflict(pod.host_ports) is not None:
            return None
        if not res.fits(res.vadd(self.used, vector), self.available):
            return None
        pod_reqs = pod.requirements
        if pod_reqs and not self.requirements.is_compatible(pod_reqs):
            return None
        base = nodeclaim.narrow(self.requirements, pod_reqs.values()) if pod_reqs else self.requirements
        for alternative in alternatives:
            reqs = base
            if alternative:
                if not reqs.is_compatible(alternative):
                    continue
                reqs = nodeclaim.narrow(reqs, alternative.values())
            domains = topo.add_requirements(pod, pod.strict_requirements, reqs, _NO_UNDEFINED)
            if isinstance(domains, topology.TopologyFailure):
                continue
            if domains:
                topo_reqs = Requirements(domains)
                if not reqs.is_compatible(topo_reqs):
                    continue
                reqs = nodeclaim.narrow(reqs, domains)
            return reqs
        return None

    def commit(
        self, pod: pods.SchedulingPod, vector: res.Vector, drivers: Mapping[str, frozenset[str]]
    ) -> None:
        self.pods.append(pod)
        self.used = res.vadd(self.used, vector)
        if pod.host_ports:
            self.ports.add(pod.host_ports)
        if drivers:
            self.volumes.add(drivers)
