"""What the AWS fault tests share: a moto server, an account prepared as an operator would (from the AWS
end-to-end test), the daemon's environment, and moto's instances seen as the campaign's `chaos.Cloud`.

The daemon is ``nodesmith run --provider aws`` in its own process pointed at ``endpoint`` (moto itself, or
a fault proxy in front of it); the moto → kwok bridge in the test process plays EC2 booting instances
and their kubelets registering.
"""

from __future__ import annotations

import collections.abc
import pathlib
from typing import Any, Final

import attrs
import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e
from nodesmith_aws import nodeclass
from nodesmith_aws.clients import Clients
from nodesmith_aws.cloudprovider import AwsCloudProvider
from nodesmith_aws.settings import Settings
from nodesmith_aws.testing.moto import REGION, MotoServer
from tests.e2e.test_aws import ec2_nodeclass, prepare_account

CLUSTER: Final = "e2e-aws"
EC2_NODE_CLASSES: Final = resources.node_class(nodeclass.GROUP, nodeclass.KIND)
TYPES: Final = ("m5.large", "m5.xlarge")


@pytest.fixture(scope="module")
def moto() -> collections.abc.Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


async def prepared_account(kube: KubeClient, moto: MotoServer, name: str) -> tuple[Settings, Clients]:
    """Settings and clients for moto, with the account set up as an operator would and an EC2NodeClass
    ``name`` selecting it."""
    settings = Settings(cluster_name=CLUSTER, region=REGION, endpoint_url=moto.url, isolated_vpc=True)
    clients = Clients(settings, moto.session())
    await prepare_account(clients, name)
    await kube.create(EC2_NODE_CLASSES, ec2_nodeclass(name))
    return settings, clients


def node_class_ref(name: str) -> dict[str, str]:
    return {"group": nodeclass.GROUP, "kind": nodeclass.KIND, "name": name}


def daemon_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, region: str, **extra: str) -> None:
    """The daemon's configuration, as an operator sets it (dummy credentials)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": region,
        "NODESMITH_AWS_NODECLASS_REFRESH_SECONDS": "2",
        "NODESMITH_AWS_ENDPOINT_URL": endpoint,
        "NODESMITH_AWS_REGION": region,
        "NODESMITH_AWS_ISOLATED_VPC": "true",
        **extra,
    }.items():
        monkeypatch.setenv(key, value)


def aws_daemon(kubeconfig: pathlib.Path, log: pathlib.Path) -> e2e.DaemonProcess:
    return e2e.DaemonProcess(kubeconfig, log, "--cluster-name", CLUSTER, provider="aws")


@attrs.frozen
class MotoCloud:
    """moto's live instances (pending or running) that the provider tagged for a NodePool."""

    provider: AwsCloudProvider

    async def instances(self, pool: str) -> dict[str, str]:
        return {
            i.provider_id: i.id
            for i in await self.provider.list_instances()
            if i.tags.get(labels.LABEL_NODEPOOL) == pool and i.state in ("pending", "running")
        }


async def describe_live(provider: AwsCloudProvider, pool: str) -> list[str]:
    """One line per live instance of NodePool ``pool`` (id, state, launch time, tags), for a failure message
    to be matched against the daemon's log."""
    return [
        f"{i.id} {i.state} launched {i.launch_time.isoformat()} tags {dict(sorted(i.tags.items()))}"
        for i in sorted(await provider.list_instances(), key=lambda i: i.launch_time)
        if i.tags.get(labels.LABEL_NODEPOOL) == pool and i.state in ("pending", "running")
    ]


def nodepool_for(name: str, **spec: Any) -> dict[str, Any]:
    """An on-demand NodePool of :data:`TYPES` on EC2NodeClass ``name``."""
    pool = e2e.nodepool(
        name,
        name,
        requirements=[
            {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": list(TYPES)},
            {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
        ],
        **spec,
    )
    pool["spec"]["template"]["spec"]["nodeClassRef"] = node_class_ref(name)
    return pool
