"""The composition root: builds every reconciler from the shared collaborators, once.

Called by the runtime after the cluster state, kube client and provider exist; returns a flat list the
runtime starts while leading. Nothing else constructs reconcilers or reaches for globals.
"""

from __future__ import annotations

import datetime as dt

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
from nodesmith.state.cluster import ClusterState

__all__ = ["Collaborators", "build"]


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
    """Every reconciler, in start order."""
    c = collaborators
    provider = instrumented.InstrumentedProvider(c.provider)
    queue = orchestration.Orchestrator(
        c.kube, c.state, c.events, c.clock, min_timeout=c.disruption.queue_timeout
    )
    backoff = capacity_backoff.CapacityBackoff()
    reconcilers: list[Reconciler] = [
        provisioner.Provisioner(
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
        ),
        lifecycle.LifecycleReconciler(c.kube, c.state, provider, c.events, c.clock, backoff=backoff),
        nodeclaim_termination.NodeClaimTerminationReconciler(c.kube, c.state, provider, c.events, c.clock),
        termination.TerminationReconciler(c.kube, c.state, provider, c.events, c.clock),
        garbagecollection.GarbageCollector(c.kube, c.state, provider, c.events, c.clock),
        nodepool_status.NodePoolStatusReconciler(
            c.kube, c.state, c.clock, budget_history=queue.history, backoff=backoff
        ),
        staticcapacity.StaticCapacity(c.kube, c.state, c.events, c.clock),
        cost.CostReconciler(c.state, provider, c.plugins, c.clock),
        interruption.Interruption(
            c.kube, c.state, provider, c.events, c.clock, replace_on_rebalance=c.replace_on_rebalance
        ),
    ]
    if c.node_repair:
        reconcilers.append(noderepair.NodeRepair(c.kube, c.state, provider, c.events, c.clock))
    reconcilers += [
        nodeclaim_marking.NodeClaimMarking(c.kube, c.state, provider, c.plugins, c.events, c.clock),
        queue,
        disruption_loop.Disruption(
            c.kube, c.state, provider, c.plugins, c.events, c.clock, queue, options=c.disruption
        ),
    ]
    return reconcilers
