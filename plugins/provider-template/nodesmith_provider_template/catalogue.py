"""The instance types the in-memory cloud sells: a small static catalogue.

A real provider builds these from its cloud's API (machine types, prices, zones) and refreshes them in the
provider's optional ``run`` task. Every instance type must define the well-known labels (instance type,
arch, os, region, zone, capacity type), and every offering names a zone and a capacity type.
"""

from __future__ import annotations

from typing import Final

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering, Overhead

__all__ = ["LABEL_FAMILY", "REGION", "ZONES", "build_catalogue"]

LABEL_FAMILY: Final = "template.nodesmith.example/instance-family"
REGION: Final = "template-region-1"
ZONES: Final = ("template-zone-a", "template-zone-b")
GIB: Final = 2**30
SPOT_DISCOUNT: Final = 0.6

_SHAPES: Final = (
    # name, family, vCPU, GiB of memory, on-demand price per hour
    ("std.small", "std", 2, 4, 0.05),
    ("std.large", "std", 4, 8, 0.10),
    ("std.xlarge", "std", 8, 16, 0.20),
    ("mem.large", "mem", 4, 32, 0.18),
)


def build_catalogue(region: str = REGION, zones: tuple[str, ...] = ZONES) -> tuple[InstanceType, ...]:
    """Each shape in every zone, spot and on-demand, all available."""
    out: list[InstanceType] = []
    for name, family, cpu, gib, price in _SHAPES:
        offerings = tuple(
            Offering.of(zone, capacity_type, price * (SPOT_DISCOUNT if capacity_type == "spot" else 1.0))
            for zone in zones
            for capacity_type in (labels.CapacityType.SPOT, labels.CapacityType.ON_DEMAND)
        )
        requirements = Requirements(
            [
                Requirement.in_(labels.LABEL_INSTANCE_TYPE, name),
                Requirement.in_(labels.LABEL_ARCH, "amd64"),
                Requirement.in_(labels.LABEL_OS, "linux"),
                Requirement.in_(labels.LABEL_REGION, region),
                Requirement.in_(labels.LABEL_ZONE, *zones),
                Requirement.in_(
                    labels.LABEL_CAPACITY_TYPE, labels.CapacityType.SPOT, labels.CapacityType.ON_DEMAND
                ),
                Requirement.does_not_exist(labels.LABEL_WINDOWS_BUILD),
                Requirement.in_(LABEL_FAMILY, family),
            ]
        )
        capacity = {"cpu": cpu * 1000, "memory": gib * GIB * 1000, "pods": 110 * 1000}
        overhead = Overhead(kube_reserved={"cpu": 100, "memory": 256 * 2**20 * 1000})
        out.append(InstanceType(name, requirements, offerings, capacity, overhead))
    return tuple(out)
