"""Small TTL caches with an injectable clock, and the unavailable-offerings (ICE) cache.

Fed by the launch path (CreateFleet errors mark offerings unavailable) and by resolvers that cache AWS
answers; consumed by the instance-type provider (offering availability) and the launch path (which
offerings to try). Time is a ``Callable[[], float]`` of monotonic seconds so tests step a fake clock
instead of sleeping. Karpenter's TTLs (`pkg/cache/cache.go`) are the constants below.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Final, Generic, TypeVar

__all__ = [
    "ICE_TTL",
    "INSTANCE_TYPES_TTL",
    "LAUNCH_TEMPLATE_TTL",
    "TTLCache",
    "UnavailableOfferings",
]

K = TypeVar("K")
V = TypeVar("V")
Clock = Callable[[], float]

INSTANCE_TYPES_TTL: Final = 5 * 60.0
"""Resolved instance types and offerings (``InstanceTypesZonesAndOfferingsTTL``)."""
ICE_TTL: Final = 3 * 60.0
"""An insufficient-capacity offering stays unavailable this long."""
LAUNCH_TEMPLATE_TTL: Final = 60.0
"""A launch template unused this long is deleted."""
SELECTOR_TTL: Final = 60.0
"""Subnets, security groups and AMIs are re-resolved after this long."""


class TTLCache(Generic[K, V]):
    """A dict whose entries expire ``ttl`` seconds after they were set (or last touched)."""

    def __init__(self, ttl: float, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, *, touch: bool = False) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expiry, value = entry
        now = self._clock()
        if now >= expiry:
            return None
        if touch:
            self._entries[key] = (now + self.ttl, value)
        return value

    def set(self, key: K, value: V, ttl: float | None = None) -> None:
        self._entries[key] = (self._clock() + (self.ttl if ttl is None else ttl), value)

    def delete(self, key: K) -> None:
        self._entries.pop(key, None)

    def expired(self) -> list[tuple[K, V]]:
        """Remove and return the entries whose time is up (for callers that clean up after them)."""
        now = self._clock()
        gone = [(k, v) for k, (expiry, v) in self._entries.items() if now >= expiry]
        for key, _ in gone:
            del self._entries[key]
        return gone

    def clear(self) -> None:
        self._entries.clear()

    def __iter__(self) -> Iterator[K]:
        now = self._clock()
        return iter([k for k, (expiry, _) in self._entries.items() if now < expiry])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class UnavailableOfferings:
    """Offerings that recently failed with insufficient capacity, as Karpenter's
    ``UnavailableOfferings``: keys ``<capacity-type>:<instance-type>:<zone>``, a whole capacity type
    (the spot service-linked-role failure), or a subnet; each for :data:`ICE_TTL`.

    ``seq`` increases on every mark, so caches of computed offerings know to recompute.
    """

    def __init__(self, clock: Clock = time.monotonic, ttl: float = ICE_TTL) -> None:
        self._offerings: TTLCache[str, str] = TTLCache(ttl, clock)
        self._capacity_types: TTLCache[str, str] = TTLCache(ttl, clock)
        self.seq = 0

    @staticmethod
    def key(capacity_type: str, instance_type: str, zone: str) -> str:
        return f"{capacity_type}:{instance_type}:{zone}"

    def mark_unavailable(self, capacity_type: str, instance_type: str, zone: str, reason: str) -> None:
        self._offerings.set(self.key(capacity_type, instance_type, zone), reason)
        self.seq += 1

    def mark_capacity_type_unavailable(self, capacity_type: str, reason: str) -> None:
        self._capacity_types.set(capacity_type, reason)
        self.seq += 1

    def is_unavailable(self, capacity_type: str, instance_type: str, zone: str) -> bool:
        return (
            self._offerings.get(self.key(capacity_type, instance_type, zone)) is not None
            or self._capacity_types.get(capacity_type) is not None
        )

    def __len__(self) -> int:
        return len(self._offerings)
