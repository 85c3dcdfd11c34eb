"""The methods on a real cluster state and the real scheduling engine: emptiness, drift, single- and
multi-node consolidation, and validation."""

from __future__ import annotations

from nodesmith.disruption import drift, emptiness, multinode, singlenode, validation
from nodesmith.disruption.commands import Decision, Method, Rejection, RejectionReason

from .factories import Cluster

UNLIMITED = {"default": 100}


def test_emptiness_deletes_every_empty_consolidatable_node_within_budget() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "large")
    cluster.machine("b", "small")
    cluster.machine("c", "medium", consolidatable=False)
    cluster.machine("d", "medium")
    cluster.pod("d")
    found, _ = cluster.candidates()
    outcome = emptiness.compute(found, {"default": 1})
    assert outcome.command is not None
    assert [c.name for c in outcome.command.candidates] == ["a"], "most expensive first, one allowed"
    (rejection,) = outcome.rejections
    assert rejection.reason is RejectionReason.BUDGET
    assert rejection.message == "budget of NodePool default for Empty is 1 and is used up"
    assert emptiness.compute(found, {"default": 0}).rejections[0].message == (
        "budget of NodePool default for Empty is 0"
    )


def test_emptiness_skips_pools_that_never_consolidate() -> None:
    cluster = Cluster()
    cluster.pool(consolidate_after="Never")
    cluster.machine("a")
    found, _ = cluster.candidates()
    assert emptiness.compute(found, UNLIMITED).command is None


def test_single_node_deletes_a_node_whose_pods_fit_elsewhere() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "medium")
    cluster.machine("b", "medium")
    cluster.pod("a", cpu="1")
    cluster.pod("b", cpu="1")
    found, _ = cluster.candidates()
    outcome = singlenode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert outcome.command.decision is Decision.DELETE
    assert len(outcome.command.candidates) == 1
    assert outcome.command.savings == 0.2


def test_single_node_replaces_with_a_strictly_cheaper_node() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "large")
    cluster.pod("a", cpu="1")
    found, _ = cluster.candidates()
    outcome = singlenode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert outcome.command.decision is Decision.REPLACE
    (replacement,) = outcome.command.replacements
    assert [it.name for it in replacement.instance_types] == ["small", "medium"]
    assert outcome.command.savings == 0.4 - 0.1


def test_single_node_says_why_not_when_no_cheaper_node_exists() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "small")
    cluster.pod("a", cpu="1")
    found, _ = cluster.candidates()
    outcome = singlenode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is None
    (rejection,) = outcome.rejections
    assert rejection.reason is RejectionReason.NOT_CHEAPER
    assert rejection.event_reason == "Unconsolidatable"
    assert rejection.message == "can't replace with a cheaper node"


def test_single_node_respects_policy_and_budget() -> None:
    cluster = Cluster()
    cluster.pool(policy="WhenEmpty")
    cluster.pool("other")
    cluster.machine("a", "large")
    cluster.pod("a")
    cluster.machine("b", "large", pool="other")
    cluster.pod("b")
    found, _ = cluster.candidates()
    outcome = singlenode.compute(found, {"default": 5, "other": 0}, cluster.simulate())
    assert outcome.command is None
    reasons = {r.node: r.reason for r in outcome.rejections}
    assert reasons == {"a": RejectionReason.POLICY, "b": RejectionReason.BUDGET}


def test_multi_node_finds_the_largest_set_that_can_go_together() -> None:
    cluster = Cluster()
    cluster.pool()
    for name in ("a", "b", "c"):
        cluster.machine(name, "medium")
        cluster.pod(name, cpu="1")
    found, _ = cluster.candidates()
    outcome = multinode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    # All three would need a new medium: no cheaper than one they already run, so two go and the third
    # takes their pods.
    assert outcome.command.decision is Decision.DELETE
    assert len(outcome.command.candidates) == 2
    assert outcome.command.method is Method.MULTI_NODE


def test_multi_node_replaces_many_with_one_cheaper() -> None:
    cluster = Cluster()
    cluster.pool()
    for name in ("a", "b"):
        cluster.machine(name, "large")
        cluster.pod(name, cpu="1")
    found, _ = cluster.candidates()
    outcome = multinode.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert outcome.command.decision is Decision.REPLACE
    # two 1-CPU pods do not fit a small (1.9 CPU allocatable): one medium replaces two larges
    assert outcome.command.replacements[0].instance_types[0].name == "medium"
    assert len(outcome.command.candidates) == 2


def test_drift_replaces_the_oldest_drifted_node_and_deletes_empty_ones_first() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "medium", drifted="NodePoolDrifted")
    cluster.pod("a", cpu="3")
    cluster.machine("b", "medium")
    cluster.pod("b", cpu="3")
    found, _ = cluster.candidates()
    outcome = drift.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert [c.name for c in outcome.command.candidates] == ["a"]
    assert outcome.command.decision is Decision.REPLACE
    cluster.machine("c", "small", drifted="NodePoolDrifted")
    found, _ = cluster.candidates()
    outcome = drift.compute(found, UNLIMITED, cluster.simulate())
    assert outcome.command is not None
    assert [c.name for c in outcome.command.candidates] == ["c"]
    assert outcome.command.decision is Decision.DELETE
    blocked = drift.compute(found, {"default": 0}, cluster.simulate())
    assert blocked.command is None
    assert {r.reason for r in blocked.rejections} == {RejectionReason.BUDGET}


def test_validation_rejects_a_command_whose_candidate_got_busy() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("a", "medium")
    cluster.machine("b", "medium")
    cluster.pod("a", cpu="1")
    cluster.pod("b", cpu="1")
    found, _ = cluster.candidates()
    command = singlenode.compute(found, UNLIMITED, cluster.simulate()).command
    assert command is not None
    still, _ = cluster.candidates()
    assert validation.validate(command, still, UNLIMITED, cluster.simulate()) == command
    assert isinstance(validation.validate(command, still, {"default": 0}, cluster.simulate()), Rejection)
    gone = command.candidates[0].name
    cluster.pod(gone, annotations={"nodesmith.io/do-not-disrupt": "true"})
    fresh, _ = cluster.candidates()
    verdict = validation.validate(command, fresh, UNLIMITED, cluster.simulate())
    assert isinstance(verdict, Rejection)
    assert verdict.reason is RejectionReason.VALIDATION
    assert verdict.event_reason == "ConsolidationRejected"
    assert "churn" in verdict.message
