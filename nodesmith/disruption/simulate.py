"""The seam between disruption and the scheduling engine: what "remove these candidates" simulates to.

Disruption never calls the scheduler itself. The caller (the disruption reconciler, the benchmark, a
test) passes a `Simulate` function; `nodesmith.state.simulation.consolidation_simulator` builds the real
one from a snapshot and the NodePools' instance types (the rest of the cluster, pending pods, pods of
nodes already being deleted, plus the candidates' reschedulable pods, solved with the same engine the
provisioner uses). Keeping the seam a function keeps this package independent of
`nodesmith.scheduling` (the import contract) and lets unit tests script simulations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias, final

import attrs

from nodesmith.api.requirements import Requirements
from nodesmith.cloudprovider.types import InstanceType

if TYPE_CHECKING:
    from nodesmith.disruption.candidates import Candidate

__all__ = ["Simulate", "SimulatedClaim", "SimulationResult"]


@final
@attrs.frozen(slots=True)
class SimulatedClaim:
    """A NodeClaim the simulation had to create for the candidates' pods."""

    nodepool: str
    requirements: Requirements
    instance_types: tuple[InstanceType, ...]
    """Ascending by price, as the engine ordered them."""
    pods: int
    source: object = attrs.field(eq=False, repr=False)
    """The engine's own record (``scheduling.NewNodeClaim``), opaque here."""


@final
@attrs.frozen(slots=True)
class SimulationResult:
    """``failures``: pod (``namespace/name``) → why it found no place; only pods that are running now
    count (pending pods failing is the provisioner's business), and a pod that would land on a node that
    is not initialized yet counts as failed (the decision would rest on a node that may never come up)."""

    new_claims: tuple[SimulatedClaim, ...] = ()
    failures: Mapping[str, str] = attrs.field(factory=dict)
    timed_out: bool = False

    @property
    def all_scheduled(self) -> bool:
        return not self.failures and not self.timed_out

    def failure_message(self, limit: int = 3) -> str:
        items = sorted(self.failures.items())
        text = "; ".join(f"{pod}: {why}" for pod, why in items[:limit])
        if len(items) > limit:
            text += f"; and {len(items) - limit} more"
        return text or ("simulation timed out" if self.timed_out else "")


Simulate: TypeAlias = Callable[[Sequence["Candidate"]], SimulationResult]
"""Schedule the candidates' reschedulable pods onto the cluster without them (at most once per call)."""
