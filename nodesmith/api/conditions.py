"""Status conditions (``status.conditions[]``) and the pure functions that read and set them.

Fed by the ``status`` of NodePools, NodeClaims and NodeClasses; consumed by the reconcilers that set
them (lifecycle, disruption marking, NodePool readiness/validation) and everything that reads them.
Setting follows operatorpkg's ``ConditionSet`` (Karpenter's condition library): a condition keeps its
``lastTransitionTime`` only when nothing but the time would change; conditions stay sorted by type; and
setting a *dependent* condition recomputes the *root* (``Ready``): True when every dependent is True at
the current generation, False when one is False at the current generation, Unknown otherwise.
Everything returns new tuples; nothing mutates, and the clock is passed in.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.api import meta, schema

__all__ = [
    "CONDITIONS_SCHEMA",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "ConditionTypes",
    "get",
    "is_true",
]


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType:
    """Condition types nodesmith sets, Karpenter's names."""

    READY: Final = "Ready"
    # NodeClaim
    LAUNCHED: Final = "Launched"
    REGISTERED: Final = "Registered"
    INITIALIZED: Final = "Initialized"
    CONSOLIDATABLE: Final = "Consolidatable"
    DRIFTED: Final = "Drifted"
    DRAINED: Final = "Drained"
    VOLUMES_DETACHED: Final = "VolumesDetached"
    INSTANCE_TERMINATING: Final = "InstanceTerminating"
    CONSISTENT_STATE_FOUND: Final = "ConsistentStateFound"
    DISRUPTION_REASON: Final = "DisruptionReason"
    # NodePool
    VALIDATION_SUCCEEDED: Final = "ValidationSucceeded"
    NODE_CLASS_READY: Final = "NodeClassReady"
    NODE_REGISTRATION_HEALTHY: Final = "NodeRegistrationHealthy"
    DISRUPTION_BUDGETS_VALID: Final = "DisruptionBudgetsValid"
    """nodesmith's, informational: False while a budget schedule cannot be evaluated (Karpenter only logs)."""
    CAPACITY_AVAILABLE: Final = "CapacityAvailable"
    """Informational (not part of ``Ready``): False while the pool is backed off for want of capacity."""


CONDITION_SCHEMA: Final = schema.obj(
    {
        "type": schema.string(
            "Type of condition in CamelCase or in foo.example.com/CamelCase.",
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            max_length=316,
        ),
        "status": schema.string(
            "Status of the condition, one of True, False, Unknown.", enum=list(ConditionStatus)
        ),
        "reason": schema.string(
            "A programmatic identifier for the condition's last transition (CamelCase).",
            pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
            min_length=1,
            max_length=1024,
        ),
        "message": schema.string(
            "A human readable message about the transition; may be empty.", max_length=32768
        ),
        "lastTransitionTime": schema.date_time("When the condition last changed."),
        "observedGeneration": schema.integer(
            "The .metadata.generation the condition was set based upon.", minimum=0
        ),
    },
    "Condition contains details for one aspect of the current state of this API resource.",
    required=("type", "status", "reason", "message", "lastTransitionTime"),
)
CONDITIONS_SCHEMA: Final = schema.array(
    CONDITION_SCHEMA,
    "Conditions contains signals for health and readiness.",
    max_items=64,
    list_type="map",
    list_map_keys=("type",),
)


@final
@attrs.frozen(slots=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: dt.datetime
    observed_generation: int | None = None

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> Condition:
        return cls(
            type=d["type"],
            status=ConditionStatus(d["status"]),
            reason=d["reason"],
            message=d["message"],
            last_transition_time=meta.parse_time(d["lastTransitionTime"], f"{path}.lastTransitionTime"),
            observed_generation=d.get("observedGeneration"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "status": self.status.value,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": meta.format_time(self.last_transition_time),
        }
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        return out

    @property
    def is_true(self) -> bool:
        return self.status is ConditionStatus.TRUE


def conditions_from(values: Sequence[Mapping[str, Any]] | None, path: str) -> tuple[Condition, ...]:
    return tuple(Condition._build(c, f"{path}[{i}]") for i, c in enumerate(values or ()))


def get(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """The condition of that type, or ``None``."""
    for condition in conditions:
        if condition.type == condition_type:
            return condition
    return None


def is_true(conditions: Sequence[Condition], condition_type: str) -> bool:
    condition = get(conditions, condition_type)
    return condition is not None and condition.is_true


@final
@attrs.frozen(slots=True)
class ConditionTypes:
    """A root condition (``Ready``) and the dependents it summarises, like operatorpkg's ConditionTypes."""

    dependents: tuple[str, ...]
    root: str = ConditionType.READY

    def initialize(
        self, conditions: Sequence[Condition], *, now: dt.datetime, generation: int | None = None
    ) -> tuple[Condition, ...]:
        """Every known condition that is missing set to Unknown (``AwaitingReconciliation``), as
        operatorpkg's ``ConditionTypes.For`` does before any read or write."""
        out = tuple(conditions)
        for condition_type in (*self.dependents, self.root):
            if get(out, condition_type) is None:
                unknown = Condition(
                    condition_type,
                    ConditionStatus.UNKNOWN,
                    "AwaitingReconciliation",
                    "object is awaiting reconciliation",
                    now,
                    generation,
                )
                out = _set(out, unknown)[0]
        return out

    def set(
        self,
        conditions: Sequence[Condition],
        condition_type: str,
        status: ConditionStatus | bool,
        *,
        reason: str | None = None,
        message: str = "",
        now: dt.datetime,
        generation: int | None = None,
    ) -> tuple[Condition, ...]:
        """Set one condition (``reason`` defaults to the type) and recompute the root; known conditions
        that are missing are first initialised to Unknown."""
        if isinstance(status, bool):
            status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
        condition = Condition(condition_type, status, reason or condition_type, message, now, generation)
        out, changed = _set(self.initialize(conditions, now=now, generation=generation), condition)
        if changed and condition_type != self.root:
            out = self._recompute_root(out, now, generation)
        return out

    def clear(self, conditions: Sequence[Condition], condition_type: str) -> tuple[Condition, ...]:
        """Remove an abnormal condition (``Drifted``, ``Consolidatable``...); known ones cannot be cleared."""
        if condition_type == self.root or condition_type in self.dependents:
            raise ValueError(f"condition {condition_type!r} is part of {self.root!r} and cannot be cleared")
        return tuple(c for c in conditions if c.type != condition_type)

    def _recompute_root(
        self, conditions: tuple[Condition, ...], now: dt.datetime, generation: int | None
    ) -> tuple[Condition, ...]:
        unhealthy = [
            c
            for c in conditions
            if c.type in self.dependents
            and (c.status is not ConditionStatus.TRUE or c.observed_generation != generation)
        ]
        unhealthy.sort(key=lambda c: c.last_transition_time, reverse=True)
        if not unhealthy:
            root = Condition(self.root, ConditionStatus.TRUE, self.root, "", now, generation)
        else:
            failed = any(
                c.status is ConditionStatus.FALSE and c.observed_generation == generation for c in unhealthy
            )
            root = Condition(
                self.root,
                ConditionStatus.FALSE if failed else ConditionStatus.UNKNOWN,
                "UnhealthyDependents" if failed else "ReconcilingDependents",
                ", ".join(f"{c.type}={c.status.value}" for c in unhealthy),
                now,
                generation,
            )
        return _set(conditions, root)[0]


def _set(conditions: Sequence[Condition], condition: Condition) -> tuple[tuple[Condition, ...], bool]:
    existing = get(conditions, condition.type)
    if (
        existing is not None
        and (existing.status, existing.reason, existing.message)
        == (condition.status, condition.reason, condition.message)
        and existing.observed_generation == condition.observed_generation
    ):
        return tuple(conditions), False
    others = [c for c in conditions if c.type != condition.type]
    return tuple(sorted([*others, condition], key=lambda c: c.type)), True
