"""`PodView`: a Pod parsed once, when the informer (or a what-if snapshot file) hands it to the cluster
state, into the facts the state, the reconcilers and disruption read about it -- so no code past the
state digs through the pod's dict for its node, phase, owners, labels, readiness or priority.

Built by `nodesmith.state.cluster.ClusterState` (``on_upsert``) and kept by `nodesmith.state.podindex`;
read through ``ClusterState.pod``, the snapshot's pod maps and every `StateNode`'s pods; disruption reads
it structurally (`nodesmith.disruption.pods.Pod`, `nodesmith.disruption.drain.PodFacts`). Nodes have
their counterpart in `nodesmith.state.statenode.NodePart`. The informer's dict stays reachable as
``body`` for exactly one reader: the pure scheduling engine, which parses pods itself
(`nodesmith.scheduling.pods.parse_pod`), handed over by `nodesmith.state.simulation`.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Mapping

import attrs

from nodesmith.api import meta
from nodesmith.scheduling import pods as scheduling_pods

__all__ = ["PodView"]


@typing.final
@attrs.frozen(slots=True)
class PodView:
    """What the state knows about one pod. ``requests`` are only computed for a pod that counts against
    a node (bound, not terminal); a malformed pod fails `parse` and is never indexed."""

    key: str
    """``namespace/name`` (``default`` when the namespace is missing)."""
    name: str
    namespace: str
    uid: str
    annotations: Mapping[str, str]
    labels: Mapping[str, str]
    node_name: str | None
    phase: str | None
    """``status.phase`` as written."""
    terminal: bool
    """Phase Succeeded or Failed: it no longer counts against its node."""
    terminating: bool
    """Has a ``deletionTimestamp``."""
    daemonset: str | None
    """``namespace/name`` of the DaemonSet controlling it."""
    owned_by_daemonset: bool
    """Any owner reference is a DaemonSet (controller or not)."""
    owner_kinds: tuple[str, ...]
    """The kinds of all its owner references, in order (drain treats a Node owner as a static pod)."""
    controller_kinds: tuple[str, ...]
    """The kinds of its owner references that are controllers (``controller`` true or unset), in order."""
    ready: bool
    """Its ``Ready`` condition is ``True`` (a PDB's ``AlwaysAllow`` policy lets unready pods go)."""
    priority: int | None
    """``spec.priority`` when it is an integer (part of the eviction cost)."""
    priority_class: str | None
    tolerations: tuple[Mapping[str, typing.Any], ...]
    """``spec.tolerations`` as written (drain asks whether they cover the disrupted taint)."""
    deleted_at: dt.datetime | None
    """``deletionTimestamp`` when it parses (``terminating`` holds even when it does not)."""
    started_at: dt.datetime | None
    """``status.startTime`` when it parses (what a do-not-disrupt duration counts from)."""
    grace_seconds: int | None
    """``spec.terminationGracePeriodSeconds`` (``None`` when unset)."""
    claim_names: tuple[str, ...]
    """PersistentVolumeClaims its volumes mount, in the pod's namespace."""
    provisionable: bool
    """Karpenter's ``IsProvisionable`` (`nodesmith.scheduling.pods.is_provisionable`)."""
    nominated_node: str | None
    """``status.nominatedNodeName``: kube-scheduler is preempting for it there."""
    scheduled_at: dt.datetime | None
    """When its ``PodScheduled`` condition last changed, if it has a readable one."""
    created: str
    """``creationTimestamp`` as written (RFC 3339 sorts as text)."""
    anti_affinity_topologies: tuple[str, ...]
    """Topology keys of its required pod anti-affinity terms, sorted; empty without such terms (and
    for a pod that does not count against a node)."""
    requests: Mapping[str, int]
    body: Mapping[str, typing.Any] = attrs.field(repr=False, eq=False)

    @property
    def counts_on(self) -> str | None:
        """The node the pod counts against: bound and not terminal."""
        return self.node_name if self.node_name and not self.terminal else None

    @property
    def controller_kind(self) -> str | None:
        """The kind of its first controlling owner (Karpenter's ``metav1.GetControllerOf``)."""
        return self.controller_kinds[0] if self.controller_kinds else None

    @classmethod
    def parse(cls, pod: Mapping[str, typing.Any]) -> PodView:
        """Raises ``KeyError``/``ValueError`` (``QuantityError`` is one) on a malformed pod."""
        pod_meta = pod["metadata"]
        namespace = pod_meta.get("namespace") or "default"
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node_name = str(spec["nodeName"]) if spec.get("nodeName") else None
        terminal = status.get("phase") in ("Succeeded", "Failed")
        owners = pod_meta.get("ownerReferences") or ()
        daemonset = next(
            (
                f"{namespace}/{o.get('name')}"
                for o in owners
                if o.get("kind") == "DaemonSet" and o.get("controller", True)
            ),
            None,
        )
        counts = node_name is not None and not terminal
        grace = spec.get("terminationGracePeriodSeconds")
        priority = spec.get("priority")
        return cls(
            key=f"{namespace}/{pod_meta['name']}",
            name=str(pod_meta["name"]),
            namespace=str(namespace),
            uid=str(pod_meta.get("uid") or ""),
            annotations=pod_meta.get("annotations") or {},
            labels=pod_meta.get("labels") or {},
            node_name=node_name,
            phase=status.get("phase"),
            terminal=terminal,
            terminating=bool(pod_meta.get("deletionTimestamp")),
            daemonset=daemonset,
            owned_by_daemonset=any(o.get("kind") == "DaemonSet" for o in owners),
            owner_kinds=tuple(str(o.get("kind")) for o in owners),
            controller_kinds=tuple(str(o.get("kind")) for o in owners if o.get("controller", True)),
            ready=_ready(status),
            priority=priority if isinstance(priority, int) else None,
            priority_class=spec.get("priorityClassName"),
            tolerations=tuple(spec.get("tolerations") or ()),
            deleted_at=_time(pod_meta.get("deletionTimestamp"), "metadata.deletionTimestamp"),
            started_at=_time(status.get("startTime"), "status.startTime"),
            grace_seconds=None if grace is None else int(grace),
            claim_names=_claim_names(spec),
            provisionable=scheduling_pods.is_provisionable(pod),
            nominated_node=status.get("nominatedNodeName") or None,
            scheduled_at=_scheduled_at(status),
            created=str(pod_meta.get("creationTimestamp") or ""),
            anti_affinity_topologies=_anti_affinity_topologies(spec) if counts else (),
            requests=scheduling_pods.pod_requests(spec) if counts else {},
            body=pod,
        )


def _time(raw: object, field: str) -> dt.datetime | None:
    if not raw:
        return None
    try:
        return meta.parse_time(str(raw), field)
    except ValueError:
        return None


def _ready(status: Mapping[str, typing.Any]) -> bool:
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _claim_names(spec: Mapping[str, typing.Any]) -> tuple[str, ...]:
    names = ((v.get("persistentVolumeClaim") or {}).get("claimName") for v in spec.get("volumes") or ())
    return tuple(str(name) for name in names if name)


def _scheduled_at(status: Mapping[str, typing.Any]) -> dt.datetime | None:
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("lastTransitionTime"):
            try:
                return meta.parse_time(str(condition["lastTransitionTime"]), "lastTransitionTime")
            except ValueError:
                return None
    return None


def _anti_affinity_topologies(spec: Mapping[str, typing.Any]) -> tuple[str, ...]:
    anti = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    return tuple(sorted({str(term.get("topologyKey") or "") for term in terms}))
