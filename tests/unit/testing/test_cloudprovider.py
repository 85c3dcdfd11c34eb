"""The test kit's fake cloud provider keeps the provider contract (the conformance suite runs against it,
built through the real plugin manager) and does what a reconciler test arms it to do."""

from __future__ import annotations

import pytest

from nodesmith import errors
from nodesmith.api.meta import NodeClassRef
from nodesmith.cloudprovider.protocol import ProviderContext
from nodesmith.cloudprovider.types import InterruptionEvent, InterruptionKind
from nodesmith.testing import cloudprovider as fake
from nodesmith.testing import conformance, factories

pytestmark = pytest.mark.anyio

REF = NodeClassRef(fake.GROUP, fake.KIND, "default")


class TestFakeProviderConformance(conformance.ProviderConformance):
    @pytest.fixture
    async def conformance_harness(self) -> conformance.Harness:
        provider = fake.plugins(fake.FakeCloudProvider()).cloud_provider(
            "fake", ProviderContext(cluster_name="test")
        )
        return conformance.Harness(
            provider=provider, nodepool=conformance.nodepool("default", REF), delete_poll=0
        )


async def test_create_launches_the_cheapest_available_offering_once_per_nodeclaim() -> None:
    provider = fake.FakeCloudProvider(
        instance_types=[
            factories.instance_type("big", cpu=8, memory="16Gi", zones=("z1",), price=2.0),
            factories.instance_type(
                "small", cpu=2, memory="4Gi", zones=("z1", "z2"), price=0.5, unavailable=[("z1", "spot")]
            ),
        ]
    )
    claim = conformance.nodeclaim(conformance.nodepool("default", REF))
    created = await provider.create(claim)
    assert created.metadata.labels["node.kubernetes.io/instance-type"] == "small"
    assert (
        created.metadata.labels["topology.kubernetes.io/zone"],
        created.metadata.labels["nodesmith.io/capacity-type"],
    ) in {
        ("z1", "on-demand"),
        ("z2", "spot"),
        ("z2", "on-demand"),
    }
    assert await provider.create(claim) == created  # idempotent: no second machine
    assert len(provider.machines) == 1
    assert len(provider.create_calls) == 2


async def test_armed_errors_fire_once_and_per_nodeclass_errors_stay() -> None:
    provider = fake.FakeCloudProvider()
    pool = conformance.nodepool("default", REF)
    provider.next_create_error = errors.InsufficientCapacityError("armed")
    with pytest.raises(errors.InsufficientCapacityError, match="armed"):
        await provider.create(conformance.nodeclaim(pool))
    created = await provider.create(conformance.nodeclaim(pool))
    provider.next_delete_error = errors.ProviderError("throttled")
    with pytest.raises(errors.ProviderError):
        await provider.delete(created)
    await provider.delete(created)
    with pytest.raises(errors.NodeClaimNotFoundError):
        await provider.delete(created)
    provider.instance_type_errors["default"] = errors.NodeClassNotReadyError("not ready")
    for _ in range(2):
        with pytest.raises(errors.NodeClassNotReadyError):
            await provider.get_instance_types(pool)
    provider.drifted = "ImageDrift"
    assert await provider.is_drifted(created) == "ImageDrift"
    provider.reset()
    assert await provider.get_instance_types(pool)
    assert await provider.is_drifted(created) is None
    assert provider.create_calls == []


async def test_interruptions_are_streamed_in_order_once_one_is_sent() -> None:
    provider = fake.FakeCloudProvider()
    assert provider.interruption_events() is None
    for n in range(2):
        provider.interrupt(InterruptionEvent(f"fake://{n}", InterruptionKind.SPOT_INTERRUPTION, time=0.0))
    stream = provider.interruption_events()
    assert stream is not None
    assert [(await anext(stream)).provider_id for _ in range(2)] == ["fake://0", "fake://1"]
