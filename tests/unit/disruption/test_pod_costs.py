"""Eviction cost of one pod (Karpenter ``pkg/utils/disruption.EvictionCost``), and which pods on a node
would need a new home (Karpenter ``pkg/utils/pod.IsReschedulable``)."""

from __future__ import annotations

from typing import Any

import pytest

from nodesmith.disruption import pods
from nodesmith.state.views import PodView


def _pod(cost: str | None = None, priority: int | None = None) -> PodView:
    annotations = {} if cost is None else {pods.DELETION_COST_ANNOTATION: cost}
    spec: dict[str, Any] = {} if priority is None else {"priority": priority}
    return PodView.parse({"metadata": {"name": "p", "annotations": annotations}, "spec": spec})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 1.0),
        ("0", 1.0),
        ("134217728", 2.0),  # 2^27: one more pod's worth
        ("-134217728", 0.0),
        ("1e9", 1.0 + 1e9 / 2**27),  # Go's ParseFloat takes exponent notation
        ("6.7108864e7", 1.5),
        ("2147483647", 10.0),  # clamped
        ("-2147483647", -10.0),
        ("not-a-number", 1.0),  # unparsable: ignored
        (" 134217728", 1.0),  # Go does not trim spaces
        ("NaN", 1.0),  # no ordering for NaN: ignored
    ],
)
def test_pod_deletion_cost_is_parsed_as_a_float(raw: str | None, expected: float) -> None:
    assert pods.eviction_cost(_pod(raw)) == pytest.approx(expected)


def test_priority_adds_to_the_cost() -> None:
    assert pods.eviction_cost(_pod("1e9", priority=2**25)) == pytest.approx(2.0 + 1e9 / 2**27)
