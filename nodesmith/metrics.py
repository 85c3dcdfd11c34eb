"""nodesmith's metric instruments, declared once through the OpenTelemetry *API*.

Reconcilers, the state cache and the provider wrapper record here; the runtime installs the SDK with a
Prometheus reader (``nodesmith.runtime.telemetry``), so until then every instrument is a cheap no-op.
Names follow Karpenter's with a ``nodesmith_`` prefix; units are seconds.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import metrics

__all__ = [
    "CLOUDPROVIDER_DURATION",
    "CLOUDPROVIDER_ERRORS",
    "NODECLAIMS_CREATED",
    "NODECLAIMS_TERMINATED",
    "NODES_CREATED",
    "NODES_TERMINATED",
    "PODS_UNSCHEDULABLE",
    "RECONCILE_ERRORS",
    "SCHEDULER_QUEUE_DEPTH",
    "SCHEDULING_DURATION",
    "meter",
]

meter: Final = metrics.get_meter("nodesmith")

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
SCHEDULER_QUEUE_DEPTH: Final = meter.create_up_down_counter(
    "nodesmith_scheduler_queue_depth", description="Pods waiting in the current provisioning batch."
)
PODS_UNSCHEDULABLE: Final = meter.create_up_down_counter(
    "nodesmith_pods_unschedulable", description="Pods the last simulation could not place."
)
CLOUDPROVIDER_DURATION: Final = meter.create_histogram(
    "nodesmith_cloudprovider_duration_seconds",
    unit="s",
    description="Cloud provider call duration, by method.",
)
CLOUDPROVIDER_ERRORS: Final = meter.create_counter(
    "nodesmith_cloudprovider_errors", description="Cloud provider call errors, by method and error."
)
RECONCILE_ERRORS: Final = meter.create_counter(
    "nodesmith_reconcile_errors", description="Errors caught at a reconciler's loop boundary, by reconciler."
)
