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
from nodesmith.testing import factories, manifests
from nodesmith.whatif import snapshotfile

ZONE = "z1"
FAMILY = "example.com/family"
TAKEN_AT = "2025-01-01T01:00:00Z"


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
    return manifests.nodepool_manifest(
        name,
        requirements=reqs,
        taints=taints,
        disruption=manifests.nodepool_disruption(
            policy=policy, consolidate_after=consolidate_after, budgets=budgets
        ),
    )


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
        pool_hash = api_nodepool.NodePool.from_dict(self.pools[pool]).hash()
        node, claim = manifests.machine(
            name,
            node_labels=manifests.machine_labels(
                name,
                instance_type=it.name,
                zone=ZONE,
                nodepool=pool,
                capacity_type=capacity_type,
                extra={FAMILY: instance_type.partition("-")[0]},
            ),
            allocatable=quantity.format_resources({**it.allocatable, "pods": 110_000}),
            consolidatable=consolidatable,
            node_annotations=node_annotations or {},
            claim_annotations={
                labels.ANNOTATION_NODEPOOL_HASH: pool_hash,
                labels.ANNOTATION_NODEPOOL_HASH_VERSION: api_nodepool.HASH_VERSION,
            },
        )
        self.objects += [claim, node]

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
        self.objects.append(
            manifests.app_pod(
                name,
                node_name=node,
                pending=node is None,
                cpu=cpu,
                memory=memory,
                app=app,
                annotations=annotations or {},
                node_selector=node_selector,
                owner_name=f"{app}-rs",
            )
        )
        return f"default/{name}"

    def pdb(self, name: str, app: str, allowed: int) -> None:
        self.objects.append(manifests.pdb_manifest(name, app=app, allowed=allowed))

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
