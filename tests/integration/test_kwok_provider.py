"""The kwok provider against the real control plane: launched Nodes are real Node objects that the kwok
controller turns Ready; get/list/delete follow the provider contract; injected insufficient capacity
marks the offering unavailable."""

from __future__ import annotations

import collections.abc
import contextlib
import typing
import uuid

import anyio
import pytest

from nodesmith import errors
from nodesmith.api import labels, nodeclaim, nodepool
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import ProviderContext
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith_kwok import provider as kwok_provider

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def node_class(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = f"kwok-{uuid.uuid4().hex[:6]}"
    await kube.create(
        kwok_provider.NODE_CLASSES,
        {
            "metadata": {"name": name},
            "spec": {
                "insufficientCapacity": [
                    {"instanceType": "c-2x-amd64-linux", "zone": "test-zone-a", "capacityType": "spot"}
                ]
            },
        },
    )
    yield name
    with contextlib.suppress(kube_errors.NotFoundError):
        await kube.delete(kwok_provider.NODE_CLASSES, name)


def claim(name: str, node_class: str, *instance_types: str, zone: str | None = None) -> nodeclaim.NodeClaim:
    reqs: list[dict[str, typing.Any]] = [
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": list(instance_types)},
        {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["spot", "on-demand"]},
    ]
    if zone:
        reqs.append({"key": labels.LABEL_ZONE, "operator": "In", "values": [zone]})
    return nodeclaim.NodeClaim.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {"name": name, "labels": {labels.LABEL_NODEPOOL: "default"}},
            "spec": {
                "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": node_class},
                "requirements": reqs,
            },
        }
    )


def provider(kube: KubeClient) -> typing.Any:
    return manager.Plugins.load().cloud_provider("kwok", ProviderContext(cluster_name="test", kube=kube))


async def test_create_launches_a_node_that_kwok_makes_ready(kube: KubeClient, node_class: str) -> None:
    kwok = provider(kube)
    name = f"nc-{uuid.uuid4().hex[:6]}"
    launched = await kwok.create(claim(name, node_class, "c-1x-amd64-linux", "c-4x-amd64-linux"))

    assert launched.status.provider_id == f"kwok://{name}"
    assert launched.metadata.labels[labels.LABEL_INSTANCE_TYPE] == "c-1x-amd64-linux"
    assert launched.metadata.labels[labels.LABEL_CAPACITY_TYPE] == "spot"
    assert launched.status.capacity["cpu"] == 1000
    node = await kube.get(resources.NODES, name)
    assert {"key": labels.TAINT_UNREGISTERED, "effect": "NoExecute"} in node["spec"]["taints"]
    assert node["status"]["allocatable"]["cpu"] == "900m"

    with anyio.fail_after(60):
        while not any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (await kube.get(resources.NODES, name)).get("status", {}).get("conditions", [])
        ):
            await anyio.sleep(0.25)

    again = await kwok.create(claim(name, node_class, "c-1x-amd64-linux"))
    assert again.status.provider_id == launched.status.provider_id  # a repeated launch finds the same Node
    assert (await kwok.get(f"kwok://{name}")).metadata.labels[labels.LABEL_ZONE] == "test-zone-a"
    assert f"kwok://{name}" in {c.status.provider_id for c in await kwok.list()}

    with pytest.raises(errors.NodeClaimNotFoundError):
        await kwok.delete(launched)
    with pytest.raises(errors.NodeClaimNotFoundError):
        await kwok.get(f"kwok://{name}")
    assert f"kwok://{name}" not in {c.status.provider_id for c in await kwok.list()}


async def test_injected_insufficient_capacity_marks_the_offering_unavailable(
    kube: KubeClient, node_class: str
) -> None:
    kwok = provider(kube)
    pool = nodepool.NodePool.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodePool",
            "metadata": {"name": "default"},
            "spec": {
                "template": {
                    "spec": {
                        "nodeClassRef": {
                            "group": "kwok.nodesmith.io",
                            "kind": "KWOKNodeClass",
                            "name": node_class,
                        },
                        "requirements": [],
                    }
                }
            },
        }
    )
    name = f"nc-{uuid.uuid4().hex[:6]}"
    with pytest.raises(errors.InsufficientCapacityError, match="c-2x-amd64-linux in test-zone-a"):
        await kwok.create(claim(name, node_class, "c-2x-amd64-linux", zone="test-zone-a"))

    types = {it.name: it for it in await kwok.get_instance_types(pool)}
    unavailable = [(o.zone, o.capacity_type) for o in types["c-2x-amd64-linux"].offerings if not o.available]
    assert unavailable == [("test-zone-a", "spot")]

    retried = await kwok.create(claim(name, node_class, "c-2x-amd64-linux", zone="test-zone-a"))
    assert retried.metadata.labels[labels.LABEL_CAPACITY_TYPE] == "on-demand"
    with pytest.raises(errors.NodeClaimNotFoundError):
        await kwok.delete(retried)


async def test_missing_node_class_is_not_ready(kube: KubeClient) -> None:
    with pytest.raises(errors.NodeClassNotReadyError, match="not found"):
        await provider(kube).create(claim("nc-missing", "does-not-exist", "c-1x-amd64-linux"))
