"""A pod is parsed once at the state boundary: the view answers what the state and the reconcilers read."""

from __future__ import annotations

import datetime as dt

import pytest

from nodesmith.state.views import PodView

from . import factories as f


def test_a_bound_daemonset_pod_with_anti_affinity_is_read_once() -> None:
    body = f.pod("agent-x", namespace="kube-system", node_name="a", cpu="250m", daemonset="agent",
                 anti_affinity_key="kubernetes.io/hostname")  # fmt: skip
    body["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-02T03:04:05Z"}
    ]
    view = PodView.parse(body)
    assert (view.key, view.node_name, view.counts_on) == ("kube-system/agent-x", "a", "a")
    assert (view.daemonset, view.owned_by_daemonset) == ("kube-system/agent", True)
    assert view.scheduled_at == dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert view.anti_affinity_topologies == ("kubernetes.io/hostname",)
    assert view.requests["cpu"] == 250
    assert (view.provisionable, view.terminal, view.terminating) == (False, False, False)
    assert view.body is body


def test_a_finished_pod_counts_nowhere_and_its_requests_are_not_read() -> None:
    body = f.pod("done", node_name="a", cpu="not-a-quantity", phase="Succeeded")
    view = PodView.parse(body)
    assert (view.terminal, view.counts_on, dict(view.requests)) == (True, None, {})
    with pytest.raises(ValueError, match="not-a-quantity"):
        PodView.parse(f.pod("bad", node_name="a", cpu="not-a-quantity"))


def test_an_unschedulable_pod_is_provisionable() -> None:
    body = f.pod("waiting")
    body["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    assert PodView.parse(body).provisionable
