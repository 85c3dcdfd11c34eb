"""What the core does about each kind of interruption event."""

from __future__ import annotations

import pytest

from nodesmith.cloudprovider.types import InterruptionEvent, InterruptionKind
from nodesmith.disruption.interruption import Action, decide

K = InterruptionKind


@pytest.mark.parametrize(
    ("kind", "state", "replace_on_rebalance", "expected"),
    [
        (K.SPOT_INTERRUPTION, None, False, Action.DELETE),
        (K.SCHEDULED_CHANGE, None, False, Action.DELETE),
        (K.CAPACITY_RESERVATION_INTERRUPTION, None, False, Action.DELETE),
        (K.STATE_CHANGE, "stopping", False, Action.DELETE),
        (K.STATE_CHANGE, "stopped", False, Action.DELETE),
        (K.STATE_CHANGE, "shutting-down", False, Action.DELETE),
        (K.STATE_CHANGE, "terminated", False, Action.DELETE),
        (K.STATE_CHANGE, "running", False, Action.IGNORE),
        (K.STATE_CHANGE, "pending", False, Action.IGNORE),
        (K.REBALANCE_RECOMMENDATION, None, False, Action.IGNORE),
        (K.REBALANCE_RECOMMENDATION, None, True, Action.REPLACE_WITHIN_BUDGET),
    ],
)
def test_action_per_kind(
    kind: InterruptionKind, state: str | None, replace_on_rebalance: bool, expected: Action
) -> None:
    event = InterruptionEvent("kwok://n", kind, 0.0, state=state)
    assert decide(event, known=True, deleting=False, replace_on_rebalance=replace_on_rebalance) is expected


def test_events_for_unknown_instances_are_dropped() -> None:
    event = InterruptionEvent("aws:///z/i-unknown", K.SPOT_INTERRUPTION, 0.0)
    assert decide(event, known=False, deleting=False, replace_on_rebalance=True) is Action.DROP_UNKNOWN


def test_a_machine_already_going_is_left_alone() -> None:
    event = InterruptionEvent("kwok://n", K.SPOT_INTERRUPTION, 0.0)
    assert decide(event, known=True, deleting=True, replace_on_rebalance=False) is Action.ALREADY_DELETING
