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
from nodesmith.disruption import consolidation, drift, emptiness, multinode, pdb, singlenode
from nodesmith.disruption import simulate as disruption_simulate
from nodesmith.disruption.commands import Method, Outcome, Rejection
from nodesmith.scheduling import inputs, results, scheduler
from nodesmith.scheduling import pods as scheduling_pods
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.statenode import StateNode

__all__ = [
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
    """One template per usable NodePool that has instance types."""
    out = []
    for pool in usable_nodepools(snapshot):
        types = instance_types.get(pool.name)
        if not types:
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
        pods=node.pods,
        csi_limits=csi,
        in_flight=node.node is None,
    )


def pending_pods(snapshot: Snapshot) -> list[Obj]:
    """Unbound pods kube-scheduler marked Unschedulable (Karpenter's ``IsProvisionable``), except pods already
    being deleted (say, in a namespace being torn down): a node launched for them would come up empty."""
    return [
        pod
        for pod in snapshot.unbound_pods
        if scheduling_pods.is_provisionable(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")
    ]


def provisioning_pods(snapshot: Snapshot) -> list[Obj]:
    """What one provisioning run places: the pending pods, then the pods of machines marked for deletion
    (their replacements are launched before they go)."""
    deleting = [n for n in snapshot.nodes if n.marked_for_deletion]
    return pending_pods(snapshot) + reschedulable_pods(deleting)


def reschedulable_pods(nodes: Iterable[StateNode]) -> list[Obj]:
    """Pods on machines being deleted that will need a place (not DaemonSet, static, terminal or terminating)."""
    out = []
    for node in nodes:
        for pod in node.pods:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in (
                "Succeeded",
                "Failed",
            ):
                continue
            owners = meta.get("ownerReferences") or ()
            if any(o.get("kind") in ("DaemonSet", "Node") and o.get("controller", True) for o in owners):
                continue
            out.append(pod)
    return out


def daemonset_pods(snapshot: Snapshot) -> list[Obj]:
    """One pod per DaemonSet: its newest live pod, or one made from its template."""
    out = []
    for key, daemonset in sorted(snapshot.daemonsets.items()):
        live = snapshot.daemonset_pods.get(key)
        if live is not None:
            out.append(live)
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


def scheduling_input(
    snapshot: Snapshot,
    pods: Sequence[Obj],
    instance_types: Mapping[str, Sequence[InstanceType]],
) -> inputs.SchedulingInput:
    """Everything one provisioning run needs: the pods to place, the templates, the machines."""
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
    )


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
) -> disruption_simulate.Simulate:
    """The `nodesmith.disruption.simulate.Simulate` function for one snapshot: schedule the candidates'
    reschedulable pods, the pending pods and the pods of machines already being deleted onto every other
    active machine plus new NodeClaims (Karpenter's ``SimulateScheduling``).

    What a run reports: only pods running now can fail (pending pods failing is the provisioner's
    business); a pod placed on a managed machine that is not initialized fails ("would schedule against
    uninitialized node"), since the decision would rest on a node that may never come up; new NodeClaims
    holding only pending pods are left out (the provisioner launches those either way).

    The cluster is prepared once per snapshot, on the first run (`scheduler.Prepared`: templates,
    DaemonSet overhead, node views, topology counts of every bound pod); each run then takes the
    candidates' machines away and places the pods, so it costs about what placing those pods costs, not a
    rebuild of the cluster. `rebuilding_simulator` is the same function done from scratch each time."""
    base = scheduling_input(snapshot, [], instance_types)
    prepared: list[scheduler.Prepared] = []  # made on the first run: emptiness never simulates

    def solve(pods: Sequence[Obj], removed: frozenset[str]) -> results.Results:
        if not prepared:
            # The snapshot keeps every pod dict alive, as Prepared's parse memo (by id) needs.
            prepared.append(scheduler.Prepared(base))
        return prepared[0].solve(pods, removed=removed, deadline=deadline)

    return _simulator(snapshot, base, solve)


def _simulator(
    snapshot: Snapshot,
    base: inputs.SchedulingInput,
    solve: typing.Callable[[Sequence[Obj], frozenset[str]], results.Results],
) -> disruption_simulate.Simulate:
    """A `Simulate` around ``solve(pods, removed machine names)``; see `consolidation_simulator`."""
    active = [n for n in snapshot.nodes if not n.marked_for_deletion and not n.deleting]
    leaving = [n for n in snapshot.nodes if n.marked_for_deletion or n.deleting]
    names = {node.key: view.name for node, view in zip(active, base.existing_nodes, strict=True)}
    uninitialized = {
        view.name
        for node, view in zip(active, base.existing_nodes, strict=True)
        if node.managed and not node.initialized
    }
    pending = pending_pods(snapshot)
    pending_uids = {str((p.get("metadata") or {}).get("uid")) for p in pending}
    deleting_pods = reschedulable_pods(leaving)
    deleting_uids = {str((p.get("metadata") or {}).get("uid")) for p in deleting_pods}
    pod_keys: dict[str, str] = {}

    def simulate(
        candidates: Sequence[disruption_candidates.Candidate],
    ) -> disruption_simulate.SimulationResult:
        removed = frozenset(names[c.key] for c in candidates if c.key in names)
        moving = [p for c in candidates for p in c.reschedulable_pods]
        pods = [*pending, *moving, *deleting_pods]
        for pod in pods:
            meta = pod.get("metadata") or {}
            pod_keys.setdefault(
                str(meta.get("uid")), f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
            )
        outcome = solve(pods, removed)
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


def rebuilding_simulator(
    snapshot: Snapshot,
    instance_types: Mapping[str, Sequence[InstanceType]],
    *,
    deadline: typing.Callable[[], bool] | None = None,
) -> disruption_simulate.Simulate:
    """`consolidation_simulator` the plain way: every run builds a fresh scheduling input without the
    candidates' machines and solves it from scratch. Slower by the cost of rebuilding the cluster each
    time; kept as the definition the shared-preparation path must agree with (a test compares them)."""
    base = scheduling_input(snapshot, [], instance_types)

    def solve(pods: Sequence[Obj], removed: frozenset[str]) -> results.Results:
        kept = [view for view in base.existing_nodes if view.name not in removed]
        return scheduler.solve(attrs.evolve(base, pods=pods, existing_nodes=kept), deadline=deadline)

    return _simulator(snapshot, base, solve)


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
    simulate = consolidation_simulator(snapshot, instance_types, deadline=deadline)
    if method is Method.EMPTINESS:
        outcome = emptiness.compute(found, allowance)
    elif method is Method.DRIFT:
        outcome = drift.compute(found, allowance, simulate, deadline)
    elif method is Method.MULTI_NODE:
        outcome = multinode.compute(found, allowance, simulate, options, deadline)
    else:
        outcome = singlenode.compute(found, allowance, simulate, options, deadline)
    return outcome, found, rejected
