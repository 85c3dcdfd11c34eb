"""The AWS provider's plugin module, registered under the ``nodesmith`` entry-point group as ``aws``.

It names the provider (``aws``), builds it (`nodesmith_aws.cloudprovider.AwsCloudProvider`, reading
EC2NodeClasses from the API server through ``ProviderContext.kube``, or from memory when there is no
client), hands out the EC2NodeClass CRD, and declares the ``aws.nodesmith.io/instance-*`` labels every
EC2 instance type defines, so pods may require them even when a NodePool does not mention them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nodesmith.api import labels as core_labels
from nodesmith.cloudprovider.hookspecs import hookimpl

if TYPE_CHECKING:
    from nodesmith.cloudprovider.protocol import CloudProvider, ProviderContext
    from nodesmith.convert import KarpenterConverter

LABEL_GROUP = "aws.nodesmith.io"
INSTANCE_LABELS = tuple(
    f"{LABEL_GROUP}/instance-{suffix}"
    for suffix in (
        "category",
        "family",
        "generation",
        "size",
        "cpu",
        "cpu-manufacturer",
        "memory",
        "hypervisor",
        "encryption-in-transit-supported",
        "network-bandwidth",
        "ebs-bandwidth",
        "local-nvme",
        "gpu-name",
        "gpu-manufacturer",
        "gpu-count",
        "gpu-memory",
        "accelerator-name",
        "accelerator-manufacturer",
        "accelerator-count",
    )
)
WELL_KNOWN_LABELS = core_labels.CORE_WELL_KNOWN_LABELS | frozenset(INSTANCE_LABELS)
"""What the daemon's well-known set is when this plugin is loaded: the provider's own compatibility
checks (launch, AMI selection) use it, so they agree with the core's decisions."""


@hookimpl
def nodesmith_well_known_labels() -> Sequence[str]:
    """EC2 instance types define these labels (empty where an instance type has no such property)."""
    return INSTANCE_LABELS


@hookimpl
def nodesmith_provider_names() -> Sequence[str]:
    return ["aws"]


@hookimpl
def nodesmith_cloud_provider(name: str, context: ProviderContext) -> CloudProvider | None:
    """The AWS provider for ``--provider aws``. Its one I/O before its methods are awaited: the region
    from instance metadata and ``eks:DescribeCluster`` when settings leave them out, so a missing or
    contradictory cluster value raises `ConfigError` here and the daemon stops before it starts."""
    if name != "aws":
        return None
    from nodesmith.clock import SYSTEM
    from nodesmith_aws import cloudprovider, cluster, settings, store

    parsed = settings.Settings.from_context(context.cluster_name, context.settings)
    found = cluster.discover_blocking(parsed) if context.kube is not None else None
    node_classes: store.NodeClassStore = (
        store.KubeNodeClassStore(context.kube) if context.kube is not None else store.MemoryNodeClassStore()
    )
    clock = context.clock or SYSTEM
    return cloudprovider.AwsCloudProvider(
        parsed,
        node_classes,
        cluster=found,
        clock=clock.monotonic,
        now=clock.now,
        sleep=clock.sleep,
        kube=context.kube,
    )


@hookimpl
def nodesmith_crds() -> Sequence[Mapping[str, Any]]:
    from nodesmith_aws import crds

    return [crds.crd()]


@hookimpl
def nodesmith_karpenter_converter() -> KarpenterConverter:
    """``nodesmith convert`` hands Karpenter's AWSNodeTemplate and EC2NodeClass objects to this."""
    from nodesmith_aws import convert

    return convert.AwsConverter()
