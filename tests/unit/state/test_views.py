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


def test_what_disruption_reads_is_parsed_with_the_view() -> None:
    body = f.pod("web-1", node_name="a", cpu="100m")
    body["metadata"]["ownerReferences"] = [
        {"kind": "Deployment", "name": "web", "controller": False},
        {"kind": "StatefulSet", "name": "web"},  # ``controller`` unset counts as a controller
    ]
    body["spec"]["priority"] = 1000
    body["status"].update(
        phase="Running",
        nominatedNodeName="b",
        conditions=[{"type": "Ready", "status": "True"}],
    )
    view = PodView.parse(body)
    assert dict(view.labels) == {"app": "web-1"}
    assert (view.phase, view.ready, view.priority, view.nominated_node) == ("Running", True, 1000, "b")
    assert view.controller_kinds == ("StatefulSet",)
    assert view.controller_kind == "StatefulSet"


def test_a_pod_without_readiness_or_priority_reads_as_not_ready_and_unprioritised() -> None:
    body = f.pod("plain", node_name="a")
    body["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    body["spec"]["priority"] = "high"  # not an integer: no priority, as the eviction cost reads it
    view = PodView.parse(body)
    assert (view.ready, view.priority, view.controller_kind, view.nominated_node) == (False, None, None, None)
