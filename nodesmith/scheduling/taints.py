"""Taints and tolerations: can a pod land on a node (or a NodeClaim) carrying these taints?

``pods`` parses a pod's tolerations into ``Toleration`` values; the scheduler parses NodePool template taints
and node taints into ``Taint`` values; ``nodeclaim``, ``existingnode``, ``daemonsets`` and the topology node
filter ask :func:`first_untolerated`. Every effect counts, ``PreferNoSchedule`` included, until the
preference relaxation adds an ``Exists:PreferNoSchedule`` toleration (Karpenter ``pkg/scheduling/taints.go``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.api import labels

__all__ = [
    "PREFER_NO_SCHEDULE_TOLERATION",
    "Taint",
    "Toleration",
    "first_untolerated",
    "parse_taints",
    "parse_tolerations",
    "tolerates_all",
    "without_ephemeral",
]

_READINESS_PREFIX: Final = "readiness.k8s.io/"


@final
@attrs.frozen(slots=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    @classmethod
    def parse(cls, taint: Mapping[str, Any]) -> Taint:
        return cls(str(taint["key"]), str(taint.get("effect") or ""), str(taint.get("value") or ""))

    def to_dict(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


@final
@attrs.frozen(slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    @classmethod
    def parse(cls, toleration: Mapping[str, Any]) -> Toleration:
        return cls(
            str(toleration.get("key") or ""),
            str(toleration.get("operator") or "Equal"),
            str(toleration.get("value") or ""),
            str(toleration.get("effect") or ""),
        )

    def tolerates(self, taint: Taint) -> bool:
        """``corev1.Toleration.ToleratesTaint``: empty effect matches all effects, empty key with
        ``Exists`` matches all keys."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator in ("Equal", "") and self.value == taint.value


PREFER_NO_SCHEDULE_TOLERATION: Final = Toleration(operator="Exists", effect="PreferNoSchedule")


def parse_taints(taints: Iterable[Mapping[str, Any]] | None) -> tuple[Taint, ...]:
    return tuple(Taint.parse(t) for t in taints or ())


def parse_tolerations(tolerations: Iterable[Mapping[str, Any]] | None) -> tuple[Toleration, ...]:
    return tuple(Toleration.parse(t) for t in tolerations or ())


def first_untolerated(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> Taint | None:
    """The first taint none of the tolerations tolerates, or ``None`` when all are tolerated."""
    for taint in taints:
        if not any(t.tolerates(taint) for t in tolerations):
            return taint
    return None


def tolerates_all(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> bool:
    return first_untolerated(taints, tolerations) is None


def without_ephemeral(taints: Iterable[Taint], startup_taints: Iterable[Taint] = ()) -> tuple[Taint, ...]:
    """What an uninitialized managed node's taints mean for scheduling: drop the taints a starting node
    sheds by itself (not-ready, unreachable, uninitialized, unregistered, ``readiness.k8s.io/*``) and the
    NodeClaim's startup taints."""
    startup = set(startup_taints)
    return tuple(
        t
        for t in taints
        if t not in startup
        and t.key not in labels.KNOWN_EPHEMERAL_TAINT_KEYS
        and not t.key.startswith(_READINESS_PREFIX)
    )
