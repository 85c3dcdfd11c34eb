"""Fixtures for the AWS provider tests: one moto server (server mode, loopback) per session, reset
before every test to the account `prepare_account` leaves (prepared once, restored per test: see
`tests.unit.aws.prepared`), and a provider wired to it through a session carrying a `FaultInjector`.

Describing ~1,400 instance types takes moto several seconds, so the session discovers them (and reads
the spot price history) once, through the provider's own `Catalog` and `Pricing`, and every test's
provider starts from a copy of those answers.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

from nodesmith_aws.clients import Clients
from nodesmith_aws.cloudprovider import AwsCloudProvider
from nodesmith_aws.instancetypes import Catalog
from nodesmith_aws.pricing import Pricing
from nodesmith_aws.settings import Settings
from nodesmith_aws.store import MemoryNodeClassStore
from nodesmith_aws.testing.faults import FaultInjector
from nodesmith_aws.testing.moto import REGION, MotoServer
from tests.unit.aws.prepared import PreparedAccount

CLUSTER = "test-cluster"
DISCOVERY_TAG = "nodesmith.io/discovery"
AL2023_X86 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AL2023_ARM = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"


@pytest.fixture(autouse=True)
def _no_instance_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may ask 169.254.169.254 for the region: tests run off EC2 and on loopback only."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


CLUSTER_SETTINGS: dict[str, str] = {
    "cluster_endpoint": "https://test-cluster.example",
    "cluster_ca_bundle": "Q0E=",
    "cluster_cidr": "10.100.0.0/16",
    "kubernetes_version": "1.31",
}
"""What an operator would set so the provider need not call eks:DescribeCluster."""


def settings_for(moto: MotoServer, **changes: Any) -> Settings:
    return Settings(
        cluster_name=CLUSTER,
        region=REGION,
        endpoint_url=moto.url,
        **{"max_attempts": 4, **CLUSTER_SETTINGS, **changes},
    )


@attrs.frozen
class Discovered:
    infos: dict[str, Any]
    zones: dict[str, frozenset[str]]
    on_demand: dict[str, float]
    spot: dict[str, dict[str, float]]


@pytest.fixture(scope="session")
def discovered(moto: MotoServer) -> Discovered:
    async def discover() -> Discovered:
        settings = settings_for(moto)
        async with Clients(settings, moto.session()) as clients:
            catalog = Catalog(clients)
            await catalog.refresh()
            pricing = Pricing(settings, clients)
            await pricing.update_spot()
            return Discovered(dict(catalog.infos), dict(catalog.zones), dict(pricing.on_demand), pricing.spot)

    return asyncio.run(discover())


@attrs.frozen
class Env:
    provider: AwsCloudProvider
    store: MemoryNodeClassStore
    faults: FaultInjector
    clients: Clients
    moto: MotoServer

    async def ec2(self) -> Any:
        return await self.clients.ec2()


def nodeclass_manifest(name: str = "default", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subnetSelectorTerms": [{"tags": {DISCOVERY_TAG: CLUSTER}}],
        "securityGroupSelectorTerms": [{"name": "default"}],
        "amiSelectorTerms": [{"ssmParameter": AL2023_X86}, {"ssmParameter": AL2023_ARM}],
        "amiFamily": "AL2023",
        "role": "NodeRole",
        "tags": {"team": "platform"},
    }
    body.update(spec)
    return {
        "apiVersion": "aws.nodesmith.io/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": body,
    }


async def prepare_account(clients: Clients) -> None:
    """What an operator sets up once: discovery tags on the subnets and the node role."""
    ec2 = await clients.ec2()
    subnets = (await ec2.describe_subnets())["Subnets"]
    await ec2.create_tags(
        Resources=[s["SubnetId"] for s in subnets], Tags=[{"Key": DISCOVERY_TAG, "Value": CLUSTER}]
    )
    iam = await clients.iam()
    await iam.create_role(
        RoleName="NodeRole", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}'
    )


@pytest.fixture(scope="session")
def prepared(moto: MotoServer, discovered: Discovered) -> PreparedAccount:
    """The account as `prepare_account` leaves it after a reset, prepared once per session."""

    async def prepare() -> None:
        async with Clients(settings_for(moto), moto.session()) as clients:
            await prepare_account(clients)

    moto.reset()
    asyncio.run(prepare())
    account = PreparedAccount.capture()
    # the session's moto server, parsed botocore models and discovered catalog live to the end: out of
    # the collector's sight, as tests/unit/conftest.py does with what collection left
    gc.collect()
    gc.freeze()
    return account


@pytest.fixture
async def env(
    request: pytest.FixtureRequest, moto: MotoServer, discovered: Discovered, prepared: PreparedAccount
) -> AsyncIterator[Env]:
    """A test marked ``@pytest.mark.aws_settings(**changes)`` gets a provider with those settings changed.
    It starts from a reset moto holding the prepared account (restored, not rebuilt: see `prepared`)."""
    prepared.restore(moto)
    session = moto.session()
    faults = FaultInjector(session)
    marker = request.node.get_closest_marker("aws_settings")
    settings = settings_for(moto, **(marker.kwargs if marker else {}))
    clients = Clients(settings, session)
    catalog = Catalog(clients)
    catalog.infos, catalog.zones, catalog.version = dict(discovered.infos), dict(discovered.zones), 1
    pricing = Pricing(settings, clients)
    pricing.on_demand, pricing.spot, pricing.spot_updated = (
        dict(discovered.on_demand),
        dict(discovered.spot),
        True,
    )
    store = MemoryNodeClassStore()
    provider = AwsCloudProvider(settings, store, clients=clients, catalog=catalog, pricing=pricing)
    yield Env(provider, store, faults, clients, moto)
    await provider.close()


async def ready_nodeclass(env: Env, name: str = "default", **spec: Any) -> Any:
    env.store.put(nodeclass_manifest(name, **spec))
    nc = await env.provider.reconcile_node_class(name)
    assert nc is not None
    return nc
