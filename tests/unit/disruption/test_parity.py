"""Disruption decisions checked case by case against Karpenter's own suites (``pkg/controllers/disruption``):
each test names the Karpenter case it follows."""

from __future__ import annotations

from typing import Any

import pytest

from nodesmith.disruption import candidates, drift, emptiness
from nodesmith.disruption.commands import Decision
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


def _drift_outcome(setup: Any) -> Any:
    """Drift of machine "a" (drifted, terminationGracePeriod 5m) with one pod set up by ``setup``, next to
    a full machine "b" so that any pod that is simulated needs a replacement."""
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "medium", drifted="NodePoolDrifted", termination_grace_period="5m")
    cluster.machine("b", "small")
    cluster.pod("b", cpu="1500m", app="filler")
    setup(cluster)
    found, _ = cluster.candidates(candidates.DisruptionClass.EVENTUAL)
    assert [c.name for c in found if c.drifted] == ["a"], "blocking pods are waived with a grace period"
    outcome = drift.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert [c.name for c in outcome.command.candidates] == ["a"]
    return outcome.command


def _pdb(cluster: Cluster, spec: dict[str, Any]) -> None:
    manifest = manifests.pdb_manifest("guard", app="db", allowed=0)
    manifest["spec"].update(spec)
    cluster.state.on_upsert(resources.PDBS, manifest)


@pytest.mark.parametrize(
    ("title", "setup"),
    [
        (
            "should not create replacements for drifted nodes that have pods with the karpenter.sh/do-not-disrupt "
            "annotation set to true when the NodePool's TerminationGracePeriod is not nil",
            lambda c: c.pod("a", cpu="3", app="db", annotations={"karpenter.sh/do-not-disrupt": "true"}),
        ),
        (
            "should not create replacements for drifted nodes that have pods with the blocking PDBs when the "
            "NodePool's TerminationGracePeriod is not nil (maxUnavailable: 0)",
            lambda c: (c.pod("a", cpu="3", app="db"), _pdb(c, {"maxUnavailable": 0})),
        ),
        ("minAvailable: 100%", lambda c: (c.pod("a", cpu="3", app="db"), _pdb(c, {"minAvailable": "100%"}))),
        ("maxUnavailable: 0%", lambda c: (c.pod("a", cpu="3", app="db"), _pdb(c, {"maxUnavailable": "0%"}))),
    ],
    ids=["do-not-disrupt", "maxUnavailable-0", "minAvailable-100%", "maxUnavailable-0%"],
)
def test_drift_launches_nothing_for_pods_that_cannot_be_evicted(title: str, setup: Any) -> None:
    """drift_test.go: such pods are left out of the simulation (``IsCurrentlyReschedulable``); the node is
    deleted without replacement and its grace period bounds the wait."""
    command = _drift_outcome(setup)
    assert command.decision is Decision.DELETE
    assert command.replacements == ()


def test_drift_replaces_for_pods_whose_pdb_only_blocks_for_now() -> None:
    """A PDB at zero allowed disruptions that is not fully blocking (minAvailable: 1) will let the pod go
    eventually, so the pod is simulated and gets a replacement (Karpenter's ``isFullyBlocked``)."""
    command = _drift_outcome(lambda c: (c.pod("a", cpu="3", app="db"), _pdb(c, {"minAvailable": 1})))
    assert command.decision is Decision.REPLACE
    assert len(command.replacements) == 1
