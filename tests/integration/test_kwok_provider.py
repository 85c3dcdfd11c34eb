"""The kwok provider against the real control plane: launched Nodes are real Node objects that the kwok
controller turns Ready; get/list/delete follow the provider contract; injected insufficient capacity
is skipped the way a fleet request skips pools without capacity, and marks what failed unavailable."""

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
from nodesmith.testing.clock import FakeClock
from nodesmith_kwok import catalogue
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


def claim(
    name: str,
    node_class: str,
    *instance_types: str,
    zone: str | None = None,
    capacity_types: collections.abc.Sequence[str] = ("spot", "on-demand"),
) -> nodeclaim.NodeClaim:
    reqs: list[dict[str, typing.Any]] = [
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": list(instance_types)},
        {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": list(capacity_types)},
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
    listed = {c.status.provider_id: c for c in await kwok.list()}
    # The list keeps only what the conversion reads of each Node: the same NodeClaim as a get's.
    assert listed[f"kwok://{name}"].to_dict() == (await kwok.get(f"kwok://{name}")).to_dict()

    with pytest.raises(errors.NodeClaimNotFoundError):
        await kwok.delete(launched)
    with pytest.raises(errors.NodeClaimNotFoundError):
        await kwok.get(f"kwok://{name}")
    assert f"kwok://{name}" not in {c.status.provider_id for c in await kwok.list()}


def pool_of(node_class: str) -> nodepool.NodePool:
    return nodepool.NodePool.from_dict(
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


async def unavailable_offerings(kwok: typing.Any, node_class: str) -> set[tuple[str, str, str]]:
    return {
        (it.name, o.zone, o.capacity_type)
        for it in await kwok.get_instance_types(pool_of(node_class))
        for o in it.offerings
        if not o.available
    }


@pytest.fixture
async def spot_exhausted(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    """A KWOKNodeClass whose every spot offering fails with insufficient capacity."""
    name = f"kwok-{uuid.uuid4().hex[:6]}"
    await kube.create(
        kwok_provider.NODE_CLASSES,
        {"metadata": {"name": name}, "spec": {"insufficientCapacity": [{"capacityType": "spot"}]}},
    )
    yield name
    with contextlib.suppress(kube_errors.NotFoundError):
        await kube.delete(kwok_provider.NODE_CLASSES, name)


async def test_launch_skips_offerings_without_capacity_like_a_fleet_request(
    kube: KubeClient, node_class: str
) -> None:
    kwok = provider(kube)
    name = f"nc-{uuid.uuid4().hex[:6]}"
    # the cheapest offering (spot in zone a) has no capacity: the same launch takes the next one
    launched = await kwok.create(claim(name, node_class, "c-2x-amd64-linux", zone="test-zone-a"))
    assert launched.metadata.labels[labels.LABEL_CAPACITY_TYPE] == "on-demand"
    assert launched.metadata.labels[labels.LABEL_ZONE] == "test-zone-a"
    assert await unavailable_offerings(kwok, node_class) == {("c-2x-amd64-linux", "test-zone-a", "spot")}
    with pytest.raises(errors.NodeClaimNotFoundError):
        await kwok.delete(launched)


async def test_launch_takes_the_cheapest_offering_with_capacity_across_types_and_zones(
    kube: KubeClient, node_class: str
) -> None:
    kwok = provider(kube)
    types = ("c-2x-amd64-linux", "c-4x-amd64-linux", "m-2x-amd64-linux")
    offered = {it.name: it for it in catalogue.build_catalogue()}
    with_capacity = sorted(
        (o.price, name, o.zone, o.capacity_type)
        for name in types
        for o in offered[name].offerings
        if (name, o.zone, o.capacity_type) != ("c-2x-amd64-linux", "test-zone-a", "spot")
    )
    _, cheapest_type, cheapest_zone, cheapest_capacity = with_capacity[0]
    name = f"nc-{uuid.uuid4().hex[:6]}"
    launched = await kwok.create(claim(name, node_class, *types))
    assert launched.metadata.labels[labels.LABEL_INSTANCE_TYPE] == cheapest_type
    assert launched.metadata.labels[labels.LABEL_ZONE] == cheapest_zone
    assert launched.metadata.labels[labels.LABEL_CAPACITY_TYPE] == cheapest_capacity
    with pytest.raises(errors.NodeClaimNotFoundError):
        await kwok.delete(launched)


async def test_a_launch_without_capacity_reports_and_marks_every_offering_it_tried(
    kube: KubeClient, spot_exhausted: str
) -> None:
    clock = FakeClock()
    kwok = kwok_provider.KWOKProvider(ProviderContext(cluster_name="test", kube=kube, clock=clock))
    types = ("c-1x-amd64-linux", "c-2x-amd64-linux")
    spot_only = claim(f"nc-{uuid.uuid4().hex[:6]}", spot_exhausted, *types, capacity_types=("spot",))
    every_spot = {(t, z, "spot") for t in types for z in catalogue.ZONES}

    with pytest.raises(errors.InsufficientCapacityError, match="all 8 offerings") as raised:
        await kwok.create(spot_only)
    assert set(raised.value.offerings) == every_spot
    assert await unavailable_offerings(kwok, spot_exhausted) == every_spot  # one failure covers them all
    with pytest.raises(errors.InsufficientCapacityError, match="no available kwok offering"):
        await kwok.create(spot_only)  # nothing left to try: no second round of failures

    clock.step(kwok_provider.ICE_TTL + 1)  # the unavailable-offerings cache expires through the clock
    assert await unavailable_offerings(kwok, spot_exhausted) == set()


async def test_missing_node_class_is_not_ready(kube: KubeClient) -> None:
    with pytest.raises(errors.NodeClassNotReadyError, match="not found"):
        await provider(kube).create(claim("nc-missing", "does-not-exist", "c-1x-amd64-linux"))


class CountingKube:
    """The real client, recording each call as ``(method, resource plural)``."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, method: str) -> typing.Any:
        real = getattr(self._kube, method)

        async def counted(
            resource: resources.Resource, *args: typing.Any, **kwargs: typing.Any
        ) -> typing.Any:
            self.calls.append((method, resource.plural))
            return await real(resource, *args, **kwargs)

        return counted


async def test_a_burst_of_launches_costs_one_round_trip_each_and_one_nodeclass_read(
    kube: KubeClient, node_class: str
) -> None:
    # Karpenter's kwok provider reads the NodeClass from its informer cache and creates the Node without
    # looking for it first; a launch here used to GET the NodeClass and the Node before creating it
    counting = CountingKube(kube)
    kwok = kwok_provider.KWOKProvider(ProviderContext(cluster_name="test", kube=counting, clock=FakeClock()))
    names = [f"nc-{uuid.uuid4().hex[:6]}" for _ in range(8)]
    launched: list[nodeclaim.NodeClaim] = []

    async def launch(name: str) -> None:
        launched.append(await kwok.create(claim(name, node_class, "c-1x-amd64-linux")))

    try:
        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(launch, name)
        assert sorted(c.status.provider_id or "" for c in launched) == sorted(f"kwok://{n}" for n in names)
        assert sorted(counting.calls) == sorted(
            [("get", kwok_provider.NODE_CLASSES.plural)] + [("create", "nodes")] * len(names)
        )
        # a repeated launch (its first answer lost) finds the Node it made: the create is refused, then read
        counting.calls.clear()
        again = await kwok.create(claim(names[0], node_class, "c-1x-amd64-linux"))
        assert again.status.provider_id == f"kwok://{names[0]}"
        assert counting.calls == [("create", "nodes"), ("get", "nodes")]
    finally:
        for name in names:
            with contextlib.suppress(kube_errors.NotFoundError):
                await kube.delete(resources.NODES, name)


async def test_a_launch_does_not_adopt_a_node_of_the_same_name_it_did_not_make(
    kube: KubeClient, node_class: str
) -> None:
    name = f"nc-{uuid.uuid4().hex[:6]}"
    await kube.create(
        resources.NODES, {"metadata": {"name": name}, "spec": {"providerID": f"other://{name}"}}
    )
    try:
        with pytest.raises(errors.CreateError, match="not this NodeClaim's instance"):
            await provider(kube).create(claim(name, node_class, "c-1x-amd64-linux"))
    finally:
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(resources.NODES, name)
