"""The template provider passes nodesmith's provider conformance suite, plus tests of its own error mapping.

Run from this directory after ``pip install -e '.[test]'``: ``pytest tests``. Everything here runs in
memory; no Kubernetes control plane and no cloud account are needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nodesmith import errors
from nodesmith.api.meta import NodeClassRef
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import ProviderContext
from nodesmith.testing import conformance
from nodesmith_provider_template import cloud, provider

REF = NodeClassRef(provider.GROUP, provider.KIND, "default")


class TestTemplateConformance(conformance.ProviderConformance):
    """Every test of ``conformance.ProviderConformance`` runs against the template provider."""

    @pytest.fixture
    async def conformance_harness(self) -> AsyncIterator[conformance.Harness]:
        # Build the provider the way nodesmith does: through the installed plugin's entry point.
        built = manager.Plugins.load().cloud_provider("template", ProviderContext(cluster_name="test"))
        yield conformance.Harness(
            provider=built, nodepool=conformance.nodepool("default", REF), delete_poll=0
        )
        close = getattr(built, "close", None)  # optional member: release clients
        if close is not None:
            await close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_cloud_capacity_errors_become_insufficient_capacity_and_the_offering_is_skipped() -> None:
    api = cloud.InMemoryCloud(exhausted={("std.small", "template-zone-a", "spot")})
    template = provider.TemplateProvider(ProviderContext(cluster_name="test"), api, clock=lambda: 0.0)
    pool = conformance.nodepool("default", REF)
    with pytest.raises(errors.InsufficientCapacityError):
        await template.create(conformance.nodeclaim(pool))
    (small,) = [it for it in await template.get_instance_types(pool) if it.name == "std.small"]
    assert [(o.zone, o.capacity_type) for o in small.offerings if not o.available] == [
        ("template-zone-a", "spot")
    ]
    retried = await template.create(conformance.nodeclaim(pool))
    assert retried.metadata.labels["topology.kubernetes.io/zone"] == "template-zone-b"


@pytest.mark.anyio
async def test_create_is_idempotent_per_nodeclaim() -> None:
    template = provider.TemplateProvider(ProviderContext(cluster_name="test"))
    claim = conformance.nodeclaim(conformance.nodepool("default", REF))
    first = await template.create(claim)
    again = await template.create(claim)
    assert again.status.provider_id == first.status.provider_id
    assert len(await template.list()) == 1


def test_a_bad_setting_is_refused_naming_it() -> None:
    with pytest.raises(errors.ConfigError, match="region"):
        provider.TemplateProvider(ProviderContext(cluster_name="test", settings={"region": "Not Valid"}))
