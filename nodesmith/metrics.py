"""nodesmith's metric instruments, declared once through the OpenTelemetry *API*.

Reconcilers, the state cache and the provider wrapper record here; the runtime installs the SDK with a
Prometheus reader (``nodesmith.runtime.telemetry``), so until then every instrument is a cheap no-op.
Names follow Karpenter's with a ``nodesmith_`` prefix; units are seconds.

Gauges whose series must disappear (a NodePool deleted, an offering gone) are observable gauges fed by
`Readings`: the SDK's synchronous gauge (``create_gauge``) keeps reporting every attribute set it was
ever given (opentelemetry-sdk 1.45's last-value aggregation never forgets one under cumulative
temporality, and the API has no way to remove one), whereas an observable gauge reports at each
collection exactly what its callback observes then.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from typing import Final

from opentelemetry import metrics

__all__ = [
    "CLOUDPROVIDER_API_ERRORS",
    "CLOUDPROVIDER_DURATION",
    "CLOUDPROVIDER_ERRORS",
    "DISRUPTION_DECISIONS",
    "DISRUPTION_ELIGIBLE_NODES",
    "DISRUPTION_EVALUATION_DURATION",
    "DISRUPTION_QUEUE_FAILURES",
    "DISRUPTION_REJECTIONS",
    "DISRUPTION_VALIDATION_FAILURES",
    "GARBAGE_COLLECTED_INSTANCES",
    "NODECLAIMS_CREATED",
    "NODECLAIMS_DISRUPTED",
    "NODECLAIMS_INITIALIZED",
    "NODECLAIMS_INSTANCE_TERMINATION_DURATION",
    "NODECLAIMS_LAUNCHED",
    "NODECLAIMS_LAUNCH_BACKOFF",
    "NODECLAIMS_REGISTERED",
    "NODECLAIMS_TERMINATED",
    "NODECLAIMS_TERMINATION_DURATION",
    "NODEPOOLS_ALLOWED_DISRUPTIONS",
    "NODEPOOLS_COST_PER_HOUR",
    "NODEPOOLS_UNPRICED_NODES",
    "NODEPOOLS_USAGE",
    "NODES_CREATED",
    "NODES_DRAINED",
    "NODES_LIFETIME_DURATION",
    "NODES_TERMINATED",
    "NODES_TERMINATION_DURATION",
    "OFFERING_PRICE_ESTIMATE",
    "PODS_DRAINED",
    "PODS_EVICTION_REQUESTS",
    "PODS_UNSCHEDULABLE",
    "RECONCILE_ERRORS",
    "SCHEDULER_QUEUE_DEPTH",
    "SCHEDULING_DURATION",
    "Readings",
    "meter",
]

meter: Final = metrics.get_meter("nodesmith")


_Key = tuple[tuple[str, str], ...]


@typing.final
class Readings:
    """The current series of one observable gauge.

    ``publish`` swaps in a whole new set of ``(value, attributes)`` (for the one task that computes them
    all at once); ``put`` sets one series and ``drop`` removes those matching some attributes (for
    writers that learn one object at a time, and see it go). The gauge's callback, `observe`, reports the
    current set at every collection, so a series published no more is no longer exported. ``clear``
    stops exporting any (the writer stopped, or this replica stopped leading: its last figures would go
    stale). Every change swaps in a new mapping, so a collection in another thread sees either the old
    set or the new one."""

    def __init__(self) -> None:
        self._series: dict[_Key, metrics.Observation] = {}

    @staticmethod
    def _key(attributes: Mapping[str, str]) -> _Key:
        return tuple(sorted(attributes.items()))

    def publish(self, series: Iterable[tuple[float, Mapping[str, str]]]) -> None:
        self._series = {
            self._key(attributes): metrics.Observation(value, dict(attributes))
            for value, attributes in series
        }

    def put(self, value: float, attributes: Mapping[str, str]) -> None:
        self._series = {**self._series, self._key(attributes): metrics.Observation(value, dict(attributes))}

    def drop(self, **match: str) -> None:
        """Stop exporting every series whose attributes include all of ``match``."""
        wanted = set(match.items())
        self._series = {k: v for k, v in self._series.items() if not wanted <= set(k)}

    def retain(self, key: str, values: Iterable[str]) -> None:
        """Stop exporting every series whose attribute ``key`` is not one of ``values``."""
        kept = set(values)
        self._series = {k: v for k, v in self._series.items() if dict(k).get(key) in kept}

    def clear(self) -> None:
        self._series = {}

    def observe(self, options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        """The gauge's callback."""
        return tuple(self._series.values())


NODECLAIMS_CREATED: Final = meter.create_counter(
    "nodesmith_nodeclaims_created", description="NodeClaims created, by reason and NodePool."
)
NODECLAIMS_TERMINATED: Final = meter.create_counter(
    "nodesmith_nodeclaims_terminated", description="NodeClaims terminated, by reason and NodePool."
)
NODES_CREATED: Final = meter.create_counter(
    "nodesmith_nodes_created", description="Nodes registered, by NodePool."
)
NODES_TERMINATED: Final = meter.create_counter(
    "nodesmith_nodes_terminated", description="Nodes whose termination finished, by NodePool."
)
SCHEDULING_DURATION: Final = meter.create_histogram(
    "nodesmith_scheduler_scheduling_duration_seconds",
    unit="s",
    description="Time to solve one provisioning batch.",
)
SCHEDULER_QUEUE_DEPTH: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_scheduler_queue_depth",
    callbacks=[SCHEDULER_QUEUE_DEPTH.observe],
    description="Pending pods the last provisioning run took up (0 when it found none).",
)
PODS_UNSCHEDULABLE: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_pods_unschedulable",
    callbacks=[PODS_UNSCHEDULABLE.observe],
    description="Pods the last provisioning run could place nowhere (0 when it placed all).",
)
CLOUDPROVIDER_DURATION: Final = meter.create_histogram(
    "nodesmith_cloudprovider_duration_seconds",
    unit="s",
    description="Cloud provider call duration, by method.",
)
CLOUDPROVIDER_ERRORS: Final = meter.create_counter(
    "nodesmith_cloudprovider_errors", description="Cloud provider call errors, by method and error."
)
CLOUDPROVIDER_API_ERRORS: Final = meter.create_counter(
    "nodesmith_cloudprovider_api_errors",
    description="Failed attempts of the provider's cloud API calls, retries included, by service, operation "
    "and error code (RequestLimitExceeded, InternalError, ReadTimeoutError...).",
)
RECONCILE_ERRORS: Final = meter.create_counter(
    "nodesmith_reconcile_errors", description="Errors caught at a reconciler's loop boundary, by reconciler."
)

# -- NodeClaim lifecycle, termination, garbage collection (nodesmith.reconcilers.lifecycle & co.) --------

NODECLAIMS_LAUNCHED: Final = meter.create_counter(
    "nodesmith_nodeclaims_launched", description="NodeClaims launched by the cloud provider, by NodePool."
)
NODECLAIMS_LAUNCH_BACKOFF: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_nodeclaims_launch_backoff_seconds",
    callbacks=[NODECLAIMS_LAUNCH_BACKOFF.observe],
    unit="s",
    description="Delay before the last failed launch of a NodePool's NodeClaim is tried again (doubling "
    "per failure up to a minute), by NodePool; 0 once a launch succeeds.",
)
NODECLAIMS_REGISTERED: Final = meter.create_counter(
    "nodesmith_nodeclaims_registered", description="NodeClaims whose Node registered, by NodePool."
)
NODECLAIMS_INITIALIZED: Final = meter.create_counter(
    "nodesmith_nodeclaims_initialized", description="NodeClaims whose Node initialized, by NodePool."
)
NODECLAIMS_TERMINATION_DURATION: Final = meter.create_histogram(
    "nodesmith_nodeclaims_termination_duration_seconds",
    unit="s",
    description="From a NodeClaim's deletion to the removal of its finalizer, by NodePool.",
)
NODECLAIMS_INSTANCE_TERMINATION_DURATION: Final = meter.create_histogram(
    "nodesmith_nodeclaims_instance_termination_duration_seconds",
    unit="s",
    description="From a NodeClaim's deletion to the provider reporting its instance gone, by NodePool.",
)
NODES_DRAINED: Final = meter.create_counter(
    "nodesmith_nodes_drained", description="Nodes whose drain finished, by NodePool."
)
NODES_TERMINATION_DURATION: Final = meter.create_histogram(
    "nodesmith_nodes_termination_duration_seconds",
    unit="s",
    description="From a Node's deletion to the removal of its finalizer, by NodePool.",
)
NODES_LIFETIME_DURATION: Final = meter.create_histogram(
    "nodesmith_nodes_lifetime_duration_seconds",
    unit="s",
    description="From a Node's creation to the removal of its finalizer, by NodePool.",
)
PODS_EVICTION_REQUESTS: Final = meter.create_counter(
    "nodesmith_pods_eviction_requests",
    description="Eviction API requests made while draining, by HTTP code (200, 404, 409, 429, 500...).",
)
PODS_DRAINED: Final = meter.create_counter(
    "nodesmith_pods_drained", description="Pods evicted or deleted while draining, by reason."
)
GARBAGE_COLLECTED_INSTANCES: Final = meter.create_counter(
    "nodesmith_garbage_collected_instances",
    description="Provider instances deleted because no NodeClaim owns them, by provider.",
)
NODEPOOLS_USAGE: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_nodepools_usage",
    callbacks=[NODEPOOLS_USAGE.observe],
    description="Resources used by a NodePool's nodes, by NodePool and resource.",
)

# -- disruption -----------------------------------------------------------------------------------------

DISRUPTION_DECISIONS: Final = meter.create_counter(
    "nodesmith_disruption_decisions",
    description="Disruption commands started, by decision (delete/replace), reason and NodePool.",
)
DISRUPTION_REJECTIONS: Final = meter.create_counter(
    "nodesmith_disruption_rejections",
    description="Nodes a disruption method passed over, by method and rejection reason.",
)
DISRUPTION_ELIGIBLE_NODES: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_disruption_eligible_nodes",
    callbacks=[DISRUPTION_ELIGIBLE_NODES.observe],
    description="Disruption candidates in the last evaluation, by method.",
)
DISRUPTION_EVALUATION_DURATION: Final = meter.create_histogram(
    "nodesmith_disruption_decision_evaluation_duration_seconds",
    unit="s",
    description="Time one disruption method took to decide, by method.",
)
DISRUPTION_VALIDATION_FAILURES: Final = meter.create_counter(
    "nodesmith_disruption_failed_validations",
    description="Commands dropped when re-validated after the validation delay, by method.",
)
DISRUPTION_QUEUE_FAILURES: Final = meter.create_counter(
    "nodesmith_disruption_queue_failures",
    description="Commands the orchestration queue gave up on (replacement failed or timed out), by reason.",
)
NODEPOOLS_ALLOWED_DISRUPTIONS: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_nodepools_allowed_disruptions",
    callbacks=[NODEPOOLS_ALLOWED_DISRUPTIONS.observe],
    description="Disruptions a NodePool's budgets allow now, by NodePool and reason.",
)
NODECLAIMS_DISRUPTED: Final = meter.create_counter(
    "nodesmith_nodeclaims_disrupted",
    description="NodeClaims deleted by disruption or expiration, by reason and NodePool.",
)

# -- cost (nodesmith.reconcilers.cost) ------------------------------------------------------------------

OFFERING_PRICE_ESTIMATE: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_cloudprovider_instance_type_offering_price_estimate",
    callbacks=[OFFERING_PRICE_ESTIMATE.observe],
    description="Hourly price of every offering the NodePools can use, by instance_type, capacity_type "
    "and zone (the provider's currency; the lowest when NodePools' price overlays disagree).",
)
NODEPOOLS_COST_PER_HOUR: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_nodepools_cost_per_hour",
    callbacks=[NODEPOOLS_COST_PER_HOUR.observe],
    description="Summed hourly price of a NodePool's running nodes (those with a price), by NodePool.",
)
NODEPOOLS_UNPRICED_NODES: Final = Readings()
meter.create_observable_gauge(
    "nodesmith_nodepools_unpriced_nodes",
    callbacks=[NODEPOOLS_UNPRICED_NODES.observe],
    description="Running nodes of a NodePool whose offering has no price (not in its cost), by NodePool.",
)
