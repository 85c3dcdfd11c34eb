"""Reserved offerings of the kwok catalogue from a KWOKNodeClass's ``capacityReservations``.

Each reservation becomes one ``reserved`` offering of its instance type in its zone, with ``count`` minus
the live Nodes already launched into it left (`Offering.of_reservation`; none left: listed but not
available, so a running reserved node still finds its price and its offering). Capacity already paid for
is priced at a thousandth of the type's cheapest on-demand price, so it is always the cheapest way to
launch, as a reservation is to the AWS provider. The type's capacity-type and zone requirements grow to
cover the new offering. Pure: the provider counts the Nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement
from nodesmith.cloudprovider.types import InstanceType, Offering
from nodesmith_kwok.nodeclass import Reservation

__all__ = ["RESERVED_PRICE_FACTOR", "with_reservations"]

RESERVED_PRICE_FACTOR: Final = 0.001


def with_reservations(
    instance_types: Iterable[InstanceType], reservations: Sequence[Reservation], in_use: Mapping[str, int]
) -> list[InstanceType]:
    """``instance_types`` with a reserved offering added per reservation naming them; ``in_use``: live
    Nodes per reservation id. A reservation naming an unknown instance type adds nothing."""
    by_type: dict[str, list[Reservation]] = {}
    for reservation in reservations:
        by_type.setdefault(reservation.instance_type, []).append(reservation)
    out = []
    for it in instance_types:
        mine = by_type.get(it.name)
        out.append(it if not mine else _add(it, mine, in_use))
    return out


def _add(it: InstanceType, reservations: Sequence[Reservation], in_use: Mapping[str, int]) -> InstanceType:
    on_demand = [o.price for o in it.offerings if o.capacity_type == labels.CapacityType.ON_DEMAND]
    price = min(on_demand or [o.price for o in it.offerings] or [0.0]) * RESERVED_PRICE_FACTOR
    added = tuple(
        Offering.of_reservation(r.zone, r.id, price, r.count - in_use.get(r.id, 0)) for r in reservations
    )
    capacity_types = set(it.requirements.get(labels.LABEL_CAPACITY_TYPE).values) | {
        labels.CapacityType.RESERVED
    }
    zones = set(it.requirements.get(labels.LABEL_ZONE).values) | {o.zone for o in added}
    requirements = it.requirements.without(labels.LABEL_CAPACITY_TYPE, labels.LABEL_ZONE).add(
        Requirement.in_(labels.LABEL_CAPACITY_TYPE, *sorted(capacity_types)),
        Requirement.in_(labels.LABEL_ZONE, *sorted(zones)),
    )
    return InstanceType(it.name, requirements, (*it.offerings, *added), it.capacity, it.overhead)
