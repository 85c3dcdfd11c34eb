"""Write ``nodesmith_aws/data/on_demand_prices.json`` from Karpenter's generated on-demand price tables.

Karpenter's AWS provider keeps its static fallback prices as generated Go maps
(``pkg/providers/pricing/zz_generated.pricing_aws*.go`` in github.com/aws/karpenter-provider-aws; each
says when and for which region it was generated). Those are public price facts (USD per hour, Linux,
shared tenancy); this script reads them from a local checkout and records them as data, with where and
when they were taken. It downloads nothing.

    python providers/aws/scripts/generate_prices.py <karpenter checkout> <commit> \
        > providers/aws/nodesmith_aws/data/on_demand_prices.json

Karpenter's commercial table is generated for us-east-1 only and is used for every commercial region
it does not list; nodesmith's reader does the same (`nodesmith_aws.pricing.static_on_demand_prices`).
The Pricing API refresh replaces the table with the region's own prices whenever it is reachable.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import re
import sys
from typing import Any

TABLES = (
    "pkg/providers/pricing/zz_generated.pricing_aws.go",
    "pkg/providers/pricing/zz_generated.pricing_aws_us_gov.go",
    "pkg/providers/pricing/zz_generated.pricing_aws_cn.go",
)
_REGION = re.compile(r'^\t"([a-z]{2}(?:-gov)?-[a-z]+-\d)": \{$')
_PRICE = re.compile(r'"([a-z0-9-]+\.[a-z0-9-]+)":\s*([0-9.]+)')
_GENERATED = re.compile(r"// generated at (\S+) for (\S+)")


def parse(text: str) -> tuple[str, dict[str, dict[str, float]]]:
    """(when it was generated, region → instance type → USD/h) of one generated Go file."""
    generated = _GENERATED.search(text)
    tables: dict[str, dict[str, float]] = {}
    region: str | None = None
    for line in text.splitlines():
        match = _REGION.match(line)
        if match:
            region = match.group(1)
            tables[region] = {}
            continue
        if region is not None:
            for name, price in _PRICE.findall(line):
                tables[region][name] = float(price)
    return (generated.group(1) if generated else "unknown"), tables


def main(checkout: pathlib.Path, commit: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sources = []
    for relative in TABLES:
        generated, tables = parse((checkout / relative).read_text())
        sources.append({"file": relative, "generated_at": generated, "regions": sorted(tables)})
        out.update(tables)
    return {
        "_source": {
            "what": "Public on-demand prices (USD/hour, Linux, shared tenancy) from Karpenter's generated "
            "price tables; regions not listed use us-east-1's, as Karpenter does.",
            "repository": "github.com/aws/karpenter-provider-aws",
            "commit": commit,
            "tables": sources,
            "taken": dt.date.today().isoformat(),
        },
        **{region: dict(sorted(prices.items())) for region, prices in sorted(out.items())},
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: generate_prices.py <karpenter-provider-aws checkout> <commit>")
    json.dump(main(pathlib.Path(sys.argv[1]), sys.argv[2]), sys.stdout, indent=1)
    sys.stdout.write("\n")
