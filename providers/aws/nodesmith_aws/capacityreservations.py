"""EC2 capacity reservations (ODCRs): selector terms → DescribeCapacityReservations → status → reserved offerings.

An EC2NodeClass's ``capacityReservationSelectorTerms`` (each: ``id``, or ``tags`` with an optional
``ownerID``; fields ANDed, terms ORed) select reservations. The resolver asks DescribeCapacityReservations
per term (:func:`request`) and keeps the active ones in ``status.capacityReservations``
(:func:`from_api`). The instance-type provider turns each into one ``reserved`` offering of its instance
type in its zone (:func:`offerings`) with the reservation's available instance count as what is left,
priced as capacity already paid for (a thousandth of the on-demand price, so the scheduler always
prefers it); the core scheduler counts those slots across one solve and pins NodeClaims to a reservation.
A launch into a reservation targets it by id (:func:`target`), as Karpenter's launch templates do.

Only ``active`` reservations with ``instanceMatchCriteria`` ``targeted`` or ``open`` are kept; an expired,
cancelled or failed one leaves the status on the next resolution, its offering goes, and nodes already in
it keep running as on-demand (the core's drift rule treats a reserved node with an on-demand offering as
not drifted); `nodesmith_aws.reservationexpiry` relabels them so. Between two reads the count offered is
adjusted for the provider's own launches and terminations (`nodesmith_aws.reservationusage`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.cloudprovider.types import Offering

__all__ = [
    "RESERVED_PRICE_FACTOR",
    "ResolvedCapacityReservation",
    "from_api",
    "offerings",
    "request",
    "target",
]

RESERVED_PRICE_FACTOR: Final = 0.001
_ACTIVE: Final = "active"


@final
@attrs.frozen(slots=True)
class ResolvedCapacityReservation:
    """One selected reservation as ``status.capacityReservations`` records it."""

    id: str
    instance_type: str
    zone: str
    available_count: int
    owner_id: str = ""
    instance_match_criteria: str = "targeted"
    end_time: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "instanceType": self.instance_type,
            "availabilityZone": self.zone,
            "availableInstanceCount": self.available_count,
            "instanceMatchCriteria": self.instance_match_criteria,
        }
        if self.owner_id:
            out["ownerID"] = self.owner_id
        if self.end_time:
            out["endTime"] = self.end_time
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResolvedCapacityReservation:
        return cls(
            str(d["id"]),
            str(d["instanceType"]),
            str(d["availabilityZone"]),
            int(d.get("availableInstanceCount", 0)),
            str(d.get("ownerID", "")),
            str(d.get("instanceMatchCriteria", "targeted")),
            d.get("endTime"),
        )


def request(term: Mapping[str, Any]) -> dict[str, Any]:
    """DescribeCapacityReservations arguments for one selector term (``tag:k`` / ``tag-key`` filters as
    the other selectors; ``*`` matches any value)."""
    if "id" in term:
        return {"CapacityReservationIds": [str(term["id"])]}
    filters: list[dict[str, Any]] = [
        {"Name": "tag-key", "Values": [k]} if v == "*" else {"Name": f"tag:{k}", "Values": [v]}
        for k, v in sorted((term.get("tags") or {}).items())
    ]
    if "ownerID" in term:
        filters.append({"Name": "owner-id", "Values": [str(term["ownerID"])]})
    filters.append({"Name": "state", "Values": [_ACTIVE]})
    return {"Filters": filters}


def from_api(answers: Iterable[Mapping[str, Any]]) -> list[ResolvedCapacityReservation]:
    """The active reservations among DescribeCapacityReservations' ``CapacityReservations`` entries, once
    each, by id."""
    found: dict[str, ResolvedCapacityReservation] = {}
    for raw in answers:
        if raw.get("State") != _ACTIVE:
            continue
        end = raw.get("EndDate")
        if isinstance(end, dt.datetime):
            end = end.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        found[str(raw["CapacityReservationId"])] = ResolvedCapacityReservation(
            id=str(raw["CapacityReservationId"]),
            instance_type=str(raw["InstanceType"]),
            zone=str(raw["AvailabilityZone"]),
            available_count=int(raw.get("AvailableInstanceCount", 0)),
            owner_id=str(raw.get("OwnerId", "")),
            instance_match_criteria=str(raw.get("InstanceMatchCriteria", "targeted")),
            end_time=str(end) if end else None,
        )
    return [found[k] for k in sorted(found)]


def offerings(
    instance_type: str,
    zones: Iterable[str],
    reservations: Sequence[ResolvedCapacityReservation],
    on_demand_price: float | None,
    *,
    usable: bool = True,
) -> list[Offering]:
    """The reserved offerings of ``instance_type``: one per reservation of that type in one of ``zones``
    (the NodeClass's subnet zones). ``usable`` False (no AMI for the type, say) lists them unavailable."""
    allowed = set(zones)
    price = (on_demand_price or 0.0) * RESERVED_PRICE_FACTOR
    return [
        Offering.of_reservation(r.zone, r.id, price, r.available_count, available=usable)
        for r in reservations
        if r.instance_type == instance_type and r.zone in allowed
    ]


def target(reservation_id: str) -> dict[str, Any]:
    """The launch template's ``CapacityReservationSpecification`` that launches into ``reservation_id``."""
    return {"CapacityReservationTarget": {"CapacityReservationId": reservation_id}}
