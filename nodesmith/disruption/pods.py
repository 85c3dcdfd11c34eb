"""What disruption needs to know about one pod: is it active, would it have to move, what does moving it
cost, and does it carry an active do-not-disrupt annotation.

Fed by pods as the cluster state parsed them (`Pod`, structurally; `nodesmith.state.views.PodView` is
one), through `nodesmith.disruption.candidates`; consumed by candidates (eligibility and disruption cost),
the PDB check (`nodesmith.disruption.pdb`) and the simulation adapter (which pods a candidate's removal
reschedules). Karpenter's ``pkg/utils/pod`` and ``pkg/utils/disruption`` (spec §4.2).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Final, Protocol

from nodesmith.api import meta
from nodesmith.disruption import pdb

__all__ = [
    "Pod",
    "evictable_eventually",
    "eviction_cost",
    "is_active",
    "is_daemonset",
    "is_mirror",
    "is_reschedulable",
    "is_statefulset",
    "is_terminal",
    "is_terminating",
]

DELETION_COST_ANNOTATION: Final = "controller.kubernetes.io/pod-deletion-cost"
MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"


class Pod(pdb.Pod, Protocol):
    """The part of a parsed pod disruption reads (structurally, so this package needs no `state`)."""

    @property
    def uid(self) -> str: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...
    @property
    def phase(self) -> str | None: ...
    @property
    def terminal(self) -> bool: ...
    @property
    def terminating(self) -> bool: ...
    @property
    def started_at(self) -> dt.datetime | None:
        """``status.startTime`` (what a do-not-disrupt duration counts from)."""

    @property
    def controller_kind(self) -> str | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def body(self) -> Mapping[str, Any]:
        """The pod as the API server sent it: only for the scheduling engine, which parses it itself."""


def is_terminal(pod: Pod) -> bool:
    return pod.terminal


def is_terminating(pod: Pod) -> bool:
    return pod.terminating


def is_active(pod: Pod) -> bool:
    """Neither terminal nor terminating (what do-not-disrupt and PDBs are checked on)."""
    return not pod.terminal and not pod.terminating


def is_daemonset(pod: Pod) -> bool:
    return pod.controller_kind == "DaemonSet"


def is_mirror(pod: Pod) -> bool:
    """A static pod's mirror (owned by its Node, or annotated as a mirror)."""
    return pod.controller_kind == "Node" or MIRROR_ANNOTATION in pod.annotations


def is_statefulset(pod: Pod) -> bool:
    return pod.controller_kind == "StatefulSet"


def is_reschedulable(pod: Pod) -> bool:
    """Would need a new home if its node went away: active -- or a terminating StatefulSet pod, which its
    controller re-creates only once it is gone -- not a DaemonSet or mirror pod (Karpenter's
    ``IsReschedulable``). A pod tolerating the disrupted taint still counts: drain leaves it in place, but the
    node it runs on goes away all the same, so the simulation must find it a home."""
    return (
        (is_active(pod) or (is_statefulset(pod) and is_terminating(pod)))
        and not is_daemonset(pod)
        and not is_mirror(pod)
    )


def evictable_eventually(pod: Pod, pdbs: pdb.Limits, now: dt.datetime) -> bool:
    """Karpenter's ``IsCurrentlyReschedulable`` beyond ``IsReschedulable``: an active pod with an active
    do-not-disrupt annotation, or any pod a PDB keeps in place for good (`pdb.Limits.fully_blocking`), will
    not be evicted, so the simulations launch no capacity for it. Fed by the simulation adapter."""
    if is_active(pod) and meta.do_not_disrupt_active(pod.annotations, pod.started_at, now):
        return False
    return pdbs.fully_blocking(pod) is None


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


def eviction_cost(pod: Pod) -> float:
    """``clamp(1 + deletionCost/2^27 + priority/2^25, -10, 10)`` (Karpenter's ``EvictionCost``; the
    deletion cost is a float there, so ``1e9`` counts)."""
    cost = 1.0
    raw = pod.annotations.get(DELETION_COST_ANNOTATION)
    if raw is not None:
        deletion_cost = _deletion_cost(raw)
        if deletion_cost is not None:
            cost += deletion_cost / 2.0**27
    if pod.priority is not None:
        cost += pod.priority / 2.0**25
    return max(-10.0, min(10.0, cost))
