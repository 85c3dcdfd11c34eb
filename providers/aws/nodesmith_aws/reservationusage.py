"""Launches into and terminations out of capacity reservations since their counts were last read.

``status.capacityReservations`` holds each reservation's available instance count as
DescribeCapacityReservations last reported it (once a minute). Between two reads the provider itself
changes it: a launch into a reservation takes a slot, terminating an instance launched into one gives it
back. Without tracking that, the next solve still sees the slot just used and a second launch targets a
filled reservation (EC2 refuses with ``ReservationCapacityExceeded``). Karpenter's capacity-reservation
provider keeps the same in-memory count (``MarkLaunched`` / ``MarkTerminated``).

`ReservationUsage` records each change as an event numbered in order. `available` is the last read count
plus the events not yet reflected in a read. A read settles only the events recorded before it started
(`mark` before the call, `settle` after it succeeds), so a launch made while the read was in flight is
not forgotten; a failed read settles nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from nodesmith_aws.capacityreservations import ResolvedCapacityReservation

__all__ = ["ReservationUsage"]


class ReservationUsage:
    """In-memory slot changes per reservation id (see the module docstring)."""

    def __init__(self) -> None:
        self._events: list[tuple[int, str, int]] = []
        """(sequence number, reservation id, change of the available count)."""
        self._exhausted: dict[str, int] = {}
        """Reservation id → sequence number of an interruption warning: none left until read again."""
        self._next = 0
        self.seq = 0
        """Increases on every change, so cached offerings built from the counts are recomputed."""

    def mark_launched(self, reservation_id: str) -> None:
        """An instance was launched into ``reservation_id``: one slot fewer."""
        self._record(reservation_id, -1)

    def mark_terminated(self, reservation_id: str) -> None:
        """An instance launched into ``reservation_id`` is being terminated: its slot comes back."""
        self._record(reservation_id, +1)

    def mark_unavailable(self, reservation_id: str) -> None:
        """EC2 warned it is reclaiming an instance of ``reservation_id``: offer none of it until the next
        read (Karpenter's ``MarkUnavailable``), so the replacement is not launched back into it."""
        self._exhausted[reservation_id] = self._next
        self._next += 1
        self.seq += 1

    def mark(self) -> int:
        """The token to pass to `settle` once the read that starts now has succeeded."""
        return self._next

    def settle(self, token: int, reservation_ids: Iterable[str]) -> None:
        """A read that started at ``token`` returned counts for ``reservation_ids``: the events recorded
        for them before it started are part of those counts now."""
        read = set(reservation_ids)
        kept = [e for e in self._events if not (e[0] < token and e[1] in read)]
        exhausted = {rid: at for rid, at in self._exhausted.items() if not (at < token and rid in read)}
        if len(kept) != len(self._events) or len(exhausted) != len(self._exhausted):
            self._events, self._exhausted = kept, exhausted
            self.seq += 1

    def change(self, reservation_id: str) -> int:
        """The unsettled change of ``reservation_id``'s available count."""
        return sum(delta for _, rid, delta in self._events if rid == reservation_id)

    def available(self, reservation: ResolvedCapacityReservation) -> int:
        """The reservation's available count as the provider now believes it (never below zero)."""
        if reservation.id in self._exhausted:
            return 0
        return max(0, reservation.available_count + self.change(reservation.id))

    def _record(self, reservation_id: str, delta: int) -> None:
        self._events.append((self._next, reservation_id, delta))
        self._next += 1
        self.seq += 1
