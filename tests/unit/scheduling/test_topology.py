"""Topology: spread constraints, pod affinity and anti-affinity (incl. existing pods' anti-affinity),
relaxation of preferred terms, and counting pods already bound."""

from __future__ import annotations

from typing import Any

from nodesmith import scheduling
from nodesmith.testing import factories

from .conftest import HOSTNAME, ZONE, Solve, pods_per_zone, zones_of

APP = {"app": "web"}


def test_zonal_spread_max_skew_1_spreads_over_three_zones(solve: Solve) -> None:
    pods = factories.pods(9, cpu="1", labels=APP, spread=[factories.spread(ZONE, APP)])
    result = solve(pods)
    assert result.pod_errors == {}
    assert pods_per_zone(result) == {"test-zone-1": 3, "test-zone-2": 3, "test-zone-3": 3}


def test_zonal_spread_counts_pods_already_running(solve: Solve) -> None:
    running = [factories.pod(labels=APP, node_name="n1") for _ in range(2)]
    node = factories.existing_node("n1", zone="test-zone-1", cpu="1", bound_pods=running)
    pods = factories.pods(4, cpu="1", labels=APP, spread=[factories.spread(ZONE, APP)])
    result = solve(pods, existing_nodes=[node])
    assert pods_per_zone(result) == {"test-zone-2": 2, "test-zone-3": 2}


def test_zonal_spread_only_counts_zones_some_nodepool_can_create(solve: Solve) -> None:
    one_zone = factories.template(requirements=[factories.expr(ZONE, "In", "test-zone-1")])
    pods = factories.pods(4, cpu="1", labels=APP, spread=[factories.spread(ZONE, APP)])
    assert pods_per_zone(solve(pods, [one_zone])) == {"test-zone-1": 4}
    others = factories.template(
        "other", requirements=[factories.expr(ZONE, "In", "test-zone-2", "test-zone-3")]
    )
    spread = solve(pods, [one_zone, others])
    assert sorted(pods_per_zone(spread).values()) == [1, 1, 2]


def test_min_domains_forces_spreading_beyond_the_existing_domains(solve: Solve) -> None:
    tpl = factories.template(requirements=[factories.expr(ZONE, "In", "test-zone-1", "test-zone-2")])
    pods = factories.pods(4, cpu="1", labels=APP, spread=[factories.spread(ZONE, APP, minDomains=3)])
    result = solve(pods, [tpl])
    assert result.scheduled_count() == 2, "with fewer than minDomains domains the global minimum is 0"


def test_schedule_anyway_spread_is_relaxed_when_unsatisfiable(solve: Solve) -> None:
    tpl = factories.template(requirements=[factories.expr(ZONE, "In", "test-zone-1")])
    pods = factories.pods(3, cpu="1", labels=APP, spread=[factories.spread(ZONE, APP, when="ScheduleAnyway")])
    result = solve(pods, [tpl])
    assert result.pod_errors == {}


def test_hostname_spread_puts_one_pod_per_node(solve: Solve) -> None:
    pods = factories.pods(4, cpu="100m", labels=APP, spread=[factories.spread(HOSTNAME, APP)])
    result = solve(pods)
    assert [len(c.pods) for c in result.new_nodeclaims] == [1, 1, 1, 1]


def test_capacity_type_spread_uses_both_capacity_types(solve: Solve) -> None:
    key = "nodesmith.io/capacity-type"
    pods = factories.pods(4, cpu="1", labels=APP, spread=[factories.spread(key, APP)])
    result = solve(pods)
    per_value = {next(iter(c.requirements.get(key).values)): len(c.pods) for c in result.new_nodeclaims}
    assert per_value == {"on-demand": 2, "spot": 2}


def test_spread_on_a_custom_label_uses_the_nodepool_values(solve: Solve) -> None:
    key = "example.com/rack"
    tpl = factories.template(requirements=[factories.expr(key, "In", "r1", "r2")])
    pods = factories.pods(4, cpu="1", labels=APP, spread=[factories.spread(key, APP)])
    result = solve(pods, [tpl])
    per_value = {next(iter(c.requirements.get(key).values)): len(c.pods) for c in result.new_nodeclaims}
    assert per_value == {"r1": 2, "r2": 2}


def test_match_label_keys_split_spread_by_revision(solve: Solve) -> None:
    def run(**extra: Any) -> dict[str, int]:
        spread = [factories.spread(ZONE, APP, **extra)]
        pods = [factories.pod(cpu="1", labels={**APP, "rev": rev}, spread=spread) for rev in ("1", "2")]
        return pods_per_zone(solve(pods))

    assert run() == {"test-zone-1": 1, "test-zone-2": 1}
    assert run(matchLabelKeys=["rev"]) == {"test-zone-1": 2}, "each revision spreads on its own"


def test_node_affinity_policy_honor_only_counts_matching_nodes(solve: Solve) -> None:
    running = [factories.pod(labels=APP, node_name="n1")]
    node = factories.existing_node(
        "n1", zone="test-zone-1", cpu="1", bound_pods=running, labels={"tier": "other"}
    )
    spread = [factories.spread(ZONE, APP)]
    pods = factories.pods(1, cpu="1", labels=APP, spread=spread, node_selector={"tier": "web"})
    tpl = factories.template(labels={"tier": "web"})
    result = solve(pods, [tpl], existing_nodes=[node])
    assert zones_of(result) == ["test-zone-1"], "the pod on the tier=other node does not count"


def test_hostname_anti_affinity_forces_one_pod_per_node(solve: Solve) -> None:
    anti = [factories.affinity_term(HOSTNAME, APP)]
    result = solve(factories.pods(5, cpu="100m", labels=APP, anti_affinity=anti))
    assert result.pod_errors == {}
    assert [len(c.pods) for c in result.new_nodeclaims] == [1] * 5


def test_zonal_anti_affinity_blocks_every_zone_the_nodeclaim_may_land_in(solve: Solve) -> None:
    """Karpenter keeps the NodeClaim flexible over all empty zones and records all of them, so the rest of
    the batch waits for the next run, when the first node's zone is known."""
    anti = [factories.affinity_term(ZONE, APP)]
    result = solve(factories.pods(3, cpu="100m", labels=APP, anti_affinity=anti))
    assert result.scheduled_count() == 1
    assert zones_of(result) == ["*"]
    assert {e.reasons[0].constraint for e in result.pod_errors.values()} == {scheduling.Constraint.TOPOLOGY}


def test_zonal_anti_affinity_spreads_over_zones_pinned_by_the_pods(solve: Solve) -> None:
    anti = [factories.affinity_term(ZONE, APP)]
    pods = [
        factories.pod(cpu="100m", labels=APP, anti_affinity=anti, node_selector={ZONE: f"test-zone-{i}"})
        for i in (1, 2, 3, 1)
    ]
    result = solve(pods)
    assert result.scheduled_count() == 3
    assert sorted(zones_of(result)) == ["test-zone-1", "test-zone-2", "test-zone-3"]


def test_existing_pods_anti_affinity_blocks_incoming_pods(solve: Solve) -> None:
    guard = factories.pod(
        labels={"app": "guard"}, node_name="n1", anti_affinity=[factories.affinity_term(ZONE, APP)]
    )
    node = factories.existing_node("n1", zone="test-zone-1", cpu="8", bound_pods=[guard])
    result = solve(factories.pods(3, cpu="1", labels=APP), existing_nodes=[node])
    assert "n1" not in result.existing_node_assignments
    assert "test-zone-1" not in zones_of(result)


def test_self_affinity_pulls_a_batch_into_one_zone(solve: Solve) -> None:
    aff = [factories.affinity_term(ZONE, APP)]
    result = solve(factories.pods(6, cpu="3", labels=APP, affinity=aff))
    assert result.pod_errors == {}
    assert len(set(zones_of(result))) == 1


def test_affinity_to_running_pods_follows_them(solve: Solve) -> None:
    db = factories.pod(labels={"app": "db"}, node_name="n1")
    node = factories.existing_node("n1", zone="test-zone-2", cpu="1", bound_pods=[db])
    aff = [factories.affinity_term(ZONE, {"app": "db"})]
    result = solve(factories.pods(2, cpu="1", labels=APP, affinity=aff), existing_nodes=[node])
    assert set(zones_of(result)) == {"test-zone-2"}


def test_affinity_to_pods_of_the_batch_is_solved_by_requeueing(solve: Solve) -> None:
    follower = factories.pod(
        cpu="2", labels={"app": "f"}, affinity=[factories.affinity_term(ZONE, {"app": "db"})]
    )
    leader = factories.pod(
        cpu="1", labels={"app": "db"}, required=[[factories.expr(ZONE, "In", "test-zone-3")]]
    )
    result = solve([follower, leader])
    assert result.pod_errors == {}
    assert set(zones_of(result)) == {"test-zone-3"}


def test_affinity_to_absent_pods_fails_with_a_topology_reason(solve: Solve) -> None:
    aff = [factories.affinity_term(ZONE, {"app": "nobody"})]
    result = solve([factories.pod(labels=APP, affinity=aff)])
    (error,) = result.pod_errors.values()
    assert error.reasons[0].constraint is scheduling.Constraint.TOPOLOGY
    assert error.reasons[0].keys == (ZONE,)


def test_preferred_anti_affinity_is_relaxed_when_it_cannot_hold(solve: Solve) -> None:
    pref = [(50, factories.affinity_term(ZONE, APP))]
    result = solve(factories.pods(4, cpu="100m", labels=APP, preferred_anti_affinity=pref))
    assert result.pod_errors == {}
    assert result.scheduled_count() == 4


def test_preferred_affinity_is_relaxed_when_nothing_matches(solve: Solve) -> None:
    pref = [(50, factories.affinity_term(ZONE, {"app": "nobody"}))]
    result = solve([factories.pod(labels=APP, preferred_affinity=pref)])
    assert result.pod_errors == {}


def test_namespace_selector_scopes_anti_affinity(solve: Solve) -> None:
    term = factories.affinity_term(HOSTNAME, APP, namespaceSelector={"matchLabels": {"team": "x"}})
    pods = [
        factories.pod(namespace="a", cpu="100m", labels=APP, anti_affinity=[term]),
        factories.pod(namespace="b", cpu="100m", labels=APP, anti_affinity=[term]),
    ]
    together = solve(pods, namespaces={"a": {}, "b": {}})
    apart = solve(pods, namespaces={"a": {"team": "x"}, "b": {"team": "x"}})
    assert len(together.new_nodeclaims) == 1
    assert len(apart.new_nodeclaims) == 2
