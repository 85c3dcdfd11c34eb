"""Static NodePools (``spec.replicas``) under disruption, as Karpenter treats them (emptiness and
consolidation skip static pools; ``disruption/staticdrift.go`` replaces drifted ones): emptiness and
consolidation leave their nodes alone (the static reconciler owns the count), drift still replaces them."""

from __future__ import annotations

from nodesmith.disruption import candidates, drift, emptiness, singlenode
from nodesmith.disruption.commands import RejectionReason
from nodesmith.state import simulation

from . import factories
from .factories import Cluster

UNLIMITED = {"default": 100}


def test_emptiness_leaves_an_empty_node_of_a_static_pool() -> None:
    cluster = Cluster()
    cluster.pool(replicas=2)
    cluster.machine("a")
    found, _ = cluster.candidates()
    assert emptiness.compute(found, UNLIMITED).command is None
    rejection = emptiness.eligible(found[0])
    assert rejection is not None
    assert rejection.reason is RejectionReason.STATIC_NODEPOOL


def test_consolidation_leaves_a_static_node_whose_pods_fit_elsewhere() -> None:
    cluster = Cluster()
    cluster.pool(replicas=2)
    cluster.machine("a", "medium")
    cluster.machine("b", "medium")
    cluster.pod("a", cpu="1")
    cluster.pod("b", cpu="1")
    found, _ = cluster.candidates()
    outcome = singlenode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is None
    assert {r.reason for r in outcome.rejections} == {RejectionReason.STATIC_NODEPOOL}


def test_a_drifted_node_of_a_static_pool_is_still_disrupted() -> None:
    cluster = Cluster()
    cluster.pool(replicas=1)
    cluster.machine("a", "medium", drifted="NodePoolDrifted")
    found, _ = cluster.candidates(candidates.DisruptionClass.EVENTUAL)
    outcome = drift.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert [c.name for c in outcome.command.candidates] == ["a"]


def test_a_static_pool_offers_no_template_to_provisioning() -> None:
    cluster = Cluster()
    cluster.pool("dynamic")
    cluster.pool("static", replicas=3)
    snapshot = cluster.snapshot()
    types = {name: list(factories.CATALOGUE) for name in ("dynamic", "static")}
    assert [t.nodepool for t in simulation.templates(snapshot, types)] == ["dynamic"]


def test_a_drifted_static_node_whose_pods_fit_nowhere_else_is_still_replaced() -> None:
    """Karpenter's static drift replaces one for one without simulating the pods; here the static loop
    launches the replacement once the node is being disrupted."""
    cluster = Cluster()
    cluster.pool(replicas=1)
    cluster.machine("a", "large", drifted="NodePoolDrifted")
    cluster.pod("a", cpu="7")
    found, _ = cluster.candidates(candidates.DisruptionClass.EVENTUAL)
    outcome = drift.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert [c.name for c in outcome.command.candidates] == ["a"]
    assert outcome.command.replacements == ()
