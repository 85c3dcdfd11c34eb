"""Who may be disrupted at all: eligibility with structured reasons, price and disruption cost."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from nodesmith.disruption import candidates
from nodesmith.disruption.commands import Rejection, RejectionReason

from .factories import T0, Cluster

Setup = Callable[[Cluster], None]


def _pod(annotations: dict[str, str], started: str = "2025-01-01T00:00:00Z") -> Setup:
    def setup(c: Cluster) -> None:
        c.pod("n1", annotations=annotations, started=started)

    return setup


def _guarded(*allowed: int) -> Setup:
    def setup(c: Cluster) -> None:
        c.pod("n1")
        for index, count in enumerate(allowed):
            c.pdb("pdb" if len(allowed) == 1 else f"pdb-{index}", "app", count)

    return setup


CASES: list[tuple[str, Setup, RejectionReason | None, str]] = [
    ("plain node", lambda c: None, None, ""),
    ("not initialized", lambda c: None, RejectionReason.NOT_INITIALIZED, ""),
    (
        "nominated",
        lambda c: c.state.nominate("test://n1", T0 + dt.timedelta(minutes=1)),
        RejectionReason.NOMINATED,
        "",
    ),
    ("marked", lambda c: c.state.mark_for_deletion("test://n1"), RejectionReason.MARKED_FOR_DELETION, ""),
    (
        "nodesmith pod annotation",
        _pod({"nodesmith.io/do-not-disrupt": "true"}),
        RejectionReason.DO_NOT_DISRUPT,
        "nodesmith.io/do-not-disrupt",
    ),
    (
        "karpenter pod annotation",
        _pod({"karpenter.sh/do-not-disrupt": "true"}),
        RejectionReason.DO_NOT_DISRUPT,
        "karpenter.sh/do-not-disrupt",
    ),
    (
        "duration still running",
        _pod({"nodesmith.io/do-not-disrupt": "1h"}, "2024-12-31T23:30:00Z"),
        RejectionReason.DO_NOT_DISRUPT,
        "1h",
    ),
    ("duration elapsed", _pod({"nodesmith.io/do-not-disrupt": "1h"}, "2024-12-31T22:00:00Z"), None, ""),
    ("invalid annotation ignored", _pod({"karpenter.sh/do-not-disrupt": "soon"}), None, ""),
    (
        "pdb allows none",
        _guarded(0),
        RejectionReason.PDB,
        "PDB default/pdb prevents eviction",
    ),
    ("pdb allows one", _guarded(1), None, ""),
    (
        "two pdbs",
        _guarded(1, 1),
        RejectionReason.PDB,
        "more than one PDB",
    ),
]


@pytest.mark.parametrize(("title", "setup", "reason", "text"), CASES, ids=[c[0] for c in CASES])
def test_eligibility(title: str, setup: Setup, reason: RejectionReason | None, text: str) -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("n1", initialized=title != "not initialized")
    setup(cluster)
    found, rejected = cluster.candidates()
    if reason is None:
        assert [c.name for c in found] == ["n1"]
        return
    assert found == []
    (rejection,) = rejected
    assert rejection.reason is reason
    assert text in rejection.message
    assert rejection.nodeclaim == "claim-n1"


def test_node_annotation_blocks_and_queued_nodes_are_skipped() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("n1", node_annotations={"karpenter.sh/do-not-disrupt": "true"})
    cluster.machine("n2")
    snapshot = cluster.snapshot()
    verdicts = {
        n.name: candidates.evaluate(n, cluster.context(snapshot, queued=frozenset({"test://n2"})))
        for n in snapshot.nodes
    }
    assert isinstance(verdicts["n1"], Rejection)
    assert verdicts["n1"].reason is RejectionReason.DO_NOT_DISRUPT
    assert isinstance(verdicts["n2"], Rejection)
    assert verdicts["n2"].reason is RejectionReason.IN_QUEUE
    assert verdicts["n2"].reason.quiet


def test_drift_with_a_grace_period_waives_blocking_pods() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("n1", termination_grace_period="1h")
    cluster.pod("n1", annotations={"nodesmith.io/do-not-disrupt": "true"})
    assert cluster.candidates(candidates.DisruptionClass.GRACEFUL)[0] == []
    (found,), _ = cluster.candidates(candidates.DisruptionClass.EVENTUAL)
    assert found.name == "n1"


def test_price_cost_and_emptiness() -> None:
    cluster = Cluster()
    cluster.pool()
    cluster.machine("n1", "large")
    cluster.pod("n1", cpu="1")
    cluster.pod("n1", cpu="1", owner="DaemonSet")
    cluster.machine("n2", "small")
    cluster.pod("n2", owner="DaemonSet")
    found, _ = cluster.candidates()
    by_name = {c.name: c for c in found}
    assert by_name["n1"].price == pytest.approx(0.4)
    assert by_name["n1"].disruption_cost == pytest.approx(2.0)
    assert not by_name["n1"].is_empty
    assert by_name["n2"].is_empty, "DaemonSet pods do not move"
    assert by_name["n1"].savings_ratio == pytest.approx(0.2)
