"""Soak: churn workloads under consolidation for about two minutes and watch, from the API, that no
PodDisruptionBudget is ever overrun.

Two protected Deployments (constant replicas, each with a PDB of ``maxUnavailable: 1``) share nodes
with two filler Deployments whose replica counts change every few seconds (seeded, so runs repeat).
Fillers scaling up launch nodes; scaling down leaves nodes empty or underutilized, which emptiness and
consolidation remove or replace -- evicting protected pods through termination. The invariant, sampled
ten times a second from the API: a protected Deployment never has fewer than ``replicas - 1`` Ready
pods once it first was whole. The run must also have disrupted something, or it proved nothing.
"""

from __future__ import annotations

import functools
import pathlib
import random

import anyio
import pytest
import test_disruption_support as support

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CHURN_SECONDS = 100.0
CHURN_EVERY = 6.0
PROTECTED = {"steady-a": ("1", 3), "steady-b": ("500m", 3)}
FILLERS = ("filler-a", "filler-b")


async def test_churn_under_consolidation_never_overruns_a_pdb(
    kube: KubeClient, kubeconfig: pathlib.Path, namespace: str, node_class: str, name: str
) -> None:
    await kube.create(
        resources.NODEPOOLS,
        e2e.nodepool(
            name,
            node_class,
            requirements=[
                {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
                {
                    "key": labels.LABEL_INSTANCE_TYPE,
                    "operator": "In",
                    "values": ["c-2x-amd64-linux", "c-4x-amd64-linux", "c-8x-amd64-linux"],
                },
            ],
            disruption={
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": "2s",
                "budgets": [{"nodes": "50%"}],
            },
        ),
    )
    for app, (cpu, replicas) in PROTECTED.items():
        await kube.create(
            e2e.DEPLOYMENTS, e2e.deployment(app, namespace, replicas, pool=name, cpu=cpu), namespace
        )
        await kube.create(resources.PDBS, support.pdb(app, namespace, app, 1), namespace)
    for app in FILLERS:
        await kube.create(
            e2e.DEPLOYMENTS, e2e.deployment(app, namespace, 2, pool=name, cpu="1500m"), namespace
        )
    watches = {app: support.ReadyWatch(kube, namespace, app) for app in PROTECTED}
    rng = random.Random(7)
    async with support.nodesmith(kubeconfig, namespace=namespace, nodepools=[name]) as ns:
        try:
            async with anyio.create_task_group() as group:
                for watch in watches.values():
                    group.start_soon(watch.run)
                for app, (_, replicas) in PROTECTED.items():
                    await e2e.eventually(
                        functools.partial(support.all_running, kube, namespace, app, replicas),
                        120,
                        f"{app} whole",
                    )
                    watches[app].armed = True
                with anyio.move_on_after(CHURN_SECONDS):
                    while True:
                        for app in FILLERS:
                            replicas = rng.choice((0, 0, 1, 2, 4, 6))
                            await kube.merge_patch(
                                e2e.DEPLOYMENTS, app, {"spec": {"replicas": replicas}}, namespace
                            )
                        await anyio.sleep(CHURN_EVERY)
                for app in FILLERS:
                    await kube.merge_patch(e2e.DEPLOYMENTS, app, {"spec": {"replicas": 0}}, namespace)

                async def disrupted() -> bool:
                    return any(d.started for d in ns.loop.decisions)

                await e2e.eventually(disrupted, 60, "at least one disruption")
                group.cancel_scope.cancel()
        finally:
            await e2e.cleanup(kube, namespace=namespace, nodepools=[name])
    started = [d for d in ns.loop.decisions if d.started]
    methods = sorted({d.outcome.method.value for d in started})
    print(f"soak: {len(started)} disruption commands started ({', '.join(methods)})")
    for app, watch in watches.items():
        replicas = PROTECTED[app][1]
        print(f"soak: {app} lowest Ready {watch.lowest} of {replicas} over {watch.samples} samples")
        assert watch.samples > 0
        assert watch.lowest is not None
        assert watch.lowest >= replicas - 1, f"{app}: PDB maxUnavailable 1 overrun"
