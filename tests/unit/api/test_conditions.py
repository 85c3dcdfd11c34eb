"""Condition bookkeeping follows operatorpkg: transition times, sorting, and the Ready root."""

from __future__ import annotations

import datetime as dt

import pytest

from nodesmith.api import conditions

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)
TYPES = conditions.ConditionTypes(dependents=("A", "B"))
Status = conditions.ConditionStatus


def test_setting_the_same_condition_again_keeps_its_transition_time() -> None:
    first = TYPES.set((), "A", True, now=T0, generation=1)
    again = TYPES.set(first, "A", True, now=T1, generation=1)
    assert again == first


def test_any_change_moves_the_transition_time() -> None:
    first = TYPES.set((), "A", True, now=T0, generation=1)
    changed = TYPES.set(first, "A", True, message="now with a message", now=T1, generation=1)
    condition = conditions.get(changed, "A")
    assert condition is not None
    assert condition.last_transition_time == T1


def test_missing_known_conditions_start_unknown() -> None:
    out = TYPES.initialize((), now=T0, generation=2)
    assert [(c.type, c.status, c.reason) for c in out] == [
        ("A", Status.UNKNOWN, "AwaitingReconciliation"),
        ("B", Status.UNKNOWN, "AwaitingReconciliation"),
        ("Ready", Status.UNKNOWN, "AwaitingReconciliation"),
    ]


def test_root_is_false_only_when_a_dependent_failed_at_the_current_generation() -> None:
    out = TYPES.set((), "A", False, reason="Broken", now=T0, generation=1)
    root = conditions.get(out, "Ready")
    assert root is not None
    assert (root.status, root.reason) == (Status.FALSE, "UnhealthyDependents")
    out = TYPES.set(out, "B", True, now=T1, generation=2)  # generation moved on; A is stale
    root = conditions.get(out, "Ready")
    assert root is not None
    assert (root.status, root.reason) == (Status.UNKNOWN, "ReconcilingDependents")


def test_root_is_true_when_every_dependent_is_true() -> None:
    out = TYPES.set(TYPES.set((), "A", True, now=T0), "B", True, now=T0)
    assert conditions.is_true(out, "Ready")
    assert conditions.is_true(out, "A")
    assert not conditions.is_true(out, "Missing")


def test_known_conditions_cannot_be_cleared() -> None:
    out = TYPES.set((), "Extra", True, now=T0)
    assert conditions.get(TYPES.clear(out, "Extra"), "Extra") is None
    with pytest.raises(ValueError, match="cannot be cleared"):
        TYPES.clear(out, "A")
