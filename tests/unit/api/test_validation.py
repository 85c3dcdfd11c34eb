"""Bad input fails with a ValidationError naming the field path, never a bare KeyError or TypeError.

Field paths are spelled as the apiserver spells them (``spec.limits.cpu``,
``spec.template.spec.requirements[2].operator``). Every schema/CEL case below was also checked against a
real kube-apiserver 1.34 with the generated CRDs installed (it rejects each of them, except the
Python-only cron check and the status cases, which a create ignores).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodesmith import errors
from nodesmith.api import nodeclaim, nodepool

from .conftest import MINIMAL_NODECLAIM, MINIMAL_NODEPOOL, load_manifest

TEMPLATE = "spec.template.spec"


def _set(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or, with ``...``, delete) a dotted path; ``[n]`` indexes lists."""
    out = copy.deepcopy(d)
    keys: list[str | int] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        keys.append(name)
        if rest:
            keys.extend(int(index) for index in rest.rstrip("]").split("]["))
    node: Any = out
    for key in keys[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    if value is ...:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


def _requirements(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        *extra,
    ]


NODEPOOL_CASES: list[tuple[str, Any, str, str]] = [
    # (path to set, value, field expected in the error, fragment of the message)
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "Near", "values": ["x"]}),
        f"{TEMPLATE}.requirements[2].operator",
        "unsupported value 'Near'",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "In"}),
        f"{TEMPLATE}.requirements[2]",
        "'In' must have a value",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "In", "values": []}),
        f"{TEMPLATE}.requirements[2]",
        "'In' must have a value",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "Gt", "values": ["1", "2"]}),
        f"{TEMPLATE}.requirements[2]",
        "single non-negative integer",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "Lte", "values": ["ten"]}),
        f"{TEMPLATE}.requirements[2]",
        "single non-negative integer",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "Gte", "values": ["-1"]}),
        f"{TEMPLATE}.requirements[2].values[0]",  # not even a label value
        "does not match",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "In", "values": ["x"], "minValues": 2}),
        f"{TEMPLATE}.requirements[2]",
        "at least that many values",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "Exists", "minValues": 0}),
        f"{TEMPLATE}.requirements[2].minValues",
        "at least 1",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "Exists", "minValues": 51}),
        f"{TEMPLATE}.requirements[2].minValues",
        "at most 50",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "nodesmith.io/nodepool", "operator": "In", "values": ["x"]}),
        f"{TEMPLATE}.requirements[2].key",
        'domain "nodesmith.io" is restricted',
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "kubernetes.io/hostname", "operator": "In", "values": ["x"]}),
        f"{TEMPLATE}.requirements[2].key",
        '"kubernetes.io/hostname" is restricted',
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "Bad Key!", "operator": "Exists"}),
        f"{TEMPLATE}.requirements[2].key",
        "does not match",
    ),
    (
        f"{TEMPLATE}.requirements",
        _requirements({"key": "a", "operator": "In", "values": [7]}),
        f"{TEMPLATE}.requirements[2].values[0]",
        "must be a string",
    ),
    (
        f"{TEMPLATE}.requirements",
        [{"key": f"k{i}", "operator": "Exists"} for i in range(101)],
        f"{TEMPLATE}.requirements",
        "at most 100 items",
    ),
    (f"{TEMPLATE}.requirements", {"key": "a"}, f"{TEMPLATE}.requirements", "must be an array"),
    (f"{TEMPLATE}.requirements", ..., f"{TEMPLATE}.requirements", "required field is missing"),
    (f"{TEMPLATE}.nodeClassRef", ..., f"{TEMPLATE}.nodeClassRef", "required field is missing"),
    (f"{TEMPLATE}.nodeClassRef.name", ..., f"{TEMPLATE}.nodeClassRef.name", "required field is missing"),
    (f"{TEMPLATE}.nodeClassRef.group", "", f"{TEMPLATE}.nodeClassRef.group", "must not be empty"),
    (f"{TEMPLATE}.nodeClassRef", "default", f"{TEMPLATE}.nodeClassRef", "must be an object"),
    (f"{TEMPLATE}.expireAfter", "30d", f"{TEMPLATE}.expireAfter", "does not match"),
    (f"{TEMPLATE}.expireAfter", 720, f"{TEMPLATE}.expireAfter", "must be a string"),
    (f"{TEMPLATE}.terminationGracePeriod", "Never", f"{TEMPLATE}.terminationGracePeriod", "does not match"),
    (
        f"{TEMPLATE}.taints",
        [{"key": "a", "effect": "Sometimes"}],
        f"{TEMPLATE}.taints[0].effect",
        "unsupported",
    ),
    (f"{TEMPLATE}.startupTaints", [{"effect": "NoSchedule"}], f"{TEMPLATE}.startupTaints[0].key", "required"),
    (
        "spec.template.metadata.labels",
        {"nodesmith.io/nodepool": "x"},
        "spec.template.metadata.labels",
        'domain "nodesmith.io" is restricted',
    ),
    (
        "spec.template.metadata.labels",
        {"kubernetes.io/hostname": "x"},
        "spec.template.metadata.labels",
        '"kubernetes.io/hostname" is restricted',
    ),
    ("spec.template.metadata.labels", {"team": 5}, "spec.template.metadata.labels.team", "must be a string"),
    (
        "spec.template.metadata.labels",
        {"team": "not ok!"},
        "spec.template.metadata.labels.team",
        "does not match",
    ),
    ("spec.limits", {"cpu": "lots"}, "spec.limits.cpu", "does not match"),
    ("spec.limits", {"cpu": 1.5}, "spec.limits.cpu", "must be an integer or a string"),
    ("spec.weight", 0, "spec.weight", "at least 1"),
    ("spec.weight", 101, "spec.weight", "at most 100"),
    ("spec.weight", "10", "spec.weight", "must be an integer"),
    ("spec.weight", True, "spec.weight", "must be an integer"),
    (
        "spec.disruption.consolidationPolicy",
        "Sometimes",
        "spec.disruption.consolidationPolicy",
        "unsupported",
    ),
    ("spec.disruption.consolidateAfter", "5 minutes", "spec.disruption.consolidateAfter", "does not match"),
    (
        "spec.disruption.budgets",
        [{"nodes": "10%", "schedule": "0 9 * * *"}],
        "spec.disruption.budgets[0]",
        "'schedule' must be set with 'duration'",
    ),
    (
        "spec.disruption.budgets",
        [{"nodes": "10%", "duration": "1h"}],
        "spec.disruption.budgets[0]",
        "'schedule' must be set with 'duration'",
    ),
    (
        "spec.disruption.budgets",
        [{"nodes": "1"}, {"nodes": "0", "schedule": "0 25 * *", "duration": "1h"}],
        "spec.disruption.budgets[1].schedule",
        "does not match",
    ),
    (
        "spec.disruption.budgets",
        [{"nodes": "0", "schedule": "0 9 * * *", "duration": "30s"}],
        "spec.disruption.budgets[0].duration",
        "does not match",
    ),
    ("spec.disruption.budgets", [{"nodes": "110%"}], "spec.disruption.budgets[0].nodes", "does not match"),
    ("spec.disruption.budgets", [{"nodes": -1}], "spec.disruption.budgets[0].nodes", "at least 0"),
    (
        "spec.disruption.budgets",
        [{"nodes": "1", "reasons": ["Expired"]}],
        "spec.disruption.budgets[0].reasons[0]",
        "unsupported",
    ),
    (
        "spec.disruption.budgets",
        [{"nodes": "1", "reasons": ["Empty", "Empty"]}],
        "spec.disruption.budgets[0].reasons",
        "duplicate",
    ),
    ("spec.disruption.budgets", [{"nodes": "1"}] * 51, "spec.disruption.budgets", "at most 50 items"),
    ("spec.template", ..., "spec.template", "required field is missing"),
    ("spec", ..., "spec", "required field is missing"),
    ("spec", [], "spec", "must be an object"),
    ("apiVersion", "karpenter.sh/v1", "apiVersion", "unsupported value"),
    ("metadata.labels", ["a"], "metadata.labels", "must be an object"),
    ("metadata.creationTimestamp", "yesterday", "metadata.creationTimestamp", "RFC 3339"),
    (
        "status.conditions",
        [
            {
                "type": "Ready",
                "status": "Maybe",
                "reason": "R",
                "message": "",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
        "status.conditions[0].status",
        "unsupported",
    ),
    ("status.nodes", "three", "status.nodes", "must be an integer"),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    NODEPOOL_CASES,
    ids=[f"{case[2]}:{case[3]}" for case in NODEPOOL_CASES],
)
def test_invalid_nodepools_name_the_field(path: str, value: Any, field: str, message: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        nodepool.NodePool.from_dict(_set(MINIMAL_NODEPOOL, path, value))
    assert caught.value.field == field
    assert message in caught.value.message


NODECLAIM_CASES: list[tuple[str, Any, str, str]] = [
    ("spec.nodeClassRef", ..., "spec.nodeClassRef", "required field is missing"),
    ("spec.resources", {"requests": {"cpu": "1 core"}}, "spec.resources.requests.cpu", "does not match"),
    (
        "spec.requirements",
        [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["x"]}],
        "spec.requirements[0].key",
        "restricted",
    ),
    ("spec.expireAfter", "forever", "spec.expireAfter", "does not match"),
    ("status.capacity", {"memory": "8 GB"}, "status.capacity.memory", "does not match"),
    ("status.lastPodEventTime", "noon", "status.lastPodEventTime", "RFC 3339"),
    ("kind", "NodePool", "kind", "unsupported value"),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    NODECLAIM_CASES,
    ids=[f"{case[2]}:{case[3]}" for case in NODECLAIM_CASES],
)
def test_invalid_nodeclaims_name_the_field(path: str, value: Any, field: str, message: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        nodeclaim.NodeClaim.from_dict(_set(MINIMAL_NODECLAIM, path, value))
    assert caught.value.field == field
    assert message in caught.value.message


def test_nodeclaims_may_require_the_nodepool_label() -> None:
    claim = _set(
        MINIMAL_NODECLAIM,
        "spec.requirements",
        [{"key": "nodesmith.io/nodepool", "operator": "In", "values": ["a"]}],
    )
    assert nodeclaim.NodeClaim.from_dict(claim).nodepool_name is None  # a requirement, not a label


def test_a_non_object_is_rejected() -> None:
    with pytest.raises(errors.ValidationError):
        nodepool.NodePool.from_dict([])  # type: ignore[arg-type]  # the wrong shape on purpose


def test_nulls_are_treated_as_absent_like_the_apiserver_prunes_them() -> None:
    pool = nodepool.NodePool.from_dict(_set(MINIMAL_NODEPOOL, "spec.weight", None))
    assert pool.spec.weight is None


def test_unknown_fields_are_ignored_like_the_apiserver_prunes_them() -> None:
    pool = nodepool.NodePool.from_dict(_set(MINIMAL_NODEPOOL, "spec.surprise", 3))
    assert "surprise" not in pool.to_dict()["spec"]


def test_replicas_make_a_static_nodepool_and_round_trip() -> None:
    pool = nodepool.NodePool.from_dict(_set(MINIMAL_NODEPOOL, "spec.replicas", 3))
    assert pool.is_static
    assert pool.spec.replicas == 3
    assert pool.to_dict()["spec"]["replicas"] == 3
    assert not nodepool.NodePool.from_dict(MINIMAL_NODEPOOL).is_static


def test_a_static_nodepool_may_only_limit_nodes() -> None:
    static = _set(MINIMAL_NODEPOOL, "spec.replicas", 2)
    assert nodepool.NodePool.from_dict(_set(static, "spec.limits", {"nodes": "3"})).spec.limits == {
        "nodes": 3000
    }
    with pytest.raises(errors.ValidationError, match="may only limit nodes"):
        nodepool.NodePool.from_dict(_set(static, "spec.limits", {"cpu": "10"}))
    with pytest.raises(errors.ValidationError):
        nodepool.NodePool.from_dict(_set(MINIMAL_NODEPOOL, "spec.replicas", -1))


# -- fuzzing: mutate one leaf of a valid manifest, expect success or a ValidationError -------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_paths(value, (*prefix, index)))
    return out


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
_MANIFESTS = [
    load_manifest(name) for name in ("nodepool-budgets.yaml", "nodepool-limits-weight-minvalues.yaml")
]
_CLAIM = load_manifest("nodeclaim-launched.yaml")


@settings(max_examples=300, deadline=None)
@given(data=st.data(), replacement=_JSON)
def test_any_single_field_mutation_parses_or_raises_validation_error(
    data: st.DataObject, replacement: Any
) -> None:
    for manifest, parse in (
        (data.draw(st.sampled_from(_MANIFESTS)), nodepool.NodePool.from_dict),
        (_CLAIM, nodeclaim.NodeClaim.from_dict),
    ):
        mutated = copy.deepcopy(manifest)
        path = data.draw(st.sampled_from(_paths(mutated)))
        node: Any = mutated
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = replacement
        with contextlib.suppress(errors.ValidationError):
            parse(mutated)
