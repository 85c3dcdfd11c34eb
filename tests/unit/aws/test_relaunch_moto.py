"""Launch idempotency across a crash, against moto: a daemon killed after CreateFleet answered but before
the NodeClaim's status was written restarts with no memory of the launch; its ``create`` for the same
NodeClaim must adopt the instance already launched (found by its NodeClaim tag) instead of launching a
second one and leaving the first to the garbage collector."""

from __future__ import annotations

import pytest

from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.testing import conformance
from nodesmith_aws.cloudprovider import TAG_NODECLAIM, AwsCloudProvider
from tests.unit.aws.conftest import Env, ready_nodeclass
from tests.unit.aws.test_launch_moto import REF, twenty_types

pytestmark = pytest.mark.anyio


def restarted(env: Env) -> AwsCloudProvider:
    """A provider as a restarted daemon builds it: nothing remembered, same account (the catalog and
    prices are shared only to spare moto the rediscovery)."""
    old = env.provider
    return AwsCloudProvider(
        old.settings, env.store, clients=env.clients, catalog=old.catalog, pricing=old.pricing
    )


async def live_for(env: Env, claim: NodeClaim) -> list[str]:
    ec2 = await env.ec2()
    answer = await ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_NODECLAIM}", "Values": [claim.name]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return sorted(i["InstanceId"] for r in answer["Reservations"] for i in r["Instances"])


async def test_a_restarted_daemon_adopts_the_instance_already_launched_for_the_nodeclaim(env: Env) -> None:
    await ready_nodeclass(env)
    claim = conformance.nodeclaim(conformance.nodepool("default", REF), twenty_types("on-demand"))
    first = await env.provider.create(claim)  # CreateFleet answered; then the daemon was killed

    again = await restarted(env).create(claim)

    assert again.status.provider_id == first.status.provider_id
    assert again.metadata.labels == first.metadata.labels  # type, zone, capacity type as launched
    assert again.status.image_id == first.status.image_id
    assert again.status.allocatable == first.status.allocatable
    assert len(await live_for(env, claim)) == 1


async def test_a_terminated_instance_is_not_adopted_and_other_nodeclaims_launch_their_own(env: Env) -> None:
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    claim = conformance.nodeclaim(pool, twenty_types("on-demand"))
    first = await env.provider.create(claim)
    other = await env.provider.create(conformance.nodeclaim(pool, twenty_types("on-demand")))
    assert other.status.provider_id != first.status.provider_id

    ec2 = await env.ec2()
    first_id = (first.status.provider_id or "").rsplit("/", 1)[1]
    await ec2.terminate_instances(InstanceIds=[first_id])
    again = await restarted(env).create(claim)

    assert again.status.provider_id != first.status.provider_id
    assert await live_for(env, claim) == [(again.status.provider_id or "").rsplit("/", 1)[1]]
