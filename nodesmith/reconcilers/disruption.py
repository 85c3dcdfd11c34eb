"""The disruption loop: find one thing worth disrupting, check it again after a pause, hand it to the
orchestration queue (spec §4.1; Karpenter's ``disruption/controller.go``).

A singleton. Every ``poll_interval`` (10 s), or at once after it started a command:

1. wait for the synced gate (a NodeClaim without a providerID means the state is not complete);
2. remove the disrupted taint from nodes that carry it but are neither queued nor marked for deletion
   (a crash between tainting and queueing leaves such nodes behind);
3. snapshot the state, read each NodePool's instance types from the provider (a capacity type the
   provisioner has backed off for a NodePool counts as unavailable there, so no replacement is planned
   into an exhausted pool; once the backoff is over, consolidation may move pods back to it), index the
   PDBs;
4. run the methods in order -- emptiness, drift, multi-node consolidation, single-node consolidation --
   each in a worker thread (pure code from `nodesmith.disruption`, simulations through
   `nodesmith.state.simulation.consolidation_simulator`); the first that yields a command wins;
5. except for drift, wait ``validation_delay`` (15 s) and validate the command against a fresh snapshot;
   a command that no longer holds is dropped and the next method runs on a fresh snapshot, in the same
   pass (Karpenter: multi-node rejected at validation → single-node);
6. give it to `orchestration.Orchestrator.start`.

Consolidation methods are skipped while nothing they read has changed since they last found nothing
(the state's consolidation timestamp, which NodeClaims are consolidatable, and which offerings are
unavailable -- so capacity coming back is noticed at once, not at the next 5-minute refresh). Every
decision -- command or not, with every rejection -- is kept (the last 100, for ``explain``), handed to the plugins'
decision observers, and each rejection worth telling becomes an event on its node (``DisruptionBlocked``,
``Unconsolidatable``, ``ConsolidationRejected``); a NodePool whose budget allows nothing gets a
``DisruptionBlocked`` event too.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio
import attrs
from opentelemetry import trace

from nodesmith import metrics
from nodesmith.api import conditions, labels
from nodesmith.api import nodepool as api_nodepool
from nodesmith.clock import Clock
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import (
    budgets,
    candidates,
    consolidation,
    validation,
)
from nodesmith.disruption.commands import Command, Method, Outcome, Rejection
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import orchestration
from nodesmith.state import capacity_backoff, simulation
from nodesmith.state.cluster import ClusterState
from nodesmith.state.snapshot import Snapshot

__all__ = ["METHODS", "DecisionRecord", "Disruption", "Options"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("nodesmith")

METHODS: Final = (Method.EMPTINESS, Method.DRIFT, Method.MULTI_NODE, Method.SINGLE_NODE)
_CONSOLIDATION: Final = frozenset({Method.MULTI_NODE, Method.SINGLE_NODE})


@attrs.frozen(slots=True, kw_only=True)
class Options:
    """Disruption's knobs (Karpenter's constants and feature gate)."""

    validation_delay: dt.timedelta = dt.timedelta(seconds=15)
    poll_interval: dt.timedelta = dt.timedelta(seconds=10)
    spot_to_spot: bool = False
    multi_node_timeout: dt.timedelta = dt.timedelta(minutes=1)
    single_node_timeout: dt.timedelta = dt.timedelta(minutes=3)
    drift_timeout: dt.timedelta = dt.timedelta(minutes=1)
    queue_timeout: dt.timedelta = dt.timedelta(minutes=10)
    kept_decisions: int = 100


@attrs.frozen(slots=True)
class DecisionRecord:
    """One method run as ``explain`` and decision observers see it."""

    at: dt.datetime
    outcome: Outcome
    validated: Command | Rejection | None
    """The command after validation, the validation failure, or ``None`` when not validated."""
    started: bool
    duration: float
    ineligible: tuple[Rejection, ...] = ()
    """Why the other nodes were not candidates at all (do-not-disrupt, PDB, not initialized, ...)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "disruption", "at": self.at.isoformat(), **self.outcome.to_dict()}
        # bounded: a record per method pass is kept, and a big cluster has thousands of ineligible nodes
        out["ineligible"] = [r.to_dict() for r in self.ineligible[:MAX_RECORDED_REJECTIONS]]
        out["ineligible_by_reason"] = dict(collections.Counter(r.reason.value for r in self.ineligible))
        if isinstance(self.validated, Rejection):
            out["validation"] = self.validated.to_dict()
        out["started"] = self.started
        out["duration_seconds"] = round(self.duration, 4)
        return out


MAX_RECORDED_REJECTIONS: Final = 200
"""Ineligible nodes listed in one decision record (all are counted by reason)."""


@attrs.define
class Disruption:
    """The singleton disruption loop; build through ``controllers.build``."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    plugins: manager.Plugins
    events: EventRecorder
    clock: Clock
    orchestrator: orchestration.Orchestrator
    options: Options = Options()
    name: str = "disruption"
    backoff: capacity_backoff.CapacityBackoff = attrs.field(
        kw_only=True, factory=capacity_backoff.CapacityBackoff
    )
    """The provisioner's NodePool capacity backoffs (shared through the composition root): a replacement is
    never planned on a capacity type the provisioner would not launch either."""
    decisions: collections.deque[DecisionRecord] = attrs.field(init=False)
    _consolidated: dict[Method, object] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.decisions = collections.deque(maxlen=self.options.kept_decisions)

    async def run(self) -> None:
        """Loop until cancelled; one failed pass is logged and the loop goes on. Once stopped, its gauges
        report nothing (another replica takes over)."""
        try:
            while True:
                try:
                    with tracer.start_as_current_span("disruption.reconcile"):
                        acted = await self.reconcile()
                except Exception:
                    log.exception("disruption pass failed")
                    metrics.RECONCILE_ERRORS.add(1, {"reconciler": self.name})
                    acted = False
                await self.clock.sleep(0 if acted else self.options.poll_interval.total_seconds())
        finally:
            metrics.DISRUPTION_ELIGIBLE_NODES.clear()
            metrics.NODEPOOLS_ALLOWED_DISRUPTIONS.clear()

    async def reconcile(self) -> bool:
        """One pass; True when a command was started."""
        # 1. Not synced → decide nothing (a launch in flight is not in the snapshot yet).
        if not self.state.synced():
            return False
        # 2. Crash recovery: disrupted taints on nodes nothing is disrupting.
        snapshot = self.state.snapshot()
        await self._untaint_strays(snapshot)
        # 3. Inputs shared by every method.
        instance_types = await self._instance_types(snapshot)
        unavailable = _unavailable(instance_types)
        for method in METHODS:
            started = await self._run_method(method, snapshot, instance_types, unavailable)
            if started is not None:
                return started
            # 4. Nothing started (no command, or validation rejected it): the next method decides on the
            #    state as it is now (a validation delay may have passed).
            if not self.state.synced():
                return False
            snapshot = self.state.snapshot()
        return False

    # -- one method ----------------------------------------------------------------------------------

    def _decide(
        self,
        method: Method,
        snapshot: Snapshot,
        instance_types: Mapping[str, Sequence[InstanceType]],
        queued: frozenset[str],
        history: Sequence[budgets.Started],
    ) -> tuple[Outcome, list[Rejection]]:
        """Pure: the method's outcome on this snapshot, plus the eligibility rejections (worker thread)."""
        started = self.clock.monotonic()
        timeout = {
            Method.MULTI_NODE: self.options.multi_node_timeout,
            Method.SINGLE_NODE: self.options.single_node_timeout,
        }.get(method, self.options.drift_timeout)
        limit = started + timeout.total_seconds()

        def deadline() -> bool:
            return self.clock.monotonic() > limit

        outcome, found, rejected = simulation.disruption_outcome(
            method,
            snapshot,
            instance_types,
            queued=queued,
            history=history,
            options=consolidation.Options(spot_to_spot=self.options.spot_to_spot),
            deadline=deadline,
        )
        metrics.DISRUPTION_ELIGIBLE_NODES.put(len(found), {"method": method.value})
        metrics.DISRUPTION_EVALUATION_DURATION.record(
            self.clock.monotonic() - started, {"method": method.value}
        )
        return outcome, rejected

    def _validate(
        self,
        command: Command,
        snapshot: Snapshot,
        instance_types: Mapping[str, Sequence[InstanceType]],
        queued: frozenset[str],
        history: Sequence[budgets.Started],
    ) -> Command | Rejection:
        ctx = simulation.disruption_context(snapshot, instance_types, queued)
        found, _ = candidates.evaluate_all(snapshot.nodes, ctx, candidates.DisruptionClass.GRACEFUL)
        allowance = budgets.mapping(
            snapshot.nodepools.values(),
            snapshot.nodes,
            command.reason,
            snapshot.taken_at,
            history,
        )
        simulate = simulation.consolidation_simulator(snapshot, instance_types)
        return validation.validate(
            command, found, allowance, simulate, consolidation.Options(spot_to_spot=self.options.spot_to_spot)
        )

    def _signature(self, snapshot: Snapshot, unavailable: frozenset[tuple[str, str, str, str]]) -> object:
        consolidatable = frozenset(
            n.key
            for n in snapshot.nodes
            if n.nodeclaim is not None and n.nodeclaim.is_true(conditions.ConditionType.CONSOLIDATABLE)
        )
        return (snapshot.consolidation_state, consolidatable, self.orchestrator.queued_keys(), unavailable)

    async def _run_method(
        self,
        method: Method,
        snapshot: Snapshot,
        instance_types: Mapping[str, Sequence[InstanceType]],
        unavailable: frozenset[tuple[str, str, str, str]],
    ) -> bool | None:
        """Run one method; ``None`` when it found nothing or validation rejected its command (try the next),
        else whether it started."""
        signature = self._signature(snapshot, unavailable) if method in _CONSOLIDATION else None
        if method in _CONSOLIDATION and self._consolidated.get(method) == signature:
            return None
        began = self.clock.monotonic()
        queued, history = self.orchestrator.queued_keys(), self.orchestrator.history()
        outcome, rejected = await anyio.to_thread.run_sync(
            lambda: self._decide(method, snapshot, instance_types, queued, history)
        )
        await self._report_budgets(method, outcome, snapshot)
        await self._publish(snapshot, [*rejected, *outcome.rejections])
        command = outcome.command
        if command is None:
            if method in _CONSOLIDATION and not outcome.timed_out:
                self._consolidated[method] = signature
            self._record(outcome, None, False, began, rejected)
            return None
        # Validate after the delay (drift acts at once, as Karpenter's drift does).
        validated: Command | Rejection = command
        if method is not Method.DRIFT:
            await self.clock.sleep(self.options.validation_delay.total_seconds())
            if not self.state.synced():
                self._record(outcome, None, False, began, rejected)
                return False
            fresh = self.state.snapshot()
            queued, history = self.orchestrator.queued_keys(), self.orchestrator.history()
            validated = await anyio.to_thread.run_sync(
                lambda: self._validate(command, fresh, instance_types, queued, history)
            )
        if isinstance(validated, Rejection):
            # as Karpenter: a command that no longer holds is no command, and the next method may try
            metrics.DISRUPTION_VALIDATION_FAILURES.add(1, {"method": method.value})
            await self._publish(snapshot, [validated])
            self._record(outcome, validated, False, began, rejected)
            return None
        started = await self.orchestrator.start(validated)
        log.info(
            "disruption %s: %s", "started" if started else "could not start", validated.describe(),
            extra={"method": method.value},
        )  # fmt: skip
        self._record(outcome, validated, started, began, rejected)
        return started

    # -- inputs, outputs -----------------------------------------------------------------------------

    async def _instance_types(self, snapshot: Snapshot) -> dict[str, Sequence[InstanceType]]:
        found, refused = await self.plugins.instance_types(
            self.provider, simulation.usable_nodepools(snapshot)
        )
        for pool, why in refused.items():
            log.info("no instance types for nodepool %s: %s", pool, why)
        # A backed-off capacity type is as unavailable to a replacement as to a launch for pending pods:
        # else consolidation would move pods off the fallback pool into the exhausted one and fail there.
        restricted: dict[str, Sequence[InstanceType]] = dict(
            capacity_backoff.restrict(found, self.backoff.active(self.clock.now()))
        )
        return restricted

    async def _untaint_strays(self, snapshot: Snapshot) -> None:
        queued = self.orchestrator.queued_keys()
        for node in snapshot.nodes:
            if node.node is None or node.name is None or node.marked_for_deletion or node.key in queued:
                continue
            if not any(t.key == labels.TAINT_DISRUPTED for t in node.taints):
                continue
            log.info("removing a stray disrupted taint from %s", node.name)
            try:
                await self.kube.mutate(resources.NODES, node.name, orchestration.untaint)
            except kube_errors.KubeError as err:
                log.warning("could not untaint %s: %s", node.name, err)
            if node.nodeclaim is not None and node.nodeclaim.condition(
                conditions.ConditionType.DISRUPTION_REASON
            ):
                await orchestration.clear_disruption_reason(self.kube, node.nodeclaim.name)

    async def _publish(self, snapshot: Snapshot, rejections: Sequence[Rejection]) -> None:
        by_name = {n.name: n for n in snapshot.nodes if n.name is not None}
        seen: set[tuple[str, str]] = set()
        for rejection in rejections:
            metrics.DISRUPTION_REJECTIONS.add(
                1,
                {
                    "reason": rejection.reason.value,
                    "method": rejection.method.value if rejection.method else "",
                },
            )
            if rejection.reason.quiet or (rejection.node, rejection.message) in seen:
                continue
            seen.add((rejection.node, rejection.message))
            node = by_name.get(rejection.node)
            if node is None or node.node is None:
                continue
            await self.events.publish(
                node.node.reference(),
                "Normal",
                rejection.event_reason,
                rejection.message,
            )

    async def _report_budgets(self, method: Method, outcome: Outcome, snapshot: Snapshot) -> None:
        counts = budgets.count(snapshot.nodes)
        metrics.NODEPOOLS_ALLOWED_DISRUPTIONS.drop(reason=method.reason.value)  # NodePools gone since
        for pool_name, allowed in outcome.budgets.items():
            metrics.NODEPOOLS_ALLOWED_DISRUPTIONS.put(
                min(allowed, 2**31 - 1), {"nodepool": pool_name, "reason": method.reason.value}
            )
            pool = snapshot.nodepools.get(pool_name)
            if allowed == 0 and pool is not None and counts.get(pool_name, budgets.PoolCounts()).total > 0:
                await self.events.publish(
                    _nodepool_object(pool),
                    "Normal",
                    "DisruptionBlocked",
                    f"No allowed disruptions for disruption reason {method.reason.value} due to blocking budget",
                )

    def _record(
        self,
        outcome: Outcome,
        validated: Command | Rejection | None,
        started: bool,
        began: float,
        ineligible: Sequence[Rejection],
    ) -> None:
        record = DecisionRecord(
            self.clock.now(), outcome, validated, started, self.clock.monotonic() - began, tuple(ineligible)
        )
        self.decisions.append(record)
        self.plugins.observe_decision(record.to_dict())


def _nodepool_object(pool: api_nodepool.NodePool) -> dict[str, Any]:
    return {
        "kind": api_nodepool.KIND,
        "apiVersion": api_nodepool.API_VERSION,
        "metadata": {"name": pool.name, "uid": pool.metadata.uid},
    }


def _unavailable(
    instance_types: Mapping[str, Sequence[InstanceType]],
) -> frozenset[tuple[str, str, str, str]]:
    """Every unavailable offering, per NodePool (computed once per pass). Offerings coming back -- an
    insufficient-capacity record or a NodePool's capacity backoff running out -- change what a replacement may
    be with no change to the cluster itself, so they are part of the consolidation signature."""
    return frozenset(
        (pool, it.name, o.zone, o.capacity_type)
        for pool, types in instance_types.items()
        for it in types
        for o in it.offerings
        if not o.available
    )
