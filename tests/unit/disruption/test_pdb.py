"""Which pods a PodDisruptionBudget keeps in place (Karpenter's ``pdb.Limits``), read from pods parsed
once into views, as the cluster state hands them to disruption."""

from __future__ import annotations

from typing import Any

from nodesmith.disruption import pdb
from nodesmith.state.views import PodView


def _pod(name: str, *, app: str = "web", namespace: str = "default", ready: bool = True) -> PodView:
    return PodView.parse(
        {
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]},
        }
    )


def _pdb(name: str, *, app: str = "web", allowed: int = 0, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": app}}, **spec},
        "status": {"disruptionsAllowed": allowed},
    }


def test_a_pdb_allowing_no_disruption_blocks_the_pods_it_selects_in_its_namespace() -> None:
    limits = pdb.Limits.of([_pdb("guard")])
    assert limits.blocking(_pod("web-1")) == "PDB default/guard prevents eviction of pod default/web-1"
    assert limits.blocking(_pod("db-1", app="db")) is None
    assert limits.blocking(_pod("web-2", namespace="other")) is None
    assert pdb.Limits.of([_pdb("guard", allowed=1)]).blocking(_pod("web-1")) is None


def test_always_allow_lets_an_unready_pod_go_but_not_a_ready_one() -> None:
    limits = pdb.Limits.of([_pdb("guard", unhealthyPodEvictionPolicy="AlwaysAllow")])
    assert limits.blocking(_pod("sick", ready=False)) is None
    assert limits.blocking(_pod("well")) == "PDB default/guard prevents eviction of pod default/well"


def test_two_pdbs_on_one_pod_block_it_for_good() -> None:
    limits = pdb.Limits.of([_pdb("a", allowed=5), _pdb("b", allowed=5)])
    why = "pod default/web-1 is selected by more than one PDB (default/a, default/b)"
    assert limits.blocking(_pod("web-1")) == why
    assert limits.fully_blocking(_pod("web-1")) == why


def test_only_a_pdb_that_never_allows_eviction_blocks_fully() -> None:
    assert pdb.Limits.of([_pdb("guard")]).fully_blocking(_pod("web-1")) is None
    never = pdb.Limits.of([_pdb("never", maxUnavailable=0)])
    assert (
        never.fully_blocking(_pod("web-1")) == "PDB default/never never allows eviction of pod default/web-1"
    )
    unhealthy = pdb.Limits.of([_pdb("never", maxUnavailable=0, unhealthyPodEvictionPolicy="AlwaysAllow")])
    assert unhealthy.fully_blocking(_pod("sick", ready=False)) is None
