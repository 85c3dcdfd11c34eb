"""Node repair verdicts (`nodesmith.disruption.repair`), after Karpenter's ``node/health/controller.go``:
a Node is due once a policy's condition has held for its toleration; the earliest-ending policy wins; the
pool-wide circuit breaker allows 20% of a pool's Nodes, rounded up."""

from __future__ import annotations

import datetime as dt

import pytest

from nodesmith.cloudprovider.types import RepairPolicy
from nodesmith.disruption import repair
from nodesmith.state.statenode import NodeCondition, parse_node

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
POLICIES = (
    RepairPolicy("Ready", "False", dt.timedelta(minutes=10)),
    RepairPolicy("Ready", "Unknown", dt.timedelta(minutes=10)),
    RepairPolicy("example.com/BadDisk", "True", dt.timedelta(minutes=1)),
)


def node(*conditions: tuple[str, str, dt.datetime | None]) -> tuple[NodeCondition, ...]:
    """The conditions of a Node as the cluster state parsed them."""
    out = []
    for type_, status, since in conditions:
        condition = {"type": type_, "status": status}
        if since is not None:
            condition["lastTransitionTime"] = since.isoformat().replace("+00:00", "Z")
        out.append(condition)
    return parse_node({"metadata": {"name": "n"}, "status": {"conditions": out}}).conditions


def test_a_ready_node_is_healthy() -> None:
    healthy = node(("Ready", "True", T0))
    assert repair.unhealthy_condition(healthy, POLICIES) is None
    assert not repair.is_unhealthy(healthy, POLICIES)


def test_a_not_ready_node_is_due_only_after_its_toleration() -> None:
    found = repair.unhealthy_condition(node(("Ready", "False", T0)), POLICIES)
    assert found is not None
    assert found.condition_type == "Ready"
    assert found.repair_at == T0 + dt.timedelta(minutes=10)
    assert not found.due(T0 + dt.timedelta(minutes=9, seconds=59))
    assert found.due(T0 + dt.timedelta(minutes=10))


def test_a_condition_with_a_status_no_policy_names_is_tolerated() -> None:
    assert repair.unhealthy_condition(node(("example.com/BadDisk", "False", T0)), POLICIES) is None


def test_of_two_matching_conditions_the_one_whose_toleration_ends_first_decides() -> None:
    found = repair.unhealthy_condition(
        node(("Ready", "Unknown", T0), ("example.com/BadDisk", "True", T0 + dt.timedelta(minutes=2))),
        POLICIES,
    )
    assert found is not None
    assert (found.condition_type, found.repair_at) == ("example.com/BadDisk", T0 + dt.timedelta(minutes=3))


def test_without_policies_nothing_is_unhealthy() -> None:
    assert repair.unhealthy_condition(node(("Ready", "False", T0)), ()) is None


def test_a_matching_condition_without_a_transition_time_is_due_at_once() -> None:
    found = repair.unhealthy_condition(node(("Ready", "False", None)), POLICIES)
    assert found is not None
    assert found.due(T0)


@pytest.mark.parametrize(
    ("total", "allowed"),
    [(0, 0), (1, 1), (3, 1), (5, 1), (6, 2), (10, 2), (11, 3), (15, 3), (100, 20)],
)
def test_twenty_percent_of_a_pool_rounded_up_may_be_unhealthy(total: int, allowed: int) -> None:
    assert repair.allowed_unhealthy(total) == allowed
