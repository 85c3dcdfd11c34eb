"""The nodesmith-price-overlay plugin: NodeOverlay parsing, Karpenter's precedence and conflict rules, the
file cache, and the effect on the scheduler once the plugin is found through its entry point."""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from nodesmith import scheduling
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.testing import factories
from nodesmith_price_overlay import apply, plugin, source
from nodesmith_price_overlay.overlay import NodeOverlay, parse_overlay

FAMILY = "example.com/instance-family"
GPU = "example.com/gpu"


def _it(name: str, price: float, family: str = "m", zones: Sequence[str] = ("z1", "z2")) -> InstanceType:
    return factories.instance_type(
        name, cpu=4, memory="8Gi", zones=zones, price=price, extra={FAMILY: family}
    )


def _catalogue() -> list[InstanceType]:
    return [_it("m-large", 1.0, "m"), _it("c-large", 0.8, "c"), _it("r-large", 1.2, "r")]


def _prices(its: Sequence[InstanceType] | None) -> dict[str, dict[str, float]]:
    """``{type: {"zone/capacity-type": price}}`` with prices rounded to 6 places."""
    assert its is not None
    return {it.name: {f"{o.zone}/{o.capacity_type}": round(o.price, 6) for o in it.offerings} for it in its}


def _all(price: float) -> dict[str, float]:
    return {f"{z}/{c}": price for z in ("z1", "z2") for c in ("spot", "on-demand")}


def _write(path: Path, text: str, *, mtime_ns: int | None = None) -> Path:
    path.write_text(textwrap.dedent(text))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture
def overlay_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The path ``NODESMITH_PRICE_OVERLAYS`` points at (write it in the test); the hook's cache starts empty."""
    path = tmp_path / "overlays.yaml"
    monkeypatch.setenv(source.ENV_VAR, str(path))
    monkeypatch.setattr(plugin, "ADJUSTER", plugin.Adjuster())
    return path


def _adjust(its: Sequence[InstanceType], nodepool: str = "default") -> list[InstanceType] | None:
    result = plugin.nodesmith_adjust_instance_types(nodepool, its)
    return None if result is None else list(result)


# -- price rules ------------------------------------------------------------------------------------------


def test_percentage_adjustments_scale_the_selected_types_offerings(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        - metadata: {name: discount-m}
          spec:
            requirements: [{key: node.kubernetes.io/instance-type, operator: In, values: [m-large]}]
            priceAdjustment: "-10%"
        - metadata: {name: surcharge-r}
          spec:
            requirements: [{key: node.kubernetes.io/instance-type, operator: In, values: [r-large]}]
            priceAdjustment: "+5%"
        """,
    )
    prices = _prices(_adjust(_catalogue()))
    assert prices == {"m-large": _all(0.9), "c-large": _all(0.8), "r-large": _all(1.26)}


def test_absolute_adjustments_add_or_subtract_and_never_go_below_zero(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        - metadata: {name: plus}
          spec:
            requirements: [{key: example.com/instance-family, operator: In, values: [m]}]
            priceAdjustment: "+0.05"
        - metadata: {name: minus}
          spec:
            requirements: [{key: example.com/instance-family, operator: In, values: [c]}]
            priceAdjustment: "-0.01"
        - metadata: {name: below-zero}
          spec:
            requirements: [{key: example.com/instance-family, operator: In, values: [r]}]
            priceAdjustment: "-5"
        """,
    )
    prices = _prices(_adjust(_catalogue()))
    assert prices == {"m-large": _all(1.05), "c-large": _all(0.79), "r-large": _all(0.0)}


def test_an_unquoted_yaml_number_is_a_signed_absolute_adjustment() -> None:
    overlay = parse_overlay({"metadata": {"name": "n"}, "spec": {"priceAdjustment": 0.05}}, 0)
    assert overlay.price is not None
    assert overlay.price.apply(1.0) == pytest.approx(1.05)


def test_an_absolute_price_replaces_the_providers_price(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        apiVersion: karpenter.sh/v1alpha1
        kind: NodeOverlay
        metadata: {name: flat}
        spec:
          requirements: [{key: node.kubernetes.io/instance-type, operator: In, values: [r-large]}]
          price: "0.25"
        """,
    )
    assert _prices(_adjust(_catalogue()))["r-large"] == _all(0.25)


# -- which offerings an overlay selects --------------------------------------------------------------------


def test_a_zone_requirement_reprices_only_that_zones_offerings(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        metadata: {name: cheap-z2}
        spec:
          requirements: [{key: topology.kubernetes.io/zone, operator: In, values: [z2]}]
          price: "0.1"
        """,
    )
    prices = _prices(_adjust([_it("m-large", 1.0)]))
    assert prices["m-large"] == {"z1/spot": 1.0, "z1/on-demand": 1.0, "z2/spot": 0.1, "z2/on-demand": 0.1}


def test_a_capacity_type_requirement_written_the_karpenter_way_reprices_only_spot(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        metadata: {name: spot-discount}
        spec:
          requirements: [{key: karpenter.sh/capacity-type, operator: In, values: [spot]}]
          priceAdjustment: "-50%"
        """,
    )
    prices = _prices(_adjust([_it("m-large", 1.0)]))
    assert prices["m-large"] == {"z1/spot": 0.5, "z1/on-demand": 1.0, "z2/spot": 0.5, "z2/on-demand": 1.0}


def test_a_family_requirement_selects_whole_instance_types(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        metadata: {name: not-c}
        spec:
          requirements: [{key: example.com/instance-family, operator: NotIn, values: [c]}]
          price: "2"
        """,
    )
    prices = _prices(_adjust(_catalogue()))
    assert prices == {"m-large": _all(2.0), "c-large": _all(0.8), "r-large": _all(2.0)}


def test_a_key_the_instance_type_does_not_define_selects_nothing(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        metadata: {name: unknown-key}
        spec:
          requirements: [{key: example.com/team, operator: In, values: [a]}]
          price: "2"
        """,
    )
    assert _adjust(_catalogue()) is None


def test_a_nodepool_requirement_restricts_the_overlay_to_that_pool(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        metadata: {name: gpu-pool-only}
        spec:
          requirements: [{key: nodesmith.io/nodepool, operator: In, values: [gpu]}]
          priceAdjustment: "-50%"
        """,
    )
    assert _adjust(_catalogue(), nodepool="default") is None
    assert _prices(_adjust(_catalogue(), nodepool="gpu"))["m-large"] == _all(0.5)


# -- weights and conflicts -----------------------------------------------------------------------------------


def test_the_higher_weight_wins_and_adjustments_do_not_stack(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        - metadata: {name: a-heavy}
          spec: {weight: 20, priceAdjustment: "-20%"}
        - metadata: {name: z-light}
          spec:
            weight: 5
            requirements: [{key: example.com/instance-family, operator: In, values: [m]}]
            priceAdjustment: "-50%"
        """,
    )
    prices = _prices(_adjust(_catalogue()))
    assert prices["m-large"] == _all(0.8), "-20% (weight 20) wins over -50% (weight 5), not both"
    assert prices["c-large"] == _all(0.64)


def test_a_lower_weight_still_prices_what_the_higher_weight_does_not_select(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        - metadata: {name: heavy-m}
          spec:
            weight: 20
            requirements: [{key: example.com/instance-family, operator: In, values: [m]}]
            price: "0.5"
        - metadata: {name: light-all}
          spec: {weight: 1, price: "3"}
        """,
    )
    prices = _prices(_adjust(_catalogue()))
    assert prices == {"m-large": _all(0.5), "c-large": _all(3.0), "r-large": _all(3.0)}


def test_equal_weights_on_the_same_offering_keep_the_later_name_and_reject_the_other_everywhere(
    overlay_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(
        overlay_file,
        """
        - metadata: {name: alpha}
          spec:
            weight: 7
            requirements: [{key: example.com/instance-family, operator: In, values: [m, c]}]
            price: "0.1"
        - metadata: {name: beta}
          spec:
            weight: 7
            requirements: [{key: example.com/instance-family, operator: In, values: [m]}]
            price: "0.2"
        """,
    )
    with caplog.at_level(logging.ERROR, logger="nodesmith_price_overlay"):
        prices = _prices(_adjust(_catalogue()))
    assert prices["m-large"] == _all(0.2), "beta sorts later, so it is applied first and kept"
    assert prices["c-large"] == _all(0.8), "alpha is rejected as a whole, also where it did not collide"
    assert "overlay 'alpha' conflicts with overlay 'beta' (same weight)" in caplog.text


def test_equal_weights_that_touch_different_offerings_both_apply(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        - metadata: {name: spot}
          spec:
            requirements: [{key: nodesmith.io/capacity-type, operator: In, values: [spot]}]
            price: "0.1"
        - metadata: {name: on-demand}
          spec:
            requirements: [{key: nodesmith.io/capacity-type, operator: In, values: [on-demand]}]
            price: "0.9"
        """,
    )
    assert _prices(_adjust([_it("m-large", 1.0)]))["m-large"] == {
        "z1/spot": 0.1,
        "z1/on-demand": 0.9,
        "z2/spot": 0.1,
        "z2/on-demand": 0.9,
    }


def test_precedence_is_weight_then_name_both_descending() -> None:
    overlays = [
        parse_overlay({"metadata": {"name": n}, "spec": {"weight": w, "price": "1"}}, 0)
        for n, w in [("b", 5), ("a", 5), ("c", 1), ("z", 9)]
    ]
    assert [o.name for o in apply.precedence(overlays)] == ["z", "b", "a", "c"]


# -- capacity -------------------------------------------------------------------------------------------------


def test_capacity_adds_an_extended_resource_to_capacity_and_allocatable(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        metadata: {name: gpus}
        spec:
          requirements: [{key: example.com/instance-family, operator: In, values: [r]}]
          capacity: {example.com/gpu: 2}
        """,
    )
    original = _catalogue()
    adjusted = {it.name: it for it in _adjust(original) or []}
    assert adjusted["r-large"].capacity[GPU] == 2000
    assert adjusted["r-large"].allocatable[GPU] == 2000
    assert adjusted["r-large"].allocatable["cpu"] == original[2].allocatable["cpu"]
    assert GPU not in adjusted["m-large"].allocatable
    assert adjusted["m-large"] is original[0], "an untouched type is passed through as is"


def test_capacities_from_different_weights_merge_and_the_higher_weight_wins_per_resource(
    overlay_file: Path,
) -> None:
    _write(
        overlay_file,
        """
        - metadata: {name: low}
          spec: {weight: 1, capacity: {example.com/gpu: 1, example.com/fuse: 1}}
        - metadata: {name: high}
          spec: {weight: 9, capacity: {example.com/gpu: 4}}
        """,
    )
    (adjusted,) = _adjust([_it("m-large", 1.0)]) or []
    assert adjusted.allocatable[GPU] == 4000
    assert adjusted.allocatable["example.com/fuse"] == 1000


def test_the_scheduler_places_an_extended_resource_pod_only_on_overlaid_types(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        metadata: {name: gpus}
        spec:
          requirements: [{key: example.com/instance-family, operator: In, values: [r]}]
          capacity: {example.com/gpu: 1}
        """,
    )
    its = _adjust(_catalogue())
    pod = factories.pod(requests={"cpu": "1", GPU: "1"})
    result = scheduling.solve(
        scheduling.SchedulingInput(pods=[pod], templates=[factories.template(instance_types=its)])
    )
    (claim,) = result.new_nodeclaims
    assert [it.name for it in claim.instance_types] == ["r-large"]


# -- configuration, errors, caching -----------------------------------------------------------------------


def test_without_a_configured_file_the_hook_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(source.ENV_VAR, raising=False)
    monkeypatch.setattr(plugin, "ADJUSTER", plugin.Adjuster())
    assert plugin.nodesmith_adjust_instance_types("default", _catalogue()) is None


def test_overlays_that_select_nothing_change_nothing(overlay_file: Path) -> None:
    _write(
        overlay_file,
        """
        metadata: {name: elsewhere}
        spec:
          requirements: [{key: topology.kubernetes.io/zone, operator: In, values: [z9]}]
          price: "0.1"
        """,
    )
    assert _adjust(_catalogue()) is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"priceAdjustment": "10%"}, "spec.priceAdjustment"),
        ({"priceAdjustment": "-150%"}, "spec.priceAdjustment"),
        ({"price": "-1"}, "spec.price"),
        ({"price": "1", "priceAdjustment": "+1"}, "spec.price"),
        ({"weight": 0, "price": "1"}, "spec.weight"),
        ({"weight": 10001, "price": "1"}, "spec.weight"),
        ({"capacity": {"cpu": "1"}}, "spec.capacity.cpu"),
        ({"capacity": {GPU: "lots"}}, f"spec.capacity.{GPU}"),
        ({"requirements": [{"key": "k", "operator": "Near", "values": ["x"]}], "price": "1"}, "operator"),
        ({"requirements": [{"key": "k", "operator": "In"}], "price": "1"}, "spec.requirements[0].values"),
        ({"requirements": [{"key": "k", "operator": "Gt", "values": ["x"]}], "price": "1"}, "values"),
        ({"cost": "1"}, "spec.cost"),
        ({}, "spec"),
    ],
)
def test_a_malformed_overlay_is_logged_naming_it_and_the_field_and_the_others_apply(
    overlay_file: Path, caplog: pytest.LogCaptureFixture, spec: dict[str, object], field: str
) -> None:
    import yaml

    documents = [
        {"kind": "NodeOverlay", "metadata": {"name": "broken"}, "spec": spec},
        {"kind": "NodeOverlay", "metadata": {"name": "fine"}, "spec": {"price": "0.5"}},
    ]
    overlay_file.write_text(yaml.safe_dump_all(documents))
    with caplog.at_level(logging.ERROR, logger="nodesmith_price_overlay"):
        prices = _prices(_adjust(_catalogue()))
    assert prices["m-large"] == _all(0.5)
    (record,) = [r for r in caplog.records if "broken" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "overlay 'broken'" in record.getMessage()
    assert field in record.getMessage()
    assert "ignored" in record.getMessage()


def test_an_overlay_without_a_name_is_reported_by_position(
    overlay_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(overlay_file, "- spec: {price: '1'}\n- metadata: {name: ok}\n  spec: {price: '2'}\n")
    with caplog.at_level(logging.ERROR, logger="nodesmith_price_overlay"):
        assert _prices(_adjust(_catalogue()))["c-large"] == _all(2.0)
    assert "overlay '#1': metadata.name: required" in caplog.text


def test_invalid_yaml_is_logged_and_applies_nothing(
    overlay_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(overlay_file, "metadata: {name: x\nspec: [\n")
    with caplog.at_level(logging.ERROR, logger="nodesmith_price_overlay"):
        assert _adjust(_catalogue()) is None
    assert f"cannot parse {overlay_file}" in caplog.text


def test_a_missing_file_is_logged_once_and_applies_nothing(
    overlay_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nodesmith_price_overlay"):
        assert _adjust(_catalogue()) is None
        assert _adjust(_catalogue()) is None
    assert caplog.text.count(f"cannot read {overlay_file}") == 1


def test_an_edited_file_is_read_again_and_an_unchanged_one_is_not(
    overlay_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(overlay_file, "metadata: {name: v1}\nspec: {price: '0.5'}\n", mtime_ns=1_000_000_000)
    its = _catalogue()
    assert _prices(_adjust(its))["m-large"] == _all(0.5)

    reads: list[str] = []
    real_parse = source.parse_documents

    def counting_parse(docs: Sequence[Any], src: str) -> tuple[NodeOverlay, ...]:
        reads.append(src)
        return real_parse(docs, src)

    monkeypatch.setattr(source, "parse_documents", counting_parse)
    assert _prices(_adjust(its))["m-large"] == _all(0.5)
    assert reads == [], "an unchanged file is served from the cache"

    _write(overlay_file, "metadata: {name: v2}\nspec: {price: '0.7'}\n", mtime_ns=2_000_000_000)
    assert _prices(_adjust(its))["m-large"] == _all(0.7)
    assert reads == [str(overlay_file)]


def test_the_hook_never_raises_into_the_provisioning_path(
    overlay_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _write(overlay_file, "metadata: {name: v1}\nspec: {price: '0.5'}\n")

    def broken(*args: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(apply, "apply_overlays", broken)
    with caplog.at_level(logging.ERROR, logger="nodesmith_price_overlay"):
        assert _adjust(_catalogue()) is None
    assert "applying overlays to NodePool default failed" in caplog.text


# -- through the plugin manager ---------------------------------------------------------------------------


def test_the_installed_plugin_makes_the_scheduler_pick_the_type_it_made_cheapest(overlay_file: Path) -> None:
    its = _catalogue()
    pod = factories.pod(cpu="1")

    def cheapest(types: Sequence[InstanceType]) -> str:
        template = factories.template(instance_types=types)
        (claim,) = scheduling.solve(
            scheduling.SchedulingInput(pods=[pod], templates=[template])
        ).new_nodeclaims
        return claim.instance_types[0].name

    plugins = manager.Plugins.load()
    assert ("price-overlay", "nodesmith-price-overlay", "0.1.0") in plugins.distributions()
    assert cheapest(plugins.adjust_instance_types("default", its)) == "c-large", (
        "the file is not written yet: unchanged"
    )

    _write(
        overlay_file,
        """
        metadata: {name: r-savings-plan}
        spec:
          requirements: [{key: node.kubernetes.io/instance-type, operator: In, values: [r-large]}]
          priceAdjustment: "-60%"
        """,
    )
    assert cheapest(plugins.adjust_instance_types("default", its)) == "r-large"
