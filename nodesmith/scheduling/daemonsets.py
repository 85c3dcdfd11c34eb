"""DaemonSet overhead: which DaemonSet pods would run on a node, and what they take from it.

The scheduler asks :func:`overhead_groups` once per NodePool template: instance types are grouped by the
set of DaemonSet pods that would run on them, and each group carries the summed requests (``pods`` count
included) and host ports of those pods. ``instancetypes`` subtracts a group's overhead from each of its
types' allocatable; ``nodeclaim`` adds the smallest overhead among its remaining types when finalized.
For existing nodes, :func:`node_daemons` picks the DaemonSet pods that would run there.

A DaemonSet pod runs on an instance type of a template when it tolerates the template's taints (with an
implicit ``Exists:PreferNoSchedule`` toleration), the template's requirements are compatible with its
strict requirements, and the instance type's requirements intersect them; each OR'd required
node-affinity term is tried in turn (Karpenter ``isDaemonPodCompatible``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import final

import attrs

from nodesmith.api import quantity
from nodesmith.api.requirements import Requirements
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.scheduling import hostports, pods, taints

__all__ = ["DaemonGroup", "node_daemons", "overhead_groups"]


@final
@attrs.frozen
class DaemonGroup:
    """DaemonSet pods that run on some instance types, with their summed requests and host ports."""

    daemons: tuple[int, ...]
    requests: Mapping[str, int]
    host_ports: tuple[hostports.HostPort, ...]


def _alternatives(pod: pods.SchedulingPod) -> tuple[Requirements, ...]:
    return pod.required_terms or (pod.node_selector,)


def _tolerates(pod: pods.SchedulingPod, node_taints: Sequence[taints.Taint]) -> bool:
    tolerations = (*pod.tolerations, taints.PREFER_NO_SCHEDULE_TOLERATION)
    return taints.tolerates_all(node_taints, tolerations)


def overhead_groups(
    template_requirements: Requirements,
    template_taints: Sequence[taints.Taint],
    instance_types: Sequence[InstanceType],
    daemons: Sequence[pods.SchedulingPod],
    well_known: frozenset[str],
) -> tuple[list[int], list[DaemonGroup]]:
    """Per instance type (by position) its group index, and the groups."""
    tolerated = [d for d in range(len(daemons)) if _tolerates(daemons[d], template_taints)]
    template_ok = {
        d: [alt for alt in _alternatives(daemons[d]) if template_requirements.is_compatible(alt, well_known)]
        for d in tolerated
    }
    group_index: dict[tuple[int, ...], int] = {}
    groups: list[DaemonGroup] = []
    group_of: list[int] = []
    for it in instance_types:
        members = tuple(
            d for d in tolerated if any(it.requirements.intersects(alt) for alt in template_ok[d])
        )
        index = group_index.get(members)
        if index is None:
            index = group_index[members] = len(groups)
            requests = quantity.sum_of(daemons[d].requests for d in members)
            ports = tuple(p for d in members for p in daemons[d].host_ports)
            groups.append(DaemonGroup(members, requests, ports))
        group_of.append(index)
    return group_of, groups


def node_daemons(
    node_labels: Requirements, node_taints: Sequence[taints.Taint], daemons: Sequence[pods.SchedulingPod]
) -> list[pods.SchedulingPod]:
    """DaemonSet pods that would run on an existing node (taints tolerated, labels compatible with the
    strict requirements)."""
    return [
        d
        for d in daemons
        if taints.tolerates_all(node_taints, d.tolerations)
        and node_labels.is_compatible(d.strict_requirements)
    ]
