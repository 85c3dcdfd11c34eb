"""The bundled on-demand price table: generated from Karpenter's public price tables by
providers/aws/scripts/generate_prices.py, covering (nearly) every instance type EC2 describes, so an
isolated VPC (no Pricing API) can launch any of them on demand."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import pathlib

from nodesmith_aws import pricing
from tests.unit.aws.conftest import Discovered

SCRIPT = pathlib.Path(__file__).parents[3] / "providers" / "aws" / "scripts" / "generate_prices.py"


def table() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(
        importlib.resources.files("nodesmith_aws").joinpath("data/on_demand_prices.json").read_text()
    )
    return loaded


def test_the_table_says_where_and_when_its_prices_come_from() -> None:
    source = table()["_source"]
    assert isinstance(source, dict)
    assert source["repository"] == "github.com/aws/karpenter-provider-aws"
    assert len(source["commit"]) == 40
    assert all(t["generated_at"][:4].isdigit() for t in source["tables"])


def test_every_instance_type_ec2_describes_has_an_on_demand_price(discovered: Discovered) -> None:
    prices = pricing.static_on_demand_prices("us-east-1")
    described = set(discovered.infos)
    missing = sorted(described - set(prices))
    print(f"\nstatic on-demand prices: {len(prices)} types (us-east-1); described by EC2 (moto): "
          f"{len(described)}; unpriced: {len(missing)} {missing[:10]}")  # fmt: skip
    assert len(prices) > 1300
    assert len(missing) <= 50, missing  # types us-east-1 does not sell (hpc*, some dl/u-*), priced by the API
    assert all(p > 0 for p in prices.values())


def test_commercial_regions_without_a_table_use_us_east_1s_like_karpenter() -> None:
    assert pricing.static_on_demand_prices("eu-west-1") == pricing.static_on_demand_prices("us-east-1")
    assert pricing.static_on_demand_prices("us-gov-west-1") != pricing.static_on_demand_prices("us-east-1")


def test_the_generator_reads_karpenters_go_tables() -> None:
    spec = importlib.util.spec_from_file_location("generate_prices", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated, tables = module.parse(
        "// generated at 2026-07-20T13:44:30Z for us-east-1\n"
        'var X = map[string]map[ec2types.InstanceType]float64{\n\t"us-east-1": {\n'
        '\t\t// a1 family\n\t\t"a1.2xlarge": 0.204000, "a1.large": 0.051000,\n'
        '\t\t"u-6tb1.metal": 40.000000,\n\t},\n}\n'
    )
    assert generated == "2026-07-20T13:44:30Z"
    assert tables == {"us-east-1": {"a1.2xlarge": 0.204, "a1.large": 0.051, "u-6tb1.metal": 40.0}}
