"""Dict factories for cluster-state unit tests: Nodes, NodeClaims, Pods as the API delivers them."""

from __future__ import annotations

import datetime as dt
import itertools
import typing

from nodesmith.api import labels
from nodesmith.testing import manifests

Obj = dict[str, typing.Any]

_rv = itertools.count(1)
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def rv() -> str:
    return str(next(_rv))


def node(
    name: str,
    *,
    provider_id: str | None = None,
    cpu: str = "4",
    memory: str = "16Gi",
    pods: str = "110",
    nodepool: str | None = None,
    registered: bool = True,
    initialized: bool = True,
    taints: list[Obj] | None = None,
    deleting: bool = False,
) -> Obj:
    node_labels: dict[str, str] = {labels.LABEL_HOSTNAME: name}
    if nodepool is not None:
        node_labels[labels.LABEL_NODEPOOL] = nodepool
        if registered:
            node_labels[labels.LABEL_REGISTERED] = "true"
        if initialized:
            node_labels[labels.LABEL_INITIALIZED] = "true"
    meta: Obj = {"name": name, "uid": f"uid-{name}", "resourceVersion": rv(), "labels": node_labels}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    spec: Obj = {}
    if provider_id is not None:
        spec["providerID"] = provider_id
    if taints:
        spec["taints"] = taints
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta,
        "spec": spec,
        "status": {"allocatable": dict(resources), "capacity": dict(resources)},
    }


def nodeclaim(
    name: str,
    *,
    provider_id: str | None = None,
    nodepool: str = "default",
    node_name: str | None = None,
    cpu: str = "4",
    memory: str = "16Gi",
    deleting: bool = False,
) -> Obj:
    meta: Obj = {
        "name": name,
        "uid": f"uid-{name}",
        "resourceVersion": rv(),
        "labels": {labels.LABEL_NODEPOOL: nodepool, labels.LABEL_INSTANCE_TYPE: "m.large"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    status: Obj = {}
    if provider_id is not None:
        status["providerID"] = provider_id
        status["capacity"] = {"cpu": cpu, "memory": memory, "pods": "110"}
        status["allocatable"] = {"cpu": cpu, "memory": memory, "pods": "110"}
    if node_name is not None:
        status["nodeName"] = node_name
    return {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodeClaim",
        "metadata": meta,
        "spec": {
            "nodeClassRef": manifests.nodeclass_ref(),
            "requirements": [{"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]}],
            "taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}],
        },
        "status": status,
    }


def pod(
    name: str,
    *,
    namespace: str = "default",
    node_name: str | None = None,
    cpu: str = "1",
    memory: str = "1Gi",
    phase: str = "Running",
    daemonset: str | None = None,
    anti_affinity_key: str | None = None,
    created: str = "2025-01-01T00:00:00Z",
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "resourceVersion": rv(),
        "creationTimestamp": created,
        "labels": {"app": name},
    }
    if daemonset is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": daemonset, "uid": "ds", "controller": True}
        ]
    spec: Obj = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
    if node_name is not None:
        spec["nodeName"] = node_name
    if anti_affinity_key is not None:
        spec["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": anti_affinity_key, "labelSelector": {"matchLabels": {"app": name}}}
                ]
            }
        }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": phase}}


def nodepool(name: str = "default") -> Obj:
    return manifests.nodepool_manifest(name, uid=f"uid-np-{name}", resource_version=rv())
