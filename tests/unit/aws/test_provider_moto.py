"""Instance-type discovery, NodeClass resolution and pricing against moto in server mode."""

from __future__ import annotations

import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.meta import NodeClassRef
from nodesmith.testing import conformance
from nodesmith_aws import nodeclass
from nodesmith_aws.clients import Clients
from nodesmith_aws.instancetypes import Catalog
from nodesmith_aws.pricing import Pricing
from tests.unit.aws.conftest import Env, ready_nodeclass, settings_for

REF = NodeClassRef(nodeclass.GROUP, nodeclass.KIND, "default")
GI = 2**30 * 1000
MI = 2**20 * 1000


@pytest.mark.anyio
async def test_catalog_discovers_real_instance_types_and_their_zones(env: Env) -> None:
    catalog = Catalog(env.clients)
    await catalog.refresh()
    assert len(catalog.infos) > 500
    assert {"m5.large", "c5.18xlarge", "t3.medium", "m6g.large"} <= catalog.infos.keys()
    assert catalog.all_zones == {"us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"}
    assert catalog.zones["m5.large"] == catalog.all_zones


@pytest.mark.anyio
async def test_resolved_nodeclass_is_ready_with_subnets_groups_amis_and_a_managed_profile(env: Env) -> None:
    nc = await ready_nodeclass(env)
    assert nc.ready is not None, nc.status.conditions
    assert nc.ready.is_true, nc.status.conditions
    assert {s.zone for s in nc.status.subnets} == {"us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"}
    assert [g.name for g in nc.status.security_groups] == ["default"]
    assert {a.requirements[0]["values"][0] for a in nc.status.amis} == {"amd64", "arm64"}
    assert nc.status.instance_profile
    assert nc.status.instance_profile.startswith("test-cluster_")
    iam = await env.clients.iam()
    profile = (await iam.get_instance_profile(InstanceProfileName=nc.status.instance_profile))[
        "InstanceProfile"
    ]
    assert [r["RoleName"] for r in profile["Roles"]] == ["NodeRole"]


@pytest.mark.anyio
async def test_selectors_that_match_nothing_make_the_nodeclass_not_ready_naming_the_selector(
    env: Env,
) -> None:
    nc = await ready_nodeclass(
        env,
        subnetSelectorTerms=[{"tags": {"env": "nope"}}, {"id": "subnet-0000000000"}],
        amiSelectorTerms=[{"alias": "al2023@latest"}],
        role="MissingRole",
    )
    assert nc.ready is not None
    assert not nc.ready.is_true
    subnets = nc.condition(nodeclass.Condition.SUBNETS_READY)
    assert subnets is not None
    assert subnets.status == "False"
    assert '[0] tags={"env": "nope"}' in subnets.message
    assert "[1] id=" in subnets.message
    amis = nc.condition(nodeclass.Condition.AMIS_READY)
    assert amis is not None
    assert 'alias="al2023@latest"' in amis.message
    profile = nc.condition(nodeclass.Condition.INSTANCE_PROFILE_READY)
    assert profile is not None
    assert "MissingRole" in profile.message
    assert nc.condition(nodeclass.Condition.SECURITY_GROUPS_READY).is_true
    pool = conformance.nodepool("default", REF)
    with pytest.raises(errors.NodeClassNotReadyError):
        await env.provider.get_instance_types(pool)
    with pytest.raises(errors.NodeClassNotReadyError):
        await env.provider.create(conformance.nodeclaim(pool))


@pytest.mark.anyio
async def test_instance_types_carry_karpenter_allocatable_and_aws_labels(env: Env) -> None:
    await ready_nodeclass(env)
    types = {
        it.name: it for it in await env.provider.get_instance_types(conformance.nodepool("default", REF))
    }
    m5 = types["m5.large"]
    assert m5.capacity["pods"] == 29_000
    assert m5.allocatable["cpu"] == 1930
    assert m5.allocatable["memory"] == 6903 * MI
    assert m5.allocatable["ephemeral-storage"] == 17 * GI
    reqs = m5.requirements
    for suffix, value in {
        "category": "m",
        "family": "m5",
        "generation": "5",
        "size": "large",
        "cpu": "2",
        "memory": "8192",
        "hypervisor": "nitro",
        "cpu-manufacturer": "intel",
        "network-bandwidth": "750",
    }.items():
        assert reqs.get(f"aws.nodesmith.io/instance-{suffix}").has(value), suffix
    assert reqs.get("aws.nodesmith.io/instance-gpu-name").is_empty()
    assert reqs.get(labels.LABEL_ARCH).has("amd64")
    assert reqs.get(labels.LABEL_OS).has("linux")
    assert {o.zone for o in m5.offerings} == {"us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"}
    assert {o.capacity_type for o in m5.offerings} == {"spot", "on-demand"}
    assert all(o.available for o in m5.offerings)
    assert types["m6g.large"].requirements.get(labels.LABEL_ARCH).has("arm64")
    assert types["c5.18xlarge"].capacity["pods"] == 737_000
    assert "g4dn.xlarge" not in types  # GPU types only for NodePools that ask for them
    gpu_pool = conformance.nodepool(
        "default", REF, [{"key": "aws.nodesmith.io/instance-gpu-count", "operator": "Exists"}]
    )
    asked = {it.name: it for it in await env.provider.get_instance_types(gpu_pool)}
    gpu = asked["g4dn.xlarge"].requirements
    assert gpu.get("aws.nodesmith.io/instance-gpu-manufacturer").has("nvidia")
    assert asked["g4dn.xlarge"].capacity["nvidia.com/gpu"] == 1000


@pytest.mark.anyio
async def test_pricing_falls_back_to_the_static_table_when_the_pricing_api_is_unreachable(env: Env) -> None:
    settings = settings_for(env.moto)
    async with Clients(settings, env.moto.session()) as clients:
        pricing = Pricing(settings, clients)
        assert pricing.spot_price("m5.large", "us-west-2a") == pricing.on_demand_price("m5.large") == 0.096
        await pricing.refresh()  # moto has no Pricing API: on-demand keeps the static table
        assert not pricing.on_demand_updated
        assert pricing.on_demand_price("m5.large") == 0.096
        assert pricing.spot_updated
        assert pricing.spot_price("m5.large", "us-west-2a") == 0.00001
        assert pricing.spot_price("m5.large", "eu-west-1a") is None


@pytest.mark.anyio
async def test_throttling_backs_off_and_the_call_succeeds(env: Env) -> None:
    """EC2's RequestLimitExceeded (injected twice) is retried by botocore's standard mode with backoff."""
    env.faults.throttle("DescribeInstanceTypeOfferings", 2)
    ec2 = await env.clients.ec2()
    answer = await ec2.describe_instance_type_offerings(LocationType="availability-zone", MaxResults=1000)
    assert answer["InstanceTypeOfferings"]
    assert env.faults.calls["DescribeInstanceTypeOfferings"] == 1
    assert env.faults.attempts["DescribeInstanceTypeOfferings"] == 3
