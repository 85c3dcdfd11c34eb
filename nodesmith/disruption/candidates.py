"""Which machines disruption may consider at all, and what each one costs and saves (spec §4.2).

Fed by the cluster state's nodes (anything shaped like `NodeView`; `nodesmith.state.StateNode` is one,
its pods parsed once by the state into `nodesmith.disruption.pods.Pod`-shaped views),
the NodePools, their instance types, the PDBs and the orchestration queue's keys, all in a `Context`;
consumed by every method (`emptiness`, `drift`, `consolidation`) and by validation, which re-evaluates
the same way 15 s later. Every node that is not a `Candidate` comes back as a structured `Rejection`
(the first reason; `reasons` lists them all, for ``nodesmith explain``).

Eligibility, in Karpenter's order: not already queued; managed (a Node and its NodeClaim); initialized;
not marked for deletion; not nominated for a pending pod; no ``do-not-disrupt: "true"`` on the Node (or
the NodeClaim while unregistered); its NodePool exists; and no pod blocks eviction -- a pod with an
active ``nodesmith.io/do-not-disrupt`` or ``karpenter.sh/do-not-disrupt`` (``"true"`` or a duration
since the pod started) or one a PDB protects now. For the *eventual* class (drift) on a NodeClaim with a
``terminationGracePeriod``, blocking pods do not count: the grace period bounds the drain anyway.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, final

import attrs

from nodesmith.api import conditions, labels, meta
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.nodepool import NodePool
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import pdb
from nodesmith.disruption import pods as pod_utils
from nodesmith.disruption.commands import Rejection, RejectionReason

__all__ = ["Candidate", "Context", "DisruptionClass", "NodeView", "evaluate", "evaluate_all", "reasons"]


class NodeFacts(Protocol):
    """The part of a parsed Node disruption reads (``state.statenode.NodePart``, structurally)."""

    @property
    def annotations(self) -> Mapping[str, str]: ...
    @property
    def ready(self) -> bool: ...
    def reference(self) -> dict[str, Any]:
        """The Node as an event's involved object."""


class NodeView(Protocol):
    """The part of a state node disruption reads (structurally, so this package needs no `state`)."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def node(self) -> NodeFacts | None:
        """The registered Node, parsed (``None`` while only the NodeClaim exists)."""

    @property
    def nodeclaim(self) -> NodeClaim | None: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def pods(self) -> tuple[pod_utils.Pod, ...]: ...
    @property
    def initialized(self) -> bool: ...
    @property
    def marked_for_deletion(self) -> bool: ...
    @property
    def nodepool(self) -> str | None: ...
    def nominated(self, now: dt.datetime) -> bool: ...


class DisruptionClass(enum.StrEnum):
    GRACEFUL = "graceful"
    """Consolidation and emptiness: anything that blocks eviction blocks the node."""
    EVENTUAL = "eventual"
    """Drift: with a terminationGracePeriod, blocking pods are waited out by termination instead."""


@final
@attrs.frozen(slots=True)
class Context:
    """Everything eligibility depends on besides the node."""

    now: dt.datetime
    nodepools: Mapping[str, NodePool]
    instance_types: Mapping[str, Mapping[str, InstanceType]] = attrs.field(factory=dict)
    """NodePool → instance type name → instance type (what the provider offers the pool now)."""
    pdbs: pdb.Limits = attrs.field(factory=pdb.Limits)
    queued: frozenset[str] = frozenset()
    """State keys already in the orchestration queue."""


@final
@attrs.frozen(slots=True)
class Candidate:
    """A machine a method may disrupt, with its price and what moving its pods costs."""

    key: str
    name: str
    view: NodeView = attrs.field(eq=False, repr=False)
    nodeclaim: NodeClaim
    nodepool: NodePool
    instance_type: InstanceType | None
    zone: str | None
    capacity_type: str | None
    price: float | None
    """Hourly price of its offering (instance type × zone × capacity type); ``None`` if unknown."""
    reschedulable_pods: tuple[pod_utils.Pod, ...]
    disruption_cost: float
    """``1 + Σ max(0, eviction cost)`` over the pods that would move (Karpenter's reschedule cost)."""

    @property
    def is_empty(self) -> bool:
        """No pod would have to move."""
        return not self.reschedulable_pods

    @property
    def savings_ratio(self) -> float:
        """Price per unit of disruption: the consolidation sort key (highest first)."""
        return (self.price or 0.0) / self.disruption_cost

    @property
    def consolidatable(self) -> bool:
        return self.nodeclaim.is_true(conditions.ConditionType.CONSOLIDATABLE)

    @property
    def drifted(self) -> conditions.Condition | None:
        condition = self.nodeclaim.condition(conditions.ConditionType.DRIFTED)
        return condition if condition is not None and condition.is_true else None


def _reject(node: NodeView, reason: RejectionReason, message: str) -> Rejection:
    claim = node.nodeclaim
    return Rejection(node.name or node.key, reason, message, None if claim is None else claim.name)


def _blocking_pods(node: NodeView, ctx: Context) -> Iterator[Rejection]:
    """Every pod that may not be evicted now: do-not-disrupt ones first, then PDB-protected ones."""
    for pod in node.pods:
        if not pod_utils.is_active(pod):
            continue
        annotations = pod.annotations
        if meta.do_not_disrupt_active(annotations, pod.started_at, ctx.now):
            name = next(a for a in labels.DO_NOT_DISRUPT_ANNOTATIONS if a in annotations)
            yield _reject(
                node,
                RejectionReason.DO_NOT_DISRUPT,
                f'pod {pod.key} has "{name}: {annotations[name]}"',
            )
    for pod in node.pods:
        if not pod_utils.is_active(pod) or pod_utils.is_mirror(pod):
            continue
        why = ctx.pdbs.blocking(pod)
        if why is not None:
            yield _reject(node, RejectionReason.PDB, why)


def _offering_price(
    it: InstanceType | None, zone: str | None, capacity_type: str | None, reservation_id: str | None
) -> float | None:
    # a reserved node is priced by its own reservation's offering (two may share a zone)
    offering = None if it is None else it.offering(zone, capacity_type, reservation_id)
    # an unknown price (a provider without one reports infinity) is no price: never "infinite savings"
    return None if offering is None or not math.isfinite(offering.price) else offering.price


def _reasons(node: NodeView, ctx: Context, disruption_class: DisruptionClass) -> Iterator[Rejection]:
    """Why the node is not a candidate, in Karpenter's order; lazily, so `evaluate` stops at the first."""
    claim = node.nodeclaim
    # 1. Already being disrupted by a queued command.
    if node.key in ctx.queued:
        yield _reject(node, RejectionReason.IN_QUEUE, "already being disrupted")
    # 2. Not ours, or not a whole machine yet.
    if claim is None or node.node is None or node.name is None:
        yield _reject(node, RejectionReason.NOT_MANAGED, "not a managed, registered node")
        return
    if not node.initialized:
        yield _reject(node, RejectionReason.NOT_INITIALIZED, "not initialized")
    if node.marked_for_deletion:
        yield _reject(node, RejectionReason.MARKED_FOR_DELETION, "marked for deletion")
    if node.nominated(ctx.now):
        yield _reject(node, RejectionReason.NOMINATED, "nominated for a pending pod")
    # 3. The node itself opted out.
    if meta.do_not_disrupt(node.node.annotations) is True:
        yield _reject(node, RejectionReason.DO_NOT_DISRUPT, "node has do-not-disrupt annotation")
    # 4. Its NodePool.
    pool_name = node.nodepool
    if (ctx.nodepools.get(pool_name) if pool_name else None) is None:
        yield _reject(node, RejectionReason.NODEPOOL_NOT_FOUND, f"NodePool {pool_name!r} not found")
    # 5. Pods that may not be evicted now (waived for eventual disruption with a grace period).
    eventual = (
        disruption_class is DisruptionClass.EVENTUAL and claim.spec.termination_grace_period is not None
    )
    if not eventual:
        yield from _blocking_pods(node, ctx)


def reasons(
    node: NodeView, ctx: Context, disruption_class: DisruptionClass = DisruptionClass.GRACEFUL
) -> list[Rejection]:
    """*Every* reason the node is not a candidate (empty when it is one), for ``nodesmith explain``;
    `evaluate` reports only the first of these."""
    return list(_reasons(node, ctx, disruption_class))


def evaluate(
    node: NodeView, ctx: Context, disruption_class: DisruptionClass = DisruptionClass.GRACEFUL
) -> Candidate | Rejection:
    """The node as a candidate, or the first reason it is not one."""
    first = next(_reasons(node, ctx, disruption_class), None)
    if first is not None:
        return first
    claim, pool_name = node.nodeclaim, node.nodepool
    pool = ctx.nodepools.get(pool_name) if pool_name else None
    # _reasons checked all three
    assert claim is not None
    assert node.name is not None
    assert pool is not None
    # 6. Price and disruption cost.
    node_labels = node.labels
    it = ctx.instance_types.get(pool.name, {}).get(node_labels.get(labels.LABEL_INSTANCE_TYPE, ""))
    zone = node_labels.get(labels.LABEL_ZONE)
    capacity_type = node_labels.get(labels.LABEL_CAPACITY_TYPE)
    moving = tuple(p for p in node.pods if pod_utils.is_reschedulable(p))
    cost = 1.0 + sum(max(0.0, pod_utils.eviction_cost(p)) for p in moving)
    return Candidate(
        key=node.key,
        name=node.name,
        view=node,
        nodeclaim=claim,
        nodepool=pool,
        instance_type=it,
        zone=zone,
        capacity_type=capacity_type,
        price=_offering_price(it, zone, capacity_type, node_labels.get(labels.LABEL_RESERVATION_ID)),
        reschedulable_pods=moving,
        disruption_cost=cost,
    )


def evaluate_all(
    nodes: Iterable[NodeView], ctx: Context, disruption_class: DisruptionClass = DisruptionClass.GRACEFUL
) -> tuple[list[Candidate], list[Rejection]]:
    """Every node evaluated: candidates in the order given, and the rejections."""
    found: list[Candidate] = []
    rejected: list[Rejection] = []
    for node in nodes:
        verdict = evaluate(node, ctx, disruption_class)
        if isinstance(verdict, Candidate):
            found.append(verdict)
        else:
            rejected.append(verdict)
    return found, rejected
