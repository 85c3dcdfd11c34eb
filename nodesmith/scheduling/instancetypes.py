"""A NodePool template's instance types, indexed for the hot path: compatibility as bit masks, room as vectors.

The scheduler builds one :class:`Catalog` per template. A simulated NodeClaim (``nodeclaim``) keeps the
set of instance types it can still be as a Python ``int`` bit mask (bit *i* = ``types[i]``):

* requirement compatibility (``it.requirements.intersects(reqs)``, per key) and "has an available
  compatible offering" are memoised per distinct requirement, so narrowing a NodeClaim costs a few dict
  lookups and one ``&`` instead of a pass over every instance type;
* room is ``allocatable − DaemonSet overhead of the type's group`` (:mod:`daemonsets`), a vector per type;
  per resource the types are sorted by room with prefix masks, so "which types hold these requests" is one
  bisect and one ``&`` per resource (:meth:`Catalog.fits_mask`).

It also finalizes a NodeClaim's type list (spec 2.6): keep every type that fits, order by the cheapest
compatible available offering, check minValues, truncate to :data:`MAX_INSTANCE_TYPES`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, final

from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.scheduling import daemonsets, hostports
from nodesmith.scheduling import resources as res

__all__ = ["MAX_INSTANCE_TYPES", "Catalog", "bits", "satisfies_min_values"]

MAX_INSTANCE_TYPES: Final = 600
"""Instance types a NodeClaim may list (Karpenter ``MaxInstanceTypes`` since PR #2430)."""

_NODES: Final = "nodes"


def _intersects(it_req: Requirement | None, req: Requirement) -> bool:
    if it_req is None or it_req.has_intersection(req):
        return True
    negative = ("NotIn", "DoesNotExist")
    return it_req.operator.value in negative and req.operator.value in negative


@final
class Catalog:
    """Instance types of one template with memoised compatibility masks and per-type room vectors."""

    def __init__(
        self,
        requirements: Requirements,
        instance_types: Sequence[InstanceType],
        index: res.ResourceIndex,
        group_of: Sequence[int],
        groups: Sequence[daemonsets.DaemonGroup],
        well_known: frozenset[str],
    ) -> None:
        self.types = tuple(instance_types)
        self.well_known = well_known
        self.index = index
        self.group_of = tuple(group_of)
        self.groups = tuple(groups)
        self.group_vectors = tuple(index.vector(g.requests) for g in groups)
        self.budgets = tuple(
            res.vsub(index.vector(it.allocatable), self.group_vectors[g])
            for it, g in zip(self.types, self.group_of, strict=True)
        )
        self._type_keys = frozenset(k for it in self.types for k in it.requirements)
        # Per resource: types by room descending, and prefix masks, so "types with room >= x" is a bisect.
        self._room_keys: list[list[int]] = []
        self._room_masks: list[list[int]] = []
        for r in range(len(index.names)):
            rooms = [budget[r] for budget in self.budgets]
            by_room = sorted(range(len(self.types)), key=rooms.__getitem__, reverse=True)
            self._room_keys.append([-rooms[i] for i in by_room])
            masks = [0]
            for i in by_room:
                masks.append(masks[-1] | 1 << i)
            self._room_masks.append(masks)
        # Types with room left at all once their DaemonSet overhead is taken: a resource the pod does not
        # request still has to hold the DaemonSet pods (Karpenter fits pod + daemon requests together).
        self._nonnegative_mask = sum(
            1 << i for i, budget in enumerate(self.budgets) if all(room >= 0 for room in budget)
        )
        self._key_masks: dict[Requirement, int] = {}
        self._offering_keys = tuple(
            sorted({k for it in self.types for o in it.offerings for k in o.requirements})
        )
        self._offering_masks: dict[tuple[Requirement | None, ...], int] = {}
        self._port_masks: dict[tuple[hostports.HostPort, ...], int] = {}
        self._prices: dict[tuple[Requirement | None, ...], list[float | None]] = {}
        self.full_mask = (1 << len(self.types)) - 1
        self.template_mask = self.mask_for(requirements)

    # -- compatibility ------------------------------------------------------------------------------

    def _key_mask(self, requirement: Requirement) -> int:
        mask = self._key_masks.get(requirement)
        if mask is None:
            key = requirement.key
            if key not in self._type_keys:
                return self.full_mask  # no type defines the key: every type intersects
            mask = 0
            for i, it in enumerate(self.types):
                if _intersects(it.requirements.get(key) if key in it.requirements else None, requirement):
                    mask |= 1 << i
            self._key_masks[requirement] = mask
        return mask

    def _signature(self, requirements: Requirements) -> tuple[Requirement | None, ...]:
        return tuple(requirements.get(k, None) for k in self._offering_keys)

    def _offering_mask(self, requirements: Requirements) -> int:
        signature = self._signature(requirements)
        mask = self._offering_masks.get(signature)
        if mask is None:
            mask = 0
            for i, it in enumerate(self.types):
                if any(
                    o.available and requirements.is_compatible(o.requirements, self.well_known)
                    for o in it.offerings
                ):
                    mask |= 1 << i
            self._offering_masks[signature] = mask
        return mask

    def mask_for(self, requirements: Requirements) -> int:
        """Types compatible with ``requirements`` that have an available compatible offering."""
        mask = self._offering_mask(requirements)
        for requirement in requirements.values():
            if mask == 0:
                break
            mask &= self._key_mask(requirement)
        return mask

    def port_mask(self, ports: tuple[hostports.HostPort, ...]) -> int:
        """Types whose DaemonSet host ports do not conflict with ``ports``."""
        mask = self._port_masks.get(ports)
        if mask is None:
            ok = [hostports.conflicts(ports, g.host_ports) is None for g in self.groups]
            mask = sum(1 << i for i, g in enumerate(self.group_of) if ok[g])
            self._port_masks[ports] = mask
        return mask

    def limits_mask(self, remaining: Mapping[str, int]) -> int:
        """Types whose capacity fits the NodePool's remaining limits (a NodeClaim counts as one node)."""
        mask = 0
        for i, it in enumerate(self.types):
            capacity = it.capacity
            if all(
                (1000 if name == _NODES else capacity.get(name, 0)) <= amount
                for name, amount in remaining.items()
            ):
                mask |= 1 << i
        return mask

    # -- room ---------------------------------------------------------------------------------------

    def fits_mask(self, total: res.Vector) -> int:
        """Types whose room (allocatable − their DaemonSet overhead) holds ``total``; a resource ``total``
        does not ask for still needs room >= 0."""
        mask = self._nonnegative_mask
        for keys, masks, need in zip(self._room_keys, self._room_masks, total):  # noqa: B905 - hot path
            if need > 0:
                mask &= masks[bisect.bisect_right(keys, -need)]
        return mask

    def max_capacity(self, indices: Iterable[int], names: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        chosen = list(indices)
        for name in names:
            if name == _NODES:
                out[name] = 1000
                continue
            out[name] = max((self.types[i].capacity.get(name, 0) for i in chosen), default=0)
        return out

    def diagnose(
        self, requirements: Requirements, mask: int, total: res.Vector
    ) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
        """Why no type is left: counts per failed criterion, and the resources short on the compatible
        types with an offering. Called only to explain a failure."""
        compatible = self.full_mask
        for requirement in requirements.values():
            compatible &= self._key_mask(requirement)
        offered = self._offering_mask(requirements)
        n = len(self.types)
        incompatible = sum(1 for i in range(n) if not compatible >> i & 1)
        no_offering = sum(1 for i in range(n) if compatible >> i & 1 and not offered >> i & 1)
        short: set[str] = set()
        too_small = 0
        for i in range(n):
            if mask >> i & 1:
                too_small += 1
                for name, need, room in zip(self.index.names, total, self.budgets[i], strict=True):
                    if need > room:
                        short.add(name)
        counts = tuple(
            (what, count)
            for what, count in (
                ("incompatible", incompatible),
                ("without offering", no_offering),
                ("too small", too_small),
            )
            if count
        )
        return counts, tuple(sorted(short))

    # -- finalizing ---------------------------------------------------------------------------------

    def prices(self, requirements: Requirements) -> list[float | None]:
        """Per type, its cheapest compatible available offering's price (``None``: no such offering)."""
        signature = self._signature(requirements)
        prices = self._prices.get(signature)
        if prices is None:
            prices = self._prices[signature] = [it.cheapest_price(requirements) for it in self.types]
        return prices

    def ordered(self, indices: Iterable[int], requirements: Requirements) -> list[InstanceType]:
        """Types ascending by their cheapest compatible available offering, ties by name."""
        prices = self.prices(requirements)
        inf = float("inf")
        types = self.types
        ranked = sorted(indices, key=lambda i: (inf if prices[i] is None else prices[i], types[i].name))
        return [types[i] for i in ranked]


def bits(mask: int) -> list[int]:
    """Indices of the set bits of ``mask``, ascending."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def satisfies_min_values(
    instance_types: Sequence[InstanceType], requirements: Requirements
) -> tuple[int | None, tuple[str, ...]]:
    """Karpenter ``SatisfiesMinValues``: walking the (price-ordered) list, how many types are needed before
    every key with ``minValues`` sees enough distinct values; ``(None, unsatisfied keys)`` if never."""
    wanted = [(key, r.min_values) for key, r in requirements.items() if r.min_values]
    if not wanted:
        return 0, ()
    seen: dict[str, set[str]] = {key: set() for key, _ in wanted}
    for n, it in enumerate(instance_types, start=1):
        for key, _ in wanted:
            req = it.requirements.get(key)
            if not req.complement:
                seen[key].update(req.values)
        if all(len(seen[key]) >= need for key, need in wanted):
            return n, ()
    return None, tuple(sorted(key for key, need in wanted if len(seen[key]) < need))
