"""The kwok provider's synthetic catalogue and catalogue files."""

from __future__ import annotations

import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import order_by_price
from nodesmith_kwok import catalogue


def test_builtin_catalogue_has_karpenters_shape() -> None:
    types = catalogue.build_catalogue()
    assert len(types) == 144
    by_name = {it.name: it for it in types}
    small = by_name["c-1x-amd64-linux"]
    assert small.capacity["cpu"] == 1000
    assert small.capacity["memory"] == 2 * 2**30 * 1000
    assert small.capacity["pods"] == 16 * 1000
    assert small.allocatable["cpu"] == 900  # 100m kube-reserved
    assert len(small.offerings) == 8
    on_demand = next(o for o in small.offerings if o.capacity_type == "on-demand")
    spot = next(o for o in small.offerings if o.capacity_type == "spot")
    assert on_demand.price == pytest.approx(0.025 + 0.001 * (2 * 2**30 / 1e9))
    assert spot.price == pytest.approx(0.7 * on_demand.price)
    assert by_name["m-256x-arm64-windows"].capacity["pods"] == 1024 * 1000


def test_every_instance_type_defines_the_well_known_labels() -> None:
    core = {
        labels.LABEL_INSTANCE_TYPE,
        labels.LABEL_ARCH,
        labels.LABEL_OS,
        labels.LABEL_ZONE,
        labels.LABEL_CAPACITY_TYPE,
    }
    for it in catalogue.build_catalogue():
        assert core <= set(it.requirements)


def test_price_order_puts_spot_cheapest_small_types_first_for_a_linux_amd64_pool() -> None:
    reqs = Requirements(
        [Requirement.in_(labels.LABEL_ARCH, "amd64"), Requirement.in_(labels.LABEL_OS, "linux")]
    )
    compatible = [it for it in catalogue.build_catalogue() if it.requirements.intersects(reqs)]
    ordered = order_by_price(compatible, reqs)
    assert ordered[0].name == "c-1x-amd64-linux"
    assert ordered[0].cheapest_price(reqs) == pytest.approx(0.7 * catalogue.price_of(1, 2 * 2**30))


def test_catalogue_file_entries_are_parsed_with_offerings() -> None:
    types = catalogue.parse_catalogue(
        [
            {
                "name": "big",
                "cpu": "8",
                "memory": "32Gi",
                "pods": 58,
                "offerings": [{"zone": "z1", "capacityType": "spot", "price": 0.1, "available": False}],
            }
        ]
    )
    (big,) = types
    assert big.capacity["pods"] == 58000
    assert not big.offerings[0].available
    assert big.requirements.get(labels.LABEL_ZONE).values == {"z1"}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"cpu": "1", "memory": "1Gi", "offerings": []}], r"catalogue\[0\]: missing field 'name'"),
        (
            [{"name": "x", "cpu": "lots", "memory": "1Gi", "offerings": [{"zone": "z", "price": 1}]}],
            r"catalogue\[0\]: .*not a quantity",
        ),
        (
            [{"name": "x", "cpu": "1", "memory": "1Gi", "offerings": []}],
            r"catalogue\[0\]\.offerings: needs at least one",
        ),
        ({"name": "x"}, "must be a list"),
    ],
)
def test_bad_catalogue_files_name_the_entry(entries: object, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        catalogue.parse_catalogue(entries)  # type: ignore[arg-type]  # malformed on purpose
