"""Preference relaxation: when a pod fits nowhere, give up one preference and try again.

The scheduler treats every preference as a requirement first (the heaviest preferred node-affinity term,
preferred pod (anti-)affinity terms, ``ScheduleAnyway`` spread constraints), and calls :func:`relax` after
each failed attempt. Karpenter's order (``preferences.go: Relax``), one step per call:

1. drop the first required node-affinity term when there are several (they are OR'd);
2. drop the heaviest preferred pod-affinity term;
3. drop the heaviest preferred pod-anti-affinity term;
4. drop the heaviest preferred node-affinity term;
5. drop one ``ScheduleAnyway`` topology spread constraint;
6. if some NodePool has a ``PreferNoSchedule`` taint, tolerate ``PreferNoSchedule``.

:func:`strip` removes all preferences up front (preference policy ``Ignore``).
"""

from __future__ import annotations

import attrs

from nodesmith.scheduling import pods, taints

__all__ = ["relax", "strip"]


def relax(pod: pods.SchedulingPod, *, tolerate_prefer_no_schedule: bool) -> pods.SchedulingPod | None:
    """The next, more relaxed variant of ``pod``, or ``None`` when nothing is left to relax."""
    if len(pod.required_terms) > 1:
        return _evolve(pod, "required node affinity term", required_terms=pod.required_terms[1:])
    if pod.preferred_affinity:
        return _evolve(pod, "preferred pod affinity term", preferred_affinity=pod.preferred_affinity[1:])
    if pod.preferred_anti_affinity:
        return _evolve(
            pod, "preferred pod anti-affinity term", preferred_anti_affinity=pod.preferred_anti_affinity[1:]
        )
    if pod.preferred_terms:
        return _evolve(pod, "preferred node affinity term", preferred_terms=pod.preferred_terms[1:])
    for i, spread in enumerate(pod.spread):
        if spread.schedule_anyway:
            return _evolve(pod, "ScheduleAnyway topology spread", spread=pod.spread[:i] + pod.spread[i + 1 :])
    if tolerate_prefer_no_schedule and taints.PREFER_NO_SCHEDULE_TOLERATION not in pod.tolerations:
        return _evolve(
            pod,
            "PreferNoSchedule taints",
            tolerations=(*pod.tolerations, taints.PREFER_NO_SCHEDULE_TOLERATION),
        )
    return None


def strip(pod: pods.SchedulingPod) -> pods.SchedulingPod:
    """``pod`` without any preference (preference policy ``Ignore``)."""
    if not (
        pod.preferred_terms
        or pod.preferred_affinity
        or pod.preferred_anti_affinity
        or any(s.schedule_anyway for s in pod.spread)
    ):
        return pod
    return attrs.evolve(
        pod,
        preferred_terms=(),
        preferred_affinity=(),
        preferred_anti_affinity=(),
        spread=tuple(s for s in pod.spread if not s.schedule_anyway),
    )


def _evolve(pod: pods.SchedulingPod, what: str, **changes: object) -> pods.SchedulingPod:
    return attrs.evolve(pod, relaxed=(*pod.relaxed, what), **changes)  # type: ignore[arg-type]
