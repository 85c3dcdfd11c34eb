"""Apply validated overlays to one NodePool's instance types, with Karpenter's precedence and conflict rules.

Fed by the plugin hook (overlays from :mod:`nodesmith_price_overlay.source`, instance types from the
provider); its result replaces the NodePool's instance types for the simulation. Pure and allocation-light:
instance types that no overlay touches are returned as the same objects.

Rules, as Karpenter's ``nodeoverlay`` controller and ``InstanceTypeStore`` apply them:

1. Overlays are taken by weight, highest first; equal weights by name, the one later in the alphabet first.
2. An overlay selects an instance type when its requirements are compatible with the instance type's
   requirements plus ``nodesmith.io/nodepool In [<pool>]`` (keys an overlay requires must be defined by
   the instance type), and at least one offering is compatible with them. Its price applies to exactly
   those offerings; its capacity to the whole instance type.
3. Each offering takes its price from the first overlay (in that order) that prices it; each extended
   resource takes its amount from the first overlay that sets it — so a higher weight wins field by field,
   and capacities from different overlays merge.
4. Conflict: an overlay that would price an offering, or set a resource, already claimed by an overlay of
   the *same* weight is rejected as a whole (Karpenter marks it ``ValidationSucceeded=False``, reason
   ``Conflict``); with the order above, the overlay whose name sorts later is the one kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, final

import attrs

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering
from nodesmith_price_overlay.overlay import NodeOverlay, PriceChange

__all__ = ["Conflict", "Result", "apply_overlays", "precedence"]

_POOL: Final = labels.LABEL_NODEPOOL


@final
@attrs.frozen(slots=True)
class Conflict:
    """``overlay`` was not applied: on ``instance_type`` it collides with ``winner`` of the same weight."""

    overlay: str
    winner: str
    instance_type: str
    field: str

    def message(self, nodepool: str) -> str:
        return (
            f"overlay {self.overlay!r} conflicts with overlay {self.winner!r} (same weight) on "
            f"{self.field} of instance type {self.instance_type} in NodePool {nodepool}; "
            f"{self.overlay!r} is ignored"
        )


@final
@attrs.frozen(slots=True)
class Result:
    """The adjusted instance types (``None``: nothing changed) and the overlays rejected for conflicts."""

    instance_types: list[InstanceType] | None
    conflicts: tuple[Conflict, ...] = ()


def precedence(overlays: Sequence[NodeOverlay]) -> list[NodeOverlay]:
    """Overlays in the order they claim fields: weight descending, then name descending (Karpenter's
    ``NodeOverlayList.OrderByWeight``)."""
    return sorted(overlays, key=lambda o: (o.weight, o.name), reverse=True)


@final
@attrs.frozen(slots=True)
class _Selector:
    """An overlay's requirements split into the NodePool rule and the rest, so no copy is made per type."""

    pool: Requirement | None
    rest: Requirements

    @classmethod
    def of(cls, overlay: NodeOverlay) -> _Selector:
        reqs = overlay.requirements
        if _POOL not in reqs:
            return cls(None, reqs)
        return cls(reqs[_POOL], reqs.without(_POOL))

    def offerings(self, nodepool: str, it: InstanceType) -> list[int]:
        """Indexes of ``it``'s offerings this overlay selects in ``nodepool`` (empty: not selected)."""
        if self.pool is not None and not self.pool.has(nodepool):
            return []
        if not it.requirements.is_compatible(self.rest):
            return []
        return [j for j, offering in enumerate(it.offerings) if offering.is_compatible(self.rest)]


def apply_overlays(
    overlays: Sequence[NodeOverlay], nodepool: str, instance_types: Sequence[InstanceType]
) -> Result:
    """Apply ``overlays`` (any order) to ``nodepool``'s ``instance_types``; see the module docstring."""
    prices: dict[tuple[int, int], tuple[NodeOverlay, PriceChange]] = {}
    capacity: dict[int, dict[str, tuple[NodeOverlay, int]]] = {}
    conflicts: list[Conflict] = []
    for overlay in precedence(overlays):
        selector = _Selector.of(overlay)
        selected = [(i, selector.offerings(nodepool, it)) for i, it in enumerate(instance_types)]
        selected = [(i, offs) for i, offs in selected if offs]
        conflict = _conflict(overlay, selected, prices, capacity, instance_types)
        if conflict is not None:
            conflicts.append(conflict)
            continue
        for i, offs in selected:
            if overlay.price is not None:
                for j in offs:
                    prices.setdefault((i, j), (overlay, overlay.price))
            for resource, amount in overlay.capacity.items():
                capacity.setdefault(i, {}).setdefault(resource, (overlay, amount))
    if not prices and not capacity:
        return Result(None, tuple(conflicts))
    touched = {i for i, _ in prices} | set(capacity)
    out = [
        _adjusted(it, i, prices, capacity.get(i, {})) if i in touched else it
        for i, it in enumerate(instance_types)
    ]
    return Result(out, tuple(conflicts))


def _conflict(
    overlay: NodeOverlay,
    selected: Sequence[tuple[int, Sequence[int]]],
    prices: Mapping[tuple[int, int], tuple[NodeOverlay, PriceChange]],
    capacity: Mapping[int, Mapping[str, tuple[NodeOverlay, int]]],
    instance_types: Sequence[InstanceType],
) -> Conflict | None:
    for i, offs in selected:
        if overlay.price is not None:
            for j in offs:
                owner = prices.get((i, j))
                if owner is not None and owner[0].weight == overlay.weight:
                    offering = instance_types[i].offerings[j]
                    field = f"the price of offering {offering.zone}/{offering.capacity_type}"
                    return Conflict(overlay.name, owner[0].name, instance_types[i].name, field)
        for resource in overlay.capacity:
            claimed = capacity.get(i, {}).get(resource)
            if claimed is not None and claimed[0].weight == overlay.weight:
                return Conflict(overlay.name, claimed[0].name, instance_types[i].name, f"capacity {resource}")
    return None


def _adjusted(
    it: InstanceType,
    i: int,
    prices: Mapping[tuple[int, int], tuple[NodeOverlay, PriceChange]],
    extra: Mapping[str, tuple[NodeOverlay, int]],
) -> InstanceType:
    offerings: list[Offering] = []
    for j, offering in enumerate(it.offerings):
        rule = prices.get((i, j))
        offerings.append(
            offering if rule is None else attrs.evolve(offering, price=rule[1].apply(offering.price))
        )
    if not extra:
        return attrs.evolve(it, offerings=tuple(offerings))
    # Karpenter assigns the overlay's amount (lo.Assign): a resource the provider already reports is replaced.
    new_capacity = {**it.capacity, **{resource: amount for resource, (_, amount) in extra.items()}}
    return attrs.evolve(it, offerings=tuple(offerings), capacity=new_capacity)
