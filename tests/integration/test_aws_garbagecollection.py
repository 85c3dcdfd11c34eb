"""The core garbage collector with the AWS provider against moto: an instance nodesmith launched that no
NodeClaim owns is terminated once it is older than the grace (its launch time is moto's), an instance
this cluster did not tag is never touched, and a launched NodeClaim whose instance was terminated behind
nodesmith's back is deleted. What the provider's own leaked-instance collector used to be tested for,
now against the one collector the daemon runs.

Needs both the local control plane and moto's server; the moto fixtures are the AWS unit tests' own.
"""

from __future__ import annotations

import contextlib
import pathlib
import uuid

import pytest

from nodesmith import errors
from nodesmith.api import conditions
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.clock import SYSTEM
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import garbagecollection
from nodesmith.runtime import crds
from nodesmith.state.cluster import ClusterState
from nodesmith.testing import conformance
from nodesmith.testing import expectations as expect
from nodesmith.testing.clock import FakeClock
from tests.unit.aws.conftest import Env, discovered, env, moto, prepared, ready_nodeclass
from tests.unit.aws.test_interruption_sqs import REF, run_instance

__all__ = ["discovered", "env", "moto", "prepared"]
"""The AWS unit tier's fixtures, imported here so pytest finds them for this module."""

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def instance_id(claim: NodeClaim) -> str:
    assert claim.status.provider_id is not None
    return claim.status.provider_id.rsplit("/", 1)[1]


async def state_of(env: Env, instance: str) -> str:
    ec2 = await env.ec2()
    answer = await ec2.describe_instances(InstanceIds=[instance])
    return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])


async def test_core_gc_terminates_only_old_untracked_instances_and_drops_nodeclaims_whose_instance_went(
    env: Env, kubeconfig: pathlib.Path
) -> None:
    kube = await KubeClient.connect(kubeconfig)
    await crds.install(kube, crds.all_crds())
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    suffix = uuid.uuid4().hex[:6]
    owned = await env.provider.create(conformance.nodeclaim(pool, name=f"gc-owned-{suffix}"))
    leaked = await env.provider.create(conformance.nodeclaim(pool, name=f"gc-leaked-{suffix}"))
    foreign = await run_instance(env)  # not tagged for this cluster: never ours to terminate
    clock = FakeClock(SYSTEM.now())  # moto stamps launch times in real time: start after the launches

    launched = owned.with_condition(conditions.ConditionType.LAUNCHED, True, now=clock.now())
    manifest = launched.to_dict()
    status = manifest.pop("status")
    await kube.create(resources.NODECLAIMS, manifest)
    obj = await kube.update_status(resources.NODECLAIMS, owned.name, status)
    state = expect.synced_state(ClusterState(clock=clock.now))
    state.update_nodeclaim(obj)
    gc = garbagecollection.GarbageCollector(
        kube, state, env.provider, EventRecorder(kube, clock=clock), clock
    )
    try:
        await expect.expect_singleton_reconciled(gc)  # the leaked instance is seconds old: left alone
        assert await state_of(env, instance_id(leaked)) == "running"

        clock.step(garbagecollection.ORPHAN_GRACE)
        await expect.expect_singleton_reconciled(gc)  # case 2
        with pytest.raises(errors.NodeClaimNotFoundError):
            await env.provider.get(leaked.status.provider_id or "")
        assert await state_of(env, instance_id(owned)) == "running"
        assert await state_of(env, foreign) == "running"
        assert not NodeClaim.from_dict(await kube.get(resources.NODECLAIMS, owned.name)).deleting

        ec2 = await env.ec2()
        await ec2.terminate_instances(InstanceIds=[instance_id(owned)])  # gone behind nodesmith's back
        clock.step(garbagecollection.LAUNCH_GRACE)
        await expect.expect_singleton_reconciled(gc)  # case 3: no Node, instance gone → NodeClaim deleted
        with pytest.raises(kube_errors.NotFoundError):
            await kube.get(resources.NODECLAIMS, owned.name)
    finally:
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(resources.NODECLAIMS, owned.name)
