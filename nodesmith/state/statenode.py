"""`StateNode`: one machine as the cluster state knows it -- a Node, its NodeClaim, or both joined by
providerID -- with its pods and the resources they request, as an immutable value.

Fed by `nodesmith.state.cluster.ClusterState`, which keeps one mutable `Slot` per machine (parsed
Node and NodeClaim parts, nomination, deletion mark) and builds a `StateNode` from a slot whenever the
slot or the pods on its node changed. Consumed through `nodesmith.state.snapshot.Snapshot` by the
scheduling simulation (existing capacity, in-flight NodeClaims), disruption (candidates, spec 4.2) and
the reconcilers.

The accessors follow Karpenter's ``pkg/controllers/state/statenode.go``: a NodeClaim without a
registered Node answers with the NodeClaim's labels, taints and allocatable (so in-flight capacity
counts); a Node without a NodeClaim is unmanaged and always registered and initialized.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Mapping

import attrs

from nodesmith.api import labels, meta, quantity
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.state.views import PodView

__all__ = ["NodeCondition", "NodePart", "Slot", "StateNode", "parse_node"]

Obj: typing.TypeAlias = Mapping[str, typing.Any]
_EMPTY: Mapping[str, typing.Any] = types.MappingProxyType({})


@typing.final
@attrs.frozen(slots=True)
class NodeCondition:
    """One entry of a Node's ``status.conditions``, as the kubelet or a node problem detector wrote it."""

    type: str
    status: str
    """``True``, ``False`` or ``Unknown`` as written (compared as text, never validated)."""
    last_transition_time: dt.datetime | None
    """``None`` when missing or unreadable."""


@typing.final
@attrs.frozen(slots=True)
class NodePart:
    """The parsed parts of a Node that the state and the reconcilers read (parsed once per Node event).

    ``object`` is the informer's dict, for what must send the object back: merge patches that replace a
    list (taints, owner references, finalizers). Events name the Node through `reference`."""

    object: Obj
    name: str
    uid: str | None
    resource_version: str | None
    provider_id: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    finalizers: tuple[str, ...]
    taints: tuple[meta.Taint, ...]
    unschedulable: bool
    conditions: tuple[NodeCondition, ...]
    allocatable: Mapping[str, int]
    capacity: Mapping[str, int]
    creation_timestamp: dt.datetime | None
    deletion_timestamp: dt.datetime | None
    """``None`` when not being deleted, or when the timestamp is unreadable (see ``deleting``)."""
    deleting: bool

    @property
    def ready(self) -> bool:
        """The ``Ready`` condition is True."""
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)

    def reference(self) -> dict[str, typing.Any]:
        """The Node as an event's involved object: kind, name, uid and the resourceVersion it was seen at."""
        reference = {"name": self.name, "uid": self.uid, "resourceVersion": self.resource_version}
        return {"kind": "Node", "apiVersion": "v1", "metadata": {k: v for k, v in reference.items() if v}}


def _time(raw: object, field: str) -> dt.datetime | None:
    """A timestamp the reconcilers only measure with: unreadable counts as absent, not as a malformed Node."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return meta.parse_time(raw, field)
    except ValueError:
        return None


def _conditions(values: typing.Iterable[Obj] | None) -> tuple[NodeCondition, ...]:
    return tuple(
        NodeCondition(
            type=str(c.get("type")),
            status=str(c.get("status")),
            last_transition_time=_time(c.get("lastTransitionTime"), "status.conditions.lastTransitionTime"),
        )
        for c in values or ()
    )


def parse_node(node: Obj) -> NodePart:
    """Parse what `StateNode` and the reconcilers need; raises ``KeyError``/``ValueError`` (incl.
    ValidationError, QuantityError) on a malformed Node (bad taints or resources; an unreadable timestamp
    or condition is not malformed, see `NodeCondition` and ``NodePart.deletion_timestamp``)."""
    meta_ = node["metadata"]
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    return NodePart(
        object=node,
        name=str(meta_["name"]),
        uid=str(meta_.get("uid") or "") or None,
        resource_version=str(meta_.get("resourceVersion") or "") or None,
        provider_id=spec.get("providerID") or None,
        labels=types.MappingProxyType(dict(meta_.get("labels") or {})),
        annotations=types.MappingProxyType(dict(meta_.get("annotations") or {})),
        finalizers=tuple(str(f) for f in meta_.get("finalizers") or ()),
        taints=meta.taints_from(spec.get("taints"), "spec.taints"),
        unschedulable=bool(spec.get("unschedulable")),
        conditions=_conditions(status.get("conditions")),
        allocatable=types.MappingProxyType(quantity.parse_resources(status.get("allocatable"))),
        capacity=types.MappingProxyType(quantity.parse_resources(status.get("capacity"))),
        creation_timestamp=_time(meta_.get("creationTimestamp"), "metadata.creationTimestamp"),
        deletion_timestamp=_time(meta_.get("deletionTimestamp"), "metadata.deletionTimestamp"),
        deleting=bool(meta_.get("deletionTimestamp")),
    )


@attrs.define(slots=True)
class Slot:
    """ClusterState's mutable record for one machine; ``key`` is the providerID, or ``node/<name>`` /
    ``nodeclaim/<name>`` while none is known."""

    key: str
    node: NodePart | None = None
    nodeclaim: api_nodeclaim.NodeClaim | None = None
    nodeclaim_object: Obj | None = None
    nominated_until: dt.datetime | None = None
    marked: bool = False
    view: StateNode | None = None

    @property
    def empty(self) -> bool:
        return self.node is None and self.nodeclaim is None

    @property
    def node_name(self) -> str | None:
        if self.node is not None:
            return self.node.name
        if self.nodeclaim is not None:
            return self.nodeclaim.status.node_name
        return None


@typing.final
@attrs.frozen(slots=True)
class StateNode:
    """An immutable view of one machine. Mappings are read-only; ``nodeclaim_object`` is the informer's
    dict, shared and never mutated (the state replaces it, it does not edit it)."""

    key: str
    provider_id: str | None
    name: str | None
    node: NodePart | None
    """The Node as parsed when the informer handed it over; ``None`` while only the NodeClaim exists."""
    nodeclaim: api_nodeclaim.NodeClaim | None
    nodeclaim_object: Obj | None
    labels: Mapping[str, str]
    taints: tuple[meta.Taint, ...]
    allocatable: Mapping[str, int]
    capacity: Mapping[str, int]
    pods: tuple[PodView, ...]
    """Its pods as parsed when the informer handed them over (bound, not terminal)."""
    pod_requests: Mapping[str, int]
    daemonset_requests: Mapping[str, int]
    nominated_until: dt.datetime | None
    marked: bool
    deleting: bool

    @property
    def managed(self) -> bool:
        """Has a NodeClaim (nodesmith launched it)."""
        return self.nodeclaim is not None

    @property
    def registered(self) -> bool:
        if self.nodeclaim is None:
            return True
        return self.node is not None and self.labels.get(labels.LABEL_REGISTERED) == "true"

    @property
    def initialized(self) -> bool:
        if self.nodeclaim is None:
            return True
        return self.node is not None and self.labels.get(labels.LABEL_INITIALIZED) == "true"

    @property
    def marked_for_deletion(self) -> bool:
        """Marked by disruption/termination, or its Node or NodeClaim is being deleted."""
        return self.marked or self.deleting

    @property
    def nodepool(self) -> str | None:
        return self.labels.get(labels.LABEL_NODEPOOL)

    def nominated(self, now: dt.datetime) -> bool:
        """A pod was nominated to it by the provisioner and the nomination has not expired."""
        return self.nominated_until is not None and now < self.nominated_until

    def available(self) -> dict[str, int]:
        """Allocatable minus what its pods request (may be negative if overcommitted)."""
        return quantity.subtract(self.allocatable, self.pod_requests)

    @classmethod
    def build(
        cls,
        slot: Slot,
        pods: Mapping[str, PodView],
        requests: Mapping[str, int],
        ds_requests: Mapping[str, int],
    ) -> StateNode:
        node, claim = slot.node, slot.nodeclaim
        managed = claim is not None
        node_labels = node.labels if node is not None else _EMPTY
        registered = not managed or (node is not None and node_labels.get(labels.LABEL_REGISTERED) == "true")
        initialized = not managed or (
            node is not None and node_labels.get(labels.LABEL_INITIALIZED) == "true"
        )
        if node is None or (claim is not None and not registered):
            assert claim is not None
            node_labels = types.MappingProxyType(dict(claim.metadata.labels))
            taints = claim.spec.taints
        else:
            taints = node.taints
            if claim is not None and not initialized:
                startup = claim.spec.startup_taints
                taints = tuple(
                    t
                    for t in taints
                    if t.key not in labels.KNOWN_EPHEMERAL_TAINT_KEYS
                    and not any(t.matches(s) for s in startup)
                )
        if claim is not None and (node is None or not initialized):
            allocatable: Mapping[str, int] = types.MappingProxyType(dict(claim.status.allocatable))
            capacity: Mapping[str, int] = types.MappingProxyType(dict(claim.status.capacity))
        else:
            assert node is not None
            allocatable, capacity = node.allocatable, node.capacity
        return cls(
            key=slot.key,
            provider_id=(node.provider_id if node is not None else None)
            or (claim.status.provider_id if claim is not None else None),
            name=slot.node_name,
            node=node,
            nodeclaim=claim,
            nodeclaim_object=slot.nodeclaim_object,
            labels=node_labels,
            taints=taints,
            allocatable=allocatable,
            capacity=capacity,
            pods=tuple(pods.values()),
            pod_requests=types.MappingProxyType(dict(requests)),
            daemonset_requests=types.MappingProxyType(dict(ds_requests)),
            nominated_until=slot.nominated_until,
            marked=slot.marked,
            deleting=(node is not None and node.deleting) or (claim is not None and claim.deleting),
        )
