"""Reserved capacity within one solve: which NodeClaim holds which reservation, and how many slots are left.

A provider reports, per reserved offering, how many more instances its reservation takes now
(``Offering.reservation_capacity``). One solve may plan several NodeClaims; without counting here two of
them could both be planned onto the last slot, and one launch would fail. Karpenter's
``ReservationManager``: each planned NodeClaim (by its placeholder hostname) holds the reservations it
could launch into, one slot each; a NodeClaim narrowed away from a reservation gives its slot back.

:func:`choose` is the per-pod step (Karpenter ``NodeClaim.reserveOfferings``): given the NodeClaim's
requirements and remaining instance types, the reserved offerings it would hold. Two modes, as upstream:

* ``Strict`` (provisioning): if a compatible reserved offering exists but every one is taken by other
  NodeClaims of this solve, or the pod would take away the reservations the NodeClaim holds, the pod is
  refused here; it waits for the next solve, when the launched NodeClaims have used their slots and the
  provider reports what is left, rather than landing on on-demand capacity while a reservation is free.
* ``Fallback`` (disruption simulations): such a NodeClaim simply goes without a reservation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Literal, final

from nodesmith.api.requirements import Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering

__all__ = ["STRICT", "Manager", "Mode", "Refused", "choose", "initial_capacity"]

Mode = Literal["Strict", "Fallback"]
STRICT: Final = "Strict"


def initial_capacity(instance_types: Iterable[InstanceType]) -> dict[str, int]:
    """Slots per reservation id; when several offerings name one reservation (two NodePools, or a count
    that changed between reads) the smallest count is the one to trust."""
    capacity: dict[str, int] = {}
    for it in instance_types:
        for offering in it.offerings:
            if offering.reserved:
                current = capacity.get(offering.reservation_id)
                if current is None or offering.reservation_capacity < current:
                    capacity[offering.reservation_id] = offering.reservation_capacity
    return capacity


@final
class Manager:
    """Slots left per reservation and the reservations each planned NodeClaim holds; one per solve."""

    __slots__ = ("_capacity", "_held")

    def __init__(self, capacity: dict[str, int]) -> None:
        self._capacity = dict(capacity)
        self._held: dict[str, set[str]] = {}

    def __bool__(self) -> bool:
        return bool(self._capacity)

    def remaining(self, reservation_id: str) -> int:
        return self._capacity.get(reservation_id, 0)

    def can_reserve(self, hostname: str, offering: Offering) -> bool:
        if offering.reservation_id in self._held.get(hostname, ()):
            return True
        return self._capacity.get(offering.reservation_id, 0) > 0

    def hold(self, hostname: str, offerings: Iterable[Offering]) -> None:
        """Make ``hostname`` hold exactly the reservations of ``offerings``: take a slot for each new one,
        give back the slot of each it no longer names."""
        wanted = {o.reservation_id for o in offerings}
        held = self._held.setdefault(hostname, set())
        for reservation_id in held - wanted:
            self._capacity[reservation_id] += 1
        for reservation_id in wanted - held:
            if self._capacity.get(reservation_id, 0) <= 0:
                raise AssertionError(f"reservation {reservation_id!r} over-reserved")  # a scheduler bug
            self._capacity[reservation_id] -= 1
        if wanted:
            self._held[hostname] = wanted
        else:
            del self._held[hostname]

    def held(self, hostname: str) -> frozenset[str]:
        return frozenset(self._held.get(hostname, ()))


@final
class Refused:
    """Strict mode: the pod is not placed on this NodeClaim because of reserved capacity (``detail`` why)."""

    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        self.detail = detail


def choose(
    manager: Manager,
    hostname: str,
    requirements: Requirements,
    instance_types: Sequence[InstanceType],
    mode: Mode,
) -> tuple[Offering, ...] | Refused:
    """The reserved offerings the NodeClaim would hold with ``requirements`` and these remaining types
    (empty: none), or why Strict mode refuses the pod."""
    compatible = False
    chosen: list[Offering] = []
    for it in instance_types:
        for offering in it.offerings:
            if not offering.reserved or not offering.available or not offering.is_compatible(requirements):
                continue
            compatible = True
            if manager.can_reserve(hostname, offering):
                chosen.append(offering)
    if mode == STRICT and not chosen:
        if compatible:
            return Refused("every compatible reservation is taken by other NodeClaims of this solve")
        if manager.held(hostname):
            return Refused("the pod's requirements would drop the NodeClaim's reservation")
    return tuple(chosen)
