"""A pending pod as the scheduler sees it: an immutable :class:`SchedulingPod` parsed once from a pod dict.

The caller (the provisioner, ``nodesmith simulate``, the disruption simulation) passes Kubernetes pod dicts;
:func:`parse_pod` turns each into the values every check needs, computed once: resource requests (Kubernetes
``PodRequests``, sidecar-aware, plus ``pods: 1``), node requirements (nodeSelector ∩ the OR'd required
node-affinity terms, the heaviest preferred term on top), tolerations, topology spread constraints,
pod (anti-)affinity terms, host ports and PVC names. ``preferences`` derives relaxed copies;
``scheduler`` groups pods by :attr:`SchedulingPod.key`; ``topology`` reads the terms.

:func:`is_provisionable` is Karpenter's ``IsProvisionable`` (spec 2.1).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.api import labels, quantity
from nodesmith.api.requirements import Requirement, RequirementError, Requirements
from nodesmith.scheduling import hostports, selectors, taints

__all__ = [
    "AffinityTerm",
    "PodRef",
    "SchedulingPod",
    "SpreadConstraint",
    "is_provisionable",
    "parse_pod",
    "pod_requests",
]

RESOURCE_PODS: Final = "pods"
_SUPPORTED_NODE_OPERATORS: Final = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})


@final
@attrs.frozen(slots=True)
class PodRef:
    """Which pod: what results and errors name."""

    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@final
@attrs.frozen(slots=True)
class SpreadConstraint:
    """One ``topologySpreadConstraints`` entry, ``matchLabelKeys`` already merged into the selector."""

    topology_key: str
    max_skew: int
    selector: selectors.LabelSelector
    schedule_anyway: bool = False
    min_domains: int | None = None
    honor_node_affinity: bool = True
    honor_node_taints: bool = False


@final
@attrs.frozen(slots=True)
class AffinityTerm:
    """One pod (anti-)affinity term. ``namespaces`` empty and no namespace selector = the pod's namespace."""

    topology_key: str
    selector: selectors.LabelSelector
    namespaces: frozenset[str] = frozenset()
    namespace_selector: selectors.LabelSelector | None = None


@final
@attrs.frozen(slots=True, eq=False)
class SchedulingPod:
    """Everything scheduling reads from a pod. Identity equality; :attr:`key` groups identical pods."""

    ref: PodRef
    labels: Mapping[str, str]
    creation: str
    requests: Mapping[str, int]
    node_selector: Requirements = attrs.field(factory=Requirements)
    required_terms: tuple[Requirements, ...] = ()
    """nodeSelector ∩ each OR'd required node-affinity term; empty when the pod has no required affinity."""
    preferred_terms: tuple[tuple[int, Requirements], ...] = ()
    """Preferred node-affinity terms, heaviest first (stable)."""
    tolerations: tuple[taints.Toleration, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()
    affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[tuple[int, AffinityTerm], ...] = ()
    anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[tuple[int, AffinityTerm], ...] = ()
    host_ports: tuple[hostports.HostPort, ...] = ()
    volume_claims: tuple[str, ...] = ()
    invalid: str | None = None
    """Why Karpenter's ``Validate`` would ignore this pod (unsupported operator, ``matchFields``, opt-out)."""
    relaxed: tuple[str, ...] = ()
    """Which preferences were relaxed to get this variant, in order (empty for the pod as written)."""

    @property
    def namespace(self) -> str:
        return self.ref.namespace

    @functools.cached_property
    def strict_requirements(self) -> Requirements:
        """nodeSelector ∩ first required term: what the pod must have (topology counts use this)."""
        return self.required_terms[0] if self.required_terms else self.node_selector

    @functools.cached_property
    def requirements(self) -> Requirements:
        """Strict requirements ∩ the heaviest preferred term, which is treated as required until relaxed."""
        if not self.preferred_terms:
            return self.strict_requirements
        return self.strict_requirements.intersect(self.preferred_terms[0][1])

    @functools.cached_property
    def has_topology(self) -> bool:
        return bool(
            self.spread
            or self.affinity
            or self.anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
        )

    @functools.cached_property
    def key(self) -> tuple[Any, ...]:
        """Everything that decides where this pod may go. Two pods with equal keys behave identically in
        every check the scheduler makes, so a verdict for one is a verdict for the other."""
        return (
            self.ref.namespace,
            frozenset(self.labels.items()),
            tuple(sorted(self.requests.items())),
            self.node_selector,
            self.required_terms,
            self.preferred_terms,
            self.tolerations,
            self.spread,
            self.affinity,
            self.preferred_affinity,
            self.anti_affinity,
            self.preferred_anti_affinity,
            self.host_ports,
            self.volume_claims,
            self.invalid,
        )


def is_provisionable(pod: Mapping[str, Any]) -> bool:
    """Karpenter's ``IsProvisionable``: kube-scheduler marked it ``Unschedulable``, it is not bound or
    nominated (preempting), and it is neither a DaemonSet pod nor a static/mirror pod."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("nodeName") or status.get("nominatedNodeName"):
        return False
    if _owner_kind(pod) in ("DaemonSet", "Node"):
        return False
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or ()
    )


def _owner_kind(pod: Mapping[str, Any]) -> str | None:
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if owner.get("controller", True):
            return str(owner.get("kind"))
    return None


@functools.lru_cache(maxsize=4096)
def _quantity(value: str | int | float) -> int:
    return quantity.parse_quantity(value)


def _resources(values: Mapping[str, Any] | None) -> dict[str, int]:
    """``quantity.parse_resources`` with parsed quantities memoised (pods repeat the same few strings)."""
    out: dict[str, int] = {}
    for name, raw in (values or {}).items():
        try:
            out[str(name)] = _quantity(raw)
        except quantity.QuantityError as err:
            raise quantity.QuantityError(f"{name}: {err}") from err
    return out


def _merge_limits(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    merged = _resources(resources.get("limits"))
    merged.update(_resources(resources.get("requests")))
    return merged


def pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """Kubernetes ``PodRequests`` (limits stand in for missing requests, as Karpenter's ``Ceiling``):
    max(Σ containers + Σ sidecars, each init container on top of the sidecars started before it) + overhead,
    with pod-level ``resources.requests`` winning where set; plus ``pods: 1``."""
    total: dict[str, int] = {}
    for container in spec.get("containers") or ():
        total = quantity.add(total, _merge_limits(container))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or ():
        requests = _merge_limits(container)
        if container.get("restartPolicy") == "Always":
            total = quantity.add(total, requests)
            sidecars = quantity.add(sidecars, requests)
            init_peak = quantity.max_of(init_peak, sidecars)
        else:
            init_peak = quantity.max_of(init_peak, quantity.add(requests, sidecars))
    total = quantity.max_of(total, init_peak)
    total.update(_resources((spec.get("resources") or {}).get("requests")))
    total = quantity.add(total, _resources(spec.get("overhead")))
    total[RESOURCE_PODS] = 1000
    return {k: v for k, v in total.items() if v}


def _node_selector_terms(expressions: Sequence[Mapping[str, Any]]) -> Requirements:
    for expr in expressions:
        if str(expr.get("operator")) not in _SUPPORTED_NODE_OPERATORS:
            raise RequirementError(f"unsupported node selector operator {expr.get('operator')!r}")
    return Requirements.from_node_selector(expressions)


def _affinity_term(term: Mapping[str, Any], pod_labels: Mapping[str, str]) -> AffinityTerm:
    selector = selectors.LabelSelector.parse(term.get("labelSelector"))
    match_keys = {k: pod_labels[k] for k in term.get("matchLabelKeys") or () if k in pod_labels}
    ns_selector = term.get("namespaceSelector")
    return AffinityTerm(
        topology_key=labels.normalize_label(str(term["topologyKey"])),
        selector=selector.with_labels(match_keys),
        namespaces=frozenset(str(n) for n in term.get("namespaces") or ()),
        namespace_selector=None if ns_selector is None else selectors.LabelSelector.parse(ns_selector),
    )


def _by_weight(items: list[tuple[int, Any]]) -> tuple[tuple[int, Any], ...]:
    return tuple(sorted(items, key=lambda item: -item[0]))


def identity(pod: Mapping[str, Any]) -> tuple[PodRef, dict[str, str]]:
    """A pod's reference (the uid falls back to ``namespace/name``) and labels, as :func:`parse_pod`
    reads them."""
    meta = pod.get("metadata") or {}
    pod_labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    ref = PodRef(
        str(meta.get("namespace") or "default"), str(meta.get("name") or ""), str(meta.get("uid") or "")
    )
    if not ref.uid:
        ref = attrs.evolve(ref, uid=f"{ref.namespace}/{ref.name}")
    return ref, pod_labels


def inert_when_bound(pod: Mapping[str, Any]) -> bool:
    """True when a pod bound to a node affects others only through its labels: no pod anti-affinity, no
    host ports, no persistent or ephemeral volumes. Such a pod need not be parsed to be counted (a cluster
    has many bound pods and most of them never move in a run)."""
    spec = pod.get("spec") or {}
    if (spec.get("affinity") or {}).get("podAntiAffinity"):
        return False
    if any(v.get("persistentVolumeClaim") or v.get("ephemeral") for v in spec.get("volumes") or ()):
        return False
    return not hostports.pod_host_ports(spec)


def parse_pod(pod: Mapping[str, Any]) -> SchedulingPod:
    """Parse a Kubernetes pod dict. Invalid scheduling fields do not raise: the pod comes back with
    :attr:`SchedulingPod.invalid` set, and the scheduler reports it instead of placing it."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ref, pod_labels = identity(pod)
    invalid: str | None = None
    node_selector = Requirements()
    required: list[Requirements] = []
    preferred: list[tuple[int, Any]] = []
    try:
        node_selector = Requirements(
            Requirement.in_(str(k), str(v)) for k, v in (spec.get("nodeSelector") or {}).items()
        )
        node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        req = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
        for term in req.get("nodeSelectorTerms") or ():
            if term.get("matchFields"):
                raise RequirementError("node affinity matchFields is not supported")
            required.append(node_selector.intersect(_node_selector_terms(term.get("matchExpressions") or ())))
        for term in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ():
            preference = term.get("preference") or {}
            preferred.append(
                (int(term.get("weight") or 0), _node_selector_terms(preference.get("matchExpressions") or ()))
            )
    except (RequirementError, KeyError, ValueError) as err:
        invalid = f"unsupported node requirements: {err}"
    for requirements in [node_selector, *required]:
        nodepool = requirements.get(labels.LABEL_NODEPOOL)
        if labels.LABEL_NODEPOOL in requirements and nodepool.operator.value == "DoesNotExist":
            invalid = (
                invalid or f"pod requires {labels.LABEL_NODEPOOL} DoesNotExist (opted out of managed nodes)"
            )

    spread: list[SpreadConstraint] = []
    affinity: list[AffinityTerm] = []
    anti: list[AffinityTerm] = []
    pref_affinity: list[tuple[int, Any]] = []
    pref_anti: list[tuple[int, Any]] = []
    try:
        for tsc in spec.get("topologySpreadConstraints") or ():
            match_keys = {k: pod_labels[k] for k in tsc.get("matchLabelKeys") or () if k in pod_labels}
            min_domains = tsc.get("minDomains")
            spread.append(
                SpreadConstraint(
                    topology_key=labels.normalize_label(str(tsc["topologyKey"])),
                    max_skew=int(tsc.get("maxSkew") or 1),
                    selector=selectors.LabelSelector.parse(tsc.get("labelSelector")).with_labels(match_keys),
                    schedule_anyway=tsc.get("whenUnsatisfiable") == "ScheduleAnyway",
                    min_domains=None if min_domains is None else int(min_domains),
                    honor_node_affinity=(tsc.get("nodeAffinityPolicy") or "Honor") == "Honor",
                    honor_node_taints=(tsc.get("nodeTaintsPolicy") or "Ignore") == "Honor",
                )
            )
        aff = spec.get("affinity") or {}
        for field, required_out, preferred_out in (
            ("podAffinity", affinity, pref_affinity),
            ("podAntiAffinity", anti, pref_anti),
        ):
            section = aff.get(field) or {}
            for term in section.get("requiredDuringSchedulingIgnoredDuringExecution") or ():
                required_out.append(_affinity_term(term, pod_labels))
            for weighted in section.get("preferredDuringSchedulingIgnoredDuringExecution") or ():
                preferred_out.append(
                    (
                        int(weighted.get("weight") or 0),
                        _affinity_term(weighted["podAffinityTerm"], pod_labels),
                    )
                )
    except (selectors.SelectorError, KeyError, ValueError, TypeError) as err:
        invalid = invalid or f"unsupported topology terms: {err}"

    claims: list[str] = []
    for volume in spec.get("volumes") or ():
        if volume.get("persistentVolumeClaim"):
            claims.append(str(volume["persistentVolumeClaim"].get("claimName")))
        elif volume.get("ephemeral"):
            claims.append(f"{ref.name}-{volume.get('name')}")
    try:
        requests = pod_requests(spec)
    except quantity.QuantityError as err:
        requests = {RESOURCE_PODS: 1000}
        invalid = invalid or f"invalid resource requests: {err}"
    return SchedulingPod(
        ref=ref,
        labels=pod_labels,
        creation=str(meta.get("creationTimestamp") or ""),
        requests=requests,
        node_selector=node_selector,
        required_terms=tuple(required),
        preferred_terms=_by_weight(preferred),
        tolerations=taints.parse_tolerations(spec.get("tolerations")),
        spread=tuple(spread),
        affinity=tuple(affinity),
        preferred_affinity=_by_weight(pref_affinity),
        anti_affinity=tuple(anti),
        preferred_anti_affinity=_by_weight(pref_anti),
        host_ports=hostports.pod_host_ports(spec),
        volume_claims=tuple(claims),
        invalid=invalid,
    )
