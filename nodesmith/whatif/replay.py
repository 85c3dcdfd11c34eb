"""One provisioning run replayed on a snapshot, as records ``simulate`` and ``explain`` report.

`provision` does what the provisioner's ``reconcile`` does between taking its snapshot and writing:
the pods it would place (`simulation.provisioning_pods`), the engine's input
(`simulation.scheduling_input`) and `scheduler.solve`; it then turns the engine's `results.Results`
into `Provisioning`: NodeClaims to launch with their cheapest offering, nominations to existing nodes,
and the pods left pending with the engine's structured reasons. Running machines are priced by
`nodesmith.state.pricing.node_price`, as the cost reconciler prices them.

Pure: values in, values out.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from nodesmith.cloudprovider.types import InstanceType, cheapest_offering
from nodesmith.scheduling import results, scheduler
from nodesmith.state import simulation
from nodesmith.state.snapshot import Snapshot

__all__ = ["Launch", "Pending", "Provisioning", "provision"]

SHOWN_TYPES: Final = 5
"""Instance types a record names (cheapest first); the count says how many more the NodeClaim allows."""


@typing.final
@attrs.frozen(slots=True)
class Launch:
    """A NodeClaim the provisioner would create: its pool, the instance types it allows (cheapest first,
    the first few named) and the offering the cheapest launch would take."""

    nodepool: str
    instance_types: tuple[str, ...]
    instance_type_count: int
    instance_type: str | None
    zone: str | None
    capacity_type: str | None
    price: float | None
    pods: tuple[str, ...]

    @classmethod
    def of(cls, claim: results.NewNodeClaim) -> Launch:
        chosen: InstanceType | None = None
        offering = None
        for it in claim.instance_types:
            offering = cheapest_offering(it.offerings, claim.requirements)
            if offering is not None:
                chosen = it
                break
        return cls(
            nodepool=claim.nodepool,
            instance_types=tuple(it.name for it in claim.instance_types[:SHOWN_TYPES]),
            instance_type_count=len(claim.instance_types),
            instance_type=None if chosen is None else chosen.name,
            zone=None if offering is None else offering.zone,
            capacity_type=None if offering is None else offering.capacity_type,
            price=None if offering is None or not math.isfinite(offering.price) else offering.price,
            pods=tuple(str(ref) for ref in claim.pods),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodepool": self.nodepool,
            "instanceTypes": list(self.instance_types),
            "instanceTypeCount": self.instance_type_count,
            "cheapest": {
                "instanceType": self.instance_type,
                "zone": self.zone,
                "capacityType": self.capacity_type,
                "price": self.price,
            },
            "pods": list(self.pods),
        }


@typing.final
@attrs.frozen(slots=True)
class Pending:
    """A pod the run could not place: the engine's sentence and its per-NodePool reasons."""

    pod: str
    message: str
    reasons: tuple[Mapping[str, Any], ...] = ()
    """``{nodepool, constraint, keys, resources, instanceTypes, detail, message}`` per NodePool tried."""
    constraint: str | None = None
    """Set when the cause was not NodePool-specific (no NodePools, invalid pod, deadline...)."""

    @classmethod
    def of(cls, error: results.PodSchedulingError) -> Pending:
        return cls(
            pod=str(error.pod),
            message=error.message(),
            reasons=tuple(
                {
                    "nodepool": r.nodepool,
                    "constraint": r.constraint.value,
                    "keys": list(r.keys),
                    "resources": list(r.resources),
                    "instanceTypes": dict(r.instance_types),
                    "detail": r.detail,
                    "message": r.message(),
                }
                for r in error.reasons
            ),
            constraint=None if error.constraint is None else error.constraint.value,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "message": self.message,
            "constraint": self.constraint,
            "reasons": [dict(r) for r in self.reasons],
        }


@typing.final
@attrs.frozen(slots=True)
class Provisioning:
    """What one provisioning run on the snapshot decides."""

    pods: int
    launches: tuple[Launch, ...]
    existing: Mapping[str, tuple[str, ...]]
    """Node name → pods nominated to it."""
    pending: tuple[Pending, ...]
    nodepools: tuple[str, ...]
    """NodePools that took part (usable and with instance types)."""
    timed_out: bool = False

    @property
    def launch_cost(self) -> float:
        """Σ hourly price of the launches at their cheapest offering."""
        return sum(launch.price or 0.0 for launch in self.launches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pods": self.pods,
            "nodepools": list(self.nodepools),
            "launches": [launch.to_dict() for launch in self.launches],
            "existingNodes": {name: list(pods) for name, pods in sorted(self.existing.items())},
            "pending": [p.to_dict() for p in self.pending],
            "launchCostPerHour": round(self.launch_cost, 6),
            "timedOut": self.timed_out,
        }


def provision(
    snapshot: Snapshot,
    instance_types: Mapping[str, Sequence[InstanceType]],
    *,
    deadline: Callable[[], bool] | None = None,
) -> tuple[Provisioning, results.Results]:
    """The provisioner's decision on ``snapshot`` (every pending pod, in the engine's order, plus the
    pods of machines marked for deletion), as a record and as the engine's raw results."""
    pods = simulation.provisioning_pods(snapshot)
    sim_input = simulation.scheduling_input(snapshot, [p.body for p in pods], instance_types)
    outcome = (
        scheduler.solve(sim_input, deadline=deadline)
        if pods
        else results.Results(new_nodeclaims=(), existing_node_assignments={}, pod_errors={})
    )
    record = Provisioning(
        pods=len(pods),
        launches=tuple(Launch.of(claim) for claim in outcome.new_nodeclaims),
        existing={
            name: tuple(str(ref) for ref in refs)
            for name, refs in outcome.existing_node_assignments.items()
            if refs
        },
        pending=tuple(Pending.of(error) for error in outcome.pod_errors.values()),
        nodepools=tuple(t.nodepool for t in sim_input.templates),
        timed_out=outcome.timed_out,
    )
    return record, outcome
