"""Capacity, overhead and allocatable as Karpenter computes them, on moto's bundled (real) EC2 data.

Max pods are checked against the published EKS ``eni-max-pods.txt`` values.
"""

from __future__ import annotations

import gzip
import json
import pathlib
from typing import Any

import moto
import pytest

from nodesmith.cloudprovider.types import InstanceType
from nodesmith_aws import capacity

INFOS: dict[str, Any] = json.loads(
    gzip.decompress(
        (pathlib.Path(moto.__file__).parent / "ec2/resources/instance_types.json.gz").read_bytes()
    )
)
MI = 2**20 * 1000
GI = 2**30 * 1000


def _type(name: str, family: str = "AL2023", **kubelet: Any) -> InstanceType:
    from nodesmith.api.requirements import Requirements

    info = INFOS[name]
    cap = capacity.capacity(info, family=family, kubelet=kubelet)
    return InstanceType(
        name, Requirements(), (), cap, capacity.overhead(info, cap, family=family, kubelet=kubelet)
    )


@pytest.mark.parametrize(
    ("name", "pods"),
    [
        ("t3.micro", 4),
        ("t3.small", 11),
        ("t3.medium", 17),
        ("m5.large", 29),
        ("m5.xlarge", 58),
        ("m5.4xlarge", 234),
        ("c5.large", 29),
        ("c5.18xlarge", 737),
        ("m5.24xlarge", 737),
        ("r5.2xlarge", 58),
        ("m6g.large", 29),
    ],
)
def test_eni_limited_max_pods_match_published_eks_values(name: str, pods: int) -> None:
    assert capacity.eni_limited_pods(INFOS[name]) == pods


def test_m5_large_allocatable_matches_karpenter() -> None:
    it = _type("m5.large")
    assert it.capacity["memory"] == 7577 * MI  # 8192Mi - ceil(8192 * 0.075)Mi
    assert it.allocatable == {"cpu": 1930, "memory": 6903 * MI, "ephemeral-storage": 17 * GI, "pods": 29_000}


@pytest.mark.parametrize(("vcpus", "reserved"), [(1, 60), (2, 70), (4, 80), (8, 90), (96, 310)])
def test_kube_reserved_cpu_bands(vcpus: int, reserved: int) -> None:
    assert capacity.kube_reserved_cpu_millis(vcpus * 1000) == reserved


def test_arm64_loses_64_mib_before_the_vm_overhead() -> None:
    info = INFOS["m6g.large"]
    assert capacity.memory_mib(info, 0.075) == (8192 - 64) - -(-(8192 - 64) * 75 // 1000)


def test_kubelet_overrides_pods_reservations_and_eviction() -> None:
    it = _type(
        "m5.xlarge",
        maxPods=110,
        kubeReserved={"cpu": "200m"},
        systemReserved={"memory": "1Gi"},
        evictionHard={"memory.available": "5%", "nodefs.available": "100%"},
    )
    assert it.capacity["pods"] == 110_000
    assert it.overhead.kube_reserved["cpu"] == 200
    # kube-reserved memory still uses the ENI-limited pod count (58), as Karpenter does for AL2023.
    assert it.overhead.kube_reserved["memory"] == (11 * 58 + 255) * MI
    assert it.overhead.system_reserved == {"memory": GI}
    assert it.overhead.eviction_threshold["ephemeral-storage"] == 0
    assert it.overhead.eviction_threshold["memory"] > 0


def test_pods_per_core_caps_max_pods_except_on_bottlerocket() -> None:
    info = INFOS["m5.large"]
    assert capacity.pods(info, "AL2023", {"podsPerCore": 4}) == 8
    assert capacity.pods(info, "Bottlerocket", {"podsPerCore": 4}) == 29


def test_ephemeral_storage_comes_from_the_root_volume() -> None:
    info = INFOS["m5.large"]
    root = [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {"volumeSize": "100Gi"}}]
    assert capacity.ephemeral_storage(info, "AL2023", root) == 100 * 2**30
    assert capacity.ephemeral_storage(info, "AL2023", []) == 20 * 2**30
    data = [{"deviceName": "/dev/xvdb", "ebs": {"volumeSize": "50Gi"}}]
    assert capacity.ephemeral_storage(info, "Bottlerocket", data) == 50 * 2**30
