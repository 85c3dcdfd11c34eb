"""Reserved capacity end to end: pods land on a capacity reservation first and spill to on-demand once it
is used up (Karpenter's reserved-capacity provisioning, strict mode).

The KWOKNodeClass holds one reservation of ``RESERVED`` slots of a 4-vCPU type; a NodePool allows
reserved and on-demand capacity; a Deployment asks for more pods than the reservation holds, each pod
filling one such node. The first solve plans exactly ``RESERVED`` NodeClaims pinned to the reservation and
holds the other pods back (it never plans a launch past the reservation's count); the next solve sees the
reservation used up and puts them on on-demand capacity.
"""

from __future__ import annotations

import collections.abc
import contextlib
from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Daemons = collections.abc.Callable[..., e2e.DaemonProcess]

RESERVED = 2
REPLICAS = 4
RESERVED_TYPE = "c-4x-amd64-linux"
ZONE = "test-zone-a"


async def running(kube: KubeClient, namespace: str) -> list[dict[str, Any]] | None:
    pods = (await kube.list(resources.PODS, namespace, label_selector="app=reserved")).items
    ok = len(pods) == REPLICAS and all(p.get("status", {}).get("phase") == "Running" for p in pods)
    return pods if ok else None


async def test_pods_fill_the_reservation_first_then_spill_to_on_demand(
    kube: KubeClient, daemons: Daemons, namespace: str, name: str
) -> None:
    reservation = f"cr-{name}"
    await kube.create(
        e2e.KWOK_NODE_CLASSES,
        {
            "metadata": {"name": name},
            "spec": {
                "capacityReservations": [
                    {"id": reservation, "instanceType": RESERVED_TYPE, "zone": ZONE, "count": RESERVED}
                ]
            },
        },
    )
    pool = e2e.nodepool(
        name,
        name,
        requirements=[
            {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["reserved", "on-demand"]},
        ],
        disruption={"consolidateAfter": "Never"},
    )
    await kube.create(resources.NODEPOOLS, pool)
    daemon = daemons()
    try:
        await daemon.wait_ready()
        await kube.create(
            e2e.DEPLOYMENTS, e2e.deployment("reserved", namespace, REPLICAS, pool=name, cpu="3"), namespace
        )
        pods = await e2e.eventually(lambda: running(kube, namespace), 300, f"{REPLICAS} pods Running")
        nodes = (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={name}")).items
        by_name = {n["metadata"]["name"]: n for n in nodes}
        reserved = [n for n in nodes if n["metadata"]["labels"].get(labels.LABEL_CAPACITY_TYPE) == "reserved"]
        others = [n for n in nodes if n not in reserved]
        print(
            f"reserved capacity: {len(reserved)} reserved node(s), {len(others)} other node(s) for {REPLICAS} pods"
        )
        # the reservation is filled, never overrun, and its nodes are what it holds
        assert len(reserved) == RESERVED
        for node in reserved:
            node_labels = node["metadata"]["labels"]
            assert node_labels[labels.LABEL_RESERVATION_ID] == reservation
            assert node_labels[labels.LABEL_INSTANCE_TYPE] == RESERVED_TYPE
            assert node_labels[labels.LABEL_ZONE] == ZONE
        # the rest spilled to on-demand, outside the reservation
        assert others
        for node in others:
            assert node["metadata"]["labels"][labels.LABEL_CAPACITY_TYPE] == "on-demand"
            assert labels.LABEL_RESERVATION_ID not in node["metadata"]["labels"]
        # reserved first: each reserved node existed no later than any on-demand one
        latest_reserved = max(n["metadata"]["creationTimestamp"] for n in reserved)
        assert all(n["metadata"]["creationTimestamp"] >= latest_reserved for n in others)
        hosts = [by_name[p["spec"]["nodeName"]] for p in pods]
        on_reserved = sum(1 for n in hosts if n in reserved)
        assert on_reserved == RESERVED, "one pod per reserved node"
        claims = (
            await kube.list(resources.NODECLAIMS, label_selector=f"{labels.LABEL_NODEPOOL}={name}")
        ).items
        pinned = [
            c for c in claims if c["metadata"]["labels"].get(labels.LABEL_RESERVATION_ID) == reservation
        ]
        assert len(pinned) == RESERVED
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(e2e.KWOK_NODE_CLASSES, name)
