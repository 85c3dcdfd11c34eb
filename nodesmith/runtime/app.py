"""The daemon: one anyio task group hosting the informers, the health and metrics endpoints, leader
election and — while this process leads — the reconcilers.

``nodesmith run`` calls :func:`run` with validated settings. Start-up order: telemetry → Kubernetes client →
plugins and provider (checked loudly) → cluster state and informers → ``/healthz``, ``/readyz``, ``/metrics``
and ``/decisions`` (the recent decisions, `decisions.DecisionLog`) → leader election → reconcilers.
Informers run in standbys too, so a takeover starts with a warm cache.
SIGTERM/SIGINT cancel the group; the elector releases the lease on the way out.
"""

from __future__ import annotations

import logging
import signal
import socket
import uuid

import anyio
import attrs

from nodesmith import metrics
from nodesmith.clock import SYSTEM, Clock
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import (
    Closable,
    CloudProvider,
    ProviderContext,
    ReportsReadiness,
    RunsInBackground,
)
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.kube.leases import LeaseClient
from nodesmith.reconcilers import Reconciler, controllers
from nodesmith.reconcilers import disruption as disruption_loop
from nodesmith.runtime import http, leader, memory, telemetry
from nodesmith.runtime.decisions import DecisionLog
from nodesmith.runtime.settings import Settings
from nodesmith.state import simulation
from nodesmith.state.cluster import ClusterState
from nodesmith.state.informer import DEFAULT_RESOURCES, Informers

__all__ = ["Daemon", "run"]

log = logging.getLogger(__name__)

LEADER: object = metrics.meter.create_up_down_counter(
    "nodesmith_leader", description="1 while this process holds the leader lease."
)


@attrs.define
class Daemon:
    """The running process's collaborators, kept so tests and the health endpoints can look at them."""

    settings: Settings
    kube: KubeClient
    plugins: manager.Plugins
    state: ClusterState
    informers: Informers
    reconcilers: list[Reconciler]
    elector: leader.LeaderElector | None
    provider: CloudProvider
    decisions: DecisionLog = attrs.field(factory=DecisionLog)
    ports: dict[str, int] = attrs.field(factory=dict)

    @classmethod
    async def build(
        cls,
        settings: Settings,
        *,
        plugins: manager.Plugins | None = None,
        clock: Clock = SYSTEM,
        disruption: disruption_loop.Options | None = None,
    ) -> Daemon:
        """Connect, load plugins, build the provider, state, informers and reconcilers (no task started).

        ``clock`` is the one clock everything that reads time is given (tests pass a stepped one).
        ``disruption`` replaces the disruption loop's timings (the e2e scenarios shorten the validation
        delay and poll interval); the SpotToSpotConsolidation gate still decides ``spot_to_spot``."""
        spot_to_spot = settings.gate("SpotToSpotConsolidation")
        disruption = attrs.evolve(disruption or disruption_loop.Options(), spot_to_spot=spot_to_spot)
        kube = await KubeClient.connect(settings.kubeconfig)
        plugins = plugins or manager.Plugins.load()
        provider = plugins.cloud_provider(
            settings.provider, ProviderContext(settings.cluster_name, settings.provider_settings, kube, clock)
        )
        node_classes = [
            resources.node_class(kind.group, kind.kind, version=kind.version)
            for kind in provider.supported_node_classes()
        ]
        state = ClusterState(
            clock=clock.now, node_classes=node_classes, well_known_labels=plugins.well_known_labels()
        )
        default_spread = settings.default_spread()
        kinds = (*DEFAULT_RESOURCES, *(simulation.WORKLOAD_RESOURCES if default_spread is not None else ()))
        informers = Informers.for_state(
            kube, state, node_classes=node_classes, kinds=kinds, sleep=clock.sleep
        )
        reconcilers = controllers.build(
            controllers.Collaborators(
                kube=kube,
                state=state,
                provider=provider,
                plugins=plugins,
                events=EventRecorder(kube, clock=clock),
                clock=clock,
                batch_idle=settings.batch_idle_duration,
                batch_max=settings.batch_max_duration,
                cluster_name=settings.cluster_name,
                replace_on_rebalance=settings.gate("RebalanceReplacement"),
                node_repair=settings.gate("NodeRepair"),
                default_spread=default_spread,
                disruption=disruption,
            )
        )
        identity = settings.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        elector = None
        if settings.leader_election:
            elector = leader.LeaderElector(
                LeaseClient(kube, identity, clock=clock),
                settings.leader_election_name,
                settings.leader_election_namespace,
                settings.lease_duration,
                settings.renew_deadline,
                settings.retry_period,
                clock=clock,
                on_change=lambda leading: LEADER.add(1 if leading else -1),  # type: ignore[attr-defined]
            )
        decisions = DecisionLog()
        plugins.register(decisions, "nodesmith.decisions")
        return cls(settings, kube, plugins, state, informers, reconcilers, elector, provider, decisions)

    # -- endpoints ---------------------------------------------------------------------------------

    async def healthz(self) -> http.Response:
        return 200, "text/plain", b"ok\n"

    async def readyz(self) -> http.Response:
        """Ready once every informer has listed its resource (which also proves the CRDs are installed) and
        the provider, if it says so, can work (e.g. the AWS provider has discovered its instance types)."""
        pending = sorted(name for name, synced in self.informers.synced_status().items() if not synced)
        if pending:
            return 503, "text/plain", ("waiting for informers: " + ", ".join(pending) + "\n").encode()
        problem = self.provider.not_ready() if isinstance(self.provider, ReportsReadiness) else None
        if problem:
            return 503, "text/plain", f"provider {self.provider.name} not ready: {problem}\n".encode()
        return 200, "text/plain", b"ok\n"

    async def metrics(self) -> http.Response:
        return 200, telemetry.CONTENT_TYPE, telemetry.prometheus_text()

    # -- running -----------------------------------------------------------------------------------

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled (or until leadership is lost, which raises ``LeadershipLost``)."""
        async with anyio.create_task_group() as group:
            routes: dict[str, http.Handler] = {
                "/healthz": self.healthz,
                "/readyz": self.readyz,
                "/decisions": self.decisions.serve,
            }
            if self.settings.metrics_port and self.settings.metrics_port != self.settings.health_port:
                self.ports["metrics"] = await group.start(
                    http.serve, self.settings.metrics_port, {"/metrics": self.metrics}
                )
            else:
                routes["/metrics"] = self.metrics
            if self.settings.health_port or not self.settings.metrics_port:
                self.ports["health"] = await group.start(http.serve, self.settings.health_port, routes)
            await group.start(self.informers.run)
            if isinstance(self.provider, RunsInBackground):
                await group.start(self.provider.run)
            task_status.started()
            log.info("nodesmith started", extra={"provider": self.settings.provider, "ports": self.ports})
            if self.elector is None:
                await self._lead()
            else:
                await self.elector.run(self._lead)
            group.cancel_scope.cancel()

    async def _lead(self) -> None:
        await self.informers.wait_synced()
        log.info("informers synced; starting %d reconcilers", len(self.reconcilers))
        async with anyio.create_task_group() as group:
            for reconciler in self.reconcilers:
                group.start_soon(reconciler.run, name=reconciler.name)
            await anyio.sleep_forever()  # lead until cancelled, even with nothing to run


async def run(settings: Settings, *, traces: str = "none") -> None:
    """Run the daemon until SIGTERM/SIGINT; ``traces`` names the span exporter (``none`` or ``console``)."""
    telemetry.setup(traces=traces)
    daemon = await Daemon.build(settings)
    async with anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for received in signals:
                    log.info("received %s; shutting down", signal.Signals(received).name)
                    group.cancel_scope.cancel()
                    return

        group.start_soon(stop_on_signal)
        group.start_soon(memory.freeze_once_synced, daemon.informers)
        try:
            await daemon.serve()
        finally:
            if isinstance(daemon.provider, Closable):
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await daemon.provider.close()
        group.cancel_scope.cancel()
