"""Launching, ICE handling, launch-template reuse, get/list/delete against moto (the
garbage collection of leaked instances is the core collector's, tested against moto in
``tests/integration/test_aws_garbagecollection.py``).

moto's CreateFleet launches from the first override it is given, and every spot price in its history is
0.00001, so "the cheapest price-capacity choice moto offers" is the first override of the cheapest
launch template config; the provider orders overrides by price, so that is the cheapest offering.
Insufficient capacity is injected by `nodesmith_aws.testing.faults.FaultInjector` (see its docstring).
"""

from __future__ import annotations

import anyio
import attrs
import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.meta import NodeClassRef
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.testing import conformance
from nodesmith_aws import drift, nodeclass
from tests.unit.aws.conftest import CLUSTER, Env, ready_nodeclass

REF = NodeClassRef(nodeclass.GROUP, nodeclass.KIND, "default")
TWENTY = [
    *(f"m5.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge")),
    *(f"c5.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge")),
    *(f"r5.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge")),
    *(f"m6i.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge")),
    *(f"c6i.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge")),
]


def launched_id(claim: NodeClaim) -> str:
    """The provider id ``create`` set on ``claim`` (a launched claim always has one)."""
    assert claim.status.provider_id is not None
    return claim.status.provider_id


def twenty_types(*capacity_types: str) -> list[dict[str, object]]:
    return [
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": TWENTY},
        {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": list(capacity_types)},
    ]


@pytest.mark.anyio
async def test_spot_and_on_demand_over_twenty_types_launches_the_cheapest_spot_offering(env: Env) -> None:
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    created = await env.provider.create(
        conformance.nodeclaim(pool, twenty_types("spot", "on-demand"), name="claim-a")
    )
    assert created.metadata.labels[labels.LABEL_CAPACITY_TYPE] == "spot"
    chosen = created.metadata.labels[labels.LABEL_INSTANCE_TYPE]
    types = {it.name: it for it in await env.provider.get_instance_types(pool) if it.name in TWENTY}
    cheapest = min(o.price for it in types.values() for o in it.offerings if o.capacity_type == "spot")
    assert min(o.price for o in types[chosen].offerings if o.capacity_type == "spot") == cheapest
    # Ties (moto prices every spot pool alike) break by name, then zone, deterministically.
    assert chosen == "c5.2xlarge"
    assert created.metadata.labels[labels.LABEL_ZONE] == "us-west-2a"

    zone, instance_id = launched_id(created).removeprefix("aws:///").split("/")
    ec2 = await env.ec2()
    raw = (await ec2.describe_instances(InstanceIds=[instance_id]))["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in raw["Tags"]}
    assert tags[f"kubernetes.io/cluster/{CLUSTER}"] == "owned"
    assert tags["eks:eks-cluster-name"] == CLUSTER
    assert tags["nodesmith.io/nodepool"] == "default"
    assert tags["aws.nodesmith.io/ec2nodeclass"] == "default"
    assert tags["nodesmith.io/nodeclaim"] == tags["Name"] == "claim-a"
    assert tags["team"] == "platform"
    assert raw["Placement"]["AvailabilityZone"] == zone
    assert created.status.image_id == raw["ImageId"]
    assert created.status.allocatable["pods"] == created.status.capacity["pods"] == 58_000
    assert created.metadata.annotations[nodeclass.ANNOTATION_HASH_VERSION] == nodeclass.HASH_VERSION


@pytest.mark.anyio
async def test_insufficient_capacity_marks_the_offering_unavailable_and_the_retry_uses_another(
    env: Env,
) -> None:
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    only = [
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["m5.large", "c5.large"]},
        {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
        {"key": labels.LABEL_ZONE, "operator": "In", "values": ["us-west-2a"]},
    ]
    env.faults.insufficient_capacity("c5.large", "us-west-2a", "on-demand")
    env.faults.insufficient_capacity("m5.large", "us-west-2a", "on-demand")
    with pytest.raises(errors.InsufficientCapacityError, match="InsufficientInstanceCapacity"):
        await env.provider.create(conformance.nodeclaim(pool, only))
    assert env.provider.unavailable.is_unavailable("on-demand", "c5.large", "us-west-2a")
    assert env.provider.unavailable.is_unavailable("on-demand", "m5.large", "us-west-2a")
    # Both pools are remembered: the next try fails fast, without calling CreateFleet (no hot loop).
    fleets = env.faults.calls["CreateFleet"]
    with pytest.raises(errors.InsufficientCapacityError):
        await env.provider.create(conformance.nodeclaim(pool, only))
    assert env.faults.calls["CreateFleet"] == fleets

    # One pool of several failing: EC2 launches elsewhere and reports the failed pool; it is remembered.
    env.faults.ice.clear()
    env.faults.insufficient_capacity("c5.xlarge", "us-west-2b", "on-demand")
    wider = [
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["c5.xlarge", "m5.xlarge"]},
        {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
        {"key": labels.LABEL_ZONE, "operator": "In", "values": ["us-west-2b"]},
    ]
    created = await env.provider.create(conformance.nodeclaim(pool, wider))
    assert created.metadata.labels[labels.LABEL_INSTANCE_TYPE] == "m5.xlarge"
    assert env.provider.unavailable.is_unavailable("on-demand", "c5.xlarge", "us-west-2b")
    types = {it.name: it for it in await env.provider.get_instance_types(pool)}
    offering = next(
        o for o in types["c5.xlarge"].offerings if (o.zone, o.capacity_type) == ("us-west-2b", "on-demand")
    )
    assert not offering.available


@pytest.mark.anyio
@pytest.mark.aws_settings(max_attempts=1)  # one retry: botocore's real backoff is up to 2^n s per retry
async def test_a_create_fleet_that_never_answers_is_a_create_error_named_after_the_timeout(
    env: Env,
) -> None:
    """Without the mapping, botocore's ReadTimeoutError escaped the provider's contract: the lifecycle
    logged a traceback, wrote no condition or event, and retried outside its launch backoff."""
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    # botocore's ``retries.max_attempts`` counts the retries after the first attempt
    attempts = env.provider.settings.max_attempts + 1
    env.faults.time_out("CreateFleet", attempts)
    with pytest.raises(errors.CreateError) as caught:
        await env.provider.create(conformance.nodeclaim(pool, twenty_types("on-demand")))
    assert caught.value.reason == "ReadTimeoutError"
    assert env.faults.attempts["CreateFleet"] == attempts  # botocore retried every one
    launched = await env.provider.create(conformance.nodeclaim(pool, twenty_types("on-demand")))
    assert launched.status.provider_id


@pytest.mark.anyio
async def test_spot_falls_back_to_on_demand_once_every_spot_pool_is_exhausted(env: Env) -> None:
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    reqs = [
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["m5.large"]},
        {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["spot", "on-demand"]},
    ]
    for zone in ("us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"):
        env.faults.insufficient_capacity("m5.large", zone, "spot")
    with pytest.raises(errors.InsufficientCapacityError):
        await env.provider.create(conformance.nodeclaim(pool, reqs))
    created = await env.provider.create(conformance.nodeclaim(pool, reqs))
    assert created.metadata.labels[labels.LABEL_CAPACITY_TYPE] == "on-demand"


@pytest.mark.anyio
async def test_launch_templates_are_reused_across_launches(env: Env) -> None:
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    reqs = twenty_types("on-demand")
    first = await env.provider.create(conformance.nodeclaim(pool, reqs))
    ec2 = await env.ec2()
    templates = (await ec2.describe_launch_templates())["LaunchTemplates"]
    created = env.provider.launch_templates.created
    assert created == len(templates) > 0
    assert all(t["LaunchTemplateName"].startswith("nodesmith/") for t in templates)
    assert all({"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"} in t["Tags"] for t in templates)
    second = await env.provider.create(conformance.nodeclaim(pool, reqs))
    assert env.provider.launch_templates.created == created
    assert len((await ec2.describe_launch_templates())["LaunchTemplates"]) == len(templates)
    assert first.status.provider_id != second.status.provider_id
    # A fresh provider (a restart) finds the same templates by name instead of creating new ones.
    env.provider.launch_templates._cache.clear()
    await env.provider.create(conformance.nodeclaim(pool, reqs))
    assert env.provider.launch_templates.created == created
    assert env.faults.calls["CreateLaunchTemplate"] == created


@pytest.mark.anyio
async def test_delete_terminates_and_get_then_reports_not_found(env: Env) -> None:
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    created = await env.provider.create(conformance.nodeclaim(pool, twenty_types("on-demand")))
    assert (await env.provider.get(launched_id(created))).status.provider_id == created.status.provider_id
    await conformance.delete_until_gone(env.provider, created)
    with pytest.raises(errors.NodeClaimNotFoundError):
        await env.provider.get(launched_id(created))
    with pytest.raises(errors.NodeClaimNotFoundError):
        await env.provider.delete(created)


@pytest.mark.anyio
async def test_concurrent_gets_are_batched_into_one_describe_call(env: Env) -> None:
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    claims = [
        await env.provider.create(conformance.nodeclaim(pool, twenty_types("on-demand"))) for _ in range(3)
    ]
    before = env.provider.instances.describe_batcher.executions
    results: dict[str, str] = {}

    async def get(pid: str) -> None:
        try:
            results[pid] = (await env.provider.get(pid)).status.provider_id or ""
        except errors.NodeClaimNotFoundError:
            results[pid] = "not found"

    async with anyio.create_task_group() as tg:
        for claim in claims:
            tg.start_soon(get, launched_id(claim))
        tg.start_soon(get, "aws:///us-west-2a/i-00000000000000000")  # unknown: must not fail the others
    assert env.provider.instances.describe_batcher.executions == before + 1
    assert all(results[launched_id(c)] == c.status.provider_id for c in claims)
    assert results["aws:///us-west-2a/i-00000000000000000"] == "not found"


@pytest.mark.anyio
async def test_drift_on_static_fields_ami_security_groups_and_subnet(env: Env) -> None:
    """moto's CreateFleet drops the launch template's SecurityGroupIds (its instances report none), which
    EC2 never does; so the instance read back from moto is given the groups the template carried
    before the pure drift rules are checked. NodeClassDrift comes first and is checked end to end."""
    nc = await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    created = await env.provider.create(conformance.nodeclaim(pool, twenty_types("on-demand")))
    instance = await env.provider.instances.get(launched_id(created).rsplit("/", 1)[1])
    instance = attrs.evolve(instance, security_group_ids=tuple(g.id for g in nc.status.security_groups))
    it = env.provider.instance_types.get(nc, instance.type)
    assert drift.reason(created, nc, instance, it) is None
    assert (
        drift.reason(created, nc, attrs.evolve(instance, security_group_ids=("sg-other",)), it)
        == "SecurityGroupDrift"
    )
    assert drift.reason(created, nc, attrs.evolve(instance, subnet_id="subnet-other"), it) == "SubnetDrift"
    # The NodeClass now selects only the arm64 AMI: an amd64 instance runs an AMI no longer selected.
    arm = await ready_nodeclass(
        env,
        amiSelectorTerms=[
            {"ssmParameter": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"}
        ],
    )
    assert drift.reason(created, arm, instance, it) == "AMIDrift"
    await ready_nodeclass(env, tags={"team": "other"})
    assert await env.provider.is_drifted(created) == "NodeClassDrift"
