"""The kwok provider's instance types: a synthetic catalogue shaped like Karpenter's kwok provider, or a file.

Built-in: 144 types = cpu ∈ {1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256} × family {c: 2 GiB/cpu,
s: 4 GiB/cpu, m: 8 GiB/cpu} × os {linux, windows} × arch {amd64, arm64}, named ``<family>-<cpu>x-<arch>-<os>``
(``c-4x-amd64-linux``). Pods = min(16 × cpu, 1024); ephemeral storage 20 Gi; kube-reserved 100m CPU and
10 Mi. Each type has 8 offerings (zones ``test-zone-a..d`` × spot/on-demand), all available, priced
0.025 × vCPU + 0.001 × memory GB on demand and 0.7 × that on spot — the same formula as Karpenter's
generator, so cost figures compare.

A file (``--provider-setting instance-types-file=PATH`` / ``NODESMITH_KWOK_INSTANCE_TYPES_FILE``) replaces
the catalogue: a JSON or YAML list of ``{name, cpu, memory, pods?, arch?, os?, offerings: [{zone,
capacityType, price, available?}], labels?}``. The provider plugin reads it; this module only parses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from nodesmith import errors
from nodesmith.api import labels, quantity
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering, Overhead

__all__ = ["CPUS", "FAMILIES", "ZONES", "build_catalogue", "instance_type", "parse_catalogue", "price_of"]

LABEL_GROUP: Final = "kwok.nodesmith.io"
LABEL_FAMILY: Final = f"{LABEL_GROUP}/instance-family"
LABEL_SIZE: Final = f"{LABEL_GROUP}/instance-size"
LABEL_CPU: Final = f"{LABEL_GROUP}/instance-cpu"
LABEL_MEMORY: Final = f"{LABEL_GROUP}/instance-memory"

CPUS: Final = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256)
FAMILIES: Final = {"c": 2, "s": 4, "m": 8}
"""Family → GiB of memory per vCPU."""
ARCHES: Final = ("amd64", "arm64")
OSES: Final = ("linux", "windows")
ZONES: Final = ("test-zone-a", "test-zone-b", "test-zone-c", "test-zone-d")
REGION: Final = "test-region"
SPOT_DISCOUNT: Final = 0.7
GIB: Final = 2**30


def price_of(cpu: int, memory_bytes: int) -> float:
    """On-demand hourly price: 0.025 per vCPU plus 0.001 per GB (10⁹ bytes) of memory."""
    return 0.025 * cpu + 0.001 * (memory_bytes / 1e9)


def instance_type(
    name: str,
    *,
    cpu_milli: int,
    memory_milli: int,
    pods: int,
    arch: str,
    os: str,
    offerings: Sequence[Offering],
    extra_labels: Mapping[str, str] | None = None,
) -> InstanceType:
    """One kwok instance type with every well-known label defined."""
    cpu = cpu_milli // 1000
    memory_bytes = memory_milli // 1000
    family, _, _ = name.partition("-")
    reqs: list[Requirement] = [
        Requirement.in_(labels.LABEL_INSTANCE_TYPE, name),
        Requirement.in_(labels.LABEL_ARCH, arch),
        Requirement.in_(labels.LABEL_OS, os),
        Requirement.in_(labels.LABEL_REGION, REGION),
        Requirement.in_(labels.LABEL_ZONE, *sorted({o.zone for o in offerings})),
        Requirement.in_(labels.LABEL_CAPACITY_TYPE, *sorted({o.capacity_type for o in offerings})),
        Requirement.in_(LABEL_FAMILY, family),
        Requirement.in_(LABEL_SIZE, f"{cpu}x"),
        Requirement.in_(LABEL_CPU, str(cpu)),
        Requirement.in_(LABEL_MEMORY, str(memory_bytes // 2**20)),
        Requirement.does_not_exist(labels.LABEL_WINDOWS_BUILD),
    ]
    reqs.extend(Requirement.in_(key, value) for key, value in (extra_labels or {}).items())
    capacity = {
        "cpu": cpu_milli,
        "memory": memory_milli,
        "pods": pods * 1000,
        "ephemeral-storage": 20 * GIB * 1000,
    }
    overhead = Overhead(kube_reserved={"cpu": 100, "memory": 10 * 2**20 * 1000})
    return InstanceType(name, Requirements(reqs), tuple(offerings), capacity, overhead)


def build_catalogue(zones: Iterable[str] = ZONES) -> list[InstanceType]:
    """The built-in 144-type catalogue (see the module docstring)."""
    zones = tuple(zones)
    out: list[InstanceType] = []
    for family, gib_per_cpu in FAMILIES.items():
        for cpu in CPUS:
            memory_bytes = cpu * gib_per_cpu * GIB
            on_demand = price_of(cpu, memory_bytes)
            for arch in ARCHES:
                for os in OSES:
                    offerings = [
                        Offering.of(zone, capacity_type, price)
                        for zone in zones
                        for capacity_type, price in (
                            (labels.CapacityType.SPOT, on_demand * SPOT_DISCOUNT),
                            (labels.CapacityType.ON_DEMAND, on_demand),
                        )
                    ]
                    out.append(
                        instance_type(
                            f"{family}-{cpu}x-{arch}-{os}",
                            cpu_milli=cpu * 1000,
                            memory_milli=memory_bytes * 1000,
                            pods=min(16 * cpu, 1024),
                            arch=arch,
                            os=os,
                            offerings=offerings,
                        )
                    )
    return out


def parse_catalogue(entries: Sequence[Mapping[str, Any]], *, source: str = "catalogue") -> list[InstanceType]:
    """Instance types from a list of dicts (a JSON/YAML catalogue file); errors name the entry and field."""
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise errors.ConfigError(source, "must be a list of instance types")
    out: list[InstanceType] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{source}[{index}]"
        try:
            name = str(entry["name"])
            if name in seen:
                raise errors.ConfigError(where, f"duplicate instance type {name!r}")
            seen.add(name)
            offerings = [
                Offering.of(
                    str(o["zone"]),
                    str(o.get("capacityType", labels.CapacityType.ON_DEMAND)),
                    float(o["price"]),
                    available=bool(o.get("available", True)),
                )
                for o in entry["offerings"]
            ]
            if not offerings:
                raise errors.ConfigError(f"{where}.offerings", "needs at least one offering")
            out.append(
                instance_type(
                    name,
                    cpu_milli=quantity.parse_quantity(entry["cpu"]),
                    memory_milli=quantity.parse_quantity(entry["memory"]),
                    pods=int(entry.get("pods", 110)),
                    arch=str(entry.get("arch", "amd64")),
                    os=str(entry.get("os", "linux")),
                    offerings=offerings,
                    extra_labels={str(k): str(v) for k, v in (entry.get("labels") or {}).items()},
                )
            )
        except KeyError as err:
            raise errors.ConfigError(where, f"missing field {err.args[0]!r}") from err
        except (TypeError, ValueError) as err:
            if isinstance(err, errors.ConfigError):
                raise
            raise errors.ConfigError(where, str(err)) from err
    return out
