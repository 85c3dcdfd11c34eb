"""Disruption decisions checked case by case against Karpenter's own suites (``pkg/controllers/disruption``):
each test names the Karpenter case it follows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nodesmith.disruption import candidates, drift, emptiness, singlenode
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


def test_a_node_whose_pod_tolerates_every_taint_is_not_empty() -> None:
    """Karpenter's ``IsReschedulable`` (pkg/utils/pod/scheduling.go) no longer excludes pods that tolerate the
    disrupted taint: drain leaves such a pod in place, but its node goes away all the same, so the node is
    not empty and the pod is simulated like any other."""
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "small")
    pod = cluster.pod("a")
    tolerant = {**pod, "spec": {**pod["spec"], "tolerations": [{"operator": "Exists"}]}}
    cluster.state.on_upsert(resources.PODS, tolerant)
    cluster.machine("b", "small")
    found, _ = cluster.candidates()
    by_name = {c.name: c for c in found}
    assert not by_name["a"].is_empty
    assert [p.key for p in by_name["a"].reschedulable_pods] == [f"default/{pod['metadata']['name']}"]
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


def _pdb(cluster: Cluster, spec: dict[str, Any]) -> dict[str, Any]:
    """Add a PDB guarding ``app=db``; returns its manifest (so set-up lambdas can build it in a tuple)."""
    manifest = manifests.pdb_manifest("guard", app="db", allowed=0)
    manifest["spec"].update(spec)
    cluster.state.on_upsert(resources.PDBS, manifest)
    return manifest


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


def _two_small_machines(destination_pool: str = "default", **pool: Any) -> Cluster:
    """Two cheapest machines with one half-CPU pod each: the only consolidation is deleting one and moving
    its pod onto the other (consolidation_test.go's setup for the consolidateAfter cases)."""
    cluster = Cluster()
    cluster.pool(consolidate_after="1m", **pool)
    if destination_pool != "default":
        cluster.pool(destination_pool, consolidate_after="Never")
    cluster.machine("a", "small")
    cluster.machine("b", "small", pool=destination_pool)
    cluster.pod("a", cpu="500m")
    cluster.pod("b", cpu="500m")
    return cluster


def test_consolidation_does_not_move_pods_onto_a_node_inside_its_consolidate_after_window() -> None:
    """consolidation_test.go "should not consolidate pods onto a destination node that is under its
    consolidateAfter window": both nodes initialized just now with consolidateAfter 1m; once the window
    has passed, the delete goes ahead."""
    cluster = _two_small_machines()
    found, _ = cluster.candidates()
    outcome = singlenode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is None
    cluster.clock.step(dt.timedelta(minutes=2))
    found, _ = cluster.candidates()
    outcome = singlenode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert outcome.command.decision is Decision.DELETE


def test_a_node_whose_pool_never_consolidates_is_still_a_destination() -> None:
    """consolidation_test.go "should consolidate pods onto a destination node with consolidateAfter set to
    Never"."""
    cluster = _two_small_machines(destination_pool="keep")
    found, _ = cluster.candidates()
    outcome = singlenode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert [c.name for c in outcome.command.candidates] == ["a"]
    assert outcome.command.decision is Decision.DELETE


def test_drift_may_move_pods_onto_a_node_inside_its_consolidate_after_window() -> None:
    """Only consolidation simulations keep off such nodes (Karpenter's ``IsConsolidationSimulation`` is
    not passed by drift)."""
    cluster = _two_small_machines()
    claim = next(n.nodeclaim for n in cluster.snapshot().nodes if n.name == "a")
    assert claim is not None
    cluster.machine("a", "small", drifted="NodePoolDrifted")
    found, _ = cluster.candidates(candidates.DisruptionClass.EVENTUAL)
    outcome = drift.compute(found, UNLIMITED, cluster.simulate(enforce_consolidate_after=False))
    assert outcome.command is not None
    assert outcome.command.decision is Decision.DELETE
