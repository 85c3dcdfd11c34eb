"""``nodesmith explain``: why a pod is (still) pending, and what the disruption loop makes of a node --
built from the same pure code the daemon runs, so the answer is the daemon's.

* `explain_pod`: bound already, or not something the provisioner acts on, or -- after one provisioning
  run over every pending pod, in the engine's order (`replay.provision`) -- nominated to an existing
  node, placed on a new NodeClaim (pool, instance types, price), or left pending with the engine's
  reason per NodePool tried; plus which NodePools took part and why the others did not.
* `explain_node`: every reason the node is not a disruption candidate (`candidates.reasons`), the
  NodePool's budget per reason, and for a candidate what the methods would do with it on their own --
  emptiness (`emptiness.eligible`), drift (eventual class), and the single-node removal simulation
  (`consolidation.compute` on this node alone, as single-node consolidation runs it) -- then the
  command the disruption loop would start first on this snapshot (`simulation.disruption_outcome`
  for each method in order). Validation 15 s later and queued commands are not replayed.

Fed by a `snapshotfile.SnapshotFile`; consumed by the CLI. Pure.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from nodesmith.api import budgets as api_budgets
from nodesmith.api import conditions, labels
from nodesmith.disruption import balanced, budgets, candidates, consolidation, emptiness, marking
from nodesmith.disruption import pods as disruption_pods
from nodesmith.disruption.commands import Command, Method, Rejection
from nodesmith.scheduling import pods as scheduling_pods
from nodesmith.state import pricing, simulation
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.statenode import StateNode
from nodesmith.state.views import PodView
from nodesmith.whatif import replay
from nodesmith.whatif.snapshotfile import SnapshotFile

__all__ = ["NodeExplanation", "PodExplanation", "explain_node", "explain_pod", "nodepool_roles"]


def nodepool_roles(snapshot: Snapshot, file: SnapshotFile) -> dict[str, str]:
    """NodePool → ``"took part"`` or why it sits provisioning out (the provisioner's choice of pools)."""
    usable = {p.name for p in simulation.usable_nodepools(snapshot)}
    out: dict[str, str] = {}
    for name, pool in sorted(snapshot.nodepools.items()):
        if pool.metadata.deletion_timestamp is not None:
            out[name] = "being deleted"
        elif name not in usable:
            ready = pool.condition(conditions.ConditionType.READY)
            out[name] = f"not ready: {ready.message if ready is not None else ''}".rstrip(": ")
        elif not file.instance_types.get(name):
            out[name] = file.skipped_nodepools.get(name, "no instance types in the snapshot")
        else:
            out[name] = "took part"
    return out


# -- pods ---------------------------------------------------------------------------------------------


@typing.final
@attrs.frozen(slots=True)
class PodExplanation:
    pod: str
    verdict: str
    """``bound``, ``finished``, ``not-provisionable``, ``existing-node``, ``new-nodeclaim``, ``pending``
    or ``undecided`` (the run ended before reaching it)."""
    message: str
    node: str | None = None
    launch: replay.Launch | None = None
    pending: replay.Pending | None = None
    nodepools: Mapping[str, str] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "PodExplanation",
            "pod": self.pod,
            "verdict": self.verdict,
            "message": self.message,
            "node": self.node,
            "launch": None if self.launch is None else self.launch.to_dict(),
            "pending": None if self.pending is None else self.pending.to_dict(),
            "nodepools": dict(self.nodepools),
        }


def explain_pod(
    file: SnapshotFile, key: str, *, deadline: Callable[[], bool] | None = None
) -> PodExplanation:
    """Explain the pod ``namespace/name`` (``name`` alone means the default namespace). Raises
    `LookupError` when the snapshot has no such pod."""
    if "/" not in key:
        key = f"default/{key}"
    state, _ = file.state()
    snap = state.snapshot()
    pod = snap.pods.get(key)
    if pod is None:
        raise LookupError(f"pod {key} is not in the snapshot")
    roles = nodepool_roles(snap, file)
    node_name, phase = pod.node_name, pod.phase
    if node_name:
        return PodExplanation(
            key, "bound", f"bound to node {node_name}", node=str(node_name), nodepools=roles
        )
    if phase in ("Succeeded", "Failed"):
        return PodExplanation(key, "finished", f"finished ({phase}); nothing to place", nodepools=roles)
    if pod.terminating:
        return PodExplanation(
            key,
            "not-provisionable",
            "being deleted; the provisioner launches nothing for it",
            nodepools=roles,
        )
    if not pod.provisionable:
        return PodExplanation(key, "not-provisionable", _not_provisionable(pod), nodepools=roles)
    record, outcome = replay.provision(snap, file.instance_types, deadline=deadline)
    uid = scheduling_pods.parse_pod(pod.body).ref.uid  # as the engine names it (namespace/name without a uid)
    for name, refs in outcome.existing_node_assignments.items():
        if any(ref.uid == uid for ref in refs):
            return PodExplanation(
                key,
                "existing-node",
                f"would schedule on existing node {name} (kube-scheduler has not bound it yet)",
                node=name,
                nodepools=roles,
            )
    for claim in outcome.new_nodeclaims:
        if any(ref.uid == uid for ref in claim.pods):
            launch = replay.Launch.of(claim)
            price = "unknown price" if launch.price is None else f"${launch.price:.4f}/h"
            return PodExplanation(
                key,
                "new-nodeclaim",
                f"would go to a new NodeClaim of NodePool {claim.nodepool} "
                f"({launch.instance_type or '?'} in {launch.zone or '?'}, {launch.capacity_type or '?'}, "
                f"{price}; {launch.instance_type_count} instance types allowed, "
                f"{len(launch.pods)} pod(s) on it)",
                launch=launch,
                nodepools=roles,
            )
    error = outcome.pod_errors.get(uid)
    if error is not None:
        pending = replay.Pending.of(error)
        return PodExplanation(
            key, "pending", f"stays pending: {pending.message}", pending=pending, nodepools=roles
        )
    return PodExplanation(
        key,
        "undecided",
        "the provisioning run ended before reaching it" if record.timed_out else "not placed",
        nodepools=roles,
    )


def _not_provisionable(pod: PodView) -> str:
    """Why the provisioner leaves this unbound pod alone (the clauses of `scheduling_pods.is_provisionable`)."""
    kind = pod.controller_kind
    if kind == "DaemonSet":
        return "a DaemonSet pod: it runs on every node, and the provisioner counts it as node overhead"
    if kind == "Node":
        return "a static (mirror) pod: the kubelet runs it; the provisioner does not place it"
    nominated = pod.nominated_node
    if nominated:
        return f"nominated for node {nominated} (kube-scheduler is preempting for it there)"
    return (
        "kube-scheduler has not marked it unschedulable (PodScheduled=False, reason Unschedulable); "
        "the provisioner acts only on such pods"
    )


# -- nodes --------------------------------------------------------------------------------------------


@typing.final
@attrs.frozen(slots=True)
class NodeExplanation:
    node: str
    nodeclaim: str | None
    nodepool: str | None
    instance_type: str | None
    zone: str | None
    capacity_type: str | None
    price: float | None
    pods: int
    """Pods that would have to move if it went."""
    verdict: str
    """``not-a-candidate``, ``delete``, ``replace``, ``drift`` or ``keep``."""
    message: str
    blockers: tuple[Rejection, ...] = ()
    """Every reason it is not a disruption candidate (graceful class)."""
    consolidatable: str = ""
    drifted: str | None = None
    budgets: Mapping[str, int] = attrs.field(factory=dict)
    """Disruption reason → nodes the NodePool's budgets allow now."""
    removal: Mapping[str, Any] | None = None
    """The removal simulation: the command (delete/replace, replacements, savings) or the rejection."""
    next_command: Mapping[str, Any] | None = None
    """What the disruption loop would start first on this snapshot, and whether this node is in it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "NodeExplanation",
            "node": self.node,
            "nodeclaim": self.nodeclaim,
            "nodepool": self.nodepool,
            "instanceType": self.instance_type,
            "zone": self.zone,
            "capacityType": self.capacity_type,
            "price": self.price,
            "pods": self.pods,
            "verdict": self.verdict,
            "message": self.message,
            "candidate": not self.blockers,
            "blockers": [b.to_dict() for b in self.blockers],
            "consolidatable": self.consolidatable,
            "drifted": self.drifted,
            "budgets": dict(self.budgets),
            "removal": None if self.removal is None else dict(self.removal),
            "nextCommand": None if self.next_command is None else dict(self.next_command),
        }


def _find(snap: Snapshot, name: str) -> StateNode:
    for node in snap.nodes:
        if name in (node.name, node.key) or (node.nodeclaim is not None and node.nodeclaim.name == name):
            return node
    raise LookupError(f"node {name} is not in the snapshot (neither a Node nor a NodeClaim of that name)")


def _consolidatable(node: StateNode, snap: Snapshot) -> str:
    claim = node.nodeclaim
    pool = snap.nodepools.get(node.nodepool or "")
    if claim is None or pool is None:
        return ""
    if claim.is_true(conditions.ConditionType.CONSOLIDATABLE):
        return "Consolidatable (consolidateAfter has passed since the last pod event)"
    verdict = marking.consolidatable(claim, pool, snap.taken_at)
    if verdict.value:
        return (
            "not marked Consolidatable yet, though consolidateAfter has passed (the marking reconciler will)"
        )
    return f"not Consolidatable: {verdict.message}"


def _next_command(
    node: StateNode,
    snap: Snapshot,
    file: SnapshotFile,
    options: consolidation.Options,
    deadline: Callable[[], bool] | None,
) -> dict[str, Any] | None:
    for method in Method:
        outcome, _, _ = simulation.disruption_outcome(
            method, snap, file.instance_types, options=options, deadline=deadline
        )
        if outcome.command is not None:
            return {
                "method": method.value,
                "command": outcome.command.describe(),
                "includesThisNode": node.key in outcome.command.keys,
            }
    return None


def _removal(command: Command | Rejection) -> dict[str, Any]:
    if isinstance(command, Rejection):
        return {"decision": None, "rejection": command.to_dict()}
    return {"decision": command.decision.value, **command.to_dict()}


def explain_node(
    file: SnapshotFile,
    name: str,
    *,
    options: consolidation.Options = consolidation.DEFAULT_OPTIONS,
    deadline: Callable[[], bool] | None = None,
) -> NodeExplanation:
    """Explain what disruption makes of the node (or NodeClaim) ``name``. Raises `LookupError` when the
    snapshot has no such machine."""
    state, _ = file.state()
    snap = state.snapshot()
    node = _find(snap, name)
    types = file.instance_types
    ctx = simulation.disruption_context(snap, types)
    claim = node.nodeclaim
    pool_name = node.nodepool
    blockers = tuple(candidates.reasons(node, ctx, candidates.DisruptionClass.GRACEFUL))
    allowances = {
        reason.value: budgets.mapping(snap.nodepools.values(), snap.nodes, reason, snap.taken_at).get(
            pool_name or "", 0
        )
        for reason in api_budgets.DisruptionReason
    }
    drifted_condition = None if claim is None else claim.condition(conditions.ConditionType.DRIFTED)
    drifted = (
        drifted_condition.reason if drifted_condition is not None and drifted_condition.is_true else None
    )
    verdict, message, removal = "keep", "", None
    # 1. Emptiness and consolidation need a candidate (graceful class).
    if blockers:
        verdict = "not-a-candidate"
        message = "not a disruption candidate: " + "; ".join(b.message for b in blockers)
    else:
        candidate = candidates.evaluate(node, ctx)
        assert isinstance(candidate, candidates.Candidate)
        if candidate.is_empty:
            why = emptiness.eligible(candidate)
            if why is None and allowances[Method.EMPTINESS.reason.value] > 0:
                verdict, message = "delete", "empty: emptiness would delete it"
            elif why is None:
                message = budgets.take_within([candidate], {pool_name or "": 0}, Method.EMPTINESS)[1][
                    0
                ].message
            else:
                message = f"empty, but {why.message}"
        else:
            why = consolidation.eligible(candidate)
            allowed = allowances[Method.SINGLE_NODE.reason.value]
            if why is not None:
                message = why.message
            elif allowed <= 0:
                message = budgets.take_within([candidate], {pool_name or "": 0}, Method.SINGLE_NODE)[1][
                    0
                ].message
            else:
                found, _ = candidates.evaluate_all(snap.nodes, ctx)
                simulate = simulation.consolidation_simulator(snap, types, deadline=deadline)
                result = consolidation.compute(
                    [candidate], simulate, Method.SINGLE_NODE, options, balanced.pool_totals(found)
                )
                removal = _removal(result)
                if isinstance(result, Command):
                    verdict = result.decision.value
                    message = result.describe()
                else:
                    message = result.message
    # 2. Drift (eventual class: a terminationGracePeriod waives blocking pods) comes before consolidation.
    if drifted is not None and verdict != "delete":
        eventual = candidates.reasons(node, ctx, candidates.DisruptionClass.EVENTUAL)
        if not eventual and allowances[Method.DRIFT.reason.value] > 0:
            verdict, message = "drift", f"drifted ({drifted}): drift would replace it; " + (message or "")
        elif not eventual:
            message = f"drifted ({drifted}), but the Drifted budget of NodePool {pool_name} is 0; {message}"
        else:
            message = f"drifted ({drifted}), but {'; '.join(r.message for r in eventual)}; {message}"
    it_name = node.labels.get(labels.LABEL_INSTANCE_TYPE)
    return NodeExplanation(
        node=node.name or node.key,
        nodeclaim=None if claim is None else claim.name,
        nodepool=pool_name,
        instance_type=it_name,
        zone=node.labels.get(labels.LABEL_ZONE),
        capacity_type=node.labels.get(labels.LABEL_CAPACITY_TYPE),
        price=pricing.node_price(node, types),
        pods=sum(1 for p in node.pods if disruption_pods.is_reschedulable(p)),
        verdict=verdict,
        message=message.strip().rstrip(";"),
        blockers=blockers,
        consolidatable=_consolidatable(node, snap),
        drifted=drifted,
        budgets=allowances if claim is not None else {},
        removal=removal,
        next_command=_next_command(node, snap, file, options, deadline),
    )
