"""Which pods a PodDisruptionBudget keeps where they are right now (Karpenter's ``pdb.Limits``).

Fed by the PDB dicts of a snapshot (parsed here, by `Budget.from_dict`, the PDB's parse boundary) and by
pods as the cluster state parsed them (`Pod`) (``status.disruptionsAllowed`` is kept current by the
kube-controller-manager's disruption controller); consumed by `nodesmith.disruption.candidates`: a node
with a pod that cannot be evicted now is not a candidate for graceful disruption. A pod blocks when a
PDB selecting it allows no disruption (unless the pod is unhealthy and the PDB's
``unhealthyPodEvictionPolicy`` is ``AlwaysAllow``), or when more than one PDB selects it (the Eviction
API refuses those outright).

:meth:`Limits.fully_blocking` is the stricter question the simulations ask (Karpenter's
``isFullyBlocked``): is the pod kept in place by a PDB that never allows a disruption (``maxUnavailable:
0`` or ``"0%"``, ``minAvailable: "100%"``), or by several PDBs? Such a pod will not move however long one
waits, so no capacity is launched for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, final

import attrs

__all__ = ["Budget", "Limits", "Pod", "selector_matches"]

Obj: TypeAlias = Mapping[str, Any]
"""A PDB, or its label selector, as the API server sent it."""


class Pod(Protocol):
    """The part of a parsed pod a PDB check reads (``nodesmith.state.views.PodView`` is one)."""

    @property
    def key(self) -> str:
        """``namespace/name``."""

    @property
    def namespace(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def ready(self) -> bool: ...


def selector_matches(selector: Obj | None, pod_labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector``: ``None`` matches nothing, ``{}`` matches everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if pod_labels.get(k) != v:
            return False
    for expression in selector.get("matchExpressions") or ():
        k = expression.get("key")
        operator = expression.get("operator")
        values = expression.get("values") or ()
        present = k in pod_labels
        if operator == "In" and not (present and pod_labels[k] in values):
            return False
        if operator == "NotIn" and present and pod_labels[k] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


@final
@attrs.frozen(slots=True)
class Budget:
    """One PDB as disruption reads it."""

    namespace: str
    name: str
    selector: Obj | None
    disruptions_allowed: int
    always_allow_unhealthy: bool
    fully_blocking: bool = False
    """Never allows a disruption, whatever the pods' health: ``maxUnavailable`` 0 or "0%", ``minAvailable`` "100%"."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_dict(cls, pdb: Obj) -> Budget:
        meta = pdb.get("metadata") or {}
        spec = pdb.get("spec") or {}
        status = pdb.get("status") or {}
        return cls(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name")),
            selector=spec.get("selector"),
            disruptions_allowed=int(status.get("disruptionsAllowed") or 0),
            always_allow_unhealthy=spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow",
            fully_blocking=spec.get("maxUnavailable") in (0, "0%") or spec.get("minAvailable") == "100%",
        )


@final
@attrs.frozen(slots=True)
class Limits:
    """All PDBs, indexed by namespace."""

    by_namespace: Mapping[str, tuple[Budget, ...]] = attrs.field(factory=dict)

    @classmethod
    def of(cls, pdbs: Iterable[Obj]) -> Limits:
        index: dict[str, list[Budget]] = {}
        for pdb in pdbs:
            budget = Budget.from_dict(pdb)
            index.setdefault(budget.namespace, []).append(budget)
        return cls({ns: tuple(b) for ns, b in index.items()})

    def matching(self, pod: Pod) -> Sequence[Budget]:
        return [
            b for b in self.by_namespace.get(pod.namespace, ()) if selector_matches(b.selector, pod.labels)
        ]

    def blocking(self, pod: Pod) -> str | None:
        """Why ``pod`` cannot be evicted now, or ``None`` when it can."""
        matched = self.matching(pod)
        if len(matched) > 1:
            names = ", ".join(sorted(b.key for b in matched))
            return f"pod {pod.key} is selected by more than one PDB ({names})"
        for budget in matched:
            if budget.disruptions_allowed > 0:
                continue
            if budget.always_allow_unhealthy and not pod.ready:
                continue
            return f"PDB {budget.key} prevents eviction of pod {pod.key}"
        return None

    def fully_blocking(self, pod: Pod) -> str | None:
        """Why ``pod`` can never be evicted while these PDBs stand, or ``None``."""
        matched = self.matching(pod)
        if len(matched) > 1:
            names = ", ".join(sorted(b.key for b in matched))
            return f"pod {pod.key} is selected by more than one PDB ({names})"
        for budget in matched:
            if budget.always_allow_unhealthy and not pod.ready:
                continue
            if budget.fully_blocking:
                return f"PDB {budget.key} never allows eviction of pod {pod.key}"
        return None
