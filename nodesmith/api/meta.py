"""Small shared API types: object metadata, taints, NodeClass references, durations, timestamps, and the
do-not-disrupt annotation.

Fed by Kubernetes dicts (NodePools, NodeClaims, Nodes and Pods as the informers deliver them); consumed by
`nodesmith.api.nodepool`, `nodesmith.api.nodeclaim`, provider NodeClass models, the scheduling engine
(taints, requirements) and disruption (do-not-disrupt). Each type has ``from_dict``/``to_dict`` with
Kubernetes' camelCase keys and, where it appears in a CRD, a schema declared next to it with
`nodesmith.api.schema` builders (providers reuse these for their NodeClass CRDs).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith import errors
from nodesmith.api import duration, labels, schema

__all__ = [
    "DURATION_OR_NEVER_PATTERN",
    "DURATION_PATTERN",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "Duration",
    "NodeClassRef",
    "ObjectMeta",
    "OwnerReference",
    "Taint",
    "TaintEffect",
    "do_not_disrupt",
    "do_not_disrupt_active",
    "format_time",
    "parse_time",
]

DURATION_PATTERN: Final = r"^([0-9]+(s|m|h))+$"
DURATION_OR_NEVER_PATTERN: Final = r"^(([0-9]+(s|m|h))+|Never)$"
LABEL_KEY_PATTERN: Final = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(\/))?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
"""A qualified name (``prefix.example.com/name``), as Karpenter's CRDs spell label and taint keys."""
LABEL_VALUE_PATTERN: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


# -- timestamps and durations ----------------------------------------------------------------------------


def parse_time(value: str, field: str) -> dt.datetime:
    """Parse a ``metav1.Time`` (RFC 3339) into an aware UTC datetime."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise errors.ValidationError(field, f"{value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise errors.ValidationError(field, f"{value!r} has no time zone")
    return parsed.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    """Render as Kubernetes does (``2024-05-01T12:00:00Z``, second precision, UTC)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time_or_none(value: Any, field: str) -> dt.datetime | None:
    return None if value is None else parse_time(value, field)


@final
@attrs.frozen(slots=True)
class Duration:
    """A Go duration as written (``text``, kept for round trips) and as a value (``None`` = ``Never``).
    Two durations are equal when their values are (``90m == 1h30m``)."""

    value: dt.timedelta | None
    text: str = attrs.field(eq=False)

    @classmethod
    def parse(cls, text: str, field: str) -> Duration:
        try:
            return cls(duration.parse_nillable_duration(text), text)
        except duration.DurationError as err:
            raise errors.ValidationError(field, str(err)) from None

    @classmethod
    def of(cls, value: dt.timedelta | None) -> Duration:
        return cls(value, duration.format_duration(value))

    @property
    def never(self) -> bool:
        return self.value is None

    def __str__(self) -> str:
        return self.text


# -- object metadata -----------------------------------------------------------------------------------


@final
@attrs.frozen(slots=True)
class OwnerReference:
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OwnerReference:
        return cls(
            api_version=d["apiVersion"],
            kind=d["kind"],
            name=d["name"],
            uid=d["uid"],
            controller=d.get("controller"),
            block_owner_deletion=d.get("blockOwnerDeletion"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
        }
        if self.controller is not None:
            out["controller"] = self.controller
        if self.block_owner_deletion is not None:
            out["blockOwnerDeletion"] = self.block_owner_deletion
        return out


_STR_MAP: Final = schema.map_of(schema.string())
OWNER_REFERENCE_SCHEMA: Final = schema.obj(
    {
        "apiVersion": schema.string(),
        "kind": schema.string(),
        "name": schema.string(),
        "uid": schema.string(),
        "controller": schema.boolean(),
        "blockOwnerDeletion": schema.boolean(),
    },
    required=("apiVersion", "kind", "name", "uid"),
)
OBJECT_META_SCHEMA: Final = schema.obj(
    {
        "name": schema.string(),
        "generateName": schema.string(),
        "namespace": schema.string(),
        "uid": schema.string(),
        "resourceVersion": schema.string(),
        "generation": schema.integer(),
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
        "finalizers": schema.array(schema.string()),
        "ownerReferences": schema.array(OWNER_REFERENCE_SCHEMA),
        "creationTimestamp": schema.date_time(),
        "deletionTimestamp": schema.date_time(),
    }
)
"""Validation only: CRDs declare ``metadata`` as a bare object, the apiserver owns its schema."""


@final
@attrs.frozen(slots=True)
class ObjectMeta:
    """The part of ``metadata`` nodesmith reads and writes; other keys (``managedFields``...) are dropped."""

    name: str = ""
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    finalizers: tuple[str, ...] = ()
    owner_references: tuple[OwnerReference, ...] = ()
    creation_timestamp: dt.datetime | None = None
    deletion_timestamp: dt.datetime | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, path: str = "metadata") -> ObjectMeta:
        d = dict(d or {})
        schema.validate(OBJECT_META_SCHEMA, d, path)
        return cls(
            name=d.get("name", ""),
            generate_name=d.get("generateName"),
            namespace=d.get("namespace"),
            uid=d.get("uid"),
            resource_version=d.get("resourceVersion"),
            generation=d.get("generation"),
            labels=dict(d.get("labels") or {}),
            annotations=dict(d.get("annotations") or {}),
            finalizers=tuple(d.get("finalizers") or ()),
            owner_references=tuple(OwnerReference.from_dict(o) for o in d.get("ownerReferences") or ()),
            creation_timestamp=_time_or_none(d.get("creationTimestamp"), f"{path}.creationTimestamp"),
            deletion_timestamp=_time_or_none(d.get("deletionTimestamp"), f"{path}.deletionTimestamp"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        optional: dict[str, Any] = {
            "generateName": self.generate_name,
            "namespace": self.namespace,
            "uid": self.uid,
            "resourceVersion": self.resource_version,
            "generation": self.generation,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.finalizers:
            out["finalizers"] = list(self.finalizers)
        if self.owner_references:
            out["ownerReferences"] = [o.to_dict() for o in self.owner_references]
        if self.creation_timestamp is not None:
            out["creationTimestamp"] = format_time(self.creation_timestamp)
        if self.deletion_timestamp is not None:
            out["deletionTimestamp"] = format_time(self.deletion_timestamp)
        return out


# -- taints --------------------------------------------------------------------------------------------


class TaintEffect(enum.StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


TAINT_SCHEMA: Final = schema.obj(
    {
        "key": schema.string(
            "Required. The taint key to be applied to a node.",
            pattern=LABEL_KEY_PATTERN,
            min_length=1,
            max_length=316,
        ),
        "value": schema.string(
            "The taint value corresponding to the taint key.", pattern=LABEL_KEY_PATTERN, max_length=63
        ),
        "effect": schema.string(
            "Required. The effect of the taint on pods that do not tolerate it.", enum=list(TaintEffect)
        ),
        "timeAdded": schema.date_time("TimeAdded represents the time at which the taint was added."),
    },
    "The node this Taint is attached to has the effect on any pod that does not tolerate the Taint.",
    required=("key", "effect"),
)


@final
@attrs.frozen(slots=True)
class Taint:
    key: str
    effect: TaintEffect
    value: str = ""
    time_added: dt.datetime | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "taint") -> Taint:
        schema.validate(TAINT_SCHEMA, d, path)
        return cls._build(d, path)

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> Taint:
        return cls(
            key=d["key"],
            effect=TaintEffect(d["effect"]),
            value=d.get("value") or "",
            time_added=_time_or_none(d.get("timeAdded"), f"{path}.timeAdded"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key}
        if self.value:
            out["value"] = self.value
        out["effect"] = self.effect.value
        if self.time_added is not None:
            out["timeAdded"] = format_time(self.time_added)
        return out

    def matches(self, other: Taint) -> bool:
        """Same key and effect (Kubernetes' ``Taint.MatchTaint``: the value does not matter)."""
        return self.key == other.key and self.effect == other.effect

    def __str__(self) -> str:
        return (
            f"{self.key}={self.value}:{self.effect.value}"
            if self.value
            else f"{self.key}:{self.effect.value}"
        )


def taints_schema(description: str) -> schema.Schema:
    return schema.array(TAINT_SCHEMA, description, max_items=100)


def taints_from(values: Sequence[Mapping[str, Any]] | None, path: str) -> tuple[Taint, ...]:
    return tuple(Taint._build(t, f"{path}[{i}]") for i, t in enumerate(values or ()))


# -- NodeClass references -----------------------------------------------------------------------------

NODE_CLASS_REF_SCHEMA: Final = schema.obj(
    {
        "group": schema.string(
            "API group of the referent.", pattern=r"^[^/]*$", min_length=1, max_length=253
        ),
        "kind": schema.string("Kind of the referent.", min_length=1, max_length=63),
        "name": schema.string("Name of the referent.", min_length=1, max_length=253),
    },
    "NodeClassRef is a reference to an object that defines provider-specific configuration.",
    required=("group", "kind", "name"),
)


@final
@attrs.frozen(slots=True)
class NodeClassRef:
    group: str
    kind: str
    name: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "nodeClassRef") -> NodeClassRef:
        schema.validate(NODE_CLASS_REF_SCHEMA, d, path)
        return cls(group=d["group"], kind=d["kind"], name=d["name"])

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "kind": self.kind, "name": self.name}

    @property
    def label(self) -> str:
        """The node label naming this NodeClass (``kwok.nodesmith.io/kwoknodeclass``), as Karpenter stamps."""
        return f"{self.group}/{self.kind.lower()}"


# -- do-not-disrupt --------------------------------------------------------------------------------------


def do_not_disrupt(annotations: Mapping[str, str] | None) -> bool | dt.timedelta | None:
    """Read ``nodesmith.io/do-not-disrupt`` and Karpenter's ``karpenter.sh/do-not-disrupt``.

    ``None``: neither annotation is set. ``True``: ``"true"`` (protected while the object lives).
    A ``timedelta``: a Go duration (pods only: protected that long after the pod started).
    ``False``: set but invalid (``"false"``, ``"soon"``): ignored, as Karpenter does; callers may emit an
    ``InvalidDoNotDisruptAnnotation`` event. When both are set, the more protective one wins.
    """
    if not annotations:
        return None
    found: list[bool | dt.timedelta] = []
    for name in labels.DO_NOT_DISRUPT_ANNOTATIONS:
        raw = annotations.get(name)
        if raw is None:
            continue
        if raw == "true":
            found.append(True)
            continue
        try:
            found.append(duration.parse_duration(raw))
        except duration.DurationError:
            found.append(False)
    if not found:
        return None
    if True in found:
        return True
    spans = [value for value in found if isinstance(value, dt.timedelta)]
    return max(spans) if spans else False


def do_not_disrupt_active(
    annotations: Mapping[str, str] | None, started: dt.datetime | None, now: dt.datetime
) -> bool:
    """Does the annotation block disruption at ``now``? A duration counts from ``started`` (a pod's
    ``status.startTime``); without a start time a duration protects (the pod has not started yet)."""
    value = do_not_disrupt(annotations)
    if value is None or value is False:
        return False
    if value is True:
        return True
    assert isinstance(value, dt.timedelta)
    return started is None or now < started + value
