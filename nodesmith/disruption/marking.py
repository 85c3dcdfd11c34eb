"""Per-NodeClaim verdicts with a clock passed in: is it drifted (and why), is it consolidatable (or when
will it be), has it expired (spec §3, "Drift detection", "Consolidatable"; §1.3 expiration).

Fed by one NodeClaim, its NodePool, the pool's instance types and the provider's own drift answer;
consumed by the marking reconciler (`nodesmith.reconcilers.nodeclaim_marking`), which writes the
``Drifted`` / ``Consolidatable`` conditions and deletes expired NodeClaims, and by ``explain``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Final, final

import attrs

from nodesmith.api import conditions, labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.nodepool import HASH_VERSION, NodePool
from nodesmith.api.requirements import Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering

__all__ = [
    "Consolidatable",
    "DriftReason",
    "consolidatable",
    "drift_reason",
    "expired",
    "expires_at",
    "static_drift_reason",
    "under_consolidate_after",
]


class DriftReason(enum.StrEnum):
    """Core drift reasons (the ``Drifted`` condition's reason); providers add their own strings."""

    NODEPOOL_DRIFTED = "NodePoolDrifted"
    REQUIREMENTS_DRIFTED = "RequirementsDrifted"
    INSTANCE_TYPE_NOT_FOUND = "InstanceTypeNotFound"


def _offering_matches(
    offering: Offering, ct: str | None, zone: str | None, reservation_id: str | None
) -> bool:
    if zone is not None and offering.zone != zone:
        return False
    if ct == labels.CapacityType.RESERVED:
        # its own reservation (when the NodeClaim names one); and a reserved instance keeps running as
        # on-demand once its reservation is gone, so an on-demand offering is as good
        if offering.reserved:
            return not reservation_id or offering.reservation_id == reservation_id
        return offering.capacity_type == labels.CapacityType.ON_DEMAND
    return ct is None or offering.capacity_type == ct


INSTANCE_TYPE_CHECK_AFTER: Final = dt.timedelta(hours=1)
"""Karpenter looks for ``InstanceTypeNotFound`` only once a NodeClaim is an hour old: the catalogue is the
provider's, not the user's, and a fresh NodeClaim's may still be settling."""


def static_drift_reason(
    claim: NodeClaim,
    pool: NodePool,
    instance_types: Sequence[InstanceType] | None,
    *,
    well_known: frozenset[str],
    now: dt.datetime | None = None,
) -> DriftReason | None:
    """The core's drift checks, in Karpenter's order. The instance-type check (the NodeClaim's instance
    type, from its label, must be offered with an offering matching its zone and capacity type) runs
    only when ``now`` is an hour past the NodeClaim's creation (``now`` ``None``: regardless of age);
    ``instance_types`` ``None`` (unknown) skips it, and so does an empty list -- deliberately unlike
    Karpenter, which then drifts every node of the pool: an empty answer is no evidence that an instance
    type went away, and nothing could replace the nodes."""
    annotations = claim.metadata.annotations
    claim_hash = annotations.get(labels.ANNOTATION_NODEPOOL_HASH)
    claim_version = annotations.get(labels.ANNOTATION_NODEPOOL_HASH_VERSION)
    if claim_hash is not None and claim_version == HASH_VERSION and claim_hash != pool.hash():
        return DriftReason.NODEPOOL_DRIFTED
    claim_labels = Requirements.from_labels(claim.metadata.labels)
    if not claim_labels.is_compatible(pool.spec.template.spec.to_requirements(), well_known):
        return DriftReason.REQUIREMENTS_DRIFTED
    created = claim.metadata.creation_timestamp
    too_young = now is not None and created is not None and now - created <= INSTANCE_TYPE_CHECK_AFTER
    if instance_types and not too_young:
        name = claim.metadata.labels.get(labels.LABEL_INSTANCE_TYPE)
        found = next((it for it in instance_types if it.name == name), None)
        ct = claim.metadata.labels.get(labels.LABEL_CAPACITY_TYPE)
        zone = claim.metadata.labels.get(labels.LABEL_ZONE)
        reservation_id = claim.metadata.labels.get(labels.LABEL_RESERVATION_ID)
        if found is None or not any(_offering_matches(o, ct, zone, reservation_id) for o in found.offerings):
            return DriftReason.INSTANCE_TYPE_NOT_FOUND
    return None


def drift_reason(
    claim: NodeClaim,
    pool: NodePool,
    instance_types: Sequence[InstanceType] | None,
    provider_reason: str | None,
    *,
    well_known: frozenset[str],
    now: dt.datetime | None = None,
) -> str | None:
    """Why the NodeClaim is drifted (core reasons first, then the provider's), or ``None``."""
    reason = static_drift_reason(claim, pool, instance_types, well_known=well_known, now=now)
    if reason is not None:
        return reason.value
    return provider_reason or None


@final
@attrs.frozen(slots=True)
class Consolidatable:
    """The ``Consolidatable`` verdict: set it when ``value``; otherwise clear it, and look again after
    ``recheck_after`` when that is known."""

    value: bool
    recheck_after: dt.timedelta | None = None
    message: str = ""


def consolidatable(claim: NodeClaim, pool: NodePool, now: dt.datetime) -> Consolidatable:
    """True once ``consolidateAfter`` has passed since the last pod event on the node (or since it
    initialized, if no pod ever came or went); never with ``consolidateAfter: Never``."""
    after = pool.spec.disruption.consolidate_after.value
    if after is None:
        return Consolidatable(False, None, "consolidateAfter is Never")
    initialized = claim.condition(conditions.ConditionType.INITIALIZED)
    if initialized is None or not initialized.is_true:
        return Consolidatable(False, None, "not initialized")
    since = claim.status.last_pod_event_time or initialized.last_transition_time
    since = max(since, initialized.last_transition_time)
    remaining = since + after - now
    if remaining > dt.timedelta(0):
        return Consolidatable(False, remaining, f"consolidateAfter has {remaining} to go")
    return Consolidatable(True)


def under_consolidate_after(claim: NodeClaim, pool: NodePool, now: dt.datetime) -> bool:
    """Karpenter's ``IsUnderConsolidateAfter``: an initialized node whose last pod event (or, without one,
    its initialization) is more recent than a non-zero ``consolidateAfter``. Consolidation simulations
    keep moving pods off such nodes; ``Never`` and ``0s`` put no node under the window."""
    after = pool.spec.disruption.consolidate_after.value
    if after is None or after == dt.timedelta(0):
        return False
    initialized = claim.condition(conditions.ConditionType.INITIALIZED)
    if initialized is None or not initialized.is_true:
        return False
    since = claim.status.last_pod_event_time or initialized.last_transition_time
    return now - since < after


def expires_at(claim: NodeClaim) -> dt.datetime | None:
    """``creationTimestamp + spec.expireAfter`` (``None`` for Never or an unknown creation time)."""
    after = claim.spec.expire_after.value
    created = claim.metadata.creation_timestamp
    if after is None or created is None:
        return None
    return created + after


def expired(claim: NodeClaim, now: dt.datetime) -> bool:
    at = expires_at(claim)
    return at is not None and now >= at
