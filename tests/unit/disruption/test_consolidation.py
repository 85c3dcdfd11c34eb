"""consolidation.compute against scripted simulations: the replace/delete rules, price filters,
spot-to-spot and the Balanced score."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import balanced, consolidation
from nodesmith.disruption.candidates import Candidate
from nodesmith.disruption.commands import Command, Method, Rejection, RejectionReason
from nodesmith.disruption.simulate import Simulate, SimulatedClaim, SimulationResult
from nodesmith.testing import factories

from .factories import Cluster

M = Method.SINGLE_NODE


def scripted(result: SimulationResult) -> Simulate:
    def simulate(candidates: Sequence[Candidate]) -> SimulationResult:
        return result

    return simulate


def claim(types: Sequence[InstanceType], *capacity: str) -> SimulatedClaim:
    reqs = Requirements([Requirement.in_(labels.LABEL_CAPACITY_TYPE, *(capacity or ("spot", "on-demand")))])
    return SimulatedClaim("default", reqs, tuple(types), 1, object())


def candidate(
    capacity_type: str = "on-demand", instance_type: str = "large", policy: str = "WhenEmptyOrUnderutilized"
) -> Candidate:
    cluster = Cluster()
    cluster.pool(policy=policy)
    cluster.machine("a", instance_type, capacity_type=capacity_type)
    cluster.pod("a")
    (found,), _ = cluster.candidates()
    return found


CHEAP = [factories.instance_type(f"cheap-{i}", cpu=1, memory="2Gi", price=0.01 * (i + 1)) for i in range(20)]


def test_failures_and_one_to_many_are_refused() -> None:
    c = candidate()
    failed = consolidation.compute([c], scripted(SimulationResult((), {"default/p": "no room"})), M)
    assert isinstance(failed, Rejection)
    assert failed.reason is RejectionReason.WOULD_NOT_FIT
    assert "default/p: no room" in failed.message
    many = consolidation.compute([c], scripted(SimulationResult((claim(CHEAP), claim(CHEAP)))), M)
    assert isinstance(many, Rejection)
    assert many.reason is RejectionReason.MULTIPLE_REPLACEMENTS
    assert many.message == "can't remove without creating 2 nodes"


def test_on_demand_to_spot_pins_the_replacement_to_spot() -> None:
    command = consolidation.compute([candidate()], scripted(SimulationResult((claim(CHEAP),))), M)
    assert isinstance(command, Command)
    requirement = command.replacements[0].requirements.get(labels.LABEL_CAPACITY_TYPE)
    assert requirement.has("spot")
    assert not requirement.has("on-demand")


@pytest.mark.parametrize(
    ("gate", "options", "reason"),
    [
        (False, CHEAP, RejectionReason.SPOT_TO_SPOT),
        (True, CHEAP[:10], RejectionReason.SPOT_TO_SPOT),  # fewer than 15 cheaper options
        (True, CHEAP, None),
    ],
)
def test_spot_to_spot(gate: bool, options: list[InstanceType], reason: RejectionReason | None) -> None:
    verdict = consolidation.compute(
        [candidate("spot")],
        scripted(SimulationResult((claim(options, "spot"),))),
        M,
        consolidation.Options(spot_to_spot=gate),
    )
    if reason is None:
        assert isinstance(verdict, Command)
        assert len(verdict.replacements[0].instance_types) == consolidation.MIN_SPOT_TO_SPOT_OPTIONS
    else:
        assert isinstance(verdict, Rejection)
        assert verdict.reason is reason


def test_balanced_pool_refuses_a_move_that_saves_too_little() -> None:
    c = candidate(policy="Balanced")
    pricier = [factories.instance_type("almost", cpu=8, memory="16Gi", price=0.39)]
    totals = {"default": balanced.PoolTotals(cost=4.0, disruption_cost=10.0)}
    verdict = consolidation.compute(
        [c], scripted(SimulationResult((claim(pricier, "on-demand"),))), M, totals=totals
    )
    assert isinstance(verdict, Rejection)
    assert verdict.reason is RejectionReason.BALANCED_SCORE
    delete = consolidation.compute([c], scripted(SimulationResult(())), M, totals=totals)
    assert isinstance(delete, Command)
    assert delete.score is not None
    assert delete.score >= 0.5


def test_worst_case_price_decides_cheaper() -> None:
    mixed = factories.instance_type("mixed", cpu=2, memory="4Gi", price=0.1)
    reqs = Requirements([Requirement.in_(labels.LABEL_CAPACITY_TYPE, "spot", "on-demand")])
    assert consolidation.worst_launch_price(mixed, reqs) == 0.1
    assert consolidation.filter_cheaper([mixed], reqs, 0.1) == []
    assert consolidation.filter_cheaper([mixed], reqs, 0.11) == [mixed]


# disruption/consolidation_test.go, "Reserved Capacity": reserved offerings are priced as capacity already
# paid for, so consolidation moves on-demand onto a reservation and never off one onto dearer capacity.
RESERVED_TYPES = [
    factories.instance_type(
        "res-small", cpu=1, memory="2Gi", price=0.05, reservations=[("cr-1", "test-zone-1", 2)]
    )
]


def _reserved_claim() -> SimulatedClaim:
    reqs = Requirements(
        [
            Requirement.in_(labels.LABEL_CAPACITY_TYPE, "reserved"),
            Requirement.in_(labels.LABEL_RESERVATION_ID, "cr-1"),
        ]
    )
    return SimulatedClaim("default", reqs, tuple(RESERVED_TYPES), 1, object())


def test_on_demand_node_is_replaced_by_reserved_capacity_and_stays_pinned_to_it() -> None:
    command = consolidation.compute([candidate()], scripted(SimulationResult((_reserved_claim(),))), M)
    assert isinstance(command, Command)
    (replacement,) = command.replacements
    assert replacement.requirements.get(labels.LABEL_CAPACITY_TYPE).values == frozenset({"reserved"})
    assert replacement.requirements.get(labels.LABEL_RESERVATION_ID).values == frozenset({"cr-1"})
    assert replacement.cheapest_price() == pytest.approx(0.05 / 1000)


def test_reserved_node_is_not_replaced_by_dearer_on_demand_or_spot() -> None:
    reserved = attrs.evolve(candidate("reserved"), capacity_type="reserved", price=0.0002)
    verdict = consolidation.compute([reserved], scripted(SimulationResult((claim(CHEAP),))), M)
    assert isinstance(verdict, Rejection)
    assert verdict.reason is RejectionReason.NOT_CHEAPER


def test_worst_launch_price_is_the_reserved_one_when_a_reservation_is_compatible() -> None:
    (it,) = RESERVED_TYPES
    assert consolidation.worst_launch_price(it, Requirements()) == pytest.approx(0.05 / 1000)
    on_demand_only = Requirements([Requirement.in_(labels.LABEL_CAPACITY_TYPE, "on-demand")])
    assert consolidation.worst_launch_price(it, on_demand_only) == pytest.approx(0.05)
