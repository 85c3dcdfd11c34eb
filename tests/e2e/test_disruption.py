"""Disruption end to end on the real control plane: every reconciler runs in this process (short
validation delay and poll interval), kwok brings Nodes up, kube-scheduler binds pods, the
kube-controller-manager keeps PDB status, and termination drains through the Eviction API.

Scenarios (issue 7's done criteria): the empty node goes after consolidateAfter; two half-empty nodes
become one without a PDB ever being overrun; do-not-disrupt pods block consolidation and say so; a
template change drifts nodes and replaces them one budget at a time; expireAfter replaces nodes; a
``nodes: "0"`` budget in a cron window blocks everything until it is lifted.
"""

from __future__ import annotations

import pathlib
from typing import Any

import anyio
import pytest
import test_disruption_support as support

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PDBS = resources.PDBS
ONE_TYPE = [{"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["c-8x-amd64-linux"]}]
ON_DEMAND = [{"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]}]


async def test_empty_node_is_removed_after_consolidate_after(
    kube: KubeClient, kubeconfig: pathlib.Path, namespace: str, node_class: str, name: str
) -> None:
    await kube.create(
        resources.NODEPOOLS,
        e2e.nodepool(
            name, node_class, disruption={"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5s"}
        ),
    )
    await kube.create(e2e.DEPLOYMENTS, e2e.deployment("inflate", namespace, 4, pool=name), namespace)
    try:
        async with support.nodesmith(kubeconfig, namespace=namespace, nodepools=[name]) as ns:
            await e2e.eventually(
                lambda: support.all_running(kube, namespace, "inflate", 4), 120, "4 inflate pods running"
            )
            (claim,) = await support.claims_of(kube, name)
            await kube.merge_patch(e2e.DEPLOYMENTS, "inflate", {"spec": {"replicas": 0}}, namespace)

            async def removed() -> bool:
                return not await support.claims_of(kube, name) and not await support.nodes_of(kube, name)

            await e2e.eventually(removed, 120, "the empty node to be removed")
            emptiness = [d for d in ns.loop.decisions if d.started and d.outcome.command is not None]
            assert emptiness, "a disruption command was started"
            command = emptiness[-1].outcome.command
            assert command is not None
            assert command.method.value == "emptiness"
            assert [c.nodeclaim.name for c in command.candidates] == [claim["metadata"]["name"]]
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])


async def _two_half_empty_nodes(
    kube: KubeClient, namespace: str, node_class: str, name: str, *, annotations: dict[str, str] | None = None
) -> None:
    """A NodePool of c-8x on-demand nodes and a Deployment of 4 × 3.5 CPU (two per node); the tests then
    scale it to 2 with `_scale_to_one_pod_per_node`."""
    await kube.create(
        resources.NODEPOOLS,
        e2e.nodepool(
            name,
            node_class,
            requirements=[*ONE_TYPE, *ON_DEMAND],
            disruption={"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "3s"},
        ),
    )
    body = e2e.deployment("app", namespace, 4, pool=name, cpu="3500m")
    if annotations:
        body["spec"]["template"]["metadata"]["annotations"] = annotations
    await kube.create(e2e.DEPLOYMENTS, body, namespace)


async def _scale_to_one_pod_per_node(kube: KubeClient, namespace: str) -> None:
    """Scale "app" from two pods per node to one per node. A ReplicaSet ranks the pods it removes once per
    scale-down (all four tie on "pods on the same node"), so it may take both from one node; the
    ``pod-deletion-cost`` annotation makes it take one from each."""
    pods = (await kube.list(resources.PODS, namespace, label_selector="app=app")).items
    kept: set[str] = set()
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        node = pod["spec"].get("nodeName", "")
        cost = "-100" if node in kept else "100"
        kept.add(node)
        await kube.merge_patch(
            resources.PODS,
            pod["metadata"]["name"],
            {"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": cost}}},
            namespace,
        )
    await kube.merge_patch(e2e.DEPLOYMENTS, "app", {"spec": {"replicas": 2}}, namespace)


async def test_two_half_empty_nodes_consolidate_into_one_within_the_pdb(
    kube: KubeClient, kubeconfig: pathlib.Path, namespace: str, node_class: str, name: str
) -> None:
    await _two_half_empty_nodes(kube, namespace, node_class, name)
    await kube.create(PDBS, support.pdb("app", namespace, "app", 1), namespace)
    watch = support.ReadyWatch(kube, namespace, "app")
    try:
        async with (
            support.nodesmith(kubeconfig, namespace=namespace, nodepools=[name]),
            anyio.create_task_group() as group,
        ):
            group.start_soon(watch.run)
            await e2e.eventually(
                lambda: support.all_running(kube, namespace, "app", 4), 120, "4 pods running"
            )
            assert len(await support.claims_of(kube, name)) == 2
            await _scale_to_one_pod_per_node(kube, namespace)
            await e2e.eventually(lambda: support.all_running(kube, namespace, "app", 2), 60, "2 pods running")
            watch.armed = True

            async def one_node() -> bool:
                claims = await support.claims_of(kube, name)
                nodes = await support.nodes_of(kube, name)
                return (
                    len(claims) == 1
                    and len(nodes) == 1
                    and await support.all_running(kube, namespace, "app", 2)
                )

            await e2e.eventually(one_node, 180, "the two half-empty nodes to become one")
            group.cancel_scope.cancel()
        assert watch.samples > 0
        assert watch.lowest is not None
        assert watch.lowest >= 1, "the PDB allows one pod down, never two"
    finally:
        await e2e.cleanup(kube, namespace=namespace, nodepools=[name])


async def test_do_not_disrupt_pods_block_consolidation_and_the_event_says_so(
    kube: KubeClient, kubeconfig: pathlib.Path, namespace: str, node_class: str, name: str
) -> None:
    await _two_half_empty_nodes(
        kube, namespace, node_class, name, annotations={"karpenter.sh/do-not-disrupt": "true"}
    )
    try:
        async with support.nodesmith(kubeconfig, namespace=namespace, nodepools=[name]) as ns:
            await e2e.eventually(
                lambda: support.all_running(kube, namespace, "app", 4), 120, "4 pods running"
            )
            await _scale_to_one_pod_per_node(kube, namespace)
            await e2e.eventually(lambda: support.all_running(kube, namespace, "app", 2), 60, "2 pods running")
            nodes = [n["metadata"]["name"] for n in await support.nodes_of(kube, name)]
            assert len(nodes) == 2

            async def blocked_events() -> list[dict[str, Any]]:
                # every node has at least one; a node can have two, when the loop saw it before the scale-down
                # with the pod that was then removed named first
                per_node = [
                    [
                        e
                        for e in await support.node_events(kube, node, "DisruptionBlocked")
                        if "do-not-disrupt" in e.get("message", "")
                    ]
                    for node in nodes
                ]
                return [e for found in per_node for e in found] if all(per_node) else []

            try:
                events = await e2e.eventually(
                    blocked_events, 90, "DisruptionBlocked events naming do-not-disrupt"
                )
            except AssertionError as err:
                raise AssertionError(f"{err}; {support.why_not_candidates(ns, nodes)}") from None
            assert all(f"pod {namespace}/app-" in e["message"] for e in events)
            assert all("karpenter.sh/do-not-disrupt: true" in e["message"] for e in events)
            assert len(await support.claims_of(kube, name)) == 2
            # the decision records (what `nodesmith explain decisions --node` prints) say the same
            recorded = {
                r["node"]
                for d in ns.loop.decisions
                for r in d.to_dict()["ineligible"]
                if r["reason"] == "do-not-disrupt" and "karpenter.sh/do-not-disrupt" in r["message"]
            }
            assert set(nodes) <= recorded
    finally:
        await e2e.cleanup(kube, namespace=namespace, nodepools=[name])


def disrupting(claim: dict[str, Any], nodes: set[str]) -> bool:
    """Counted against a budget: being disrupted or deleted, its node still there, its instance not yet
    terminating (Karpenter's rule: a terminating instance no longer counts)."""
    conditions = {c.get("type"): c.get("status") for c in claim.get("status", {}).get("conditions") or ()}
    if (
        conditions.get("InstanceTerminating") == "True"
        or claim.get("status", {}).get("nodeName") not in nodes
    ):
        return False
    return bool(claim["metadata"].get("deletionTimestamp")) or "DisruptionReason" in conditions


async def test_template_change_drifts_and_replaces_nodes_one_budget_at_a_time(
    kube: KubeClient, kubeconfig: pathlib.Path, namespace: str, node_class: str, name: str
) -> None:
    await kube.create(
        resources.NODEPOOLS,
        e2e.nodepool(
            name,
            node_class,
            requirements=ON_DEMAND,
            disruption={
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": "Never",
                "budgets": [{"nodes": "1"}],
            },
        ),
    )
    spread = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": labels.LABEL_HOSTNAME, "labelSelector": {"matchLabels": {"app": "app"}}}
            ]
        }
    }
    await kube.create(
        e2e.DEPLOYMENTS, e2e.deployment("app", namespace, 3, pool=name, affinity=spread), namespace
    )
    most_disrupting = 0
    try:
        async with (
            support.nodesmith(kubeconfig, namespace=namespace, nodepools=[name]),
            anyio.create_task_group() as group,
        ):
            await e2e.eventually(
                lambda: support.all_running(kube, namespace, "app", 3), 120, "3 pods running"
            )
            before = {c["metadata"]["name"] for c in await support.claims_of(kube, name)}
            assert len(before) == 3

            async def sample() -> None:
                nonlocal most_disrupting
                while True:
                    claims = await support.claims_of(kube, name)
                    nodes = {n["metadata"]["name"] for n in await support.nodes_of(kube, name)}
                    going = [c for c in claims if c["metadata"]["name"] in before and disrupting(c, nodes)]
                    most_disrupting = max(most_disrupting, len(going))
                    await anyio.sleep(0.1)

            group.start_soon(sample)
            await kube.merge_patch(
                resources.NODEPOOLS,
                name,
                {"spec": {"template": {"metadata": {"labels": {"e2e/version": "2"}}}}},
            )

            async def replaced() -> bool:
                nodes = await support.nodes_of(kube, name)
                claims = {c["metadata"]["name"] for c in await support.claims_of(kube, name)}
                return (
                    len(nodes) == 3
                    and all(n["metadata"]["labels"].get("e2e/version") == "2" for n in nodes)
                    and not claims & before
                    and await support.all_running(kube, namespace, "app", 3)
                )

            await e2e.eventually(replaced, 300, "every node replaced by one with the new template")
            group.cancel_scope.cancel()
        assert most_disrupting == 1, "the budget allows one node disrupted at a time"
    finally:
        await e2e.cleanup(kube, namespace=namespace, nodepools=[name])


async def test_expire_after_replaces_old_nodes(
    kube: KubeClient, kubeconfig: pathlib.Path, namespace: str, node_class: str, name: str
) -> None:
    pool = e2e.nodepool(
        name, node_class, disruption={"consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never"}
    )
    pool["spec"]["template"]["spec"]["expireAfter"] = "45s"
    await kube.create(resources.NODEPOOLS, pool)
    await kube.create(e2e.DEPLOYMENTS, e2e.deployment("app", namespace, 2, pool=name), namespace)
    try:
        async with support.nodesmith(kubeconfig, namespace=namespace, nodepools=[name]):
            await e2e.eventually(
                lambda: support.all_running(kube, namespace, "app", 2), 120, "2 pods running"
            )
            before = {c["metadata"]["name"] for c in await support.claims_of(kube, name)}
            assert before

            async def renewed() -> bool:
                claims = {c["metadata"]["name"] for c in await support.claims_of(kube, name)}
                return (
                    bool(claims)
                    and not claims & before
                    and await support.all_running(kube, namespace, "app", 2)
                )

            await e2e.eventually(renewed, 180, "the expired nodes replaced by new ones")
    finally:
        await e2e.cleanup(kube, namespace=namespace, nodepools=[name])


async def test_zero_budget_in_a_cron_window_blocks_disruption_until_lifted(
    kube: KubeClient, kubeconfig: pathlib.Path, namespace: str, node_class: str, name: str
) -> None:
    window = {"nodes": "0", "schedule": "* * * * *", "duration": "1h"}
    await kube.create(
        resources.NODEPOOLS,
        e2e.nodepool(
            name,
            node_class,
            disruption={
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": "2s",
                "budgets": [window, {"nodes": "100%"}],
            },
        ),
    )
    await kube.create(e2e.DEPLOYMENTS, e2e.deployment("app", namespace, 1, pool=name), namespace)
    try:
        async with support.nodesmith(kubeconfig, namespace=namespace, nodepools=[name]):
            await e2e.eventually(
                lambda: support.all_running(kube, namespace, "app", 1), 120, "the pod running"
            )
            (node,) = [n["metadata"]["name"] for n in await support.nodes_of(kube, name)]
            await kube.merge_patch(e2e.DEPLOYMENTS, "app", {"spec": {"replicas": 0}}, namespace)

            async def blocked() -> list[dict[str, Any]]:
                return [
                    e
                    for e in await support.node_events(kube, node, "DisruptionBlocked")
                    if f"budget of NodePool {name} for Empty is 0" in e.get("message", "")
                ]

            await e2e.eventually(blocked, 90, "a DisruptionBlocked event naming the budget")
            assert len(await support.claims_of(kube, name)) == 1, "the empty node stays inside the window"

            await kube.merge_patch(
                resources.NODEPOOLS, name, {"spec": {"disruption": {"budgets": [{"nodes": "100%"}]}}}
            )

            async def removed() -> bool:
                return not await support.claims_of(kube, name)

            await e2e.eventually(removed, 120, "the empty node removed once the window's budget is lifted")
    finally:
        await e2e.cleanup(kube, namespace=namespace, nodepools=[name])
