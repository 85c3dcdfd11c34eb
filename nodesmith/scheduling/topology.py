"""Topology across the run: the groups of every pending pod, the domain universe, and bound pods' counts.

``scheduler`` builds one :class:`Topology` per run from the templates (which domains NodePools can create),
the bound pods on nodes (initial counts and inverse anti-affinity) and the pending pods (:meth:`update`).
``nodeclaim`` and ``existingnode`` call :meth:`add_requirements` to learn which domains a pod may take on a
node, and the scheduler calls :meth:`record` after placing it and :meth:`register` for every new hostname.
Karpenter ``topology.go``: spread constraints and pod (anti-)affinity terms of pending pods (preferred
terms count as required until relaxed); required anti-affinity of bound and pending pods also blocks the
pods it selects ("inverse" groups). Pods in the batch are not counted from the cluster, only as placed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.scheduling import pods, taints, topologygroup

__all__ = ["BoundPod", "CountingNode", "Topology", "TopologyFailure"]

_HOSTNAME: Final = labels.LABEL_HOSTNAME
_NO_GROUPS: Final[tuple[topologygroup.TopologyGroup, ...]] = ()


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
        parsed, if the caller has it."""
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            return None
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


@final
@attrs.frozen(slots=True)
class TopologyFailure:
    """Which group left no domain for the pod."""

    kind: topologygroup.Kind
    key: str
    selector: str


class Topology:
    """All topology groups of one run (mutable; owned by the scheduler)."""

    def __init__(
        self,
        universe: Mapping[str, Mapping[str, Sequence[tuple[taints.Taint, ...]]]],
        nodes: Sequence[CountingNode],
        bound: Sequence[BoundPod],
        batch_uids: Iterable[str],
        namespaces: Mapping[str, Mapping[str, str]],
    ) -> None:
        self._universe = {k: dict(v) for k, v in universe.items()}
        self._nodes = {n.name: (n, Requirements.from_labels(n.labels)) for n in nodes}
        excluded = set(batch_uids)
        self._bound = [p for p in bound if p.uid not in excluded and p.node in self._nodes]
        self._namespace_labels = namespaces
        self.groups: dict[tuple[Any, ...], topologygroup.TopologyGroup] = {}
        self.inverse: dict[tuple[Any, ...], topologygroup.TopologyGroup] = {}
        self._by_key: dict[str, list[topologygroup.TopologyGroup]] = {}
        self._owned: dict[str, tuple[topologygroup.TopologyGroup, ...]] = {}
        self._inverse_owned: dict[str, tuple[topologygroup.TopologyGroup, ...]] = {}
        self._for_key: dict[
            tuple[Any, ...],
            tuple[tuple[topologygroup.TopologyGroup, ...], tuple[topologygroup.TopologyGroup, ...]],
        ] = {}
        self._selecting: dict[
            tuple[str, frozenset[tuple[str, str]]], tuple[topologygroup.TopologyGroup, ...]
        ] = {}
        self._inverse_selecting: dict[
            tuple[str, frozenset[tuple[str, str]]], tuple[topologygroup.TopologyGroup, ...]
        ] = {}
        for pod in self._bound:
            if pod.anti_affinity:
                node = self._nodes[pod.node][0]
                for group in self._inverse_groups(pod.namespace, pod.anti_affinity):
                    domain = node.labels.get(group.key)
                    if domain is not None:
                        group.record(domain)

    # -- groups -------------------------------------------------------------------------------------

    def _namespaces(self, namespace: str, term: pods.AffinityTerm) -> frozenset[str] | None:
        if term.namespace_selector is None:
            return term.namespaces or frozenset((namespace,))
        if (
            not term.namespace_selector.nothing
            and not term.namespace_selector.match_labels
            and not term.namespace_selector.expressions
        ):
            return None  # an empty namespaceSelector selects every namespace
        selected = {
            ns
            for ns, ns_labels in self._namespace_labels.items()
            if term.namespace_selector.matches(ns_labels)
        }
        return frozenset(selected | term.namespaces)

    def _domains(self, key: str, tolerations: tuple[taints.Toleration, ...] | None) -> list[str]:
        universe = self._universe.get(key, {})
        if tolerations is None:
            return list(universe)
        return [
            d for d, groups in universe.items() if any(taints.tolerates_all(g, tolerations) for g in groups)
        ]

    def _intern(
        self, table: dict[tuple[Any, ...], topologygroup.TopologyGroup], group: topologygroup.TopologyGroup
    ) -> topologygroup.TopologyGroup:
        existing = table.get(group.hash_key)
        if existing is not None:
            return existing
        table[group.hash_key] = group
        self._by_key.setdefault(group.key, []).append(group)
        if table is self.groups:
            self._count(group)
            self._selecting.clear()
        else:
            self._inverse_selecting.clear()
        return group

    def _count(self, group: topologygroup.TopologyGroup) -> None:
        """Initial counts from bound pods (Karpenter ``countDomains``): only nodes carrying the key (the
        hostname falls back to the node name) and passing the group's node filter count."""
        for node, requirements in self._nodes.values():
            if (
                node.real
                and group.key in node.labels
                and group.node_filter.matches(node.taints, requirements, frozenset())
            ):
                group.register(node.labels[group.key])
        for pod in self._bound:
            if not group.selects(pod.namespace, pod.labels):
                continue
            node, requirements = self._nodes[pod.node]
            domain = node.labels.get(group.key)
            if domain is None and group.key == _HOSTNAME:
                domain = node.name
            if domain is None or not group.node_filter.matches(node.taints, requirements, frozenset()):
                continue
            group.record(domain)

    def _node_filter(
        self, pod: pods.SchedulingPod, spread: pods.SpreadConstraint
    ) -> topologygroup.NodeFilter:
        terms: tuple[Requirements, ...] = ()
        if spread.honor_node_affinity:
            terms = pod.required_terms or (pod.node_selector,)
            if all(len(t) == 0 for t in terms):
                terms = ()
        tolerations = pod.tolerations if spread.honor_node_taints else None
        if not terms and tolerations is None:
            return topologygroup.NO_FILTER
        return topologygroup.NodeFilter(terms, tolerations)

    def _inverse_groups(
        self, namespace: str, terms: Iterable[pods.AffinityTerm]
    ) -> tuple[topologygroup.TopologyGroup, ...]:
        return tuple(
            self._intern(
                self.inverse,
                topologygroup.TopologyGroup(
                    topologygroup.Kind.ANTI_AFFINITY,
                    term.topology_key,
                    self._namespaces(namespace, term),
                    term.selector,
                    domains=self._domains(term.topology_key, None),
                ),
            )
            for term in terms
        )

    def _groups_for(
        self, pod: pods.SchedulingPod
    ) -> tuple[tuple[topologygroup.TopologyGroup, ...], tuple[topologygroup.TopologyGroup, ...]]:
        cached = self._for_key.get(pod.key)
        if cached is not None:
            return cached
        owned: list[topologygroup.TopologyGroup] = []
        for spread in pod.spread:
            node_filter = self._node_filter(pod, spread)
            owned.append(
                topologygroup.TopologyGroup(
                    topologygroup.Kind.SPREAD,
                    spread.topology_key,
                    frozenset((pod.namespace,)),
                    spread.selector,
                    max_skew=spread.max_skew,
                    min_domains=spread.min_domains,
                    node_filter=node_filter,
                    domains=self._domains(spread.topology_key, node_filter.tolerations),
                )
            )
        for kind, terms in (
            (topologygroup.Kind.AFFINITY, [*pod.affinity, *(t for _, t in pod.preferred_affinity)]),
            (
                topologygroup.Kind.ANTI_AFFINITY,
                [*pod.anti_affinity, *(t for _, t in pod.preferred_anti_affinity)],
            ),
        ):
            for term in terms:
                owned.append(
                    topologygroup.TopologyGroup(
                        kind,
                        term.topology_key,
                        self._namespaces(pod.namespace, term),
                        term.selector,
                        domains=self._domains(term.topology_key, None),
                    )
                )
        result = (
            tuple(self._intern(self.groups, g) for g in owned),
            self._inverse_groups(pod.namespace, pod.anti_affinity) if pod.anti_affinity else _NO_GROUPS,
        )
        self._for_key[pod.key] = result
        return result

    def update(self, pod: pods.SchedulingPod) -> None:
        """(Re-)register the groups ``pod`` owns, as written or relaxed (Karpenter ``Topology.Update``)."""
        owned, inverse = self._groups_for(pod)
        self._owned[pod.ref.uid] = owned
        self._inverse_owned[pod.ref.uid] = inverse

    def owned(self, pod: pods.SchedulingPod) -> tuple[topologygroup.TopologyGroup, ...]:
        return self._owned.get(pod.ref.uid, _NO_GROUPS)

    def _label_key(self, pod: pods.SchedulingPod) -> tuple[str, frozenset[tuple[str, str]]]:
        return (pod.namespace, pod.key[1])

    def selecting(self, pod: pods.SchedulingPod) -> tuple[topologygroup.TopologyGroup, ...]:
        """Groups (not inverse) that count ``pod``."""
        label_key = self._label_key(pod)
        found = self._selecting.get(label_key)
        if found is None:
            found = self._selecting[label_key] = tuple(
                g for g in self.groups.values() if g.selects(pod.namespace, pod.labels)
            )
        return found

    def inverse_selecting(self, pod: pods.SchedulingPod) -> tuple[topologygroup.TopologyGroup, ...]:
        """Inverse anti-affinity groups whose owners refuse ``pod``."""
        label_key = self._label_key(pod)
        found = self._inverse_selecting.get(label_key)
        if found is None:
            found = self._inverse_selecting[label_key] = tuple(
                g for g in self.inverse.values() if g.selects(pod.namespace, pod.labels)
            )
        return found

    # -- domains ------------------------------------------------------------------------------------

    def register(self, key: str, domain: str) -> None:
        """A new domain (a new NodeClaim's hostname) exists from now on, for present and future groups."""
        self._universe.setdefault(key, {}).setdefault(domain, [()])
        for group in self._by_key.get(key, ()):
            group.register(domain)

    def unregister(self, key: str, domain: str) -> None:
        """Undo :meth:`register` for a NodeClaim that was not created after all."""
        self._universe.get(key, {}).pop(domain, None)
        for group in self._by_key.get(key, ()):
            group.unregister(domain)

    def add_requirements(
        self,
        pod: pods.SchedulingPod,
        strict: Requirements,
        node: Requirements,
        allow_undefined: frozenset[str],
    ) -> list[Requirement] | TopologyFailure:
        """The domain requirements topology adds for ``pod`` on a node with requirements ``node``
        (Karpenter ``AddRequirements``): one per owned group, one per inverse group selecting the pod."""
        out: list[Requirement] = []
        owned = self._owned.get(pod.ref.uid, _NO_GROUPS)
        inverse = self.inverse_selecting(pod) if self.inverse else _NO_GROUPS
        if not owned and not inverse:
            return out
        for group in owned:
            key = group.key
            domains = group.next_domains(
                group.selects(pod.namespace, pod.labels), strict.get(key), node.get(key)
            )
            if domains.is_empty():
                return TopologyFailure(group.kind, key, str(group.selector))
            out.append(domains)
        for group in inverse:
            if not group.node_filter.matches_requirements(node, allow_undefined):
                continue
            domains = group.next_anti_affinity(strict.get(group.key), node.get(group.key))
            if domains.is_empty():
                return TopologyFailure(
                    topologygroup.Kind.ANTI_AFFINITY, group.key, f"inverse of {group.selector}"
                )
            out.append(domains)
        return out

    def allowed_hostnames(self, pod: pods.SchedulingPod) -> set[str] | None:
        """A necessary condition, for pruning: the hostnames the pod could still take given its hostname
        anti-affinity and self-selecting ``maxSkew: 1`` hostname spread (``None``: no restriction).
        Never decides on its own; every candidate is still checked in full."""
        allowed: set[str] | None = None
        for group in self._owned.get(pod.ref.uid, _NO_GROUPS):
            if group.key != _HOSTNAME:
                continue
            if group.kind is topologygroup.Kind.ANTI_AFFINITY or (
                group.kind is topologygroup.Kind.SPREAD
                and group.max_skew == 1
                and group.selects(pod.namespace, pod.labels)
            ):
                allowed = set(group.empty) if allowed is None else allowed & group.empty
        return allowed

    def domain_filters(self, pod: pods.SchedulingPod) -> tuple[tuple[str, frozenset[str]], ...]:
        """For pruning: per owned group on a key other than the hostname, the domains the pod could take on
        any node (see :meth:`topologygroup.TopologyGroup.allowed`). Computed once per attempt, checked per node."""
        out = []
        strict = pod.strict_requirements
        for group in self._owned.get(pod.ref.uid, _NO_GROUPS):
            if group.key == _HOSTNAME:
                continue
            allowed = group.allowed(group.selects(pod.namespace, pod.labels), strict.get(group.key))
            if allowed is not None:
                out.append((group.key, allowed))
        return tuple(out)

    def record(
        self,
        pod: pods.SchedulingPod,
        node_taints: Sequence[taints.Taint],
        node: Requirements,
        allow_undefined: frozenset[str],
    ) -> None:
        """``pod`` landed on a node with requirements ``node``: count it in every group that selects it.
        Anti-affinity counts every domain the node may still be in; spread and affinity only a settled one."""
        for group in self.selecting(pod):
            if group.node_filter is not topologygroup.NO_FILTER and not group.node_filter.matches(
                node_taints, node, allow_undefined
            ):
                continue
            if group.key not in node:
                continue
            domains = node[group.key]
            if domains.complement:
                continue
            if group.kind is topologygroup.Kind.ANTI_AFFINITY or len(domains.values) == 1:
                for domain in domains.values:
                    group.record(domain)
        for group in self._inverse_owned.get(pod.ref.uid, _NO_GROUPS):
            if group.key in node and not node[group.key].complement:
                for domain in node[group.key].values:
                    group.record(domain)


def excluded(requirements: Requirements, filters: tuple[tuple[str, frozenset[str]], ...]) -> bool:
    """True when a node with ``requirements`` cannot satisfy one of :meth:`Topology.domain_filters`."""
    for key, allowed in filters:
        if key in requirements:
            requirement = requirements[key]
            if not requirement.complement and requirement.values.isdisjoint(allowed):
                return True
    return False


def universe_from_templates(
    templates: Iterable[tuple[Requirements, Sequence[Requirements], tuple[taints.Taint, ...]]],
) -> dict[str, dict[str, list[tuple[taints.Taint, ...]]]]:
    """Domains NodePools can create, per key, with the taints of each pool offering them: template
    requirements ∩ each instance type's requirements, plus the template's own ``In`` values."""
    universe: dict[str, dict[str, list[tuple[taints.Taint, ...]]]] = {}

    def insert(key: str, value: str, pool_taints: tuple[taints.Taint, ...]) -> None:
        groups = universe.setdefault(key, {}).setdefault(value, [])
        if pool_taints not in groups:
            groups.append(pool_taints)

    for template_reqs, type_reqs, pool_taints in templates:
        for it_reqs in type_reqs:
            for key, requirement in template_reqs.intersect(it_reqs).items():
                if not requirement.complement:
                    for value in requirement.values:
                        insert(key, value, pool_taints)
        for key, requirement in template_reqs.items():
            if not requirement.complement:
                for value in requirement.values:
                    insert(key, value, pool_taints)
    return universe
