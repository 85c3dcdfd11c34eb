"""Capacity and overhead of an EC2 instance type, computed exactly as Karpenter's ``types.go`` does.

Pure: an ``InstanceTypeInfo`` dict (DescribeInstanceTypes' shape) and the NodeClass's kubelet and
block-device settings in, milli-unit resource lists out. Fed by `nodesmith_aws.instancetypes`; its
results become ``InstanceType.capacity`` and ``InstanceType.overhead`` (so allocatable), which the
scheduler packs pods against. Every formula names its Karpenter source in shared/spec/karpenter-aws.md §2:

* memory = SizeInMiB (−64 Mi on arm64) − ceil(SizeInMiB × VM_MEMORY_OVERHEAD_PERCENT) Mi;
* pods = kubelet.maxPods, else ENI-limited ``ENIs × (IPv4 per ENI − 1) + 2`` (110 for families without
  ENI-limited density), capped at ``podsPerCore × vCPU``;
* ephemeral-storage from the root block device, else the family default (20Gi for AL2/AL2023);
* kube-reserved: CPU 6% / 1% / 0.5% / 0.25% of the 1st / 2nd / 3rd–4th / remaining cores, memory
  ``11 × pods + 255`` Mi with the ENI-limited pod count, ephemeral-storage 1Gi;
* eviction threshold: memory 100Mi, ephemeral-storage 10%, or ``evictionHard`` overrides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from nodesmith.api import quantity
from nodesmith.cloudprovider.types import Overhead

__all__ = [
    "capacity",
    "eni_limited_pods",
    "ephemeral_storage",
    "eviction_threshold",
    "kube_reserved",
    "kube_reserved_cpu_millis",
    "memory_mib",
    "overhead",
    "pods",
]

MI: Final = 2**20
GI: Final = 2**30
MILLI: Final = 1000
ENI_LIMITED_FAMILIES: Final = frozenset({"AL2", "AL2023", "Bottlerocket", "Custom"})
"""Families whose max pods is ENI-limited (``SupportsENILimitedPodDensity``)."""
ENI_LIMITED_MEMORY_FAMILIES: Final = frozenset({"AL2", "AL2023", "Custom"})
"""Families whose kube-reserved memory uses ENI-limited pods (``UsesENILimitedMemoryOverhead``)."""
PODS_PER_CORE_FAMILIES: Final = frozenset({"AL2", "AL2023", "Custom"})
"""Families that honour ``kubelet.podsPerCore`` (Bottlerocket does not)."""
DEFAULT_ROOT_DEVICE: Final = {"AL2": "/dev/xvda", "AL2023": "/dev/xvda", "Bottlerocket": "/dev/xvdb"}
DEFAULT_ROOT_SIZE: Final = {"AL2": 20 * GI, "AL2023": 20 * GI, "Bottlerocket": 20 * GI, "Custom": 20 * GI}
_CPU_BANDS: Final = ((0, 1000, 0.06), (1000, 2000, 0.01), (2000, 4000, 0.005), (4000, 1 << 31, 0.0025))


def vcpus(info: Mapping[str, Any]) -> int:
    return int(info["VCpuInfo"]["DefaultVCpus"])


def architectures(info: Mapping[str, Any]) -> Sequence[str]:
    return tuple((info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or ())


def memory_mib(info: Mapping[str, Any], overhead_percent: float) -> int:
    """Usable memory in MiB after the VM overhead (Karpenter ``computeMemory``; float math as in Go)."""
    size = int(info["MemoryInfo"]["SizeInMiB"])
    archs = architectures(info)
    if archs and archs[0] == "arm64":
        size -= 64
    return size - math.ceil(float(size * MI) * overhead_percent / 1024 / 1024)


def eni_limited_pods(info: Mapping[str, Any], reserved_enis: int = 0) -> int:
    """``max(0, ENIs − reserved) × (IPv4 per ENI − 1) + 2``, or 0 when no ENI is usable."""
    network = info.get("NetworkInfo") or {}
    card_index = network.get("DefaultNetworkCardIndex", 0)
    enis = network.get("MaximumNetworkInterfaces", 0)
    for card in network.get("NetworkCards") or ():
        if card.get("NetworkCardIndex") == card_index:
            enis = card.get("MaximumNetworkInterfaces", enis)
    usable = max(0, int(enis) - reserved_enis)
    if usable == 0:
        return 0
    return usable * (int(network.get("Ipv4AddressesPerInterface", 0)) - 1) + 2


def pods(info: Mapping[str, Any], family: str, kubelet: Mapping[str, Any], reserved_enis: int = 0) -> int:
    """The max pods the kubelet will be told (and the scheduler packs to)."""
    if kubelet.get("maxPods") is not None:
        count = int(kubelet["maxPods"])
    elif family in ENI_LIMITED_FAMILIES:
        count = eni_limited_pods(info, reserved_enis)
    else:
        count = 110
    per_core = kubelet.get("podsPerCore") or 0
    if per_core > 0 and family in PODS_PER_CORE_FAMILIES:
        count = min(count, per_core * vcpus(info))
    return count


def _volume_size(bdm: Mapping[str, Any]) -> int | None:
    size = (bdm.get("ebs") or {}).get("volumeSize")
    return None if size is None else quantity.parse_quantity(size) // MILLI


def ephemeral_storage(
    info: Mapping[str, Any],
    family: str,
    block_device_mappings: Sequence[Mapping[str, Any]],
    instance_store_policy: str | None = None,
) -> int:
    """Ephemeral storage in bytes, in Karpenter's order: RAID0 instance store, the ``rootVolume``
    mapping, the last mapping for Custom, the family's root device, the family default (20Gi)."""
    storage = info.get("InstanceStorageInfo") or {}
    if instance_store_policy == "RAID0" and storage.get("TotalSizeInGB"):
        return int(storage["TotalSizeInGB"]) * 10**9
    for bdm in block_device_mappings:
        if bdm.get("rootVolume") and _volume_size(bdm) is not None:
            return _volume_size(bdm) or 0
    if block_device_mappings:
        if family == "Custom":
            size = _volume_size(block_device_mappings[-1])
            if size is not None:
                return size
        device = DEFAULT_ROOT_DEVICE.get(family)
        for bdm in block_device_mappings:
            if bdm.get("deviceName") == device and _volume_size(bdm) is not None:
                return _volume_size(bdm) or 0
    return DEFAULT_ROOT_SIZE.get(family, 20 * GI)


def extended_resources(info: Mapping[str, Any]) -> dict[str, int]:
    """GPUs by manufacturer, Neuron devices/cores and EFA interfaces (counts, not milli-units)."""
    out: dict[str, int] = {}
    for gpu in (info.get("GpuInfo") or {}).get("Gpus") or ():
        resource = {"NVIDIA": "nvidia.com/gpu", "AMD": "amd.com/gpu", "Habana": "habana.ai/gaudi"}.get(
            gpu.get("Manufacturer", "")
        )
        if resource:
            out[resource] = out.get(resource, 0) + int(gpu.get("Count", 0))
    neuron = info.get("NeuronInfo") or {}
    devices = neuron.get("NeuronDevices") or ()
    if devices:
        out["aws.amazon.com/neuron"] = sum(int(d.get("Count", 0)) for d in devices)
        out["aws.amazon.com/neuroncore"] = sum(
            int(d.get("Count", 0)) * int((d.get("CoreInfo") or {}).get("Count", 0)) for d in devices
        )
    for accelerator in (info.get("InferenceAcceleratorInfo") or {}).get("Accelerators") or ():
        out["aws.amazon.com/neuron"] = out.get("aws.amazon.com/neuron", 0) + int(accelerator.get("Count", 0))
    efa = ((info.get("NetworkInfo") or {}).get("EfaInfo") or {}).get("MaximumEfaInterfaces")
    if efa:
        out["vpc.amazonaws.com/efa"] = int(efa)
    return out


def capacity(
    info: Mapping[str, Any],
    *,
    family: str,
    kubelet: Mapping[str, Any],
    block_device_mappings: Sequence[Mapping[str, Any]] = (),
    instance_store_policy: str | None = None,
    overhead_percent: float = 0.075,
    reserved_enis: int = 0,
) -> dict[str, int]:
    """The instance type's capacity in milli-units (cpu, memory, ephemeral-storage, pods, extended)."""
    out = {
        "cpu": vcpus(info) * MILLI,
        "memory": memory_mib(info, overhead_percent) * MI * MILLI,
        "ephemeral-storage": ephemeral_storage(info, family, block_device_mappings, instance_store_policy)
        * MILLI,
        "pods": pods(info, family, kubelet, reserved_enis) * MILLI,
    }
    out.update({name: count * MILLI for name, count in extended_resources(info).items() if count})
    return out


def kube_reserved_cpu_millis(cpu_millis: int) -> int:
    """6% of the first core, 1% of the second, 0.5% of the next two, 0.25% of the rest (truncated)."""
    reserved = 0
    for start, end, percent in _CPU_BANDS:
        if cpu_millis >= start:
            span = (cpu_millis if cpu_millis < end else end) - start
            reserved += int(span * percent)
    return reserved


def _overrides(values: Mapping[str, Any] | None) -> dict[str, int]:
    return quantity.parse_resources(values or {}, field="kubelet")


def kube_reserved(cpu_millis: int, pods_for_memory: int, kubelet: Mapping[str, Any]) -> dict[str, int]:
    reserved = {
        "cpu": kube_reserved_cpu_millis(cpu_millis),
        "memory": (11 * pods_for_memory + 255) * MI * MILLI,
        "ephemeral-storage": GI * MILLI,
    }
    reserved.update(_overrides(kubelet.get("kubeReserved")))
    return reserved


def _threshold(value: str, total: int) -> int:
    if value.endswith("%"):
        percent = float(value[:-1])
        return 0 if percent >= 100 else math.ceil(total / 100 * percent / MILLI) * MILLI
    return quantity.parse_quantity(value)


def eviction_threshold(capacity_: Mapping[str, int], kubelet: Mapping[str, Any]) -> dict[str, int]:
    """Memory 100Mi and 10% of ephemeral storage, unless ``evictionHard`` says otherwise."""
    storage = capacity_.get("ephemeral-storage", 0)
    out = {
        "memory": 100 * MI * MILLI,
        "ephemeral-storage": math.ceil(storage / MILLI / 100 * 10) * MILLI,
    }
    hard = kubelet.get("evictionHard") or {}
    if "memory.available" in hard:
        out["memory"] = _threshold(hard["memory.available"], capacity_.get("memory", 0))
    if "nodefs.available" in hard:
        out["ephemeral-storage"] = _threshold(hard["nodefs.available"], storage)
    return out


def overhead(
    info: Mapping[str, Any],
    capacity_: Mapping[str, int],
    *,
    family: str,
    kubelet: Mapping[str, Any],
    reserved_enis: int = 0,
) -> Overhead:
    """kube-reserved, system-reserved and eviction threshold, so allocatable = capacity − their sum."""
    if family in ENI_LIMITED_MEMORY_FAMILIES:
        pods_for_memory = eni_limited_pods(info, 0)
    else:
        pods_for_memory = capacity_.get("pods", 0) // MILLI
    return Overhead(
        kube_reserved=kube_reserved(capacity_["cpu"], pods_for_memory, kubelet),
        system_reserved=_overrides(kubelet.get("systemReserved")),
        eviction_threshold=eviction_threshold(capacity_, kubelet),
    )
