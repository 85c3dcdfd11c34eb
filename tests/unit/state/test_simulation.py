"""The snapshot → simulation adapter: the choice of pending pods, the DaemonSet pods it hands the engine."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nodesmith.api import labels
from nodesmith.api.nodepool import NodePool, Packing
from nodesmith.api.requirements import Requirements
from nodesmith.kube import resources
from nodesmith.scheduling import daemonsets
from nodesmith.scheduling import pods as scheduling_pods
from nodesmith.state import ClusterState, simulation
from nodesmith.testing import factories

from . import factories as state_factories


def unschedulable(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", **meta},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
    }


def test_pending_pods_are_the_unschedulable_ones_not_being_deleted() -> None:
    state = ClusterState(clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    state.on_upsert(resources.PODS, unschedulable("waiting"))
    state.on_upsert(resources.PODS, unschedulable("leaving", deletionTimestamp="2026-01-01T00:00:00Z"))
    never_tried = unschedulable("new")
    never_tried["status"] = {"phase": "Pending"}
    state.on_upsert(resources.PODS, never_tried)
    names = [p.name for p in simulation.pending_pods(state.snapshot())]
    assert names == ["waiting"]


def _daemonset(required: list[dict[str, Any]] | None) -> dict[str, Any]:
    template_spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}
    if required is not None:
        template_spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": required}
            }
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid"},
        "spec": {"template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec}},
    }


def _live_daemon_pod() -> dict[str, Any]:
    """As the DaemonSet controller creates it: the node affinity replaced by one term pinning the pod to
    its node with ``matchFields`` (whatever the template said)."""
    pinned = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}
    return {
        "metadata": {
            "name": "agent-x1",
            "namespace": "ns",
            "uid": "uid-agent-x1",
            "ownerReferences": [{"kind": "DaemonSet", "name": "agent", "uid": "ds-uid", "controller": True}],
        },
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [pinned]}
                }
            },
        },
        "status": {"phase": "Running"},
    }


def _daemon_overhead(required: list[dict[str, Any]] | None) -> dict[str, list[int]]:
    """Per architecture, the DaemonSet CPU a new node of that architecture would carry."""
    state = ClusterState(clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    state.on_upsert(resources.DAEMONSETS, _daemonset(required))
    state.on_upsert(resources.PODS, _live_daemon_pod())
    (daemon,) = simulation.daemonset_pods(state.snapshot())
    its = [
        factories.instance_type("arm", cpu=4, memory="8Gi", arch="arm64"),
        factories.instance_type("amd", cpu=4, memory="8Gi", arch="amd64"),
    ]
    parsed = scheduling_pods.parse_pod(daemon)
    assert parsed.requests["cpu"] == 500, "requests come from the live pod (LimitRanges apply to it)"
    group_of, groups = daemonsets.overhead_groups(
        Requirements(), (), its, [parsed], labels.CORE_WELL_KNOWN_LABELS
    )
    return {it.name: [groups[g].requests.get("cpu", 0)] for it, g in zip(its, group_of, strict=True)}


def test_a_live_daemonset_pod_takes_the_templates_required_node_affinity() -> None:
    """Karpenter provisioning suite_test.go "should remove daemonset node hostname affinity when
    considering daemonset schedulability": the live pod's pinning to its node is replaced with the
    DaemonSet template's required node affinity."""
    arm_only = [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]
    assert _daemon_overhead(arm_only) == {"arm": [500], "amd": [0]}


def test_a_live_daemonset_pod_without_template_affinity_runs_everywhere() -> None:
    assert _daemon_overhead(None) == {"arm": [500], "amd": [500]}


def test_templates_carry_each_nodepools_packing_annotation() -> None:
    """``nodesmith.io/packing: cost-optimised`` on a NodePool reaches the engine's template for it; a pool
    without it, or with an unknown value, keeps Karpenter's packing; the annotation is no drift."""
    state = ClusterState(clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    values = {"plain": None, "cheap": "cost-optimised", "typo": "cheapest"}
    pools = {}
    for name, value in values.items():
        body = state_factories.nodepool(name)
        if value is not None:
            body["metadata"].setdefault("annotations", {})[labels.ANNOTATION_PACKING] = value
        state.on_upsert(resources.NODEPOOLS, body)
        pools[name] = body
    types = factories.fake_instance_types(3)
    templates = simulation.templates(state.snapshot(), dict.fromkeys(values, types))
    assert {t.nodepool: t.packing for t in templates} == {
        "plain": Packing.KARPENTER,
        "cheap": Packing.COST_OPTIMISED,
        "typo": Packing.KARPENTER,
    }
    plain = state_factories.nodepool("cheap")
    assert NodePool.from_dict(pools["cheap"]).hash() == NodePool.from_dict(plain).hash()
