"""What a provider tells the core about machines it can launch: instance types and their offerings.

Providers build these (the kwok provider from a synthetic catalogue, the AWS provider from
DescribeInstanceTypes and pricing); the scheduling engine filters and orders them; the disruption
simulation prices them. Pure values: no I/O.

An ``InstanceType`` must define every well-known label in its requirements (an empty ``DoesNotExist`` is
fine), so a pod that requires one can be matched or refused without guessing. Each ``Offering`` is one
place and way to buy it (zone × capacity type), with a price and availability.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Final, final

import attrs

from nodesmith.api import labels, quantity
from nodesmith.api.requirements import Requirement, Requirements

__all__ = [
    "DriftReason",
    "InstanceType",
    "InterruptionEvent",
    "InterruptionKind",
    "Offering",
    "Overhead",
    "RepairPolicy",
    "cheapest_offering",
    "order_by_price",
]

RESOURCE_CPU: Final = "cpu"
RESOURCE_MEMORY: Final = "memory"
RESOURCE_PODS: Final = "pods"
RESOURCE_EPHEMERAL_STORAGE: Final = "ephemeral-storage"
_HUGEPAGES_PREFIX: Final = "hugepages-"


@final
@attrs.frozen(slots=True)
class Offering:
    """One way to buy an instance type: its requirements carry at least the zone and capacity type."""

    requirements: Requirements
    price: float
    available: bool = True
    reservation_capacity: int = 0
    zone: str = attrs.field(init=False)
    capacity_type: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        zone = self.requirements.get(labels.LABEL_ZONE).any_value()
        capacity_type = self.requirements.get(labels.LABEL_CAPACITY_TYPE).any_value()
        if zone is None or capacity_type is None:
            raise ValueError(f"an offering must name a zone and a capacity type, got {self.requirements!r}")
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "capacity_type", capacity_type)

    @classmethod
    def of(cls, zone: str, capacity_type: str, price: float, *, available: bool = True) -> Offering:
        """The common case: an offering in one zone for one capacity type."""
        return cls(
            Requirements(
                [
                    Requirement.in_(labels.LABEL_ZONE, zone),
                    Requirement.in_(labels.LABEL_CAPACITY_TYPE, capacity_type),
                ]
            ),
            price,
            available,
        )

    def is_compatible(self, requirements: Requirements) -> bool:
        """Can this offering satisfy ``requirements`` (undefined well-known keys on either side are fine)?"""
        return requirements.is_compatible(self.requirements, labels.WELL_KNOWN_LABELS)


@final
@attrs.frozen(slots=True)
class Overhead:
    """Resources the node keeps for itself: kubelet/system reservations and the eviction threshold."""

    kube_reserved: Mapping[str, int] = attrs.field(factory=dict)
    system_reserved: Mapping[str, int] = attrs.field(factory=dict)
    eviction_threshold: Mapping[str, int] = attrs.field(factory=dict)

    def total(self) -> dict[str, int]:
        return quantity.add(self.kube_reserved, self.system_reserved, self.eviction_threshold)


@final
@attrs.frozen(slots=True)
class InstanceType:
    """A machine shape: capacity, overhead (so allocatable), requirements (its labels) and offerings.

    ``allocatable`` = capacity − overhead, with hugepages taken off memory, computed once at construction.
    """

    name: str
    requirements: Requirements
    offerings: tuple[Offering, ...]
    capacity: Mapping[str, int]
    overhead: Overhead = attrs.field(factory=Overhead)
    allocatable: Mapping[str, int] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        allocatable = quantity.subtract(self.capacity, self.overhead.total())
        hugepages = sum(
            amount for name, amount in self.capacity.items() if name.startswith(_HUGEPAGES_PREFIX)
        )
        if hugepages and RESOURCE_MEMORY in allocatable:
            allocatable[RESOURCE_MEMORY] -= hugepages
        object.__setattr__(self, "allocatable", {k: max(v, 0) for k, v in allocatable.items()})

    def available_offerings(self) -> tuple[Offering, ...]:
        return tuple(o for o in self.offerings if o.available)

    def compatible_offerings(
        self, requirements: Requirements, *, available_only: bool = True
    ) -> list[Offering]:
        """Offerings (available ones by default) that can satisfy ``requirements``."""
        return [
            o for o in self.offerings if (o.available or not available_only) and o.is_compatible(requirements)
        ]

    def cheapest_price(self, requirements: Requirements) -> float | None:
        """Price of the cheapest available offering compatible with ``requirements``; ``None`` if there is none."""
        best = cheapest_offering(self.offerings, requirements)
        return None if best is None else best.price


def cheapest_offering(offerings: Iterable[Offering], requirements: Requirements) -> Offering | None:
    """The cheapest available offering compatible with ``requirements`` (ties: first in order)."""
    best: Offering | None = None
    for offering in offerings:
        if (
            offering.available
            and (best is None or offering.price < best.price)
            and offering.is_compatible(requirements)
        ):
            best = offering
    return best


def order_by_price(instance_types: Sequence[InstanceType], requirements: Requirements) -> list[InstanceType]:
    """Instance types ascending by their cheapest available compatible offering; those without one go last.
    Ties are broken by name so the order is deterministic."""
    inf = float("inf")

    def key(it: InstanceType) -> tuple[float, str]:
        price = it.cheapest_price(requirements)
        return (inf if price is None else price, it.name)

    return sorted(instance_types, key=key)


DriftReason = str
"""Why a provider considers a NodeClaim drifted (e.g. ``"AMIDrift"``); the empty string or ``None`` is no drift."""


@final
@attrs.frozen(slots=True)
class RepairPolicy:
    """Node condition that, held for ``toleration``, makes the node unhealthy enough to replace."""

    condition_type: str
    condition_status: str
    toleration: timedelta


class InterruptionKind(enum.StrEnum):
    """What the cloud says is about to happen to an instance; the core decides what to do about each."""

    SPOT_INTERRUPTION = "SpotInterruption"
    REBALANCE_RECOMMENDATION = "RebalanceRecommendation"
    SCHEDULED_CHANGE = "ScheduledChange"
    STATE_CHANGE = "StateChange"


@final
@attrs.frozen(slots=True)
class InterruptionEvent:
    """One interruption message from a provider's event source."""

    provider_id: str
    kind: InterruptionKind
    time: float
    """Seconds since the epoch when the cloud emitted the event (for latency metrics)."""
    state: str | None = None
    """For ``STATE_CHANGE``: the new instance state (``stopping``, ``stopped``, ``shutting-down``, ``terminated``)."""
    message_id: str | None = None
    ack: Callable[[], Awaitable[None]] | None = attrs.field(default=None, eq=False, repr=False)
    """Called once the event was acted on or dropped (a queue-backed source deletes the message); idempotent."""
