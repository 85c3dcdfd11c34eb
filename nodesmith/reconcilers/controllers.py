"""The composition root: builds every reconciler from the shared collaborators, once.

Called by the runtime after the cluster state, kube client and provider exist; returns a flat list the
runtime starts while leading. Nothing else constructs reconcilers or reaches for globals. It is also
where every reconciler that hears of changes is subscribed to the cluster state's one change feed
(`listen`), the same way for each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import attrs

from nodesmith.clock import Clock
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import (
    Reconciler,
    cost,
    garbagecollection,
    instrumented,
    interruption,
    lifecycle,
    nodeclaim_marking,
    nodeclaim_termination,
    nodepool_status,
    noderepair,
    orchestration,
    provisioner,
    staticcapacity,
    termination,
)
from nodesmith.reconcilers import disruption as disruption_loop
from nodesmith.scheduling import defaultspread
from nodesmith.state import capacity_backoff
from nodesmith.state.changes import Listener
from nodesmith.state.cluster import ClusterState

__all__ = ["Collaborators", "build", "listen"]


@attrs.frozen(slots=True, kw_only=True)
class Collaborators:
    """Everything a reconciler may be given; each takes only what it needs."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    plugins: manager.Plugins
    events: EventRecorder
    clock: Clock
    batch_idle: dt.timedelta
    batch_max: dt.timedelta
    cluster_name: str
    replace_on_rebalance: bool = False
    disruption: disruption_loop.Options = attrs.field(factory=disruption_loop.Options)
    """Disruption knobs; the runtime sets ``spot_to_spot`` from the SpotToSpotConsolidation gate."""
    default_spread: defaultspread.DefaultSpread | None = None
    """The kube-scheduler's cluster-default topology spread (``--scheduler-config``), if configured."""
    node_repair: bool = False
    """Replace Nodes the provider's repair policies call unhealthy (the NodeRepair gate)."""


def build(collaborators: Collaborators) -> list[Reconciler]:
    """Every reconciler, in start order, those that hear of changes subscribed to the state's feed."""
    c = collaborators
    provider = instrumented.InstrumentedProvider(c.provider)
    queue = orchestration.Orchestrator(
        c.kube, c.state, c.events, c.clock, min_timeout=c.disruption.queue_timeout
    )
    backoff = capacity_backoff.CapacityBackoff()
    provisioning = provisioner.Provisioner(
        kube=c.kube,
        state=c.state,
        provider=provider,
        plugins=c.plugins,
        events=c.events,
        clock=c.clock,
        batch_idle=c.batch_idle,
        batch_max=c.batch_max,
        backoff=backoff,
        default_spread=c.default_spread,
    )
    claim_lifecycle = lifecycle.LifecycleReconciler(
        c.kube, c.state, provider, c.events, c.clock, backoff=backoff
    )
    claim_termination = nodeclaim_termination.NodeClaimTerminationReconciler(
        c.kube, c.state, provider, c.events, c.clock
    )
    node_termination = termination.TerminationReconciler(c.kube, c.state, provider, c.events, c.clock)
    pool_status = nodepool_status.NodePoolStatusReconciler(
        c.kube, c.state, c.clock, budget_history=queue.history, backoff=backoff
    )
    marking = nodeclaim_marking.NodeClaimMarking(c.kube, c.state, provider, c.plugins, c.events, c.clock)
    listen(
        c.state, [provisioning, claim_lifecycle, claim_termination, node_termination, pool_status, marking]
    )
    reconcilers: list[Reconciler] = [
        provisioning,
        claim_lifecycle,
        claim_termination,
        node_termination,
        garbagecollection.GarbageCollector(c.kube, c.state, provider, c.events, c.clock),
        pool_status,
        staticcapacity.StaticCapacity(c.kube, c.state, c.events, c.clock),
        cost.CostReconciler(c.state, provider, c.plugins, c.clock),
        interruption.Interruption(
            c.kube, c.state, provider, c.events, c.clock, replace_on_rebalance=c.replace_on_rebalance
        ),
    ]
    if c.node_repair:
        reconcilers.append(noderepair.NodeRepair(c.kube, c.state, provider, c.events, c.clock))
    reconcilers += [
        marking,
        queue,
        disruption_loop.Disruption(
            c.kube,
            c.state,
            provider,
            c.plugins,
            c.events,
            c.clock,
            queue,
            options=c.disruption,
            backoff=backoff,
        ),
    ]
    return reconcilers


def listen(state: ClusterState, listeners: Iterable[Listener]) -> None:
    """Subscribe each listener's ``on_change`` to ``state``'s change feed: how every reconciler hears of
    changes (tests that build reconcilers by hand wire them with this too)."""
    for listener in listeners:
        state.subscribe(listener.on_change)
