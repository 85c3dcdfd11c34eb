"""Disruption decisions checked case by case against Karpenter's own suites (``pkg/controllers/disruption``):
each test names the Karpenter case it follows."""

from __future__ import annotations

from typing import Any

from nodesmith.disruption import emptiness
from nodesmith.kube import resources
from nodesmith.testing import manifests

from .factories import Cluster

UNLIMITED = {"default": 100}


def _terminating(cluster: Cluster, pod: dict[str, Any]) -> None:
    """The pod as it is after an eviction: still there, with a deletionTimestamp."""
    pod = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": manifests.STAMP}}
    cluster.state.on_upsert(resources.PODS, pod)


def test_a_node_with_a_terminating_statefulset_pod_is_not_empty() -> None:
    """emptiness_test.go "will not consider a node with a terminating StatefulSet pod as empty": a
    StatefulSet pod is only re-created once the old one is gone, so it still needs a home."""
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "small")
    _terminating(cluster, cluster.pod("a", owner="StatefulSet"))
    cluster.machine("b", "small")
    _terminating(cluster, cluster.pod("b", owner="ReplicaSet"))
    found, _ = cluster.candidates()
    by_name = {c.name: c for c in found}
    assert not by_name["a"].is_empty
    assert by_name["b"].is_empty, "a terminating ReplicaSet pod does not need a home"
    outcome = emptiness.compute(found, UNLIMITED)
    assert outcome.command is not None
    assert [c.name for c in outcome.command.candidates] == ["b"]
