"""Draining a terminating node, decided purely: which pods to wait for, which to evict now (one tier at a
time), which to delete before the node's termination deadline, and which VolumeAttachments to wait for.

No I/O, no async, no clock, no logging: pod and VolumeAttachment dicts and ``now`` in, a `DrainPlan` out.
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
from typing import Any, Final, TypeAlias, final

import attrs

from nodesmith.api import labels, meta

__all__ = [
    "CRITICAL_PRIORITY_CLASSES",
    "DEFAULT_GRACE_SECONDS",
    "STUCK_TERMINATING_AFTER",
    "DrainPlan",
    "ForceDelete",
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


class Tier(enum.IntEnum):
    """Eviction order: lower tiers are evicted (and gone) before higher ones are touched."""

    NON_CRITICAL = 1
    NON_CRITICAL_DAEMON = 2
    CRITICAL = 3
    CRITICAL_DAEMON = 4


@final
@attrs.frozen(slots=True)
class ForceDelete:
    """Delete ``pod`` now with this grace period, so it is gone by the node's deadline."""

    pod: Obj
    grace_seconds: int


@final
@attrs.frozen(slots=True)
class DrainPlan:
    """What one drain pass should do; ``drained`` when nothing is left to wait for."""

    waiting: tuple[Obj, ...]
    """Pods the drain waits for (evicted or not yet)."""
    force_delete: tuple[ForceDelete, ...]
    evict: tuple[Obj, ...]
    """Pods of the current tier to evict through the Eviction API now."""
    protected: tuple[Obj, ...]
    """Pods of the current tier whose do-not-disrupt annotation is active: waited for, not evicted."""
    tier: Tier | None

    @property
    def drained(self) -> bool:
        return not self.waiting


# -- pod predicates -------------------------------------------------------------------------------------


def _meta(pod: Obj) -> Obj:
    value = pod.get("metadata")
    return value if isinstance(value, Mapping) else {}


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return meta.parse_time(str(value), "time")
    except ValueError:
        return None


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_terminating(pod: Obj) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_static(pod: Obj) -> bool:
    """Owned by its Node (a static pod's mirror) or annotated as a mirror pod: the API cannot remove it."""
    if MIRROR_ANNOTATION in (_meta(pod).get("annotations") or {}):
        return True
    return any(ref.get("kind") == "Node" for ref in _meta(pod).get("ownerReferences") or ())


def is_daemonset_pod(pod: Obj) -> bool:
    return any(ref.get("kind") == "DaemonSet" for ref in _meta(pod).get("ownerReferences") or ())


def is_critical(pod: Obj) -> bool:
    return (pod.get("spec") or {}).get("priorityClassName") in CRITICAL_PRIORITY_CLASSES


def tolerates_disrupted(pod: Obj) -> bool:
    """Does the pod tolerate ``nodesmith.io/disrupted:NoSchedule`` (Kubernetes' ToleratesTaint)?"""
    for toleration in (pod.get("spec") or {}).get("tolerations") or ():
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


def is_stuck_terminating(pod: Obj, now: dt.datetime) -> bool:
    deleted = _time(_meta(pod).get("deletionTimestamp"))
    return deleted is not None and now > deleted + STUCK_TERMINATING_AFTER


def is_drainable(pod: Obj) -> bool:
    """Something the drain concerns itself with at all (not static, not tolerating the disrupted taint)."""
    return not is_static(pod) and not tolerates_disrupted(pod)


def is_waiting_eviction(pod: Obj, now: dt.datetime) -> bool:
    """The drain waits for this pod to go."""
    return is_drainable(pod) and not is_terminal(pod) and not is_stuck_terminating(pod, now)


def is_evictable(pod: Obj) -> bool:
    """An eviction request makes sense (not already terminating, not terminal, drainable)."""
    return is_drainable(pod) and not is_terminal(pod) and not is_terminating(pod)


def tier_of(pod: Obj) -> Tier:
    daemon = is_daemonset_pod(pod)
    if is_critical(pod):
        return Tier.CRITICAL_DAEMON if daemon else Tier.CRITICAL
    return Tier.NON_CRITICAL_DAEMON if daemon else Tier.NON_CRITICAL


def grace_seconds(pod: Obj) -> int:
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE_SECONDS if value is None else int(value)


def _do_not_disrupt_active(pod: Obj, now: dt.datetime) -> bool:
    started = _time((pod.get("status") or {}).get("startTime"))
    return meta.do_not_disrupt_active(_meta(pod).get("annotations"), started, now)


# -- the plan -------------------------------------------------------------------------------------------


def _force_delete(pod: Obj, now: dt.datetime, deadline: dt.datetime | None) -> ForceDelete | None:
    """Karpenter's ``needsForceDelete``: the pod's grace would outlast the deadline (or it is already
    terminating with a deletionTimestamp after the deadline)."""
    if deadline is None:
        return None
    remaining = max(1, int((deadline - now).total_seconds()))
    if is_terminating(pod):
        deleted = _time(_meta(pod).get("deletionTimestamp"))
        if deleted is not None and deleted > deadline:
            return ForceDelete(pod, remaining)
        return None
    if now > deadline - dt.timedelta(seconds=grace_seconds(pod)):
        return ForceDelete(pod, remaining)
    return None


def plan(pods: Iterable[Obj], *, now: dt.datetime, deadline: dt.datetime | None = None) -> DrainPlan:
    """One drain pass over the pods bound to the node (see the module docstring for the rules)."""
    waiting = tuple(p for p in pods if is_waiting_eviction(p, now))
    forced = tuple(f for f in (_force_delete(p, now, deadline) for p in waiting) if f is not None)
    forced_uids = {_meta(f.pod).get("uid") for f in forced}
    graceful = [p for p in waiting if _meta(p).get("uid") not in forced_uids]
    tier = min((tier_of(p) for p in graceful), default=None)
    candidates = [p for p in graceful if tier_of(p) == tier and is_evictable(p)]
    protected = tuple(p for p in candidates if _do_not_disrupt_active(p, now))
    evict = tuple(p for p in candidates if not _do_not_disrupt_active(p, now))
    return DrainPlan(waiting=waiting, force_delete=forced, evict=evict, protected=protected, tier=tier)


# -- volumes --------------------------------------------------------------------------------------------


def volume_attachments_to_wait_for(
    attachments: Iterable[Obj], pods: Sequence[Obj], pvcs: Mapping[str, Obj]
) -> tuple[Obj, ...]:
    """The node's VolumeAttachments termination waits for: all of them except those of volumes used by
    pods the drain leaves in place (static pods, pods tolerating the disrupted taint), which would never
    detach. ``pvcs`` maps ``namespace/name`` to PersistentVolumeClaims (to find a claim's volume)."""
    kept: set[str] = set()
    for pod in pods:
        if is_drainable(pod):
            continue
        namespace = _meta(pod).get("namespace") or "default"
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pv = ((pvcs.get(f"{namespace}/{claim}") or {}).get("spec") or {}).get("volumeName")
            if pv:
                kept.add(str(pv))
    return tuple(va for va in attachments if _attached_volume(va) not in kept)


def _attached_volume(attachment: Obj) -> str | None:
    source = (attachment.get("spec") or {}).get("source") or {}
    name = source.get("persistentVolumeName")
    return str(name) if name else None
