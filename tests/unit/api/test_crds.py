"""The checked-in CRDs are exactly the generator's output, and the schemas carry defaults, bounds and CEL."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

import nodesmith.api
from nodesmith.api import crds, schema

DEPLOY = pathlib.Path(__file__).parents[3] / "deploy" / "crds"


@pytest.mark.parametrize("resource", crds.CORE_RESOURCES, ids=lambda r: r.kind)
def test_checked_in_crds_equal_the_generator_output(resource: crds.CustomResource) -> None:
    checked_in = (DEPLOY / resource.filename).read_text()
    assert checked_in == crds.to_yaml(crds.custom_resource_definition(resource)), (
        "regenerate with: uv run python -m nodesmith.api.crds deploy/crds"
    )


def test_main_writes_both_crds(tmp_path: pathlib.Path) -> None:
    assert crds.main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "nodesmith.io_nodeclaims.yaml",
        "nodesmith.io_nodepools.yaml",
    ]
    assert crds.main([]) == 2


def _crd(resource: crds.CustomResource) -> dict[str, Any]:
    loaded = yaml.safe_load(crds.to_yaml(crds.custom_resource_definition(resource)))
    assert isinstance(loaded, dict)
    return loaded


def _at(node: dict[str, Any], path: str) -> dict[str, Any]:
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def _openapi(resource: crds.CustomResource) -> dict[str, Any]:
    version = _crd(resource)["spec"]["versions"][0]
    schema_ = version["schema"]["openAPIV3Schema"]
    assert isinstance(schema_, dict)
    return schema_


def test_nodepool_crd_names_scope_and_subresources() -> None:
    crd = _crd(crds.NODEPOOL)
    assert crd["metadata"]["name"] == "nodepools.nodesmith.io"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["kind"], spec["names"]["listKind"]) == (
        "nodesmith.io",
        "Cluster",
        "NodePool",
        "NodePoolList",
    )
    version = spec["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {
        "status": {},
        "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.nodes"},
    }
    columns = [(c["name"], c.get("priority", 0)) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("NodeClass", 0),
        ("Nodes", 0),
        ("Ready", 0),
        ("Age", 0),
        ("Weight", 1),
        ("CPU", 1),
        ("Memory", 1),
    ]


def test_nodeclaim_crd_printer_columns_match_karpenters() -> None:
    version = _crd(crds.NODECLAIM)["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names == [
        "Type",
        "Capacity",
        "Zone",
        "Node",
        "Ready",
        "Age",
        "ImageID",
        "ID",
        "NodePool",
        "NodeClass",
        "Drifted",
    ]
    capacity = version["additionalPrinterColumns"][1]
    assert capacity["jsonPath"] == ".metadata.labels.nodesmith\\.io/capacity-type"
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize(
    ("path", "default"),
    [
        ("spec.template.spec.expireAfter", "720h"),
        ("spec.disruption", {"consolidateAfter": "0s"}),
        ("spec.disruption.consolidateAfter", "0s"),
        ("spec.disruption.consolidationPolicy", "WhenEmptyOrUnderutilized"),
        ("spec.disruption.budgets", [{"nodes": "10%"}]),
        ("spec.disruption.budgets.[].nodes", "10%"),
        ("status.nodes", 0),
    ],
)
def test_nodepool_schema_carries_karpenters_defaults(path: str, default: Any) -> None:
    assert _at(_openapi(crds.NODEPOOL), path)["default"] == default


def test_nodeclaim_schema_defaults_expire_after() -> None:
    assert _at(_openapi(crds.NODECLAIM), "spec.expireAfter")["default"] == "720h"


def _rules(node: dict[str, Any]) -> list[str]:
    return [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]


def test_nodepool_schema_has_the_cel_rules_the_openapi_schema_cannot_express() -> None:
    root = _openapi(crds.NODEPOOL)
    requirement = _at(root, "spec.template.spec.requirements.[]")
    assert len(_rules(requirement)) == 3
    assert any("size(self.values) > 0" in rule for rule in _rules(requirement))
    assert _rules(_at(root, "spec.template.spec.nodeClassRef")) == [
        "self.group == oldSelf.group",
        "self.kind == oldSelf.kind",
    ]
    assert _rules(_at(root, "spec.disruption.budgets.[]")) == ["has(self.schedule) == has(self.duration)"]
    assert len(_rules(_at(root, "spec.template.metadata.labels"))) == 2
    assert len(_rules(_at(root, "spec.template.spec.requirements.[].key"))) == 2


def test_nodepool_schema_bounds_and_enums() -> None:
    root = _openapi(crds.NODEPOOL)
    requirements = _at(root, "spec.template.spec.requirements")
    assert requirements["maxItems"] == 100
    min_values = _at(root, "spec.template.spec.requirements.[].minValues")
    assert (min_values["minimum"], min_values["maximum"]) == (1, 50)
    weight = _at(root, "spec.weight")
    assert (weight["minimum"], weight["maximum"]) == (1, 100)
    assert _at(root, "spec.template.spec.requirements.[].operator")["enum"] == [
        "In",
        "NotIn",
        "Exists",
        "DoesNotExist",
        "Gt",
        "Lt",
        "Gte",
        "Lte",
    ]
    assert _at(root, "spec.template.spec.expireAfter")["pattern"] == "^(([0-9]+(s|m|h))+|Never)$"
    assert _at(root, "spec.template.spec.terminationGracePeriod")["pattern"] == "^([0-9]+(s|m|h))+$"
    assert root["required"] == ["spec"]
    assert _at(root, "spec.template.spec")["required"] == ["nodeClassRef", "requirements"]


def test_nodeclaim_spec_is_immutable() -> None:
    assert _rules(_at(_openapi(crds.NODECLAIM), "spec")) == ["self == oldSelf"]


def _walk(node: schema.Schema, path: str = "") -> Iterator[tuple[str, schema.Schema]]:
    yield path, node
    for name, prop in node.properties.items():
        yield from _walk(prop, f"{path}.{name}")
    if node.items is not None:
        yield from _walk(node.items, f"{path}[]")
    if node.additional_properties is not None:
        yield from _walk(node.additional_properties, f"{path}{{}}")


@pytest.mark.parametrize("resource", crds.CORE_RESOURCES, ids=lambda r: r.kind)
def test_every_validation_rule_is_mirrored_in_python_or_is_a_transition_rule(
    resource: crds.CustomResource,
) -> None:
    for path, node in _walk(resource.object_schema()):
        for rule in node.rules:
            assert rule.transition or rule.check is not None, f"{path}: {rule.rule} has no Python check"


@pytest.mark.parametrize("resource", crds.CORE_RESOURCES, ids=lambda r: r.kind)
def test_values_under_cel_rules_are_bounded_so_the_apiserver_can_cost_them(
    resource: crds.CustomResource,
) -> None:
    for path, node in _walk(resource.object_schema()):
        if not node.rules or path == ".spec":  # whole-spec immutability: bounded by everything below
            continue
        for inner, sub in _walk(node, path):
            if sub.type == "string" and not sub.enum:
                assert sub.max_length is not None, f"{inner} is a string under a CEL rule without maxLength"
            if sub.type == "array":
                assert sub.max_items is not None, f"{inner} is a list under a CEL rule without maxItems"


def test_the_front_door_exports_what_it_lists() -> None:
    for name in nodesmith.api.__all__:
        assert hasattr(nodesmith.api, name), name
    assert nodesmith.api.NodePool is nodesmith.api.nodepool.NodePool
    assert sorted(nodesmith.api.__all__) == nodesmith.api.__all__
