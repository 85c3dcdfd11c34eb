"""On-demand and spot prices: the Pricing API and DescribeSpotPriceHistory, over a bundled static table.

Fed by AWS (``pricing:GetProducts``, ``ec2:DescribeSpotPriceHistory``) every 12 hours and, until the first
success, by ``data/on_demand_prices.json`` (approximate public prices, so an offline or isolated cluster
still ranks instance types sensibly). Consumed by `nodesmith_aws.instancetypes`: an offering without a
price is unavailable. Karpenter's rules (shared/spec/karpenter-aws.md §3):

* until the first successful spot refresh every spot price is the on-demand price; after it, only zones
  seen in the spot history have a spot price;
* both refreshes merge into what is known (old entries are kept) and fail loudly on an empty answer;
* no Pricing API call when ``isolated_vpc`` is set or in ``us-gov`` regions.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from collections.abc import Mapping
from typing import Any, Final

import anyio
from anyio.abc import TaskStatus

from nodesmith_aws.clients import Clients
from nodesmith_aws.settings import Settings

__all__ = ["REFRESH_INTERVAL", "Pricing", "static_on_demand_prices"]

log = logging.getLogger(__name__)

REFRESH_INTERVAL: Final = 12 * 3600.0
_COMMON_FILTERS: Final = {
    "serviceCode": "AmazonEC2",
    "preInstalledSw": "NA",
    "operatingSystem": "Linux",
    "capacitystatus": "Used",
    "marketoption": "OnDemand",
}


def static_on_demand_prices(region: str) -> dict[str, float]:
    """The bundled table for ``region`` (us-east-1's for regions it does not list)."""
    raw = importlib.resources.files("nodesmith_aws").joinpath("data/on_demand_prices.json").read_text()
    table: Mapping[str, Any] = json.loads(raw)
    prices = table.get(region) or table["us-east-1"]
    return {name: float(price) for name, price in prices.items()}


def _parse_product(text: str, currency: str) -> tuple[str, float] | None:
    product = json.loads(text)
    name = product.get("product", {}).get("attributes", {}).get("instanceType")
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            price = float(dimension.get("pricePerUnit", {}).get(currency, 0) or 0)
            if name and price > 0:
                return name, price
    return None


class Pricing:
    """Prices per instance type (on-demand) and per instance type and zone (spot)."""

    def __init__(self, settings: Settings, clients: Clients) -> None:
        self.settings = settings
        self.clients = clients
        self.on_demand: dict[str, float] = static_on_demand_prices(settings.region)
        self.spot: dict[str, dict[str, float]] = {}
        self.spot_updated = False
        self.on_demand_updated = False

    def on_demand_price(self, instance_type: str) -> float | None:
        return self.on_demand.get(instance_type)

    def spot_price(self, instance_type: str, zone: str) -> float | None:
        if not self.spot_updated:
            return self.on_demand.get(instance_type)
        return self.spot.get(instance_type, {}).get(zone)

    def price(self, instance_type: str, zone: str, capacity_type: str) -> float | None:
        if capacity_type == "spot":
            return self.spot_price(instance_type, zone)
        return self.on_demand_price(instance_type)

    # -- refresh ---------------------------------------------------------------------------------------

    async def update_on_demand(self) -> None:
        """Merge the Pricing API's Linux on-demand prices in. Raises when the API fails or is empty."""
        if self.settings.isolated_vpc or self.settings.region.startswith("us-gov"):
            return
        client = await self.clients.pricing()
        currency = "CNY" if self.settings.region.startswith("cn-") else "USD"
        found: dict[str, float] = {}

        async def query(tenancy: str, family: str) -> None:
            filters = [
                {"Type": "TERM_MATCH", "Field": k, "Value": v}
                for k, v in {
                    **_COMMON_FILTERS,
                    "regionCode": self.settings.region,
                    "tenancy": tenancy,
                }.items()
            ] + [{"Type": "TERM_MATCH", "Field": "productFamily", "Value": family}]
            count = 0
            paginator = client.get_paginator("get_products")
            async for page in paginator.paginate(ServiceCode="AmazonEC2", Filters=filters, MaxResults=100):
                for text in page.get("PriceList") or ():
                    parsed = _parse_product(text, currency)
                    if parsed is not None:
                        found[parsed[0]] = parsed[1]
                        count += 1
            if count == 0:
                raise LookupError(f"the Pricing API returned no {family} ({tenancy}) prices")

        async with anyio.create_task_group() as tg:
            tg.start_soon(query, "Shared", "Compute Instance")
            tg.start_soon(query, "Dedicated", "Compute Instance (bare metal)")
        self.on_demand = {**self.on_demand, **found}
        self.on_demand_updated = True

    async def update_spot(self) -> None:
        """Merge the current spot prices in (the latest record per type and zone wins)."""
        client = await self.clients.ec2()
        found: dict[str, dict[str, tuple[Any, float]]] = {}
        paginator = client.get_paginator("describe_spot_price_history")
        async for page in paginator.paginate(
            ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"], MaxResults=1000
        ):
            for record in page.get("SpotPriceHistory") or ():
                stamp = record.get("Timestamp")
                try:
                    price = float(record["SpotPrice"])
                except (KeyError, ValueError):
                    continue
                if stamp is None:
                    continue
                zones = found.setdefault(record["InstanceType"], {})
                previous = zones.get(record["AvailabilityZone"])
                if previous is None or previous[0] <= stamp:
                    zones[record["AvailabilityZone"]] = (stamp, price)
        if not found:
            raise LookupError("DescribeSpotPriceHistory returned no prices")
        merged = {name: dict(zones) for name, zones in self.spot.items()}
        for name, zones in found.items():
            merged.setdefault(name, {}).update({zone: price for zone, (_, price) in zones.items()})
        self.spot = merged
        self.spot_updated = True

    async def refresh(self) -> None:
        """Both updates in parallel; a failure is logged and the previous (or static) prices stay."""

        async def guarded(update: Any, what: str) -> None:
            try:
                await update()
            except Exception as err:  # boundary: pricing must never take the provider down
                log.warning("%s pricing refresh failed, keeping the previous prices: %s", what, err)

        async with anyio.create_task_group() as tg:
            tg.start_soon(guarded, self.update_on_demand, "on-demand")
            tg.start_soon(guarded, self.update_spot, "spot")

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Refresh now and every :data:`REFRESH_INTERVAL`; runs until cancelled."""
        await self.refresh()
        task_status.started()
        while True:
            await anyio.sleep(REFRESH_INTERVAL)
            await self.refresh()
