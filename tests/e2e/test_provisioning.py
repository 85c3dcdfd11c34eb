"""Provisioning end to end on the real control plane: kube-scheduler marks pods Unschedulable, nodesmith
(a real `nodesmith run` process with the kwok provider) launches NodeClaims, kwok brings the Nodes up,
kube-scheduler binds the pods."""

from __future__ import annotations

import collections.abc
import re
from typing import Any

import anyio
import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e
from nodesmith_kwok import catalogue

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Daemons = collections.abc.Callable[..., e2e.DaemonProcess]


async def claims_of(kube: KubeClient, pool: str) -> list[dict[str, Any]]:
    return [
        c
        for c in (await kube.list(resources.NODECLAIMS)).items
        if c["metadata"]["labels"].get(labels.LABEL_NODEPOOL) == pool
    ]


async def nodes_of(kube: KubeClient, pool: str) -> list[dict[str, Any]]:
    return (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={pool}")).items


async def pods_of(kube: KubeClient, namespace: str, app: str) -> list[dict[str, Any]]:
    return (await kube.list(resources.PODS, namespace, label_selector=f"app={app}")).items


async def all_running(kube: KubeClient, namespace: str, app: str, replicas: int) -> bool:
    pods = await pods_of(kube, namespace, app)
    return len(pods) == replicas and all(p.get("status", {}).get("phase") == "Running" for p in pods)


async def sample(daemon: e2e.DaemonProcess, metric: str, **wanted: str) -> float | None:
    """The value of ``metric``'s series whose labels include ``wanted`` in the daemon's ``/metrics``."""
    for line in (await daemon.metrics_text()).splitlines():
        if line.startswith(metric + "{"):
            labels_text, _, value = line[len(metric) :].rpartition(" ")
            found = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
            if all(found.get(key) == want for key, want in wanted.items()):
                return float(value)
    return None


COST_WAIT = 3 * 30.0
"""Seconds to wait for the cost gauges to follow the cluster: they are recomputed every 30 s."""


async def test_inflate_scales_up_to_a_right_sized_node_and_back_down(
    kube: KubeClient, daemons: Daemons, namespace: str, node_class: str, name: str
) -> None:
    daemon = daemons()
    await kube.create(
        resources.NODEPOOLS,
        e2e.nodepool(
            name, node_class, disruption={"consolidationPolicy": "WhenEmpty", "consolidateAfter": "2s"}
        ),
    )
    await kube.create(e2e.DEPLOYMENTS, e2e.deployment("inflate", namespace, 4, pool=name), namespace)
    try:
        await daemon.wait_ready()
        await e2e.eventually(
            lambda: all_running(kube, namespace, "inflate", 4), 120, "4 inflate pods Running"
        )
        claims = await claims_of(kube, name)
        assert len(claims) == 1
        (claim,) = claims
        assert claim["spec"]["resources"]["requests"]["cpu"] == "4"
        instance_type = claim["metadata"]["labels"][labels.LABEL_INSTANCE_TYPE]
        assert instance_type == "c-8x-amd64-linux"  # 4 CPU + kube-reserved do not fit the 4x type
        assert claim["metadata"]["labels"][labels.LABEL_CAPACITY_TYPE] == "spot"
        (node,) = await nodes_of(kube, name)
        assert {p["spec"]["nodeName"] for p in await pods_of(kube, namespace, "inflate")} == {
            node["metadata"]["name"]
        }
        assert node["metadata"]["labels"][labels.LABEL_INITIALIZED] == "true"

        # the NodePool's cost is the price of its one node's offering in the kwok catalogue
        node_labels = node["metadata"]["labels"]
        zone, capacity_type = node_labels[labels.LABEL_ZONE], node_labels[labels.LABEL_CAPACITY_TYPE]
        (offered,) = [
            it for it in catalogue.build_catalogue() if it.name == node_labels[labels.LABEL_INSTANCE_TYPE]
        ]
        offering = offered.offering(zone, capacity_type)
        assert offering is not None
        price = offering.price

        async def costs_one_node() -> bool:
            return await sample(daemon, "nodesmith_nodepools_cost_per_hour", nodepool=name) == price

        await e2e.eventually(costs_one_node, COST_WAIT, f"{name} to cost {price}/h")
        assert await sample(daemon, "nodesmith_nodepools_unpriced_nodes", nodepool=name) == 0
        estimate = await sample(
            daemon,
            "nodesmith_cloudprovider_instance_type_offering_price_estimate",
            instance_type=offered.name,
            capacity_type=capacity_type,
            zone=zone,
        )
        assert estimate == price

        await kube.merge_patch(e2e.DEPLOYMENTS, "inflate", {"spec": {"replicas": 0}}, namespace)

        async def removed() -> bool:
            return not await claims_of(kube, name) and not await nodes_of(kube, name)

        await e2e.eventually(removed, 120, "the empty node to be removed")

        async def costs_nothing() -> bool:
            return await sample(daemon, "nodesmith_nodepools_cost_per_hour", nodepool=name) in (0.0, None)

        await e2e.eventually(costs_nothing, COST_WAIT, f"{name} to cost nothing once its node is gone")
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])


async def test_zonal_spread_gets_nodes_in_three_zones(
    kube: KubeClient, daemons: Daemons, namespace: str, node_class: str, name: str
) -> None:
    daemon = daemons()
    zones = ["test-zone-a", "test-zone-b", "test-zone-c"]
    await kube.create(
        resources.NODEPOOLS,
        e2e.nodepool(
            name, node_class, requirements=[{"key": labels.LABEL_ZONE, "operator": "In", "values": zones}]
        ),
    )
    spread = {
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": labels.LABEL_ZONE,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "spread"}},
            }
        ]
    }
    await kube.create(
        e2e.DEPLOYMENTS, e2e.deployment("spread", namespace, 3, pool=name, pod_spec=spread), namespace
    )
    try:
        await daemon.wait_ready()
        await e2e.eventually(lambda: all_running(kube, namespace, "spread", 3), 120, "3 spread pods Running")
        node_zones = {
            n["metadata"]["name"]: n["metadata"]["labels"][labels.LABEL_ZONE]
            for n in await nodes_of(kube, name)
        }
        pod_zones = sorted(
            node_zones[p["spec"]["nodeName"]] for p in await pods_of(kube, namespace, "spread")
        )
        assert pod_zones == zones
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])


async def test_pod_no_nodepool_can_satisfy_stays_pending_with_an_event_that_says_why(
    kube: KubeClient, daemons: Daemons, namespace: str, node_class: str, name: str
) -> None:
    daemon = daemons()
    await kube.create(resources.NODEPOOLS, e2e.nodepool(name, node_class))
    impossible = e2e.deployment(
        "gpu", namespace, 1, pool=name, nodeSelector={"example.com/accelerator": "tpu-v9"}
    )
    await kube.create(e2e.DEPLOYMENTS, impossible, namespace)
    try:
        await daemon.wait_ready()

        async def explained() -> list[dict[str, Any]]:
            events = (await kube.list(resources.CORE_EVENTS, namespace)).items
            return [
                e
                for e in events
                if e.get("reason") == "FailedScheduling"
                and e.get("source", {}).get("component") == "nodesmith"
            ]

        (event, *_) = await e2e.eventually(explained, 60, "a FailedScheduling event from nodesmith")
        assert "example.com/accelerator" in event["message"]
        assert name in event["message"]
        assert await claims_of(kube, name) == []
        (pod,) = await pods_of(kube, namespace, "gpu")
        assert not pod["spec"].get("nodeName")
        # the same answer, recorded: the provisioning decision names the pod and the failing key
        pod_name = f"{namespace}/{pod['metadata']['name']}"
        recorded = [
            d["unschedulable"][pod_name]
            for d in await daemon.decisions()
            if d["kind"] == "provisioning" and pod_name in d["unschedulable"]
        ]
        assert recorded
        assert "example.com/accelerator" in recorded[-1]
        # and on the dashboard's gauges: the run took the pod up and could place it nowhere
        assert (await sample(daemon, "nodesmith_pods_unschedulable") or 0) >= 1
        assert (await sample(daemon, "nodesmith_scheduler_queue_depth") or 0) >= 1
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])


async def test_a_zero_cpu_limit_launches_nothing(
    kube: KubeClient, daemons: Daemons, namespace: str, node_class: str, name: str
) -> None:
    daemon = daemons()
    await kube.create(resources.NODEPOOLS, e2e.nodepool(name, node_class, limits={"cpu": "0"}))
    await kube.create(e2e.DEPLOYMENTS, e2e.deployment("limited", namespace, 2, pool=name), namespace)
    try:
        await daemon.wait_ready()

        async def refused() -> list[dict[str, Any]]:
            events = (await kube.list(resources.CORE_EVENTS, namespace)).items
            return [
                e for e in events if e.get("reason") == "FailedScheduling" and "limit" in e.get("message", "")
            ]

        await e2e.eventually(refused, 60, "a FailedScheduling event naming the limit")
        assert await claims_of(kube, name) == []
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])


async def test_injected_insufficient_capacity_is_skipped_within_the_same_launch(
    kube: KubeClient, daemons: Daemons, namespace: str, name: str
) -> None:
    failing = {"instanceType": "c-2x-amd64-linux", "zone": "test-zone-a", "capacityType": "spot"}
    await kube.create(
        e2e.KWOK_NODE_CLASSES, {"metadata": {"name": name}, "spec": {"insufficientCapacity": [failing]}}
    )
    daemon = daemons()
    await kube.create(resources.NODEPOOLS, e2e.nodepool(name, name))
    await kube.create(e2e.DEPLOYMENTS, e2e.deployment("ice", namespace, 1, pool=name), namespace)
    try:
        await daemon.wait_ready()
        await e2e.eventually(
            lambda: all_running(kube, namespace, "ice", 1), 120, "the pod Running on another offering"
        )
        (node,) = await nodes_of(kube, name)
        node_labels = node["metadata"]["labels"]
        offering = (
            node_labels[labels.LABEL_INSTANCE_TYPE],
            node_labels[labels.LABEL_ZONE],
            node_labels[labels.LABEL_CAPACITY_TYPE],
        )
        assert offering != ("c-2x-amd64-linux", "test-zone-a", "spot")
        assert offering[0] == "c-2x-amd64-linux"  # the next cheapest offering of the same type
        # like a fleet request, the launch went on to the next offering: no NodeClaim failed for it
        (claim,) = await claims_of(kube, name)
        assert claim["metadata"]["name"] == node["metadata"]["name"]
        events = (await kube.list(resources.CORE_EVENTS)).items
        assert not any(
            e.get("reason") == "InsufficientCapacityError" and name in e.get("message", "") for e in events
        )
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])
        await kube.delete(e2e.KWOK_NODE_CLASSES, name)


async def test_killing_nodesmith_right_after_nodeclaim_creation_leaves_exactly_one_node(
    kube: KubeClient, daemons: Daemons, namespace: str, node_class: str, name: str
) -> None:
    first = daemons()
    await kube.create(resources.NODEPOOLS, e2e.nodepool(name, node_class))
    await first.wait_ready()
    await kube.create(e2e.DEPLOYMENTS, e2e.deployment("crash", namespace, 2, pool=name), namespace)
    try:
        await e2e.eventually(lambda: claims_of(kube, name), 60, "a NodeClaim", interval=0.02)
        first.kill()
        second = daemons()
        await second.wait_ready()
        await e2e.eventually(
            lambda: all_running(kube, namespace, "crash", 2), 120, "2 pods Running after the restart"
        )
        # Give a double launch every chance to show itself: two more batch windows.
        await anyio.sleep(8)
        assert len(await claims_of(kube, name)) == 1
        assert len(await nodes_of(kube, name)) == 1
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])
