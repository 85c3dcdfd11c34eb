"""Allowed disruptions per NodePool and reason: Karpenter's budgets, time-window budgets, status view."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nodesmith.api.budgets import DisruptionReason
from nodesmith.disruption import budgets

from .factories import T0, Cluster

R = DisruptionReason


def allowance(
    nodes: int,
    budget_list: list[dict[str, Any]] | None,
    *,
    reason: R = R.UNDERUTILIZED,
    marked: int = 0,
    not_ready: int = 0,
    annotations: dict[str, str] | None = None,
    history: tuple[budgets.Started, ...] = (),
    now: dt.datetime = T0,
) -> int:
    cluster = Cluster()
    pool = cluster.pool(budgets=budget_list, annotations=annotations)
    for i in range(nodes):
        key = cluster.machine(f"n{i}", ready=i >= not_ready)
        if i < marked:
            cluster.state.mark_for_deletion(key)
    return budgets.mapping([pool], cluster.snapshot().nodes, reason, now, history)["default"]


@pytest.mark.parametrize(
    ("nodes", "budget_list", "kwargs", "expected"),
    [
        (3, None, {}, 1),  # default 10%, rounded up
        (20, None, {}, 2),
        (0, None, {}, 0),
        (5, [{"nodes": "0"}], {}, 0),
        (5, [{"nodes": "3"}, {"nodes": "50%"}], {}, 3),  # the most restrictive active budget
        (5, [{"nodes": "3"}], {"marked": 2}, 1),  # disrupting nodes use the budget
        (5, [{"nodes": "3"}], {"not_ready": 1}, 2),
        (5, [{"nodes": "3"}], {"marked": 4}, 0),
        (5, [{"nodes": "0", "reasons": ["Drifted"]}, {"nodes": "2"}], {}, 2),
        (5, [{"nodes": "0", "reasons": ["Drifted"]}, {"nodes": "2"}], {"reason": R.DRIFTED}, 0),
        (5, [{"nodes": "0", "schedule": "0 9 * * *", "duration": "1h"}, {"nodes": "5"}], {}, 5),
        (
            5,
            [{"nodes": "0", "schedule": "0 9 * * *", "duration": "1h"}, {"nodes": "5"}],
            {"now": T0.replace(hour=9, minute=30)},
            0,
        ),
    ],
)
def test_karpenter_budgets(nodes: int, budget_list: Any, kwargs: dict[str, Any], expected: int) -> None:
    assert allowance(nodes, budget_list, **kwargs) == expected


def started(minutes_ago: float, reason: R = R.UNDERUTILIZED) -> budgets.Started:
    return budgets.Started("default", reason, T0 - dt.timedelta(minutes=minutes_ago))


@pytest.mark.parametrize(
    ("annotation", "history", "reason", "expected"),
    [
        ("2/10m", (), R.UNDERUTILIZED, 2),
        ("2/10m", (started(5),), R.UNDERUTILIZED, 1),
        ("2/10m", (started(5), started(9)), R.UNDERUTILIZED, 0),
        ("2/10m", (started(5), started(11)), R.UNDERUTILIZED, 1),  # outside the window
        ("20%/10m", (started(1),), R.UNDERUTILIZED, 1),  # 20% of 10 = 2, one used
        ("1/10m:Drifted", (started(1),), R.UNDERUTILIZED, 10),  # applies to Drifted only
        ("1/10m:Drifted", (started(1, R.DRIFTED),), R.DRIFTED, 0),
        ("1/10m:Drifted", (started(1, R.UNDERUTILIZED),), R.DRIFTED, 1),  # other reasons do not count
        ("1/10m, 3/1h", (started(30),), R.UNDERUTILIZED, 1),
        ("lots/10m", (), R.UNDERUTILIZED, 0),  # malformed fails closed
    ],
)
def test_time_window_budgets(
    annotation: str, history: tuple[budgets.Started, ...], reason: R, expected: int
) -> None:
    got = allowance(
        10,
        [{"nodes": "100%"}],
        reason=reason,
        annotations={budgets.WINDOW_BUDGETS_ANNOTATION: annotation},
        history=history,
    )
    assert got == expected


def test_evaluated_budgets_for_status() -> None:
    cluster = Cluster()
    pool = cluster.pool(
        budgets=[{"nodes": "50%"}, {"nodes": "0", "reasons": ["Drifted"]}],
        annotations={budgets.WINDOW_BUDGETS_ANNOTATION: "1/10m"},
    )
    for i in range(4):
        cluster.machine(f"n{i}")
    shown = budgets.evaluated_budgets(pool, cluster.snapshot().nodes, T0, (started(2),))
    by_reason = {entry["reason"]: entry for entry in shown}
    assert set(by_reason) == {"Underutilized", "Empty", "Drifted"}
    assert by_reason["Drifted"]["allowed"] == 0
    assert by_reason["Empty"]["allowed"] == 0  # the window budget's one disruption is used
    assert by_reason["Empty"]["nodes"] == 4
    assert by_reason["Empty"]["windowBudgets"] == [{"budget": "1/10m", "started": 1}]
    assert by_reason["Drifted"]["activeBudgets"] == ["50%", "0"]
