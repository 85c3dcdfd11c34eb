"""The cluster a node joins: API endpoint, CA bundle, service CIDR, Kubernetes version and DNS address.

As Karpenter does, each value comes from the provider settings when given there and otherwise from
``eks:DescribeCluster`` (called once, and only when a value is missing). Fed by `Settings` and the EKS
client; consumed by user data (`nodesmith_aws.bootstrap`), alias AMI resolution (the Kubernetes
version) and the ``render`` command. Everything is checked once, at start: a value that is neither set
nor discoverable, or two values that contradict each other (a DNS address outside the service CIDR, an
IPv6 DNS address with an IPv4 CIDR ...), raise `nodesmith.errors.ConfigError` naming the setting, so
``nodesmith run`` stops with one line instead of launching nodes that can never join.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final, final

import attrs
from botocore.exceptions import ClientError

from nodesmith import errors
from nodesmith_aws.clients import Clients, error_code
from nodesmith_aws.settings import Settings

__all__ = ["Cluster", "ClusterSource", "discover", "dns_address"]

_VERSION: Final = re.compile(r"^1\.\d+$")


@final
@attrs.frozen(slots=True)
class Cluster:
    name: str
    endpoint: str
    ca_bundle: str
    service_cidr: str
    kubernetes_version: str
    dns: str

    @property
    def ip_family(self) -> str:
        return "ipv6" if ":" in self.service_cidr else "ipv4"


def dns_address(cidr: str) -> str:
    """The cluster DNS Service address EKS (and nodeadm) derive from the service CIDR: the network
    address + 10 (``10.100.0.0/16`` → ``10.100.0.10``, ``fd00:10::/108`` → ``fd00:10::a``)."""
    network = ipaddress.ip_network(cidr, strict=False)
    return str(network.network_address + 10)


async def _describe(settings: Settings, clients: Clients, missing: str) -> dict[str, Any]:
    try:
        eks = await clients.eks()
        answer = await eks.describe_cluster(name=settings.cluster_name)
    except ClientError as err:
        raise errors.ConfigError(
            missing,
            f"not set, and eks:DescribeCluster for cluster {settings.cluster_name!r} failed: "
            f"{error_code(err)}: {err.response.get('Error', {}).get('Message', '')}",
        ) from None
    return dict(answer["cluster"])


def _cidr(described: dict[str, Any]) -> str:
    network = described.get("kubernetesNetworkConfig") or {}
    if network.get("ipFamily") == "ipv6":
        return str(network.get("serviceIpv6Cidr") or "")
    return str(network.get("serviceIpv4Cidr") or "")


def _check(cluster: Cluster) -> Cluster:
    if not cluster.endpoint.startswith("https://"):
        raise errors.ConfigError("cluster-endpoint", f"must be an https:// URL, got {cluster.endpoint!r}")
    try:
        network = ipaddress.ip_network(cluster.service_cidr, strict=False)
    except ValueError:
        raise errors.ConfigError(
            "cluster-cidr", f"is not an IPv4 or IPv6 CIDR: {cluster.service_cidr!r}"
        ) from None
    try:
        dns = ipaddress.ip_address(cluster.dns)
    except ValueError:
        raise errors.ConfigError("cluster-dns", f"is not an IP address: {cluster.dns!r}") from None
    if dns.version != network.version:
        raise errors.ConfigError(
            "cluster-dns",
            f"{cluster.dns} is IPv{dns.version} but the service CIDR {cluster.service_cidr} is "
            f"IPv{network.version}",
        )
    if dns not in network:
        raise errors.ConfigError(
            "cluster-dns", f"{cluster.dns} is outside the service CIDR {cluster.service_cidr}"
        )
    if not _VERSION.match(cluster.kubernetes_version):
        raise errors.ConfigError(
            "kubernetes-version", f"expected a version such as 1.31, got {cluster.kubernetes_version!r}"
        )
    return cluster


async def discover(settings: Settings, clients: Clients) -> Cluster:
    """The cluster, from settings first and DescribeCluster for the rest; raises `ConfigError`."""
    wanted = {
        "cluster-endpoint": settings.cluster_endpoint,
        "cluster-ca-bundle": settings.cluster_ca_bundle,
        "cluster-cidr": settings.cluster_cidr,
        "kubernetes-version": settings.kubernetes_version,
    }
    missing = [name for name, value in wanted.items() if not value]
    described: dict[str, Any] = await _describe(settings, clients, missing[0]) if missing else {}
    found = {
        "cluster-endpoint": str(described.get("endpoint") or ""),
        "cluster-ca-bundle": str((described.get("certificateAuthority") or {}).get("data") or ""),
        "cluster-cidr": _cidr(described),
        "kubernetes-version": str(described.get("version") or ""),
    }
    values = {name: value or found[name] for name, value in wanted.items()}
    for name, value in values.items():
        if not value:
            raise errors.ConfigError(
                name, f"not set, and eks:DescribeCluster for {settings.cluster_name!r} does not report it"
            )
    try:
        ipaddress.ip_network(values["cluster-cidr"], strict=False)
    except ValueError:
        raise errors.ConfigError(
            "cluster-cidr", f"is not an IPv4 or IPv6 CIDR: {values['cluster-cidr']!r}"
        ) from None
    return _check(
        Cluster(
            name=settings.cluster_name,
            endpoint=values["cluster-endpoint"],
            ca_bundle=values["cluster-ca-bundle"],
            service_cidr=values["cluster-cidr"],
            kubernetes_version=values["kubernetes-version"],
            dns=settings.cluster_dns or dns_address(values["cluster-cidr"]),
        )
    )


class ClusterSource:
    """Discovers the cluster once and hands the same answer to everyone; a failure is not cached."""

    def __init__(self, settings: Settings, clients: Clients) -> None:
        self.settings = settings
        self.clients = clients
        self._cluster: Cluster | None = None

    async def get(self) -> Cluster:
        if self._cluster is None:
            self._cluster = await discover(self.settings, self.clients)
        return self._cluster
