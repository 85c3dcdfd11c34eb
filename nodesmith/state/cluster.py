"""`ClusterState`: the one in-memory model of the cluster that every decision reads.

Fed by the informers (`nodesmith.state.informer`, through the `on_upsert`/`on_delete`/`on_synced`
handler methods) and by the reconcilers that must not wait for a watch round trip: the provisioner
inserts the NodeClaims it just created (`update_nodeclaim_created`) and nominates nodes, disruption and
termination mark machines for deletion. Consumed through `snapshot()` by the simulation and through
`synced()` / `consolidation_state()` by the provisioner and disruption loops.

The join (Karpenter's ``state.Cluster``): Nodes and NodeClaims meet in one `statenode.Slot` keyed by
providerID. A NodeClaim without a providerID is tracked but not yet a machine (it is not launched);
an unmanaged Node without a providerID is keyed ``node/<name>``; a managed Node (``nodesmith.io/nodepool``
label) without a providerID is held back until it gets one. Pods live in a `podindex.PodIndex`.

The synced gate (spec 2.2, lesson 1): both the Node and the NodeClaim informers finished their first
list -- from then on every API Node and NodeClaim is in the state by construction, because the state is
fed synchronously from the informers' events -- and every NodeClaim the state knows has a providerID
(its launch returned) and no managed Node is waiting for one.

The change feed: after applying each informer event the state
publishes a `nodesmith.state.changes.Change` (kind and key, never the object) to its subscribers, the
reconcilers' ``on_change`` methods, subscribed by the composition root. Pods are parsed once here into
`nodesmith.state.views.PodView`s.

Everything here is synchronous and single-threaded (the informers and reconcilers run on one event
loop), so no locks; the clock is injected. Objects that cannot be parsed are logged with kind and name
and skipped; a previously good version of the object stays in place.
"""

from __future__ import annotations

import datetime as dt
import logging
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.api import nodepool as api_nodepool
from nodesmith.kube import resources
from nodesmith.state import podindex, statenode
from nodesmith.state.changes import Change, PodMove
from nodesmith.state.snapshot import Snapshot, frozen_mapping
from nodesmith.state.views import PodView

__all__ = ["CONSOLIDATION_REFRESH", "ClusterState", "object_key"]

log = logging.getLogger(__name__)

Obj: typing.TypeAlias = Mapping[str, typing.Any]

#: ConsolidationState() refreshes itself at least this often (Karpenter: 5 minutes), so disruption
#: re-evaluates even when nothing it can see changed (say, an instance type became available).
CONSOLIDATION_REFRESH = dt.timedelta(minutes=5)

Subscriber: typing.TypeAlias = Callable[[Change], None]
"""Told of every applied informer event (see `ClusterState.subscribe`)."""

#: What a malformed object can raise while being parsed.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    errors.NodesmithError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
)


def object_key(obj: Obj) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def _label(meta: Obj, key: str) -> str | None:
    return (meta.get("labels") or {}).get(key)


@typing.final
class ClusterState:
    """The cluster as nodesmith knows it; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        clock: Callable[[], dt.datetime],
        node_classes: Sequence[resources.Resource] = (),
        well_known_labels: frozenset[str] = labels.CORE_WELL_KNOWN_LABELS,
    ) -> None:
        self._clock = clock
        self.node_classes = tuple(node_classes)
        self.well_known_labels = well_known_labels
        """The core's and the loaded plugins' well-known labels, handed to every decision as a value."""
        self._slots: dict[str, statenode.Slot] = {}
        self._node_slot: dict[str, str] = {}
        self._claim_slot: dict[str, str] = {}
        self._waiting_nodes: set[str] = set()
        self._pods = podindex.PodIndex()
        self._pods_frozen: Mapping[str, PodView] | None = None
        """The last snapshot's copy of every pod, reused until a pod event arrives: at idle most
        events are Node heartbeats, and copying 150,000 pods per snapshot made idle cost grow with
        nodes × pods (tests/bench/bench_cluster.py)."""
        self._dirty_names: set[str] = set()
        self._nodepools: dict[str, api_nodepool.NodePool] = {}
        self._objects: dict[resources.Resource, dict[str, Obj]] = {}
        self._synced: set[resources.Resource] = set()
        self._malformed: dict[resources.Resource, set[str]] = {}
        self._consolidation_state = clock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(change)`` (`nodesmith.state.changes.Change`) after every informer event has
        been applied.

        The one way reconcilers learn that something changed: they read what they need from the state,
        enqueue keys and return at once (a subscriber runs on the informer's path; one that raises is
        logged and skipped). The composition root subscribes every reconciler's ``on_change``."""
        self._subscribers.append(subscriber)

    def _notify(self, change: Change) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(change)
            except Exception:
                log.exception("state subscriber %r failed", subscriber)

    # -- informer handler protocol ---------------------------------------------------------------

    def on_upsert(self, resource: resources.Resource, obj: Obj, old: Obj | None = None) -> None:
        """An object was added or changed (or found in a relist)."""
        name = _describe(obj)
        pod_move = None
        try:
            if resource == resources.NODES:
                self.update_node(obj)
            elif resource == resources.NODECLAIMS:
                self.update_nodeclaim(obj)
            elif resource == resources.PODS:
                pod = PodView.parse(obj)
                pod_move = _pod_move(self._pods.views.get(pod.key), pod)
                self.update_pod(pod)
            elif resource == resources.NODEPOOLS:
                self._update_nodepool(obj)
            else:
                self._objects.setdefault(resource, {})[object_key(obj)] = obj
        except PARSE_ERRORS as err:
            self._malformed.setdefault(resource, set()).add(name)
            log.warning("skipping malformed %s %s: %s", resource.kind, name, err)
            return
        self._malformed.get(resource, set()).discard(name)
        self._notify(Change(resource, name, pod_move=pod_move))

    def on_delete(self, resource: resources.Resource, obj: Obj) -> None:
        """An object is gone (watch DELETED, or absent from a relist)."""
        try:
            key = object_key(obj)
        except PARSE_ERRORS as err:
            log.warning("skipping malformed %s deletion: %s", resource.kind, err)
            return
        self._malformed.get(resource, set()).discard(key)
        pod_move = None
        if resource == resources.NODES:
            self.delete_node(key)
        elif resource == resources.NODECLAIMS:
            self.delete_nodeclaim(key)
        elif resource == resources.PODS:
            pod_move = _pod_move(self._pods.views.get(key), None)
            self.delete_pod(key)
        elif resource == resources.NODEPOOLS:
            self._objects.get(resource, {}).pop(key, None)
            if self._nodepools.pop(key, None) is not None:
                self.mark_unconsolidated()
        else:
            self._objects.get(resource, {}).pop(key, None)
        self._notify(Change(resource, key, deleted=True, pod_move=pod_move))

    def on_synced(self, resource: resources.Resource) -> None:
        """The informer of ``resource`` finished its first list."""
        self._synced.add(resource)

    # -- nodes and nodeclaims --------------------------------------------------------------------

    def update_node(self, node: Obj) -> None:
        """Insert or replace a Node (raises on a malformed one; `on_upsert` catches that)."""
        part = statenode.parse_node(node)
        managed = _label(node["metadata"], labels.LABEL_NODEPOOL) is not None
        if part.provider_id is None and managed:
            self._detach_node(part.name)
            self._waiting_nodes.add(part.name)
            return
        self._waiting_nodes.discard(part.name)
        key = part.provider_id or f"node/{part.name}"
        if self._node_slot.get(part.name) not in (None, key):
            self._detach_node(part.name)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = statenode.Slot(key)
            self.mark_unconsolidated()
        elif slot.node is not None and slot.node.name != part.name:
            log.warning(
                "nodes %s and %s share providerID %s; keeping %s", slot.node.name, part.name, key, part.name
            )
            self._node_slot.pop(slot.node.name, None)
        if (
            slot.node is None
            or _consolidation_relevant(slot.node.labels, part.labels)
            or slot.node.deleting != part.deleting
        ):
            self.mark_unconsolidated()
        slot.node = part
        self._node_slot[part.name] = key
        self._changed(slot)

    def delete_node(self, name: str) -> None:
        self._waiting_nodes.discard(name)
        self._detach_node(name)

    def _detach_node(self, name: str) -> None:
        key = self._node_slot.pop(name, None)
        slot = self._slots.get(key) if key else None
        if slot is None:
            return
        slot.node = None
        self._dirty_names.add(name)
        self._changed(slot)
        self.mark_unconsolidated()

    def update_nodeclaim(self, obj: Obj) -> None:
        """Insert or replace a NodeClaim (raises `errors.ValidationError` on a malformed one)."""
        claim = api_nodeclaim.NodeClaim.from_dict(obj)
        key = claim.status.provider_id or f"nodeclaim/{claim.name}"
        old_key = self._claim_slot.get(claim.name)
        carried: statenode.Slot | None = None
        if old_key is not None and old_key != key:
            carried = self._slots.get(old_key)
            self._detach_claim(claim.name)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = statenode.Slot(key)
            self.mark_unconsolidated()
        if carried is not None:  # launched: keep what was recorded against the unlaunched claim
            slot.marked = slot.marked or carried.marked
            slot.nominated_until = max(
                (t for t in (slot.nominated_until, carried.nominated_until) if t is not None), default=None
            )
        if slot.nodeclaim is None or slot.nodeclaim.deleting != claim.deleting:
            self.mark_unconsolidated()
        slot.nodeclaim, slot.nodeclaim_object = claim, obj
        self._claim_slot[claim.name] = key
        self._changed(slot)

    def update_nodeclaim_created(self, obj: Obj) -> None:
        """The provisioner created this NodeClaim: track it now, before the watch delivers it, so the
        synced gate holds further provisioning until it has launched (has a providerID)."""
        self.update_nodeclaim(obj)

    def delete_nodeclaim(self, name: str) -> None:
        """Forget a NodeClaim (also for the provisioner when a create it announced failed)."""
        self._detach_claim(name)

    def _detach_claim(self, name: str) -> None:
        key = self._claim_slot.pop(name, None)
        slot = self._slots.get(key) if key else None
        if slot is None:
            return
        slot.nodeclaim = slot.nodeclaim_object = None
        self._changed(slot)
        self.mark_unconsolidated()

    def _changed(self, slot: statenode.Slot) -> None:
        slot.view = None
        if slot.empty:
            del self._slots[slot.key]

    # -- pods and other objects ------------------------------------------------------------------

    def update_pod(self, pod: PodView) -> None:
        self._pods_frozen = None
        changed = self._pods.upsert(pod)
        if changed:
            self._dirty_names |= changed
            self.mark_unconsolidated()

    def delete_pod(self, key: str) -> None:
        self._pods_frozen = None
        changed = self._pods.delete(key)
        if changed:
            self._dirty_names |= changed
            self.mark_unconsolidated()

    def _update_nodepool(self, obj: Obj) -> None:
        pool = api_nodepool.NodePool.from_dict(obj)
        self._objects.setdefault(resources.NODEPOOLS, {})[pool.name] = obj
        self._nodepools[pool.name] = pool
        self.mark_unconsolidated()

    # -- decisions recorded by reconcilers -------------------------------------------------------

    def mark_for_deletion(self, *keys: str) -> None:
        """Disruption/termination intend to delete these machines (state-node keys = providerIDs)."""
        self._set_marked(keys, True)

    def unmark_for_deletion(self, *keys: str) -> None:
        self._set_marked(keys, False)

    def _set_marked(self, keys: Iterable[str], marked: bool) -> None:
        for key in keys:
            slot = self._slots.get(key)
            if slot is not None and slot.marked != marked:
                slot.marked = marked
                slot.view = None
                self.mark_unconsolidated()

    def nominate(self, key: str, until: dt.datetime) -> None:
        """A pending pod is expected to land on this machine; keep it from disruption until ``until``
        (a later nomination extends, an earlier one never shortens)."""
        slot = self._slots.get(key)
        if slot is not None and (slot.nominated_until is None or until > slot.nominated_until):
            slot.nominated_until = until
            slot.view = None

    # -- gates -----------------------------------------------------------------------------------

    def has_synced(self, resource: resources.Resource) -> bool:
        return resource in self._synced

    def synced(self) -> bool:
        """True when decisions may be made: see "The synced gate" in the module docstring."""
        if not (self.has_synced(resources.NODES) and self.has_synced(resources.NODECLAIMS)):
            return False
        if self._waiting_nodes:
            return False
        return all(
            key in self._slots and not key.startswith("nodeclaim/") for key in self._claim_slot.values()
        )

    def unlaunched_nodeclaims(self) -> list[str]:
        """Names of NodeClaims without a providerID (what holds `synced` back)."""
        return sorted(name for name, key in self._claim_slot.items() if key.startswith("nodeclaim/"))

    def mark_unconsolidated(self) -> dt.datetime:
        """Something changed that may make consolidation possible."""
        self._consolidation_state = self._clock()
        return self._consolidation_state

    def consolidation_state(self) -> dt.datetime:
        """When the cluster last changed in a way that matters to consolidation; refreshed at least
        every `CONSOLIDATION_REFRESH` so disruption re-evaluates periodically."""
        if self._clock() - self._consolidation_state < CONSOLIDATION_REFRESH:
            return self._consolidation_state
        return self.mark_unconsolidated()

    # -- reads -----------------------------------------------------------------------------------

    def malformed(self, resource: resources.Resource) -> frozenset[str]:
        """Names of ``resource`` objects skipped because they could not be parsed."""
        return frozenset(self._malformed.get(resource, ()))

    def counts(self) -> dict[str, int]:
        """Sizes, for logs and metrics."""
        return {
            "slots": len(self._slots),
            "nodes": len(self._node_slot),
            "nodeclaims": len(self._claim_slot),
            "pods": len(self._pods),
            "bound_nodes": len(self._pods.by_node),
            **{r.plural: len(v) for r, v in self._objects.items()},
        }

    def state_node(self, key: str) -> statenode.StateNode | None:
        slot = self._slots.get(key)
        return self._view(slot) if slot is not None else None

    def key_for_node(self, name: str) -> str | None:
        """The state-node key of the Node called ``name``."""
        return self._node_slot.get(name)

    def key_for_nodeclaim(self, name: str) -> str | None:
        return self._claim_slot.get(name)

    def node_names(self) -> list[str]:
        """Names of the Nodes the state holds (a managed Node still waiting for its providerID excluded)."""
        return list(self._node_slot)

    def nodeclaim_names(self) -> list[str]:
        return list(self._claim_slot)

    def nodeclaims_of(self, nodepool: str) -> list[str]:
        """Names of the NodeClaims labelled with the NodePool ``nodepool``."""
        return [
            name
            for name, key in self._claim_slot.items()
            if (claim := self._slots[key].nodeclaim) is not None and claim.nodepool_name == nodepool
        ]

    def nodepool(self, name: str) -> api_nodepool.NodePool | None:
        """The last NodePool ``name`` that parsed, while it exists."""
        return self._nodepools.get(name)

    def nodepool_names(self) -> list[str]:
        return list(self._nodepools)

    def pod(self, key: str) -> PodView | None:
        """The pod at ``namespace/name``, as last seen."""
        return self._pods.views.get(key)

    def _view(self, slot: statenode.Slot) -> statenode.StateNode:
        name = slot.node_name
        if slot.view is None or (name is not None and name in self._dirty_names):
            pods: Mapping[str, PodView] = self._pods.by_node.get(name, {}) if name else {}
            requests = self._pods.requests.get(name, {}) if name else {}
            ds_requests = self._pods.daemonset_requests.get(name, {}) if name else {}
            slot.view = statenode.StateNode.build(slot, pods, requests, ds_requests)
        return slot.view

    def snapshot(self) -> Snapshot:
        """An immutable view of everything, for one simulation run."""
        nodes = tuple(
            self._view(slot) for key, slot in self._slots.items() if not key.startswith("nodeclaim/")
        )
        self._dirty_names.clear()
        unlaunched = {
            name: self._slots[key] for name, key in self._claim_slot.items() if key.startswith("nodeclaim/")
        }
        anti = tuple(
            (pod, pod.node_name)
            for pod in self._pods.anti_affinity.values()
            if pod.node_name is not None and pod.node_name in self._node_slot
        )
        daemonset_pods: dict[str, PodView] = {}
        for daemonset in self._pods.daemonset_pods:
            newest = self._pods.newest_daemonset_pod(daemonset)
            if newest is not None:
                daemonset_pods[daemonset] = newest
        if self._pods_frozen is None:
            self._pods_frozen = frozen_mapping(self._pods.views)
        return Snapshot(
            taken_at=self._clock(),
            synced=self.synced(),
            consolidation_state=self.consolidation_state(),
            nodes=nodes,
            unlaunched_nodeclaims=tuple(s.nodeclaim for s in unlaunched.values() if s.nodeclaim is not None),
            pods=self._pods_frozen,
            unbound_pods=tuple(self._pods.unbound.values()),
            daemonset_pods=types.MappingProxyType(daemonset_pods),
            anti_affinity_pods=anti,
            nodepools=frozen_mapping(self._nodepools),
            objects=types.MappingProxyType({r: frozen_mapping(v) for r, v in self._objects.items()}),
            well_known_labels=self.well_known_labels,
        )


def _describe(obj: Obj) -> str:
    try:
        return object_key(obj)
    except (KeyError, TypeError, AttributeError):
        return "<unnamed>"


def _workload_fingerprint(pod: PodView | None) -> tuple[str, bool, bool] | None:
    """(node, terminal, terminating) of a bound non-DaemonSet pod; None for anything else."""
    if pod is None or pod.node_name is None or pod.owned_by_daemonset:
        return None
    return (pod.node_name, pod.terminal, pod.terminating)


def _pod_move(previous: PodView | None, current: PodView | None) -> PodMove | None:
    before, after = _workload_fingerprint(previous), _workload_fingerprint(current)
    if before == after:
        return None
    nodes = frozenset(f[0] for f in (before, after) if f is not None)
    arrived = before is None and after is not None and not after[1] and not after[2]
    return PodMove(nodes, arrived)


def _consolidation_relevant(old: Mapping[str, str], new: Mapping[str, str]) -> bool:
    keys = (labels.LABEL_INITIALIZED, labels.LABEL_REGISTERED, labels.LABEL_NODEPOOL)
    return any(old.get(k) != new.get(k) for k in keys)
