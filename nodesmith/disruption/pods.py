"""What disruption needs to know about one pod: is it active, would it have to move, what does moving it
cost, and does it carry an active do-not-disrupt annotation.

Fed by pod dicts as the cluster state holds them (`nodesmith.state` snapshots, through
`nodesmith.disruption.candidates`); consumed by candidates (eligibility and disruption cost), the PDB
check (`nodesmith.disruption.pdb`) and the simulation adapter (which pods a candidate's removal
reschedules). Karpenter's ``pkg/utils/pod`` and ``pkg/utils/disruption`` (spec §4.2).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from nodesmith.api import meta
from nodesmith.disruption import pdb

__all__ = [
    "evictable_eventually",
    "eviction_cost",
    "is_active",
    "is_daemonset",
    "is_mirror",
    "is_reschedulable",
    "is_statefulset",
    "is_terminal",
    "is_terminating",
    "key",
    "started_at",
]

Obj: TypeAlias = Mapping[str, Any]

DELETION_COST_ANNOTATION: Final = "controller.kubernetes.io/pod-deletion-cost"
MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"


def _meta(pod: Obj) -> Obj:
    return pod.get("metadata") or {}


def key(pod: Obj) -> str:
    """``namespace/name``."""
    m = _meta(pod)
    return f"{m.get('namespace') or 'default'}/{m.get('name')}"


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_terminating(pod: Obj) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_active(pod: Obj) -> bool:
    """Neither terminal nor terminating (what do-not-disrupt and PDBs are checked on)."""
    return not is_terminal(pod) and not is_terminating(pod)


def _controller_kind(pod: Obj) -> str | None:
    for owner in _meta(pod).get("ownerReferences") or ():
        if owner.get("controller", True):
            return str(owner.get("kind"))
    return None


def is_daemonset(pod: Obj) -> bool:
    return _controller_kind(pod) == "DaemonSet"


def is_mirror(pod: Obj) -> bool:
    """A static pod's mirror (owned by its Node, or annotated as a mirror)."""
    return _controller_kind(pod) == "Node" or MIRROR_ANNOTATION in (_meta(pod).get("annotations") or {})


def is_statefulset(pod: Obj) -> bool:
    return _controller_kind(pod) == "StatefulSet"


def is_reschedulable(pod: Obj) -> bool:
    """Would need a new home if its node went away: active -- or a terminating StatefulSet pod, which its
    controller re-creates only once it is gone -- not a DaemonSet or mirror pod (Karpenter's
    ``IsReschedulable``). A pod tolerating the disrupted taint still counts: drain leaves it in place, but the
    node it runs on goes away all the same, so the simulation must find it a home."""
    return (
        (is_active(pod) or (is_statefulset(pod) and is_terminating(pod)))
        and not is_daemonset(pod)
        and not is_mirror(pod)
    )


def evictable_eventually(pod: Obj, pdbs: pdb.Limits, now: dt.datetime) -> bool:
    """Karpenter's ``IsCurrentlyReschedulable`` beyond ``IsReschedulable``: an active pod with an active
    do-not-disrupt annotation, or any pod a PDB keeps in place for good (`pdb.Limits.fully_blocking`), will
    not be evicted, so the simulations launch no capacity for it. Fed by the simulation adapter."""
    annotations = _meta(pod).get("annotations") or {}
    if is_active(pod) and meta.do_not_disrupt_active(annotations, started_at(pod), now):
        return False
    return pdbs.fully_blocking(pod) is None


def started_at(pod: Obj) -> dt.datetime | None:
    """``status.startTime`` (what a do-not-disrupt duration counts from)."""
    raw = (pod.get("status") or {}).get("startTime")
    if not raw:
        return None
    try:
        return meta.parse_time(str(raw), "status.startTime")
    except ValueError:
        return None


def _deletion_cost(raw: object) -> float | None:
    """The annotation as Go's ``strconv.ParseFloat`` reads it (``1e9`` included); ``None`` when it does not
    parse. Python's ``float`` is looser (spaces, digit underscores), so those are refused first; NaN is
    refused too, since it would make the cost unorderable."""
    text = str(raw)
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def eviction_cost(pod: Obj) -> float:
    """``clamp(1 + deletionCost/2^27 + priority/2^25, -10, 10)`` (Karpenter's ``EvictionCost``; the
    deletion cost is a float there, so ``1e9`` counts)."""
    cost = 1.0
    raw = (_meta(pod).get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    if raw is not None:
        deletion_cost = _deletion_cost(raw)
        if deletion_cost is not None:
            cost += deletion_cost / 2.0**27
    priority = (pod.get("spec") or {}).get("priority")
    if isinstance(priority, int):
        cost += priority / 2.0**25
    return max(-10.0, min(10.0, cost))
