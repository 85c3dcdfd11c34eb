"""Snapshot documents for the what-if tests: NodePools, machines (Node + NodeClaim as the API returns
them, stamped with their NodePool's hash), pods and PDBs, and a four-type catalogue in two families.

Family ``c`` has 2 GiB per vCPU, family ``m`` 8 GiB; every type has a spot and an on-demand offering in
one zone at one price. Every machine is initialized, Ready and ``Consolidatable`` unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nodesmith.api import labels, quantity
from nodesmith.api import nodepool as api_nodepool
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.testing import factories
from nodesmith.whatif import snapshotfile

ZONE = "z1"
FAMILY = "example.com/family"
TAKEN_AT = "2025-01-01T01:00:00Z"
_STAMP = "2025-01-01T00:00:00Z"


def _type(name: str, family: str, cpu: int, memory: str, price: float) -> InstanceType:
    return factories.instance_type(
        name, cpu=cpu, memory=memory, zones=(ZONE,), price=price, extra={FAMILY: family}
    )


CATALOGUE: tuple[InstanceType, ...] = (
    _type("c-2", "c", 2, "4Gi", 0.08),
    _type("c-4", "c", 4, "8Gi", 0.16),
    _type("m-2", "m", 2, "16Gi", 0.12),
    _type("m-4", "m", 4, "32Gi", 0.24),
)
BY_NAME = {it.name: it for it in CATALOGUE}


def nodepool(
    name: str = "default",
    *,
    families: Sequence[str] | None = None,
    policy: str = "WhenEmptyOrUnderutilized",
    consolidate_after: str = "0s",
    budgets: Sequence[Mapping[str, Any]] | None = None,
    taints: Sequence[Mapping[str, Any]] = (),
    requirements: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    reqs = list(requirements)
    if families is not None:
        reqs.append({"key": FAMILY, "operator": "In", "values": list(families)})
    disruption: dict[str, Any] = {"consolidationPolicy": policy, "consolidateAfter": consolidate_after}
    if budgets is not None:
        disruption["budgets"] = list(budgets)
    spec: dict[str, Any] = {
        "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
        "requirements": reqs,
    }
    if taints:
        spec["taints"] = list(taints)
    return {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodePool",
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"template": {"spec": spec}, "disruption": disruption},
    }


class Builder:
    """Collects objects; `document` / `file` give the snapshot."""

    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self.pools: dict[str, dict[str, Any]] = {}
        self._pods = 0

    def pool(self, name: str = "default", **kwargs: Any) -> dict[str, Any]:
        obj = nodepool(name, **kwargs)
        self.objects.append(obj)
        self.pools[name] = obj
        return obj

    def machine(
        self,
        name: str,
        instance_type: str = "c-4",
        *,
        pool: str = "default",
        capacity_type: str = "on-demand",
        consolidatable: bool = True,
        node_annotations: Mapping[str, str] | None = None,
    ) -> None:
        it = BY_NAME[instance_type]
        provider_id = f"test://{name}"
        family = instance_type.partition("-")[0]
        node_labels = {
            labels.LABEL_HOSTNAME: name,
            labels.LABEL_NODEPOOL: pool,
            labels.LABEL_INSTANCE_TYPE: it.name,
            labels.LABEL_ZONE: ZONE,
            labels.LABEL_CAPACITY_TYPE: capacity_type,
            labels.LABEL_ARCH: "amd64",
            labels.LABEL_OS: "linux",
            labels.LABEL_REGISTERED: "true",
            labels.LABEL_INITIALIZED: "true",
            FAMILY: family,
        }
        allocatable = quantity.format_resources({**it.allocatable, "pods": 110_000})
        conditions = [
            {"type": t, "status": "True", "reason": t, "message": "", "lastTransitionTime": _STAMP}
            for t in ("Launched", "Registered", "Initialized", "Ready")
            + (("Consolidatable",) if consolidatable else ())
        ]
        pool_hash = api_nodepool.NodePool.from_dict(self.pools[pool]).hash()
        claim_labels = {
            k: v
            for k, v in node_labels.items()
            if k not in (labels.LABEL_HOSTNAME, labels.LABEL_REGISTERED, labels.LABEL_INITIALIZED)
        }
        self.objects.append(
            {
                "apiVersion": "nodesmith.io/v1",
                "kind": "NodeClaim",
                "metadata": {
                    "name": f"claim-{name}",
                    "uid": f"uid-claim-{name}",
                    "labels": claim_labels,
                    "annotations": {
                        labels.ANNOTATION_NODEPOOL_HASH: pool_hash,
                        labels.ANNOTATION_NODEPOOL_HASH_VERSION: api_nodepool.HASH_VERSION,
                    },
                    "creationTimestamp": _STAMP,
                },
                "spec": {
                    "nodeClassRef": {
                        "group": "kwok.nodesmith.io",
                        "kind": "KWOKNodeClass",
                        "name": "default",
                    },
                    "requirements": [],
                },
                "status": {
                    "providerID": provider_id,
                    "nodeName": name,
                    "capacity": allocatable,
                    "allocatable": allocatable,
                    "conditions": conditions,
                },
            }
        )
        self.objects.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "uid": f"uid-{name}",
                    "labels": node_labels,
                    "annotations": dict(node_annotations or {}),
                },
                "spec": {"providerID": provider_id},
                "status": {
                    "allocatable": allocatable,
                    "capacity": allocatable,
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )

    def pod(
        self,
        node: str | None,
        cpu: str = "1",
        *,
        name: str | None = None,
        app: str = "app",
        memory: str = "100Mi",
        annotations: Mapping[str, str] | None = None,
        node_selector: Mapping[str, str] | None = None,
    ) -> str:
        self._pods += 1
        name = name or f"{app}-{self._pods}"
        spec: dict[str, Any] = {
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]
        }
        if node_selector:
            spec["nodeSelector"] = dict(node_selector)
        if node is not None:
            spec["nodeName"] = node
            status: dict[str, Any] = {
                "phase": "Running",
                "startTime": _STAMP,
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        else:
            status = {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
            }
        self.objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": "default",
                    "uid": f"uid-{name}",
                    "labels": {"app": app},
                    "annotations": dict(annotations or {}),
                    "creationTimestamp": _STAMP,
                    "ownerReferences": [{"kind": "ReplicaSet", "name": f"{app}-rs", "controller": True}],
                },
                "spec": spec,
                "status": status,
            }
        )
        return f"default/{name}"

    def pdb(self, name: str, app: str, allowed: int) -> None:
        self.objects.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": app}}},
                "status": {"disruptionsAllowed": allowed},
            }
        )

    def document(self) -> dict[str, Any]:
        return {
            "apiVersion": snapshotfile.API_VERSION,
            "kind": snapshotfile.KIND,
            "takenAt": TAKEN_AT,
            "objects": self.objects,
            "instanceTypes": {pool: [it.to_dict() for it in CATALOGUE] for pool in self.pools},
        }

    def file(self) -> snapshotfile.SnapshotFile:
        return snapshotfile.SnapshotFile.from_dict(self.document())
