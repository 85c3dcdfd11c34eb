"""Consolidation after capacity fallback: the pods sit on the on-demand pool ``od`` because the preferred
spot pool ``spot`` had no capacity; once it has again, consolidation replaces ``od`` nodes with cheaper
spot nodes of ``spot`` (the replacement's NodePool is whichever the scheduler picks by weight, not the
candidate's: Karpenter's ``computeConsolidation`` simulates with every NodePool), and ``od``'s disruption
budget bounds how many go at once. Real cluster state, real scheduling engine (`fallback_cluster`)."""

from __future__ import annotations

from nodesmith.api import labels
from nodesmith.disruption.commands import Decision, Method, RejectionReason
from nodesmith.state import capacity_backoff, simulation

from .fallback_cluster import OD, SPOT, fallen_back, instance_types


def test_single_node_replaces_an_on_demand_node_with_a_spot_node_of_the_preferred_pool() -> None:
    cluster = fallen_back()
    outcome, _, _ = simulation.disruption_outcome(
        Method.SINGLE_NODE, cluster.snapshot(), instance_types(cluster)
    )
    command = outcome.command
    assert command is not None, [r.message for r in outcome.rejections]
    assert command.decision is Decision.REPLACE
    assert [c.nodepool.name for c in command.candidates] == [OD]
    (replacement,) = command.replacements
    assert replacement.nodepool == SPOT  # a replacement kept to the candidate's own pool is not cheaper
    assert replacement.requirements.get(labels.LABEL_CAPACITY_TYPE).values == {"spot"}
    assert [it.name for it in replacement.instance_types] == ["medium", "large"]
    assert round(command.savings, 6) == round(0.2 - 0.2 * 0.3, 6)


def test_the_on_demand_pools_budget_bounds_how_many_nodes_move_back_at_once() -> None:
    # Unbounded, multi-node consolidation would move two od nodes onto one large spot node together.
    unbounded = fallen_back(od_budget="100%")
    multi, _, _ = simulation.disruption_outcome(
        Method.MULTI_NODE, unbounded.snapshot(), instance_types(unbounded)
    )
    assert multi.command is not None
    assert len(multi.command.candidates) == 2
    assert multi.command.replacements[0].nodepool == SPOT
    # With budget "1", one node at a time: multi-node has nothing to do, single-node takes one.
    cluster = fallen_back(od_budget="1")
    types = instance_types(cluster)
    multi, _, _ = simulation.disruption_outcome(Method.MULTI_NODE, cluster.snapshot(), types)
    assert multi.command is None
    assert multi.budgets[OD] == 1
    single, _, _ = simulation.disruption_outcome(Method.SINGLE_NODE, cluster.snapshot(), types)
    assert single.command is not None
    assert len(single.command.candidates) == 1


def test_no_od_node_moves_while_another_is_still_being_replaced() -> None:
    # "c" is not Ready (its replacement is under way, say): it uses the budget of 1
    cluster = fallen_back(not_ready=("c",))
    outcome, _, _ = simulation.disruption_outcome(
        Method.SINGLE_NODE, cluster.snapshot(), instance_types(cluster)
    )
    assert outcome.command is None
    assert outcome.budgets[OD] == 0
    assert {r.reason for r in outcome.rejections} == {RejectionReason.BUDGET}


def test_nothing_moves_back_while_the_preferred_pool_is_backed_off() -> None:
    cluster = fallen_back()
    backoff = capacity_backoff.CapacityBackoff()
    for _ in range(capacity_backoff.FAILURE_THRESHOLD):
        backoff.record_failure(SPOT, ["spot"], "insufficient capacity", cluster.clock.now())
    restricted = capacity_backoff.restrict(instance_types(cluster), backoff.active(cluster.clock.now()))
    outcome, _, _ = simulation.disruption_outcome(Method.SINGLE_NODE, cluster.snapshot(), restricted)
    assert outcome.command is None
    assert {r.reason for r in outcome.rejections} == {RejectionReason.NOT_CHEAPER}
