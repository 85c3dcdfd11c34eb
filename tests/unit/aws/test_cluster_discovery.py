"""Cluster values from settings, else from eks:DescribeCluster (moto); the region is required; a value
that is missing or contradicts another stops start-up with one line naming the setting."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from nodesmith import errors
from nodesmith_aws import cluster
from nodesmith_aws.clients import Clients
from nodesmith_aws.settings import Settings
from nodesmith_aws.testing.moto import MotoServer
from tests.unit.aws.conftest import CLUSTER, settings_for

pytestmark = pytest.mark.anyio
UNSET = {"cluster_endpoint": "", "cluster_ca_bundle": "", "cluster_cidr": "", "kubernetes_version": ""}


async def create_eks_cluster(moto: MotoServer, **network: Any) -> dict[str, Any]:
    async with Clients(settings_for(moto), moto.session()) as clients:
        eks = await clients.eks()
        await eks.create_cluster(
            name=CLUSTER,
            version="1.30",
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": []},
            **({"kubernetesNetworkConfig": network} if network else {}),
        )
        return dict((await eks.describe_cluster(name=CLUSTER))["cluster"])


async def discover(moto: MotoServer, **changes: str) -> cluster.Cluster:
    settings = settings_for(moto, **{**UNSET, **changes})
    async with Clients(settings, moto.session()) as clients:
        return await cluster.discover(settings, clients)


async def test_everything_comes_from_describe_cluster_when_settings_are_empty(moto: MotoServer) -> None:
    moto.reset()
    described = await create_eks_cluster(moto, serviceIpv4Cidr="172.20.0.0/16")
    found = await discover(moto)
    assert found.endpoint == described["endpoint"]
    assert found.ca_bundle == described["certificateAuthority"]["data"]
    assert found.kubernetes_version == "1.30"
    assert (found.service_cidr, found.dns, found.ip_family) == ("172.20.0.0/16", "172.20.0.10", "ipv4")


async def test_settings_override_describe_cluster(moto: MotoServer) -> None:
    moto.reset()
    await create_eks_cluster(moto, serviceIpv4Cidr="172.20.0.0/16")
    found = await discover(
        moto, cluster_endpoint="https://mine.example", kubernetes_version="1.31", cluster_dns="172.20.0.53"
    )
    assert (found.endpoint, found.kubernetes_version, found.dns) == (
        "https://mine.example",
        "1.31",
        "172.20.0.53",
    )
    assert found.service_cidr == "172.20.0.0/16"


async def test_an_ipv6_cluster_uses_the_ipv6_service_cidr(moto: MotoServer) -> None:
    moto.reset()
    await create_eks_cluster(moto, ipFamily="ipv6")
    found = await discover(moto, cluster_cidr="fd00:10::/108")
    assert (found.ip_family, found.dns) == ("ipv6", "fd00:10::a")


async def test_a_missing_cluster_names_the_first_missing_setting_and_the_call(moto: MotoServer) -> None:
    moto.reset()
    with pytest.raises(errors.ConfigError) as caught:
        await discover(moto, cluster_endpoint="https://mine.example")
    assert caught.value.setting == "cluster-ca-bundle"
    assert "eks:DescribeCluster for cluster 'test-cluster' failed: ResourceNotFoundException" in str(
        caught.value
    )
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "setting", "message"),
    [
        ({"cluster_dns": "10.0.0.10"}, "cluster-dns", "10.0.0.10 is outside the service CIDR 10.100.0.0/16"),
        (
            {"cluster_dns": "fd00::a"},
            "cluster-dns",
            "fd00::a is IPv6 but the service CIDR 10.100.0.0/16 is IPv4",
        ),
        ({"cluster_cidr": "10.100.0.0/33"}, "cluster-cidr", "is not an IPv4 or IPv6 CIDR"),
        ({"cluster_endpoint": "http://plain"}, "cluster-endpoint", "must be an https:// URL"),
        ({"kubernetes_version": "v1.31"}, "kubernetes-version", "expected a version such as 1.31"),
    ],
)
async def test_contradictory_settings_name_the_setting(
    moto: MotoServer, changes: dict[str, str], setting: str, message: str
) -> None:
    settings = settings_for(moto, **changes)
    async with Clients(settings, moto.session()) as clients:
        with pytest.raises(errors.ConfigError) as caught:
            await cluster.discover(settings, clients)
    assert caught.value.setting == setting
    assert message in caught.value.message


def test_the_region_is_required_and_never_defaulted() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        Settings.from_context(CLUSTER, {}, environ={"AWS_EC2_METADATA_DISABLED": "true"})
    assert caught.value.setting == "region"
    assert Settings.from_context(CLUSTER, {}, environ={"AWS_REGION": "eu-west-1"}).region == "eu-west-1"
    assert (
        Settings.from_context(CLUSTER, {"region": "ap-south-1"}, environ={"AWS_REGION": "x"}).region
        == "ap-south-1"
    )


@pytest.fixture
def imds() -> Iterator[str]:
    """An instance-metadata endpoint on loopback answering IMDSv2 like EC2 does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self._answer(b"token-1")

        def do_GET(self) -> None:
            ok = self.path == "/latest/meta-data/placement/region"
            ok = ok and self.headers.get("X-aws-ec2-metadata-token") == "token-1"
            self._answer(b"sa-east-1" if ok else b"", 200 if ok else 401)

        def _answer(self, body: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            del args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_region_comes_from_instance_metadata_last(imds: str) -> None:
    parsed = Settings.from_context(CLUSTER, {}, environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds})
    assert parsed.region == "sa-east-1"
