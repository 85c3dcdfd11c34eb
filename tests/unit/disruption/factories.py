"""A small cluster for disruption unit tests: machines (Node + NodeClaim joined in a real `ClusterState`),
pods on them, NodePools and a three-size instance catalogue, with a fake clock.

Every machine is initialized, Ready and ``Consolidatable`` unless told otherwise; prices are per hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from nodesmith.api import nodepool as api_nodepool
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import candidates, pdb
from nodesmith.kube import resources
from nodesmith.state import ClusterState, Snapshot, simulation
from nodesmith.testing import factories, manifests
from nodesmith.testing.clock import FakeClock

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
ZONE = "z1"

CATALOGUE: tuple[InstanceType, ...] = (
    factories.instance_type("small", cpu=2, memory="4Gi", zones=(ZONE,), price=0.1),
    factories.instance_type("medium", cpu=4, memory="8Gi", zones=(ZONE,), price=0.2),
    factories.instance_type("large", cpu=8, memory="16Gi", zones=(ZONE,), price=0.4),
)
_BY_NAME = {it.name: it for it in CATALOGUE}
_STAMP = manifests.STAMP


def nodepool_dict(
    name: str = "default",
    *,
    policy: str = "WhenEmptyOrUnderutilized",
    consolidate_after: str = "0s",
    budgets: Sequence[Mapping[str, Any]] | None = None,
    annotations: Mapping[str, str] | None = None,
    template_labels: Mapping[str, str] | None = None,
    requirements: Sequence[Mapping[str, Any]] = (),
    replicas: int | None = None,
) -> dict[str, Any]:
    pool = manifests.nodepool_manifest(
        name,
        annotations=annotations or {},
        requirements=requirements,
        template_labels=template_labels,
        disruption=manifests.nodepool_disruption(
            policy=policy, consolidate_after=consolidate_after, budgets=budgets
        ),
    )
    if replicas is not None:
        pool["spec"]["replicas"] = replicas
    return pool


class Cluster:
    """Builds a `ClusterState` machine by machine."""

    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.state = ClusterState(clock=self.clock.now)
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
        allocatable = {
            "cpu": f"{it.allocatable['cpu']}m",
            "memory": str(it.allocatable["memory"] // 1000),
            "pods": "110",
        }
        node, claim = manifests.machine(
            name,
            node_labels=manifests.machine_labels(
                name,
                instance_type=it.name,
                zone=ZONE,
                nodepool=pool,
                capacity_type=capacity_type,
                initialized=initialized,
            ),
            allocatable=allocatable,
            provider_id=provider_id,
            ready=ready,
            consolidatable=consolidatable,
            drifted=drifted,
            node_annotations=node_annotations or {},
            claim_annotations=claim_annotations or {},
            termination_grace_period=termination_grace_period,
        )
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
        pod = manifests.app_pod(
            name,
            node_name=node,
            pending=pending,
            cpu=cpu,
            app=app,
            namespace=namespace,
            annotations=annotations or {},
            owner_kind=owner,
            owner_name=f"{app}-owner",
            started=started,
        )
        self.state.on_upsert(resources.PODS, pod)
        return pod

    def pdb(self, name: str, app: str, allowed: int, *, namespace: str = "default") -> None:
        self.state.on_upsert(
            resources.PDBS, manifests.pdb_manifest(name, app=app, allowed=allowed, namespace=namespace)
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
            now=self.clock.now(),
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

    def simulate(self, *, enforce_consolidate_after: bool = True) -> Any:
        return simulation.consolidation_simulator(
            self.snapshot(), self.instance_types(), enforce_consolidate_after=enforce_consolidate_after
        )
