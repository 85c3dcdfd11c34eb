"""Object factories for tests and benchmarks: the scheduling engine's inputs -- pod dicts, instance types,
NodeClaim templates, existing nodes. The API objects the cluster state reads (NodePools, a managed Node
with its NodeClaim, controller-owned pods, PDBs) are in `nodesmith.testing.manifests`.

Tests across the project build their inputs here instead of hand-writing dicts, so a change in what the
engine reads is one edit. :func:`fake_instance_types` is Karpenter's ``fake.InstanceTypes(n)`` shape, which
the scheduling benchmark uses: type *i* has *i+1* vCPU, *2(i+1)* GiB, *10(i+1)* pods, offerings in three
zones × spot/on-demand, priced 0.1 per vCPU + 0.1 per GiB, and 100m CPU / 10Mi kube-reserved.
Everything is deterministic: names and uids come from a counter, never from randomness.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nodesmith.api import labels, quantity
from nodesmith.api.nodepool import Packing
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering, Overhead
from nodesmith.scheduling import inputs

__all__ = [
    "FAKE_ZONES",
    "affinity_term",
    "daemonset_pod",
    "existing_node",
    "expr",
    "fake_instance_types",
    "instance_type",
    "node_selector_term",
    "pod",
    "pods",
    "spread",
    "template",
]

FAKE_ZONES = ("test-zone-1", "test-zone-2", "test-zone-3")
_counter = itertools.count(1)

Expressions = Sequence[Mapping[str, Any]]


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    """One node selector requirement (``expr("topology.kubernetes.io/zone", "In", "test-zone-1")``)."""
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


def node_selector_term(requirements: Mapping[str, str | Sequence[str]]) -> list[dict[str, Any]]:
    """``matchExpressions`` with ``In`` for each ``key: value`` or ``key: [values]``."""
    return [
        {"key": k, "operator": "In", "values": [v] if isinstance(v, str) else list(v)}
        for k, v in requirements.items()
    ]


def affinity_term(topology_key: str, match_labels: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    """A pod (anti-)affinity term selecting ``match_labels`` over ``topology_key``."""
    return {"topologyKey": topology_key, "labelSelector": {"matchLabels": dict(match_labels)}, **extra}


def spread(
    topology_key: str,
    match_labels: Mapping[str, str] | None,
    *,
    max_skew: int = 1,
    when: str = "DoNotSchedule",
    **extra: Any,
) -> dict[str, Any]:
    """A topology spread constraint (``extra``: ``minDomains``, ``nodeAffinityPolicy``, ``matchLabelKeys``…)."""
    out: dict[str, Any] = {
        "topologyKey": topology_key,
        "maxSkew": max_skew,
        "whenUnsatisfiable": when,
        **extra,
    }
    if match_labels is not None:
        out["labelSelector"] = {"matchLabels": dict(match_labels)}
    return out


def pod(
    name: str | None = None,
    *,
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    requests: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    required: Sequence[Expressions] | None = None,
    preferred: Sequence[tuple[int, Expressions]] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    spread: Sequence[Mapping[str, Any]] | None = None,
    affinity: Sequence[Mapping[str, Any]] | None = None,
    anti_affinity: Sequence[Mapping[str, Any]] | None = None,
    preferred_affinity: Sequence[tuple[int, Mapping[str, Any]]] | None = None,
    preferred_anti_affinity: Sequence[tuple[int, Mapping[str, Any]]] | None = None,
    host_ports: Sequence[int] | None = None,
    claims: Sequence[str] | None = None,
    init_containers: Sequence[Mapping[str, Any]] | None = None,
    overhead: Mapping[str, str] | None = None,
    owner_kind: str | None = None,
    node_name: str | None = None,
    uid: str | None = None,
    creation: str = "2024-01-01T00:00:00Z",
    unschedulable: bool = True,
) -> dict[str, Any]:
    """A pod dict as the API would return it (``required``: OR'd node-affinity terms, each a list of
    match expressions; ``preferred``: ``(weight, expressions)``)."""
    n = next(_counter)
    name = name or f"pod-{n:06d}"
    container_requests = dict(requests or {})
    if cpu is not None:
        container_requests["cpu"] = cpu
    if memory is not None:
        container_requests["memory"] = memory
    container: dict[str, Any] = {
        "name": "main",
        "image": "pause",
        "resources": {"requests": container_requests},
    }
    if host_ports:
        container["ports"] = [{"containerPort": p, "hostPort": p, "protocol": "TCP"} for p in host_ports]
    spec: dict[str, Any] = {"containers": [container]}
    if init_containers:
        spec["initContainers"] = list(init_containers)
    if overhead:
        spec["overhead"] = dict(overhead)
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    affinity_spec: dict[str, Any] = {}
    if required or preferred:
        node_affinity: dict[str, Any] = {}
        if required:
            node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
                "nodeSelectorTerms": [{"matchExpressions": list(t)} for t in required]
            }
        if preferred:
            node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": w, "preference": {"matchExpressions": list(t)}} for w, t in preferred
            ]
        affinity_spec["nodeAffinity"] = node_affinity
    for field, req_terms, pref_terms in (
        ("podAffinity", affinity, preferred_affinity),
        ("podAntiAffinity", anti_affinity, preferred_anti_affinity),
    ):
        section: dict[str, Any] = {}
        if req_terms:
            section["requiredDuringSchedulingIgnoredDuringExecution"] = list(req_terms)
        if pref_terms:
            section["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": w, "podAffinityTerm": t} for w, t in pref_terms
            ]
        if section:
            affinity_spec[field] = section
    if affinity_spec:
        spec["affinity"] = affinity_spec
    if tolerations:
        spec["tolerations"] = list(tolerations)
    if spread:
        spec["topologySpreadConstraints"] = list(spread)
    if claims:
        spec["volumes"] = [
            {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)
        ]
    if node_name:
        spec["nodeName"] = node_name
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{namespace}-{name}",
        "labels": dict(labels or {}),
        "creationTimestamp": creation,
    }
    if owner_kind:
        metadata["ownerReferences"] = [{"kind": owner_kind, "name": "owner", "controller": True}]
    status: dict[str, Any] = {"phase": "Running" if node_name else "Pending"}
    if unschedulable and not node_name:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def pods(count: int, **kwargs: Any) -> list[dict[str, Any]]:
    """``count`` pods made alike (e.g. the replicas of one Deployment)."""
    return [pod(**kwargs) for _ in range(count)]


def daemonset_pod(**kwargs: Any) -> dict[str, Any]:
    """A DaemonSet-owned pod (as the scheduler takes one per DaemonSet)."""
    return pod(owner_kind="DaemonSet", unschedulable=False, **kwargs)


def instance_type(
    name: str,
    *,
    cpu: int | str,
    memory: str,
    pods: int = 110,
    zones: Iterable[str] = FAKE_ZONES,
    capacity_types: Iterable[str] = ("spot", "on-demand"),
    price: float | None = None,
    arch: str = "amd64",
    extra: Mapping[str, str] | None = None,
    resources: Mapping[str, str] | None = None,
    kube_reserved: Mapping[str, str] | None = None,
    unavailable: Iterable[tuple[str, str]] = (),
    reservations: Iterable[tuple[str, str, int]] = (),
    reserved_price: float | None = None,
) -> InstanceType:
    """One instance type; ``price`` defaults to 0.1 per vCPU + 0.1 per GiB. ``unavailable`` lists
    ``(zone, capacity_type)`` offerings that exist but are not available. ``reservations`` adds a reserved
    offering per ``(reservation id, zone, remaining count)``, priced ``reserved_price`` (default: a
    thousandth of ``price``, as a provider makes capacity already paid for the cheapest)."""
    capacity = quantity.parse_resources(
        {"cpu": str(cpu), "memory": memory, "pods": str(pods), **(resources or {})}
    )
    if price is None:
        price = round(0.1 * capacity["cpu"] / 1000 + 0.1 * capacity["memory"] / 1000 / 2**30, 6)
    zones = tuple(zones)
    capacity_types = tuple(capacity_types)
    down = set(unavailable)
    offerings = tuple(
        Offering.of(z, c, price, available=(z, c) not in down) for z in zones for c in capacity_types
    )
    reserved_offerings = tuple(
        Offering.of_reservation(z, rid, price / 1000 if reserved_price is None else reserved_price, count)
        for rid, z, count in reservations
    )
    if reserved_offerings:
        offerings += reserved_offerings
        zones = (*zones, *(o.zone for o in reserved_offerings if o.zone not in zones))
        capacity_types = (*capacity_types, labels.CapacityType.RESERVED)
    reqs = [
        Requirement.in_(labels.LABEL_INSTANCE_TYPE, name),
        Requirement.in_(labels.LABEL_ARCH, arch),
        Requirement.in_(labels.LABEL_OS, "linux"),
        Requirement.in_(labels.LABEL_ZONE, *zones),
        Requirement.in_(labels.LABEL_CAPACITY_TYPE, *capacity_types),
    ]
    reqs += [Requirement.in_(k, v) for k, v in (extra or {}).items()]
    reserved = quantity.parse_resources(
        kube_reserved if kube_reserved is not None else {"cpu": "100m", "memory": "10Mi"}
    )
    return InstanceType(name, Requirements(reqs), offerings, capacity, Overhead(kube_reserved=reserved))


def fake_instance_types(count: int) -> list[InstanceType]:
    """Karpenter's ``fake.InstanceTypes(count)``: ``fake-it-i`` with i+1 vCPU, 2(i+1) GiB, 10(i+1) pods."""
    return [
        instance_type(f"fake-it-{i}", cpu=i + 1, memory=f"{2 * (i + 1)}Gi", pods=10 * (i + 1))
        for i in range(count)
    ]


def template(
    nodepool: str = "default",
    instance_types: Sequence[InstanceType] | None = None,
    *,
    requirements: Expressions | Requirements | None = None,
    weight: int = 0,
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, Any]] = (),
    startup_taints: Sequence[Mapping[str, Any]] = (),
    limits: Mapping[str, str] | None = None,
    packing: str = "karpenter",
) -> inputs.NodeClaimTemplate:
    """A NodeClaim template (a NodePool as the engine sees it); ``limits`` are remaining limits as
    quantities (``{"cpu": "10", "nodes": "2"}``); ``packing`` the ``nodesmith.io/packing`` annotation."""
    if requirements is None:
        reqs = Requirements()
    elif isinstance(requirements, Requirements):
        reqs = requirements
    else:
        reqs = Requirements.from_node_selector(requirements)
    return inputs.NodeClaimTemplate(
        nodepool=nodepool,
        instance_types=list(instance_types if instance_types is not None else fake_instance_types(10)),
        requirements=reqs,
        weight=weight,
        labels=dict(labels or {}),
        taints=tuple(taints),
        startup_taints=tuple(startup_taints),
        remaining_limits=None if limits is None else quantity.parse_resources(limits),
        packing=Packing.from_annotation(packing),
    )


def existing_node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    zone: str = "test-zone-1",
    labels: Mapping[str, str] | None = None,
    requested: Mapping[str, str] | None = None,
    bound_pods: Sequence[Mapping[str, Any]] = (),
    taints: Sequence[Mapping[str, Any]] = (),
    initialized: bool = True,
    nodepool: str | None = "default",
    **kwargs: Any,
) -> inputs.ExistingNode:
    """An existing node in ``zone``; ``requested`` defaults to the sum of ``bound_pods``' requests."""
    from nodesmith.scheduling import pods as scheduling_pods  # local: keep the factory import light

    node_labels = {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone, **(labels or {})}
    if nodepool is not None:
        node_labels.setdefault("nodesmith.io/nodepool", nodepool)
    if requested is None:
        used = quantity.sum_of(scheduling_pods.pod_requests(p["spec"]) for p in bound_pods)
    else:
        used = quantity.parse_resources(requested)
    return inputs.ExistingNode(
        name=name,
        labels=node_labels,
        allocatable=quantity.parse_resources({"cpu": cpu, "memory": memory, "pods": str(pods)}),
        requested=used,
        taints=tuple(taints),
        initialized=initialized,
        nodepool=nodepool,
        pods=list(bound_pods),
        **kwargs,
    )


# -- API objects as the cluster state reads them ------------------------------------------------------
