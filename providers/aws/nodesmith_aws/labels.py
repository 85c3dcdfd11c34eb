"""Labels an EC2 instance type carries, as requirements (Karpenter's ``computeRequirements``).

Pure: an ``InstanceTypeInfo`` dict in, `nodesmith.api.requirements.Requirements` out. Fed by
`nodesmith_aws.instancetypes`; consumed by the scheduler (pods select on these labels) and by
``create``, which stamps the single-valued ones on the NodeClaim. Every label in
`nodesmith_aws.plugin.INSTANCE_LABELS` is defined on every type: ``DoesNotExist`` where it does not apply
(a type without a GPU has no ``instance-gpu-name``), so a pod requiring it is refused, not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith_aws import capacity

__all__ = ["LABEL_PREFIX", "instance_requirements", "label", "parse_name"]

LABEL_PREFIX: Final = "aws.nodesmith.io/instance-"
_NAME: Final = re.compile(r"(^[a-z]+)(\-[0-9]+tb)?([0-9]+).*\.")
ARCH: Final = {"x86_64": "amd64", "arm64": "arm64"}


def label(suffix: str) -> str:
    """``label("family")`` → ``aws.nodesmith.io/instance-family``."""
    return LABEL_PREFIX + suffix


def parse_name(name: str) -> tuple[str, str, str | None, str | None]:
    """``m5.large`` → (family ``m5``, size ``large``, category ``m``, generation ``5``)."""
    family, _, size = name.partition(".")
    match = _NAME.match(name)
    if match is None:
        return family, size, None, None
    return family, size, match.group(1), match.group(3)


def _kebab(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def _gpu_labels(info: Mapping[str, Any]) -> dict[str, str]:
    gpus: Sequence[Any] = (info.get("GpuInfo") or {}).get("Gpus") or ()
    if len(gpus) != 1:
        return {}
    gpu = gpus[0]
    return {
        "gpu-name": _kebab(gpu.get("Name", "")),
        "gpu-manufacturer": _kebab(gpu.get("Manufacturer", "")),
        "gpu-count": str(gpu.get("Count", 0)),
        "gpu-memory": str((gpu.get("MemoryInfo") or {}).get("SizeInMiB", 0)),
    }


def _accelerator_labels(info: Mapping[str, Any]) -> dict[str, str]:
    accelerators: Sequence[Any] = (info.get("InferenceAcceleratorInfo") or {}).get("Accelerators") or ()
    if len(accelerators) == 1:
        a = accelerators[0]
        return {
            "accelerator-name": _kebab(a.get("Name", "")),
            "accelerator-manufacturer": _kebab(a.get("Manufacturer", "")),
            "accelerator-count": str(a.get("Count", 0)),
        }
    devices: Sequence[Any] = (info.get("NeuronInfo") or {}).get("NeuronDevices") or ()
    if len(devices) == 1:
        d = devices[0]
        return {
            "accelerator-name": _kebab(d.get("Name", "")),
            "accelerator-manufacturer": "aws",
            "accelerator-count": str(d.get("Count", 0)),
        }
    return {}


def instance_labels(info: Mapping[str, Any]) -> dict[str, str]:
    """The ``aws.nodesmith.io/instance-*`` values this type has (suffix → value); absent ones omitted."""
    name = info["InstanceType"]
    family, size, category, generation = parse_name(name)
    values: dict[str, str] = {
        "family": family,
        "size": size,
        "cpu": str(capacity.vcpus(info)),
        "memory": str(info["MemoryInfo"]["SizeInMiB"]),
    }
    if category is not None and generation is not None:
        values["category"] = category
        values["generation"] = generation
    processor = info.get("ProcessorInfo") or {}
    if processor.get("Manufacturer"):
        values["cpu-manufacturer"] = _kebab(processor["Manufacturer"])
    if info.get("Hypervisor"):
        values["hypervisor"] = str(info["Hypervisor"])
    network = info.get("NetworkInfo") or {}
    values["encryption-in-transit-supported"] = str(bool(network.get("EncryptionInTransitSupported"))).lower()
    bandwidth = sum(float(c.get("BaselineBandwidthInGbps", 0)) for c in network.get("NetworkCards") or ())
    if bandwidth:
        values["network-bandwidth"] = str(round(bandwidth * 1000))
    ebs = info.get("EbsInfo") or {}
    if ebs.get("EbsOptimizedSupport") == "default" and ebs.get("EbsOptimizedInfo"):
        values["ebs-bandwidth"] = str(ebs["EbsOptimizedInfo"].get("MaximumBandwidthInMbps", 0))
    storage = info.get("InstanceStorageInfo") or {}
    if storage.get("TotalSizeInGB") and storage.get("NvmeSupport") != "unsupported":
        values["local-nvme"] = str(storage["TotalSizeInGB"])
    values.update(_gpu_labels(info))
    values.update(_accelerator_labels(info))
    return values


def instance_requirements(
    info: Mapping[str, Any],
    *,
    region: str,
    zones: Iterable[str],
    capacity_types: Iterable[str],
    os: str = "linux",
    known_suffixes: Iterable[str] = (),
) -> Requirements:
    """Requirements of one instance type: well-known labels, offering zones and capacity types, and
    every ``aws.nodesmith.io/instance-*`` label (``DoesNotExist`` for those that do not apply)."""
    arch = [ARCH[a] for a in capacity.architectures(info) if a in ARCH]
    reqs = [
        Requirement.in_(labels.LABEL_INSTANCE_TYPE, info["InstanceType"]),
        Requirement.in_(labels.LABEL_ARCH, *arch),
        Requirement.in_(labels.LABEL_OS, os),
        Requirement.in_(labels.LABEL_ZONE, *zones),
        Requirement.in_(labels.LABEL_REGION, region),
        Requirement.in_(labels.LABEL_CAPACITY_TYPE, *capacity_types),
        Requirement.does_not_exist(labels.LABEL_WINDOWS_BUILD),
    ]
    values = instance_labels(info)
    for suffix in {*values, *known_suffixes}:
        value = values.get(suffix)
        reqs.append(
            Requirement.in_(label(suffix), value)
            if value is not None
            else Requirement.does_not_exist(label(suffix))
        )
    return Requirements(reqs)
