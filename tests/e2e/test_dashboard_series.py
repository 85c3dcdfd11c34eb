"""Every series the shipped Grafana dashboard draws moves during a scale-up and scale-down, or the panel
says in its own description why it is flat in a healthy run (`nodesmith.testing.dashboard`).

A real ``nodesmith run`` process (leader election on, so the leader panel has something to show) with the
kwok provider: four one-CPU pods need a node, a pod no NodePool can hold stays unschedulable for a while,
the deployment shrinks to one pod (consolidation replaces the node with a cheaper one, evicting it) and
then to none (the empty node goes). ``/metrics`` is scraped at every poll along the way.
"""

from __future__ import annotations

import collections.abc
import json
import pathlib
import uuid
from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import dashboard, e2e

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

DASHBOARD = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "nodesmith.json"
COST_WAIT = 3 * 30.0
"""Seconds to wait for the cost gauges to follow the cluster: they are recomputed every 30 s."""


async def test_every_dashboard_series_moves_in_a_scale_up_and_down(
    kube: KubeClient,
    daemons: collections.abc.Callable[..., e2e.DaemonProcess],
    namespace: str,
    node_class: str,
    name: str,
) -> None:
    lease = f"nodesmith-{uuid.uuid4().hex[:6]}"
    daemon = daemons("--leader-elect", "--leader-election-name", lease)
    log = dashboard.SeriesLog()

    async def scraped(probe: collections.abc.Callable[[], collections.abc.Awaitable[bool]]) -> bool:
        log.record(await daemon.metrics_text())
        return await probe()

    async def wait(probe: collections.abc.Callable[[], collections.abc.Awaitable[bool]], what: str) -> None:
        await e2e.eventually(lambda: scraped(probe), 180, what, interval=0.5)

    async def claims() -> list[dict[str, Any]]:
        return [
            c
            for c in (await kube.list(resources.NODECLAIMS)).items
            if c["metadata"].get("labels", {}).get(labels.LABEL_NODEPOOL) == name
        ]

    async def running(replicas: int) -> bool:
        pods = (await kube.list(resources.PODS, namespace, label_selector="app=inflate")).items
        return len(pods) == replicas and all(p.get("status", {}).get("phase") == "Running" for p in pods)

    def value(metric: str, **wanted: str) -> float:
        """The metric's last scraped value, summed over its series carrying the ``wanted`` labels."""
        last = log.scrapes[-1] if log.scrapes else {}
        return sum(v for (n, got), v in last.items() if n == metric and set(wanted.items()) <= got)

    await kube.create(
        resources.NODEPOOLS,
        e2e.nodepool(
            name,
            node_class,
            # on-demand: replacing a spot node with a cheaper spot one is behind a feature gate
            requirements=[{"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]}],
            disruption={"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "2s"},
        ),
    )
    try:
        await daemon.wait_ready()
        # up: four pods on one node, and a pod no NodePool can hold
        await kube.create(e2e.DEPLOYMENTS, e2e.deployment("inflate", namespace, 4, pool=name), namespace)
        await wait(lambda: running(4), "4 inflate pods Running")
        nowhere = e2e.deployment("nowhere", namespace, 1, pool=name, nodeSelector={"e2e/never": "true"})
        await kube.create(e2e.DEPLOYMENTS, nowhere, namespace)

        async def unschedulable() -> bool:
            return value("nodesmith_pods_unschedulable") > 0

        await wait(unschedulable, "the unplaceable pod on the unschedulable gauge")
        await kube.delete(e2e.DEPLOYMENTS, "nowhere", namespace)

        async def costs_something() -> bool:
            # this test's pool only: nodes earlier tests left to the control plane may still be priced
            return value("nodesmith_nodepools_cost_per_hour", nodepool=name) > 0

        await e2e.eventually(lambda: scraped(costs_something), COST_WAIT, "the NodePool to cost something")

        # down to one pod: the node is replaced by a cheaper one (its pod evicted), then to none
        (first,) = await claims()
        await kube.merge_patch(e2e.DEPLOYMENTS, "inflate", {"spec": {"replicas": 1}}, namespace)

        async def replaced() -> bool:
            now = await claims()
            return [c["metadata"]["name"] for c in now] != [first["metadata"]["name"]] and len(now) == 1

        await wait(replaced, "the node to be replaced by a cheaper one")
        await wait(lambda: running(1), "the inflate pod Running on the replacement")
        await kube.merge_patch(e2e.DEPLOYMENTS, "inflate", {"spec": {"replicas": 0}}, namespace)

        async def empty() -> bool:
            return not await claims()

        await wait(empty, "the empty node to be removed")

        async def costs_nothing() -> bool:
            return value("nodesmith_nodepools_cost_per_hour", nodepool=name) == 0

        await e2e.eventually(lambda: scraped(costs_nothing), COST_WAIT, "the NodePool to cost nothing")
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])

    flat = log.flat_panels(dashboard.panels(json.loads(DASHBOARD.read_text())))
    assert flat == [], f"{len(log.scrapes)} scrapes; moved: {sorted(log.moved())}"
