"""``nodesmith simulate``: apply NodePool changes to a snapshot and say what the daemon would do
differently -- launches and pods left pending, nodes drifted and how many the budgets let go at once,
and the hourly cost before and after.

Fed by a `snapshotfile.SnapshotFile` and a `Change`; consumed by the CLI (text or JSON). Pure.

How each part is decided, with the daemon's own code:

* **BEFORE**: `replay.provision` on the snapshot as it is (the provisioner's run: pending pods, plus
  pods of machines already marked for deletion).
* **Drift**: for every machine of a changed NodePool, `marking.static_drift_reason` against the new
  NodePool and its instance types (what the marking reconciler computes: the NodePool hash, the
  requirements against the NodeClaim's labels, the instance type still offered). A machine already
  ``Drifted`` for a provider reason stays drifted; provider drift checks (``is_drifted``) are not
  replayed. The budgets are `budgets.mapping` for ``Drifted`` on the changed cluster, and each drifted
  machine's eviction blockers are `candidates.reasons` for the eventual class, as drift evaluates them.
* **AFTER**: the changed snapshot with the newly drifted machines (and those of deleted NodePools)
  marked for deletion, then `replay.provision` again: their reschedulable pods are re-packed from
  scratch, with the pending pods, onto the rest of the cluster and what the NodePools would launch.
* **Cost**: every machine priced by `pricing.node_price`; BEFORE = now + BEFORE's launches; AFTER = now
  − the replaced machines + AFTER's launches.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from nodesmith import errors
from nodesmith.api import budgets as api_budgets
from nodesmith.api import conditions, labels
from nodesmith.api import nodepool as api_nodepool
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.disruption import budgets, candidates, marking
from nodesmith.disruption import pods as disruption_pods
from nodesmith.disruption.commands import RejectionReason
from nodesmith.state import pricing, simulation
from nodesmith.state.snapshot import Snapshot
from nodesmith.state.statenode import StateNode
from nodesmith.whatif import replay
from nodesmith.whatif.snapshotfile import SnapshotFile

__all__ = ["Change", "Cost", "DriftedNode", "Report", "instance_types_after", "run", "validate"]

Obj: typing.TypeAlias = Mapping[str, Any]
DELETED_REASON: typing.Final = "NodePoolDeleted"
_CORE_DRIFT: typing.Final = frozenset(r.value for r in marking.DriftReason)


@typing.final
@attrs.frozen(slots=True)
class Change:
    """NodePool manifests that replace (or add) NodePools by name, and NodePools to delete."""

    nodepools: tuple[Obj, ...] = ()
    deleted: tuple[str, ...] = ()
    instance_types: Mapping[str, tuple[InstanceType, ...]] = attrs.field(factory=dict)
    """What the provider offers the changed NodePools, by name (a live simulation asks it); a changed
    NodePool missing here keeps the snapshot's types if its NodeClass is unchanged, else borrows."""

    def names(self) -> list[str]:
        return [str((o.get("metadata") or {}).get("name")) for o in self.nodepools]


@typing.final
@attrs.frozen(slots=True)
class DriftedNode:
    """A machine the change drifts (``new``) or that was drifted already; or one whose NodePool goes."""

    node: str
    nodeclaim: str
    nodepool: str
    reason: str
    new: bool
    instance_type: str | None
    price: float | None
    pods: int
    """Pods that would have to move (reschedulable ones)."""
    blocked_by: tuple[str, ...] = ()
    """Why drift could not evict it now (do-not-disrupt, PDBs), as drift's candidate check says."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "nodeclaim": self.nodeclaim,
            "nodepool": self.nodepool,
            "reason": self.reason,
            "new": self.new,
            "instanceType": self.instance_type,
            "price": self.price,
            "pods": self.pods,
            "blockedBy": list(self.blocked_by),
        }


@typing.final
@attrs.frozen(slots=True)
class Cost:
    """Hourly cost: the machines now, and projected after BEFORE's and AFTER's decisions."""

    current: float
    before: float
    after: float
    unpriced_nodes: tuple[str, ...] = ()
    """Machines whose price the snapshot's instance types do not give (left out of every figure)."""

    @property
    def delta(self) -> float:
        return self.after - self.before

    def to_dict(self) -> dict[str, Any]:
        return {
            "currentPerHour": round(self.current, 6),
            "beforePerHour": round(self.before, 6),
            "afterPerHour": round(self.after, 6),
            "deltaPerHour": round(self.delta, 6),
            "unpricedNodes": list(self.unpriced_nodes),
        }


@typing.final
@attrs.frozen(slots=True)
class Report:
    changed: tuple[str, ...]
    added: tuple[str, ...]
    deleted: tuple[str, ...]
    before: replay.Provisioning
    after: replay.Provisioning
    drifted: tuple[DriftedNode, ...]
    """Drifted machines after the change (``new`` marks those the change drifts), then those whose
    NodePool is deleted (reason ``NodePoolDeleted``)."""
    drift_budgets: Mapping[str, int]
    """Changed NodePool → machines its budgets let drift replace at once now."""
    cost: Cost
    notes: tuple[str, ...] = ()

    @property
    def replaced(self) -> tuple[DriftedNode, ...]:
        """What AFTER replaces: the newly drifted machines and those of deleted NodePools."""
        return tuple(d for d in self.drifted if d.new)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "SimulationReport",
            "nodepools": {
                "changed": list(self.changed),
                "added": list(self.added),
                "deleted": list(self.deleted),
            },
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "drifted": [d.to_dict() for d in self.drifted],
            "driftBudgets": dict(self.drift_budgets),
            "cost": self.cost.to_dict(),
            "notes": list(self.notes),
        }


def validate(snapshot: SnapshotFile, change: Change) -> list[str]:
    """Every reason the change cannot be applied (empty when it can): a manifest the NodePool API
    refuses (schema, CEL-like rules, runtime validation), a duplicate, a NodePool to delete that is not
    in the snapshot."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, obj in enumerate(change.nodepools):
        where = f"nodepool #{index + 1}"
        if not isinstance(obj, Mapping):
            problems.append(f"{where}: expected a NodePool object, got {type(obj).__name__}")
            continue
        name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), Mapping) else None
        where = f"NodePool {name!r}" if name else where
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if (kind, api_version) != (api_nodepool.KIND, api_nodepool.API_VERSION):
            hint = (
                " (a Karpenter manifest? convert it with `nodesmith convert`)"
                if str(api_version).startswith("karpenter.")
                else ""
            )
            problems.append(
                f"{where}: expected apiVersion {api_nodepool.API_VERSION}, kind {api_nodepool.KIND}; "
                f"got {api_version!r}, {kind!r}{hint}"
            )
            continue
        try:
            pool = api_nodepool.NodePool.from_dict(obj)
        except errors.ValidationError as err:
            problems.append(f"{where}: {err}")
            continue
        problems += [f"{where}: {p}" for p in api_nodepool.runtime_errors(pool, snapshot.well_known_labels)]
        if pool.name in seen:
            problems.append(f"{where}: given twice")
        seen.add(pool.name)
    existing = snapshot.nodepool_objects()
    for name in change.deleted:
        if name not in existing:
            problems.append(f"NodePool {name!r} to delete is not in the snapshot")
        if name in seen:
            problems.append(f"NodePool {name!r} is both changed and deleted")
    return problems


def instance_types_after(
    snapshot: SnapshotFile, change: Change
) -> tuple[dict[str, tuple[InstanceType, ...]], list[str]]:
    """Instance types per NodePool after the change. A changed or added pool takes what the provider
    offered it (``change.instance_types``, live), else keeps the snapshot's when its ``nodeClassRef`` is
    unchanged, else borrows those of a pool with the same ``nodeClassRef`` (a provider offers per
    NodeClass) -- or has none, with a note."""
    known = {k: v for k, v in snapshot.instance_types.items() if k not in change.deleted}
    types = dict(known)
    pools = snapshot.nodepool_objects()
    notes: list[str] = []
    for obj in change.nodepools:
        name = str(obj["metadata"]["name"])
        ref = _class_ref(obj)
        if name in change.instance_types:
            types[name] = change.instance_types[name]
            continue
        if name in known and name in pools and _class_ref(pools[name]) == ref:
            continue  # same NodeClass: the provider offers the same types
        types.pop(name, None)
        donor = next((p for p, o in sorted(pools.items()) if _class_ref(o) == ref and p in known), None)
        if donor is None:
            notes.append(f"no instance types known for NodePool {name} (NodeClass {ref.get('name')!r})")
            continue
        types[name] = known[donor]
        notes.append(f"NodePool {name} uses the instance types the snapshot has for {donor} (same NodeClass)")
    return types, notes


def _class_ref(obj: Obj) -> dict[str, Any]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return dict(spec.get("nodeClassRef") or {})


def _cost_now(snap: Snapshot, types: Mapping[str, Sequence[InstanceType]]) -> tuple[float, list[str]]:
    total, unpriced = 0.0, []
    for node in snap.nodes:
        if node.marked_for_deletion or not pricing.running(node):  # as the cost metrics count
            continue
        price = pricing.node_price(node, types)
        if price is None:
            unpriced.append(node.name or node.key)
        else:
            total += price
    return total, sorted(unpriced)


def _drifted(
    node: StateNode,
    pool: api_nodepool.NodePool,
    old_pool: api_nodepool.NodePool | None,
    types_before: Mapping[str, Sequence[InstanceType]],
    types_after: Mapping[str, Sequence[InstanceType]],
    well_known: frozenset[str],
) -> tuple[str | None, bool]:
    """(drift reason after the change, whether it is new)."""
    claim = node.nodeclaim
    assert claim is not None
    condition = claim.condition(conditions.ConditionType.DRIFTED)
    marked = condition.reason if condition is not None and condition.is_true else None
    before = marked or (
        None
        if old_pool is None
        else _reason(
            marking.static_drift_reason(claim, old_pool, types_before.get(pool.name), well_known=well_known)
        )
    )
    after = _reason(
        marking.static_drift_reason(claim, pool, types_after.get(pool.name), well_known=well_known)
    )
    if after is None and marked is not None and marked not in _CORE_DRIFT:
        after = marked  # the provider's own drift is not about the NodePool
    return after, after is not None and before is None


def _reason(reason: marking.DriftReason | None) -> str | None:
    return None if reason is None else reason.value


def run(snapshot: SnapshotFile, change: Change, *, deadline: Callable[[], bool] | None = None) -> Report:
    """Simulate ``change`` on ``snapshot``. Raises `errors.ValidationError` listing every problem when
    the change is invalid (see `validate`)."""
    problems = validate(snapshot, change)
    if problems:
        raise errors.ValidationError("nodepool", "; ".join(problems))
    before_pools = snapshot.nodepool_objects()
    changed_names = change.names()
    # BEFORE: the snapshot as it is.
    before_state, notes = snapshot.state()
    before_snap = before_state.snapshot()
    types_before = dict(snapshot.instance_types)
    before, _ = replay.provision(before_snap, types_before, deadline=deadline)
    # AFTER: the changed snapshot; drift per machine of a changed pool.
    types_after, type_notes = instance_types_after(snapshot, change)
    after_file = snapshot.with_nodepools(change.nodepools, change.deleted)
    after_state, _ = after_file.state()
    after_snap = after_state.snapshot()
    old_models = dict(before_snap.nodepools)
    ctx = simulation.disruption_context(after_snap, types_after)
    drifted: list[DriftedNode] = []
    replaced_keys: list[str] = []
    for node in after_snap.nodes:
        claim, pool_name = node.nodeclaim, node.nodepool
        if claim is None or node.marked_for_deletion or pool_name is None:
            continue
        if pool_name in change.deleted:
            reason: str | None = DELETED_REASON
            new = True
        elif pool_name in changed_names and pool_name in after_snap.nodepools:
            reason, new = _drifted(
                node,
                after_snap.nodepools[pool_name],
                old_models.get(pool_name),
                types_before,
                types_after,
                after_snap.well_known_labels,
            )
        else:
            condition = claim.condition(conditions.ConditionType.DRIFTED)
            reason = condition.reason if condition is not None and condition.is_true else None
            new = False
        if reason is None:
            continue
        blockers = [
            r.message
            for r in candidates.reasons(node, ctx, candidates.DisruptionClass.EVENTUAL)
            if r.reason in (RejectionReason.DO_NOT_DISRUPT, RejectionReason.PDB)
        ]
        drifted.append(
            DriftedNode(
                node=node.name or node.key,
                nodeclaim=claim.name,
                nodepool=pool_name,
                reason=reason,
                new=new,
                instance_type=node.labels.get(labels.LABEL_INSTANCE_TYPE),
                price=pricing.node_price(node, types_before),
                pods=sum(1 for p in node.pods if disruption_pods.is_reschedulable(p)),
                blocked_by=tuple(blockers),
            )
        )
        if new:
            replaced_keys.append(node.key)
    drifted.sort(key=lambda d: (d.reason == DELETED_REASON, not d.new, d.nodepool, d.node))
    allowance = budgets.mapping(
        after_snap.nodepools.values(),
        after_snap.nodes,
        api_budgets.DisruptionReason.DRIFTED,
        after_snap.taken_at,
    )
    drift_budgets = {name: allowance[name] for name in changed_names if name in allowance}
    after_state.mark_for_deletion(*replaced_keys)
    after, _ = replay.provision(after_state.snapshot(), types_after, deadline=deadline)
    # Cost.
    current, unpriced = _cost_now(before_snap, types_before)
    removed = sum(d.price or 0.0 for d in drifted if d.new)
    cost = Cost(
        current=current,
        before=current + before.launch_cost,
        after=current - removed + after.launch_cost,
        unpriced_nodes=tuple(unpriced),
    )
    added = tuple(n for n in changed_names if n not in before_pools)
    return Report(
        changed=tuple(n for n in changed_names if n in before_pools),
        added=added,
        deleted=tuple(change.deleted),
        before=before,
        after=after,
        drifted=tuple(drifted),
        drift_budgets=drift_budgets,
        cost=cost,
        notes=tuple(notes + type_notes),
    )
