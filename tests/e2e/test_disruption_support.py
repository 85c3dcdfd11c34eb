"""Support for the disruption scenarios: nodesmith run *in this process* (the daemon as
``nodesmith.runtime.app.Daemon.build`` wires it: the kwok provider, the real informers, every reconciler)
with short disruption timings, plus probes that read the API.

In-process rather than ``nodesmith run`` so the scenarios can set the validation delay and poll interval
(seconds instead of 15 s / 10 s) through `nodesmith.reconcilers.disruption.Options` -- the same knob the
runtime passes -- and look at the disruption loop's decision records. No tests here.
"""

from __future__ import annotations

import collections.abc
import contextlib
import datetime as dt
import pathlib
from typing import Any

import anyio
import attrs

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.reconcilers import disruption as disruption_loop
from nodesmith.runtime import app
from nodesmith.runtime.settings import Settings
from nodesmith.state import ClusterState
from nodesmith.testing import e2e

FAST = disruption_loop.Options(
    validation_delay=dt.timedelta(seconds=2),
    poll_interval=dt.timedelta(seconds=1),
    queue_timeout=dt.timedelta(minutes=3),
)


@attrs.define
class Nodesmith:
    kube: KubeClient
    state: ClusterState
    loop: disruption_loop.Disruption


@contextlib.asynccontextmanager
async def nodesmith(
    kubeconfig: pathlib.Path,
    options: disruption_loop.Options = FAST,
    *,
    namespace: str | None = None,
    nodepools: collections.abc.Sequence[str] = (),
) -> collections.abc.AsyncIterator[Nodesmith]:
    """The daemon as ``nodesmith run`` builds it (`app.Daemon.build`: kwok provider, informers, every
    reconciler), leading at once, until the block ends; on the way out the test's namespace and NodePools
    are cleaned up while the reconcilers still run (so nodes drain)."""
    settings = Settings(
        provider="kwok",
        cluster_name="e2e",
        kubeconfig=str(kubeconfig),
        batch_idle_duration=dt.timedelta(milliseconds=500),
        batch_max_duration=dt.timedelta(seconds=3),
        metrics_port=0,
        health_port=0,
        leader_election=False,
    )
    settings.validate()
    daemon = await app.Daemon.build(settings, disruption=options)
    loop = next(r for r in daemon.reconcilers if isinstance(r, disruption_loop.Disruption))
    async with anyio.create_task_group() as group:
        await group.start(daemon.serve)
        await daemon.informers.wait_synced()
        try:
            yield Nodesmith(daemon.kube, daemon.state, loop)
        finally:
            if namespace is not None or nodepools:
                with anyio.CancelScope(shield=True):
                    await e2e.cleanup(daemon.kube, namespace=namespace, nodepools=list(nodepools))
            group.cancel_scope.cancel()


async def claims_of(kube: KubeClient, pool: str) -> list[dict[str, Any]]:
    return [
        c
        for c in (await kube.list(resources.NODECLAIMS)).items
        if c["metadata"].get("labels", {}).get(labels.LABEL_NODEPOOL) == pool
    ]


async def nodes_of(kube: KubeClient, pool: str) -> list[dict[str, Any]]:
    return (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={pool}")).items


async def pods_of(kube: KubeClient, namespace: str, app: str) -> list[dict[str, Any]]:
    return (await kube.list(resources.PODS, namespace, label_selector=f"app={app}")).items


def ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or ()
    )


async def all_running(kube: KubeClient, namespace: str, app: str, replicas: int) -> bool:
    pods = await pods_of(kube, namespace, app)
    return len(pods) == replicas and all(ready(p) for p in pods)


async def node_events(kube: KubeClient, node: str, reason: str | None = None) -> list[dict[str, Any]]:
    """core/v1 Events about Node ``node`` (any namespace), optionally of one reason; selected by the API server
    (the whole run's events can number thousands by the time a late test asks)."""
    selector = f"involvedObject.kind=Node,involvedObject.name={node}"
    if reason is not None:
        selector += f",reason={reason}"
    return (await kube.list(resources.CORE_EVENTS, field_selector=selector)).items


def why_not_candidates(ns: Nodesmith, nodes: collections.abc.Collection[str]) -> str:
    """What the disruption loop last said about ``nodes``, for a failure message: whether the state is synced
    (and what holds it back), how many method runs it recorded, and each node's last recorded rejection."""
    last: dict[str, str] = {}
    for record in ns.loop.decisions:
        for rejection in record.ineligible:
            if rejection.node in nodes:
                last[rejection.node] = (
                    f"{rejection.reason.value}: {rejection.message} (at {record.at:%H:%M:%S})"
                )
    return (
        f"synced={ns.state.synced()} unlaunched={ns.state.unlaunched_nodeclaims()} "
        f"records={len(ns.loop.decisions)} last rejections={last or 'none'}"
    )


def pdb(name: str, namespace: str, app: str, max_unavailable: int) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": {"app": app}}},
    }


@attrs.define
class ReadyWatch:
    """Samples a Deployment's Ready pods from the API while a scenario runs; ``lowest`` is the minimum
    seen once ``armed`` (what a PDB promises to keep)."""

    kube: KubeClient
    namespace: str
    app: str
    lowest: int | None = None
    samples: int = 0
    armed: bool = False

    async def run(self) -> None:
        while True:
            pods = await pods_of(self.kube, self.namespace, self.app)
            count = sum(1 for p in pods if ready(p))
            if self.armed:
                self.samples += 1
                self.lowest = count if self.lowest is None else min(self.lowest, count)
            await anyio.sleep(0.1)
