"""NodePool: round trips, documented defaulting, requirements, the drift hash, budgets and conditions."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import attrs
import pytest

from nodesmith.api import budgets, conditions, labels, meta, nodepool, requirements, schema

from .conftest import load_manifest

NOW = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def defaulted(d: dict[str, Any]) -> dict[str, Any]:
    out = schema.apply_defaults(nodepool.OBJECT_SCHEMA, d)
    assert isinstance(out, dict)
    return out


@pytest.mark.parametrize("name", ["nodepool-budgets.yaml", "nodepool-limits-weight-minvalues.yaml"])
def test_manifests_round_trip_to_their_defaulted_form(name: str) -> None:
    manifest = load_manifest(name)
    assert nodepool.NodePool.from_dict(manifest).to_dict() == defaulted(manifest)


def test_getting_started_manifest_round_trips_with_quantities_in_canonical_form() -> None:
    manifest = load_manifest("nodepool-getting-started.yaml")
    expected = defaulted(manifest)
    expected["spec"]["limits"]["cpu"] = "1000"  # written as the YAML integer 1000
    assert nodepool.NodePool.from_dict(manifest).to_dict() == expected


def test_a_manifest_that_spells_out_its_defaults_round_trips_exactly(nodepool_dict: dict[str, Any]) -> None:
    full = defaulted(nodepool_dict)
    assert nodepool.NodePool.from_dict(full).to_dict() == full


def test_models_round_trip_through_dicts() -> None:
    for name in (
        "nodepool-budgets.yaml",
        "nodepool-getting-started.yaml",
        "nodepool-limits-weight-minvalues.yaml",
    ):
        pool = nodepool.NodePool.from_dict(load_manifest(name))
        assert nodepool.NodePool.from_dict(pool.to_dict()) == pool


def test_defaults_match_karpenter(nodepool_dict: dict[str, Any]) -> None:
    pool = nodepool.NodePool.from_dict(nodepool_dict)
    template = pool.spec.template.spec
    assert template.expire_after.value == dt.timedelta(hours=720)
    assert template.termination_grace_period is None
    assert (
        pool.spec.disruption.consolidation_policy is nodepool.ConsolidationPolicy.WHEN_EMPTY_OR_UNDERUTILIZED
    )
    assert pool.spec.disruption.consolidate_after.value == dt.timedelta(0)
    assert pool.spec.disruption.budgets == (budgets.Budget(nodes="10%"),)
    assert pool.spec.weight is None
    assert pool.weight == 0
    assert pool.spec.limits == {}
    assert pool.status == nodepool.NodePoolStatus()


def test_defaulting_fills_nested_defaults_of_a_partial_disruption_block(
    nodepool_dict: dict[str, Any],
) -> None:
    nodepool_dict["spec"]["disruption"] = {"consolidationPolicy": "WhenEmpty"}
    out = nodepool.NodePool.from_dict(nodepool_dict).to_dict()
    assert out["spec"]["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "0s",
        "budgets": [{"nodes": "10%"}],
    }


def test_never_durations_are_none() -> None:
    pool = nodepool.NodePool.from_dict(load_manifest("nodepool-budgets.yaml"))
    assert pool.spec.template.spec.expire_after.never
    assert pool.spec.template.spec.termination_grace_period == meta.Duration.of(dt.timedelta(hours=48))


def test_limits_are_parsed_into_milli_units() -> None:
    pool = nodepool.NodePool.from_dict(load_manifest("nodepool-limits-weight-minvalues.yaml"))
    assert pool.spec.limits == {"cpu": 1_000_000, "memory": 1000 * 2**30 * 1000, "nodes": 100_000}
    assert pool.spec.weight == 50


def test_raw_requirements_are_kept_in_order_and_spelling() -> None:
    pool = nodepool.NodePool.from_dict(load_manifest("nodepool-limits-weight-minvalues.yaml"))
    entries = pool.spec.template.spec.requirements
    assert [e.key for e in entries] == [
        "node.kubernetes.io/instance-type",
        "aws.nodesmith.io/instance-family",
        "aws.nodesmith.io/instance-cpu",
        "topology.kubernetes.io/zone",
    ]
    assert entries[1].values == ("m5", "m5d", "c5", "c5d", "c4", "r4")
    assert entries[1].min_values == 5


def test_requirements_include_template_labels_nodepool_and_nodeclass_as_in_requirements() -> None:
    pool = nodepool.NodePool.from_dict(load_manifest("nodepool-budgets.yaml"))
    reqs = pool.requirements
    assert reqs["team"] == requirements.Requirement.in_("team", "platform")
    assert reqs[labels.LABEL_NODEPOOL] == requirements.Requirement.in_(labels.LABEL_NODEPOOL, "budgets")
    assert reqs["kwok.nodesmith.io/kwoknodeclass"].values == frozenset({"default"})
    assert reqs[labels.LABEL_ARCH].values == frozenset({"amd64", "arm64"})


def test_requirements_carry_min_values_and_bounds() -> None:
    pool = nodepool.NodePool.from_dict(load_manifest("nodepool-limits-weight-minvalues.yaml"))
    assert pool.requirements[labels.LABEL_INSTANCE_TYPE].min_values == 10
    assert pool.requirements["aws.nodesmith.io/instance-cpu"].lte == 32
    assert pool.requirements[labels.LABEL_ZONE].operator is requirements.Operator.NOT_IN


def test_a_template_label_narrows_a_requirement_on_the_same_key(nodepool_dict: dict[str, Any]) -> None:
    nodepool_dict["spec"]["template"]["metadata"] = {"labels": {"kubernetes.io/arch": "arm64"}}
    pool = nodepool.NodePool.from_dict(nodepool_dict)
    assert pool.requirements[labels.LABEL_ARCH].is_empty()  # In [amd64] ∩ In [arm64]


def test_beta_label_keys_are_normalised_in_requirements_but_kept_in_the_raw_list(
    nodepool_dict: dict[str, Any],
) -> None:
    nodepool_dict["spec"]["template"]["spec"]["requirements"] = [
        {"key": "failure-domain.beta.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    ]
    pool = nodepool.NodePool.from_dict(nodepool_dict)
    assert labels.LABEL_ZONE in pool.requirements
    assert (
        pool.to_dict()["spec"]["template"]["spec"]["requirements"][0]["key"]
        == "failure-domain.beta.kubernetes.io/zone"
    )


# -- hash ------------------------------------------------------------------------------------------------


def _edit(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(d)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


def test_hash_is_stable_across_processes_and_equal_for_equal_templates(nodepool_dict: dict[str, Any]) -> None:
    a = nodepool.NodePool.from_dict(nodepool_dict)
    b = nodepool.NodePool.from_dict(copy.deepcopy(nodepool_dict))
    assert a.hash() == b.hash()
    assert a.hash().isdigit()
    assert nodepool.HASH_VERSION == "v1"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.template.metadata.labels", {"team": "a"}),
        ("spec.template.metadata.annotations", {"example.com/a": "b"}),
        ("spec.template.spec.taints", [{"key": "a", "effect": "NoSchedule"}]),
        ("spec.template.spec.startupTaints", [{"key": "a", "effect": "NoSchedule"}]),
        (
            "spec.template.spec.nodeClassRef",
            {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "other"},
        ),
        ("spec.template.spec.expireAfter", "24h"),
        ("spec.template.spec.terminationGracePeriod", "1h"),
    ],
)
def test_hash_changes_when_a_drift_relevant_template_field_changes(
    nodepool_dict: dict[str, Any], path: str, value: Any
) -> None:
    before = nodepool.NodePool.from_dict(nodepool_dict).hash()
    after = nodepool.NodePool.from_dict(_edit(nodepool_dict, path, value)).hash()
    assert before != after


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (
            "spec.template.spec.requirements",
            [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
        ),
        ("spec.disruption", {"consolidationPolicy": "WhenEmpty", "budgets": [{"nodes": "0"}]}),
        ("spec.limits", {"cpu": "10"}),
        ("spec.weight", 10),
        ("metadata.labels", {"a": "b"}),
    ],
)
def test_hash_ignores_fields_that_do_not_drift_nodes(
    nodepool_dict: dict[str, Any], path: str, value: Any
) -> None:
    before = nodepool.NodePool.from_dict(nodepool_dict).hash()
    assert nodepool.NodePool.from_dict(_edit(nodepool_dict, path, value)).hash() == before


def test_hash_ignores_taint_order_and_duration_spelling(nodepool_dict: dict[str, Any]) -> None:
    taints = [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "value": "x", "effect": "NoExecute"}]
    one = _edit(
        _edit(nodepool_dict, "spec.template.spec.taints", taints), "spec.template.spec.expireAfter", "90m"
    )
    two = _edit(
        _edit(nodepool_dict, "spec.template.spec.taints", taints[::-1]),
        "spec.template.spec.expireAfter",
        "1h30m",
    )
    assert nodepool.NodePool.from_dict(one).hash() == nodepool.NodePool.from_dict(two).hash()


def test_explicit_defaults_hash_like_implicit_ones(nodepool_dict: dict[str, Any]) -> None:
    explicit = _edit(nodepool_dict, "spec.template.spec.expireAfter", "720h")
    assert nodepool.NodePool.from_dict(explicit).hash() == nodepool.NodePool.from_dict(nodepool_dict).hash()


# -- budgets, conditions, runtime validation -------------------------------------------------------------


def test_pool_budgets_evaluate_per_reason() -> None:
    pool = nodepool.NodePool.from_dict(load_manifest("nodepool-budgets.yaml"))
    monday_10am = dt.datetime(2024, 1, 1, 10, 30, tzinfo=dt.UTC)
    monday_8pm = dt.datetime(2024, 1, 1, 20, 30, tzinfo=dt.UTC)
    monday_8_05pm = dt.datetime(2024, 1, 1, 20, 5, tzinfo=dt.UTC)
    assert pool.allowed_disruptions(budgets.DisruptionReason.UNDERUTILIZED, 100, monday_10am) == 0
    assert pool.allowed_disruptions(budgets.DisruptionReason.UNDERUTILIZED, 100, monday_8pm) == 10
    assert (
        pool.allowed_disruptions(budgets.DisruptionReason.EMPTY, 30, monday_8pm) == 6
    )  # min(10, ceil(20% of 30))
    assert (
        pool.allowed_disruptions(budgets.DisruptionReason.DRIFTED, 100, monday_8_05pm) == 0
    )  # @hourly + 10m


def test_setting_conditions_recomputes_ready(nodepool_dict: dict[str, Any]) -> None:
    nodepool_dict["metadata"]["generation"] = 3
    pool = nodepool.NodePool.from_dict(nodepool_dict)
    pool = pool.with_condition(conditions.ConditionType.VALIDATION_SUCCEEDED, True, now=NOW)
    ready = pool.condition(conditions.ConditionType.READY)
    assert ready is not None
    assert ready.status is conditions.ConditionStatus.UNKNOWN  # NodeClassReady not known yet
    pool = pool.with_condition(conditions.ConditionType.NODE_CLASS_READY, True, now=NOW)
    assert pool.is_true(conditions.ConditionType.READY)
    pool = pool.with_condition(
        conditions.ConditionType.NODE_CLASS_READY,
        False,
        reason="NodeClassNotReady",
        message="missing",
        now=NOW,
    )
    ready = pool.condition(conditions.ConditionType.READY)
    assert ready is not None
    assert (ready.status, ready.reason) == (conditions.ConditionStatus.FALSE, "UnhealthyDependents")
    assert ready.observed_generation == 3
    round_tripped = nodepool.NodePool.from_dict(pool.to_dict())
    assert round_tripped == pool


def test_runtime_validation_reports_what_the_schema_cannot(nodepool_dict: dict[str, Any]) -> None:
    pool = nodepool.NodePool.from_dict(nodepool_dict)
    assert nodepool.runtime_errors(pool, labels.CORE_WELL_KNOWN_LABELS) == []
    template = pool.spec.template
    bad = attrs.evolve(
        pool,
        spec=attrs.evolve(
            pool.spec,
            template=attrs.evolve(
                template,
                labels={"node-role.kubernetes.io/worker": "", "aws.nodesmith.io/not-well-known": "x"},
                spec=attrs.evolve(
                    template.spec,
                    taints=(meta.Taint("a", meta.TaintEffect.NO_SCHEDULE),),
                    startup_taints=(meta.Taint("a", meta.TaintEffect.NO_SCHEDULE, "v"),),
                ),
            ),
        ),
    )
    problems = nodepool.runtime_errors(bad, labels.CORE_WELL_KNOWN_LABELS)
    assert any("aws.nodesmith.io/not-well-known" in p for p in problems)
    assert any("node-role.kubernetes.io/worker" in p for p in problems)
    assert any("duplicate taint a:NoSchedule" in p for p in problems)


def test_provider_well_known_labels_pass_runtime_validation() -> None:
    pool = nodepool.NodePool.from_dict(load_manifest("nodepool-limits-weight-minvalues.yaml"))
    well_known = labels.CORE_WELL_KNOWN_LABELS | {
        "aws.nodesmith.io/instance-family",
        "aws.nodesmith.io/instance-cpu",
    }
    assert nodepool.runtime_errors(pool, well_known) == []
    assert nodepool.runtime_errors(pool, labels.CORE_WELL_KNOWN_LABELS) != []  # the value decides
