"""What a provider tells the core about machines it can launch: instance types and their offerings.

Providers build these (the kwok provider from a synthetic catalogue, the AWS provider from
DescribeInstanceTypes and pricing); the scheduling engine filters and orders them; the disruption
simulation prices them. Pure values: no I/O.

An ``InstanceType`` must define every well-known label in its requirements (an empty ``DoesNotExist`` is
fine), so a pod that requires one can be matched or refused without guessing. Each ``Offering`` is one
place and way to buy it (zone × capacity type), with a price and availability.

``to_dict`` / ``from_dict`` give these values a JSON-shaped form that round-trips exactly (quantities as
Kubernetes strings, requirements as node selector requirements), so ``nodesmith simulate`` can keep what a
provider offered in a snapshot file and replay it offline.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final, final

import attrs

from nodesmith import errors
from nodesmith.api import labels, quantity
from nodesmith.api.requirements import Requirement, RequirementError, Requirements

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


@functools.cache
def _placement(zone: str, capacity_type: str) -> Requirements:
    """One zone and one capacity type as requirements, built once per pair and shared by every offering
    there (requirements are immutable): a catalogue lists a few thousand offerings over a handful of pairs."""
    return Requirements(
        [Requirement.in_(labels.LABEL_ZONE, zone), Requirement.in_(labels.LABEL_CAPACITY_TYPE, capacity_type)]
    )


@final
@attrs.frozen(slots=True)
class Offering:
    """One way to buy an instance type: its requirements carry at least the zone and capacity type."""

    requirements: Requirements
    price: float
    available: bool = True
    reservation_capacity: int = 0
    """For a reserved offering: how many more instances its reservation can take now."""
    zone: str = attrs.field(init=False)
    capacity_type: str = attrs.field(init=False)
    reservation_id: str = attrs.field(init=False)
    """For a reserved offering, its reservation (the ``reservation-id`` requirement); else empty."""

    def __attrs_post_init__(self) -> None:
        zone = self.requirements.get(labels.LABEL_ZONE).any_value()
        capacity_type = self.requirements.get(labels.LABEL_CAPACITY_TYPE).any_value()
        if zone is None or capacity_type is None:
            raise ValueError(f"an offering must name a zone and a capacity type, got {self.requirements!r}")
        reservation_id = ""
        if capacity_type == labels.CapacityType.RESERVED:  # one without an id counts as one reservation ""
            reservation_id = self.requirements.get(labels.LABEL_RESERVATION_ID).any_value() or ""
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "capacity_type", capacity_type)
        object.__setattr__(self, "reservation_id", reservation_id)

    @property
    def reserved(self) -> bool:
        return self.capacity_type == labels.CapacityType.RESERVED

    @classmethod
    def of(cls, zone: str, capacity_type: str, price: float, *, available: bool = True) -> Offering:
        """The common case: an offering in one zone for one capacity type."""
        return cls(_placement(zone, capacity_type), price, available)

    @classmethod
    def of_reservation(
        cls, zone: str, reservation_id: str, price: float, remaining: int, *, available: bool = True
    ) -> Offering:
        """A reserved offering: launching it uses one of ``remaining`` slots of ``reservation_id``; with
        none left it is not available (a provider still lists it, so running nodes keep their price)."""
        return cls(
            Requirements(
                [
                    Requirement.in_(labels.LABEL_ZONE, zone),
                    Requirement.in_(labels.LABEL_CAPACITY_TYPE, labels.CapacityType.RESERVED),
                    Requirement.in_(labels.LABEL_RESERVATION_ID, reservation_id),
                ]
            ),
            price,
            available and remaining > 0,
            max(remaining, 0),
        )

    def is_compatible(self, requirements: Requirements) -> bool:
        """Can this offering satisfy ``requirements`` (undefined well-known keys on either side are fine)?

        An offering's own keys are core labels (zone, capacity type), so the core's well-known set is the
        whole answer here, whichever providers are loaded."""
        return requirements.is_compatible(self.requirements, labels.CORE_WELL_KNOWN_LABELS)

    def to_dict(self) -> dict[str, Any]:
        """``{zone, capacityType, price, available, requirements[, reservationCapacity]}``."""
        out: dict[str, Any] = {
            "zone": self.zone,
            "capacityType": self.capacity_type,
            "price": self.price if math.isfinite(self.price) else None,  # unknown: null, valid JSON
            "available": self.available,
            "requirements": self.requirements.to_node_selector(),
        }
        if self.reservation_capacity:
            out["reservationCapacity"] = self.reservation_capacity
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "offering") -> Offering:
        """The inverse of `to_dict`; without ``requirements``, the zone and capacity type make them.
        Raises `errors.ValidationError` naming the bad field."""
        with _field(path):
            if "requirements" in d:
                reqs = Requirements.from_node_selector(d["requirements"])
            else:
                reqs = Requirements(
                    [
                        Requirement.in_(labels.LABEL_ZONE, str(d["zone"])),
                        Requirement.in_(labels.LABEL_CAPACITY_TYPE, str(d["capacityType"])),
                    ]
                )
            return cls(
                reqs,
                _number(d["price"]),
                bool(d.get("available", True)),
                int(d.get("reservationCapacity", 0)),
            )


@final
@attrs.frozen(slots=True)
class Overhead:
    """Resources the node keeps for itself: kubelet/system reservations and the eviction threshold."""

    kube_reserved: Mapping[str, int] = attrs.field(factory=dict)
    system_reserved: Mapping[str, int] = attrs.field(factory=dict)
    eviction_threshold: Mapping[str, int] = attrs.field(factory=dict)

    def total(self) -> dict[str, int]:
        return quantity.add(self.kube_reserved, self.system_reserved, self.eviction_threshold)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The non-empty parts as Kubernetes quantities (``{"kubeReserved": {"cpu": "100m"}}``)."""
        parts = {
            "kubeReserved": self.kube_reserved,
            "systemReserved": self.system_reserved,
            "evictionThreshold": self.eviction_threshold,
        }
        return {name: quantity.format_resources(values) for name, values in parts.items() if values}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, path: str = "overhead") -> Overhead:
        with _field(path):
            d = d or {}
            return cls(
                quantity.parse_resources(d.get("kubeReserved")),
                quantity.parse_resources(d.get("systemReserved")),
                quantity.parse_resources(d.get("evictionThreshold")),
            )


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

    def offering(
        self, zone: str | None, capacity_type: str | None, reservation_id: str | None = None
    ) -> Offering | None:
        """The offering in ``zone`` for ``capacity_type`` (available or not), if there is one: how a running
        machine, which knows its zone and capacity type, finds what it costs. A reserved machine names its
        reservation too when it knows it (two reservations may share a zone)."""
        if zone is None or capacity_type is None:
            return None
        for offering in self.offerings:
            if (
                offering.zone == zone
                and offering.capacity_type == capacity_type
                and (not reservation_id or offering.reservation_id == reservation_id)
            ):
                return offering
        return None

    def to_dict(self) -> dict[str, Any]:
        """``{name, requirements, offerings, capacity, overhead}``; `from_dict` reads it back unchanged."""
        return {
            "name": self.name,
            "requirements": self.requirements.to_node_selector(),
            "offerings": [o.to_dict() for o in self.offerings],
            "capacity": quantity.format_resources(self.capacity),
            "overhead": self.overhead.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "instanceType") -> InstanceType:
        """The inverse of `to_dict`. Raises `errors.ValidationError` naming the bad field."""
        with _field(path):
            if not isinstance(d, Mapping):
                raise TypeError(f"expected an object, got {type(d).__name__}")
            name = str(d["name"])
            offerings = d.get("offerings") or ()
            if not isinstance(offerings, Sequence) or isinstance(offerings, str):
                raise TypeError("offerings must be a list")
            return cls(
                name,
                Requirements.from_node_selector(d.get("requirements") or ()),
                tuple(Offering.from_dict(o, f"{path}.offerings[{i}]") for i, o in enumerate(offerings)),
                quantity.parse_resources(d.get("capacity")),
                Overhead.from_dict(d.get("overhead"), f"{path}.overhead"),
            )


@contextlib.contextmanager
def _field(path: str) -> Iterator[None]:
    """Turn what a malformed document raises into one `errors.ValidationError` naming ``path``."""
    try:
        yield
    except errors.ValidationError:
        raise
    except KeyError as err:
        raise errors.ValidationError(path, f"missing field {err.args[0]!r}") from err
    except (TypeError, ValueError, AttributeError, RequirementError) as err:
        raise errors.ValidationError(path, str(err)) from err


def _number(value: Any) -> float:
    if value is None:  # an unknown price (written by `Offering.to_dict`): never the cheapest
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"price must be a number, got {value!r}")
    return float(value)


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
    CAPACITY_RESERVATION_INTERRUPTION = "CapacityReservationInterruption"
    """The capacity reservation the instance runs in is reclaiming it (handled like a spot warning)."""


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
