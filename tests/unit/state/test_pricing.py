"""What machines cost: per NodePool, unpriced nodes, offering prices (`nodesmith.state.pricing`)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from nodesmith.kube import resources
from nodesmith.state import ClusterState, pricing
from nodesmith.state.snapshot import Snapshot
from nodesmith.testing import factories, manifests

ZONES = ("z1", "z2")
SMALL = factories.instance_type("small", cpu=2, memory="4Gi", zones=ZONES, price=0.1)
LARGE = factories.instance_type("large", cpu=8, memory="32Gi", zones=ZONES, price=0.4)
SPOT_SMALL = factories.instance_type(
    "small", cpu=2, memory="4Gi", zones=ZONES, capacity_types=("spot",), price=0.03
)


def cluster(
    pools: list[str],
    machines: Sequence[tuple[str, str, str, str, str]] = (),
    *,
    unlaunched: Sequence[tuple[str, str]] = (),
) -> Snapshot:
    """NodePools by name; machines as (name, nodepool, instance type, zone, capacity type); NodeClaims
    launched but without a Node as (name, nodepool)."""
    state = ClusterState(clock=lambda: dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    for pool in pools:
        state.on_upsert(resources.NODEPOOLS, manifests.nodepool_manifest(pool))
    for name, pool, instance_type, zone, capacity_type in machines:
        node, claim = manifests.machine(
            name,
            node_labels=manifests.machine_labels(
                name, instance_type=instance_type, zone=zone, nodepool=pool, capacity_type=capacity_type
            ),
            allocatable={"cpu": "2", "memory": "4Gi", "pods": "110"},
        )
        state.on_upsert(resources.NODECLAIMS, claim)
        state.on_upsert(resources.NODES, node)
    for name, pool in unlaunched:
        _, claim = manifests.machine(
            name,
            node_labels=manifests.machine_labels(name, instance_type="large", zone="z1", nodepool=pool),
            allocatable={"cpu": "8", "memory": "32Gi", "pods": "110"},
        )
        state.on_upsert(resources.NODECLAIMS, claim)
    return state.snapshot()


def test_a_nodepool_costs_the_price_of_its_nodes_offerings() -> None:
    snap = cluster(
        ["a"],
        [("n1", "a", "small", "z1", "on-demand"), ("n2", "a", "large", "z2", "on-demand")],
    )
    costs = pricing.costs(snap, {"a": [SMALL, LARGE]})
    assert costs.nodepools == {"a": 0.5}
    assert costs.unpriced == {"a": 0}
    assert costs.total == 0.5


def test_two_nodepools_are_priced_separately_with_their_own_instance_types() -> None:
    snap = cluster(
        ["a", "b"],
        [("n1", "a", "small", "z1", "on-demand"), ("n2", "b", "small", "z1", "spot")],
    )
    costs = pricing.costs(snap, {"a": [SMALL, LARGE], "b": [SPOT_SMALL]})
    assert costs.nodepools == {"a": 0.1, "b": 0.03}
    assert costs.total == 0.1 + 0.03


def test_a_node_whose_offering_is_unknown_is_counted_unpriced_not_free() -> None:
    snap = cluster(
        ["a"],
        [
            ("priced", "a", "small", "z1", "on-demand"),
            ("unknown-type", "a", "huge", "z1", "on-demand"),
            ("unknown-zone", "a", "small", "z9", "on-demand"),
            ("unknown-capacity-type", "a", "small", "z1", "reserved"),
        ],
    )
    costs = pricing.costs(snap, {"a": [SMALL]})
    assert costs.nodepools == {"a": 0.1}
    assert costs.unpriced == {"a": 3}


def test_an_offering_without_a_finite_price_leaves_its_nodes_unpriced_and_is_not_exported() -> None:
    no_price = factories.instance_type("small", cpu=2, memory="4Gi", zones=ZONES, price=math.inf)
    snap = cluster(["a"], [("n1", "a", "small", "z1", "on-demand")])
    costs = pricing.costs(snap, {"a": [no_price]})
    assert costs.nodepools == {"a": 0.0}
    assert costs.unpriced == {"a": 1}
    assert costs.offerings == {}


def test_a_nodepool_without_nodes_costs_zero_and_a_gone_one_is_absent() -> None:
    snap = cluster(["a", "empty"], [("n1", "a", "small", "z1", "on-demand")])
    costs = pricing.costs(snap, {"a": [SMALL], "empty": [SMALL]})
    assert costs.nodepools == {"a": 0.1, "empty": 0.0}
    assert costs.unpriced == {"a": 0, "empty": 0}
    assert "gone" not in pricing.costs(cluster(["a"]), {"a": [SMALL]}).nodepools


def test_only_nodeclaims_with_a_node_are_billed() -> None:
    snap = cluster(["a"], [("n1", "a", "small", "z1", "on-demand")], unlaunched=[("in-flight", "a")])
    assert pricing.costs(snap, {"a": [SMALL, LARGE]}).nodepools == {"a": 0.1}


def test_nodes_of_a_pool_without_instance_types_are_priced_by_another_pools_type_of_that_name() -> None:
    # "b"'s NodeClass is not ready (no instance types), and NodePool "gone" was deleted under its node
    snap = cluster(
        ["a", "b"],
        [("n1", "b", "small", "z1", "on-demand"), ("n2", "gone", "large", "z1", "on-demand")],
    )
    costs = pricing.costs(snap, {"a": [SMALL, LARGE]})
    assert costs.nodepools == {"a": 0.0, "b": 0.1, "gone": 0.4}


def test_a_node_is_priced_by_its_own_pools_types_first() -> None:
    overlaid = factories.instance_type("small", cpu=2, memory="4Gi", zones=ZONES, price=0.07)
    snap = cluster(["a", "b"], [("n1", "b", "small", "z1", "on-demand")])
    types = {"a": [SMALL], "b": [overlaid]}
    assert pricing.costs(snap, types).nodepools["b"] == 0.07
    (node,) = snap.nodes
    assert pricing.node_price(node, types) == 0.07
    assert pricing.node_price(node, {"a": [SMALL]}) == 0.1
    assert pricing.node_price(node, {}) is None


def test_offerings_are_deduplicated_across_pools_at_the_lowest_price() -> None:
    overlaid = factories.instance_type("small", cpu=2, memory="4Gi", zones=("z1",), price=0.07)
    prices = pricing.offering_prices({"a": [SMALL, LARGE], "b": [overlaid, SPOT_SMALL]})
    assert prices == {
        ("small", "on-demand", "z1"): 0.07,
        ("small", "on-demand", "z2"): 0.1,
        ("small", "spot", "z1"): 0.03,
        ("small", "spot", "z2"): 0.03,
        ("large", "on-demand", "z1"): 0.4,
        ("large", "on-demand", "z2"): 0.4,
        ("large", "spot", "z1"): 0.4,
        ("large", "spot", "z2"): 0.4,
    }


def test_unavailable_offerings_still_have_a_price_estimate() -> None:
    down = factories.instance_type(
        "small", cpu=2, memory="4Gi", zones=("z1",), price=0.1, unavailable=[("z1", "spot")]
    )
    assert pricing.offering_prices({"a": [down]})[("small", "spot", "z1")] == 0.1
