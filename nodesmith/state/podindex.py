"""The pod side of the cluster state: every pod, pods by node, requests per node, daemonset pods, and
the inverse anti-affinity index -- all maintained incrementally, one event at a time.

Fed by `nodesmith.state.cluster.ClusterState` (which receives Pod events from the informer and parses
each pod once into a `nodesmith.state.views.PodView`); consumed by ClusterState's `StateNode` views and
snapshots. Requests (the Kubernetes ``PodRequests`` formula, plus ``pods: 1``) come parsed with the view,
added when a pod comes and subtracted from the stored view when it changes or goes.

What counts against a node (Karpenter's ``state.Cluster.updateNodeUsageFromPod``): every pod bound to
it (``spec.nodeName``) that is not terminal (phase Succeeded/Failed); terminating pods still count until
they are gone. DaemonSet pods are also summed separately (``daemonset_requests``).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from nodesmith.api import quantity
from nodesmith.state.views import PodView

__all__ = ["PodIndex"]


def _add_into(target: dict[str, int], values: Mapping[str, int], sign: int) -> None:
    for name, amount in values.items():
        total = target.get(name, 0) + sign * amount
        if total:
            target[name] = total
        else:
            target.pop(name, None)


@typing.final
class PodIndex:
    """Pods (as parsed, `PodView`) and their per-node aggregates; `upsert`/`delete` return the node names
    whose view changed."""

    def __init__(self) -> None:
        self.views: dict[str, PodView] = {}
        self.unbound: dict[str, PodView] = {}
        self.by_node: dict[str, dict[str, PodView]] = {}
        self.requests: dict[str, dict[str, int]] = {}
        self.daemonset_requests: dict[str, dict[str, int]] = {}
        self.daemonset_pods: dict[str, dict[str, PodView]] = {}
        self.anti_affinity: dict[str, PodView] = {}
        self.anti_affinity_by_topology: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.views)

    def upsert(self, pod: PodView) -> set[str]:
        """Add or replace ``pod`` (parsed already, so this cannot fail halfway)."""
        key = pod.key
        node = pod.counts_on
        changed = self._remove(key)
        self.views[key] = pod
        if not pod.node_name and not pod.terminal:
            self.unbound[key] = pod
        if pod.daemonset is not None:
            self.daemonset_pods.setdefault(pod.daemonset, {})[key] = pod
        if node is not None:
            self.by_node.setdefault(node, {})[key] = pod
            _add_into(self.requests.setdefault(node, {}), pod.requests, +1)
            if pod.daemonset is not None:
                _add_into(self.daemonset_requests.setdefault(node, {}), pod.requests, +1)
            if pod.anti_affinity_topologies:
                self.anti_affinity[key] = pod
                for topology in pod.anti_affinity_topologies:
                    self.anti_affinity_by_topology.setdefault(topology, set()).add(key)
            changed.add(node)
        return changed

    def delete(self, key: str) -> set[str]:
        """Forget the pod at ``key``; unknown keys are fine."""
        return self._remove(key)

    def _remove(self, key: str) -> set[str]:
        old = self.views.pop(key, None)
        if old is None:
            return set()
        self.unbound.pop(key, None)
        if old.daemonset is not None:
            members = self.daemonset_pods.get(old.daemonset)
            if members is not None:
                members.pop(key, None)
                if not members:
                    del self.daemonset_pods[old.daemonset]
        node = old.counts_on
        if node is None or key not in self.by_node.get(node, {}):
            return set()
        bound = self.by_node[node]
        del bound[key]
        if not bound:
            del self.by_node[node]
        _add_into(self.requests[node], old.requests, -1)
        if not self.requests[node]:
            del self.requests[node]
        if old.daemonset is not None:
            _add_into(self.daemonset_requests[node], old.requests, -1)
            if not self.daemonset_requests[node]:
                del self.daemonset_requests[node]
        if self.anti_affinity.pop(key, None) is not None:
            for topology in old.anti_affinity_topologies:
                keys = self.anti_affinity_by_topology.get(topology)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self.anti_affinity_by_topology[topology]
        return {node}

    def newest_daemonset_pod(self, daemonset: str) -> PodView | None:
        """The most recently created pod of ``daemonset`` (Karpenter simulates daemonset overhead with it)."""
        members = self.daemonset_pods.get(daemonset)
        if not members:
            return None
        return max(members.values(), key=lambda p: p.created)

    def requests_on(self, node: str) -> Mapping[str, int]:
        return self.requests.get(node, {})

    def total_requests(self) -> dict[str, int]:
        return quantity.sum_of(self.requests.values())
