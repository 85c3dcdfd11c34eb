"""What the cluster itself contributes to topology, counted once and shared by every run over that cluster.

A scheduling run counts, for each topology group its pods bring, the pods already bound per domain (and
the domains the nodes carry), and it holds the inverse anti-affinity groups of every bound pod. That is a
pass over the whole cluster per group. A disruption simulation solves the same cluster hundreds of times,
each time with a few nodes taken away, so :class:`Baseline` does those passes once over *all* the nodes
and bound pods, keeping for each group what each node and pod added. ``topology.Topology`` starts every
run from these counts and takes back out what the run's missing nodes and excluded pods (the pods it
places itself) had added -- the same counts a run that never saw them would make, without the pass.

Built by ``scheduler.Prepared``; read only by ``topology.Topology``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias, final

import attrs

from nodesmith.api import labels
from nodesmith.api.requirements import Requirements
from nodesmith.scheduling import pods, taints, topologygroup

__all__ = ["Baseline", "BoundPod", "CountingNode", "Universe", "domains_of", "namespaces_of"]

_HOSTNAME: Final = labels.LABEL_HOSTNAME
_NOTHING: Final[frozenset[str]] = frozenset()

Universe: TypeAlias = dict[str, dict[str, list[tuple[taints.Taint, ...]]]]
"""Per key, the domains that exist, each with the taint sets of the NodePools offering it."""

GroupKey: TypeAlias = tuple[Any, ...]


@final
@attrs.frozen(slots=True)
class BoundPod:
    """A pod already on a node, as topology counting sees it."""

    uid: str
    namespace: str
    labels: Mapping[str, str]
    node: str
    anti_affinity: tuple[pods.AffinityTerm, ...] = ()

    @classmethod
    def from_dict(
        cls, pod: Mapping[str, Any], node: str, parsed: pods.SchedulingPod | None = None
    ) -> BoundPod | None:
        """``None`` for pods that do not count: terminal or terminating ones. ``parsed``: the pod already
        parsed, if the caller has it; without it, a pod `pods.inert_when_bound` is read without parsing."""
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            return None
        if parsed is None and pods.inert_when_bound(pod):
            ref, pod_labels = pods.identity(pod)
            return cls(ref.uid, ref.namespace, pod_labels, node)
        parsed = parsed if parsed is not None else pods.parse_pod(pod)
        return cls(parsed.ref.uid, parsed.namespace, parsed.labels, node, parsed.anti_affinity)


@final
@attrs.frozen(slots=True)
class CountingNode:
    """A node's labels and taints, for counting the pods on it."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[taints.Taint, ...] = ()
    real: bool = True
    """False for an in-flight NodeClaim: its labels do not add domains (it has no Node yet)."""


def namespaces_of(
    namespace_labels: Mapping[str, Mapping[str, str]], namespace: str, term: pods.AffinityTerm
) -> frozenset[str] | None:
    """The namespaces an affinity term selects (``None``: all of them)."""
    if term.namespace_selector is None:
        return term.namespaces or frozenset((namespace,))
    if (
        not term.namespace_selector.nothing
        and not term.namespace_selector.match_labels
        and not term.namespace_selector.expressions
    ):
        return None  # an empty namespaceSelector selects every namespace
    selected = {
        ns for ns, ns_labels in namespace_labels.items() if term.namespace_selector.matches(ns_labels)
    }
    return frozenset(selected | term.namespaces)


def domains_of(universe: Universe, key: str, tolerations: tuple[taints.Toleration, ...] | None) -> list[str]:
    """The domains of ``key`` a new group starts with: all of them, or those offered by a NodePool whose
    taints ``tolerations`` tolerate."""
    found = universe.get(key, {})
    if tolerations is None:
        return list(found)
    return [d for d, groups in found.items() if any(taints.tolerates_all(g, tolerations) for g in groups)]


def _counts_on(
    group: topologygroup.TopologyGroup, node: CountingNode, requirements: Callable[[str], Requirements]
) -> bool:
    """The group's node filter admits ``node`` (its label requirements are made only if the filter has
    terms)."""
    node_filter = group.node_filter
    if not node_filter.matches_taints(node.taints):
        return False
    return not node_filter.terms or node_filter.matches_requirements(requirements(node.name), _NOTHING)


def node_domain(
    group: topologygroup.TopologyGroup, node: CountingNode, requirements: Callable[[str], Requirements]
) -> str | None:
    """The domain ``node`` itself makes known to ``group`` (Karpenter ``countDomains``), if any."""
    if node.real and group.key in node.labels and _counts_on(group, node, requirements):
        return node.labels[group.key]
    return None


def pod_domain(
    group: topologygroup.TopologyGroup,
    pod: BoundPod,
    node: CountingNode,
    requirements: Callable[[str], Requirements],
) -> str | None:
    """The domain where ``group`` counts the bound ``pod``, if it counts it (the hostname falls back to the
    node's name)."""
    if not group.selects(pod.namespace, pod.labels):
        return None
    domain = node.labels.get(group.key)
    if domain is None and group.key == _HOSTNAME:
        domain = node.name
    if domain is None or not _counts_on(group, node, requirements):
        return None
    return domain


@final
class Baseline:
    """Every node and bound pod of a cluster, with group counts made over all of them on demand.

    ``hostnames`` maps each node that takes pods (the scheduler's existing nodes, not the nodes being
    deleted) to its hostname: a run registers those hostnames as domains. Bound pods keep a position
    (their order across ``nodes``) so a run can name the ones it excludes and rebuild the order in which
    inverse anti-affinity groups would have been created without them."""

    def __init__(
        self,
        universe: Universe,
        nodes: Sequence[CountingNode],
        bound: Sequence[BoundPod],
        hostnames: Mapping[str, str],
        namespaces: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.templates_universe: Universe = {k: dict(v) for k, v in universe.items()}
        self.universe: Universe = {k: dict(v) for k, v in universe.items()}
        self.hostnames = dict(hostnames)
        self.carriers: dict[str, int] = {}
        """Hostname → how many nodes taking pods carry it."""
        if hostnames:
            registered = self.universe.setdefault(_HOSTNAME, {})
            for hostname in hostnames.values():
                registered.setdefault(hostname, [()])
                self.carriers[hostname] = self.carriers.get(hostname, 0) + 1
        self.namespace_labels = namespaces
        self.nodes = {n.name: n for n in nodes}
        self._requirements: dict[str, Requirements] = {}
        self.bound = [p for p in bound if p.node in self.nodes]
        self.by_node: dict[str, list[int]] = {}
        self.by_uid: dict[str, list[int]] = {}
        for position, pod in enumerate(self.bound):
            self.by_node.setdefault(pod.node, []).append(position)
            self.by_uid.setdefault(pod.uid, []).append(position)
        self.inverse: dict[GroupKey, topologygroup.TopologyGroup] = {}
        """Inverse anti-affinity groups of every bound pod, counted, in creation order."""
        self.inverse_of: dict[int, tuple[GroupKey, ...]] = {}
        """Bound position → the inverse groups its terms make, in term order."""
        self.contributors: dict[GroupKey, list[int]] = {}
        self.rank: dict[GroupKey, tuple[int, int]] = {}
        """Inverse group → (position, term index) of the term that created it."""
        for position, pod in enumerate(self.bound):
            if pod.anti_affinity:
                self._add_inverse(position, pod)
        self._counted: dict[GroupKey, tuple[topologygroup.TopologyGroup, dict[str, int]]] = {}
        self._inverse_selecting: dict[tuple[str, frozenset[tuple[str, str]]], tuple[GroupKey, ...]] = {}

    def _add_inverse(self, position: int, pod: BoundPod) -> None:
        node = self.nodes[pod.node]
        keys = []
        for index, term in enumerate(pod.anti_affinity):
            group = topologygroup.TopologyGroup(
                topologygroup.Kind.ANTI_AFFINITY,
                term.topology_key,
                namespaces_of(self.namespace_labels, pod.namespace, term),
                term.selector,
                domains=domains_of(self.universe, term.topology_key, None),
            )
            key = group.hash_key
            group = self.inverse.setdefault(key, group)
            self.rank.setdefault(key, (position, index))
            self.contributors.setdefault(key, []).append(position)
            keys.append(key)
            domain = node.labels.get(group.key)
            if domain is not None:
                group.record(domain)
        self.inverse_of[position] = tuple(keys)

    def requirements(self, name: str) -> Requirements:
        """Node ``name``'s labels as requirements (made on first use: most groups never filter nodes)."""
        found = self._requirements.get(name)
        if found is None:
            found = self._requirements[name] = Requirements.from_labels(self.nodes[name].labels)
        return found

    def counted(
        self, group: topologygroup.TopologyGroup
    ) -> tuple[topologygroup.TopologyGroup, dict[str, int]]:
        """``group`` counted over every node and bound pod (never to be changed), and per domain how many
        nodes made it known."""
        found = self._counted.get(group.hash_key)
        if found is None:
            counted = group.blank(domains_of(self.universe, group.key, group.node_filter.tolerations))
            support: dict[str, int] = {}
            for node in self.nodes.values():
                domain = node_domain(counted, node, self.requirements)
                if domain is not None:
                    counted.register(domain)
                    support[domain] = support.get(domain, 0) + 1
            for pod in self.bound:
                domain = pod_domain(counted, pod, self.nodes[pod.node], self.requirements)
                if domain is not None:
                    counted.record(domain)
            found = self._counted[group.hash_key] = (counted, support)
        return found

    def inverse_selecting(
        self, namespace: str, pod_labels: Mapping[str, str], label_key: tuple[str, frozenset[tuple[str, str]]]
    ) -> tuple[GroupKey, ...]:
        """Inverse groups whose owners refuse a pod with these labels, in creation order."""
        found = self._inverse_selecting.get(label_key)
        if found is None:
            found = self._inverse_selecting[label_key] = tuple(
                key for key, g in self.inverse.items() if g.selects(namespace, pod_labels)
            )
        return found

    def excluded(self, removed: Iterable[str], batch_uids: Iterable[str]) -> set[int]:
        """Positions of the bound pods a run does not count: those on ``removed`` nodes and those it places."""
        out: set[int] = set()
        for name in removed:
            out.update(self.by_node.get(name, ()))
        for uid in batch_uids:
            found = self.by_uid.get(uid)
            if found:
                out.update(found)
        return out
