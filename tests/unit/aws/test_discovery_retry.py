"""Instance-type discovery that fails at start, against moto through the fault injector: the provider's
background work keeps running (it used to raise out of ``run`` and stop the daemon), reports why it is
not ready, refuses launches and instance types with `NodeClassNotReadyError` naming the error, and
retries with doubling backoff on the injected clock until discovery succeeds."""

from __future__ import annotations

import anyio
import pytest

from nodesmith import errors
from nodesmith.testing import conformance
from nodesmith.testing.clock import FakeClock
from nodesmith_aws.cloudprovider import AwsCloudProvider
from nodesmith_aws.instancetypes import REFRESH_INTERVAL, Catalog
from tests.unit.aws.conftest import Env, ready_nodeclass
from tests.unit.aws.test_launch_moto import REF, twenty_types

pytestmark = pytest.mark.anyio


@pytest.mark.aws_settings(max_attempts=1)  # one botocore retry per attempt: its backoff is real time
async def test_describe_instance_types_timing_out_at_start_is_retried_with_backoff_not_fatal(
    env: Env,
) -> None:
    await ready_nodeclass(env)
    clock = FakeClock()
    catalog = Catalog(env.clients, sleep=clock.sleep)  # nothing discovered yet: a daemon just started
    provider = AwsCloudProvider(
        env.provider.settings,
        env.store,
        clients=env.clients,
        catalog=catalog,
        pricing=env.provider.pricing,
        sleep=clock.sleep,
    )
    pool = conformance.nodepool("default", REF)
    env.faults.time_out("DescribeInstanceTypes", 10_000)  # no answer, botocore's retries included
    assert provider.not_ready() == "EC2 instance types not discovered yet"
    async with anyio.create_task_group() as group:
        await group.start(catalog.run)  # returns: the failure is reported, not raised

        assert "ReadTimeoutError" in (provider.not_ready() or "")
        with pytest.raises(errors.NodeClassNotReadyError, match="ReadTimeoutError"):
            await provider.get_instance_types(pool)
        with pytest.raises(errors.NodeClassNotReadyError, match="not discovered yet"):
            await provider.create(conformance.nodeclaim(pool, twenty_types("on-demand")))

        assert await clock.sleeping() == clock.monotonic() + 1.0  # backoff on the injected clock
        clock.step(1.0)
        assert await clock.sleeping() == clock.monotonic() + 2.0  # second attempt failed: doubled
        clock.step(2.0)
        assert await clock.sleeping() == clock.monotonic() + 4.0  # third one too
        assert "ReadTimeoutError" in (provider.not_ready() or "")
        env.faults.recover("DescribeInstanceTypes")
        clock.step(4.0)
        assert await clock.sleeping() == clock.monotonic() + REFRESH_INTERVAL  # fourth one succeeded

        assert provider.not_ready() is None
        assert any(it.name == "m5.large" for it in await provider.get_instance_types(pool))
        launched = await provider.create(conformance.nodeclaim(pool, twenty_types("on-demand")))
        assert launched.status.provider_id
        group.cancel_scope.cancel()
