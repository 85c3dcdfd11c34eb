"""Cost-optimised packing end to end on the real control plane: one NodePool with Karpenter's packing and
one annotated ``nodesmith.io/packing: cost-optimised`` each get the same mixed set of Deployments; a real
`nodesmith run` (kwok provider) launches for both in one provisioning run, kube-scheduler binds every pod
on the kwok nodes, and the opted-in pool's nodes cost less."""

from __future__ import annotations

import collections.abc
from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e
from nodesmith_kwok import catalogue

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Daemons = collections.abc.Callable[..., e2e.DaemonProcess]

WORKLOAD = (
    ("web", 8, "1", "1Gi"),
    ("cache", 4, "500m", "6Gi"),
    ("batch", 3, "3", "2Gi"),
    ("small", 6, "250m", "256Mi"),
)
"""(name, replicas, cpu, memory): offline, Karpenter's packing puts all 21 pods on one c-32x (0.61/h);
the cost-optimised packing on a c-16x, a c-4x and an s-2x (0.42/h)."""
REPLICAS = sum(replicas for _, replicas, _, _ in WORKLOAD)


async def _pods(kube: KubeClient, namespace: str, pool: str) -> list[dict[str, Any]]:
    return (await kube.list(resources.PODS, namespace, label_selector=f"pool={pool}")).items


def _unschedulable(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
        for c in pod.get("status", {}).get("conditions") or ()
    )


def _price(node: dict[str, Any]) -> float:
    """The hourly price of ``node``'s offering in the kwok catalogue."""
    node_labels = node["metadata"]["labels"]
    (offered,) = [
        it for it in catalogue.build_catalogue() if it.name == node_labels[labels.LABEL_INSTANCE_TYPE]
    ]
    offering = offered.offering(node_labels[labels.LABEL_ZONE], node_labels[labels.LABEL_CAPACITY_TYPE])
    assert offering is not None
    return offering.price


async def test_cost_optimised_pool_binds_every_pod_on_cheaper_nodes(
    kube: KubeClient, daemons: Daemons, namespace: str, node_class: str, name: str
) -> None:
    pools = {"karpenter": f"{name}-k", "cost-optimised": f"{name}-c"}
    for packing, pool in pools.items():
        body = e2e.nodepool(pool, node_class)
        if packing == "cost-optimised":
            body["metadata"]["annotations"] = {labels.ANNOTATION_PACKING: packing}
        await kube.create(resources.NODEPOOLS, body)
    try:
        for pool in pools.values():
            for app, replicas, cpu, memory in WORKLOAD:
                deployment = e2e.deployment(
                    f"{app}-{pool}", namespace, replicas, pool=pool, cpu=cpu, memory=memory
                )
                deployment["spec"]["template"]["metadata"]["labels"]["pool"] = pool
                await kube.create(e2e.DEPLOYMENTS, deployment, namespace)

        async def all_pending() -> bool:
            for pool in pools.values():
                pods = await _pods(kube, namespace, pool)
                if len(pods) != REPLICAS or not all(_unschedulable(p) for p in pods):
                    return False
            return True

        # Every pod is Unschedulable before nodesmith starts, so one provisioning run sees both pools' pods.
        await e2e.eventually(all_pending, 120, "every pod marked Unschedulable by kube-scheduler")
        daemon = daemons()
        await daemon.wait_ready()

        async def all_running() -> bool:
            for pool in pools.values():
                pods = await _pods(kube, namespace, pool)
                if len(pods) != REPLICAS or not all(
                    p.get("status", {}).get("phase") == "Running" for p in pods
                ):
                    return False
            return True

        await e2e.eventually(all_running, 180, f"all {2 * REPLICAS} pods Running")
        cost = {}
        for packing, pool in pools.items():
            nodes = (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={pool}")).items
            names = {n["metadata"]["name"] for n in nodes}
            assert nodes, f"{pool} launched no node"
            assert all(n["metadata"]["annotations"].get("kwok.x-k8s.io/node") == "fake" for n in nodes)
            assert {p["spec"]["nodeName"] for p in await _pods(kube, namespace, pool)} <= names
            cost[packing] = sum(_price(n) for n in nodes)
            print(
                packing,
                pool,
                sorted(n["metadata"]["labels"][labels.LABEL_INSTANCE_TYPE] for n in nodes),
                cost[packing],
            )
        assert cost["cost-optimised"] < cost["karpenter"]
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=list(pools.values()))
