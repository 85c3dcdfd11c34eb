"""The kwok provider's reserved offerings: what a KWOKNodeClass's ``capacityReservations`` add to the
catalogue, and what the live Nodes leave of each reservation."""

from __future__ import annotations

import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith_kwok import catalogue, reservations
from nodesmith_kwok.nodeclass import KWOKNodeClass, Reservation

TYPE = "c-4x-amd64-linux"


def _node_class(spec: dict[str, object]) -> KWOKNodeClass:
    return KWOKNodeClass.from_dict({"metadata": {"name": "nc"}, "spec": spec})


def test_node_class_reads_capacity_reservations() -> None:
    parsed = _node_class(
        {"capacityReservations": [{"id": "cr-1", "instanceType": TYPE, "zone": "test-zone-a", "count": 2}]}
    )
    assert parsed.reservations == (Reservation("cr-1", TYPE, "test-zone-a", 2),)


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "cr-1", "instanceType": TYPE, "zone": "test-zone-a"},  # no count
        {"id": "cr-1", "instanceType": TYPE, "zone": "test-zone-a", "count": -1},
    ],
)
def test_node_class_refuses_a_reservation_without_a_count(bad: dict[str, object]) -> None:
    with pytest.raises(errors.ValidationError):
        _node_class({"capacityReservations": [bad]})


def test_a_reservation_becomes_a_cheapest_reserved_offering_with_what_is_left() -> None:
    base = catalogue.build_catalogue()
    wanted = [Reservation("cr-1", TYPE, "test-zone-a", 3), Reservation("cr-2", TYPE, "test-zone-e", 1)]
    out = {it.name: it for it in reservations.with_reservations(base, wanted, {"cr-1": 1})}
    it = out[TYPE]
    reserved = {o.reservation_id: o for o in it.offerings if o.reserved}
    assert reserved["cr-1"].reservation_capacity == 2
    assert reserved["cr-1"].available
    assert reserved["cr-1"].zone == "test-zone-a"
    assert reserved["cr-1"].price < min(o.price for o in it.offerings if not o.reserved)
    assert it.requirements.get(labels.LABEL_CAPACITY_TYPE).has("reserved")
    assert it.requirements.get(labels.LABEL_ZONE).has("test-zone-e"), "a reservation's zone is the type's"
    others = [t for t in out.values() if t.name != TYPE]
    assert not any(o.reserved for t in others for o in t.offerings)


def test_a_used_up_reservation_is_listed_but_not_available() -> None:
    base = catalogue.build_catalogue()
    (it,) = [
        t
        for t in reservations.with_reservations(
            base, [Reservation("cr-1", TYPE, "test-zone-a", 2)], {"cr-1": 2}
        )
        if t.name == TYPE
    ]
    (reserved,) = [o for o in it.offerings if o.reserved]
    assert not reserved.available
    assert reserved.reservation_capacity == 0
