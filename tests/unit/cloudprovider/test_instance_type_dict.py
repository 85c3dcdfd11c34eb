"""`InstanceType.to_dict` / `from_dict`: what a snapshot file keeps of a provider's catalogue comes back
unchanged, and a malformed entry is refused naming its field."""

from __future__ import annotations

import json
import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering, Overhead
from nodesmith.testing import factories

KEYS = ("example.com/a", "example.com/b", labels.LABEL_ARCH)
VALUES = ("x", "y", "1", "7")


@st.composite
def requirement(draw: st.DrawFn) -> Requirement:
    key = draw(st.sampled_from(KEYS))
    op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]))
    if op in ("Gt", "Lt"):
        return Requirement.new(key, op, [str(draw(st.integers(0, 20)))])
    values = draw(st.lists(st.sampled_from(VALUES), max_size=3)) if op in ("In", "NotIn") else []
    min_values = draw(st.none() | st.integers(1, 3)) if op == "In" else None
    return Requirement.new(key, op, values, min_values=min_values)


@st.composite
def offering(draw: st.DrawFn) -> Offering:
    reqs = Requirements(
        [
            Requirement.in_(labels.LABEL_ZONE, draw(st.sampled_from(["z1", "z2"]))),
            Requirement.in_(
                labels.LABEL_CAPACITY_TYPE, draw(st.sampled_from(["spot", "on-demand", "reserved"]))
            ),
            *draw(st.lists(requirement(), max_size=2)),
        ]
    )
    price = draw(st.floats(0, 100, allow_nan=False, allow_infinity=False))
    return Offering(reqs, price, draw(st.booleans()), draw(st.integers(0, 5)))


resources = st.dictionaries(
    st.sampled_from(["cpu", "memory", "pods", "nvidia.com/gpu"]), st.integers(0, 2**50)
)


@st.composite
def instance_type(draw: st.DrawFn) -> InstanceType:
    return InstanceType(
        draw(st.sampled_from(["a", "b.large"])),
        Requirements(draw(st.lists(requirement(), max_size=4))),
        tuple(draw(st.lists(offering(), max_size=3))),
        draw(resources),
        Overhead(draw(resources), draw(resources), draw(resources)),
    )


@given(instance_type())
def test_any_instance_type_survives_a_json_round_trip(it: InstanceType) -> None:
    back = InstanceType.from_dict(json.loads(json.dumps(it.to_dict())))
    assert back == it
    assert back.allocatable == it.allocatable


def test_factory_catalogue_round_trips_with_offering_fields_named() -> None:
    it = factories.instance_type("m.large", cpu=2, memory="8Gi", unavailable=[("test-zone-1", "spot")])
    d = it.to_dict()
    assert d["capacity"]["memory"] == "8Gi"
    assert d["overhead"] == {"kubeReserved": {"cpu": "100m", "memory": "10Mi"}}
    first = d["offerings"][0]
    assert (first["zone"], first["capacityType"], first["available"]) == ("test-zone-1", "spot", False)
    assert InstanceType.from_dict(d) == it


def test_an_offering_without_requirements_is_made_from_zone_and_capacity_type() -> None:
    offering = Offering.from_dict({"zone": "z1", "capacityType": "spot", "price": "0.5"})
    assert offering == Offering.of("z1", "spot", 0.5)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"offerings": []}, "instanceType"),
        ({"name": "a", "capacity": {"cpu": "lots"}}, "instanceType"),
        ({"name": "a", "offerings": [{"zone": "z1", "capacityType": "spot"}]}, "instanceType.offerings[0]"),
        ({"name": "a", "offerings": [{"zone": "z1", "capacityType": "spot", "price": True}]}, "offerings[0]"),
        ({"name": "a", "requirements": [{"key": "k", "operator": "Sometimes"}]}, "instanceType"),
    ],
)
def test_malformed_entries_name_the_field(entry: dict[str, object], field: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        InstanceType.from_dict(entry)
    assert field in caught.value.field


def test_an_unknown_price_is_written_as_null_and_read_back_as_never_cheapest() -> None:
    it = factories.instance_type("x", cpu=2, memory="4Gi", zones=("z1",), capacity_types=("spot",), price=1.0)
    unpriced = attrs.evolve(it, offerings=tuple(attrs.evolve(o, price=math.inf) for o in it.offerings))
    d = unpriced.to_dict()
    assert [o["price"] for o in d["offerings"]] == [None]
    json.dumps(d, allow_nan=False)  # valid JSON
    assert InstanceType.from_dict(d) == unpriced
