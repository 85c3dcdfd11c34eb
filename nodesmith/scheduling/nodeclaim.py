"""A NodeClaim being planned in this run: the pods given to it and what it can still be.

The scheduler opens one from a template when no existing node or planned NodeClaim takes a pod, then offers
it later pods (fewest pods first). :meth:`SimNodeClaim.check` is Karpenter's ``NodeClaim.CanAdd``
(template taints, host ports, requirements, volume topology, topology last because it settles domains,
then the instance types left that fit the summed requests plus their DaemonSet overhead, then minValues);
:meth:`commit` is ``Add``. :meth:`finalize` turns it into a :class:`results.NewNodeClaim`.

The hostname is a placeholder (``hostname-placeholder-0001``, numbered in creation order) so hostname
topology can treat the NodeClaim as its own domain; it is dropped when finalized.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, final

from nodesmith.api import labels, quantity
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.cloudprovider.types import Offering
from nodesmith.scheduling import (
    hostports,
    inputs,
    instancetypes,
    pods,
    reservations,
    results,
    taints,
    topology,
)
from nodesmith.scheduling import resources as res

__all__ = ["Fit", "SimNodeClaim", "narrow"]

_HOSTNAME: Final = labels.LABEL_HOSTNAME
_SIMULATION_ONLY: Final = (
    Requirement.in_(labels.LABEL_REGISTERED, "true"),
    Requirement.in_(labels.LABEL_INITIALIZED, "true"),
)
"""A planned NodeClaim will be registered and initialized: pods selecting those labels may use it (spec 2.4.5);
stripped when finalized, with the hostname."""
_EMPTY: Final = Requirements()
_RESERVED: Final = labels.CapacityType.RESERVED


def narrow(base: Requirements, extra: Iterable[Requirement]) -> Requirements:
    """``base`` with ``extra`` intersected in, returning ``base`` itself when nothing changes (so callers
    can skip recomputing instance-type masks by identity)."""
    changing: list[Requirement] = []
    for requirement in extra:
        key = requirement.key
        if key in base:
            current = base[key]
            if current == requirement or current.intersection(requirement) == current:
                continue
        changing.append(requirement)
    return base.add(*changing) if changing else base


@final
class Fit:
    """The NodeClaim as it would be with the pod: requirements, instance-type mask, summed requests."""

    __slots__ = ("mask", "requirements", "reserved", "total")

    def __init__(self, requirements: Requirements, mask: int, total: res.Vector) -> None:
        self.requirements = requirements
        self.mask = mask
        self.total = total
        self.reserved: tuple[Offering, ...] | None = None
        """The reserved offerings the NodeClaim would hold; ``None`` when this solve counts none."""


@final
class Template:
    """A template with its catalog and cached taint verdicts (shared by all its NodeClaims)."""

    __slots__ = ("_tolerated", "catalog", "has_reserved", "position", "spec")

    def __init__(self, spec: inputs.NodeClaimTemplate, catalog: instancetypes.Catalog, position: int) -> None:
        self.spec = spec
        self.catalog = catalog
        self.position = position
        self.has_reserved = any(o.reserved for it in catalog.types for o in it.offerings)
        self._tolerated: dict[tuple[taints.Toleration, ...], taints.Taint | None] = {}

    def untolerated(self, tolerations: tuple[taints.Toleration, ...]) -> taints.Taint | None:
        try:
            return self._tolerated[tolerations]
        except KeyError:
            found = self._tolerated[tolerations] = taints.first_untolerated(self.spec.taints, tolerations)
            return found


@final
class SimNodeClaim:
    """Mutable while the run lasts; owned by the scheduler."""

    __slots__ = (
        "hostname",
        "mask",
        "mode",
        "pods",
        "ports",
        "requirements",
        "reservations",
        "reserved",
        "seq",
        "template",
        "total",
    )

    def __init__(
        self,
        template: Template,
        hostname: str,
        seq: int,
        mask: int,
        zero: res.Vector,
        reserving: reservations.Manager | None = None,
        mode: reservations.Mode = reservations.STRICT,
    ) -> None:
        self.template = template
        self.reservations = reserving if reserving and template.has_reserved else None
        self.mode = mode
        self.reserved: tuple[Offering, ...] = ()
        self.hostname = hostname
        self.seq = seq
        self.requirements = template.spec.requirements.add(
            Requirement.in_(_HOSTNAME, hostname), *_SIMULATION_ONLY
        )
        self.mask = mask
        self.total = zero
        self.pods: list[pods.SchedulingPod] = []
        self.ports = hostports.HostPortUsage()

    def _reason(self, constraint: results.Constraint, **fields: object) -> results.NodePoolReason:
        return results.NodePoolReason(self.template.spec.nodepool, constraint, **fields)  # type: ignore[arg-type]

    def check(
        self,
        pod: pods.SchedulingPod,
        vector: res.Vector,
        topo: topology.Topology,
        alternatives: Sequence[Requirements],
        strict_min_values: bool,
        explain: bool,
    ) -> Fit | results.NodePoolReason | None:
        """Could ``pod`` join? A :class:`Fit` if so; otherwise ``None``, or the reason when ``explain``."""
        C = results.Constraint
        allow = self.template.catalog.well_known
        template = self.template
        taint = template.untolerated(pod.tolerations)
        if taint is not None:
            return self._reason(C.TAINTS, detail=str(taint)) if explain else None
        if pod.host_ports:
            port = self.ports.conflict(pod.host_ports)
            if port is not None:
                return self._reason(C.HOST_PORTS, detail=str(port)) if explain else None
        pod_reqs = pod.requirements
        if not self.requirements.is_compatible(pod_reqs, allow):
            if not explain:
                return None
            return self._reason(
                C.REQUIREMENTS,
                keys=_failing_keys(self.requirements, pod_reqs, allow),
                detail="; ".join(self.requirements.compatibility_errors(pod_reqs, allow)),
            )
        base = narrow(self.requirements, pod_reqs.values()) if pod_reqs else self.requirements
        failure: results.NodePoolReason | None = None
        for alternative in alternatives:
            reqs = base
            if alternative:
                if not reqs.is_compatible(alternative, allow):
                    failure = failure or (
                        self._reason(C.VOLUMES, keys=_failing_keys(reqs, alternative, allow))
                        if explain
                        else None
                    )
                    continue
                reqs = narrow(reqs, alternative.values())
            domains = topo.add_requirements(pod, pod.strict_requirements, reqs, allow)
            if isinstance(domains, topology.TopologyFailure):
                failure = failure or (
                    self._reason(C.TOPOLOGY, keys=(domains.key,), detail=domains.kind.value)
                    if explain
                    else None
                )
                continue
            if domains:
                topo_reqs = Requirements(domains)
                if not reqs.is_compatible(topo_reqs, allow):
                    failure = failure or (
                        self._reason(C.TOPOLOGY, keys=tuple(sorted(topo_reqs)), detail="topology domains")
                        if explain
                        else None
                    )
                    continue
                reqs = narrow(reqs, domains)
            fit = self._fit(pod, vector, reqs, strict_min_values, explain)
            if isinstance(fit, Fit) and self.reservations is not None:
                fit = self._reserve(fit, explain)
            if isinstance(fit, Fit):
                return fit
            failure = failure or fit
        return failure

    def _reserve(self, fit: Fit, explain: bool) -> Fit | results.NodePoolReason | None:
        """Which reservations the NodeClaim would hold with the pod (Strict mode may refuse it)."""
        assert self.reservations is not None
        catalog = self.template.catalog
        types = [catalog.types[i] for i in instancetypes.bits(fit.mask & catalog.fits_mask(fit.total))]
        chosen = reservations.choose(self.reservations, self.hostname, fit.requirements, types, self.mode)
        if isinstance(chosen, reservations.Refused):
            return (
                self._reason(results.Constraint.RESERVED_OFFERING, detail=chosen.detail) if explain else None
            )
        fit.reserved = chosen
        return fit

    def _fit(
        self,
        pod: pods.SchedulingPod,
        vector: res.Vector,
        reqs: Requirements,
        strict_min_values: bool,
        explain: bool,
    ) -> Fit | results.NodePoolReason | None:
        catalog = self.template.catalog
        mask = self.mask if reqs is self.requirements else self.mask & catalog.mask_for(reqs)
        if pod.host_ports:
            mask &= catalog.port_mask(pod.host_ports)
        total = res.vadd(self.total, vector)
        if not mask & catalog.fits_mask(total):
            if not explain:
                return None
            counts, short = catalog.diagnose(reqs, mask, total)
            return self._reason(results.Constraint.INSTANCE_TYPES, instance_types=counts, resources=short)
        if strict_min_values and any(r.min_values for r in reqs.values()):
            ordered = catalog.ordered(instancetypes.bits(mask & catalog.fits_mask(total)), reqs)
            needed, keys = instancetypes.satisfies_min_values(ordered, reqs)
            if needed is None:
                return self._reason(results.Constraint.MIN_VALUES, keys=keys) if explain else None
        return Fit(reqs, mask, total)

    def commit(self, pod: pods.SchedulingPod, fit: Fit) -> None:
        self.pods.append(pod)
        self.mask = fit.mask
        self.requirements = fit.requirements
        self.total = fit.total
        if pod.host_ports:
            self.ports.add(pod.host_ports)
        if fit.reserved is not None and self.reservations is not None:
            self.reservations.hold(self.hostname, fit.reserved)
            self.reserved = fit.reserved

    def remaining(self) -> list[int]:
        """Indices of the instance types the NodeClaim can still be."""
        return instancetypes.bits(self.mask & self.template.catalog.fits_mask(self.total))

    def finalize(
        self, index: res.ResourceIndex, min_values_strict: bool
    ) -> results.NewNodeClaim | tuple[str, ...]:
        """The NodeClaim to create, or the minValues keys that truncation to 600 types left unsatisfied
        under the Strict policy (the NodeClaim is then dropped)."""
        catalog = self.template.catalog
        spec = self.template.spec
        remaining = self.remaining()
        requirements = self.requirements.without(_HOSTNAME, *(r.key for r in _SIMULATION_ONLY))
        if self.reserved:
            # pinned to what it holds: launched into one of its reservations, on a type that has one
            requirements = requirements.add(
                Requirement.in_(labels.LABEL_CAPACITY_TYPE, labels.CapacityType.RESERVED),
                Requirement.in_(
                    labels.LABEL_RESERVATION_ID, *sorted({o.reservation_id for o in self.reserved})
                ),
            )
            held = set(self.reserved)
            remaining = [i for i in remaining if any(o in held for o in catalog.types[i].offerings)]
        elif self.reservations is not None and requirements.get(labels.LABEL_CAPACITY_TYPE).has(_RESERVED):
            # reservations are counted and this NodeClaim got no slot: it must not launch into one
            requirements = requirements.add(Requirement.not_in(labels.LABEL_CAPACITY_TYPE, _RESERVED))
            mask = catalog.mask_for(requirements)
            remaining = [i for i in remaining if mask >> i & 1]
        ordered = catalog.ordered(remaining, requirements)
        relaxed = False
        needed, keys = instancetypes.satisfies_min_values(
            ordered[: instancetypes.MAX_INSTANCE_TYPES], requirements
        )
        if needed is None:
            if min_values_strict:
                return keys
            requirements, relaxed = (
                _relax_min_values(requirements, ordered[: instancetypes.MAX_INSTANCE_TYPES]),
                True,
            )
        overhead = _min_overhead(catalog, remaining)
        requests = quantity.add(index.to_dict(self.total), overhead)
        return results.NewNodeClaim(
            nodepool=spec.nodepool,
            requirements=requirements,
            instance_types=tuple(ordered[: instancetypes.MAX_INSTANCE_TYPES]),
            pods=tuple(p.ref for p in self.pods),
            requests=requests,
            labels={**spec.labels, **requirements.labels()},
            taints=spec.taints,
            startup_taints=spec.startup_taints,
            hostname_placeholder=self.hostname,
            min_values_relaxed=relaxed,
        )


def _min_overhead(catalog: instancetypes.Catalog, remaining: Sequence[int]) -> dict[str, int]:
    """Per resource, the smallest DaemonSet overhead among the groups of the remaining types."""
    groups = sorted({catalog.group_of[i] for i in remaining})
    if not groups:
        return {}
    names = {n for g in groups for n in catalog.groups[g].requests}
    return {n: min(catalog.groups[g].requests.get(n, 0) for g in groups) for n in sorted(names)}


def _relax_min_values(requirements: Requirements, ordered: Sequence[object]) -> Requirements:
    relaxed = []
    for key, requirement in requirements.items():
        if requirement.min_values:
            values: set[str] = set()
            for it in ordered:
                req = it.requirements.get(key)  # type: ignore[attr-defined]
                if not req.complement:
                    values.update(req.values)
            achievable = min(requirement.min_values, len(values))
            relaxed.append(
                Requirement(
                    key,
                    requirement.complement,
                    requirement.values,
                    requirement.gte,
                    requirement.lte,
                    achievable or None,
                )
            )
        else:
            relaxed.append(requirement)
    return Requirements(relaxed)


def _failing_keys(mine: Requirements, incoming: Requirements, allow: frozenset[str]) -> tuple[str, ...]:
    keys = []
    for key, requirement in incoming.items():
        if key not in mine:
            if key not in allow and requirement.operator.value not in ("NotIn", "DoesNotExist"):
                keys.append(key)
            continue
        if not Requirements([mine[key]]).intersects(Requirements([requirement])):
            keys.append(key)
    return tuple(sorted(keys))
