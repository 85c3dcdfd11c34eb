"""`nodesmith explain`'s pure core: why a pod is pending, what disruption makes of a node -- and that
the answer is the disruption reconciler's."""

from __future__ import annotations

import json
import math

import attrs
import pytest

from nodesmith.disruption.commands import Method, RejectionReason
from nodesmith.state import simulation
from nodesmith.whatif import explain, render
from tests.unit.whatif import factories as f


def test_a_pod_with_an_unsatisfiable_node_selector_names_the_pool_and_the_failing_key() -> None:
    b = f.Builder()
    b.pool("default", families=["c"])
    b.pod(None, "1", name="stuck", node_selector={f.FAMILY: "gpu"})
    result = explain.explain_pod(b.file(), "default/stuck")

    assert result.verdict == "pending"
    assert result.pending is not None
    (reason,) = result.pending.reasons
    assert (reason["nodepool"], reason["constraint"], reason["keys"]) == (
        "default",
        "requirements",
        [f.FAMILY],
    )
    assert result.nodepools == {"default": "took part"}


def test_a_schedulable_pod_goes_to_a_new_nodeclaim_with_its_cheapest_offering() -> None:
    b = f.Builder()
    b.pool("default", families=["m"])
    b.pod(None, "1", name="web")
    result = explain.explain_pod(b.file(), "web")

    assert result.verdict == "new-nodeclaim"
    assert result.launch is not None
    assert (result.launch.nodepool, result.launch.instance_type, result.launch.price) == (
        "default",
        "m-2",
        0.12,
    )
    assert "NodePool default" in result.message


def test_pods_are_placed_in_the_engines_order_so_a_big_pod_takes_the_room_first() -> None:
    b = f.Builder()
    b.pool("default", families=["c"], taints=[{"key": "no", "effect": "NoSchedule"}])
    b.machine("room", "c-4")  # about 3.9 CPUs free; pool taint keeps new NodeClaims out
    b.pod(None, "1", name="small")
    b.pod(None, "3", name="big")
    file = b.file()

    assert explain.explain_pod(file, "big").verdict == "existing-node"
    small = explain.explain_pod(file, "small")
    assert small.verdict == "pending"
    assert small.pending is not None
    assert [r["constraint"] for r in small.pending.reasons] == ["taints"]


def test_bound_and_unknown_pods() -> None:
    b = f.Builder()
    b.pool("default")
    b.machine("n1")
    b.pod("n1", "1", name="running")
    file = b.file()

    assert explain.explain_pod(file, "default/running").node == "n1"
    with pytest.raises(LookupError, match="default/ghost"):
        explain.explain_pod(file, "default/ghost")


def test_a_node_with_a_do_not_disrupt_pod_is_not_a_candidate_and_every_reason_is_listed() -> None:
    b = f.Builder()
    b.pool("default")
    b.machine("n1", node_annotations={"nodesmith.io/do-not-disrupt": "true"})
    b.pod("n1", "1", name="precious", annotations={"karpenter.sh/do-not-disrupt": "true"})
    b.pod("n1", "1", name="guarded", app="guarded")
    b.pdb("guard", "guarded", 0)
    result = explain.explain_node(b.file(), "n1")

    assert result.verdict == "not-a-candidate"
    assert [r.reason for r in result.blockers] == [
        RejectionReason.DO_NOT_DISRUPT,
        RejectionReason.DO_NOT_DISRUPT,
        RejectionReason.PDB,
    ]
    assert "default/precious" in result.blockers[1].message
    assert result.removal is None


def test_an_underutilized_node_whose_pods_fit_elsewhere_is_explained_as_delete() -> None:
    b = f.Builder()
    b.pool("default")
    b.machine("busy", "c-4")
    b.machine("idle", "c-2")
    b.pod("busy", "1")
    b.pod("idle", "500m")
    result = explain.explain_node(b.file(), "idle")

    assert result.verdict == "delete"
    assert result.removal is not None
    assert result.removal["decision"] == "delete"
    assert result.removal["savings"] == 0.08


def test_a_node_too_full_to_move_would_be_replaced_by_a_cheaper_one_with_savings() -> None:
    b = f.Builder()
    b.pool("default", families=["c"])
    b.machine("big", "c-4")
    b.pod("big", "1")
    result = explain.explain_node(b.file(), "big")

    assert result.verdict == "replace"
    assert result.removal is not None
    (replacement,) = result.removal["replacements"]
    assert replacement["instance_types"][0] == "c-2"
    assert result.removal["savings"] == 0.16 - 0.08


def test_when_empty_policy_and_consolidate_after_are_given_as_reasons() -> None:
    b = f.Builder()
    b.pool("empty-only", policy="WhenEmpty")
    b.pool("patient", consolidate_after="2h")
    b.machine("a", pool="empty-only")
    b.machine("p", pool="patient", consolidatable=False)
    b.pod("a", "1")
    b.pod("p", "1")
    file = b.file()
    when_empty = explain.explain_node(file, "a")
    patient = explain.explain_node(file, "p")

    assert when_empty.verdict == "keep"
    assert "WhenEmpty, but the node is not empty" in when_empty.message
    assert patient.verdict == "keep"
    assert "not consolidatable yet" in patient.message
    assert "to go" in patient.consolidatable  # snapshot at 01:00, initialized 00:00, consolidateAfter 2h


def test_a_zero_budget_is_the_reason() -> None:
    b = f.Builder()
    b.pool("frozen", budgets=[{"nodes": "0"}])
    b.machine("n1", "c-4", pool="frozen")
    b.pod("n1", "1")
    result = explain.explain_node(b.file(), "n1")

    assert result.verdict == "keep"
    assert result.budgets["Underutilized"] == 0
    assert "budget of NodePool frozen for Underutilized is 0" in result.message


def test_explain_agrees_with_single_node_consolidation_on_the_same_snapshot() -> None:
    b = f.Builder()
    b.pool("default")
    b.machine("busy", "c-4")
    b.machine("idle", "c-2")
    b.pod("busy", "1")
    b.pod("idle", "500m")
    file = b.file()
    state, _ = file.state()
    outcome, _, _ = simulation.disruption_outcome(Method.SINGLE_NODE, state.snapshot(), file.instance_types)
    assert outcome.command is not None
    (picked,) = outcome.command.candidates  # the highest savings ratio goes first: busy
    result = explain.explain_node(file, picked.name)

    assert result.verdict == outcome.command.decision.value
    assert result.removal is not None
    assert result.removal["savings"] == outcome.command.to_dict()["savings"]
    assert result.next_command == {
        "method": Method.SINGLE_NODE.value,
        "command": outcome.command.describe(),
        "includesThisNode": True,
    }


def test_text_rendering_names_blockers_and_the_next_command() -> None:
    b = f.Builder()
    b.pool("default")
    b.machine("n1")
    b.pod("n1", "1", name="precious", annotations={"nodesmith.io/do-not-disrupt": "true"})
    text = "\n".join(render.node_explanation(explain.explain_node(b.file(), "n1")))

    assert "node n1: not-a-candidate" in text
    assert 'blocked: do-not-disrupt: pod default/precious has "nodesmith.io/do-not-disrupt: true"' in text
    assert "next disruption: none on this snapshot" in text


def test_a_machine_whose_offering_has_no_price_is_never_replaced_for_infinite_savings() -> None:
    # a provider reports an offering it cannot price at infinity (AWS without a price for it)
    b = f.Builder()
    b.pool("default", families=["c"])
    b.machine("n1", "c-4")
    b.pod("n1", "1")
    file = b.file()
    unpriced = {
        "default": tuple(
            attrs.evolve(it, offerings=tuple(attrs.evolve(o, price=math.inf) for o in it.offerings))
            if it.name == "c-4"
            else it
            for it in f.CATALOGUE
        )
    }
    state, _ = file.state()
    outcome, _, _ = simulation.disruption_outcome(Method.SINGLE_NODE, state.snapshot(), unpriced)
    assert outcome.command is None
    (rejection,) = outcome.rejections
    assert rejection.reason is RejectionReason.INSTANCE_TYPE_UNKNOWN
    record = json.dumps(outcome.to_dict(), allow_nan=False)  # valid JSON: no Infinity anywhere
    assert "instance-type-unknown" in record


def test_a_pod_without_a_uid_is_explained_as_the_engine_places_it() -> None:
    b = f.Builder()
    b.pool("default", families=["c"])
    b.pod(None, "1", name="handwritten")
    del b.objects[-1]["metadata"]["uid"]  # a hand-written snapshot may leave it out
    result = explain.explain_pod(b.file(), "default/handwritten")
    assert result.verdict == "new-nodeclaim"


def test_a_daemonset_pod_is_not_blamed_on_kube_scheduler() -> None:
    b = f.Builder()
    b.pool("default", families=["c"])
    b.pod(None, "1", name="agent")
    b.objects[-1]["metadata"]["ownerReferences"][0]["kind"] = "DaemonSet"
    result = explain.explain_pod(b.file(), "default/agent")
    assert result.verdict == "not-provisionable"
    assert result.message.startswith("a DaemonSet pod")
