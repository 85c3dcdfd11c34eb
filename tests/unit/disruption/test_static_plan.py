"""The static NodePool plan (`nodesmith.disruption.static`), after Karpenter's
``pkg/controllers/static/provisioning/suite_test.go`` and ``static/deprovisioning/suite_test.go``: launch
up to ``replicas`` within ``limits.nodes``; scale down by removing NodeClaims not yet launched, then the emptiest (then newest)."""

from __future__ import annotations

from nodesmith.disruption import static

A = static.Member("a", pods=2, created="2025-01-01T00:00:00Z")
B = static.Member("b", pods=0, created="2025-01-01T00:00:00Z")
C = static.Member("c", pods=0, created="2025-01-02T00:00:00Z")


def test_a_pool_at_its_count_needs_nothing() -> None:
    assert static.plan(3, [A, B, C]) == static.Plan()


def test_missing_nodeclaims_are_launched_whatever_the_pods() -> None:
    assert static.plan(5, [A]) == static.Plan(create=4)
    assert static.plan(2, []) == static.Plan(create=2)


def test_the_nodes_limit_caps_launches_and_says_so() -> None:
    assert static.plan(5, [A], node_limit=3) == static.Plan(create=2, limited=True)
    assert static.plan(5, [A, B, C], node_limit=3) == static.Plan(create=0, limited=True)
    assert static.plan(2, [A], node_limit=3) == static.Plan(create=1)


def test_scale_down_removes_the_emptiest_then_the_newest() -> None:
    assert static.plan(2, [A, B, C]) == static.Plan(delete=("c",))
    assert static.plan(1, [A, B, C]) == static.Plan(delete=("c", "b"))
    assert static.plan(0, [A, B, C]) == static.Plan(delete=("c", "b", "a"))


def test_scale_down_is_not_held_back_by_the_limit() -> None:
    assert static.plan(1, [A, B, C], node_limit=1) == static.Plan(delete=("c", "b"))


def test_scale_down_removes_nodeclaims_that_have_not_launched_first() -> None:
    pending = static.Member("d", pods=0, created="2024-12-31T00:00:00Z", launched=False)
    assert static.plan(3, [A, B, C, pending]) == static.Plan(delete=("d",))
