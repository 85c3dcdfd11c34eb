"""NodePool capacity backoff: a NodePool whose launches keep failing with insufficient capacity for a
capacity type stops being offered that capacity type for a while, so pods fall through to the next
NodePool by weight instead of waiting behind launch after failing launch.

Why: Karpenter only remembers failed *offerings* (type × zone × capacity type, 3 minutes), so a pool whose
every spot offering is exhausted is retried one offering at a time, and lower-weight pools are never
reached while one offering is left (aws#8885, sigs#2275). This is the pool-level memory on top of that.

Fed by the NodeClaim lifecycle (`record_failure` on ``InsufficientCapacityError`` with the capacity types
the launch covered, `record_success` on a launch). Consumed by the provisioner (`restrict` marks a
backed-off capacity type's offerings unavailable in that pool's instance types before the simulation, so
the scheduler sees it excluded) and by ``nodepool.status`` (`active`, shown as the ``CapacityAvailable``
condition with the reason and until when). One object, built by the composition root; time is passed in
(the reconcilers' injected clock), never read here.

Rules: `FAILURE_THRESHOLD` insufficient-capacity launches in a row for (pool, capacity type) start a backoff
of `BASE_BACKOFF`; each further backoff without a successful launch in between doubles it, up to
`MAX_BACKOFF`. When it expires the pool is tried again (one more failure backs it off again, longer); a
successful launch of that capacity type clears the record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import attrs

from nodesmith.api import labels
from nodesmith.cloudprovider.types import InstanceType

__all__ = [
    "BASE_BACKOFF",
    "CAPACITY_TYPES",
    "FAILURE_THRESHOLD",
    "MAX_BACKOFF",
    "Backoff",
    "CapacityBackoff",
    "restrict",
]

CAPACITY_TYPES: Final = (
    labels.CapacityType.SPOT,
    labels.CapacityType.ON_DEMAND,
    labels.CapacityType.RESERVED,
)
FAILURE_THRESHOLD: Final = 3
"""Insufficient-capacity launches in a row, for one pool and capacity type, that start a backoff."""
BASE_BACKOFF: Final = dt.timedelta(minutes=3)
"""The first backoff: as long as an offering stays unavailable after insufficient capacity."""
MAX_BACKOFF: Final = dt.timedelta(minutes=30)


@attrs.frozen(slots=True)
class Backoff:
    """One capacity type of one pool, backed off ``until``, after ``failures`` failed launches."""

    nodepool: str
    capacity_type: str
    until: dt.datetime
    failures: int
    reason: str

    def message(self) -> str:
        return (
            f"{self.capacity_type} capacity backed off until {self.until.isoformat(timespec='seconds')} "
            f"after {self.failures} launches failed with insufficient capacity ({self.reason})"
        )


@attrs.define(slots=True)
class _Record:
    failures: int = 0
    """Failures in a row since the last success or the last backoff began."""
    total: int = 0
    """Failures since the last success (what the status reports)."""
    level: int = 0
    """Backoffs in a row since the last success: the next lasts BASE_BACKOFF * 2**level."""
    until: dt.datetime | None = None
    reason: str = ""


@attrs.define
class CapacityBackoff:
    """The backoff records of every (NodePool, capacity type); see the module docstring."""

    threshold: int = FAILURE_THRESHOLD
    base: dt.timedelta = BASE_BACKOFF
    maximum: dt.timedelta = MAX_BACKOFF
    _records: dict[tuple[str, str], _Record] = attrs.field(init=False, factory=dict)

    def record_failure(
        self, nodepool: str, capacity_types: Iterable[str], reason: str, now: dt.datetime
    ) -> list[Backoff]:
        """A launch for ``nodepool`` failed with insufficient capacity in every one of ``capacity_types``.
        Returns the backoffs this failure started (empty when none did)."""
        started = []
        for capacity_type in sorted(set(capacity_types)):
            record = self._records.setdefault((nodepool, capacity_type), _Record())
            record.failures += 1
            record.total += 1
            record.reason = reason
            if record.until is not None and record.until > now:
                continue  # already backed off (a launch decided before the backoff began)
            if record.failures < self.threshold and record.level == 0:
                continue
            record.until = now + min(self.maximum, self.base * 2**record.level)
            record.level += 1
            record.failures = 0
            started.append(self._backoff(nodepool, capacity_type, record))
        return started

    def record_success(self, nodepool: str, capacity_type: str) -> None:
        """A launch of ``capacity_type`` for ``nodepool`` succeeded: it has capacity again."""
        self._records.pop((nodepool, capacity_type), None)

    def active(self, now: dt.datetime, nodepool: str | None = None) -> list[Backoff]:
        """The backoffs in force at ``now`` (of ``nodepool`` only, if given), by pool and capacity type."""
        return [
            self._backoff(pool, capacity_type, record)
            for (pool, capacity_type), record in sorted(self._records.items())
            if record.until is not None and record.until > now and nodepool in (None, pool)
        ]

    def forget(self, nodepools: Iterable[str]) -> None:
        """Drop the records of NodePools that no longer exist."""
        gone = set(nodepools)
        self._records = {key: r for key, r in self._records.items() if key[0] not in gone}

    @staticmethod
    def _backoff(nodepool: str, capacity_type: str, record: _Record) -> Backoff:
        assert record.until is not None
        return Backoff(nodepool, capacity_type, record.until, record.total, record.reason)


def restrict(
    instance_types: Mapping[str, Sequence[InstanceType]], backoffs: Iterable[Backoff]
) -> dict[str, tuple[InstanceType, ...]]:
    """Each pool's instance types with the offerings of its backed-off capacity types marked unavailable,
    so the simulation places nothing there (and, with nothing else left, skips the pool)."""
    excluded: dict[str, set[str]] = {}
    for backoff in backoffs:
        excluded.setdefault(backoff.nodepool, set()).add(backoff.capacity_type)
    out: dict[str, tuple[InstanceType, ...]] = {}
    for pool, types in instance_types.items():
        down = excluded.get(pool)
        out[pool] = tuple(types) if not down else tuple(_without(it, down) for it in types)
    return out


def _without(it: InstanceType, capacity_types: set[str]) -> InstanceType:
    if not any(o.available and o.capacity_type in capacity_types for o in it.offerings):
        return it
    offerings = tuple(
        attrs.evolve(o, available=False) if o.capacity_type in capacity_types else o for o in it.offerings
    )
    return InstanceType(it.name, it.requirements, offerings, it.capacity, it.overhead)
