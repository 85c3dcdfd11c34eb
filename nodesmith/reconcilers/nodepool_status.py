"""``nodepool.status``: a NodePool's status -- ``ValidationSucceeded`` (what the CRD schema cannot check,
`nodesmith.api.nodepool.runtime_errors`), ``NodeClassReady`` (its NodeClass exists and is not un-Ready),
the ``Ready`` they add up to, two informational conditions -- ``DisruptionBudgetsValid`` (False while a
budget schedule cannot be evaluated and disruption therefore fails closed) and ``CapacityAvailable``
(False, with until when, while the pool is backed off for want of capacity:
`nodesmith.state.capacity_backoff`) -- and the counter (``status.resources``: the capacity of its nodes plus
``nodes``; ``status.nodes``).

Fed by the cluster state: `statepoll` enqueues a NodePool when it changes, and every pool is recounted
every `RESYNC` seconds (its nodes change without the pool changing). NodeClasses are read from the state
too (the provider's NodeClass kinds are informed). Writes the status subresource, guarded by
resourceVersion, only when something changed; records ``nodesmith_nodepools_usage``. Karpenter's
``nodepool/{validation,readiness,counter}`` controllers in one (spec §1.3).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from nodesmith import metrics
from nodesmith.api import budgets as api_budgets
from nodesmith.api import conditions
from nodesmith.api import nodepool as api_nodepool
from nodesmith.clock import Clock
from nodesmith.disruption import budgets
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.reconcilers import statepoll
from nodesmith.state import capacity_backoff
from nodesmith.state.changes import Change
from nodesmith.state.cluster import ClusterState
from nodesmith.state.snapshot import Snapshot

__all__ = ["BASE_RESOURCES", "RESYNC", "NodePoolStatusReconciler", "node_class_readiness"]

Condition = conditions.ConditionType
Status = conditions.ConditionStatus

RESYNC: Final = 5.0
"""Seconds between two recounts of a pool (Karpenter's counter: 5s)."""
BASE_RESOURCES: Final = ("cpu", "memory", "pods", "ephemeral-storage", "nodes")
"""Always present in ``status.resources`` (zero when the pool has no nodes), as Karpenter writes them."""


def node_class_readiness(
    pool: api_nodepool.NodePool, node_class: Mapping[str, Any] | None, watched: bool
) -> tuple[Status, str, str]:
    """``NodeClassReady`` as (status, reason, message): False when the NodeClass kind is not one the
    provider serves, when the object is missing, or when its ``Ready`` condition is False; True otherwise
    (a NodeClass without conditions, like kwok's, is ready by existing)."""
    ref = pool.spec.template.spec.node_class_ref
    if not watched:
        return (
            Status.FALSE,
            "UnsupportedNodeClass",
            f"{ref.kind}.{ref.group} is not served by the cloud provider",
        )
    if node_class is None:
        return Status.FALSE, "NodeClassNotFound", f"{ref.kind} {ref.name!r} not found"
    for condition in (node_class.get("status") or {}).get("conditions") or ():
        if condition.get("type") == Condition.READY and condition.get("status") == "False":
            return (
                Status.FALSE,
                "NodeClassNotReady",
                str(condition.get("message") or f"{ref.kind} {ref.name!r} is not ready"),
            )
    return Status.TRUE, Condition.NODE_CLASS_READY, ""


@typing.final
@attrs.define(eq=False)
class NodePoolStatusReconciler:
    """Per NodePool; see the module docstring."""

    kube: KubeClient
    state: ClusterState
    clock: Clock
    workers: int = 2
    resync: float = RESYNC
    poll_interval: float = statepoll.DEFAULT_INTERVAL
    budget_history: Callable[[], Sequence[budgets.Started]] = tuple
    """Disruptions started lately (the orchestrator's), so time-window budgets show their use."""
    backoff: capacity_backoff.CapacityBackoff = attrs.field(factory=capacity_backoff.CapacityBackoff)
    """NodePools backed off for want of capacity (fed by the NodeClaim lifecycle), shown in their status."""
    feed: statepoll.Feed[str] = attrs.field(init=False)

    @feed.default
    def _feed(self) -> statepoll.Feed[str]:
        return statepoll.Feed.build(
            self.name,
            self.reconcile,
            self.state,
            statepoll.NODEPOOLS,
            self.clock,
            workers=self.workers,
            interval=self.poll_interval,
        )

    def on_change(self, change: Change) -> None:
        """Subscribed to the cluster state by the composition root."""
        self.feed.on_change(change)

    @property
    def name(self) -> str:
        return "nodepool.status"

    async def run(self) -> None:
        """Keep every NodePool's status current, until cancelled (then stop reporting usage: another
        replica takes over)."""
        try:
            await self.feed.run()
        finally:
            metrics.NODEPOOLS_USAGE.clear()

    async def reconcile(self, name: str) -> float | None:
        """One pass over the NodePool ``name``; returns seconds to requeue after, or ``None``."""
        return await statepoll.settle(self._reconcile, name)

    async def _reconcile(self, name: str) -> float | None:
        snapshot = self.state.snapshot()
        pool = snapshot.nodepools.get(name)
        # 1. gone → nothing to do (its usage is no longer reported, its capacity backoff forgotten)
        metrics.NODEPOOLS_USAGE.retain("nodepool", snapshot.nodepools)
        if pool is None:
            self.backoff.forget([name])
            return None
        now = self.clock.now()
        updated = pool
        # 2. validation: what the CRD schema could not catch becomes ValidationSucceeded=False with a message
        problems = api_nodepool.runtime_errors(pool, snapshot.well_known_labels)
        if problems:
            updated = updated.with_condition(
                Condition.VALIDATION_SUCCEEDED,
                False,
                now=now,
                reason="NodePoolValidationFailed",
                message="; ".join(problems),
            )
        else:
            updated = updated.with_condition(Condition.VALIDATION_SUCCEEDED, True, now=now)
        # 2b. budgets Karpenter's cron parser would reject: disruption fails closed; say why (set only once
        #     there is a problem, then kept current)
        budget_problems = api_budgets.problems(pool.spec.disruption.budgets, now)
        if budget_problems or pool.condition(Condition.DISRUPTION_BUDGETS_VALID) is not None:
            updated = updated.with_condition(
                Condition.DISRUPTION_BUDGETS_VALID,
                not budget_problems,
                now=now,
                reason="InvalidDisruptionBudgets" if budget_problems else None,
                message="; ".join(budget_problems) + (" (no disruptions allowed)" if budget_problems else ""),
            )
        # 3. readiness: the NodeClass exists and is not un-Ready
        status, reason, message = node_class_readiness(pool, *self._node_class(snapshot, pool))
        updated = updated.with_condition(
            Condition.NODE_CLASS_READY, status, now=now, reason=reason, message=message
        )
        # 4. capacity: a backoff in force shows as CapacityAvailable=False, with until when; gone once over
        active = self.backoff.active(now, name)
        if active:
            updated = updated.with_condition(
                Condition.CAPACITY_AVAILABLE,
                False,
                now=now,
                reason="InsufficientCapacity",
                message="; ".join(backoff.message() for backoff in active),
            )
        elif updated.condition(Condition.CAPACITY_AVAILABLE) is not None:
            cleared = api_nodepool.CONDITION_TYPES.clear(
                updated.status.conditions, Condition.CAPACITY_AVAILABLE
            )
            updated = attrs.evolve(updated, status=attrs.evolve(updated.status, conditions=cleared))
        # 5. counter, once every Node and NodeClaim is known (a partial count would under-report limits)
        if self.state.synced():
            used = snapshot.nodepool_resources(name)
            totals = dict.fromkeys(BASE_RESOURCES, 0) | used
            updated = attrs.evolve(
                updated, status=attrs.evolve(updated.status, resources=totals, nodes=totals["nodes"] // 1000)
            )
            for resource, value in totals.items():
                metrics.NODEPOOLS_USAGE.put(value / 1000, {"nodepool": name, "resource_type": resource})
            evaluated = tuple(budgets.evaluated_budgets(pool, snapshot.nodes, now, self.budget_history()))
            updated = attrs.evolve(updated, status=attrs.evolve(updated.status, disruption_budgets=evaluated))
        # 6. write the status when it changed; recount after RESYNC
        if updated.status != pool.status:
            await self.kube.update_status(
                resources.NODEPOOLS,
                name,
                updated.status.to_dict(),
                resource_version=pool.metadata.resource_version,
            )
        return self.resync

    def _node_class(
        self, snapshot: Snapshot, pool: api_nodepool.NodePool
    ) -> tuple[Mapping[str, Any] | None, bool]:
        ref = pool.spec.template.spec.node_class_ref
        for resource in self.state.node_classes:
            if resource.group == ref.group and resource.kind == ref.kind:
                return snapshot.of(resource).get(ref.name), True
        return None, False
