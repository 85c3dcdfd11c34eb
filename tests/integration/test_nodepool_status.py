"""NodePool status on the real control plane: validation and NodeClass readiness conditions, the Ready
they add up to, and the counter of the pool's nodes and resources."""

from __future__ import annotations

import collections.abc
import typing

import pytest

from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.reconcilers import nodepool_status
from nodesmith.runtime import telemetry
from nodesmith.state import capacity_backoff
from nodesmith_kwok import provider as kwok_provider
from tests.integration import lifecycle_harness as h

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def node_class(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = await h.make_node_class(kube, h.unique("kwok"))
    yield name
    await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, name)


def nodepool(name: str, node_class: str, taints: list[dict[str, str]] | None = None) -> dict[str, typing.Any]:
    spec: dict[str, typing.Any] = {
        "nodeClassRef": {"group": h.KWOK_GROUP, "kind": h.KWOK_KIND, "name": node_class},
        "requirements": [],
    }
    if taints:
        spec["taints"] = taints
    return {"metadata": {"name": name}, "spec": {"template": {"spec": spec}}}


async def test_a_valid_pool_with_its_nodeclass_is_ready_and_counts_its_nodes(
    kube: KubeClient, node_class: str
) -> None:
    pool = h.unique("pool")
    claim = h.unique("nc")
    await kube.create(resources.NODEPOOLS, nodepool(pool, node_class))
    try:
        async with h.running(kube) as harness:
            harness.start("nodepool_status", "lifecycle", "nodeclaim_termination", "termination")
            status = await h.eventually(
                lambda: _status(kube, pool, lambda s: h.is_true({"status": s}, "Ready")), "Ready"
            )
            assert h.is_true({"status": status}, "ValidationSucceeded")
            assert h.is_true({"status": status}, "NodeClassReady")
            assert status["nodes"] == 0
            assert status["resources"]["nodes"] == "0"

            await kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(claim, node_class, nodepool=pool))
            status = await h.eventually(lambda: _status(kube, pool, lambda s: s.get("nodes") == 1), "nodes=1")
            assert status["resources"]["cpu"] == "1"
            assert status["resources"]["nodes"] == "1"
            # the evaluated budgets: the default budget (10% rounded up) allows one of one node per reason
            by_reason = {b["reason"]: b for b in status["disruptionBudgets"]}
            assert set(by_reason) == {"Empty", "Underutilized", "Drifted"}
            assert by_reason["Empty"]["nodes"] == 1
            assert by_reason["Empty"]["allowed"] == 1
            assert by_reason["Empty"]["activeBudgets"] == ["10%"]

            await kube.delete(resources.NODECLAIMS, claim)
            await h.eventually(
                lambda: _status(kube, pool, lambda s: s.get("nodes") == 0), "nodes=0", timeout=90
            )
            assert _usage(pool) == dict.fromkeys(nodepool_status.BASE_RESOURCES, 0.0)

            # a deleted NodePool's usage is no longer exported (the next pass over any pool drops it)
            await kube.delete(resources.NODEPOOLS, pool)
            other = h.unique("pool")
            await kube.create(resources.NODEPOOLS, nodepool(other, node_class))
            try:
                await h.eventually(lambda: _is_usage_gone(pool), "the deleted NodePool's usage series gone")
            finally:
                await h.delete_quietly(kube, resources.NODEPOOLS, other)
    finally:
        await h.delete_quietly(kube, resources.NODECLAIMS, claim)
        await h.delete_quietly(kube, resources.NODEPOOLS, pool)


async def test_a_pool_without_its_nodeclass_is_not_ready(kube: KubeClient) -> None:
    pool = h.unique("pool")
    await kube.create(resources.NODEPOOLS, nodepool(pool, "no-such-nodeclass"))
    try:
        async with h.running(kube) as harness:
            harness.start("nodepool_status")
            status = await h.eventually(
                lambda: _status(
                    kube, pool, lambda s: h.condition({"status": s}, "NodeClassReady") is not None
                ),
                "NodeClassReady",
            )
            ready = h.condition({"status": status}, "NodeClassReady")
            assert ready is not None
            assert (ready["status"], ready["reason"]) == ("False", "NodeClassNotFound")
            assert (h.condition({"status": status}, "Ready") or {}).get("status") == "False"
    finally:
        await h.delete_quietly(kube, resources.NODEPOOLS, pool)


async def test_what_the_schema_cannot_catch_fails_validation_with_a_message(
    kube: KubeClient, node_class: str
) -> None:
    pool = h.unique("pool")
    duplicate = {"key": "example.com/dedicated", "effect": "NoSchedule"}
    await kube.create(resources.NODEPOOLS, nodepool(pool, node_class, taints=[duplicate, dict(duplicate)]))
    try:
        async with h.running(kube) as harness:
            harness.start("nodepool_status")
            status = await h.eventually(
                lambda: _status(
                    kube, pool, lambda s: h.condition({"status": s}, "ValidationSucceeded") is not None
                ),
                "ValidationSucceeded",
            )
            validation = h.condition({"status": status}, "ValidationSucceeded")
            assert validation is not None
            assert validation["status"] == "False"
            assert "duplicate taint example.com/dedicated:NoSchedule" in validation["message"]
            assert (h.condition({"status": status}, "Ready") or {}).get("status") == "False"
    finally:
        await h.delete_quietly(kube, resources.NODEPOOLS, pool)


async def test_a_budget_schedule_karpenters_cron_parser_rejects_fails_closed_and_is_reported(
    kube: KubeClient, node_class: str
) -> None:
    """Karpenter nodepool_budgets_test.go "should return an error indicating why the cron fails to parse":
    the API server admits ``0 0 * * tue-mon`` (the CRD pattern only counts fields); the pool stays Ready,
    allows no disruption for any reason, and says why."""
    pool = h.unique("pool")
    manifest = nodepool(pool, node_class)
    manifest["spec"]["disruption"] = {
        "budgets": [
            {"nodes": "100%", "schedule": "0 0 * * tue-mon", "duration": "1h", "reasons": ["Drifted"]}
        ]
    }
    await kube.create(resources.NODEPOOLS, manifest)
    try:
        async with h.running(kube) as harness:
            harness.start("nodepool_status")
            status = await h.eventually(
                lambda: _status(
                    kube,
                    pool,
                    lambda s: (
                        h.condition({"status": s}, "DisruptionBudgetsValid") is not None
                        and "disruptionBudgets" in s
                    ),
                ),
                "DisruptionBudgetsValid",
            )
            valid = h.condition({"status": status}, "DisruptionBudgetsValid")
            assert valid is not None
            assert (valid["status"], valid["reason"]) == ("False", "InvalidDisruptionBudgets")
            assert "beginning of range (2) beyond end of range (1)" in valid["message"]
            assert h.is_true({"status": status}, "Ready"), "provisioning is not blocked"
            assert {b["reason"]: b["allowed"] for b in status["disruptionBudgets"]} == {
                "Empty": 0,
                "Underutilized": 0,
                "Drifted": 0,
            }
    finally:
        await h.delete_quietly(kube, resources.NODEPOOLS, pool)


async def test_a_pool_whose_launches_keep_failing_shows_its_capacity_backoff_until_it_ends(
    kube: KubeClient,
) -> None:
    exhausted = await h.make_node_class(kube, h.unique("kwok"), {"insufficientCapacity": [{}]})
    pool = h.unique("pool")
    claims = [h.unique("nc") for _ in range(capacity_backoff.FAILURE_THRESHOLD)]
    await kube.create(resources.NODEPOOLS, nodepool(pool, exhausted))
    try:
        async with h.running(kube) as harness:
            harness.start("nodepool_status", "lifecycle", "nodeclaim_termination")
            for claim in claims:  # on-demand NodeClaims of the pool, each failing with insufficient capacity
                await kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(claim, exhausted, nodepool=pool))
            status = await h.eventually(
                lambda: _status(
                    kube, pool, lambda s: h.condition({"status": s}, "CapacityAvailable") is not None
                ),
                "CapacityAvailable",
            )
            condition = h.condition({"status": status}, "CapacityAvailable")
            assert condition is not None
            assert (condition["status"], condition["reason"]) == ("False", "InsufficientCapacity")
            assert "on-demand capacity backed off until" in condition["message"]
            assert f"after {len(claims)} launches failed" in condition["message"]
            assert h.is_true({"status": status}, "Ready")  # informational: the pool itself is fine

            harness.clock.step(capacity_backoff.BASE_BACKOFF)  # the backoff is over: the condition goes
            await h.eventually(
                lambda: _status(
                    kube, pool, lambda s: h.condition({"status": s}, "CapacityAvailable") is None
                ),
                "CapacityAvailable cleared",
            )
    finally:
        for claim in claims:
            await h.delete_quietly(kube, resources.NODECLAIMS, claim)
        await h.delete_quietly(kube, resources.NODEPOOLS, pool)
        await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, exhausted)


async def _status(
    kube: KubeClient, name: str, predicate: collections.abc.Callable[[dict[str, typing.Any]], bool]
) -> dict[str, typing.Any] | None:
    status = (await kube.get(resources.NODEPOOLS, name)).get("status") or {}
    return status if status and predicate(status) else None


def _usage(pool: str) -> dict[str, float]:
    """``nodesmith_nodepools_usage`` of ``pool`` on this process's /metrics, by resource type."""
    telemetry.setup()
    found = {}
    for line in telemetry.prometheus_text().decode().splitlines():
        if line.startswith("nodesmith_nodepools_usage{") and f'nodepool="{pool}"' in line:
            resource = line.split('resource_type="', 1)[1].split('"', 1)[0]
            found[resource] = float(line.rsplit(" ", 1)[1])
    return found


async def _is_usage_gone(pool: str) -> bool:
    return not _usage(pool)
