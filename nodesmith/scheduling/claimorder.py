"""The order in which a run offers a pod to the NodeClaims it has opened: fewest pods first, then creation
order (Karpenter sorts them that way before each pod), kept without re-sorting per pod.

:class:`ClaimOrder` holds every NodeClaim of the run; :class:`ByDomain` files the same NodeClaims by the
domains of one topology key they can still be in, so a pod whose topology allows only some domains
(``topology.Topology.domain_filters``) is offered only the NodeClaims that are not ruled out, still in
the run's order. Without it a zonal pod walked past every NodeClaim of the other zones, which made a run
quadratic in the number of NodeClaims. Both are owned by ``scheduler``; a NodeClaim's place changes only
when a pod is committed to it (:meth:`ClaimOrder.bump`, :meth:`ByDomain.refresh`).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator
from typing import final

from nodesmith.scheduling import nodeclaim

__all__ = ["ByDomain", "ClaimOrder"]

_Key = tuple[int, int]
"""(pods on the NodeClaim, its sequence number): the run's order."""


@final
class ClaimOrder:
    """NodeClaims by pod count, then sequence number."""

    __slots__ = ("buckets", "by_hostname", "claims", "counts")

    def __init__(self) -> None:
        self.claims: list[nodeclaim.SimNodeClaim] = []
        """Every NodeClaim by sequence number (only the run's own order keeps this list)."""
        self.by_hostname: dict[str, nodeclaim.SimNodeClaim] = {}
        self.buckets: dict[int, list[int]] = {}
        self.counts: list[int] = []

    def insert(self, count: int, seq: int) -> None:
        bucket = self.buckets.get(count)
        if bucket is None:
            bucket = self.buckets[count] = []
            bisect.insort(self.counts, count)
        bisect.insort(bucket, seq)

    def discard(self, count: int, seq: int) -> None:
        bucket = self.buckets[count]
        del bucket[bisect.bisect_left(bucket, seq)]
        if not bucket:
            del self.buckets[count]
            self.counts.remove(count)

    def add(self, claim: nodeclaim.SimNodeClaim) -> None:
        self.claims.append(claim)
        self.by_hostname[claim.hostname] = claim
        self.insert(len(claim.pods), claim.seq)

    def bump(self, claim: nodeclaim.SimNodeClaim) -> None:
        """``claim`` just got one more pod."""
        old = len(claim.pods) - 1
        self.discard(old, claim.seq)
        self.insert(old + 1, claim.seq)

    def keys(self) -> Iterator[_Key]:
        for count in self.counts:
            for seq in self.buckets[count]:
                yield count, seq

    def __iter__(self) -> Iterator[nodeclaim.SimNodeClaim]:
        claims = self.claims
        for count in self.counts:
            for seq in self.buckets[count]:
                yield claims[seq]

    def among(self, hostnames: set[str]) -> Iterator[nodeclaim.SimNodeClaim]:
        if len(hostnames) * 4 > len(self.claims):
            return (c for c in self if c.hostname in hostnames)
        found = [self.by_hostname[h] for h in hostnames if h in self.by_hostname]
        found.sort(key=lambda c: (len(c.pods), c.seq))
        return iter(found)


@final
class ByDomain:
    """The run's NodeClaims filed by the values their requirement on ``key`` still allows; a NodeClaim
    without a requirement on ``key``, or with a complement one (``NotIn``, ``Exists``), is filed as open:
    no domain filter can rule it out."""

    __slots__ = ("_filed", "_open", "_values", "claims", "key")

    def __init__(self, key: str, claims: list[nodeclaim.SimNodeClaim]) -> None:
        self.key = key
        self.claims = claims
        """The run's list by sequence number (shared with its `ClaimOrder`)."""
        self._values: dict[str, ClaimOrder] = {}
        self._open = ClaimOrder()
        self._filed: dict[int, tuple[int, tuple[str, ...] | None]] = {}
        for claim in claims:
            self.refresh(claim)

    def _domains(self, claim: nodeclaim.SimNodeClaim) -> tuple[str, ...] | None:
        requirements = claim.requirements
        if self.key not in requirements:
            return None
        requirement = requirements[self.key]
        return None if requirement.complement else tuple(requirement.values)

    def refresh(self, claim: nodeclaim.SimNodeClaim) -> None:
        """File ``claim`` where its pod count and requirements put it now (new, or just given a pod)."""
        place = (len(claim.pods), self._domains(claim))
        old = self._filed.get(claim.seq)
        if old == place:
            return
        if old is not None:
            count, values = old
            for order in self._orders(values):
                order.discard(count, claim.seq)
        for order in self._orders(place[1], create=True):
            order.insert(place[0], claim.seq)
        self._filed[claim.seq] = place

    def _orders(self, values: tuple[str, ...] | None, create: bool = False) -> Iterable[ClaimOrder]:
        if values is None:
            return (self._open,)
        if create:
            return [self._values.setdefault(v, ClaimOrder()) for v in values]
        return [self._values[v] for v in values]

    def within(self, allowed: frozenset[str]) -> Iterator[nodeclaim.SimNodeClaim]:
        """In the run's order, the NodeClaims that may be in one of ``allowed`` (each once)."""
        orders = [self._open, *(self._values[v] for v in allowed if v in self._values)]
        claims = self.claims
        last = -1
        for _, seq in heapq.merge(*(order.keys() for order in orders)):
            if seq != last:
                last = seq
                yield claims[seq]
