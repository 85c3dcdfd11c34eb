"""Draining a terminating node, decided purely: which pods to wait for, which to evict now (one tier at a
time), which to delete before the node's termination deadline, and which VolumeAttachments to wait for.

No I/O, no async, no clock, no logging: parsed pods (`PodFacts`), VolumeAttachment dicts and ``now`` in, a
`DrainPlan` out.
Fed by the node termination reconciler (`nodesmith.reconcilers.termination`), which reads pods from the
cluster state, calls `plan` on every pass and carries the plan out (Eviction API calls, forced deletes);
unit-tested without a cluster in ``tests/unit/reconcilers/test_drain.py``.

The rules are Karpenter's (``pkg/controllers/node/termination/terminator``, spec §5):

* A pod is *waited for* unless it is terminal (Succeeded/Failed), static (owned by its Node, or a mirror
  pod), tolerates the ``nodesmith.io/disrupted:NoSchedule`` taint (it would land right back), or is stuck
  terminating (more than a minute past its ``deletionTimestamp``).
* Pods are evicted in tiers, the first non-empty one only: non-critical regular pods, then non-critical
  DaemonSet pods, then critical regular pods, then critical DaemonSet pods (critical = priority class
  ``system-cluster-critical``/``system-node-critical``). A tier still holding terminating pods blocks the
  next. Pods being force-deleted for the deadline (below) are left out of the tiers, so they never hold
  back the graceful eviction of a later tier.
* Pods already terminating are not evicted again; pods whose do-not-disrupt annotation is active are waited
  for but never evicted (only the deadline removes them).
* With a termination deadline (the NodeClaim's ``terminationGracePeriod``), a pod whose own grace period
  would end after the deadline is deleted now, bypassing PDBs and do-not-disrupt, with a grace period that
  ends at the deadline (at least 1s) -- so every pod is gone by the deadline.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Generic, Protocol, TypeAlias, TypeVar, final

import attrs

from nodesmith.api import labels, meta

__all__ = [
    "CRITICAL_PRIORITY_CLASSES",
    "DEFAULT_GRACE_SECONDS",
    "STUCK_TERMINATING_AFTER",
    "DrainPlan",
    "ForceDelete",
    "PodFacts",
    "Tier",
    "is_evictable",
    "is_static",
    "is_terminal",
    "is_terminating",
    "is_waiting_eviction",
    "plan",
    "tier_of",
    "tolerates_disrupted",
    "volume_attachments_to_wait_for",
]

Obj: TypeAlias = Mapping[str, Any]

CRITICAL_PRIORITY_CLASSES: Final = frozenset({"system-cluster-critical", "system-node-critical"})
DEFAULT_GRACE_SECONDS: Final = 30
"""A pod's ``terminationGracePeriodSeconds`` when unset (the API default)."""
STUCK_TERMINATING_AFTER: Final = dt.timedelta(minutes=1)
MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"


class PodFacts(Protocol):
    """The part of a pod the drain reads (structurally, so this package needs no `state`:
    `nodesmith.state.views.PodView` is one, parsed once when the informer hands the pod over)."""

    @property
    def uid(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...
    @property
    def terminal(self) -> bool: ...
    @property
    def terminating(self) -> bool: ...
    @property
    def deleted_at(self) -> dt.datetime | None: ...
    @property
    def started_at(self) -> dt.datetime | None: ...
    @property
    def owner_kinds(self) -> tuple[str, ...]: ...
    @property
    def owned_by_daemonset(self) -> bool: ...
    @property
    def priority_class(self) -> str | None: ...
    @property
    def tolerations(self) -> tuple[Mapping[str, Any], ...]: ...
    @property
    def grace_seconds(self) -> int | None: ...
    @property
    def claim_names(self) -> tuple[str, ...]: ...


P = TypeVar("P", bound=PodFacts)
"""The caller's pod type: a plan hands back the very objects it was given."""


class Tier(enum.IntEnum):
    """Eviction order: lower tiers are evicted (and gone) before higher ones are touched."""

    NON_CRITICAL = 1
    NON_CRITICAL_DAEMON = 2
    CRITICAL = 3
    CRITICAL_DAEMON = 4


@final
@attrs.frozen(slots=True)
class ForceDelete(Generic[P]):
    """Delete ``pod`` now with this grace period, so it is gone by the node's deadline."""

    pod: P
    grace_seconds: int


@final
@attrs.frozen(slots=True)
class DrainPlan(Generic[P]):
    """What one drain pass should do; ``drained`` when nothing is left to wait for."""

    waiting: tuple[P, ...]
    """Pods the drain waits for (evicted or not yet)."""
    force_delete: tuple[ForceDelete[P], ...]
    evict: tuple[P, ...]
    """Pods of the current tier to evict through the Eviction API now."""
    protected: tuple[P, ...]
    """Pods of the current tier whose do-not-disrupt annotation is active: waited for, not evicted."""
    tier: Tier | None

    @property
    def drained(self) -> bool:
        return not self.waiting


# -- pod predicates -------------------------------------------------------------------------------------


def is_terminal(pod: PodFacts) -> bool:
    return pod.terminal


def is_terminating(pod: PodFacts) -> bool:
    return pod.terminating


def is_static(pod: PodFacts) -> bool:
    """Owned by its Node (a static pod's mirror) or annotated as a mirror pod: the API cannot remove it."""
    return MIRROR_ANNOTATION in pod.annotations or "Node" in pod.owner_kinds


def is_daemonset_pod(pod: PodFacts) -> bool:
    return pod.owned_by_daemonset


def is_critical(pod: PodFacts) -> bool:
    return pod.priority_class in CRITICAL_PRIORITY_CLASSES


def tolerates_disrupted(pod: PodFacts) -> bool:
    """Does the pod tolerate ``nodesmith.io/disrupted:NoSchedule`` (Kubernetes' ToleratesTaint)?"""
    for toleration in pod.tolerations:
        effect = toleration.get("effect") or ""
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if effect and effect != meta.TaintEffect.NO_SCHEDULE:
            continue
        if key and key != labels.TAINT_DISRUPTED:
            continue
        if operator == "Exists" or (operator == "Equal" and not toleration.get("value")):
            return True
    return False


def is_stuck_terminating(pod: PodFacts, now: dt.datetime) -> bool:
    return pod.deleted_at is not None and now > pod.deleted_at + STUCK_TERMINATING_AFTER


def is_drainable(pod: PodFacts) -> bool:
    """Something the drain concerns itself with at all (not static, not tolerating the disrupted taint)."""
    return not is_static(pod) and not tolerates_disrupted(pod)


def is_waiting_eviction(pod: PodFacts, now: dt.datetime) -> bool:
    """The drain waits for this pod to go."""
    return is_drainable(pod) and not is_terminal(pod) and not is_stuck_terminating(pod, now)


def is_evictable(pod: PodFacts) -> bool:
    """An eviction request makes sense (not already terminating, not terminal, drainable)."""
    return is_drainable(pod) and not is_terminal(pod) and not is_terminating(pod)


def tier_of(pod: PodFacts) -> Tier:
    daemon = is_daemonset_pod(pod)
    if is_critical(pod):
        return Tier.CRITICAL_DAEMON if daemon else Tier.CRITICAL
    return Tier.NON_CRITICAL_DAEMON if daemon else Tier.NON_CRITICAL


def grace_seconds(pod: PodFacts) -> int:
    return DEFAULT_GRACE_SECONDS if pod.grace_seconds is None else pod.grace_seconds


def _do_not_disrupt_active(pod: PodFacts, now: dt.datetime) -> bool:
    return meta.do_not_disrupt_active(pod.annotations, pod.started_at, now)


# -- the plan -------------------------------------------------------------------------------------------


def _force_delete(pod: P, now: dt.datetime, deadline: dt.datetime | None) -> ForceDelete[P] | None:
    """Karpenter's ``needsForceDelete``: the pod's grace would outlast the deadline (or it is already
    terminating with a deletionTimestamp after the deadline)."""
    if deadline is None:
        return None
    remaining = max(1, int((deadline - now).total_seconds()))
    if is_terminating(pod):
        if pod.deleted_at is not None and pod.deleted_at > deadline:
            return ForceDelete(pod, remaining)
        return None
    if now > deadline - dt.timedelta(seconds=grace_seconds(pod)):
        return ForceDelete(pod, remaining)
    return None


def plan(pods: Iterable[P], *, now: dt.datetime, deadline: dt.datetime | None = None) -> DrainPlan[P]:
    """One drain pass over the pods bound to the node (see the module docstring for the rules)."""
    waiting = tuple(p for p in pods if is_waiting_eviction(p, now))
    forced = tuple(f for f in (_force_delete(p, now, deadline) for p in waiting) if f is not None)
    forced_uids = {f.pod.uid for f in forced}
    graceful = [p for p in waiting if p.uid not in forced_uids]
    tier = min((tier_of(p) for p in graceful), default=None)
    candidates = [p for p in graceful if tier_of(p) == tier and is_evictable(p)]
    protected = tuple(p for p in candidates if _do_not_disrupt_active(p, now))
    evict = tuple(p for p in candidates if not _do_not_disrupt_active(p, now))
    return DrainPlan(waiting=waiting, force_delete=forced, evict=evict, protected=protected, tier=tier)


# -- volumes --------------------------------------------------------------------------------------------


def volume_attachments_to_wait_for(
    attachments: Iterable[Obj], pods: Sequence[PodFacts], pvcs: Mapping[str, Obj]
) -> tuple[Obj, ...]:
    """The node's VolumeAttachments termination waits for: all of them except those of volumes used by
    pods the drain leaves in place (static pods, pods tolerating the disrupted taint), which would never
    detach. ``pvcs`` maps ``namespace/name`` to PersistentVolumeClaims (to find a claim's volume)."""
    kept: set[str] = set()
    for pod in pods:
        if is_drainable(pod):
            continue
        for claim in pod.claim_names:
            pv = ((pvcs.get(f"{pod.namespace}/{claim}") or {}).get("spec") or {}).get("volumeName")
            if pv:
                kept.add(str(pv))
    return tuple(va for va in attachments if _attached_volume(va) not in kept)


def _attached_volume(attachment: Obj) -> str | None:
    source = (attachment.get("spec") or {}).get("source") or {}
    name = source.get("persistentVolumeName")
    return str(name) if name else None
