"""The AWS provider's settings, parsed once from ``ProviderContext.settings`` (strings) and validated.

Fed by ``NODESMITH_AWS_*`` environment variables / ``--provider-setting key=value`` flags (the runtime
collects them into ``ProviderContext.settings``; the CLI turns ``NODESMITH_AWS_ENDPOINT_URL`` into
``endpoint-url``, so keys are accepted with dashes or underscores); consumed by every part of the
provider. Karpenter's equivalent options are named beside each field. A bad value raises
`nodesmith.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, final

import attrs

from nodesmith import errors
from nodesmith_aws import imds

__all__ = ["Settings"]

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


def _bool(settings: Mapping[str, str], key: str, default: bool) -> bool:
    raw = settings.get(key)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise errors.ConfigError(key, f"expected true or false, got {raw!r}")


def _number(settings: Mapping[str, str], key: str, default: float, *, low: float, high: float) -> float:
    raw = settings.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise errors.ConfigError(key, f"expected a number, got {raw!r}") from None
    if not low <= value <= high:
        raise errors.ConfigError(key, f"must be between {low} and {high}, got {value}")
    return value


@final
@attrs.frozen(slots=True)
class Settings:
    cluster_name: str
    region: str
    """``AWS_REGION``: required; from the setting, else ``AWS_REGION``, else instance metadata."""
    endpoint_url: str | None = None
    """Send every AWS call here (moto, LocalStack, a VPC endpoint); ``None`` = the public endpoints."""
    kubernetes_version: str = ""
    """Picks the EKS-optimised AMIs an alias resolves to; empty = from eks:DescribeCluster."""
    cluster_endpoint: str = ""
    """``CLUSTER_ENDPOINT``: the API server URL written into user data; empty = from DescribeCluster."""
    cluster_ca_bundle: str = ""
    """Base64 CA bundle written into user data; empty = from DescribeCluster."""
    cluster_cidr: str = ""
    """The service CIDR (IPv4 or IPv6); empty = from DescribeCluster."""
    cluster_dns: str = ""
    """Cluster DNS IP for the kubelet when the NodeClass does not set ``kubelet.clusterDNS``; empty =
    the service CIDR's address + 10, as EKS assigns it."""
    vm_memory_overhead_percent: float = 0.075
    """``VM_MEMORY_OVERHEAD_PERCENT``: memory the hypervisor keeps, taken off DescribeInstanceTypes' figure."""
    reserved_enis: int = 0
    """``RESERVED_ENIS``: ENIs kept off pod networking when computing ENI-limited max pods."""
    isolated_vpc: bool = False
    """``ISOLATED_VPC``: no Pricing API calls (the static price table only)."""
    max_attempts: int = 8
    """botocore's ``retries.max_attempts``: the retries after a call's first attempt (``standard`` retry
    mode: throttling and transient errors back off exponentially)."""
    read_timeout_seconds: float = 60.0
    """How long one attempt waits for AWS to answer before it counts as failed (and is retried): a stalled
    connection costs at most this per attempt."""
    interruption_queue: str = ""
    """``INTERRUPTION_QUEUE``: SQS queue name or URL of EventBridge interruption messages; empty = no
    interruption source (`nodesmith_aws.interruption`)."""
    nodeclass_refresh_seconds: float = 60.0
    """How often every EC2NodeClass is resolved again (and a deleting one cleaned up)."""
    interruption_wait_seconds: int = 20
    """Long-poll time of each ReceiveMessage on the interruption queue (0-20 s; Karpenter uses 20)."""

    @classmethod
    def from_context(
        cls,
        cluster_name: str,
        settings: Mapping[str, str],
        environ: Mapping[str, str] = os.environ,
    ) -> Settings:
        if not cluster_name:
            raise errors.ConfigError(
                "cluster_name", "the AWS provider needs a cluster name (it tags everything)"
            )
        settings = {key.replace("-", "_"): value for key, value in settings.items()}
        known = set(attrs.fields_dict(cls)) - {"cluster_name"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise errors.ConfigError(
                unknown[0], f"unknown AWS provider setting; known: {', '.join(sorted(known))}"
            )
        region = settings.get("region") or environ.get("AWS_REGION") or imds.region(environ)
        if not region:
            raise errors.ConfigError(
                "region",
                "not set: give NODESMITH_AWS_REGION (--provider-setting region=...) or AWS_REGION, "
                "or run on EC2 where instance metadata tells it",
            )
        return cls(
            cluster_name=cluster_name,
            region=region,
            endpoint_url=settings.get("endpoint_url") or None,
            kubernetes_version=settings.get("kubernetes_version", ""),
            cluster_endpoint=settings.get("cluster_endpoint", ""),
            cluster_ca_bundle=settings.get("cluster_ca_bundle", ""),
            cluster_cidr=settings.get("cluster_cidr", ""),
            cluster_dns=settings.get("cluster_dns", ""),
            vm_memory_overhead_percent=_number(
                settings, "vm_memory_overhead_percent", 0.075, low=0.0, high=0.99
            ),
            reserved_enis=int(_number(settings, "reserved_enis", 0, low=0, high=16)),
            isolated_vpc=_bool(settings, "isolated_vpc", False),
            max_attempts=int(_number(settings, "max_attempts", 8, low=1, high=50)),
            read_timeout_seconds=_number(settings, "read_timeout_seconds", 60.0, low=1, high=600),
            interruption_queue=settings.get("interruption_queue", ""),
            nodeclass_refresh_seconds=_number(settings, "nodeclass_refresh_seconds", 60.0, low=1, high=3600),
            interruption_wait_seconds=int(_number(settings, "interruption_wait_seconds", 20, low=0, high=20)),
        )
