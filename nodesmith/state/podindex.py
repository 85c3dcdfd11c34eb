"""The pod side of the cluster state: every pod, pods by node, requests per node, daemonset pods, and
the inverse anti-affinity index -- all maintained incrementally, one event at a time.

Fed by `nodesmith.state.cluster.ClusterState` (which receives Pod events from the informer and passes
each pod dict here); consumed by ClusterState's `StateNode` views and snapshots. Requests are computed
with `nodesmith.scheduling.pods.pod_requests` (the Kubernetes ``PodRequests`` formula, plus
``pods: 1``) when a pod is added, and subtracted again by recomputing them from the stored dict when it
changes or goes, so nothing per pod is kept beyond the dict itself and a few index slots.

What counts against a node (Karpenter's ``state.Cluster.updateNodeUsageFromPod``): every pod bound to
it (``spec.nodeName``) that is not terminal (phase Succeeded/Failed); terminating pods still count until
they are gone. DaemonSet pods are also summed separately (``daemonset_requests``).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from nodesmith.api import quantity
from nodesmith.scheduling import pods as scheduling_pods

__all__ = [
    "PodIndex",
    "daemonset_of",
    "has_required_anti_affinity",
    "is_terminal",
    "pod_key",
]

Obj: typing.TypeAlias = Mapping[str, typing.Any]


def pod_key(pod: Obj) -> str:
    """``namespace/name``."""
    meta = pod["metadata"]
    return f"{meta.get('namespace') or 'default'}/{meta['name']}"


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def daemonset_of(pod: Obj) -> str | None:
    """``namespace/name`` of the DaemonSet controlling ``pod``, if any."""
    meta = pod.get("metadata") or {}
    for owner in meta.get("ownerReferences") or ():
        if owner.get("kind") == "DaemonSet" and owner.get("controller", True):
            return f"{meta.get('namespace') or 'default'}/{owner.get('name')}"
    return None


def has_required_anti_affinity(pod: Obj) -> bool:
    anti = ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    return bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))


def _node_of(pod: Obj) -> str | None:
    """The node the pod counts against, or None (unbound or terminal)."""
    node = (pod.get("spec") or {}).get("nodeName")
    return str(node) if node and not is_terminal(pod) else None


def _add_into(target: dict[str, int], values: Mapping[str, int], sign: int) -> None:
    for name, amount in values.items():
        total = target.get(name, 0) + sign * amount
        if total:
            target[name] = total
        else:
            target.pop(name, None)


@typing.final
class PodIndex:
    """Pods and their per-node aggregates; `upsert`/`delete` return the node names whose view changed."""

    def __init__(self) -> None:
        self.pods: dict[str, Obj] = {}
        self.unbound: dict[str, Obj] = {}
        self.by_node: dict[str, dict[str, Obj]] = {}
        self.requests: dict[str, dict[str, int]] = {}
        self.daemonset_requests: dict[str, dict[str, int]] = {}
        self.daemonset_pods: dict[str, dict[str, Obj]] = {}
        self.anti_affinity: dict[str, Obj] = {}
        self.anti_affinity_by_topology: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.pods)

    def upsert(self, pod: Obj) -> set[str]:
        """Add or replace ``pod``. Raises ``ValueError``/``KeyError`` (``QuantityError`` is a
        ``ValueError``) before changing anything if it cannot be parsed."""
        key = pod_key(pod)
        node = _node_of(pod)
        requests = scheduling_pods.pod_requests(pod.get("spec") or {}) if node else {}
        anti_terms = _anti_affinity_topologies(pod) if node and has_required_anti_affinity(pod) else ()
        changed = self._remove(key)
        self.pods[key] = pod
        spec = pod.get("spec") or {}
        if not spec.get("nodeName") and not is_terminal(pod):
            self.unbound[key] = pod
        daemonset = daemonset_of(pod)
        if daemonset is not None:
            self.daemonset_pods.setdefault(daemonset, {})[key] = pod
        if node is not None:
            self.by_node.setdefault(node, {})[key] = pod
            _add_into(self.requests.setdefault(node, {}), requests, +1)
            if daemonset is not None:
                _add_into(self.daemonset_requests.setdefault(node, {}), requests, +1)
            if anti_terms:
                self.anti_affinity[key] = pod
                for topology in anti_terms:
                    self.anti_affinity_by_topology.setdefault(topology, set()).add(key)
            changed.add(node)
        return changed

    def delete(self, key: str) -> set[str]:
        """Forget the pod at ``key``; unknown keys are fine."""
        return self._remove(key)

    def _remove(self, key: str) -> set[str]:
        old = self.pods.pop(key, None)
        if old is None:
            return set()
        self.unbound.pop(key, None)
        daemonset = daemonset_of(old)
        if daemonset is not None:
            members = self.daemonset_pods.get(daemonset)
            if members is not None:
                members.pop(key, None)
                if not members:
                    del self.daemonset_pods[daemonset]
        node = _node_of(old)
        if node is None or key not in self.by_node.get(node, {}):
            return set()
        # It was indexed, so it parsed when it came in: recomputing its requests cannot fail.
        requests = scheduling_pods.pod_requests(old.get("spec") or {})
        bound = self.by_node[node]
        del bound[key]
        if not bound:
            del self.by_node[node]
        _add_into(self.requests[node], requests, -1)
        if not self.requests[node]:
            del self.requests[node]
        if daemonset is not None:
            _add_into(self.daemonset_requests[node], requests, -1)
            if not self.daemonset_requests[node]:
                del self.daemonset_requests[node]
        if self.anti_affinity.pop(key, None) is not None:
            for topology in _anti_affinity_topologies(old):
                keys = self.anti_affinity_by_topology.get(topology)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self.anti_affinity_by_topology[topology]
        return {node}

    def newest_daemonset_pod(self, daemonset: str) -> Obj | None:
        """The most recently created pod of ``daemonset`` (Karpenter simulates daemonset overhead with it)."""
        members = self.daemonset_pods.get(daemonset)
        if not members:
            return None
        return max(
            members.values(), key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or "")
        )

    def requests_on(self, node: str) -> Mapping[str, int]:
        return self.requests.get(node, {})

    def total_requests(self) -> dict[str, int]:
        return quantity.sum_of(self.requests.values())


def _anti_affinity_topologies(pod: Obj) -> tuple[str, ...]:
    anti = ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    return tuple(sorted({str(term.get("topologyKey") or "") for term in terms}))
