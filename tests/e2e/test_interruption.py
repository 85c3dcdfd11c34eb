"""A spot interruption warning on the real control plane (kwok provider, event injected through its source):
a replacement node comes up Ready, the interrupted node is drained and gone, the pods run elsewhere."""

from __future__ import annotations

import collections.abc
import time
from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e
from nodesmith_kwok import provider as kwok_provider

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_spot_interruption_replaces_and_drains_the_node(
    kube: KubeClient,
    daemons: collections.abc.Callable[..., e2e.DaemonProcess],
    namespace: str,
    node_class: str,
    name: str,
) -> None:
    daemon = daemons()
    await kube.create(resources.NODEPOOLS, e2e.nodepool(name, node_class))
    await kube.create(e2e.DEPLOYMENTS, e2e.deployment("spot", namespace, 2, pool=name), namespace)

    async def pods() -> list[dict[str, Any]]:
        return (await kube.list(resources.PODS, namespace, label_selector="app=spot")).items

    async def nodes() -> list[dict[str, Any]]:
        return (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={name}")).items

    async def running_on(exclude: str | None) -> set[str]:
        current = await pods()
        placed = {
            p["spec"].get("nodeName", "") for p in current if p.get("status", {}).get("phase") == "Running"
        }
        ok = len(current) == 2 and len(placed) >= 1 and all(placed) and exclude not in placed
        ok = ok and all(p.get("status", {}).get("phase") == "Running" for p in current)
        return placed if ok else set()

    try:
        await daemon.wait_ready()
        (first,) = await e2e.eventually(lambda: running_on(None), 120, "2 pods Running")
        offering_keys = (labels.LABEL_INSTANCE_TYPE, labels.LABEL_ZONE, labels.LABEL_CAPACITY_TYPE)
        interrupted = await kube.get(resources.NODES, first)
        reclaimed = tuple(interrupted["metadata"]["labels"][k] for k in offering_keys)
        assert reclaimed[2] == "spot"
        sent = time.monotonic()
        await kube.merge_patch(
            resources.NODES,
            first,
            {"metadata": {"annotations": {kwok_provider.ANNOTATION_INTERRUPTION: "SpotInterruption"}}},
        )

        async def replacement_claim() -> list[dict[str, Any]]:
            claims = (await kube.list(resources.NODECLAIMS)).items
            return [
                c
                for c in claims
                if c["metadata"]["labels"].get(labels.LABEL_NODEPOOL) == name
                and c["metadata"]["name"] != first
            ]

        await e2e.eventually(replacement_claim, 60, "a replacement NodeClaim", interval=0.05)
        print(f"\nspot interruption → replacement NodeClaim created in {time.monotonic() - sent:.2f}s")
        await e2e.eventually(lambda: running_on(first), 120, "the pods Running on the replacement")

        async def first_gone() -> bool:
            return all(n["metadata"]["name"] != first for n in await nodes())

        await e2e.eventually(first_gone, 120, "the interrupted node to be drained and deleted")
        # the reclaimed spot offering was marked unavailable, so the replacement went elsewhere
        (replacement,) = await nodes()
        assert tuple(replacement["metadata"]["labels"][k] for k in offering_keys) != reclaimed
        events = (await kube.list(resources.CORE_EVENTS)).items
        assert any(
            e.get("reason") == "SpotInterrupted" and first in e["involvedObject"].get("name", "")
            for e in events
        )
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])
