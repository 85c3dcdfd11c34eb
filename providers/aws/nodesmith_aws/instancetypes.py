"""Instance types an EC2NodeClass can launch: discovery, capacity, labels, offerings, prices.

Two layers, as in Karpenter's ``instancetype`` provider:

* `Catalog` holds the raw answers of ``DescribeInstanceTypes`` (hvm, x86_64/arm64) and
  ``DescribeInstanceTypeOfferings`` (type → zones). They are region-wide facts, refreshed every 12 hours
  (`Catalog.run`), and may be shared by several providers of the same region (tests share one, because
  moto takes seconds to describe ~1,400 types).
* `InstanceTypes` turns them into `nodesmith.cloudprovider.types.InstanceType` values for one NodeClass:
  capacity and overhead (`nodesmith_aws.capacity`), requirements (`nodesmith_aws.labels`), and one
  offering per (zone of the NodeClass's subnets × capacity type), priced by `nodesmith_aws.pricing` and
  made unavailable by the ICE cache, a missing price, a zone the type is not offered in, or the lack of
  an AMI for the type's architecture. Results are cached for 5 minutes and recomputed at once when the
  ICE cache or the prices change.

Consumed by ``get_instance_types`` (the scheduler's input) and ``create`` (what to launch).
"""

from __future__ import annotations

import builtins
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import anyio
import attrs
from anyio.abc import TaskStatus

from nodesmith.api import labels as core_labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering
from nodesmith_aws import capacity, capacityreservations, labels, plugin
from nodesmith_aws.cache import INSTANCE_TYPES_TTL, TTLCache, UnavailableOfferings
from nodesmith_aws.clients import Clients
from nodesmith_aws.nodeclass import EC2NodeClass
from nodesmith_aws.pricing import Pricing
from nodesmith_aws.reservationusage import ReservationUsage
from nodesmith_aws.settings import Settings

__all__ = ["CAPACITY_TYPES", "Catalog", "InstanceTypes"]

log = logging.getLogger(__name__)

CAPACITY_TYPES: Final = ("on-demand", "spot")
REFRESH_INTERVAL: Final = 12 * 3600.0
DISCOVERY_BACKOFF_MAX: Final = 60.0
"""Seconds between two attempts of a first discovery that keeps failing, at most."""
_SUFFIXES: Final = tuple(key.removeprefix(labels.LABEL_PREFIX) for key in plugin.INSTANCE_LABELS)
"""The ``aws.nodesmith.io/instance-*`` suffixes every instance type defines (the plugin declares the keys)."""


class Catalog:
    """Region-wide instance-type facts from EC2. ``version`` increases whenever they change.

    ``sleep`` is the daemon's injected clock's: `run` waits on it between refreshes and between the
    attempts of a first discovery that keeps failing."""

    def __init__(self, clients: Clients, sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self.clients = clients
        self._sleep = sleep
        self.last_error: str | None = None
        """Why the last discovery failed (``None`` once one succeeded): shown while nothing is known."""
        self.infos: dict[str, Mapping[str, Any]] = {}
        self.zones: dict[str, frozenset[str]] = {}
        self.version = 0

    @property
    def all_zones(self) -> frozenset[str]:
        return frozenset().union(*self.zones.values()) if self.zones else frozenset()

    async def refresh(self) -> None:
        """Describe every hvm x86_64/arm64 instance type and where each is offered. Raises on failure
        (the provider cannot start without them; later failures keep the previous answer)."""
        ec2 = await self.clients.ec2()
        infos: dict[str, Mapping[str, Any]] = {}
        paginator = ec2.get_paginator("describe_instance_types")
        async for page in paginator.paginate(
            Filters=[
                {"Name": "supported-virtualization-type", "Values": ["hvm"]},
                {"Name": "processor-info.supported-architecture", "Values": ["x86_64", "arm64"]},
            ],
            MaxResults=100,
        ):
            for info in page.get("InstanceTypes") or ():
                infos[info["InstanceType"]] = info
        zones: dict[str, set[str]] = {}
        paginator = ec2.get_paginator("describe_instance_type_offerings")
        async for page in paginator.paginate(LocationType="availability-zone", MaxResults=1000):
            for offering in page.get("InstanceTypeOfferings") or ():
                zones.setdefault(offering["InstanceType"], set()).add(offering["Location"])
        frozen = {name: frozenset(z) for name, z in zones.items()}
        if infos.keys() != self.infos.keys() or frozen != self.zones:
            self.version += 1
        self.infos, self.zones = infos, frozen
        self.last_error = None
        log.info("discovered %d instance types in %d zones", len(infos), len(self.all_zones))

    async def ensure(self) -> None:
        """Refresh once if nothing was discovered yet."""
        if not self.infos:
            await self.refresh()

    async def _discover(self) -> None:
        try:
            await self.refresh()
        except Exception as err:  # boundary: a daemon without instance types waits, it does not exit
            self.last_error = f"{type(err).__name__}: {err}"
            log.warning("instance type discovery failed, retrying with backoff: %s", self.last_error)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Discover, then refresh every 12 hours; later failures keep the old answer. Started after the
        first attempt, whether it succeeded or not: a discovery that fails (DescribeInstanceTypes timing
        out, throttled, denied) must not stop the daemon, which stays up reporting `last_error` (not
        ready; NodePools skipped as their NodeClass not ready) and retries with backoff (1 s doubling
        to `DISCOVERY_BACKOFF_MAX`) until it succeeds."""
        await self._discover()
        task_status.started()
        delay = 1.0
        while not self.infos:
            await self._sleep(delay)
            delay = min(DISCOVERY_BACKOFF_MAX, delay * 2)
            await self._discover()
        while True:
            await self._sleep(REFRESH_INTERVAL)
            try:
                await self.refresh()
            except Exception as err:  # boundary: keep serving the last good answer
                log.warning("instance type refresh failed, keeping the previous answer: %s", err)


def ami_matches(ami_requirements: Sequence[Mapping[str, Any]], type_requirements: Requirements) -> bool:
    """Can an instance type with ``type_requirements`` use an AMI with these (status) requirements?"""
    return _ami_fits(Requirements.from_node_selector(ami_requirements), type_requirements)


def _ami_fits(ami: Requirements, type_requirements: Requirements) -> bool:
    return type_requirements.is_compatible(ami, plugin.WELL_KNOWN_LABELS)


class InstanceTypes:
    """`InstanceType` values for a NodeClass, from a `Catalog`, prices and the ICE cache."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        pricing: Pricing,
        unavailable: UnavailableOfferings,
        clock: Callable[[], float] = time.monotonic,
        usage: ReservationUsage | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.pricing = pricing
        self.unavailable = unavailable
        self.usage = usage or ReservationUsage()
        """Slots taken and given back since the reservation counts in status were read."""
        self._shapes: TTLCache[tuple[Any, ...], dict[str, tuple[Requirements, dict[str, int], Any]]] = (
            TTLCache(INSTANCE_TYPES_TTL, clock)
        )
        self._types: TTLCache[tuple[Any, ...], dict[str, InstanceType]] = TTLCache(INSTANCE_TYPES_TTL, clock)

    def _shape_key(self, nodeclass: EC2NodeClass) -> tuple[Any, ...]:
        zones = tuple(sorted({s.zone for s in nodeclass.status.subnets}))
        return (
            self.catalog.version,
            nodeclass.ami_family,
            repr(sorted(nodeclass.kubelet.items())),
            repr(list(nodeclass.block_device_mappings)),
            nodeclass.spec.get("instanceStorePolicy"),
            zones,
        )

    def _shapes_for(self, nodeclass: EC2NodeClass) -> dict[str, tuple[Requirements, dict[str, int], Any]]:
        """Per type: requirements (zones = offered ∩ subnet zones), capacity and overhead."""
        key = self._shape_key(nodeclass)
        cached = self._shapes.get(key)
        if cached is not None:
            return cached
        subnet_zones = {s.zone for s in nodeclass.status.subnets}
        family = nodeclass.ami_family
        shapes = {}
        for name, info in self.catalog.infos.items():
            classes = [c for c in info.get("SupportedUsageClasses") or () if c in CAPACITY_TYPES]
            zones = sorted(self.catalog.zones.get(name, frozenset()) & subnet_zones)
            reqs = labels.instance_requirements(
                info,
                region=self.settings.region,
                zones=zones,
                capacity_types=classes,
                known_suffixes=_SUFFIXES,
            )
            cap = capacity.capacity(
                info,
                family=family,
                kubelet=nodeclass.kubelet,
                block_device_mappings=nodeclass.block_device_mappings,
                instance_store_policy=nodeclass.spec.get("instanceStorePolicy"),
                overhead_percent=self.settings.vm_memory_overhead_percent,
                reserved_enis=self.settings.reserved_enis,
            )
            over = capacity.overhead(
                info, cap, family=family, kubelet=nodeclass.kubelet, reserved_enis=self.settings.reserved_enis
            )
            shapes[name] = (reqs, cap, over)
        self._shapes.set(key, shapes)
        return shapes

    def list(self, nodeclass: EC2NodeClass) -> list[InstanceType]:
        """Every discovered type for ``nodeclass``, unavailable offerings included (drift and
        consolidation need to see them). Call ``await catalog.ensure()`` first."""
        key = (
            self._shape_key(nodeclass),
            self.unavailable.seq,
            id(self.pricing.on_demand),
            id(self.pricing.spot),
            self.pricing.spot_updated,
            tuple(a.id for a in nodeclass.status.amis),
            nodeclass.status.capacity_reservations,
            self.usage.seq,
        )
        cached = self._types.get(key)
        if cached is not None:
            return list(cached.values())
        subnet_zones = sorted({s.zone for s in nodeclass.status.subnets})
        # parsed once here, not once per type: a list covers ~1,400 types
        amis = [Requirements.from_node_selector(a.requirements) for a in nodeclass.status.amis]
        out = []
        for name, (reqs, cap, over) in sorted(self._shapes_for(nodeclass).items()):
            has_ami = any(_ami_fits(r, reqs) for r in amis)
            offered = self.catalog.zones.get(name, frozenset())
            capacity_types = reqs.get(core_labels.LABEL_CAPACITY_TYPE).values
            offerings = []
            for zone in subnet_zones:
                for ct in CAPACITY_TYPES:
                    if ct not in capacity_types:
                        continue
                    price = self.pricing.price(name, zone, ct)
                    available = (
                        has_ami
                        and zone in offered
                        and price is not None
                        and not self.unavailable.is_unavailable(ct, name, zone)
                    )
                    offerings.append(
                        Offering.of(zone, ct, math.inf if price is None else price, available=available)
                    )
            reservations = nodeclass.status.capacity_reservations
            if reservations:
                reqs, offerings = self._with_reserved(
                    name, reqs, offerings, subnet_zones, reservations, has_ami
                )
            out.append(InstanceType(name, reqs, tuple(offerings), cap, over))
        self._types.set(key, {it.name: it for it in out})
        return out

    def _with_reserved(
        self,
        name: str,
        reqs: Requirements,
        offerings: builtins.list[Offering],
        subnet_zones: Sequence[str],
        reservations: Sequence[capacityreservations.ResolvedCapacityReservation],
        has_ami: bool,
    ) -> tuple[Requirements, builtins.list[Offering]]:
        """The type's requirements and offerings with its capacity reservations added as reserved offerings."""
        prices = [p for z in subnet_zones if (p := self.pricing.price(name, z, "on-demand")) is not None]
        # the counts last read, less the launches into (plus the terminations out of) each since then
        reservations = [attrs.evolve(r, available_count=self.usage.available(r)) for r in reservations]
        reserved = [
            # a reservation that just refused a launch (ReservationCapacityExceeded) rests like any ICE
            attrs.evolve(o, available=False)
            if self.unavailable.is_unavailable(o.capacity_type, name, o.zone)
            else o
            for o in capacityreservations.offerings(
                name, subnet_zones, reservations, min(prices, default=None), usable=has_ami
            )
        ]
        if not reserved:
            return reqs, offerings
        types = set(reqs.get(core_labels.LABEL_CAPACITY_TYPE).values) | {core_labels.CapacityType.RESERVED}
        zones = set(reqs.get(core_labels.LABEL_ZONE).values) | {o.zone for o in reserved}
        reqs = reqs.without(core_labels.LABEL_CAPACITY_TYPE, core_labels.LABEL_ZONE).add(
            Requirement.in_(core_labels.LABEL_CAPACITY_TYPE, *sorted(types)),
            Requirement.in_(core_labels.LABEL_ZONE, *sorted(zones)),
        )
        return reqs, [*offerings, *reserved]

    def get(self, nodeclass: EC2NodeClass, name: str) -> InstanceType | None:
        for it in self.list(nodeclass):
            if it.name == name:
                return it
        return None

    @staticmethod
    def zone_requirement(zones: Sequence[str]) -> Requirement:
        return Requirement.in_(core_labels.LABEL_ZONE, *zones)
