"""Capacity fallback end to end (issue: a burst into a fully exhausted preferred NodePool).

Two NodePools serve the same pods: ``<name>-spot`` (weight 100, spot only) whose KWOKNodeClass fails every
spot launch with insufficient capacity, and ``<name>-od`` (weight 1, on-demand). nodesmith must notice the
exhausted pool after a few failed launches, back it off (shown in its status) and put the pods on the
on-demand pool. The seconds until all pods run are printed (a figure, never asserted).
"""

from __future__ import annotations

import collections.abc
import contextlib
import re
import time
from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Daemons = collections.abc.Callable[..., e2e.DaemonProcess]

REPLICAS = 20
MAX_FAILED_LAUNCHES = 10


def pool(name: str, node_class: str, shared_label: str, capacity_type: str, weight: int) -> dict[str, Any]:
    body = e2e.nodepool(
        name,
        node_class,
        requirements=[{"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": [capacity_type]}],
        weight=weight,
    )
    body["spec"]["template"]["metadata"]["labels"] = {"e2e/pool": shared_label}
    return body


async def counter(daemon: e2e.DaemonProcess, metric: str, **wanted: str) -> float:
    """The sum of ``metric``'s series (``_total`` or not) whose labels include ``wanted``."""
    total = 0.0
    for line in (await daemon.metrics_text()).splitlines():
        match = re.match(rf"{metric}(?:_total)?{{([^}}]*)}} (\S+)$", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if all(found.get(key) == want for key, want in wanted.items()):
                total += float(match.group(2))
    return total


async def running(kube: KubeClient, namespace: str) -> bool:
    pods = (await kube.list(resources.PODS, namespace, label_selector="app=burst")).items
    return len(pods) == REPLICAS and all(p.get("status", {}).get("phase") == "Running" for p in pods)


async def test_burst_into_an_exhausted_spot_pool_falls_back_to_on_demand(
    kube: KubeClient, daemons: Daemons, namespace: str, name: str
) -> None:
    spot, od, exhausted = f"{name}-spot", f"{name}-od", f"{name}-ice"
    await kube.create(
        e2e.KWOK_NODE_CLASSES,
        {"metadata": {"name": exhausted}, "spec": {"insufficientCapacity": [{"capacityType": "spot"}]}},
    )
    await kube.create(e2e.KWOK_NODE_CLASSES, {"metadata": {"name": od}, "spec": {}})
    await kube.create(resources.NODEPOOLS, pool(spot, exhausted, name, "spot", 100))
    await kube.create(resources.NODEPOOLS, pool(od, od, name, "on-demand", 1))
    daemon = daemons()
    try:
        await daemon.wait_ready()
        started = time.monotonic()
        await kube.create(e2e.DEPLOYMENTS, e2e.deployment("burst", namespace, REPLICAS, pool=name), namespace)
        await e2e.eventually(lambda: running(kube, namespace), 300, f"{REPLICAS} pods Running")
        seconds = time.monotonic() - started
        created = await counter(daemon, "nodesmith_nodeclaims_created", nodepool=spot)
        failed = await counter(
            daemon, "nodesmith_nodeclaims_disrupted", nodepool=spot, reason="insufficient_capacity"
        )
        print(
            f"capacity fallback: {REPLICAS} pods Running after {seconds:.1f}s; "
            f"{spot}: {created:.0f} NodeClaims created, {failed:.0f} failed launches"
        )
        assert failed >= 1  # the spot pool was tried first (weight 100) and failed
        assert failed < MAX_FAILED_LAUNCHES
        nodes = (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={od}")).items
        assert nodes
        assert all(n["metadata"]["labels"][labels.LABEL_CAPACITY_TYPE] == "on-demand" for n in nodes)

        # The status reconciler writes the backoff on its own pass, which may come after the pods run.
        async def backoff_shown() -> list[dict[str, Any]]:
            status = (await kube.get(resources.NODEPOOLS, spot)).get("status") or {}
            return [c for c in status.get("conditions") or () if c["type"] == "CapacityAvailable"]

        backoff = await e2e.eventually(backoff_shown, 60, f"CapacityAvailable on {spot}'s status")
        assert backoff[0]["status"] == "False"
        assert backoff[0]["reason"] == "InsufficientCapacity"
        assert "spot" in backoff[0]["message"]
        assert "until" in backoff[0]["message"]

        async def backed_off_event() -> bool:
            events = (await kube.list(resources.CORE_EVENTS, namespace)).items
            return any(
                e.get("reason") == "NodePoolBackedOff" and spot in e.get("message", "") for e in events
            )

        await e2e.eventually(backed_off_event, 60, "a NodePoolBackedOff event on the pods")
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[spot, od])
        for node_class in (exhausted, od):
            with contextlib.suppress(kube_errors.NotFoundError):
                await kube.delete(e2e.KWOK_NODE_CLASSES, node_class)
