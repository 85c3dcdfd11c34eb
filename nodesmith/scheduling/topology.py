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

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.scheduling import pods, taints, topologybase, topologygroup

__all__ = ["BoundPod", "CountingNode", "Topology", "TopologyFailure"]

_HOSTNAME: Final = labels.LABEL_HOSTNAME
_NO_GROUPS: Final[tuple[topologygroup.TopologyGroup, ...]] = ()


BoundPod = topologybase.BoundPod
CountingNode = topologybase.CountingNode


@final
@attrs.frozen(slots=True)
class TopologyFailure:
    """Which group left no domain for the pod."""

    kind: topologygroup.Kind
    key: str
    selector: str


class Topology:
    """All topology groups of one run (mutable; owned by the scheduler).

    It starts from a `topologybase.Baseline` (counts over the whole cluster) and behaves as if the
    ``removed`` nodes and the bound pods it places itself (``batch_uids``) had never been counted: each
    group the run needs is copied from the baseline's counts and has their contributions taken back out
    (:meth:`_adopt`); the inverse anti-affinity groups of bound pods are copied only when a pod they select
    comes up, and keep the order in which they would have been created without the excluded pods.
    """

    def __init__(
        self, base: topologybase.Baseline, removed: Collection[str], batch_uids: Iterable[str]
    ) -> None:
        self._base = base
        self._namespace_labels = base.namespace_labels
        self._removed = [base.nodes[name] for name in removed]
        self._excluded = sorted(base.excluded(removed, batch_uids))
        excluded = set(self._excluded)
        # The domains that exist: a removed node's hostname goes unless another node or a template has it.
        self._universe: topologybase.Universe = dict(base.universe)
        self._writable: set[str] = set()
        dropped: dict[str, int] = {}
        for name in removed:
            hostname = base.hostnames[name]
            dropped[hostname] = dropped.get(hostname, 0) + 1
        from_templates = base.templates_universe.get(_HOSTNAME, {})
        self._gone = tuple(
            h for h, n in dropped.items() if base.carriers.get(h, 0) == n and h not in from_templates
        )
        if self._gone:
            hostnames = self._own_universe(_HOSTNAME)
            for hostname in self._gone:
                hostnames.pop(hostname, None)
        self._registered: dict[str, dict[str, None]] = {}
        """Domains this run registered (new NodeClaims' hostnames), per key."""
        # Inverse groups of bound pods whose every owner is excluded do not exist; others may move.
        self._dead: set[topologybase.GroupKey] = set()
        self._rank: dict[topologybase.GroupKey, tuple[int, int]] = {}
        for key in {k for position in self._excluded for k in base.inverse_of.get(position, ())}:
            first = next((p for p in base.contributors[key] if p not in excluded), None)
            if first is None:
                self._dead.add(key)
            elif first != base.rank[key][0]:
                self._rank[key] = (first, base.inverse_of[first].index(key))
        self.groups: dict[tuple[Any, ...], topologygroup.TopologyGroup] = {}
        self.inverse: dict[tuple[Any, ...], topologygroup.TopologyGroup] = {}
        """Inverse groups of this run: the bound pods' ones copied so far, then those its pods created."""
        self._created: list[topologygroup.TopologyGroup] = []
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

    # -- groups -------------------------------------------------------------------------------------

    def _own_universe(self, key: str) -> dict[str, list[tuple[taints.Taint, ...]]]:
        if key not in self._writable:
            self._universe[key] = dict(self._universe.get(key, {}))
            self._writable.add(key)
        return self._universe[key]

    def _known(self, key: str, domain: str, tolerations: tuple[taints.Toleration, ...] | None) -> bool:
        """Whether a group created now would start with ``domain`` (see `topologybase.domains_of`)."""
        offered = self._universe.get(key, {}).get(domain)
        if offered is None:
            return False
        return tolerations is None or any(taints.tolerates_all(g, tolerations) for g in offered)

    def _adopt(
        self, counted: topologygroup.TopologyGroup, support: Mapping[str, int] | None
    ) -> topologygroup.TopologyGroup:
        """A copy of a baseline group without what this run's removed nodes and excluded pods added;
        ``support`` (nodes per domain) for a counted group, ``None`` for a bound pods' inverse group."""
        base = self._base
        group = counted.copy()
        key = group.key
        node_filter = group.node_filter
        lost_nodes: dict[str, int] = {}
        lost_pods: dict[str, int] = {}
        if support is not None:
            for node in self._removed:
                domain = topologybase.node_domain(group, node, base.requirements)
                if domain is not None:
                    lost_nodes[domain] = lost_nodes.get(domain, 0) + 1
        for position in self._excluded:
            pod = base.bound[position]
            node = base.nodes[pod.node]
            if support is None:
                times = base.inverse_of.get(position, ()).count(group.hash_key)
                domain = node.labels.get(key) if times else None
            else:
                times = 1
                domain = topologybase.pod_domain(group, pod, node, base.requirements)
            if domain is not None:
                lost_pods[domain] = lost_pods.get(domain, 0) + times
        touched = set(lost_nodes) | set(lost_pods)
        if key == _HOSTNAME:
            touched.update(self._gone)
        for domain in touched:
            count = counted.domains.get(domain, 0) - lost_pods.get(domain, 0)
            known = self._known(key, domain, node_filter.tolerations)
            if not known and support is not None:
                known = support.get(domain, 0) > lost_nodes.get(domain, 0)
            group.settle(domain, count, known)
        for domain in self._registered.get(key, ()):
            group.register(domain)
        self._by_key.setdefault(key, []).append(group)
        return group

    def _intern(self, group: topologygroup.TopologyGroup) -> topologygroup.TopologyGroup:
        found = self.groups.get(group.hash_key)
        if found is None:
            counted, support = self._base.counted(group)
            found = self.groups[group.hash_key] = self._adopt(counted, support)
            self._selecting.clear()
        return found

    def _bound_inverse(self, key: topologybase.GroupKey) -> topologygroup.TopologyGroup:
        found = self.inverse.get(key)
        if found is None:
            found = self.inverse[key] = self._adopt(self._base.inverse[key], None)
        return found

    def _intern_inverse(self, group: topologygroup.TopologyGroup) -> topologygroup.TopologyGroup:
        key = group.hash_key
        found = self.inverse.get(key)
        if found is not None:
            return found
        if key in self._base.inverse and key not in self._dead:
            return self._bound_inverse(key)
        self.inverse[key] = group
        self._created.append(group)
        self._by_key.setdefault(group.key, []).append(group)
        self._inverse_selecting.clear()
        return group

    def _has_inverse(self) -> bool:
        return bool(self._created) or len(self._dead) < len(self._base.inverse)

    def _namespaces(self, namespace: str, term: pods.AffinityTerm) -> frozenset[str] | None:
        return topologybase.namespaces_of(self._namespace_labels, namespace, term)

    def _domains(self, key: str, tolerations: tuple[taints.Toleration, ...] | None) -> list[str]:
        return topologybase.domains_of(self._universe, key, tolerations)

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
            self._intern_inverse(
                topologygroup.TopologyGroup(
                    topologygroup.Kind.ANTI_AFFINITY,
                    term.topology_key,
                    self._namespaces(namespace, term),
                    term.selector,
                    domains=self._domains(term.topology_key, None),
                )
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
            tuple(self._intern(g) for g in owned),
            self._inverse_groups(pod.namespace, pod.anti_affinity) if pod.anti_affinity else _NO_GROUPS,
        )
        self._for_key[pod.key] = result
        return result

    def update(self, pod: pods.SchedulingPod) -> None:
        """(Re-)register the groups ``pod`` owns, as written or relaxed (Karpenter ``Topology.Update``)."""
        owned, inverse = self._groups_for(pod) if pod.has_topology else (_NO_GROUPS, _NO_GROUPS)
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
            keys = [
                k
                for k in self._base.inverse_selecting(pod.namespace, pod.labels, label_key)
                if k not in self._dead
            ]
            if self._rank:
                rank = self._base.rank
                keys.sort(key=lambda k: self._rank.get(k) or rank[k])
            found = self._inverse_selecting[label_key] = (
                *(self._bound_inverse(k) for k in keys),
                *(g for g in self._created if g.selects(pod.namespace, pod.labels)),
            )
        return found

    # -- domains ------------------------------------------------------------------------------------

    def register(self, key: str, domain: str) -> None:
        """A new domain (a new NodeClaim's hostname) exists from now on, for present and future groups."""
        self._own_universe(key).setdefault(domain, [()])
        self._registered.setdefault(key, {})[domain] = None
        for group in self._by_key.get(key, ()):
            group.register(domain)

    def unregister(self, key: str, domain: str) -> None:
        """Undo :meth:`register` for a NodeClaim that was not created after all."""
        self._own_universe(key).pop(domain, None)
        self._registered.get(key, {}).pop(domain, None)
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
        inverse = self.inverse_selecting(pod) if self._has_inverse() else _NO_GROUPS
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
