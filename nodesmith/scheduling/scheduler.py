"""The solve loop: place each pending pod on an existing node, a NodeClaim of this run, or a new NodeClaim.

:func:`solve` takes a :class:`inputs.SchedulingInput` and returns :class:`results.Results`; the provisioner,
the disruption simulation and ``nodesmith simulate`` call it. Karpenter ``Scheduler.Solve`` (spec 2.4-2.5):

* pods sorted by CPU, then memory (both descending), then creation time and uid;
* a queue: a pod that fails goes to the back; the run ends when a pod comes round again with the queue
  no shorter than when it was pushed (a full cycle without progress), or when the deadline passes;
* each attempt tries existing nodes (initialized first, then by name; in a consolidation simulation a
  pod moving off a candidate skips nodes inside their ``consolidateAfter`` window), then this run's NodeClaims
  (fewest pods first, older first on ties), then a new NodeClaim from each template in weight order;
  on failure one preference is relaxed (``preferences``) and the pod is tried again.

Beyond Karpenter, and provably with the same result (see :class:`_Solver`):

* **identical pods share verdicts**: a pod whose scheduling key (namespace, labels, requests, every
  constraint) equals one that failed since the last placement fails the same way without being re-tried,
  because nothing a failed attempt leaves behind can change the outcome for an identical pod;
* **candidate pruning**: a pod with hostname anti-affinity (or self-selecting hostname spread with
  ``maxSkew: 1``) is offered only the nodes whose hostname is still empty for that group, still in the
  same order; the others would refuse it in the topology check anyway;
* **domain pruning**: a pod whose topology allows only some domains of a key is offered only the NodeClaims
  that can still be in one of them (``claimorder.ByDomain``), in the same order;
* **room pruning**: existing nodes whose free room cannot hold the pod are skipped (``fitindex``), the
  others are checked in the same order;
* instance-type filtering through memoised bit masks and "largest room first" fit checks (``instancetypes``).

A NodePool annotated ``nodesmith.io/packing: cost-optimised`` changes the order pods and NodeClaims are
tried in and how far a new NodeClaim may grow, for the pods such a pool can take (``packing``); the run
then solves both ways and keeps the cost-optimised result only if it is no worse (``packing.preferred``).

:class:`Prepared` holds everything but the pending pods, so a caller that solves one cluster many times
(a disruption simulation per candidate) builds it once; ``Prepared.solve`` may leave existing nodes out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Final, Literal, final

from nodesmith.api import labels
from nodesmith.api.nodepool import Packing
from nodesmith.api.requirements import Requirements
from nodesmith.scheduling import (
    claimorder,
    daemonsets,
    existingnode,
    fitindex,
    inputs,
    instancetypes,
    nodeclaim,
    packing,
    pods,
    preferences,
    reservations,
    results,
    topology,
    topologybase,
    volumes,
)
from nodesmith.scheduling import resources as res

__all__ = ["Prepared", "solve"]

_HOSTNAME: Final = labels.LABEL_HOSTNAME
_NO_VOLUMES: Final = (Requirements(),)
_NO_DRIVERS: Final[Mapping[str, frozenset[str]]] = {}


def solve(
    snapshot: inputs.SchedulingInput,
    *,
    deadline: Callable[[], bool] | None = None,
    preference_policy: Literal["Respect", "Ignore"] = "Respect",
    min_values_policy: Literal["Strict", "BestEffort"] = "Strict",
    parsed_pods: MutableMapping[int, pods.SchedulingPod] | None = None,
    reserved_mode: reservations.Mode = reservations.STRICT,
) -> results.Results:
    """Decide where the snapshot's pending pods go. ``deadline()`` returning true stops the run; what was
    decided so far is returned and every pod not placed carries a reason.

    ``parsed_pods`` is a memo the caller may keep across runs over the *same* pod dicts: parsed pods by
    ``id()`` of their dict, which is sound only while those dicts stay alive and unchanged.

    ``reserved_mode``: ``Strict`` for provisioning, ``Fallback`` for disruption simulations
    (`reservations`)."""
    return Prepared(snapshot, parsed_pods).solve(
        snapshot.pods,
        consolidating_pods=snapshot.consolidating_pods,
        deadline=deadline,
        preference_policy=preference_policy,
        min_values_policy=min_values_policy,
        reserved_mode=reserved_mode,
    )


@final
class _Indexed:
    """The prepared cluster in one run's resource vectors: templates with their instance-type catalogs,
    the existing nodes as offered to pods (never changed; a run copies a node before placing a pod on
    it) and their free room in a `fitindex.FitIndex`."""

    __slots__ = ("existing", "fit", "index", "limit_masks", "templates", "vectors")

    def __init__(self, prepared: Prepared, index: res.ResourceIndex) -> None:
        self.index = index
        self.templates: list[nodeclaim.Template] = []
        for position, spec in enumerate(prepared.specs):
            well_known = prepared.snapshot.well_known_labels
            group_of, groups = daemonsets.overhead_groups(
                spec.requirements, spec.taints, spec.instance_types, prepared.daemons, well_known
            )
            catalog = instancetypes.Catalog(
                spec.requirements, spec.instance_types, index, group_of, groups, well_known
            )
            self.templates.append(nodeclaim.Template(spec, catalog, position))
        self.existing = [
            existingnode.SimExistingNode(
                n, index, prepared.daemons, prepared.bound_parsed[n.name], prepared.snapshot.volumes
            )
            for n in prepared.existing
        ]
        self.fit = fitindex.FitIndex([res.vsub(n.available, n.used) for n in self.existing], len(index.names))
        self.vectors: dict[tuple[object, ...], res.Vector] = {}
        self.limit_masks: dict[tuple[int, tuple[tuple[str, int], ...]], int] = {}


@final
class Prepared:
    """Everything about a scheduling input but its pending pods, made once and shared by every run over it:
    the NodePool templates, DaemonSet overhead, the existing nodes and the topology counts of what is
    bound to them (`topologybase.Baseline`).

    :meth:`solve` places a list of pods, optionally as if some existing nodes were gone -- what a
    disruption simulation asks once per candidate. The answer is the one :func:`solve` gives for the same
    input with those nodes left out and those pods pending; only the work differs (counts and node views
    are copied, not rebuilt). ``parsed_pods`` as in :func:`solve`; the pods given to :meth:`solve` go
    through it too."""

    def __init__(
        self,
        snapshot: inputs.SchedulingInput,
        parsed_pods: MutableMapping[int, pods.SchedulingPod] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self._memo: MutableMapping[int, pods.SchedulingPod] = {} if parsed_pods is None else parsed_pods
        self.daemons = [pods.parse_pod(d) for d in snapshot.daemonset_pods]
        specs = sorted(snapshot.templates, key=lambda t: t.nodepool, reverse=True)
        specs.sort(key=lambda t: t.weight, reverse=True)
        self.specs = specs
        self.tolerate_prefer_no_schedule = any(
            t.effect == "PreferNoSchedule" for s in specs for t in s.taints
        )
        nodes = [*snapshot.existing_nodes, *snapshot.other_nodes]
        # Bound pods are parsed only when their node's view needs them (host ports, volumes) or their
        # anti-affinity counts; the rest are read for topology by their labels alone.
        self.bound_parsed: dict[str, list[pods.SchedulingPod]] = {}
        bound = []
        for n in nodes:
            parsed = self.bound_parsed[n.name] = []
            for p in n.pods:
                parsed_pod = None if pods.inert_when_bound(p) else self.parse(p)
                if parsed_pod is not None:
                    parsed.append(parsed_pod)
                b = topology.BoundPod.from_dict(p, n.name, parsed_pod)
                if b is not None:
                    bound.append(b)
        self.existing = sorted(snapshot.existing_nodes, key=lambda n: (not n.initialized, n.name))
        self.position = {n.name: i for i, n in enumerate(self.existing)}
        self.any_under_consolidate_after = any(n.under_consolidate_after for n in self.existing)
        self.topology = topologybase.Baseline(
            topology.universe_from_templates(
                (s.requirements, [it.requirements for it in s.instance_types], s.taints) for s in specs
            ),
            [topology.CountingNode(n.name, n.labels, n.taints, not n.in_flight) for n in nodes],
            bound,
            {n.name: n.hostname for n in self.existing},
            snapshot.namespaces,
        )
        self._indexed: dict[tuple[str, ...], _Indexed] = {}
        self.reserved_capacity = reservations.initial_capacity(it for s in specs for it in s.instance_types)
        self.volumes: dict[
            tuple[object, ...], tuple[tuple[Requirements, ...], Mapping[str, frozenset[str]]]
        ] = {}

    def parse(self, pod: Mapping[str, Any] | pods.SchedulingPod) -> pods.SchedulingPod:
        if isinstance(pod, pods.SchedulingPod):
            return pod
        hit = self._memo.get(id(pod))
        if hit is None:
            hit = self._memo[id(pod)] = pods.parse_pod(pod)
        return hit

    def indexed(self, index: res.ResourceIndex) -> _Indexed:
        found = self._indexed.get(index.names)
        if found is None:
            found = self._indexed[index.names] = _Indexed(self, index)
        return found

    def solve(
        self,
        pending: Sequence[Mapping[str, Any] | pods.SchedulingPod],
        *,
        removed: Collection[str] = (),
        consolidating_pods: frozenset[str] = frozenset(),
        deadline: Callable[[], bool] | None = None,
        preference_policy: Literal["Respect", "Ignore"] = "Respect",
        min_values_policy: Literal["Strict", "BestEffort"] = "Strict",
        reserved_mode: reservations.Mode = reservations.STRICT,
    ) -> results.Results:
        """Place ``pending`` as if the existing nodes named in ``removed`` were not there; the pods in
        ``consolidating_pods`` (UIDs) stay off nodes inside their ``consolidateAfter`` window."""
        args = (
            self,
            pending,
            frozenset(removed),
            consolidating_pods,
            preference_policy,
            min_values_policy,
            reserved_mode,
        )
        default = _Solver(*args).run(deadline)
        if not any(s.packing is Packing.COST_OPTIMISED for s in self.specs):
            return default
        return packing.preferred(_Solver(*args, cost_optimised=True).run(deadline), default)


def _pod_order(pod: pods.SchedulingPod) -> tuple[int, int, str, str]:
    return (-pod.requests.get("cpu", 0), -pod.requests.get("memory", 0), pod.creation, pod.ref.uid)


class _Solver:
    """One run's mutable state.

    Why sharing verdicts between identical pods is exact: a failed attempt changes nothing another pod can
    observe (no node, NodeClaim, count, limit or hostname counter moves; relaxation only re-registers the
    failing pod's own topology groups, which are keyed by content, so an identical pod would register the
    very same groups, and each pod re-registers its own groups when its turn comes). Every check reads only
    the pod's key and that state, so at an unchanged ``version`` an identical pod gets the identical answer.
    """

    def __init__(
        self,
        prepared: Prepared,
        pending: Sequence[Mapping[str, Any] | pods.SchedulingPod],
        removed: frozenset[str],
        consolidating_pods: frozenset[str],
        preference_policy: str,
        min_values_policy: str,
        reserved_mode: reservations.Mode = reservations.STRICT,
        cost_optimised: bool = False,
    ) -> None:
        self.prepared = prepared
        self.strict_min_values = min_values_policy == "Strict"
        self.reserved_mode: reservations.Mode = reserved_mode
        self.reservations = reservations.Manager(prepared.reserved_capacity)
        self.errors: dict[str, results.PodSchedulingError] = {}
        parsed = [prepared.parse(p) for p in pending]
        if preference_policy == "Ignore":
            parsed = [preferences.strip(p) for p in parsed]
        self.pods: list[pods.SchedulingPod] = []
        for pod in parsed:
            invalid = pod.invalid or (
                volumes.claim_problem(prepared.snapshot.volumes, pod.namespace, pod.volume_claims)
                if pod.volume_claims
                else None
            )
            if invalid:
                self.errors[pod.ref.uid] = results.PodSchedulingError(
                    pod.ref, constraint=results.Constraint.INVALID, detail=invalid
                )
            else:
                self.pods.append(pod)
        self.pods.sort(key=_pod_order)
        index = res.ResourceIndex([*(p.requests for p in self.pods), *(d.requests for d in prepared.daemons)])
        indexed = prepared.indexed(index)
        self.index = indexed.index
        self.templates = indexed.templates
        self._vectors = indexed.vectors
        self._limit_masks = indexed.limit_masks
        self._volumes = prepared.volumes
        self.volume_catalog = prepared.snapshot.volumes
        self.remaining: dict[str, dict[str, int]] = {
            s.nodepool: dict(s.remaining_limits) for s in prepared.specs if s.remaining_limits is not None
        }
        self.tolerate_prefer_no_schedule = prepared.tolerate_prefer_no_schedule
        self.topology = topology.Topology(prepared.topology, removed, (p.ref.uid for p in self.pods))
        # Existing nodes: the prepared views, copied on a node's first pod; removed ones never fit.
        self.existing = indexed.existing
        self.placed: dict[int, existingnode.SimExistingNode] = {}
        self.fit = indexed.fit.copy()
        self.removed = frozenset(prepared.position[name] for name in removed)
        for position in self.removed:
            self.fit.remove(position)
        for pod in self.pods:
            self.topology.update(pod)
        self.registered: dict[str, pods.SchedulingPod] = {p.ref.uid: p for p in self.pods}
        # pods kept off nodes inside their consolidateAfter window; part of the shared-verdict key, since
        # two pods alike but for this may fail differently
        self.gated = consolidating_pods if prepared.any_under_consolidate_after else frozenset()
        self.claims = claimorder.ClaimOrder()
        self.by_domain: dict[str, claimorder.ByDomain] = {}
        self.packing: packing.CostPacking | None = None
        if cost_optimised:
            self.packing = packing.CostPacking(self.templates, self.pods, self._vector, self.index.zero)
            self.pods = self.packing.order(self.pods)
        self.version = 0
        self.failed: dict[
            tuple[object, ...], tuple[int, tuple[results.NodePoolReason, ...], tuple[str, ...]]
        ] = {}

    # -- per-key caches -----------------------------------------------------------------------------

    def _vector(self, pod: pods.SchedulingPod) -> res.Vector:
        key = pod.key
        vector = self._vectors.get(key)
        if vector is None:
            vector = self._vectors[key] = self.index.vector(pod.requests)
        return vector

    def _volume_data(
        self, pod: pods.SchedulingPod
    ) -> tuple[tuple[Requirements, ...], Mapping[str, frozenset[str]]]:
        if not pod.volume_claims:
            return _NO_VOLUMES, _NO_DRIVERS
        key = pod.key
        data = self._volumes.get(key)
        if data is None:
            data = self._volumes[key] = (
                volumes.topology_alternatives(self.volume_catalog, pod.namespace, pod.volume_claims),
                volumes.volume_drivers(self.volume_catalog, pod.namespace, pod.volume_claims),
            )
        return data

    # -- the loop -----------------------------------------------------------------------------------

    def run(self, deadline: Callable[[], bool] | None) -> results.Results:
        queue = deque(self.pods)
        pushed_at: dict[str, int] = {}
        timed_out = False
        while queue:
            if deadline is not None and deadline():
                timed_out = True
                break
            pod = queue[0]
            if pushed_at.get(pod.ref.uid) == len(queue):
                break
            queue.popleft()
            error = self._try_schedule(pod)
            if error is None:
                self.errors.pop(pod.ref.uid, None)
                if self.packing is not None:
                    self.packing.placed(pod, self._vector(pod))
            else:
                self.errors[pod.ref.uid] = error
                queue.append(pod)
                pushed_at[pod.ref.uid] = len(queue)
        if timed_out:
            for pod in queue:
                if pod.ref.uid not in self.errors:
                    self.errors[pod.ref.uid] = results.PodSchedulingError(
                        pod.ref,
                        constraint=results.Constraint.DEADLINE,
                        detail="the scheduling deadline passed before this pod was considered",
                    )
        return self._results(timed_out)

    def _verdict_key(self, pod: pods.SchedulingPod) -> tuple[object, ...]:
        return (pod.key, pod.ref.uid in self.gated) if self.gated else pod.key

    def _try_schedule(self, pod: pods.SchedulingPod) -> results.PodSchedulingError | None:
        memo = self.failed.get(self._verdict_key(pod))
        if memo is not None and memo[0] == self.version:
            return results.PodSchedulingError(pod.ref, memo[1], relaxed=memo[2])
        variant = pod
        if self.registered[pod.ref.uid] is not pod:
            self.topology.update(pod)
            self.registered[pod.ref.uid] = pod
        while True:
            reasons = self._add(variant)
            if reasons is None:
                return None
            # a pod waiting for reserved capacity is not relaxed: the next solve will find it a place
            relaxed = (
                None
                if any(r.constraint is results.Constraint.RESERVED_OFFERING for r in reasons)
                else preferences.relax(variant, tolerate_prefer_no_schedule=self.tolerate_prefer_no_schedule)
            )
            if relaxed is None:
                self.failed[self._verdict_key(pod)] = (self.version, reasons, variant.relaxed)
                return results.PodSchedulingError(pod.ref, reasons, relaxed=variant.relaxed)
            variant = relaxed
            self.topology.update(variant)
            self.registered[pod.ref.uid] = variant

    def _add(self, pod: pods.SchedulingPod) -> tuple[results.NodePoolReason, ...] | None:
        """Place ``pod`` (None) or say why each template refused a new NodeClaim for it."""
        vector = self._vector(pod)
        alternatives, drivers = self._volume_data(pod)
        if not alternatives:
            return tuple(
                results.NodePoolReason(
                    t.spec.nodepool, results.Constraint.VOLUMES, detail="volumes have no common topology"
                )
                for t in self.templates
            )
        topo = self.topology
        allowed = topo.allowed_hostnames(pod) if pod.has_topology else None
        filters = topo.domain_filters(pod) if pod.has_topology else ()
        gated = bool(self.gated) and pod.ref.uid in self.gated
        existing, placed = self.existing, self.placed
        for position in self.fit.fitting(vector):
            node = placed.get(position) or existing[position]
            if allowed is not None and node.hostname not in allowed:
                continue
            if gated and node.node.under_consolidate_after:
                continue
            if filters and topology.excluded(node.requirements, filters):
                continue
            reqs = node.check(pod, vector, topo, alternatives, drivers)
            if reqs is not None:
                if position not in placed:
                    node = placed[position] = node.copy()
                node.commit(pod, vector, drivers)
                self.fit.update(position, res.vsub(node.available, node.used))
                topo.record(pod, node.taints, reqs, frozenset())
                self.version += 1
                return None
        if self.packing is not None and pod.ref.uid in self.packing.eligible:
            candidates: Iterable[nodeclaim.SimNodeClaim] = self.packing.claims(
                vector, self.claims.claims, allowed
            )
        elif allowed is not None:
            candidates = self.claims.among(allowed)
        elif filters:
            candidates = self._within(*filters[0])
        else:
            candidates = self.claims
        for claim in candidates:
            if filters and topology.excluded(claim.requirements, filters):
                continue
            fit = claim.check(pod, vector, topo, alternatives, self.strict_min_values, explain=False)
            if isinstance(fit, nodeclaim.Fit):
                self._commit(claim, pod, fit)
                self.claims.bump(claim)
                if self.packing is not None:
                    self.packing.committed(claim)
                for index in self.by_domain.values():
                    index.refresh(claim)
                return None
        if not self.templates:
            return (
                results.NodePoolReason(
                    "", results.Constraint.NO_NODEPOOLS, detail="no NodePool can create nodes"
                ),
            )
        reasons = []
        for template in self.templates:
            reason = self._new_claim(template, pod, vector, alternatives)
            if reason is None:
                return None
            reasons.append(reason)
            if reason.constraint is results.Constraint.RESERVED_OFFERING:
                break  # a reservation this pool could use is busy: no lower-weight pool instead
        return tuple(reasons)

    def _within(self, key: str, allowed: frozenset[str]) -> Iterator[nodeclaim.SimNodeClaim]:
        """This run's NodeClaims a domain filter on ``key`` does not rule out, in order."""
        index = self.by_domain.get(key)
        if index is None:
            index = self.by_domain[key] = claimorder.ByDomain(key, self.claims.claims)
        return index.within(allowed)

    def _commit(self, claim: nodeclaim.SimNodeClaim, pod: pods.SchedulingPod, fit: nodeclaim.Fit) -> None:
        claim.commit(pod, fit)
        self.topology.record(
            pod, claim.template.spec.taints, fit.requirements, claim.template.catalog.well_known
        )
        self.version += 1

    def _limits_mask(self, template: nodeclaim.Template, remaining: dict[str, int]) -> int:
        key = (template.position, tuple(sorted(remaining.items())))
        mask = self._limit_masks.get(key)
        if mask is None:
            mask = self._limit_masks[key] = template.catalog.limits_mask(remaining)
        return mask

    def _new_claim(
        self,
        template: nodeclaim.Template,
        pod: pods.SchedulingPod,
        vector: res.Vector,
        alternatives: Sequence[Requirements],
    ) -> results.NodePoolReason | None:
        spec, catalog = template.spec, template.catalog
        mask = catalog.template_mask
        if mask == 0:
            return results.NodePoolReason(
                spec.nodepool,
                results.Constraint.INSTANCE_TYPES,
                detail="no instance type matches the NodePool's requirements",
            )
        remaining = self.remaining.get(spec.nodepool)
        if remaining is not None:
            mask &= self._limits_mask(template, remaining)
            if mask == 0:
                exhausted = tuple(sorted(n for n, amount in remaining.items() if amount <= 0)) or tuple(
                    sorted(remaining)
                )
                return results.NodePoolReason(spec.nodepool, results.Constraint.LIMITS, resources=exhausted)
        seq = len(self.claims.claims)
        hostname = f"hostname-placeholder-{seq + 1:04d}"
        self.topology.register(_HOSTNAME, hostname)
        claim = nodeclaim.SimNodeClaim(
            template, hostname, seq, mask, self.index.zero, self.reservations, self.reserved_mode
        )
        fit = claim.check(pod, vector, self.topology, alternatives, self.strict_min_values, explain=True)
        if not isinstance(fit, nodeclaim.Fit):
            self.topology.unregister(_HOSTNAME, hostname)
            return fit
        if self.packing is not None and spec.packing is Packing.COST_OPTIMISED:
            fit.mask = self.packing.aim(catalog, fit)
        self._commit(claim, pod, fit)
        self.claims.add(claim)
        if self.packing is not None:
            self.packing.opened(claim)
        for index in self.by_domain.values():
            index.refresh(claim)
        if remaining is not None:
            used = catalog.max_capacity(claim.remaining(), list(remaining))
            self.remaining[spec.nodepool] = {n: amount - used.get(n, 0) for n, amount in remaining.items()}
        return None

    # -- results ------------------------------------------------------------------------------------

    def _results(self, timed_out: bool) -> results.Results:
        new: list[results.NewNodeClaim] = []
        for claim in self.claims.claims:
            final = claim.finalize(self.index, self.strict_min_values)
            if isinstance(final, results.NewNodeClaim):
                new.append(final)
                continue
            reason = results.NodePoolReason(
                claim.template.spec.nodepool, results.Constraint.MIN_VALUES, keys=final
            )
            for pod in claim.pods:
                self.errors[pod.ref.uid] = results.PodSchedulingError(
                    pod.ref,
                    (reason,),
                    constraint=results.Constraint.TRUNCATED,
                    detail=f"truncating to {instancetypes.MAX_INSTANCE_TYPES} instance types broke minValues",
                )
        assignments = {
            node.node.name: tuple(p.ref for p in node.pods)
            for _, node in sorted(self.placed.items())
            if node.pods
        }
        order = {p.ref.uid: i for i, p in enumerate(self.pods)}
        errors = dict(sorted(self.errors.items(), key=lambda item: order.get(item[0], -1)))
        return results.Results(tuple(new), assignments, errors, timed_out)
