"""What goes wrong while resolving an EC2NodeClass is on its status, not only in a log line: an AWS
error names the call and the error code; user data that does not read and an alias of another family
are ``ValidationSucceeded=False``. Against moto, with the error injected at the botocore boundary."""

from __future__ import annotations

import pytest

from nodesmith import errors
from nodesmith.api.meta import NodeClassRef
from nodesmith.testing import conformance
from nodesmith_aws import nodeclass
from tests.unit.aws.conftest import Env, ready_nodeclass

pytestmark = pytest.mark.anyio
REF = NodeClassRef(nodeclass.GROUP, nodeclass.KIND, "default")


async def test_unauthorized_describe_subnets_is_a_condition_naming_the_call_and_code(env: Env) -> None:
    env.faults.deny("DescribeSubnets")
    nc = await ready_nodeclass(env)
    subnets = nc.condition(nodeclass.Condition.SUBNETS_READY)
    assert subnets is not None
    assert subnets.status == "False"
    assert subnets.reason == "UnauthorizedOperation"
    assert subnets.message.startswith("DescribeSubnets failed: UnauthorizedOperation: ")
    assert nc.ready is not None
    assert not nc.ready.is_true
    assert nc.ready.message == "SubnetsReady=False"
    with pytest.raises(errors.NodeClassNotReadyError, match="SubnetsReady: DescribeSubnets failed: Unauth"):
        await env.provider.get_instance_types(conformance.nodepool("default", REF))
    # the other parts still resolved
    assert nc.condition(nodeclass.Condition.SECURITY_GROUPS_READY).is_true
    assert nc.condition(nodeclass.Condition.AMIS_READY).is_true


async def test_an_iam_error_on_the_instance_profile_names_the_call(env: Env) -> None:
    env.faults.deny("GetInstanceProfile", "AccessDenied")
    nc = await ready_nodeclass(env)
    profile = nc.condition(nodeclass.Condition.INSTANCE_PROFILE_READY)
    assert profile is not None
    assert profile.status == "False"
    assert (profile.reason, profile.message.split(":")[0]) == ("AccessDenied", "GetInstanceProfile failed")


async def test_unparseable_bottlerocket_toml_makes_the_nodeclass_not_ready_with_the_parse_error(
    env: Env,
) -> None:
    nc = await ready_nodeclass(env, amiFamily="Bottlerocket", userData="[settings.kubernetes\n")
    validation = nc.condition(nodeclass.Condition.VALIDATION_SUCCEEDED)
    assert validation is not None
    assert validation.status == "False"
    assert validation.message.startswith("userData is not valid TOML: ")
    assert nc.ready is not None
    assert not nc.ready.is_true


async def test_an_alias_of_another_family_makes_the_nodeclass_not_ready(env: Env) -> None:
    nc = await ready_nodeclass(env, amiSelectorTerms=[{"alias": "bottlerocket@latest"}], amiFamily="AL2")
    validation = nc.condition(nodeclass.Condition.VALIDATION_SUCCEEDED)
    assert validation is not None
    assert validation.status == "False"
    assert "alias 'bottlerocket@latest' is an Bottlerocket AMI but amiFamily is 'AL2'" in validation.message


async def test_deletion_waits_for_nodeclaims_then_removes_launch_templates_and_the_profile(env: Env) -> None:
    nc = await ready_nodeclass(env)
    assert nodeclass.FINALIZER in nc.metadata.finalizers
    pool = conformance.nodepool("default", REF)
    await env.provider.create(conformance.nodeclaim(pool, name="claim-a"))
    ec2 = await env.ec2()
    iam = await env.clients.iam()
    assert (await ec2.describe_launch_templates())["LaunchTemplates"]
    assert (await iam.list_instance_profiles())["InstanceProfiles"]

    # 1. a NodeClaim still uses it: nothing is removed
    env.store.nodeclaims["claim-a"] = "default"
    env.store.delete("default")
    waiting = await env.provider.reconcile_node_class("default")
    assert waiting is not None
    assert waiting.metadata.deletion_timestamp is not None
    assert (await ec2.describe_launch_templates())["LaunchTemplates"]

    # 2. the NodeClaim is gone: templates and the managed profile are deleted, the finalizer released
    del env.store.nodeclaims["claim-a"]
    assert await env.provider.reconcile_node_class("default") is None
    assert await env.store.get("default") is None
    assert (await ec2.describe_launch_templates())["LaunchTemplates"] == []
    assert (await iam.list_instance_profiles())["InstanceProfiles"] == []
