"""Static NodePools (``spec.replicas``): how many NodeClaims to add, and which to remove, to hold the count.

A static NodePool keeps a fixed number of nodes whatever the pods need (Karpenter's alpha static capacity,
``pkg/controllers/static/{provisioning,deprovisioning}``). Fed by the pool's ``replicas`` and ``nodes``
limit and its NodeClaims that are not being deleted; consumed by `nodesmith.reconcilers.staticcapacity`,
which does the writes. Replacement of drifted and expired NodeClaims needs nothing here: drift and expiry
delete them as for any pool, and the next plan adds NodeClaims back up to ``replicas``.
No I/O, no clock: values in, values out.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import attrs

__all__ = ["Member", "Plan", "plan"]


@typing.final
@attrs.frozen(slots=True)
class Member:
    """One NodeClaim of the pool that is not being deleted."""

    name: str
    pods: int = 0
    """Non-DaemonSet pods bound to its node: scale-down removes the emptiest first."""
    created: str = ""
    """``metadata.creationTimestamp`` (RFC 3339, so it sorts as text): among equals, the newest goes first."""
    launched: bool = True
    """Has a providerID; scale-down removes NodeClaims that have not launched before any other."""


@typing.final
@attrs.frozen(slots=True)
class Plan:
    """``create`` new NodeClaims, delete the ``delete`` ones; ``limited`` says the nodes limit held some back."""

    create: int = 0
    delete: tuple[str, ...] = ()
    limited: bool = False


def plan(replicas: int, members: Sequence[Member], *, node_limit: int | None = None) -> Plan:
    """What to do so the pool has ``replicas`` NodeClaims.

    ``node_limit`` is ``spec.limits.nodes`` (``None``: unlimited); it caps launches only, counted over the
    NodeClaims not being deleted, as provisioning counts a pool's limits (`Snapshot.nodepool_resources`);
    a scale-down is never held back by it."""
    have = len(members)
    if have > replicas:
        surplus = sorted(members, key=lambda m: (m.launched, m.pods, _newest_first(m.created), m.name))
        return Plan(delete=tuple(m.name for m in surplus[: have - replicas]))
    missing = replicas - have
    if node_limit is None:
        return Plan(create=missing)
    room = max(0, node_limit - have)
    return Plan(create=min(missing, room), limited=room < missing)


def _newest_first(created: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in created)
