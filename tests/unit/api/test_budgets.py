"""Disruption budgets: Karpenter's arithmetic (percent rounds up, minimum over active budgets) and cron windows."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from nodesmith import errors
from nodesmith.api import budgets, meta

UTC = dt.UTC
MONDAY_10AM = dt.datetime(2024, 1, 1, 10, 0, tzinfo=UTC)  # 2024-01-01 is a Monday
Reason = budgets.DisruptionReason


def budget(
    nodes: int | str = "10%",
    schedule: str | None = None,
    duration: str | None = None,
    reasons: tuple[Reason, ...] | None = None,
) -> budgets.Budget:
    return budgets.Budget(
        nodes=nodes,
        schedule=schedule,
        duration=None if duration is None else meta.Duration.parse(duration, "duration"),
        reasons=reasons,
    )


@pytest.mark.parametrize(
    ("nodes", "total", "allowed"),
    [
        ("10%", 10, 1),
        ("10%", 11, 2),  # 1.1 rounds up
        ("10%", 1, 1),  # 0.1 rounds up: a small pool still makes progress
        ("10%", 0, 0),
        ("5%", 10, 1),
        ("0%", 10, 0),
        ("100%", 7, 7),
        ("3", 10, 3),
        (3, 10, 3),
        ("0", 10, 0),
        ("20", 10, 20),
    ],
)
def test_percentages_round_up_and_counts_are_taken_as_is(nodes: int | str, total: int, allowed: int) -> None:
    assert budgets.allowed_disruptions([budget(nodes)], Reason.EMPTY, total, MONDAY_10AM) == allowed


def test_the_most_restrictive_active_budget_wins() -> None:
    pool = [budget("50%"), budget("2"), budget("30%")]
    assert budgets.allowed_disruptions(pool, Reason.DRIFTED, 100, MONDAY_10AM) == 2


def test_no_budget_means_unlimited() -> None:
    assert budgets.allowed_disruptions([], Reason.EMPTY, 10, MONDAY_10AM) == budgets.UNLIMITED


def test_budgets_scoped_to_other_reasons_do_not_apply() -> None:
    pool = [budget("0", reasons=(Reason.UNDERUTILIZED,)), budget("5")]
    assert budgets.allowed_disruptions(pool, Reason.UNDERUTILIZED, 100, MONDAY_10AM) == 0
    assert budgets.allowed_disruptions(pool, Reason.DRIFTED, 100, MONDAY_10AM) == 5
    assert budgets.allowed_disruptions(pool, "Empty", 100, MONDAY_10AM) == 5


def test_a_budget_with_an_empty_reason_list_applies_to_nothing() -> None:
    assert (
        budgets.allowed_disruptions([budget("0", reasons=())], Reason.EMPTY, 10, MONDAY_10AM)
        == budgets.UNLIMITED
    )


def test_scheduled_budget_is_active_from_the_cron_hit_until_duration_elapses() -> None:
    business_hours = budget("0", schedule="0 9 * * mon-fri", duration="8h")
    assert business_hours.is_active(dt.datetime(2024, 1, 1, 9, 0, tzinfo=UTC))  # the hit itself counts
    assert business_hours.is_active(dt.datetime(2024, 1, 1, 16, 59, tzinfo=UTC))
    assert not business_hours.is_active(
        dt.datetime(2024, 1, 1, 17, 0, tzinfo=UTC)
    )  # hit + duration is outside
    assert not business_hours.is_active(dt.datetime(2024, 1, 1, 8, 59, tzinfo=UTC))
    assert not business_hours.is_active(dt.datetime(2024, 1, 6, 10, 0, tzinfo=UTC))  # Saturday


def test_an_inactive_scheduled_budget_does_not_limit() -> None:
    pool = [budget("0", schedule="0 9 * * mon-fri", duration="8h"), budget("10")]
    saturday = dt.datetime(2024, 1, 6, 10, 0, tzinfo=UTC)
    assert budgets.allowed_disruptions(pool, Reason.EMPTY, 100, saturday) == 10
    assert budgets.allowed_disruptions(pool, Reason.EMPTY, 100, MONDAY_10AM) == 0


def test_macros_are_schedules() -> None:
    first_ten_minutes = budget("0", schedule="@hourly", duration="10m")
    assert first_ten_minutes.is_active(dt.datetime(2024, 1, 1, 10, 9, 59, tzinfo=UTC))
    assert not first_ten_minutes.is_active(dt.datetime(2024, 1, 1, 10, 10, tzinfo=UTC))


def test_schedules_are_evaluated_in_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    window = budget("0", schedule="0 9 * * *", duration="1h")
    assert window.is_active(dt.datetime(2024, 1, 1, 11, 30, tzinfo=plus_two))  # 09:30 UTC
    assert not window.is_active(dt.datetime(2024, 1, 1, 9, 30, tzinfo=plus_two))  # 07:30 UTC


def test_a_budget_that_cannot_be_evaluated_fails_closed() -> None:
    broken = budgets.Budget(nodes="10", schedule="not a cron", duration=meta.Duration.parse("1h", "d"))
    assert broken.allowed(10, MONDAY_10AM) == 0
    with pytest.raises(errors.ValidationError):
        broken.is_active(MONDAY_10AM)


def test_a_malformed_node_count_fails_closed() -> None:
    assert budget("lots").allowed(10, MONDAY_10AM) == 0


def test_budget_round_trips_through_its_dict() -> None:
    raw = {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h", "reasons": ["Underutilized"]}
    parsed = budgets.Budget._build(raw, "budgets[0]")
    assert parsed.to_dict() == raw
    assert parsed.duration is not None
    assert parsed.duration.value == dt.timedelta(hours=8)


@pytest.mark.parametrize("schedule", ["* * * *", "* * * * * *", "@every 5m", "@reboot", "*"])
def test_schedules_the_crd_pattern_refuses_are_rejected_with_the_field(schedule: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        budgets.Budget._build(
            {"nodes": "1", "schedule": schedule, "duration": "1h"}, "spec.disruption.budgets[3]"
        )
    assert caught.value.field == "spec.disruption.budgets[3].schedule"


@pytest.mark.parametrize(
    ("schedule", "error"),
    [
        # nodepool_budgets_test.go "should return an error indicating why the cron fails to parse"
        ("0 0 * * tue-mon", "beginning of range (2) beyond end of range (1)"),
        ("61 * * * *", "end of range (61) above maximum (59)"),
        ("0 0 * * 7", "end of range (7) above maximum (6)"),
        ("0 0 0 * *", "beginning of range (0) below minimum (1)"),
        ("*/0 * * * *", "step of range should be a positive number"),
        ("a b c d e", "failed to parse int from a"),
        ("0 0 L * *", "failed to parse int from L"),
        ("1-2-3 * * * *", "too many hyphens"),
    ],
)
def test_schedules_karpenters_cron_parser_rejects_fail_closed_for_every_reason(
    schedule: str, error: str
) -> None:
    """The CRD pattern admits them, so the NodePool parses (and still provisions), but its budgets cannot
    be evaluated: like Karpenter's ``MustGetAllowedDisruptions``, no disruption for any reason, even from
    a budget scoped to another reason."""
    raw = {"nodes": "100%", "schedule": schedule, "duration": "1h", "reasons": ["Drifted"]}
    broken = budgets.Budget._build(raw, "spec.disruption.budgets[0]")
    with pytest.raises(errors.ValidationError, match=re.escape(error)):
        broken.is_active(MONDAY_10AM)
    pool = [broken, budget("10")]
    for reason in Reason:
        assert budgets.allowed_disruptions(pool, reason, 100, MONDAY_10AM) == 0
    (problem,) = budgets.problems(pool, MONDAY_10AM)
    assert problem.startswith(f"spec.disruption.budgets[0].schedule: invalid cron {schedule!r}")
    assert error in problem


@pytest.mark.parametrize(
    "schedule", ["0 0 * * mon-fri", "*/15 9-17 * * 1-5", "0 0 1 jan,jul ?", "5/10 * * * *", "@weekly"]
)
def test_schedules_karpenters_cron_parser_accepts_are_evaluated(schedule: str) -> None:
    pool = [budget("3", schedule=schedule, duration="1h")]
    assert budgets.problems(pool, MONDAY_10AM) == []
    assert budgets.allowed_disruptions(pool, Reason.EMPTY, 100, MONDAY_10AM) in (3, budgets.UNLIMITED)
