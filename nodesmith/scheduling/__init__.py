"""Scheduling simulation: no I/O, no async, no clock, no logging side effects: values in, values out.

Given a snapshot (existing and in-flight nodes, pending pods, NodePool templates with their instance types,
DaemonSets, volumes), decide which pods go to existing capacity and which new NodeClaims to create, with
Karpenter's semantics (shared/spec/karpenter-core.md §2). The only notion of time is an injected
``deadline`` callable; when it fires, the decisions so far come back and every pod not placed says why.

Front door::

    from nodesmith import scheduling
    result = scheduling.solve(scheduling.SchedulingInput(pods=[...], templates=[...]))

Modules, one concept each: ``pods`` (pod dict → :class:`SchedulingPod`), ``taints``, ``hostports``,
``volumes``, ``selectors``, ``topologygroup`` / ``topology``, ``preferences`` (relaxation order),
``daemonsets`` (overhead per instance type), ``instancetypes`` (masks, fit, ordering, truncation),
``nodeclaim`` / ``existingnode`` (simulated nodes), ``scheduler`` (the loop), ``results``, ``inputs``,
``defaultspread`` (cluster-default topology spread from the kube-scheduler configuration).
"""

from __future__ import annotations

from nodesmith.scheduling.inputs import ExistingNode, NodeClaimTemplate, SchedulingInput, VolumeCatalog
from nodesmith.scheduling.instancetypes import MAX_INSTANCE_TYPES
from nodesmith.scheduling.pods import PodRef, SchedulingPod, is_provisionable, parse_pod
from nodesmith.scheduling.results import Constraint, NewNodeClaim, NodePoolReason, PodSchedulingError, Results
from nodesmith.scheduling.scheduler import solve
from nodesmith.scheduling.taints import Taint, Toleration

__all__ = [
    "MAX_INSTANCE_TYPES",
    "Constraint",
    "ExistingNode",
    "NewNodeClaim",
    "NodeClaimTemplate",
    "NodePoolReason",
    "PodRef",
    "PodSchedulingError",
    "Results",
    "SchedulingInput",
    "SchedulingPod",
    "Taint",
    "Toleration",
    "VolumeCatalog",
    "is_provisionable",
    "parse_pod",
    "solve",
]
