"""What differs per AMI family: alias → SSM parameter names, default block devices, and user data.

Pure. Fed by the EC2NodeClass (family, alias, userData, kubelet), the cluster settings, and the labels and
taints of the NodeClaim being launched; consumed by `nodesmith_aws.resolver` (alias resolution) and
`nodesmith_aws.launchtemplates` (user data and block devices of each launch template).

User data is *merged* with the user's, as Karpenter merges it; each family's format is rendered by a
module of `nodesmith_aws.bootstrap` (AL2023: nodesmith's NodeConfig first, then the user's MIME parts;
AL2: the user's parts, then bootstrap.sh; Bottlerocket: nodesmith's ``settings.kubernetes`` over the
user's TOML; Custom: the user's data untouched). Every generated bootstrap registers the node with the
``nodesmith.io/unregistered`` taint (NoExecute), removed by the core at registration, and the kubelet
settings used to compute allocatable, so the node matches the simulation.
"""

from __future__ import annotations

from typing import Any, Final

from nodesmith_aws.bootstrap import bottlerocket, eksbootstrap, mime, nodeadm
from nodesmith_aws.bootstrap.options import Bootstrap, UserDataError

__all__ = [
    "Bootstrap",
    "UserDataError",
    "alias_parameters",
    "check_user_data",
    "default_block_device_mappings",
    "user_data",
]

ARCHES: Final = {"x86_64": "amd64", "arm64": "arm64"}
MIME_BOUNDARY: Final = "//"


GPU_COUNT: Final = "aws.nodesmith.io/instance-gpu-count"
ACCELERATOR_COUNT: Final = "aws.nodesmith.io/instance-accelerator-count"
VARIANTS: Final[dict[str, tuple[dict[str, Any], ...]]] = {
    "standard": (
        {"key": ACCELERATOR_COUNT, "operator": "DoesNotExist"},
        {"key": GPU_COUNT, "operator": "DoesNotExist"},
    ),
    "nvidia": ({"key": GPU_COUNT, "operator": "Exists"},),
    "neuron": ({"key": ACCELERATOR_COUNT, "operator": "Exists"},),
}
"""Which instance types each AMI variant serves (Karpenter's ``Variant.Requirements``): the standard
AMI only types without GPUs or accelerators, the NVIDIA one GPU types, the Neuron one accelerators."""


def alias_parameters(alias: str, kubernetes_version: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """SSM parameter name → (the architecture its AMI serves, the variants it serves), for an alias such
    as ``al2023@latest``, ``al2@v20240807`` or ``bottlerocket@1.20.3`` — the same parameters Karpenter
    reads, accelerated variants included."""
    family, _, version = alias.partition("@")
    k8s = kubernetes_version
    latest = version == "latest"
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    if family == "al2023":
        for arch, variants in (
            ("x86_64", ("standard", "nvidia", "neuron")),
            ("arm64", ("standard", "nvidia")),
        ):
            for variant in variants:
                leaf = "recommended" if latest else f"amazon-eks-node-al2023-{arch}-{variant}-{k8s}-{version}"
                path = (
                    f"/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/{variant}/{leaf}/image_id"
                )
                out[path] = (ARCHES[arch], (variant,))
    elif family == "al2":
        al2: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
            ("amazon-linux-2", "x86_64", "node", ("standard",)),
            ("amazon-linux-2-arm64", "arm64", "arm64-node", ("standard",)),
            ("amazon-linux-2-gpu", "x86_64", "gpu-node", ("neuron", "nvidia")),
        )
        for path_part, arch, name, kinds in al2:
            leaf = "recommended" if latest else f"amazon-eks-{name}-{k8s}-{version}"
            out[f"/aws/service/eks/optimized-ami/{k8s}/{path_part}/{leaf}/image_id"] = (ARCHES[arch], kinds)
    elif family == "bottlerocket":
        leaf = "latest" if latest else version.removeprefix("v")
        bottlerocket: tuple[tuple[str, str, tuple[str, ...]], ...] = (
            ("", "x86_64", ("standard", "neuron")),
            ("", "arm64", ("standard",)),
            ("-nvidia", "x86_64", ("nvidia",)),
            ("-nvidia", "arm64", ("nvidia",)),
        )
        for suffix, arch, kinds in bottlerocket:
            out[f"/aws/service/bottlerocket/aws-k8s-{k8s}{suffix}/{arch}/{leaf}/image_id"] = (
                ARCHES[arch],
                kinds,
            )
    else:
        raise ValueError(f"unknown AMI alias family {family!r}")
    return out


def default_block_device_mappings(family: str) -> list[dict[str, Any]]:
    """The family's root volume(s) when the NodeClass sets none: 20Gi gp3 encrypted (Bottlerocket: a
    4Gi OS volume and a 20Gi data volume)."""
    if family == "Bottlerocket":
        return [
            {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "4Gi", "volumeType": "gp3", "encrypted": True}},
            {
                "deviceName": "/dev/xvdb",
                "ebs": {"volumeSize": "20Gi", "volumeType": "gp3", "encrypted": True},
            },
        ]
    if family == "Custom":
        return []
    return [
        {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "20Gi", "volumeType": "gp3", "encrypted": True}}
    ]


def user_data(family: str, boot: Bootstrap, user: str | None) -> str:
    """The merged user data (plain text; the launch template base64-encodes it). Raises
    `UserDataError` when the user's part cannot be read in the family's format."""
    if family == "AL2023":
        return nodeadm.user_data(boot, user)
    if family == "AL2":
        return eksbootstrap.user_data(boot, user)
    if family == "Bottlerocket":
        return bottlerocket.user_data(boot, user)
    return user or ""


def check_user_data(family: str, user: str | None) -> str | None:
    """Why ``spec.userData`` cannot be used with ``family``, or ``None``; the resolver reports it."""
    try:
        if family == "Bottlerocket":
            bottlerocket.parse_user(user)
        elif family in ("AL2", "AL2023"):
            mime.user_parts(user)
    except UserDataError as err:
        return str(err)
    return None
