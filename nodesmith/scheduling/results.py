"""What a scheduling run decides, and why pods were left out: attrs records, kept for ``explain``.

``scheduler.solve`` returns :class:`Results`: the new NodeClaims to create (:class:`NewNodeClaim`), the
pods nominated to existing nodes, and a :class:`PodSchedulingError` per pod it could not place. Errors are
structured (which NodePool, which constraint, which keys / resources / instance types); the human sentence
is built only when :meth:`PodSchedulingError.message` is called, never on the hot path.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, TypeAlias, final

import attrs

from nodesmith.api import labels, quantity
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import InstanceType, cheapest_offering
from nodesmith.scheduling import pods, taints

__all__ = ["Constraint", "NewNodeClaim", "NodePoolReason", "PodSchedulingError", "Results"]

TaintList: TypeAlias = tuple[taints.Taint, ...]


class Constraint(enum.StrEnum):
    """Which check refused the pod."""

    TAINTS = "taints"
    REQUIREMENTS = "requirements"
    INSTANCE_TYPES = "instance-types"
    LIMITS = "limits"
    TOPOLOGY = "topology"
    HOST_PORTS = "host-ports"
    VOLUMES = "volumes"
    MIN_VALUES = "min-values"
    NO_NODEPOOLS = "no-nodepools"
    INVALID = "invalid"
    DEADLINE = "deadline"
    TRUNCATED = "truncated"
    RESERVED_OFFERING = "reserved-offering"
    """Strict reserved capacity: a compatible reservation exists but this solve already used it up; the pod
    waits for the next solve (never relaxed, no lower-weight NodePool tried)."""


@final
@attrs.frozen
class NodePoolReason:
    """Why one NodePool could not take the pod on a new NodeClaim.

    ``keys``: requirement or topology keys that failed; ``resources``: resources no compatible instance
    type had room for; ``instance_types``: how many types were dropped by each criterion
    (``incompatible``, ``no-offering``, ``too-small``); ``detail``: a short fixed fact (the taint, the
    topology kind, the host port).
    """

    nodepool: str
    constraint: Constraint
    keys: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    instance_types: tuple[tuple[str, int], ...] = ()
    detail: str = ""

    def message(self) -> str:
        c = self.constraint
        if c is Constraint.TAINTS:
            text = f"did not tolerate taint {self.detail}"
        elif c is Constraint.REQUIREMENTS:
            text = f"incompatible requirements ({', '.join(self.keys)}){': ' + self.detail if self.detail else ''}"
        elif c is Constraint.INSTANCE_TYPES:
            counts = ", ".join(f"{n} {what}" for what, n in self.instance_types)
            text = "no instance type satisfied resources and requirements"
            if self.resources:
                text += f" (short of {', '.join(self.resources)})"
            if counts:
                text += f"; instance types: {counts}"
        elif c is Constraint.LIMITS:
            text = f"all available instance types exceed limits ({', '.join(self.resources)})"
        elif c is Constraint.TOPOLOGY:
            text = f"unsatisfiable {self.detail} on {', '.join(self.keys)}"
        elif c is Constraint.HOST_PORTS:
            text = f"host port conflict {self.detail}"
        elif c is Constraint.MIN_VALUES:
            text = f"minValues not satisfiable for {', '.join(self.keys)}"
        else:
            text = self.detail or c.value
        if not self.nodepool:  # not about one NodePool (there is none to try)
            return text
        return f"incompatible with nodepool {self.nodepool!r}: {text}"


@final
@attrs.frozen
class PodSchedulingError:
    """A pod the run did not place: the per-NodePool reasons of its last attempt (empty when the cause is
    not pool-specific, see ``constraint``) and the preferences relaxed before giving up."""

    pod: pods.PodRef
    reasons: tuple[NodePoolReason, ...] = ()
    constraint: Constraint | None = None
    detail: str = ""
    relaxed: tuple[str, ...] = ()

    def message(self) -> str:
        parts = []
        if self.constraint is not None:
            parts.append(self.detail or self.constraint.value)
        parts += [r.message() for r in self.reasons]
        text = "; ".join(parts) or "could not be scheduled"
        if self.relaxed:
            text += f" (after relaxing: {', '.join(self.relaxed)})"
        return f"{self.pod}: {text}"


@final
@attrs.frozen
class NewNodeClaim:
    """A NodeClaim to create: flexible over ``instance_types`` (cheapest compatible offering first, at most
    600), with the pods it was sized for.

    ``requirements`` are the final narrowed requirements without the simulation-only hostname;
    ``requests`` = Σ pod requests + the smallest DaemonSet overhead among the remaining instance types.
    """

    nodepool: str
    requirements: Requirements
    instance_types: tuple[InstanceType, ...]
    pods: tuple[pods.PodRef, ...]
    requests: Mapping[str, int]
    labels: Mapping[str, str]
    taints: TaintList
    startup_taints: TaintList
    hostname_placeholder: str
    min_values_relaxed: bool = False

    def cheapest_price(self) -> float | None:
        """Hourly price of the cheapest available offering of the cheapest instance type."""
        for it in self.instance_types:
            offering = cheapest_offering(it.offerings, self.requirements)
            if offering is not None:
                return offering.price
        return None

    def capacity_types(self) -> tuple[str, ...]:
        """Capacity types of the available compatible offerings of the instance types, sorted."""
        return tuple(
            sorted(
                {
                    o.capacity_type
                    for it in self.instance_types
                    for o in it.compatible_offerings(self.requirements)
                }
            )
        )

    def node_selector_requirements(self) -> list[dict[str, Any]]:
        """``spec.requirements`` of the NodeClaim (spec 2.11): the narrowed requirements with
        ``instance-type In [the ordered names]`` (keeping its minValues) and ``capacity-type In [...]``."""
        its = self.requirements.get(labels.LABEL_INSTANCE_TYPE)
        reqs = self.requirements.add(
            Requirement.in_(
                labels.LABEL_INSTANCE_TYPE,
                *(it.name for it in self.instance_types),
                min_values=its.min_values,
            )
        )
        capacity_types = self.capacity_types()
        if capacity_types:
            reqs = reqs.add(Requirement.in_(labels.LABEL_CAPACITY_TYPE, *capacity_types))
        return reqs.to_node_selector()

    def resource_requests(self) -> dict[str, str]:
        return quantity.format_resources(self.requests)


@final
@attrs.frozen
class Results:
    """The decisions of one run. ``existing_node_assignments`` maps node name → pods nominated to it;
    ``pod_errors`` maps pod uid → why it was not placed."""

    new_nodeclaims: tuple[NewNodeClaim, ...]
    existing_node_assignments: Mapping[str, tuple[pods.PodRef, ...]]
    pod_errors: Mapping[str, PodSchedulingError]
    timed_out: bool = False

    def scheduled_count(self) -> int:
        return sum(len(n.pods) for n in self.new_nodeclaims) + sum(
            len(p) for p in self.existing_node_assignments.values()
        )

    def total_price(self) -> float:
        """Σ hourly price of the new NodeClaims at their cheapest instance type (what a provider that
        launches the cheapest option would pay)."""
        return sum(n.cheapest_price() or 0.0 for n in self.new_nodeclaims)
