"""The snapshot → simulation adapter's choice of pending pods."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nodesmith.kube import resources
from nodesmith.state import ClusterState, simulation


def unschedulable(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", **meta},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
    }


def test_pending_pods_are_the_unschedulable_ones_not_being_deleted() -> None:
    state = ClusterState(clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    state.on_upsert(resources.PODS, unschedulable("waiting"))
    state.on_upsert(resources.PODS, unschedulable("leaving", deletionTimestamp="2026-01-01T00:00:00Z"))
    never_tried = unschedulable("new")
    never_tried["status"] = {"phase": "Pending"}
    state.on_upsert(resources.PODS, never_tried)
    names = [p["metadata"]["name"] for p in simulation.pending_pods(state.snapshot())]
    assert names == ["waiting"]
