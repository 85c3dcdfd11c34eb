"""Capacity fallback, the way back: the preferred NodePool recovers (issue 16 item 1, last clause).

Two NodePools serve the same pods: ``<name>-spot`` (weight 100, spot only) whose KWOKNodeClass first fails
every spot launch with insufficient capacity, and ``<name>-od`` (weight 1, on-demand, ``consolidateAfter``
5 s, disruption budget ``nodes: "1"``). The burst lands on ``od`` (test_capacity_fallback.py covers that).
Then spot recovers: the KWOKNodeClass's ``insufficientCapacity`` list is emptied. nodesmith cannot see that
(a cloud gives no signal either): the pool's backoff and the provider's insufficient-capacity record run out
(3 minutes each), after which

* a new burst goes to ``spot`` again (the weight order holds once the backoff is over), and
* consolidation replaces the ``od`` nodes with cheaper ``spot`` nodes of the other NodePool, one at a time
  as the ``od`` budget says, until every pod runs on ``spot`` and no ``od`` node is left.

A watch on the ``od`` NodeClaims records how many carry a deletionTimestamp at once (never above the budget)
and that no new ``od`` NodeClaim appears after the recovery. The seconds from recovery to every pod on
``spot`` are printed (a figure, never asserted).
"""

from __future__ import annotations

import collections.abc
import contextlib
import time
from typing import Any

import anyio
import attrs
import pytest

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Daemons = collections.abc.Callable[..., e2e.DaemonProcess]

REPLICAS = 20
BURST = 10
OD_BUDGET = 1
RECOVERY_TIMEOUT = 600.0
"""The backoff (3 minutes) and the provider's record (3 minutes) run out first, then one node at a time."""


def pool(
    name: str,
    node_class: str,
    shared_label: str,
    capacity_type: str,
    weight: int,
    *extra: dict[str, Any],
    **spec: Any,
) -> dict[str, Any]:
    body = e2e.nodepool(
        name,
        node_class,
        requirements=[
            {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": [capacity_type]},
            *extra,
        ],
        weight=weight,
        **spec,
    )
    body["spec"]["template"]["metadata"]["labels"] = {"e2e/pool": shared_label}
    return body


@attrs.define
class PoolWatch:
    """What a watch on one NodePool's NodeClaims saw: the most deleting at once, the names it saw added."""

    deleting: set[str] = attrs.field(factory=set)
    most_deleting: int = 0
    deleted: set[str] = attrs.field(factory=set)
    added: set[str] = attrs.field(factory=set)

    def see(self, kind: str, obj: dict[str, Any]) -> None:
        name = str(obj["metadata"]["name"])
        if kind == "ADDED":
            self.added.add(name)
        if kind == "DELETED":
            self.deleting.discard(name)
            self.deleted.add(name)
        elif obj["metadata"].get("deletionTimestamp"):
            self.deleting.add(name)
            self.most_deleting = max(self.most_deleting, len(self.deleting))


async def watch_pool(kube: KubeClient, nodepool: str, seen: PoolWatch, resource_version: str) -> None:
    """Follow ``nodepool``'s NodeClaims into ``seen`` until cancelled, resuming where a watch ended."""
    selector = f"{labels.LABEL_NODEPOOL}={nodepool}"
    while True:
        stream = kube.watch(
            resources.NODECLAIMS,
            resource_version=resource_version,
            label_selector=selector,
            timeout_seconds=60,
        )
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if event.resource_version:
                    resource_version = event.resource_version
                if event.type != "BOOKMARK":
                    seen.see(event.type, event.object)


async def pods_on(kube: KubeClient, namespace: str, nodepool: str, replicas: int) -> bool:
    """All ``replicas`` pods Running, each on a Node of ``nodepool``."""
    pods = (await kube.list(resources.PODS, namespace, label_selector="app=burst")).items
    if len(pods) != replicas or any(p.get("status", {}).get("phase") != "Running" for p in pods):
        return False
    nodes = {
        n["metadata"]["name"]
        for n in (
            await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={nodepool}")
        ).items
    }
    return all(p["spec"].get("nodeName") in nodes for p in pods)


async def claims_of(kube: KubeClient, nodepool: str) -> list[dict[str, Any]]:
    selector = f"{labels.LABEL_NODEPOOL}={nodepool}"
    return list((await kube.list(resources.NODECLAIMS, label_selector=selector)).items)


async def test_pods_move_back_to_the_preferred_pool_when_it_recovers_within_the_budget(
    kube: KubeClient, daemons: Daemons, namespace: str, name: str
) -> None:
    spot, od, flaky = f"{name}-spot", f"{name}-od", f"{name}-ice"
    await kube.create(
        e2e.KWOK_NODE_CLASSES,
        {"metadata": {"name": flaky}, "spec": {"insufficientCapacity": [{"capacityType": "spot"}]}},
    )
    await kube.create(e2e.KWOK_NODE_CLASSES, {"metadata": {"name": od}, "spec": {}})
    await kube.create(resources.NODEPOOLS, pool(spot, flaky, name, "spot", 100))
    od_disruption = {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": "5s",
        "budgets": [{"nodes": str(OD_BUDGET)}],
    }
    # 8-CPU on-demand nodes only, so the fallback needs several (one 32-CPU node would cost the same)
    eight = {"key": "kwok.nodesmith.io/instance-cpu", "operator": "In", "values": ["8"]}
    await kube.create(
        resources.NODEPOOLS, pool(od, od, name, "on-demand", 1, eight, disruption=od_disruption)
    )
    daemon = daemons()
    try:
        await daemon.wait_ready()
        await kube.create(e2e.DEPLOYMENTS, e2e.deployment("burst", namespace, REPLICAS, pool=name), namespace)
        await e2e.eventually(lambda: pods_on(kube, namespace, od, REPLICAS), 300, "the burst Running on od")
        fallback = {c["metadata"]["name"] for c in await claims_of(kube, od)}
        assert len(fallback) > OD_BUDGET  # else the budget would hold by itself

        async def backed_off() -> bool:
            status = (await kube.get(resources.NODEPOOLS, spot)).get("status") or {}
            return any(
                c["type"] == "CapacityAvailable" and c["status"] == "False"
                for c in status.get("conditions") or ()
            )

        # the status reconciler writes the backoff on its own pass, which may come after the pods run
        await e2e.eventually(backed_off, 60, f"CapacityAvailable=False on {spot}")
        listed = await kube.list(resources.NODECLAIMS, label_selector=f"{labels.LABEL_NODEPOOL}={od}")
        seen = PoolWatch()
        async with anyio.create_task_group() as group:
            group.start_soon(watch_pool, kube, od, seen, listed.resource_version)
            # Spot recovers.
            await kube.merge_patch(e2e.KWOK_NODE_CLASSES, flaky, {"spec": {"insufficientCapacity": []}})
            recovered = time.monotonic()

            # 1. Once the pool's backoff is over (status no longer CapacityAvailable=False) and spot
            #    launches again, a new burst goes to spot.
            async def backoff_over() -> bool:
                return not await backed_off()

            await e2e.eventually(backoff_over, RECOVERY_TIMEOUT, f"{spot}'s capacity backoff to end")

            # The provider's own insufficient-capacity record may outlast the pool's backoff by the few
            # seconds between the launches that failed in flight; a spot launch that succeeded (the first
            # replacement) shows it is over too.
            async def spot_launched() -> bool:
                return any((c.get("status") or {}).get("providerID") for c in await claims_of(kube, spot))

            await e2e.eventually(spot_launched, RECOVERY_TIMEOUT, "a spot NodeClaim launched")
            await kube.merge_patch(
                e2e.DEPLOYMENTS, "burst", {"spec": {"replicas": REPLICAS + BURST}}, namespace
            )

            # 2. Consolidation moves the rest: every pod on spot, no od NodeClaim left.
            async def all_back() -> bool:
                return await pods_on(kube, namespace, spot, REPLICAS + BURST) and not await claims_of(
                    kube, od
                )

            await e2e.eventually(all_back, RECOVERY_TIMEOUT, "every pod on spot and the od nodes gone")
            seconds = time.monotonic() - recovered
            group.cancel_scope.cancel()

        spot_claims = await claims_of(kube, spot)
        print(
            f"capacity fallback return: {REPLICAS + BURST} pods Running on {spot} {seconds:.1f}s after spot "
            f"recovered; {len(fallback)} od NodeClaims replaced, at most {seen.most_deleting} deleting at "
            f"once (budget {OD_BUDGET}); {len(spot_claims)} spot NodeClaims"
        )
        assert seen.deleted >= fallback  # the od nodes went through deletion, not some other path
        assert 1 <= seen.most_deleting <= OD_BUDGET
        assert not seen.added - fallback, "no new od NodeClaim after spot recovered"
        assert all(c["metadata"]["labels"][labels.LABEL_CAPACITY_TYPE] == "spot" for c in spot_claims)
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[spot, od])
        for node_class in (flaky, od):
            with contextlib.suppress(kube_errors.NotFoundError):
                await kube.delete(e2e.KWOK_NODE_CLASSES, node_class)
