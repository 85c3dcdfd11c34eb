"""A small cluster for disruption unit tests: machines (Node + NodeClaim joined in a real `ClusterState`),
pods on them, NodePools and a three-size instance catalogue, with a fake clock.

Every machine is initialized, Ready and ``Consolidatable`` unless told otherwise; prices are per hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from nodesmith.api import labels
from nodesmith.api import nodepool as api_nodepool
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import candidates, pdb
from nodesmith.kube import resources
from nodesmith.state import ClusterState, Snapshot, simulation
from nodesmith.testing import factories

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
ZONE = "z1"

CATALOGUE: tuple[InstanceType, ...] = (
    factories.instance_type("small", cpu=2, memory="4Gi", zones=(ZONE,), price=0.1),
    factories.instance_type("medium", cpu=4, memory="8Gi", zones=(ZONE,), price=0.2),
    factories.instance_type("large", cpu=8, memory="16Gi", zones=(ZONE,), price=0.4),
)
_BY_NAME = {it.name: it for it in CATALOGUE}
_STAMP = "2025-01-01T00:00:00Z"


class Clock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def nodepool_dict(
    name: str = "default",
    *,
    policy: str = "WhenEmptyOrUnderutilized",
    consolidate_after: str = "0s",
    budgets: Sequence[Mapping[str, Any]] | None = None,
    annotations: Mapping[str, str] | None = None,
    template_labels: Mapping[str, str] | None = None,
    requirements: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    disruption: dict[str, Any] = {"consolidationPolicy": policy, "consolidateAfter": consolidate_after}
    if budgets is not None:
        disruption["budgets"] = list(budgets)
    template: dict[str, Any] = {
        "spec": {
            "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
            "requirements": list(requirements),
        }
    }
    if template_labels:
        template["metadata"] = {"labels": dict(template_labels)}
    return {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodePool",
        "metadata": {"name": name, "uid": f"uid-{name}", "annotations": dict(annotations or {})},
        "spec": {"template": template, "disruption": disruption},
    }


class Cluster:
    """Builds a `ClusterState` machine by machine."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.state = ClusterState(clock=self.clock)
        for resource in (resources.NODES, resources.NODECLAIMS, resources.PODS, resources.NODEPOOLS):
            self.state.on_synced(resource)
        self.pools: dict[str, api_nodepool.NodePool] = {}
        self._pods = 0

    def pool(self, name: str = "default", **kwargs: Any) -> api_nodepool.NodePool:
        obj = nodepool_dict(name, **kwargs)
        self.state.on_upsert(resources.NODEPOOLS, obj)
        self.pools[name] = api_nodepool.NodePool.from_dict(obj)
        return self.pools[name]

    def machine(
        self,
        name: str,
        instance_type: str = "medium",
        *,
        pool: str = "default",
        capacity_type: str = "on-demand",
        initialized: bool = True,
        consolidatable: bool = True,
        drifted: str | None = None,
        node_annotations: Mapping[str, str] | None = None,
        claim_annotations: Mapping[str, str] | None = None,
        ready: bool = True,
        termination_grace_period: str | None = None,
    ) -> str:
        it = _BY_NAME[instance_type]
        provider_id = f"test://{name}"
        node_labels = {
            labels.LABEL_HOSTNAME: name,
            labels.LABEL_NODEPOOL: pool,
            labels.LABEL_INSTANCE_TYPE: it.name,
            labels.LABEL_ZONE: ZONE,
            labels.LABEL_CAPACITY_TYPE: capacity_type,
            labels.LABEL_ARCH: "amd64",
            labels.LABEL_OS: "linux",
            labels.LABEL_REGISTERED: "true",
        }
        if initialized:
            node_labels[labels.LABEL_INITIALIZED] = "true"
        allocatable = {
            "cpu": f"{it.allocatable['cpu']}m",
            "memory": str(it.allocatable["memory"] // 1000),
            "pods": "110",
        }
        node = {
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
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
        conditions = [
            {"type": t, "status": "True", "reason": t, "message": "", "lastTransitionTime": _STAMP}
            for t in ("Launched", "Registered", "Initialized", "Ready")
        ]
        if consolidatable:
            conditions.append(
                {
                    "type": "Consolidatable",
                    "status": "True",
                    "reason": "Consolidatable",
                    "message": "",
                    "lastTransitionTime": _STAMP,
                }
            )
        if drifted:
            conditions.append(
                {
                    "type": "Drifted",
                    "status": "True",
                    "reason": drifted,
                    "message": "",
                    "lastTransitionTime": _STAMP,
                }
            )
        claim_labels = {
            k: v
            for k, v in node_labels.items()
            if k not in (labels.LABEL_HOSTNAME, labels.LABEL_REGISTERED, labels.LABEL_INITIALIZED)
        }
        spec: dict[str, Any] = {
            "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
            "requirements": [],
        }
        if termination_grace_period:
            spec["terminationGracePeriod"] = termination_grace_period
        claim = {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {
                "name": f"claim-{name}",
                "uid": f"uid-claim-{name}",
                "labels": claim_labels,
                "annotations": dict(claim_annotations or {}),
                "creationTimestamp": _STAMP,
            },
            "spec": spec,
            "status": {
                "providerID": provider_id,
                "nodeName": name,
                "capacity": allocatable,
                "allocatable": allocatable,
                "conditions": conditions,
            },
        }
        self.state.on_upsert(resources.NODECLAIMS, claim)
        self.state.on_upsert(resources.NODES, node)
        return provider_id

    def pod(
        self,
        node: str | None,
        cpu: str = "1",
        *,
        app: str = "app",
        namespace: str = "default",
        annotations: Mapping[str, str] | None = None,
        owner: str = "ReplicaSet",
        started: str = _STAMP,
        pending: bool = False,
    ) -> dict[str, Any]:
        self._pods += 1
        name = f"{app}-{self._pods}"
        spec: dict[str, Any] = {
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]
        }
        status: dict[str, Any] = {
            "phase": "Running",
            "startTime": started,
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        if node is not None:
            spec["nodeName"] = node
        if pending:
            status = {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
            }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "labels": {"app": app},
                "annotations": dict(annotations or {}),
                "creationTimestamp": _STAMP,
                "ownerReferences": [{"kind": owner, "name": f"{app}-owner", "controller": True}],
            },
            "spec": spec,
            "status": status,
        }
        self.state.on_upsert(resources.PODS, pod)
        return pod

    def pdb(self, name: str, app: str, allowed: int, *, namespace: str = "default") -> None:
        self.state.on_upsert(
            resources.PDBS,
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": {"matchLabels": {"app": app}}},
                "status": {"disruptionsAllowed": allowed},
            },
        )

    # -- what the tests feed the pure code ---------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return self.state.snapshot()

    def instance_types(self) -> dict[str, Sequence[InstanceType]]:
        return dict.fromkeys(self.pools, CATALOGUE)

    def context(
        self, snapshot: Snapshot | None = None, queued: frozenset[str] = frozenset()
    ) -> candidates.Context:
        snap = snapshot or self.snapshot()
        return candidates.Context(
            now=self.clock.now,
            nodepools=snap.nodepools,
            instance_types={pool: {it.name: it for it in CATALOGUE} for pool in self.pools},
            pdbs=pdb.Limits.of(snap.pdbs.values()),
            queued=queued,
        )

    def candidates(
        self, klass: candidates.DisruptionClass = candidates.DisruptionClass.GRACEFUL
    ) -> tuple[list[candidates.Candidate], list[Any]]:
        snap = self.snapshot()
        return candidates.evaluate_all(snap.nodes, self.context(snap), klass)

    def simulate(self) -> Any:
        return simulation.consolidation_simulator(self.snapshot(), self.instance_types())
