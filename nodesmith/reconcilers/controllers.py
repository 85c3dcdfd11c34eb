"""The composition root: builds every reconciler from the shared collaborators, once.

Called by the runtime after the cluster state, kube client and provider exist; returns a flat list the
runtime starts while leading. Nothing else constructs reconcilers or reaches for globals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import attrs

from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import Reconciler, provisioner
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
    clock: Callable[[], dt.datetime]
    batch_idle: dt.timedelta
    batch_max: dt.timedelta
    cluster_name: str


def build(collaborators: Collaborators) -> list[Reconciler]:
    """Every reconciler, in start order."""
    c = collaborators
    reconcilers: list[Reconciler] = [
        provisioner.Provisioner(
            kube=c.kube,
            state=c.state,
            provider=c.provider,
            plugins=c.plugins,
            events=c.events,
            clock=c.clock,
            batch_idle=c.batch_idle,
            batch_max=c.batch_max,
        ),
    ]
    return reconcilers
