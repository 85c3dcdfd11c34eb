"""One topology group: a spread constraint or pod (anti-)affinity term, counting matching pods per domain.

``topology`` creates groups (deduplicated by :attr:`TopologyGroup.hash_key`, so a Deployment's replicas
share one), fills their counts from pods already bound, and asks :meth:`TopologyGroup.next_domains` which
domains of a key a pod may take on a node; it calls :meth:`record` when a pod lands. Karpenter
``topologygroup.go`` / ``topologynodefilter.go``; where Karpenter picks among tied domains by Go map order,
this picks the lexicographically smallest, so results are deterministic.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Final, final

import attrs

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.scheduling import selectors, taints

__all__ = ["Kind", "NodeFilter", "TopologyGroup"]

_MAX_INT32: Final = 2**31 - 1


class Kind(enum.StrEnum):
    SPREAD = "topology spread"
    AFFINITY = "pod affinity"
    ANTI_AFFINITY = "pod anti-affinity"


@final
@attrs.frozen(slots=True)
class NodeFilter:
    """Which nodes take part in a spread constraint: ``terms`` (OR'd; empty = all) from the pod's
    nodeSelector and required node affinity when ``nodeAffinityPolicy`` is Honor, and the pod's tolerations
    when ``nodeTaintsPolicy`` is Honor (``None`` = taints ignored)."""

    terms: tuple[Requirements, ...] = ()
    tolerations: tuple[taints.Toleration, ...] | None = None

    def matches_requirements(self, requirements: Requirements, allow_undefined: frozenset[str]) -> bool:
        if not self.terms:
            return True
        return any(requirements.is_compatible(term, allow_undefined) for term in self.terms)

    def matches_taints(self, node_taints: Sequence[taints.Taint]) -> bool:
        return self.tolerations is None or taints.tolerates_all(node_taints, self.tolerations)

    def matches(
        self, node_taints: Sequence[taints.Taint], requirements: Requirements, allow_undefined: frozenset[str]
    ) -> bool:
        return self.matches_taints(node_taints) and self.matches_requirements(requirements, allow_undefined)


NO_FILTER: Final = NodeFilter()


@final
class TopologyGroup:
    """Counts of selected pods per domain of ``key``, with the empty and non-empty domains kept as sets so
    anti-affinity and affinity answers never scan all domains."""

    __slots__ = (
        "_sorted",
        "domains",
        "empty",
        "hash_key",
        "key",
        "kind",
        "max_skew",
        "min_domains",
        "namespaces",
        "node_filter",
        "nonzero",
        "selector",
    )

    def __init__(
        self,
        kind: Kind,
        key: str,
        namespaces: frozenset[str] | None,
        selector: selectors.LabelSelector,
        *,
        max_skew: int = _MAX_INT32,
        min_domains: int | None = None,
        node_filter: NodeFilter = NO_FILTER,
        domains: Iterable[str] = (),
    ) -> None:
        self.kind = kind
        self.key = key
        self.namespaces = namespaces
        self.selector = selector
        self.max_skew = max_skew
        self.min_domains = min_domains
        self.node_filter = node_filter
        self.hash_key = (kind, key, namespaces, selector, max_skew, min_domains, node_filter)
        self.domains: dict[str, int] = dict.fromkeys(domains, 0)
        self.empty: set[str] = set(self.domains)
        self.nonzero: set[str] = set()
        self._sorted: list[str] | None = None

    def __repr__(self) -> str:
        return f"TopologyGroup({self.kind.value} {self.key} {self.selector})"

    def blank(self, domains: Iterable[str]) -> TopologyGroup:
        """A group with the same constraint and no counts over ``domains``."""
        return TopologyGroup(
            self.kind,
            self.key,
            self.namespaces,
            self.selector,
            max_skew=self.max_skew,
            min_domains=self.min_domains,
            node_filter=self.node_filter,
            domains=domains,
        )

    def copy(self) -> TopologyGroup:
        """An independent copy (counts included), for a run that starts from counts made once."""
        out = TopologyGroup.__new__(TopologyGroup)
        out.kind, out.key, out.namespaces, out.selector = self.kind, self.key, self.namespaces, self.selector
        out.max_skew, out.min_domains, out.node_filter = self.max_skew, self.min_domains, self.node_filter
        out.hash_key = self.hash_key
        out.domains = dict(self.domains)
        out.empty = set(self.empty)
        out.nonzero = set(self.nonzero)
        out._sorted = self._sorted  # replaced, never changed in place
        return out

    def settle(self, domain: str, count: int, known: bool) -> None:
        """Set ``domain``'s count outright; with ``count == 0`` it stays a known (empty) domain only if
        ``known``. Used to take a node's or a pod's contribution back out of counts made once."""
        present = domain in self.domains
        if count == 0 and not known:
            if present:
                del self.domains[domain]
                self.empty.discard(domain)
                self.nonzero.discard(domain)
                self._sorted = None
            return
        if not present:
            self._sorted = None
        self.domains[domain] = count
        if count:
            self.empty.discard(domain)
            self.nonzero.add(domain)
        else:
            self.empty.add(domain)
            self.nonzero.discard(domain)

    def selects(self, namespace: str, pod_labels: dict[str, str] | object) -> bool:
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        return self.selector.matches(pod_labels)  # type: ignore[arg-type]

    # -- counting -----------------------------------------------------------------------------------

    def register(self, domain: str) -> None:
        """Make ``domain`` known with a zero count (a new node's hostname, an existing node's label)."""
        if domain not in self.domains:
            self.domains[domain] = 0
            self.empty.add(domain)
            self._sorted = None

    def unregister(self, domain: str) -> None:
        if self.domains.get(domain) == 0:
            del self.domains[domain]
            self.empty.discard(domain)
            self._sorted = None

    def record(self, domain: str) -> None:
        count = self.domains.get(domain)
        if count is None:
            self._sorted = None
            count = 0
        self.domains[domain] = count + 1
        self.empty.discard(domain)
        self.nonzero.add(domain)

    def _sorted_domains(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.domains)
        return self._sorted

    # -- choosing -----------------------------------------------------------------------------------

    def next_domains(
        self, self_selects: bool, pod_domains: Requirement, node_domains: Requirement
    ) -> Requirement:
        """The domains of ``key`` a pod may take on a node whose possible domains are ``node_domains``;
        an empty (``DoesNotExist``) requirement when there is none."""
        if self.kind is Kind.SPREAD:
            return self._next_spread(self_selects, pod_domains, node_domains)
        if self.kind is Kind.AFFINITY:
            return self._next_affinity(self_selects, pod_domains, node_domains)
        return self.next_anti_affinity(pod_domains, node_domains)

    def allowed(self, self_selects: bool, pod_domains: Requirement) -> frozenset[str] | None:
        """Every domain :meth:`next_domains` could return on *some* node, whatever the node's domains
        (``None``: any). A node whose domains for ``key`` miss this set will refuse the pod, so the
        scheduler can skip it without the full check."""
        if self.kind is Kind.SPREAD:
            limit = self.max_skew + self._min_count(pod_domains) - (1 if self_selects else 0)
            return frozenset(d for d, count in self.domains.items() if count <= limit)
        if self.kind is Kind.AFFINITY:
            options = frozenset(d for d in self.nonzero if pod_domains.has(d))
            return None if not options and self_selects else options
        return frozenset(d for d in self.empty if pod_domains.has(d))

    def _candidates(self, node_domains: Requirement) -> Iterable[str]:
        if not node_domains.complement:
            values = node_domains.values
            if len(values) == 1:
                return [v for v in values if v in self.domains]
            return sorted(v for v in values if v in self.domains)
        return [d for d in self._sorted_domains() if node_domains.has(d)]

    def _min_count(self, pod_domains: Requirement) -> int:
        if self.key == labels.LABEL_HOSTNAME:
            return 0  # a new node is always an empty hostname domain
        minimum = _MAX_INT32
        supported = 0
        for domain, count in self.domains.items():
            if pod_domains.has(domain):
                supported += 1
                if count < minimum:
                    minimum = count
        if self.min_domains is not None and supported < self.min_domains:
            return 0
        return minimum

    def _next_spread(
        self, self_selects: bool, pod_domains: Requirement, node_domains: Requirement
    ) -> Requirement:
        minimum = self._min_count(pod_domains)
        extra = 1 if self_selects else 0
        best: str | None = None
        best_count = _MAX_INT32 + 2
        limit = self.max_skew + minimum
        domains = self.domains
        for domain in self._candidates(node_domains):
            count = domains[domain] + extra
            if count <= limit and count < best_count:
                best, best_count = domain, count
        if best is None:
            return Requirement.does_not_exist(self.key)
        return Requirement(self.key, False, frozenset((best,)))

    def _next_affinity(
        self, self_selects: bool, pod_domains: Requirement, node_domains: Requirement
    ) -> Requirement:
        options = [d for d in self.nonzero if pod_domains.has(d)]
        if not options and self_selects:
            # Nothing to be near yet and the pod selects itself: bootstrap in a domain, preferring one the
            # node can still be in (the only choice for an in-flight node).
            pick = next((d for d in self._candidates(node_domains) if pod_domains.has(d)), None)
            if pick is None:
                pick = next((d for d in self._sorted_domains() if pod_domains.has(d)), None)
            if pick is not None:
                options = [pick]
        if not options:
            return Requirement.does_not_exist(self.key)
        return Requirement(self.key, False, frozenset(options))

    def next_anti_affinity(self, pod_domains: Requirement, node_domains: Requirement) -> Requirement:
        """Only domains with none of the selected pods; pre-intersected with the node's domains (the caller
        intersects with them anyway, so the outcome is the same and the scan is bounded by the node)."""
        empty = self.empty
        if not empty:
            return Requirement.does_not_exist(self.key)
        if not node_domains.complement and len(node_domains.values) <= len(empty):
            options = frozenset(d for d in node_domains.values if d in empty and pod_domains.has(d))
        else:
            options = frozenset(d for d in empty if node_domains.has(d) and pod_domains.has(d))
        return Requirement(self.key, False, options)
