"""The solve loop: resources, requirements, taints, NodePools (weights, limits), DaemonSets, minValues,
existing nodes, instance-type ordering and truncation, deadlines and determinism."""

from __future__ import annotations

import pytest

from nodesmith import scheduling
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.testing import factories

from .conftest import CAPACITY_TYPE, INSTANCE_TYPE, ZONE, Solve

NO_SCHEDULE = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


# -- resources and packing ----------------------------------------------------------------------------


def test_small_pods_share_one_nodeclaim_sized_to_their_sum(solve: Solve) -> None:
    result = solve(factories.pods(3, cpu="1", memory="1Gi"))
    assert len(result.new_nodeclaims) == 1
    claim = result.new_nodeclaims[0]
    assert len(claim.pods) == 3
    assert claim.requests["cpu"] == 3000
    assert claim.instance_types[0].name == "fake-it-3", "3 vCPU needs the 4-vCPU type (100m is reserved)"


def test_pod_larger_than_every_instance_type_is_refused_naming_the_resource(solve: Solve) -> None:
    result = solve([factories.pod(cpu="64")])
    assert result.new_nodeclaims == ()
    (error,) = result.pod_errors.values()
    (reason,) = error.reasons
    assert reason.constraint is scheduling.Constraint.INSTANCE_TYPES
    assert reason.resources == ("cpu",)
    assert "cpu" in error.message()


def test_pods_resource_counts_like_kubernetes(solve: Solve) -> None:
    its = [factories.instance_type("tiny", cpu=16, memory="32Gi", pods=2)]
    result = solve(factories.pods(3, cpu="100m"), [factories.template(instance_types=its)])
    assert [len(c.pods) for c in result.new_nodeclaims] == [2, 1]


def test_nodeclaim_lists_compatible_types_cheapest_first(solve: Solve) -> None:
    result = solve([factories.pod(cpu="2")])
    names = [it.name for it in result.new_nodeclaims[0].instance_types]
    assert names == [f"fake-it-{i}" for i in range(2, 10)]


def test_instance_types_are_truncated_to_600(solve: Solve) -> None:
    its = factories.fake_instance_types(700)
    result = solve([factories.pod(cpu="1")], [factories.template(instance_types=its)])
    claim = result.new_nodeclaims[0]
    assert len(claim.instance_types) == scheduling.MAX_INSTANCE_TYPES
    prices = [claim.instance_types[i].offerings[0].price for i in range(len(claim.instance_types))]
    assert prices == sorted(prices)


def test_unavailable_offerings_do_not_count(solve: Solve) -> None:
    its = [
        factories.instance_type(
            "a", cpu=4, memory="8Gi", zones=["z1"], unavailable=[("z1", "spot"), ("z1", "on-demand")]
        ),
        factories.instance_type("b", cpu=8, memory="16Gi", zones=["z1"]),
    ]
    result = solve([factories.pod(cpu="1")], [factories.template(instance_types=its)])
    assert [it.name for it in result.new_nodeclaims[0].instance_types] == ["b"]


# -- node requirements ---------------------------------------------------------------------------------


def test_pod_requiring_a_label_no_nodepool_offers_is_refused_with_the_key(solve: Solve) -> None:
    result = solve([factories.pod(node_selector={"example.com/team": "a"})])
    assert result.new_nodeclaims == ()
    (error,) = result.pod_errors.values()
    assert error.reasons[0].constraint is scheduling.Constraint.REQUIREMENTS
    assert error.reasons[0].keys == ("example.com/team",)


def test_node_selector_on_a_nodepool_label_is_satisfied(solve: Solve) -> None:
    tpl = factories.template(labels={"example.com/team": "a"})
    result = solve([factories.pod(node_selector={"example.com/team": "a"})], [tpl])
    assert len(result.new_nodeclaims) == 1
    assert result.new_nodeclaims[0].labels["example.com/team"] == "a"


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        (factories.expr(ZONE, "In", "test-zone-2"), {"test-zone-2"}),
        (factories.expr(ZONE, "NotIn", "test-zone-1", "test-zone-2"), {"test-zone-3"}),
    ],
)
def test_required_node_affinity_narrows_the_nodeclaim(
    solve: Solve, expression: dict[str, object], zone: set[str]
) -> None:
    result = solve([factories.pod(required=[[expression]])])
    claim = result.new_nodeclaims[0]
    assert {
        o.zone for it in claim.instance_types for o in it.compatible_offerings(claim.requirements)
    } == zone


def test_ored_required_terms_fall_back_to_the_next_term(solve: Solve) -> None:
    pod = factories.pod(
        required=[[factories.expr(ZONE, "In", "mars")], [factories.expr(ZONE, "In", "test-zone-3")]]
    )
    result = solve([pod])
    assert result.pod_errors == {}
    assert result.new_nodeclaims[0].requirements.get(ZONE) == Requirement.in_(ZONE, "test-zone-3")


def test_preferred_node_affinity_is_honoured_when_possible_and_relaxed_when_not(solve: Solve) -> None:
    honoured = solve([factories.pod(preferred=[(10, [factories.expr(ZONE, "In", "test-zone-2")])])])
    assert honoured.new_nodeclaims[0].requirements.get(ZONE) == Requirement.in_(ZONE, "test-zone-2")
    relaxed = solve([factories.pod(preferred=[(10, [factories.expr(ZONE, "In", "mars")])])])
    assert relaxed.pod_errors == {}
    assert ZONE not in relaxed.new_nodeclaims[0].requirements


def test_preference_policy_ignore_drops_preferences(solve: Solve) -> None:
    pod = factories.pod(preferred=[(10, [factories.expr(ZONE, "In", "test-zone-2")])])
    result = solve([pod], preference_policy="Ignore")
    assert ZONE not in result.new_nodeclaims[0].requirements


# -- taints ----------------------------------------------------------------------------------------------


def test_untolerated_nodepool_taint_refuses_the_pod(solve: Solve) -> None:
    result = solve([factories.pod()], [factories.template(taints=[NO_SCHEDULE])])
    (error,) = result.pod_errors.values()
    assert error.reasons[0].constraint is scheduling.Constraint.TAINTS
    assert "dedicated=gpu:NoSchedule" in error.message()


def test_tolerated_taint_and_startup_taints_allow_the_pod(solve: Solve) -> None:
    tpl = factories.template(
        taints=[NO_SCHEDULE], startup_taints=[{"key": "booting", "effect": "NoSchedule"}]
    )
    toleration = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    result = solve([factories.pod(tolerations=[toleration])], [tpl])
    assert result.pod_errors == {}
    assert result.new_nodeclaims[0].startup_taints[0].key == "booting"


def test_prefer_no_schedule_taint_is_tolerated_after_relaxation(solve: Solve) -> None:
    tpl = factories.template(taints=[{"key": "spot", "effect": "PreferNoSchedule"}])
    result = solve([factories.pod()], [tpl])
    assert result.pod_errors == {}


# -- NodePools: weight, limits ---------------------------------------------------------------------------


def test_heavier_nodepool_is_tried_first_even_when_a_lighter_one_is_cheaper(solve: Solve) -> None:
    cheap = factories.template("cheap", factories.fake_instance_types(4), weight=1)
    pricey = factories.template(
        "pricey", [factories.instance_type("big", cpu=8, memory="16Gi", price=100.0)], weight=50
    )
    result = solve([factories.pod(cpu="1")], [cheap, pricey])
    assert result.new_nodeclaims[0].nodepool == "pricey"


def test_equal_weights_try_nodepools_by_name_descending(solve: Solve) -> None:
    result = solve([factories.pod()], [factories.template("a"), factories.template("b")])
    assert result.new_nodeclaims[0].nodepool == "b"


@pytest.mark.parametrize(
    ("limits", "created"),
    [
        pytest.param({"cpu": "0"}, 0, id="cpu-0-allows-nothing"),
        pytest.param({"nodes": "0"}, 0, id="nodes-0"),
        pytest.param({"nodes": "1"}, 1, id="nodes-1"),
        pytest.param({"cpu": "20"}, 2, id="cpu-20-takes-two-10-vcpu-maximums"),
    ],
)
def test_limits_stop_new_nodeclaims(solve: Solve, limits: dict[str, str], created: int) -> None:
    spread = [factories.spread("kubernetes.io/hostname", {"app": "x"})]
    pods = factories.pods(4, cpu="1", labels={"app": "x"}, spread=spread)
    result = solve(pods, [factories.template(limits=limits)])
    assert len(result.new_nodeclaims) == created
    assert len(result.pod_errors) == 4 - created
    for error in result.pod_errors.values():
        assert error.reasons[0].constraint in (scheduling.Constraint.LIMITS, scheduling.Constraint.TOPOLOGY)


def test_exhausted_limits_fall_through_to_the_next_nodepool(solve: Solve) -> None:
    limited = factories.template("limited", weight=10, limits={"cpu": "0"})
    spare = factories.template("spare")
    result = solve([factories.pod()], [limited, spare])
    assert [c.nodepool for c in result.new_nodeclaims] == ["spare"]


def test_limits_exclude_instance_types_bigger_than_what_is_left(solve: Solve) -> None:
    result = solve([factories.pod(cpu="1")], [factories.template(limits={"cpu": "3"})])
    assert max(int(it.name.rsplit("-", 1)[1]) for it in result.new_nodeclaims[0].instance_types) == 2


# -- DaemonSets ---------------------------------------------------------------------------------------------


def test_daemonset_overhead_pushes_to_a_larger_type(solve: Solve) -> None:
    without = solve([factories.pod(cpu="1")])
    with_ds = solve([factories.pod(cpu="1")], daemonset_pods=[factories.daemonset_pod(cpu="1")])
    assert without.new_nodeclaims[0].instance_types[0].name == "fake-it-1"
    assert with_ds.new_nodeclaims[0].instance_types[0].name == "fake-it-2"
    assert with_ds.new_nodeclaims[0].requests["cpu"] == 2000, (
        "requests include the smallest DaemonSet overhead"
    )


def test_daemonset_that_does_not_tolerate_the_nodepool_adds_no_overhead(solve: Solve) -> None:
    tpl = factories.template(taints=[NO_SCHEDULE])
    toleration = {"key": "dedicated", "operator": "Exists"}
    result = solve(
        [factories.pod(cpu="1", tolerations=[toleration])],
        [tpl],
        daemonset_pods=[factories.daemonset_pod(cpu="4")],
    )
    assert result.new_nodeclaims[0].instance_types[0].name == "fake-it-1"


def test_daemonset_overhead_depends_on_the_instance_type(solve: Solve) -> None:
    its = [
        factories.instance_type("small-arm", cpu=2, memory="4Gi", arch="arm64", price=0.1),
        factories.instance_type("big-amd", cpu=4, memory="8Gi", price=1.0),
    ]
    ds = factories.daemonset_pod(cpu="1500m", node_selector={"kubernetes.io/arch": "amd64"})
    result = solve([factories.pod(cpu="1")], [factories.template(instance_types=its)], daemonset_pods=[ds])
    claim = result.new_nodeclaims[0]
    assert [it.name for it in claim.instance_types] == ["small-arm", "big-amd"]
    assert claim.requests["cpu"] == 1000, "the arm type runs no DaemonSet pod: minimum overhead is zero"


# -- minValues ------------------------------------------------------------------------------------------------


def _min_values_template(min_values: int) -> scheduling.NodeClaimTemplate:
    reqs = Requirements([Requirement.new(INSTANCE_TYPE, "Exists", min_values=min_values)])
    return factories.template(instance_types=factories.fake_instance_types(5), requirements=reqs)


def test_min_values_keep_enough_instance_types(solve: Solve) -> None:
    result = solve([factories.pod(cpu="2")], [_min_values_template(3)])
    assert len(result.new_nodeclaims[0].instance_types) >= 3


def test_min_values_strict_refuses_when_too_few_types_fit(solve: Solve) -> None:
    result = solve([factories.pod(cpu="3")], [_min_values_template(3)])
    (error,) = result.pod_errors.values()
    assert error.reasons[0].constraint is scheduling.Constraint.MIN_VALUES


def test_min_values_best_effort_relaxes_and_says_so(solve: Solve) -> None:
    result = solve([factories.pod(cpu="3")], [_min_values_template(3)], min_values_policy="BestEffort")
    claim = result.new_nodeclaims[0]
    assert claim.min_values_relaxed
    assert claim.requirements.get(INSTANCE_TYPE).min_values == 2


# -- existing nodes ------------------------------------------------------------------------------------------


def test_existing_nodes_are_used_before_new_nodeclaims(solve: Solve) -> None:
    node = factories.existing_node("n1", cpu="4")
    result = solve(factories.pods(2, cpu="1"), existing_nodes=[node])
    assert result.new_nodeclaims == ()
    assert len(result.existing_node_assignments["n1"]) == 2


def test_full_existing_node_spills_to_a_new_nodeclaim(solve: Solve) -> None:
    node = factories.existing_node("n1", cpu="4", requested={"cpu": "3500m"})
    result = solve(factories.pods(2, cpu="1"), existing_nodes=[node])
    assert "n1" not in result.existing_node_assignments
    assert len(result.new_nodeclaims) == 1


def test_existing_node_reserves_room_for_daemonsets_not_yet_running(solve: Solve) -> None:
    node = factories.existing_node("n1", cpu="2")
    ds = factories.daemonset_pod(cpu="1500m")
    result = solve([factories.pod(cpu="1")], existing_nodes=[node], daemonset_pods=[ds])
    assert "n1" not in result.existing_node_assignments


def test_initialized_nodes_are_preferred_then_names(solve: Solve) -> None:
    nodes = [
        factories.existing_node("a", initialized=False),
        factories.existing_node("c"),
        factories.existing_node("b"),
    ]
    result = solve([factories.pod(cpu="1")], existing_nodes=nodes)
    assert list(result.existing_node_assignments) == ["b"]


def test_existing_node_taints_must_be_tolerated_unless_ephemeral_on_an_uninitialized_node(
    solve: Solve,
) -> None:
    tainted = factories.existing_node("t", taints=[NO_SCHEDULE])
    booting = factories.existing_node(
        "u", initialized=False, taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    )
    result = solve([factories.pod(cpu="1")], existing_nodes=[tainted, booting])
    assert list(result.existing_node_assignments) == ["u"]


def test_host_ports_conflict_on_one_node(solve: Solve) -> None:
    result = solve(factories.pods(2, host_ports=[80]))
    assert len(result.new_nodeclaims) == 2


def test_in_flight_nodeclaims_with_fewest_pods_go_first(solve: Solve) -> None:
    anti = [factories.affinity_term("kubernetes.io/hostname", {"app": "solo"})]
    solos = factories.pods(2, cpu="2", labels={"app": "solo"}, anti_affinity=anti)
    small = factories.pods(2, cpu="100m")
    result = solve([*solos, *small])
    assert [len(c.pods) for c in result.new_nodeclaims] == [2, 2]


# -- volumes ----------------------------------------------------------------------------------------------------


def test_bound_volume_pins_the_zone(solve: Solve) -> None:
    catalog = scheduling.VolumeCatalog(
        claims={
            ("default", "data"): {
                "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
                "spec": {"volumeName": "pv1"},
            }
        },
        volumes={
            "pv1": {
                "spec": {
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [factories.expr(ZONE, "In", "test-zone-3")]}
                            ]
                        }
                    },
                    "csi": {"driver": "ebs.csi.aws.com"},
                }
            }
        },
    )
    result = solve([factories.pod(claims=["data"])], volumes=catalog)
    assert result.new_nodeclaims[0].requirements.get(ZONE) == Requirement.in_(ZONE, "test-zone-3")


def test_storage_class_allowed_topologies_constrain_unbound_claims(solve: Solve) -> None:
    catalog = scheduling.VolumeCatalog(
        claims={("default", "data"): {"spec": {"storageClassName": "zonal"}}},
        storage_classes={
            "zonal": {
                "provisioner": "ebs.csi.aws.com",
                "allowedTopologies": [{"matchLabelExpressions": [{"key": ZONE, "values": ["test-zone-2"]}]}],
            }
        },
    )
    result = solve([factories.pod(claims=["data"])], volumes=catalog)
    assert result.new_nodeclaims[0].requirements.get(ZONE) == Requirement.in_(ZONE, "test-zone-2")


def test_csi_volume_limit_keeps_pods_off_a_full_node(solve: Solve) -> None:
    catalog = scheduling.VolumeCatalog(
        claims={("default", f"c{i}"): {"spec": {"storageClassName": "sc"}} for i in range(2)},
        storage_classes={"sc": {"provisioner": "ebs.csi.aws.com"}},
    )
    node = factories.existing_node("n1", csi_limits={"ebs.csi.aws.com": 1})
    result = solve(
        [factories.pod(claims=["c0"]), factories.pod(claims=["c1"])], existing_nodes=[node], volumes=catalog
    )
    assert len(result.existing_node_assignments["n1"]) == 1
    assert len(result.new_nodeclaims) == 1


# -- run-level behaviour ---------------------------------------------------------------------------------


def test_the_same_input_gives_the_same_output(solve: Solve) -> None:
    def run() -> scheduling.Results:
        pods = [
            *factories.pods(
                5, name=None, cpu="500m", labels={"app": "a"}, spread=[factories.spread(ZONE, {"app": "a"})]
            ),
            *factories.pods(
                5,
                cpu="1",
                labels={"app": "b"},
                anti_affinity=[factories.affinity_term("kubernetes.io/hostname", {"app": "b"})],
            ),
        ]
        for i, pod in enumerate(pods):  # same names and uids on both runs
            pod["metadata"]["name"] = pod["metadata"]["uid"] = f"p{i}"
        return solve(pods)

    a, b = run(), run()
    assert a == b


def test_expired_deadline_returns_partial_results_with_reasons(solve: Solve) -> None:
    result = solve(factories.pods(3, cpu="1"), deadline=lambda: True)
    assert result.timed_out
    assert result.new_nodeclaims == ()
    assert {e.constraint for e in result.pod_errors.values()} == {scheduling.Constraint.DEADLINE}


def test_deadline_mid_run_keeps_what_was_placed(solve: Solve) -> None:
    calls = iter(range(100))
    result = solve(factories.pods(4, cpu="1"), deadline=lambda: next(calls) >= 2)
    assert result.scheduled_count() == 2
    assert len(result.pod_errors) == 2


def test_invalid_pods_are_reported_not_placed(solve: Solve) -> None:
    result = solve([factories.pod(required=[[factories.expr("nodesmith.io/nodepool", "DoesNotExist")]])])
    (error,) = result.pod_errors.values()
    assert error.constraint is scheduling.Constraint.INVALID


def test_no_nodepools_is_a_reason(solve: Solve) -> None:
    result = solve([factories.pod()], [])
    (error,) = result.pod_errors.values()
    assert error.reasons[0].constraint is scheduling.Constraint.NO_NODEPOOLS


def test_identical_failing_pods_share_the_verdict(solve: Solve) -> None:
    result = solve(factories.pods(50, node_selector={"example.com/team": "a"}))
    assert len(result.pod_errors) == 50
    assert len({e.reasons for e in result.pod_errors.values()}) == 1


def test_nodeclaim_requirements_render_instance_and_capacity_types(solve: Solve) -> None:
    claim = solve([factories.pod(cpu="8")]).new_nodeclaims[0]
    rendered = {r["key"]: r for r in claim.node_selector_requirements()}
    assert rendered[INSTANCE_TYPE]["values"] == ["fake-it-8", "fake-it-9"]
    assert rendered[CAPACITY_TYPE]["values"] == ["on-demand", "spot"]
    assert "kubernetes.io/hostname" not in rendered


def test_pods_may_select_the_registered_and_initialized_labels(solve: Solve) -> None:
    result = solve([factories.pod(node_selector={"nodesmith.io/initialized": "true"})])
    assert result.pod_errors == {}
    assert "nodesmith.io/initialized" not in result.new_nodeclaims[0].requirements


def test_with_no_nodepool_the_reason_says_so_without_naming_an_empty_one() -> None:
    pod = factories.pod(name="lonely")
    result = scheduling.solve(scheduling.SchedulingInput(pods=[pod], templates=[]))
    (error,) = result.pod_errors.values()
    assert error.message() == "default/lonely: no NodePool can create nodes"
