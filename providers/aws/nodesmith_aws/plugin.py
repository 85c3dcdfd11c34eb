"""The AWS provider's plugin module, registered under the ``nodesmith`` entry-point group as ``aws``.

It declares the ``aws.nodesmith.io/instance-*`` labels every EC2 instance type defines, so pods may
require them even when a NodePool does not mention them.
"""

from __future__ import annotations

from collections.abc import Sequence

from nodesmith.cloudprovider.hookspecs import hookimpl

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


@hookimpl
def nodesmith_well_known_labels() -> Sequence[str]:
    """EC2 instance types define these labels (empty where an instance type has no such property)."""
    return INSTANCE_LABELS
