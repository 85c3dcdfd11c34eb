"""What the machines cost: the hourly price of one machine, the cost of each NodePool's nodes, and the
price of every offering the NodePools can use.

A machine costs what its instance type's offering in its zone for its capacity type costs (the
``node.kubernetes.io/instance-type``, ``topology.kubernetes.io/zone`` and ``nodesmith.io/capacity-type``
labels), looked up in its own NodePool's instance types first, then in any NodePool's type of that name
(a pool whose NodeClass is not ready has none). An offering whose price is not a finite number (the AWS
provider prices an offering it has no price for at infinity) gives no price.

Fed by the instance types the provider offers each NodePool (after the plugins' adjusters, as the
provisioner reads them) and a `Snapshot`; consumed by the cost reconciler (``nodesmith.reconcilers.cost``,
which turns `costs` into gauges) and the what-if report (``nodesmith.whatif``, which prices machines with
`node_price`). Pure: values in, values out.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping, Sequence

import attrs

from nodesmith.api import labels
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.statenode import StateNode

__all__ = ["Costs", "OfferingKey", "costs", "node_price", "offering_prices", "running"]

OfferingKey: typing.TypeAlias = tuple[str, str, str]
"""``(instance type, capacity type, zone)``."""
_Index: typing.TypeAlias = Mapping[str, Mapping[str, InstanceType]]
"""NodePool → instance type name → instance type."""


@typing.final
@attrs.frozen(slots=True)
class Costs:
    """The hourly cost of the cluster's running nodes, by NodePool, and the offerings' prices.

    ``nodepools`` and ``unpriced`` have the same keys: every NodePool in the snapshot (0 when it has no
    nodes) plus any NodePool still named by a running node after the pool itself is gone."""

    nodepools: Mapping[str, float]
    """NodePool → the summed price of its running nodes that have one."""
    unpriced: Mapping[str, int]
    """NodePool → how many of its running nodes have no price (left out of ``nodepools``)."""
    offerings: Mapping[OfferingKey, float]
    """Every offering of every instance type given, at its lowest price across NodePools."""

    @property
    def total(self) -> float:
        return sum(self.nodepools.values())


def running(node: StateNode) -> bool:
    """A machine that is billed: a NodeClaim with its Node (being deleted or not: it runs until it goes)."""
    return node.nodeclaim is not None and node.node is not None


def node_price(node: StateNode, instance_types: Mapping[str, Sequence[InstanceType]]) -> float | None:
    """Hourly price of a machine (see the module docstring); ``None`` when it has none."""
    return _price(node, _index(instance_types))


def offering_prices(instance_types: Mapping[str, Sequence[InstanceType]]) -> dict[OfferingKey, float]:
    """Every offering (available or not) of every type any NodePool has, keyed by type, capacity type and
    zone. When NodePools disagree on a price (a price overlay adjusts one pool's types), the lowest wins;
    offerings without a finite price are left out."""
    out: dict[OfferingKey, float] = {}
    for types in instance_types.values():
        for it in types:
            for offering in it.offerings:
                if not math.isfinite(offering.price):
                    continue
                key = (it.name, offering.capacity_type, offering.zone)
                known = out.get(key)
                if known is None or offering.price < known:
                    out[key] = offering.price
    return out


def costs(snapshot: Snapshot, instance_types: Mapping[str, Sequence[InstanceType]]) -> Costs:
    """Per-NodePool cost and unpriced nodes of the `running` machines, and `offering_prices`."""
    index = _index(instance_types)
    per_pool = dict.fromkeys(snapshot.nodepools, 0.0)
    unpriced = dict.fromkeys(snapshot.nodepools, 0)
    for node in snapshot.nodes:
        pool = node.nodepool
        if pool is None or not running(node):
            continue
        per_pool.setdefault(pool, 0.0)
        unpriced.setdefault(pool, 0)
        price = _price(node, index)
        if price is None:
            unpriced[pool] += 1
        else:
            per_pool[pool] += price
    return Costs(per_pool, unpriced, offering_prices(instance_types))


def _index(instance_types: Mapping[str, Sequence[InstanceType]]) -> dict[str, dict[str, InstanceType]]:
    return {pool: {it.name: it for it in types} for pool, types in instance_types.items()}


def _price(node: StateNode, index: _Index) -> float | None:
    name = node.labels.get(labels.LABEL_INSTANCE_TYPE)
    if name is None:
        return None
    zone = node.labels.get(labels.LABEL_ZONE)
    capacity_type = node.labels.get(labels.LABEL_CAPACITY_TYPE)
    own = node.nodepool
    for pool in [own, *sorted(index)] if own is not None and own in index else sorted(index):
        it = index[pool].get(name)
        offering = None if it is None else it.offering(zone, capacity_type)
        if offering is not None:
            return offering.price if math.isfinite(offering.price) else None
    return None
