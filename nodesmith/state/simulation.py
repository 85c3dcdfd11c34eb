"""From a cluster `Snapshot` to the scheduling engine's `SchedulingInput`: the one adapter.

The provisioner feeds it pending pods and the instance types it read from the provider per NodePool; the
disruption simulation and ``nodesmith simulate`` use the same functions, so every caller sees the cluster
the same way. Pure: values in, values out.

Which NodePools take part (spec 2.4 step 1): not deleting, not ``Ready=False``, and with instance types
(a NodePool whose NodeClass is not ready got none from the provider). Karpenter waits for ``Ready=True``;
nodesmith also accepts a NodePool whose status has not been written yet, so a fresh install does not
wait one status round before its first launch — its NodeClass still has to resolve.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping, Sequence

import attrs

from nodesmith.api import conditions, quantity
from nodesmith.api import nodepool as api_nodepool
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import budgets as disruption_budgets
from nodesmith.disruption import candidates as disruption_candidates
from nodesmith.disruption import consolidation, drift, emptiness, marking, multinode, pdb, singlenode
from nodesmith.disruption import pods as disruption_pods
from nodesmith.disruption import simulate as disruption_simulate
from nodesmith.disruption.commands import Method, Outcome, Rejection
from nodesmith.kube import resources
from nodesmith.scheduling import defaultspread, inputs, results, scheduler
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.statenode import StateNode
from nodesmith.state.views import PodView

__all__ = [
    "WORKLOAD_RESOURCES",
    "consolidation_simulator",
    "disruption_context",
    "disruption_outcome",
    "existing_node",
    "pending_pods",
    "provisioning_pods",
    "rebuilding_simulator",
    "reschedulable_pods",
    "scheduling_input",
    "templates",
    "usable_nodepools",
    "with_default_spread",
]

Obj: typing.TypeAlias = Mapping[str, typing.Any]


def usable_nodepools(snapshot: Snapshot) -> list[api_nodepool.NodePool]:
    """NodePools that may launch: not being deleted and not reported not-Ready; sorted by name."""
    out = []
    for pool in snapshot.nodepools.values():
        if pool.metadata.deletion_timestamp is not None:
            continue
        ready = pool.condition(conditions.ConditionType.READY)
        if ready is not None and ready.status == conditions.ConditionStatus.FALSE:
            continue
        out.append(pool)
    return sorted(out, key=lambda p: p.name)


def remaining_limits(pool: api_nodepool.NodePool, snapshot: Snapshot) -> dict[str, int] | None:
    """``spec.limits`` minus what the pool's machines already have (``None`` when the pool has no limits)."""
    if not pool.spec.limits:
        return None
    used = snapshot.nodepool_resources(pool.name)
    return {name: limit - used.get(name, 0) for name, limit in pool.spec.limits.items()}


def templates(
    snapshot: Snapshot, instance_types: Mapping[str, Sequence[InstanceType]]
) -> list[inputs.NodeClaimTemplate]:
    """One template per usable NodePool that has instance types; static NodePools (``spec.replicas``) keep
    their own count and never launch for pods (their existing nodes still take pods)."""
    out = []
    for pool in usable_nodepools(snapshot):
        types = instance_types.get(pool.name)
        if not types or pool.is_static:
            continue
        spec = pool.spec.template.spec
        out.append(
            inputs.NodeClaimTemplate(
                nodepool=pool.name,
                instance_types=types,
                requirements=pool.requirements,
                weight=pool.weight,
                labels=pool.labels,
                taints=tuple(t.to_dict() for t in spec.taints),
                startup_taints=tuple(t.to_dict() for t in spec.startup_taints),
                remaining_limits=remaining_limits(pool, snapshot),
                packing=pool.packing,
            )
        )
    return out


def existing_node(node: StateNode, snapshot: Snapshot) -> inputs.ExistingNode:
    """The simulation's view of one machine (a registered node or an in-flight NodeClaim)."""
    startup = node.nodeclaim.spec.startup_taints if node.nodeclaim is not None else ()
    csi: dict[str, int] = {}
    if node.name is not None:
        csinode = snapshot.csinodes.get(node.name) or {}
        for driver in (csinode.get("spec") or {}).get("drivers") or ():
            count = (driver.get("allocatable") or {}).get("count")
            if count is not None:
                csi[str(driver.get("name"))] = int(count)
    return inputs.ExistingNode(
        name=node.name or node.key,
        labels=node.labels,
        allocatable=node.allocatable,
        requested=node.pod_requests,
        daemonset_requested=node.daemonset_requests,
        taints=tuple(t.to_dict() for t in node.taints),
        startup_taints=tuple(t.to_dict() for t in startup),
        initialized=node.initialized,
        nodepool=node.nodepool,
        capacity=node.capacity,
        pods=tuple(p.body for p in node.pods),
        csi_limits=csi,
        in_flight=node.node is None,
    )


def pending_pods(snapshot: Snapshot) -> list[PodView]:
    """Unbound pods kube-scheduler marked Unschedulable (Karpenter's ``IsProvisionable``), except pods already
    being deleted (say, in a namespace being torn down): a node launched for them would come up empty."""
    return [pod for pod in snapshot.unbound_pods if pod.provisionable and not pod.terminating]


def provisioning_pods(snapshot: Snapshot) -> list[PodView]:
    """What one provisioning run places: the pending pods, then the pods of machines marked for deletion
    (their replacements are launched before they go). `scheduling_input` takes their ``body``s."""
    deleting = [n for n in snapshot.nodes if n.marked_for_deletion]
    return pending_pods(snapshot) + reschedulable_pods(deleting, snapshot)


def reschedulable_pods(nodes: Iterable[StateNode], snapshot: Snapshot) -> list[PodView]:
    """Pods on machines being deleted that will need a place, as Karpenter's ``CurrentlyReschedulablePods``:
    not DaemonSet, static or terminal; not terminating unless a StatefulSet's (re-created only once gone);
    and not kept in place by an active do-not-disrupt or a PDB that never allows eviction."""
    pdbs = pdb.Limits.of(snapshot.pdbs.values())
    out = []
    for node in nodes:
        for pod in node.pods:
            if pod.terminal:
                continue
            if pod.terminating and not disruption_pods.is_statefulset(pod):
                continue
            if any(kind in ("DaemonSet", "Node") for kind in pod.controller_kinds):
                continue
            if not disruption_pods.evictable_eventually(pod, pdbs, snapshot.taken_at):
                continue
            out.append(pod)
    return out


def daemonset_pods(snapshot: Snapshot) -> list[Obj]:
    """One pod per DaemonSet: its newest live pod, or one made from its template."""
    out = []
    for key, daemonset in sorted(snapshot.daemonsets.items()):
        live = snapshot.daemonset_pods.get(key)
        if live is not None:
            out.append(_with_template_node_affinity(live.body, daemonset))
            continue
        meta = daemonset.get("metadata") or {}
        template = (daemonset.get("spec") or {}).get("template") or {}
        out.append(
            {
                "metadata": {
                    **(template.get("metadata") or {}),
                    "name": f"{meta.get('name')}-template",
                    "namespace": meta.get("namespace", "default"),
                    "uid": f"daemonset-template-{meta.get('uid', key)}",
                    "ownerReferences": [{"kind": "DaemonSet", "name": meta.get("name"), "controller": True}],
                },
                "spec": template.get("spec") or {},
            }
        )
    return out


def _with_template_node_affinity(pod: Obj, daemonset: Obj) -> Obj:
    """A live DaemonSet pod with the template's required node affinity instead of its own: the DaemonSet
    controller pins each pod to its node (a ``matchFields`` term replacing the template's terms), which
    says nothing about where the DaemonSet runs. Requests stay the live pod's (a LimitRange may have
    changed them). Karpenter's ``getDaemonSetPods`` does the same; without a required affinity in the
    template there is none (Karpenter ignores the ``matchFields`` term)."""
    template_spec = ((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}
    template_required = ((template_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    spec = pod.get("spec") or {}
    affinity = dict(spec.get("affinity") or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    if template_required:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = template_required
    elif "requiredDuringSchedulingIgnoredDuringExecution" in node_affinity:
        del node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    else:
        return pod
    affinity["nodeAffinity"] = node_affinity
    return {**pod, "spec": {**spec, "affinity": affinity}}


def scheduling_input(
    snapshot: Snapshot,
    pods: Sequence[Obj],
    instance_types: Mapping[str, Sequence[InstanceType]],
    default_spread: defaultspread.DefaultSpread | None = None,
) -> inputs.SchedulingInput:
    """Everything one provisioning run needs: the pods to place, the templates, the machines. ``pods`` are
    the engine's raw pods (a `PodView`'s ``body``): this is where pods cross into the scheduling engine,
    which parses them itself. With ``default_spread`` (the kube-scheduler's defaults), pods without spread
    constraints get them here."""
    if default_spread is not None:
        pods = with_default_spread(snapshot, pods, default_spread)
    active = [n for n in snapshot.nodes if not n.marked_for_deletion and not n.deleting]
    leaving = [n for n in snapshot.nodes if n.marked_for_deletion or n.deleting]
    return inputs.SchedulingInput(
        pods=pods,
        templates=templates(snapshot, instance_types),
        existing_nodes=[existing_node(n, snapshot) for n in active],
        daemonset_pods=daemonset_pods(snapshot),
        volumes=inputs.VolumeCatalog(
            claims={_namespaced(pvc): pvc for pvc in snapshot.pvcs.values()},
            volumes={str((pv.get("metadata") or {}).get("name")): pv for pv in snapshot.pvs.values()},
            storage_classes={
                str((sc.get("metadata") or {}).get("name")): sc for sc in snapshot.storage_classes.values()
            },
        ),
        other_nodes=[existing_node(n, snapshot) for n in leaving],
        well_known_labels=snapshot.well_known_labels,
    )


WORKLOAD_RESOURCES: typing.Final = (
    resources.SERVICES,
    resources.REPLICATIONCONTROLLERS,
    resources.REPLICASETS,
    resources.STATEFULSETS,
)
"""What deducing a default spread selector reads; watched only when cluster-default spread is configured."""


def with_default_spread(
    snapshot: Snapshot, pods: Sequence[Obj], spread: defaultspread.DefaultSpread
) -> list[Obj]:
    """``pods`` with the cluster-default spread constraints, selectors deduced from the Services and
    controllers in the snapshot (kube-scheduler's ``DefaultSelector``)."""
    services: dict[str, list[Mapping[str, str] | None]] = {}
    for service in snapshot.of(resources.SERVICES).values():
        meta = service.get("metadata") or {}
        selector = (service.get("spec") or {}).get("selector")
        services.setdefault(str(meta.get("namespace") or "default"), []).append(selector)
    owners: dict[tuple[str, str, str, str], Obj] = {}
    for resource in WORKLOAD_RESOURCES[1:]:
        for obj in snapshot.of(resource).values():
            meta = obj.get("metadata") or {}
            selector = (obj.get("spec") or {}).get("selector")
            if resource == resources.REPLICATIONCONTROLLERS and selector:
                selector = {"matchLabels": selector}
            if selector:
                key = (
                    str(meta.get("namespace") or "default"),
                    resource.api_version,
                    resource.kind,
                    str(meta.get("name")),
                )
                owners[key] = selector
    return defaultspread.apply(pods, spread, services, owners)


def _namespaced(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def capacity_of(resources: Mapping[str, int]) -> str:
    """A short human rendering of a resource list (for events and logs)."""
    return ", ".join(
        f"{name}={quantity.format_quantity(amount)}" for name, amount in sorted(resources.items())
    )


# -- disruption -----------------------------------------------------------------------------------------


def consolidation_simulator(
    snapshot: Snapshot,
    instance_types: Mapping[str, Sequence[InstanceType]],
    *,
    deadline: typing.Callable[[], bool] | None = None,
    enforce_consolidate_after: bool = True,
) -> disruption_simulate.Simulate:
    """The `nodesmith.disruption.simulate.Simulate` function for one snapshot: schedule the candidates'
    reschedulable pods, the pending pods and the pods of machines already being deleted onto every other
    active machine plus new NodeClaims (Karpenter's ``SimulateScheduling``).

    What a run reports: only pods running now can fail (pending pods failing is the provisioner's
    business); a pod placed on a managed machine that is not initialized fails ("would schedule against
    uninitialized node"), since the decision would rest on a node that may never come up; new NodeClaims
    holding only pending pods are left out (the provisioner launches those either way). Pods that will not
    be evicted (drift with a grace period waives them) get no capacity.

    With ``enforce_consolidate_after`` (every caller but drift, as Karpenter's ``IsConsolidationSimulation``),
    running pods moving off the candidates are kept off machines still inside their ``consolidateAfter``
    window.

    The cluster is prepared once per snapshot, on the first run (`scheduler.Prepared`: templates,
    DaemonSet overhead, node views, topology counts of every bound pod); each run then takes the
    candidates' machines away and places the pods, so it costs about what placing those pods costs, not a
    rebuild of the cluster. `rebuilding_simulator` is the same function done from scratch each time."""
    base = _consolidation_base(snapshot, instance_types, enforce_consolidate_after)
    prepared: list[scheduler.Prepared] = []  # made on the first run: emptiness never simulates

    def solve(pods: Sequence[Obj], removed: frozenset[str], gated: frozenset[str]) -> results.Results:
        if not prepared:
            # The snapshot keeps every pod dict alive, as Prepared's parse memo (by id) needs.
            prepared.append(scheduler.Prepared(base))
        return prepared[0].solve(
            pods, removed=removed, consolidating_pods=gated, deadline=deadline, reserved_mode="Fallback"
        )

    return _simulator(snapshot, base, solve, enforce_consolidate_after)


def rebuilding_simulator(
    snapshot: Snapshot,
    instance_types: Mapping[str, Sequence[InstanceType]],
    *,
    deadline: typing.Callable[[], bool] | None = None,
    enforce_consolidate_after: bool = True,
) -> disruption_simulate.Simulate:
    """`consolidation_simulator` the plain way: every run builds a fresh scheduling input without the
    candidates' machines and solves it from scratch. Slower by the cost of rebuilding the cluster each
    time; kept as the definition the shared-preparation path must agree with (a test compares them)."""
    base = _consolidation_base(snapshot, instance_types, enforce_consolidate_after)

    def solve(pods: Sequence[Obj], removed: frozenset[str], gated: frozenset[str]) -> results.Results:
        kept = [view for view in base.existing_nodes if view.name not in removed]
        run_input = attrs.evolve(base, pods=pods, existing_nodes=kept, consolidating_pods=gated)
        # disruption simulations fall back from a used-up reservation, as Karpenter's do
        return scheduler.solve(run_input, deadline=deadline, reserved_mode="Fallback")

    return _simulator(snapshot, base, solve, enforce_consolidate_after)


def _consolidation_base(
    snapshot: Snapshot, instance_types: Mapping[str, Sequence[InstanceType]], enforce_consolidate_after: bool
) -> inputs.SchedulingInput:
    """The snapshot's scheduling input with no pods; machines inside their ``consolidateAfter`` window
    marked when that is enforced."""
    base = scheduling_input(snapshot, [], instance_types)
    if not enforce_consolidate_after:
        return base
    active = [n for n in snapshot.nodes if not n.marked_for_deletion and not n.deleting]
    views = [
        attrs.evolve(view, under_consolidate_after=True) if _under_window(node, snapshot) else view
        for node, view in zip(active, base.existing_nodes, strict=True)
    ]
    return attrs.evolve(base, existing_nodes=views)


def _simulator(
    snapshot: Snapshot,
    base: inputs.SchedulingInput,
    solve: typing.Callable[[Sequence[Obj], frozenset[str], frozenset[str]], results.Results],
    enforce_consolidate_after: bool,
) -> disruption_simulate.Simulate:
    """A `Simulate` around ``solve(pods, removed machine names, gated pod UIDs)``; see
    `consolidation_simulator`."""
    active = [n for n in snapshot.nodes if not n.marked_for_deletion and not n.deleting]
    leaving = [n for n in snapshot.nodes if n.marked_for_deletion or n.deleting]
    names = {node.key: view.name for node, view in zip(active, base.existing_nodes, strict=True)}
    uninitialized = {
        view.name
        for node, view in zip(active, base.existing_nodes, strict=True)
        if node.managed and not node.initialized
    }
    pending_views = pending_pods(snapshot)
    pending = [p.body for p in pending_views]
    pending_uids = {p.uid for p in pending_views}
    deleting_views = reschedulable_pods(leaving, snapshot)
    deleting_pods = [p.body for p in deleting_views]
    pdbs = pdb.Limits.of(snapshot.pdbs.values())
    evictable: dict[str, bool] = {}  # by pod key: candidates' views are the snapshot's

    def will_move(pod: disruption_pods.Pod) -> bool:
        verdict = evictable.get(pod.key)
        if verdict is None:
            verdict = evictable[pod.key] = disruption_pods.evictable_eventually(pod, pdbs, snapshot.taken_at)
        return verdict

    deleting_uids = {p.uid for p in deleting_views}
    pod_keys: dict[str, str] = {p.uid: p.key for p in deleting_views}

    def simulate(
        candidates: Sequence[disruption_candidates.Candidate],
    ) -> disruption_simulate.SimulationResult:
        removed = frozenset(names[c.key] for c in candidates if c.key in names)
        # pods that will not be evicted (drift with a grace period waives them) get no capacity
        moving = [p for c in candidates for p in c.reschedulable_pods if will_move(p)]
        pods = [*pending, *(p.body for p in moving), *deleting_pods]
        for view in moving:
            pod_keys.setdefault(view.uid, view.key)
        gated = (
            frozenset(p.uid for p in moving if p.phase != "Pending")
            if enforce_consolidate_after
            else frozenset()
        )
        outcome = solve(pods, removed, gated)
        failures: dict[str, str] = {}
        for uid, error in outcome.pod_errors.items():
            if uid not in pending_uids:
                failures[pod_keys.get(uid, uid)] = error.message()
        for node_name, refs in outcome.existing_node_assignments.items():
            if node_name in uninitialized:
                for ref in refs:
                    if ref.uid not in pending_uids and ref.uid not in deleting_uids:
                        failures[pod_keys.get(ref.uid, ref.uid)] = (
                            f"would schedule against uninitialized node {node_name}"
                        )
        claims = tuple(
            disruption_simulate.SimulatedClaim(
                nodepool=claim.nodepool,
                requirements=claim.requirements,
                instance_types=tuple(claim.instance_types),
                pods=len(claim.pods),
                source=claim,
            )
            for claim in outcome.new_nodeclaims
            if any(ref.uid not in pending_uids for ref in claim.pods)
        )
        return disruption_simulate.SimulationResult(claims, failures, outcome.timed_out)

    return simulate


def _under_window(node: StateNode, snapshot: Snapshot) -> bool:
    pool = snapshot.nodepools.get(node.nodepool or "")
    if node.nodeclaim is None or pool is None:
        return False
    return marking.under_consolidate_after(node.nodeclaim, pool, snapshot.taken_at)


def disruption_context(
    snapshot: Snapshot,
    instance_types: Mapping[str, Sequence[InstanceType]],
    queued: frozenset[str] = frozenset(),
) -> disruption_candidates.Context:
    """What candidate eligibility reads besides each node: the time, NodePools, their instance types by
    name, the PDBs and the keys already queued for disruption."""
    return disruption_candidates.Context(
        now=snapshot.taken_at,
        nodepools=snapshot.nodepools,
        instance_types={pool: {it.name: it for it in types} for pool, types in instance_types.items()},
        pdbs=pdb.Limits.of(snapshot.pdbs.values()),
        queued=queued,
    )


def disruption_outcome(
    method: Method,
    snapshot: Snapshot,
    instance_types: Mapping[str, Sequence[InstanceType]],
    *,
    queued: frozenset[str] = frozenset(),
    history: Sequence[disruption_budgets.Started] = (),
    options: consolidation.Options = consolidation.DEFAULT_OPTIONS,
    deadline: typing.Callable[[], bool] | None = None,
) -> tuple[Outcome, list[disruption_candidates.Candidate], list[Rejection]]:
    """One disruption method on one snapshot, as the disruption loop runs it: candidates (the eventual
    class for drift), the NodePools' allowance for the method's reason, then the method itself with
    simulations through `consolidation_simulator`. Returns the outcome, the candidates and the
    eligibility rejections."""
    ctx = disruption_context(snapshot, instance_types, queued)
    klass = (
        disruption_candidates.DisruptionClass.EVENTUAL
        if method is Method.DRIFT
        else disruption_candidates.DisruptionClass.GRACEFUL
    )
    found, rejected = disruption_candidates.evaluate_all(snapshot.nodes, ctx, klass)
    allowance = disruption_budgets.mapping(
        snapshot.nodepools.values(), snapshot.nodes, method.reason, snapshot.taken_at, history
    )
    simulate = consolidation_simulator(
        snapshot, instance_types, deadline=deadline, enforce_consolidate_after=method is not Method.DRIFT
    )
    if method is Method.EMPTINESS:
        outcome = emptiness.compute(found, allowance)
    elif method is Method.DRIFT:
        outcome = drift.compute(found, allowance, simulate, deadline)
    elif method is Method.MULTI_NODE:
        outcome = multinode.compute(found, allowance, simulate, options, deadline)
    else:
        outcome = singlenode.compute(found, allowance, simulate, options, deadline)
    return outcome, found, rejected
