"""The crash-safety campaign with the AWS provider against moto server mode: the daemon SIGKILLed in every
phase of a node's life and restarted; the invariants read from the API and from moto's instances.

CI runs a small campaign (``NODESMITH_CHAOS_AWS_ROUNDS``, default 3); ``make chaos`` runs the full size.
The table is printed; the assertions are on violations (all 0) and on the kill points being reached.
"""

from __future__ import annotations

import contextlib
import os
import pathlib

import anyio
import pytest

from nodesmith.kube import errors as kube_errors
from nodesmith.kube.client import KubeClient
from nodesmith.testing import chaos
from nodesmith_aws.cloudprovider import AwsCloudProvider
from nodesmith_aws.store import KubeNodeClassStore
from nodesmith_aws.testing.bridge import MotoKwokBridge
from nodesmith_aws.testing.moto import REGION, MotoServer
from tests.chaos import aws_support

ROUNDS = int(os.environ.get("NODESMITH_CHAOS_AWS_ROUNDS", "3"))
SEED = int(os.environ.get("NODESMITH_CHAOS_SEED", "1"))
ROUND_LIMIT = chaos.REACH_TIMEOUT + 2 * chaos.SETTLE_TIMEOUT

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(300 + ROUNDS * ROUND_LIMIT)]


async def test_aws_sigkill_in_every_phase_leaks_no_instance_loses_none_and_disrupts_nothing_protected(
    kube: KubeClient,
    kubeconfig: pathlib.Path,
    moto: MotoServer,
    namespace: str,
    name: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, clients = await aws_support.prepared_account(kube, moto, name)
    aws_support.daemon_env(monkeypatch, moto.url, REGION)
    provider = AwsCloudProvider(settings, KubeNodeClassStore(kube), clients=clients)
    campaign = chaos.Campaign(
        kube,
        kubeconfig,
        namespace,
        name,
        name,
        tmp_path,
        seed=SEED,
        cloud=aws_support.MotoCloud(provider),
        daemon=aws_support.aws_daemon,
        instance_types=aws_support.TYPES,
        node_class_ref=aws_support.node_class_ref(name),
        ready_timeout=240.0,
    )
    try:
        await provider.catalog.ensure()
        async with anyio.create_task_group() as group:
            group.start_soon(MotoKwokBridge(provider, kube).run, 0.5)
            rounds = await campaign.run(ROUNDS)
            group.cancel_scope.cancel()
        print(f"\nAWS crash campaign (moto): {len(rounds)} rounds, seed {SEED}\n{chaos.table(rounds)}")
        leftover = await aws_support.MotoCloud(provider).instances(name)
        left_detail = await aws_support.describe_live(provider, name)
    finally:
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(aws_support.EC2_NODE_CLASSES, name)
        await provider.close()

    assert len(rounds) == ROUNDS
    assert campaign.samples > 0
    assert [r for r in rounds if r.violations] == []
    assert sum(r.reached for r in rounds) >= (3 * len(rounds)) // 4, chaos.summary(rounds)
    assert leftover == {}, "the campaign's teardown left instances running in moto:\n" + "\n".join(
        left_detail
    )
