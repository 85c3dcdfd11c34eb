"""``nodesmith demo``: Karpenter's getting-started scenario on a local control plane, start to finish.

It brings up the local control plane (`nodesmith.dev`), installs the CRDs, a ``default`` KWOKNodeClass and
NodePool, runs the nodesmith daemon in this process with the kwok provider, creates the ``inflate``
Deployment (pause pods requesting 1 CPU each) with 0 replicas, scales it to 4 and then back to 0, and
prints what happens: the NodeClaim launched, the Node registered and initialized, the pods bound and
Running, and — after ``consolidateAfter`` — the empty node drained and removed; then the daemon's own
records of the decisions that did it (its ``/decisions`` log). Everything it shows is read back from the
API server or the daemon; nothing is simulated.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import click

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.runtime import app, crds, telemetry
from nodesmith.runtime.settings import Settings
from nodesmith.whatif import recorded

__all__ = ["DEPLOYMENTS", "inflate", "nodepool", "run_scenario"]

DEPLOYMENTS: Final = resources.Resource("apps", "v1", "deployments", "Deployment", namespaced=True)
KWOK_NODE_CLASSES: Final = resources.node_class("kwok.nodesmith.io", "KWOKNodeClass")
NAMESPACE: Final = "default"


def node_class() -> dict[str, Any]:
    return {
        "apiVersion": "kwok.nodesmith.io/v1",
        "kind": "KWOKNodeClass",
        "metadata": {"name": "default"},
        "spec": {},
    }


def nodepool(consolidate_after: str = "10s") -> dict[str, Any]:
    """Karpenter's getting-started NodePool, with a short ``consolidateAfter`` so the demo is quick."""
    return {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodePool",
        "metadata": {"name": "default"},
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": {
                        "group": "kwok.nodesmith.io",
                        "kind": "KWOKNodeClass",
                        "name": "default",
                    },
                    "requirements": [
                        {"key": labels.LABEL_ARCH, "operator": "In", "values": ["amd64"]},
                        {"key": labels.LABEL_OS, "operator": "In", "values": ["linux"]},
                        {
                            "key": labels.LABEL_CAPACITY_TYPE,
                            "operator": "In",
                            "values": ["spot", "on-demand"],
                        },
                    ],
                    "expireAfter": "720h",
                }
            },
            "limits": {"cpu": "1000"},
            "disruption": {
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": consolidate_after,
            },
        },
    }


def inflate(replicas: int = 0) -> dict[str, Any]:
    """Karpenter's ``inflate`` Deployment: pause containers each requesting one CPU."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "inflate", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "inflate"}},
            "template": {
                "metadata": {"labels": {"app": "inflate"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
                    "containers": [
                        {
                            "name": "inflate",
                            "image": "public.ecr.aws/eks-distro/kubernetes/pause:3.7",
                            "resources": {"requests": {"cpu": "1"}},
                            "securityContext": {"allowPrivilegeEscalation": False},
                        }
                    ],
                },
            },
        },
    }


class Progress:
    """Timestamped lines on stdout."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        click.echo(f"[demo +{time.monotonic() - self.started:6.1f}s] {message}")


async def _apply(
    kube: KubeClient, resource: resources.Resource, obj: dict[str, Any], namespace: str | None = None
) -> None:
    with contextlib.suppress(kube_errors.AlreadyExistsError):
        await kube.create(resource, obj, namespace)


async def _until(probe: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    with anyio.move_on_after(timeout):
        while True:
            result = await probe()
            if result:
                return result
            await anyio.sleep(0.5)
    raise click.ClickException(f"timed out after {timeout:.0f}s waiting for {what}")


async def _inflate_pods(kube: KubeClient) -> list[dict[str, Any]]:
    return (await kube.list(resources.PODS, NAMESPACE, label_selector="app=inflate")).items


async def run_scenario(
    kube: KubeClient, say: Callable[[str], None], *, replicas: int = 4, timeout: float = 180
) -> dict[str, float]:
    """Scale inflate 0 → ``replicas`` → 0 against a running nodesmith; returns the phase timings."""
    timings: dict[str, float] = {}
    await kube.merge_patch(DEPLOYMENTS, "inflate", {"spec": {"replicas": replicas}}, NAMESPACE)
    started = time.monotonic()
    say(
        f"scaled deployment/inflate to {replicas} replicas (1 CPU each); kube-scheduler finds no node for them"
    )

    async def claims() -> list[dict[str, Any]]:
        return (await kube.list(resources.NODECLAIMS)).items

    created = await _until(claims, timeout, "a NodeClaim")
    for claim in created:
        say(f"nodeclaim/{claim['metadata']['name']} created for {claim['spec']['resources']['requests']}")

    async def launched() -> list[dict[str, Any]]:
        return [c for c in await claims() if (c.get("status") or {}).get("providerID")]

    for claim in await _until(launched, timeout, "the NodeClaim to launch"):
        meta_labels = claim["metadata"].get("labels", {})
        say(
            f"nodeclaim/{claim['metadata']['name']} launched: {meta_labels.get(labels.LABEL_INSTANCE_TYPE)} "
            f"({meta_labels.get(labels.LABEL_CAPACITY_TYPE)}, {meta_labels.get(labels.LABEL_ZONE)}) "
            f"as {claim['status']['providerID']}"
        )

    async def initialized() -> list[dict[str, Any]]:
        nodes = (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_INITIALIZED}=true")).items
        return [n for n in nodes if labels.LABEL_NODEPOOL in n["metadata"].get("labels", {})]

    for node in await _until(initialized, timeout, "the node to be registered and initialized"):
        say(f"node/{node['metadata']['name']} registered, Ready and initialized")

    async def running() -> bool:
        pods = await _inflate_pods(kube)
        return len(pods) == replicas and all((p.get("status") or {}).get("phase") == "Running" for p in pods)

    await _until(running, timeout, f"{replicas} inflate pods Running")
    timings["scale_up"] = time.monotonic() - started
    bound = sorted({(p.get("spec") or {}).get("nodeName", "") for p in await _inflate_pods(kube)})
    say(
        f"{replicas} pods bound by kube-scheduler and Running on {', '.join(bound)} ({timings['scale_up']:.1f}s after scaling)"
    )

    await kube.merge_patch(DEPLOYMENTS, "inflate", {"spec": {"replicas": 0}}, NAMESPACE)
    started = time.monotonic()
    say("scaled deployment/inflate to 0; the node is empty and waits out consolidateAfter")

    async def gone() -> bool:
        managed = [
            n
            for n in (await kube.list(resources.NODES)).items
            if labels.LABEL_NODEPOOL in n["metadata"].get("labels", {})
        ]
        return not managed and not await claims()

    await _until(gone, timeout, "the empty node to be removed")
    timings["scale_down"] = time.monotonic() - started
    say(
        f"empty node drained and removed, NodeClaim deleted ({timings['scale_down']:.1f}s after scaling to 0)"
    )
    return timings


async def run_demo(kubeconfig: str, say: Callable[[str], None], *, replicas: int = 4) -> dict[str, float]:
    """Install the demo objects, run nodesmith in this process and play the scenario."""
    kube = await KubeClient.connect(kubeconfig)
    await crds.install(kube, crds.all_crds())
    await _apply(kube, KWOK_NODE_CLASSES, node_class())
    await _apply(kube, resources.NODEPOOLS, nodepool())
    await _apply(kube, DEPLOYMENTS, inflate(0), NAMESPACE)
    say("installed CRDs, KWOKNodeClass/default, NodePool/default and deployment/inflate (0 replicas)")
    telemetry.setup()
    settings = Settings.from_raw(
        provider="kwok", kubeconfig=kubeconfig, metrics_port=0, health_port=0, leader_election=False
    )
    daemon = await app.Daemon.build(settings)
    async with anyio.create_task_group() as group:
        await group.start(daemon.serve)
        say(
            f"nodesmith running with the kwok provider (health/metrics on 127.0.0.1:{daemon.ports.get('health')})"
        )
        timings = await run_scenario(kube, say, replicas=replicas)
        group.cancel_scope.cancel()
    acted = [
        r
        for r in daemon.decisions.records()
        if r.get("nodeclaims") or (r.get("kind") == "disruption" and r.get("started"))
    ]
    say("what nodesmith decided, as `nodesmith explain decisions` shows it (from /decisions):")
    for line in recorded.lines(acted):
        say(f"  {line}")
    return timings
