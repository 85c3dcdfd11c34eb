"""Reserved capacity in the solve: reserved offerings are preferred, each reservation's remaining count holds
across one solve, a NodeClaim that takes a reservation is pinned to it, Strict (provisioning) versus
Fallback (disruption simulation) when a reservation is used up.

The specification is Karpenter's scheduling suite, "Reserved Capacity" (pkg/controllers/provisioning/
scheduling/suite_test.go and reservationmanager.go): the reservation manager counts per placeholder
hostname, strict mode returns a reserved-offering error instead of falling back, a pod so refused is not
relaxed and no lower-weight NodePool is tried.
"""

from __future__ import annotations

from typing import Any

from nodesmith import scheduling
from nodesmith.api import labels
from nodesmith.scheduling import reservations
from nodesmith.testing import factories

from .conftest import CAPACITY_TYPE, HOSTNAME

RESERVATION_ID = labels.LABEL_RESERVATION_ID
ONE_PER_NODE = {"cpu": "3"}  # the 4-vCPU types below hold one such pod each


def _types(count: int = 1, *, larger: bool = True) -> list[Any]:
    """A reserved 4-vCPU type (reservation ``cr-1`` in test-zone-1 with ``count`` slots left), and unless
    not ``larger`` an 8-vCPU type with none."""
    its = [
        factories.instance_type("m-4", cpu=4, memory="16Gi", reservations=[("cr-1", "test-zone-1", count)])
    ]
    if larger:
        its.append(factories.instance_type("m-8", cpu=8, memory="32Gi"))
    return its


def _solve(
    pods: list[dict[str, Any]],
    templates: list[scheduling.NodeClaimTemplate],
    mode: reservations.Mode = "Strict",
) -> scheduling.Results:
    return scheduling.solve(scheduling.SchedulingInput(pods=pods, templates=templates), reserved_mode=mode)


def _values(claim: scheduling.NewNodeClaim, key: str) -> set[str]:
    requirement = claim.requirements.get(key)
    assert not requirement.complement, f"{key} is not pinned: {requirement}"
    return set(requirement.values)


def _reserved(result: scheduling.Results) -> list[scheduling.NewNodeClaim]:
    return [c for c in result.new_nodeclaims if c.labels.get(CAPACITY_TYPE) == labels.CapacityType.RESERVED]


def test_reserved_offering_is_preferred_and_the_nodeclaim_is_pinned_to_it() -> None:
    result = _solve([factories.pod(cpu="3")], [factories.template(instance_types=_types())])
    (claim,) = result.new_nodeclaims
    assert _values(claim, CAPACITY_TYPE) == {"reserved"}
    assert _values(claim, RESERVATION_ID) == {"cr-1"}
    assert claim.labels[RESERVATION_ID] == "cr-1"
    assert [it.name for it in claim.instance_types] == ["m-4"], "only types holding the reservation"
    assert claim.capacity_types() == ("reserved",)


def test_a_solve_never_plans_more_nodeclaims_into_a_reservation_than_it_has_slots() -> None:
    pods = factories.pods(4, cpu="3")
    result = _solve(pods, [factories.template(instance_types=_types(count=2))])
    assert len(_reserved(result)) == 2
    # Strict: the other two wait for the next solve instead of landing on on-demand or spot now.
    assert len(result.new_nodeclaims) == 2
    assert len(result.pod_errors) == 2
    for error in result.pod_errors.values():
        assert [r.constraint for r in error.reasons] == [scheduling.Constraint.RESERVED_OFFERING]


def test_fallback_mode_plans_the_rest_on_other_capacity() -> None:
    pods = factories.pods(4, cpu="3")
    result = _solve(pods, [factories.template(instance_types=_types(count=2, larger=False))], mode="Fallback")
    assert result.pod_errors == {}
    assert len(_reserved(result)) == 2
    others = [c for c in result.new_nodeclaims if c not in _reserved(result)]
    assert others, "the pods beyond the reservation still get NodeClaims"
    for claim in others:
        assert "reserved" not in claim.capacity_types()
        assert RESERVATION_ID not in claim.labels


def test_used_up_reservation_is_not_offered_and_on_demand_is_used() -> None:
    result = _solve([factories.pod(cpu="3")], [factories.template(instance_types=_types(count=0))])
    assert result.pod_errors == {}
    (claim,) = result.new_nodeclaims
    assert claim.labels.get(CAPACITY_TYPE) != "reserved"
    assert "reserved" not in claim.capacity_types()


def test_strict_mode_does_not_fall_back_to_a_lower_weight_nodepool() -> None:
    heavy = factories.template("reserved-pool", instance_types=_types(count=1), weight=10)
    light = factories.template("spare", instance_types=[factories.instance_type("m-4", cpu=4, memory="16Gi")])
    result = _solve(factories.pods(2, cpu="3"), [heavy, light])
    assert [c.nodepool for c in result.new_nodeclaims] == ["reserved-pool"]
    (error,) = result.pod_errors.values()
    assert [r.nodepool for r in error.reasons] == ["reserved-pool"], "the lighter pool was never tried"
    # Fallback goes on to the other pool.
    result = _solve(factories.pods(2, cpu="3"), [heavy, light], mode="Fallback")
    assert result.pod_errors == {}


def test_a_reservation_named_by_two_nodepools_is_counted_once_with_the_smaller_count() -> None:
    a = factories.template("a", instance_types=_types(count=3), weight=10)
    b = factories.template("b", instance_types=_types(count=1))
    # pool a only takes pods selecting it; b takes the rest
    pods = [
        factories.pod(cpu="3", node_selector={labels.LABEL_NODEPOOL: "a"}),
        factories.pod(cpu="3", node_selector={labels.LABEL_NODEPOOL: "b"}),
    ]
    result = _solve(pods, [a, b], mode="Fallback")
    assert len(result.new_nodeclaims) == 2
    assert len(_reserved(result)) == 1


def test_pods_share_a_reserved_nodeclaim_until_it_is_full() -> None:
    # 3 one-vCPU pods fill the reserved 4-vCPU type; the 4th would grow the NodeClaim to m-8, off its
    # reservation, and a new NodeClaim finds the reservation's only slot taken: it waits (Strict).
    result = _solve(factories.pods(4, cpu="1"), [factories.template(instance_types=_types(count=1))])
    (claim,) = result.new_nodeclaims
    assert len(claim.pods) == 3
    assert _values(claim, RESERVATION_ID) == {"cr-1"}
    (error,) = result.pod_errors.values()
    assert [r.constraint for r in error.reasons] == [scheduling.Constraint.RESERVED_OFFERING]


def test_strict_refuses_a_pod_that_would_take_a_nodeclaim_off_its_reservation() -> None:
    on_demand = factories.pod(
        cpu="500m", node_selector={CAPACITY_TYPE: "on-demand"}, creation="2024-01-02T00:00:00Z"
    )
    first = factories.pod(cpu="1")
    result = _solve([first, on_demand], [factories.template(instance_types=_types(count=2))])
    assert result.pod_errors == {}
    by_pod = {p.name: c for c in result.new_nodeclaims for p in c.pods}
    assert _values(by_pod[first["metadata"]["name"]], RESERVATION_ID) == {"cr-1"}
    assert by_pod[on_demand["metadata"]["name"]] is not by_pod[first["metadata"]["name"]]
    assert by_pod[on_demand["metadata"]["name"]].labels[CAPACITY_TYPE] == "on-demand"


def test_fallback_releases_the_slot_of_a_nodeclaim_narrowed_off_its_reservation() -> None:
    # one slot; the first pod's NodeClaim takes it, the second (on-demand only) narrows that NodeClaim
    # off the reservation and gives the slot back, so the third (kept off the first's node) can take it.
    # Pods go in by CPU then memory, descending.
    first = factories.pod(cpu="1", memory="2Gi", labels={"app": "a"})
    on_demand = factories.pod(cpu="1", memory="1Gi", node_selector={CAPACITY_TYPE: "on-demand"})
    third = factories.pod(cpu="1", anti_affinity=[factories.affinity_term(HOSTNAME, {"app": "a"})])
    template = factories.template(instance_types=_types(count=1, larger=False))
    result = _solve([first, on_demand, third], [template], "Fallback")
    assert result.pod_errors == {}
    by_pod = {p.name: c for c in result.new_nodeclaims for p in c.pods}
    assert by_pod[on_demand["metadata"]["name"]] is by_pod[first["metadata"]["name"]]
    assert by_pod[first["metadata"]["name"]].labels[CAPACITY_TYPE] == "on-demand"
    assert by_pod[third["metadata"]["name"]].labels.get(RESERVATION_ID) == "cr-1"


def test_pod_selecting_a_reservation_lands_on_it() -> None:
    its = [
        factories.instance_type("m-4", cpu=4, memory="16Gi", reservations=[("cr-1", "test-zone-1", 5)]),
        factories.instance_type("m-8", cpu=8, memory="32Gi", reservations=[("cr-2", "test-zone-2", 5)]),
    ]
    pod = factories.pod(cpu="1", node_selector={RESERVATION_ID: "cr-2"})
    result = _solve([pod], [factories.template(instance_types=its)])
    (claim,) = result.new_nodeclaims
    assert _values(claim, RESERVATION_ID) == {"cr-2"}
    assert [it.name for it in claim.instance_types] == ["m-8"]


def test_nodepool_without_reserved_capacity_type_never_reserves() -> None:
    template = factories.template(
        instance_types=_types(count=5),
        requirements=[factories.expr(CAPACITY_TYPE, "In", "on-demand", "spot")],
    )
    result = _solve(factories.pods(2, cpu="3"), [template])
    assert result.pod_errors == {}
    assert _reserved(result) == []
