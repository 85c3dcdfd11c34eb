"""Kubernetes label selectors (``matchLabels`` + ``matchExpressions``) as hashable values.

Topology spread constraints and pod (anti-)affinity terms select pods by label; the topology groups in
``topologygroup`` hold one of these and ask it, for every pod they meet, whether it counts. ``pods`` builds
them while parsing a pod. A missing (``null``) selector selects nothing, an empty one selects everything,
as in ``metav1.LabelSelectorAsSelector``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, final

import attrs

__all__ = ["NOTHING", "LabelSelector", "SelectorError"]


class SelectorError(ValueError):
    """Raised for a selector Kubernetes would reject (unknown operator, values where none are allowed)."""


_OPERATORS: Final = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})


@final
@attrs.frozen(slots=True)
class LabelSelector:
    """``match_labels`` pairs and ``(key, operator, values)`` expressions, all of which must hold."""

    match_labels: frozenset[tuple[str, str]] = frozenset()
    expressions: tuple[tuple[str, str, frozenset[str]], ...] = ()
    nothing: bool = False

    @classmethod
    def parse(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        if selector is None:
            return NOTHING
        match_labels = frozenset((str(k), str(v)) for k, v in (selector.get("matchLabels") or {}).items())
        expressions = []
        for expr in selector.get("matchExpressions") or ():
            op = str(expr.get("operator"))
            if op not in _OPERATORS:
                raise SelectorError(f"label selector operator {op!r} is not one of {sorted(_OPERATORS)}")
            expressions.append((str(expr["key"]), op, frozenset(str(v) for v in expr.get("values") or ())))
        return cls(match_labels, tuple(sorted(expressions, key=lambda e: (e[0], e[1], sorted(e[2])))))

    def with_labels(self, extra: Mapping[str, str]) -> LabelSelector:
        """A copy that also requires ``extra`` (how ``matchLabelKeys`` narrows a spread constraint)."""
        if not extra or self.nothing:
            return self
        return LabelSelector(self.match_labels | frozenset(extra.items()), self.expressions)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        for key, op, values in self.expressions:
            present = key in labels
            if op == "In":
                if not present or labels[key] not in values:
                    return False
            elif op == "NotIn":
                if present and labels[key] in values:
                    return False
            elif op == "Exists":
                if not present:
                    return False
            elif present:  # DoesNotExist
                return False
        return True

    def __str__(self) -> str:
        if self.nothing:
            return "<none>"
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels)]
        parts += [f"{k} {op} {sorted(vals)}" if vals else f"{k} {op}" for k, op, vals in self.expressions]
        return ",".join(parts) or "<all>"


NOTHING: Final = LabelSelector(nothing=True)
