"""The pure drain plan (`nodesmith.disruption.drain`): who is waited for, the eviction tiers, forced
deletion before the termination deadline, do-not-disrupt, and which VolumeAttachments block."""

from __future__ import annotations

import datetime as dt
import typing

import pytest

from nodesmith.api import labels
from nodesmith.disruption import drain
from nodesmith.state.views import PodView

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
Obj = dict[str, typing.Any]


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    name: str,
    *,
    owner: str | None = None,
    critical: bool = False,
    phase: str = "Running",
    deleted: dt.datetime | None = None,
    grace: int | None = None,
    tolerations: list[Obj] | None = None,
    annotations: dict[str, str] | None = None,
    claims: tuple[str, ...] = (),
) -> PodView:
    metadata: Obj = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "annotations": annotations or {},
    }
    if owner:
        metadata["ownerReferences"] = [{"kind": owner, "name": "o", "uid": "o", "apiVersion": "v1"}]
    if deleted:
        metadata["deletionTimestamp"] = stamp(deleted)
    spec: Obj = {"containers": [{"name": "c"}], "tolerations": tolerations or []}
    if critical:
        spec["priorityClassName"] = "system-node-critical"
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    if claims:
        spec["volumes"] = [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]
    body = {"metadata": metadata, "spec": spec, "status": {"phase": phase, "startTime": stamp(NOW)}}
    return PodView.parse(body)


def names(objs: typing.Iterable[PodView | typing.Mapping[str, typing.Any]]) -> list[str]:
    return sorted(o.name if isinstance(o, PodView) else o["metadata"]["name"] for o in objs)


@pytest.mark.parametrize(
    ("candidate", "waited_for"),
    [
        (pod("regular"), True),
        (pod("succeeded", phase="Succeeded"), False),
        (pod("failed", phase="Failed"), False),
        (pod("static", owner="Node"), False),
        (pod("mirror", annotations={drain.MIRROR_ANNOTATION: "x"}), False),
        (pod("tolerates-all", tolerations=[{"operator": "Exists"}]), False),
        (pod("tolerates-key", tolerations=[{"key": labels.TAINT_DISRUPTED, "operator": "Exists"}]), False),
        (pod("tolerates-other", tolerations=[{"key": "other", "operator": "Exists"}]), True),
        (pod("tolerates-noexecute-only", tolerations=[{"operator": "Exists", "effect": "NoExecute"}]), True),
        (pod("terminating", deleted=NOW - dt.timedelta(seconds=30)), True),
        (pod("stuck", deleted=NOW - dt.timedelta(minutes=2)), False),
    ],
)
def test_which_pods_the_drain_waits_for(candidate: PodView, waited_for: bool) -> None:
    assert drain.is_waiting_eviction(candidate, NOW) is waited_for


def test_tiers_are_evicted_one_at_a_time_regular_before_daemonset_before_critical() -> None:
    pods = [
        pod("web"),
        pod("logs", owner="DaemonSet"),
        pod("dns", critical=True),
        pod("cni", owner="DaemonSet", critical=True),
    ]
    plan = drain.plan(pods, now=NOW)
    assert (plan.tier, names(plan.evict)) == (drain.Tier.NON_CRITICAL, ["web"])
    assert names(plan.waiting) == ["cni", "dns", "logs", "web"]

    plan = drain.plan(pods[1:], now=NOW)
    assert (plan.tier, names(plan.evict)) == (drain.Tier.NON_CRITICAL_DAEMON, ["logs"])
    plan = drain.plan(pods[2:], now=NOW)
    assert (plan.tier, names(plan.evict)) == (drain.Tier.CRITICAL, ["dns"])
    plan = drain.plan(pods[3:], now=NOW)
    assert (plan.tier, names(plan.evict)) == (drain.Tier.CRITICAL_DAEMON, ["cni"])
    assert drain.plan([], now=NOW).drained


def test_a_terminating_pod_blocks_the_next_tier_but_is_not_evicted_again() -> None:
    plan = drain.plan([pod("web", deleted=NOW), pod("logs", owner="DaemonSet")], now=NOW)
    assert plan.tier is drain.Tier.NON_CRITICAL
    assert plan.evict == ()
    assert not plan.drained


def test_do_not_disrupt_pods_are_waited_for_but_not_evicted() -> None:
    protected = pod("batch", annotations={labels.ANNOTATION_DO_NOT_DISRUPT_KARPENTER: "true"})
    plan = drain.plan([protected, pod("web")], now=NOW)
    assert names(plan.evict) == ["web"]
    assert names(plan.protected) == ["batch"]
    expired = pod("batch", annotations={labels.ANNOTATION_DO_NOT_DISRUPT: "1m"})
    assert names(drain.plan([expired], now=NOW + dt.timedelta(minutes=5)).evict) == ["batch"]


def test_without_a_deadline_nothing_is_force_deleted() -> None:
    assert drain.plan([pod("web", grace=3600)], now=NOW).force_delete == ()


def test_pods_whose_grace_would_outlast_the_deadline_are_deleted_to_end_at_it() -> None:
    deadline = NOW + dt.timedelta(seconds=60)
    quick, slow = pod("quick", grace=30), pod("slow", grace=120)
    protected = pod("batch", grace=90, annotations={labels.ANNOTATION_DO_NOT_DISRUPT: "true"})
    critical = pod("cni", owner="DaemonSet", critical=True, grace=300)
    plan = drain.plan([quick, slow, protected, critical], now=NOW, deadline=deadline)
    forced = {f.pod.name: f.grace_seconds for f in plan.force_delete}
    assert forced == {"slow": 60, "batch": 60, "cni": 60}  # across tiers, bypassing do-not-disrupt
    assert names(plan.evict) == ["quick"]


def test_after_the_deadline_pods_are_deleted_with_a_one_second_grace() -> None:
    deadline = NOW - dt.timedelta(seconds=10)
    plan = drain.plan([pod("web", grace=0)], now=NOW, deadline=deadline)
    assert [f.grace_seconds for f in plan.force_delete] == [1]


def test_a_pod_terminating_past_the_deadline_is_deleted_again_sooner() -> None:
    deadline = NOW + dt.timedelta(seconds=20)
    late = pod("late", deleted=NOW + dt.timedelta(seconds=300))
    on_time = pod("on-time", deleted=NOW + dt.timedelta(seconds=10))
    plan = drain.plan([late, on_time], now=NOW, deadline=deadline)
    assert [(f.pod.name, f.grace_seconds) for f in plan.force_delete] == [("late", 20)]


def test_volume_attachments_of_pods_left_in_place_do_not_block() -> None:
    pvcs = {
        "default/data": {"spec": {"volumeName": "pv-data"}},
        "default/logs": {"spec": {"volumeName": "pv-logs"}},
    }
    pods = [pod("db", claims=("data",)), pod("agent", tolerations=[{"operator": "Exists"}], claims=("logs",))]
    attachments = [
        {"metadata": {"name": "va-data"}, "spec": {"source": {"persistentVolumeName": "pv-data"}}},
        {"metadata": {"name": "va-logs"}, "spec": {"source": {"persistentVolumeName": "pv-logs"}}},
        {"metadata": {"name": "va-inline"}, "spec": {"source": {"inlineVolumeSpec": {}}}},
    ]
    waiting = drain.volume_attachments_to_wait_for(attachments, pods, pvcs)
    assert names(waiting) == ["va-data", "va-inline"]


def test_pods_being_force_deleted_do_not_hold_back_the_graceful_tiers() -> None:
    """Karpenter terminator ``Drain``: past-deadline pods are deleted across all tiers and the tiers are
    computed from the other waiting pods only (termination suite_test.go "should not gate past-deadline
    pods behind graceful eviction of earlier tiers", mirrored: a past-deadline non-critical pod)."""
    deadline = NOW + dt.timedelta(seconds=60)
    slow = pod("batch", grace=600)  # non-critical, would outlast the deadline: force-deleted
    critical = pod("dns", critical=True, grace=30)  # fits before the deadline: evicted gracefully
    plan = drain.plan([slow, critical], now=NOW, deadline=deadline)
    assert [f.pod.name for f in plan.force_delete] == ["batch"]
    assert plan.tier is drain.Tier.CRITICAL
    assert names(plan.evict) == ["dns"]
    assert names(plan.waiting) == ["batch", "dns"]


def test_a_pod_terminating_after_the_deadline_does_not_hold_back_the_next_tier() -> None:
    deadline = NOW + dt.timedelta(seconds=20)
    late = pod("late", deleted=NOW + dt.timedelta(seconds=300))
    daemon = pod("agent", owner="DaemonSet", grace=5)
    plan = drain.plan([late, daemon], now=NOW, deadline=deadline)
    assert plan.tier is drain.Tier.NON_CRITICAL_DAEMON
    assert names(plan.evict) == ["agent"]
