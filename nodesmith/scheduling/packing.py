"""Cost-optimised packing: a nodesmith extension a NodePool opts into with the annotation
``nodesmith.io/packing: cost-optimised`` (`nodesmith.api.nodepool.Packing`).

Why: Karpenter offers pods largest first to its NodeClaims fewest-pods first, and each NodeClaim keeps every
instance type that still fits, so a NodeClaim grows until the largest type is full in *one* resource (the
CPU-heavy pods come first) and launches whatever type that forces. On generic workloads that costs
1.2-1.4x the LP lower bound until consolidation catches up.

What changes in a run where some NodePool opts in -- only the order things are tried in and how big a new
NodeClaim may grow, never a check -- and only for the pods an opted-in pool could take (its taints
tolerated, its requirements compatible: :attr:`CostPacking.eligible`); other pods keep their places in
Karpenter's order and see the NodeClaims fewest pods first, as Karpenter offers them:

1. those pods are offered in a *balanced* order (:func:`balanced`): Karpenter's order within each request shape,
   the shapes interleaved in proportion to their counts, so every prefix of the queue -- what one node
   receives -- is a representative mix and a node fills up in all resources at once;
2. the run's NodeClaims are offered to them oldest first (first fit), skipping those whose room -- the largest room
   among the types they can still be, less what they hold -- cannot take the pod (:class:`CostPacking`,
   through `fitindex`), instead of fewest pods first;
3. a new NodeClaim of an opted-in pool is aimed (:meth:`CostPacking.aim`) at the type with the lowest
   price per share of the remaining pods' demand it can hold -- the most efficient large type while much is
   left, the cheapest type holding all of it at the tail -- and keeps only the types no dearer than that
   one, so it fills up before the next one opens; NodeClaims of pools that did not opt in keep every type;
4. finalizing is unchanged: the NodeClaim lists the types its pods fit cheapest first, which is the
   downsizing pass (a NodeClaim aimed high but left half empty launches the cheapest type that holds it).

Every placement still goes through ``SimNodeClaim.check`` / ``SimExistingNode.check`` and the run's
topology, limits and volume state, so the constraints are those of the default engine. ``scheduler`` runs
Karpenter's packing too and keeps this one's result only if it places at least as many pods for no more
money (:func:`preferred`): opting in never costs more than the default.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Final, final

from nodesmith.api.nodepool import Packing
from nodesmith.scheduling import fitindex, instancetypes, nodeclaim, pods, results
from nodesmith.scheduling import resources as res

__all__ = ["CostPacking", "balanced", "preferred"]

_CENT: Final = 1e-6
"""Price differences below this are float noise (0.6 + 0.3 < 0.9), not savings."""
_TAIL_MARGIN: Final = 1.25
"""At the tail, the lowest price per share still wins over one or two nodes holding everything when its
(fractional, so optimistic) estimate of the whole cost is below theirs by this factor."""
_LOOKAHEAD: Final = 16
"""At the tail, how many of the dearest types too small for the whole remainder are tried with a second
node for what they leave (the ones that leave little; bounded so opening a NodeClaim stays cheap)."""


def balanced(ordered: Sequence[pods.SchedulingPod]) -> list[pods.SchedulingPod]:
    """``ordered`` (Karpenter's order) with its request shapes interleaved in proportion to their counts:
    each shape keeps its own order and first appearance breaks ties, so the result is deterministic."""
    shapes: dict[tuple[tuple[str, int], ...], list[pods.SchedulingPod]] = {}
    for pod in ordered:
        shapes.setdefault(tuple(sorted(pod.requests.items())), []).append(pod)
    groups = list(shapes.values())
    heap = [(0.5 / len(group), g) for g, group in enumerate(groups)]
    heapq.heapify(heap)
    taken = [0] * len(groups)
    out: list[pods.SchedulingPod] = []
    while heap:
        _, g = heapq.heappop(heap)
        group = groups[g]
        out.append(group[taken[g]])
        taken[g] += 1
        if taken[g] < len(group):
            heapq.heappush(heap, ((taken[g] + 0.5) / len(group), g))
    return out


def preferred(cost: results.Results, default: results.Results) -> results.Results:
    """The cost-optimised result if it places at least as many pods as Karpenter's for no more money."""
    if (
        cost.scheduled_count() >= default.scheduled_count()
        and cost.total_price() <= default.total_price() + 1e-9
    ):
        return cost
    return default


@final
class CostPacking:
    """One run's packing state: the demand of the pods not yet placed, and the room of the run's
    NodeClaims by sequence number for first-fit offers."""

    __slots__ = (
        "_by_hostname",
        "_cap_memo",
        "_caps",
        "_fit",
        "_keep",
        "_options",
        "_rooms",
        "demand",
        "eligible",
    )

    def __init__(
        self,
        templates: Sequence[nodeclaim.Template],
        ordered: Sequence[pods.SchedulingPod],
        vector: Callable[[pods.SchedulingPod], res.Vector],
        zero: res.Vector,
    ) -> None:
        opted = [t for t in templates if t.spec.packing is Packing.COST_OPTIMISED]
        self.eligible: frozenset[str] = frozenset(
            pod.ref.uid
            for pod in ordered
            if any(
                t.untolerated(pod.tolerations) is None
                and t.spec.requirements.is_compatible(pod.requirements, t.catalog.well_known)
                for t in opted
            )
        )
        """Pods an opted-in pool could take (its taints tolerated, its requirements compatible): the
        pods this packing orders, offers first fit and counts as demand. The others are tried exactly as
        Karpenter would (their order among themselves, NodeClaims fewest pods first)."""
        demand = list(zero)
        for pod in ordered:
            if pod.ref.uid in self.eligible:
                for r, amount in enumerate(vector(pod)):
                    demand[r] += amount
        self.demand: res.Vector = tuple(demand)
        self._fit = fitindex.FitIndex([], len(zero))
        self._rooms: list[res.Vector] = []
        self._by_hostname: dict[str, int] = {}
        # memos keyed by masks (and the id of a price list or catalog, kept alive in the value)
        self._options: dict[tuple[int, int], tuple[object, list[tuple[float, int]]]] = {}
        self._keep: dict[tuple[int, int, float], int] = {}
        self._cap_memo: dict[tuple[int, int], tuple[object, res.Vector]] = {}
        self._caps: list[res.Vector] = []
        """Per NodeClaim: the per-resource maximum room among the types it could be when opened (its mask
        only narrows later, so this bounds its room for the rest of the run)."""

    def order(self, ordered: Sequence[pods.SchedulingPod]) -> list[pods.SchedulingPod]:
        """``ordered`` (Karpenter's order) with the eligible pods' places refilled in :func:`balanced`
        order; the other pods keep their places."""
        mixed = iter(balanced([p for p in ordered if p.ref.uid in self.eligible]))
        return [next(mixed) if p.ref.uid in self.eligible else p for p in ordered]

    def placed(self, pod: pods.SchedulingPod, vector: res.Vector) -> None:
        """``pod`` was placed somewhere: it no longer counts as demand."""
        if pod.ref.uid in self.eligible:
            self.demand = res.vsub(self.demand, vector)

    def claims(
        self, vector: res.Vector, claims: Sequence[nodeclaim.SimNodeClaim], allowed: set[str] | None
    ) -> Iterator[nodeclaim.SimNodeClaim]:
        """The run's NodeClaims, oldest first, that may have room for ``vector`` (and whose hostname is
        in ``allowed``, when given: few hostnames are looked up rather than walked past)."""
        if allowed is not None and len(allowed) * 4 <= len(claims):
            seqs = sorted(self._by_hostname[h] for h in allowed if h in self._by_hostname)
            rooms = self._rooms
            return (claims[seq] for seq in seqs if res.fits(vector, rooms[seq]))
        return self._walk(vector, claims, allowed)

    def _walk(
        self, vector: res.Vector, claims: Sequence[nodeclaim.SimNodeClaim], allowed: set[str] | None
    ) -> Iterator[nodeclaim.SimNodeClaim]:
        for seq in self._fit.fitting(vector):
            claim = claims[seq]
            if allowed is None or claim.hostname in allowed:
                yield claim

    def opened(self, claim: nodeclaim.SimNodeClaim) -> None:
        """``claim`` was just created (its first pod committed); sequence numbers are dense."""
        catalog = claim.template.catalog
        mask = claim.mask & catalog.fits_mask(claim.total)
        key = (id(catalog), mask)
        cached = self._cap_memo.get(key)
        if cached is None:
            budgets = catalog.budgets
            remaining = instancetypes.bits(mask)
            cap = (
                tuple(map(max, *(budgets[i] for i in remaining)))
                if len(remaining) > 1
                else budgets[remaining[0]]
            )
            cached = self._cap_memo[key] = (catalog, cap)
        self._caps.append(cached[1])
        self._by_hostname[claim.hostname] = claim.seq
        self._rooms.append(res.vsub(cached[1], claim.total))
        self._fit.append(self._rooms[-1])

    def committed(self, claim: nodeclaim.SimNodeClaim) -> None:
        """``claim`` just took one more pod."""
        room = self._rooms[claim.seq] = res.vsub(self._caps[claim.seq], claim.total)
        self._fit.update(claim.seq, room)

    def aim(self, catalog: instancetypes.Catalog, fit: nodeclaim.Fit) -> int:
        """The mask a new NodeClaim keeps: its types no dearer than the one :meth:`_target` picks among the
        priced types that hold its first pod; with none priced the mask is left as it is."""
        prices = catalog.prices(fit.requirements)
        holding = fit.mask & catalog.fits_mask(fit.total)
        key = (id(prices), holding)
        cached = self._options.get(key)
        if cached is None:
            found = sorted(
                (price, i) for i in instancetypes.bits(holding) if (price := prices[i]) is not None
            )
            cached = self._options[key] = (prices, found)
        options = cached[1]
        if not options:
            return fit.mask
        limit = self._target(options, holding & catalog.fits_mask(self.demand), catalog.budgets)
        keep_key = (id(prices), fit.mask, limit)
        keep = self._keep.get(keep_key)
        if keep is None:
            keep = 0
            for i in instancetypes.bits(fit.mask):
                price = prices[i]
                if price is not None and price <= limit:
                    keep |= 1 << i
            self._keep[keep_key] = keep
        return keep

    def _target(
        self, options: Sequence[tuple[float, int]], whole_mask: int, budgets: Sequence[res.Vector]
    ) -> float:
        """The price to aim at, ``options`` being (price, type) ascending and ``whole_mask`` the types that
        hold all the remaining demand.

        While no type holds it all: the lowest price per share of it a type holds. At the tail, when one
        does: the cheapest such type, unless a cheaper type plus the cheapest type holding what it leaves
        over cost less together (price per share alone would aim at a type cheaper per unit but a little too
        small, and buy the remainder as a second node) -- and unless price per share promises to cost
        :data:`_TAIL_MARGIN` times less than both (one node holding everything can be far dearer than
        several when the only types that large are expensive per unit)."""
        demand = self.demand
        whole = next((price for price, i in options if whole_mask >> i & 1), None)
        needed = [(r, need) for r, need in enumerate(demand) if need > 0]
        best = (float("inf"), options[-1][0])
        for price, i in options:
            budget = budgets[i]
            share = 1.0
            for r, need in needed:
                room = budget[r] / need
                if room < share:
                    share = room
            if share > 0 and price / share < best[0]:
                best = (price / share, price)
        if whole is None:
            return best[1]
        total, target = whole, whole
        below = [option for option in options if option[0] < whole]
        for price, i in reversed(below[-_LOOKAHEAD:]):
            left = tuple(max(0, need - room) for need, room in zip(demand, budgets[i], strict=True))
            rest = next((p for p, j in options if res.fits(left, budgets[j])), None)
            if rest is not None and price + rest < total - _CENT:
                total, target = price + rest, price
        if best[0] * _TAIL_MARGIN < total:
            return best[1]
        return target
