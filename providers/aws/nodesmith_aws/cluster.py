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
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from nodesmith import errors
from nodesmith_aws.clients import Clients, error_code
from nodesmith_aws.settings import Settings

__all__ = ["Cluster", "ClusterSource", "discover", "discover_blocking", "dns_address"]

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


def _describe_error(settings: Settings, missing: str, err: ClientError) -> errors.ConfigError:
    return errors.ConfigError(
        missing,
        f"not set, and eks:DescribeCluster for cluster {settings.cluster_name!r} failed: "
        f"{error_code(err)}: {err.response.get('Error', {}).get('Message', '')}",
    )


async def _describe(settings: Settings, clients: Clients, missing: str) -> dict[str, Any]:
    try:
        eks = await clients.eks()
        answer = await eks.describe_cluster(name=settings.cluster_name)
    except ClientError as err:
        raise _describe_error(settings, missing, err) from None
    return dict(answer["cluster"])


def _describe_blocking(settings: Settings, missing: str) -> dict[str, Any]:
    session = botocore.session.get_session()
    client = session.create_client(
        "eks",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=Config(
            retries={"mode": "standard", "max_attempts": settings.max_attempts}, connect_timeout=10
        ),
    )
    try:
        return dict(client.describe_cluster(name=settings.cluster_name)["cluster"])
    except ClientError as err:
        raise _describe_error(settings, missing, err) from None
    finally:
        client.close()


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


def _wanted(settings: Settings) -> dict[str, str]:
    return {
        "cluster-endpoint": settings.cluster_endpoint,
        "cluster-ca-bundle": settings.cluster_ca_bundle,
        "cluster-cidr": settings.cluster_cidr,
        "kubernetes-version": settings.kubernetes_version,
    }


def _missing(settings: Settings) -> str | None:
    return next((name for name, value in _wanted(settings).items() if not value), None)


def _combine(settings: Settings, described: dict[str, Any]) -> Cluster:
    found = {
        "cluster-endpoint": str(described.get("endpoint") or ""),
        "cluster-ca-bundle": str((described.get("certificateAuthority") or {}).get("data") or ""),
        "cluster-cidr": _cidr(described),
        "kubernetes-version": str(described.get("version") or ""),
    }
    values = {name: value or found[name] for name, value in _wanted(settings).items()}
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


async def discover(settings: Settings, clients: Clients) -> Cluster:
    """The cluster, from settings first and DescribeCluster for the rest; raises `ConfigError`."""
    missing = _missing(settings)
    return _combine(settings, await _describe(settings, clients, missing) if missing else {})


def discover_blocking(settings: Settings) -> Cluster:
    """:func:`discover` with a blocking client, for the plugin hook: the daemon builds its provider
    before any task runs, so a `ConfigError` raised here stops ``nodesmith run`` with its one line."""
    missing = _missing(settings)
    return _combine(settings, _describe_blocking(settings, missing) if missing else {})


class ClusterSource:
    """Discovers the cluster once and hands the same answer to everyone; a failure is not cached."""

    def __init__(self, settings: Settings, clients: Clients, known: Cluster | None = None) -> None:
        self.settings = settings
        self.clients = clients
        self._cluster: Cluster | None = known

    async def get(self) -> Cluster:
        if self._cluster is None:
            self._cluster = await discover(self.settings, self.clients)
        return self._cluster
